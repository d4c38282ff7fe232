//! How sure a result is: Wilson intervals for pass rates, the exact McNemar test and a
//! paired bootstrap for comparing two columns or runs on the same cases, pass@k and
//! pass^k for repeated cells, and Cohen's kappa for a judge against human labels.
//! Checked against statsmodels in the tests below.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// The 97.5% quantile of the standard normal (scipy.stats.norm.ppf(0.975)).
const Z95: f64 = 1.959_963_984_540_054;

/// The 95% Wilson score interval of `successes` out of `n` (None when n is 0). Unlike
/// the normal approximation it stays inside [0, 1] and is honest at 0/n and n/n.
pub fn wilson_interval(successes: usize, n: usize) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let n_f = n as f64;
    let p = successes.min(n) as f64 / n_f;
    let z2 = Z95 * Z95;
    let denominator = 1.0 + z2 / n_f;
    let centre = (p + z2 / (2.0 * n_f)) / denominator;
    let half = Z95 / denominator * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt();
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// `41.7% [19.3–68.0]`: a pass rate with its 95% interval, for tables and reports.
pub fn format_rate(successes: usize, n: usize) -> String {
    match wilson_interval(successes, n) {
        Some((low, high)) => format!(
            "{:.1}% [{:.1}–{:.1}]",
            successes as f64 / n as f64 * 100.0,
            low * 100.0,
            high * 100.0
        ),
        None => "—".into(),
    }
}

/// Two-sided exact McNemar test on paired pass/fail outcomes: `only_a` cases passed in A
/// alone, `only_b` in B alone (cases where both agree carry no information). The p-value
/// is twice the binomial(n, ½) tail of the smaller count, capped at 1, as statsmodels'
/// `mcnemar(exact=True)` computes it.
pub fn mcnemar_exact(only_a: usize, only_b: usize) -> f64 {
    let n = only_a + only_b;
    if n == 0 {
        return 1.0;
    }
    let k = only_a.min(only_b);
    // Sum C(n, i) / 2^n for i ≤ k in log space: 2^n overflows long before n does.
    let ln2n = n as f64 * std::f64::consts::LN_2;
    let mut ln_choose = 0.0f64;
    let mut terms = Vec::with_capacity(k + 1);
    for i in 0..=k {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        terms.push(ln_choose - ln2n);
    }
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let tail = max.exp() * terms.iter().map(|t| (t - max).exp()).sum::<f64>();
    (2.0 * tail).min(1.0)
}

/// The difference between two columns' scores on the same cases, resampled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedBootstrap {
    /// Mean of `b - a`.
    pub mean_difference: f64,
    /// 95% percentile interval of the mean difference.
    pub low: f64,
    pub high: f64,
    /// Two-sided: twice the share of resamples on the far side of zero.
    pub p_value: f64,
    pub resamples: usize,
}

/// Paired bootstrap of the mean difference `b - a` over cases (None when there are no
/// pairs). Seeded, so a report is reproducible.
pub fn paired_bootstrap(
    a: &[f64],
    b: &[f64],
    resamples: usize,
    seed: u64,
) -> Option<PairedBootstrap> {
    let differences: Vec<f64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
    let n = differences.len();
    if n == 0 || resamples == 0 {
        return None;
    }
    let mean = differences.iter().sum::<f64>() / n as f64;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| {
            (0..n)
                .map(|_| differences[rng.random_range(0..n)])
                .sum::<f64>()
                / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let quantile =
        |q: f64| means[((q * (resamples - 1) as f64).round() as usize).min(resamples - 1)];
    let at_or_below = means.iter().filter(|m| **m <= 0.0).count() as f64 / resamples as f64;
    let at_or_above = means.iter().filter(|m| **m >= 0.0).count() as f64 / resamples as f64;
    Some(PairedBootstrap {
        mean_difference: mean,
        low: quantile(0.025),
        high: quantile(0.975),
        p_value: (2.0 * at_or_below.min(at_or_above)).min(1.0),
        resamples,
    })
}

/// `n choose k` as a float (exact for the sizes of repeated runs).
fn choose(n: usize, k: usize) -> f64 {
    if k > n {
        return 0.0;
    }
    let k = k.min(n - k);
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// pass@k: the chance that at least one of k attempts passes, estimated without bias
/// from `passed` of `n` attempts (Chen et al., 2021). None when k > n.
pub fn pass_at_k(n: usize, passed: usize, k: usize) -> Option<f64> {
    if k == 0 || k > n {
        return None;
    }
    if n - passed.min(n) < k {
        return Some(1.0);
    }
    Some(1.0 - choose(n - passed, k) / choose(n, k))
}

/// pass^k: the chance that all k attempts pass (a measure of consistency, as in
/// τ-bench), estimated from `passed` of `n`. None when k > n.
pub fn pass_all_k(n: usize, passed: usize, k: usize) -> Option<f64> {
    if k == 0 || k > n {
        return None;
    }
    Some(choose(passed.min(n), k) / choose(n, k))
}

/// Landis and Koch's words for a kappa.
pub fn kappa_strength(kappa: f64) -> &'static str {
    match kappa {
        k if k < 0.0 => "worse than chance",
        k if k <= 0.20 => "slight",
        k if k <= 0.40 => "fair",
        k if k <= 0.60 => "moderate",
        k if k <= 0.80 => "substantial",
        _ => "almost perfect",
    }
}

/// Cohen's kappa of two raters' labels on the same items (None when empty or when both
/// raters always give one same label, where kappa is undefined).
pub fn cohen_kappa<T: PartialEq>(pairs: &[(T, T)]) -> Option<f64> {
    let n = pairs.len() as f64;
    if pairs.is_empty() {
        return None;
    }
    let mut labels: Vec<&T> = Vec::new();
    for (a, b) in pairs {
        for label in [a, b] {
            if !labels.contains(&label) {
                labels.push(label);
            }
        }
    }
    let observed = pairs.iter().filter(|(a, b)| a == b).count() as f64 / n;
    let expected: f64 = labels
        .iter()
        .map(|label| {
            let first = pairs.iter().filter(|(a, _)| a == *label).count() as f64 / n;
            let second = pairs.iter().filter(|(_, b)| b == *label).count() as f64 / n;
            first * second
        })
        .sum();
    (expected < 1.0).then(|| (observed - expected) / (1.0 - expected))
}

/// A p-value in words, at the 5% level.
pub fn significance(p_value: f64) -> &'static str {
    if p_value < 0.05 {
        "significant (p < 0.05)"
    } else {
        "not significant (could be noise)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// Reference values: statsmodels 0.15 `proportion_confint(k, n, method="wilson")`.
    #[test]
    fn wilson_matches_statsmodels() {
        let cases = [
            ((0, 10), (0.0, 0.27753279986288926)),
            ((3, 10), (0.10779126740630104, 0.6032218525388546)),
            ((10, 10), (0.7224672001371106, 1.0)),
            ((45, 90), (0.3988372282354734, 0.6011627717645266)),
            ((1, 1), (0.2065493143772374, 1.0)),
            ((81, 100), (0.7222115462093562, 0.8748524849023126)),
            ((16, 28), (0.3907078562746876, 0.734914528758763)),
        ];
        for ((k, n), (low, high)) in cases {
            let (l, h) = wilson_interval(k, n).unwrap();
            assert!(close(l, low) && close(h, high), "({k}, {n}): ({l}, {h})");
        }
        assert_eq!(wilson_interval(0, 0), None);
        assert_eq!(format_rate(16, 28), "57.1% [39.1–73.5]");
    }

    /// Reference values: statsmodels `mcnemar([[10, b], [c, 10]], exact=True).pvalue`.
    #[test]
    fn mcnemar_matches_statsmodels() {
        let cases = [
            ((0, 0), 1.0),
            ((5, 1), 0.21875),
            ((10, 2), 0.03857421875),
            ((3, 3), 1.0),
            ((0, 7), 0.015625),
            ((25, 10), 0.016673847800120715),
        ];
        for ((b, c), p) in cases {
            assert!(close(mcnemar_exact(b, c), p), "({b}, {c})");
            assert!(close(mcnemar_exact(c, b), p), "symmetric ({c}, {b})");
        }
        // Large counts stay finite (2^n alone would overflow).
        let p = mcnemar_exact(1200, 1000);
        assert!(p > 0.0 && p < 0.001, "{p}");
    }

    /// Reference values: 1 - C(n-c, k) / C(n, k) and C(c, k) / C(n, k) with Python's
    /// math.comb.
    #[test]
    fn pass_at_k_and_pass_all_k() {
        let cases = [
            ((10, 3, 1), (0.3, 0.3)),
            ((10, 3, 5), (0.9166666666666666, 0.0)),
            ((5, 5, 3), (1.0, 1.0)),
            ((10, 0, 2), (0.0, 0.0)),
            ((20, 7, 4), (0.8524251805985552, 0.007223942208462332)),
        ];
        for ((n, c, k), (at, all)) in cases {
            assert!((pass_at_k(n, c, k).unwrap() - at).abs() < 1e-12, "pass@{k}");
            assert!(
                (pass_all_k(n, c, k).unwrap() - all).abs() < 1e-12,
                "pass^{k}"
            );
        }
        assert_eq!(pass_at_k(3, 1, 4), None);
        assert_eq!(pass_all_k(3, 1, 0), None);
    }

    /// Reference values: statsmodels `cohens_kappa(table).kappa` (rows: rater A).
    #[test]
    fn kappa_matches_statsmodels() {
        let from_table = |t: [[usize; 2]; 2]| {
            let mut pairs = Vec::new();
            for (a, row) in t.iter().enumerate() {
                for (b, &count) in row.iter().enumerate() {
                    pairs.extend(std::iter::repeat_n((a, b), count));
                }
            }
            cohen_kappa(&pairs).unwrap()
        };
        assert!((from_table([[20, 5], [10, 15]]) - 0.4).abs() < 1e-12);
        assert!((from_table([[45, 15], [25, 15]]) - 0.13043478260869554).abs() < 1e-12);
        assert!((from_table([[10, 0], [0, 10]]) - 1.0).abs() < 1e-12);
        assert_eq!(cohen_kappa(&[(1, 1), (1, 1)]), None);
        assert_eq!(cohen_kappa::<u8>(&[]), None);
    }

    #[test]
    fn paired_bootstrap_is_seeded_and_centred() {
        let a = [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0];
        let b = [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        let result = paired_bootstrap(&a, &b, 10_000, 7).unwrap();
        assert!((result.mean_difference - 0.5).abs() < 1e-12);
        assert!(result.low > 0.1 && result.low < 0.5, "{result:?}");
        assert!(result.high > 0.5 && result.high <= 0.8, "{result:?}");
        assert!(result.p_value < 0.01, "{result:?}");
        assert_eq!(paired_bootstrap(&a, &b, 10_000, 7), Some(result));
        // No difference at all: p is 1 and the interval is the point.
        let same = paired_bootstrap(&a, &a, 1_000, 1).unwrap();
        assert_eq!((same.low, same.high, same.p_value), (0.0, 0.0, 1.0));
        assert_eq!(paired_bootstrap(&[], &[], 100, 1), None);
    }
}
