//! Pairwise preferences and the Bradley–Terry ranking they imply.
//!
//! A judge compares two outputs twice, once in each order, because judges favour one
//! position; only a preference that survives the swap counts, anything else is a tie.
//! The ranking fits a Bradley–Terry model (P(i beats j) = pᵢ / (pᵢ + pⱼ)) by Hunter's
//! MM algorithm, ties counting half a win each way, and gets 95% intervals by
//! resampling cases.

use serde::{Deserialize, Serialize};

/// One judge reply: which of the two outputs, as shown, was better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shown {
    First,
    Second,
    Tie,
}

impl Shown {
    pub fn parse(winner: &str) -> Option<Shown> {
        match winner.trim().to_ascii_lowercase().as_str() {
            "a" => Some(Shown::First),
            "b" => Some(Shown::Second),
            "tie" => Some(Shown::Tie),
            _ => None,
        }
    }
}

/// The outcome of comparing columns `a` and `b` on one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preference {
    A,
    B,
    Tie,
}

impl Preference {
    /// Combines the reply with `a` shown first and the reply with `b` shown first: the
    /// same winner both times wins; a disagreement between the orders is a tie.
    pub fn from_both_orders(a_first: Shown, b_first: Shown) -> Preference {
        let (from_a_first, from_b_first) = Preference::per_order(a_first, b_first);
        if from_a_first == from_b_first {
            from_a_first
        } else {
            Preference::Tie
        }
    }

    /// Whether both orders named the same winner (or both a tie).
    pub fn orders_agree(a_first: Shown, b_first: Shown) -> bool {
        let (x, y) = Preference::per_order(a_first, b_first);
        x == y
    }

    fn per_order(a_first: Shown, b_first: Shown) -> (Preference, Preference) {
        let from_a_first = match a_first {
            Shown::First => Preference::A,
            Shown::Second => Preference::B,
            Shown::Tie => Preference::Tie,
        };
        let from_b_first = match b_first {
            Shown::First => Preference::B,
            Shown::Second => Preference::A,
            Shown::Tie => Preference::Tie,
        };
        (from_a_first, from_b_first)
    }

    /// Points for `a`: 1 for a win, ½ for a tie.
    pub fn score_a(self) -> f64 {
        match self {
            Preference::A => 1.0,
            Preference::Tie => 0.5,
            Preference::B => 0.0,
        }
    }
}

/// One comparison: columns `a` < `b` on case `case`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    pub case: usize,
    pub a: usize,
    pub b: usize,
    pub preference: Preference,
}

/// Pseudo-comparisons added between every pair, half a win each way. Without them a
/// column that won (or lost) everything has infinite strength; with them the fit is a
/// posterior mode that shrinks slightly towards "all equal".
const PRIOR_TIES: f64 = 1.0;

/// Bradley–Terry log-strengths of `items` columns (mean 0), fitted by MM iterations.
pub fn bradley_terry(items: usize, comparisons: &[Comparison]) -> Vec<f64> {
    if items == 0 {
        return Vec::new();
    }
    // wins[i][j]: points i scored against j; games[i][j]: comparisons between them.
    let mut wins = vec![vec![0.0; items]; items];
    let mut games = vec![vec![0.0; items]; items];
    for c in comparisons {
        if c.a >= items || c.b >= items || c.a == c.b {
            continue;
        }
        let score = c.preference.score_a();
        wins[c.a][c.b] += score;
        wins[c.b][c.a] += 1.0 - score;
        games[c.a][c.b] += 1.0;
        games[c.b][c.a] += 1.0;
    }
    for i in 0..items {
        for j in 0..items {
            if i != j {
                wins[i][j] += PRIOR_TIES / 2.0;
                games[i][j] += PRIOR_TIES;
            }
        }
    }
    let total_wins: Vec<f64> = wins.iter().map(|row| row.iter().sum()).collect();
    let mut p = vec![1.0; items];
    for _ in 0..10_000 {
        let mut next = vec![0.0; items];
        for i in 0..items {
            let denominator: f64 = (0..items)
                .filter(|&j| j != i)
                .map(|j| games[i][j] / (p[i] + p[j]))
                .sum();
            next[i] = if denominator > 0.0 {
                total_wins[i] / denominator
            } else {
                1.0
            };
        }
        // Strengths are defined up to a factor: keep their geometric mean at 1.
        let log_mean = next.iter().map(|v: &f64| v.ln()).sum::<f64>() / items as f64;
        for v in &mut next {
            *v /= log_mean.exp();
        }
        let change = next
            .iter()
            .zip(&p)
            .map(|(a, b)| (a.ln() - b.ln()).abs())
            .fold(0.0, f64::max);
        p = next;
        if change < 1e-12 {
            break;
        }
    }
    p.iter().map(|v| v.ln()).collect()
}

/// The chance that a column of log-strength `theta` beats one of log-strength 0 (the
/// geometric-mean column).
pub fn win_probability_vs_average(theta: f64) -> f64 {
    1.0 / (1.0 + (-theta).exp())
}

/// 95% percentile intervals of the log-strengths, resampling cases with replacement
/// (`resamples` times, seeded, so a report is reproducible).
pub fn bootstrap_intervals(
    items: usize,
    comparisons: &[Comparison],
    resamples: usize,
    seed: u64,
) -> Vec<(f64, f64)> {
    use rand::{Rng, SeedableRng};
    let mut cases: Vec<usize> = comparisons.iter().map(|c| c.case).collect();
    cases.sort_unstable();
    cases.dedup();
    if cases.is_empty() || resamples == 0 {
        return vec![(0.0, 0.0); items];
    }
    let by_case: Vec<Vec<Comparison>> = cases
        .iter()
        .map(|case| {
            comparisons
                .iter()
                .filter(|c| c.case == *case)
                .copied()
                .collect()
        })
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(resamples); items];
    for _ in 0..resamples {
        let mut drawn = Vec::with_capacity(comparisons.len());
        for _ in 0..cases.len() {
            drawn.extend_from_slice(&by_case[rng.random_range(0..cases.len())]);
        }
        for (i, theta) in bradley_terry(items, &drawn).into_iter().enumerate() {
            samples[i].push(theta);
        }
    }
    samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(f64::total_cmp);
            (percentile(&s, 0.025), percentile(&s, 0.975))
        })
        .collect()
}

/// Linear interpolation between order statistics (numpy's default).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let position = q * (sorted.len() - 1) as f64;
    let low = position.floor() as usize;
    let high = position.ceil() as usize;
    sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn games(a: usize, b: usize, preference: Preference, n: usize) -> Vec<Comparison> {
        (0..n)
            .map(|case| Comparison {
                case,
                a,
                b,
                preference,
            })
            .collect()
    }

    #[test]
    fn position_bias_cancels() {
        use Shown::*;
        assert_eq!(Preference::from_both_orders(First, Second), Preference::A);
        assert_eq!(Preference::from_both_orders(Second, First), Preference::B);
        // The judge always picks the first shown: no preference survives the swap.
        assert_eq!(Preference::from_both_orders(First, First), Preference::Tie);
        assert_eq!(Preference::from_both_orders(Tie, Second), Preference::Tie);
        assert_eq!(Shown::parse(" A "), Some(First));
        assert_eq!(Shown::parse("TIE"), Some(Tie));
        assert_eq!(Shown::parse("neither"), None);
    }

    #[test]
    fn two_columns_match_the_closed_form() {
        // With one pseudo-tie, P(a beats b) = (wins + ½) / (games + 1) = 7.5 / 11.
        let mut comparisons = games(0, 1, Preference::A, 7);
        comparisons.extend(games(0, 1, Preference::B, 3));
        let theta = bradley_terry(2, &comparisons);
        let p = 1.0 / (1.0 + (theta[1] - theta[0]).exp());
        assert!((p - 7.5 / 11.0).abs() < 1e-9, "{p}");
        assert!((theta[0] + theta[1]).abs() < 1e-9);
    }

    #[test]
    fn the_fit_satisfies_the_likelihood_equations() {
        // Three columns, uneven schedule, with ties: at the maximum, each column's
        // expected points equal its actual points (prior included).
        let mut c = games(0, 1, Preference::A, 6);
        c.extend(games(0, 1, Preference::Tie, 2));
        c.extend(games(1, 2, Preference::A, 3));
        c.extend(games(1, 2, Preference::B, 1));
        c.extend(games(0, 2, Preference::B, 2));
        c.extend(games(0, 2, Preference::A, 5));
        let theta = bradley_terry(3, &c);
        let mut points = [0.0f64; 3];
        let mut played = [[0.0f64; 3]; 3];
        for x in &c {
            points[x.a] += x.preference.score_a();
            points[x.b] += 1.0 - x.preference.score_a();
            played[x.a][x.b] += 1.0;
            played[x.b][x.a] += 1.0;
        }
        for i in 0..3 {
            let mut expected = 0.0;
            let mut actual = points[i];
            for j in 0..3 {
                if i != j {
                    let n = played[i][j] + PRIOR_TIES;
                    expected += n / (1.0 + (theta[j] - theta[i]).exp());
                    actual += PRIOR_TIES / 2.0;
                }
            }
            assert!(
                (expected - actual).abs() < 1e-6,
                "{i}: {expected} vs {actual}"
            );
        }
        assert!(theta[0] > theta[1] && theta[1] > theta[2], "{theta:?}");
    }

    #[test]
    fn intervals_cover_the_fit_and_narrow_with_more_cases() {
        let mut few = games(0, 1, Preference::A, 6);
        few.extend(games(0, 1, Preference::B, 4).into_iter().map(|mut c| {
            c.case += 6;
            c
        }));
        let mut many = Vec::new();
        for k in 0..10 {
            many.extend(few.iter().map(|c| Comparison {
                case: c.case + 10 * k,
                ..*c
            }));
        }
        let fit = bradley_terry(2, &few);
        let narrow = bootstrap_intervals(2, &many, 400, 7);
        let wide = bootstrap_intervals(2, &few, 400, 7);
        assert!(
            wide[0].0 <= fit[0] && fit[0] <= wide[0].1,
            "{wide:?} {fit:?}"
        );
        assert!(narrow[0].1 - narrow[0].0 < wide[0].1 - wide[0].0);
        assert_eq!(bootstrap_intervals(2, &few, 400, 7), wide, "seeded");
    }
}
