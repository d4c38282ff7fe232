//! The held-out verdict: each finalist against the baseline on cases neither was tuned
//! on, paired case by case with the exact McNemar test. With several finalists the
//! p-values are Holm-adjusted, since testing three candidates and keeping the best is
//! three chances to be fooled by noise.

use serde::{Deserialize, Serialize};

use super::Scored;
use crate::score::stats::mcnemar_exact;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finalist {
    pub number: usize,
    pub held_out: Scored,
    /// Held-out cases only the finalist passes.
    pub only_candidate: usize,
    /// Held-out cases only the baseline passes.
    pub only_baseline: usize,
    pub p_value: f64,
    /// Holm-adjusted over the finalists.
    pub adjusted_p: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The run that evaluated the baseline and the finalists on the held-out part.
    pub run_id: Option<i64>,
    pub baseline: Scored,
    pub finalists: Vec<Finalist>,
    pub alpha: f64,
    /// The finalist proven better than the baseline, if any.
    pub winner: Option<usize>,
    /// The finalist with the best held-out objective (the winner when there is one).
    pub best: Option<usize>,
}

impl Verdict {
    pub fn new(
        run_id: Option<i64>,
        baseline: Scored,
        finalists: Vec<(usize, Scored)>,
        alpha: f64,
    ) -> Verdict {
        let mut judged: Vec<Finalist> = finalists
            .into_iter()
            .map(|(number, held_out)| {
                let (mut only_candidate, mut only_baseline) = (0, 0);
                for outcome in &held_out.outcomes {
                    let base = baseline
                        .outcomes
                        .iter()
                        .find(|o| o.case_id == outcome.case_id)
                        .is_some_and(|o| o.passed);
                    match (outcome.passed, base) {
                        (true, false) => only_candidate += 1,
                        (false, true) => only_baseline += 1,
                        _ => {}
                    }
                }
                Finalist {
                    number,
                    held_out,
                    only_candidate,
                    only_baseline,
                    p_value: mcnemar_exact(only_candidate, only_baseline),
                    adjusted_p: 1.0,
                }
            })
            .collect();
        holm(&mut judged);
        let best = judged
            .iter()
            .max_by(|a, b| {
                a.held_out
                    .objective
                    .total_cmp(&b.held_out.objective)
                    .then(b.number.cmp(&a.number))
            })
            .map(|f| f.number);
        let winner = judged
            .iter()
            .filter(|f| {
                f.adjusted_p < alpha
                    && f.only_candidate > f.only_baseline
                    && f.held_out.objective > baseline.objective
            })
            .max_by(|a, b| {
                a.held_out
                    .objective
                    .total_cmp(&b.held_out.objective)
                    .then(b.number.cmp(&a.number))
            })
            .map(|f| f.number);
        Verdict {
            run_id,
            baseline,
            finalists: judged,
            alpha,
            winner,
            best: winner.or(best),
        }
    }

    pub fn finalist(&self, number: usize) -> Option<&Finalist> {
        self.finalists.iter().find(|f| f.number == number)
    }

    /// One sentence: the winner and its evidence, or that none is proven better.
    pub fn summary(&self) -> String {
        let rate = |s: &Scored| crate::score::stats::format_rate(s.passed, s.cases);
        match self.winner.and_then(|n| self.finalist(n)) {
            Some(f) => format!(
                "candidate {} beats the baseline on the held-out cases: {} vs {}, {} fixed and {} regressed, McNemar p = {:.4} (Holm-adjusted {:.4} < {})",
                f.number,
                rate(&f.held_out),
                rate(&self.baseline),
                f.only_candidate,
                f.only_baseline,
                f.p_value,
                f.adjusted_p,
                self.alpha
            ),
            None => match self.best.and_then(|n| self.finalist(n)) {
                Some(f) => format!(
                    "no candidate is proven better than the baseline on the held-out cases; the best, candidate {}, has {} vs {} ({} fixed, {} regressed, McNemar p = {:.4}, Holm-adjusted {:.4} ≥ {})",
                    f.number,
                    rate(&f.held_out),
                    rate(&self.baseline),
                    f.only_candidate,
                    f.only_baseline,
                    f.p_value,
                    f.adjusted_p,
                    self.alpha
                ),
                None => format!(
                    "no candidate beat the baseline on the tuning cases, so none was tried on the held-out cases (baseline {})",
                    rate(&self.baseline)
                ),
            },
        }
    }
}

/// Holm's step-down adjustment: the i-th smallest of m p-values is multiplied by m - i,
/// and the adjusted values are made non-decreasing.
fn holm(finalists: &mut [Finalist]) {
    let m = finalists.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| finalists[a].p_value.total_cmp(&finalists[b].p_value));
    let mut running: f64 = 0.0;
    for (rank, &index) in order.iter().enumerate() {
        let adjusted = (finalists[index].p_value * (m - rank) as f64).min(1.0);
        running = running.max(adjusted);
        finalists[index].adjusted_p = running;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimize::CaseOutcome;

    fn scored(passes: &[bool]) -> Scored {
        let passed = passes.iter().filter(|p| **p).count();
        Scored {
            objective: passed as f64 / passes.len() as f64,
            passed,
            cases: passes.len(),
            mean_score: 0.0,
            macro_f1: None,
            outcomes: passes
                .iter()
                .enumerate()
                .map(|(i, p)| CaseOutcome {
                    case_id: format!("c{i}"),
                    passed: *p,
                    score: 0.0,
                    output: String::new(),
                    reasons: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_clear_held_out_gain_wins_and_a_small_one_does_not() {
        let baseline = scored(&[false; 12]);
        let mut strong = vec![true; 9];
        strong.extend([false; 3]);
        let mut weak = vec![true; 2];
        weak.extend([false; 10]);
        let verdict = Verdict::new(
            None,
            baseline.clone(),
            vec![(1, scored(&strong)), (2, scored(&weak))],
            0.05,
        );
        // 9 fixed, 0 regressed: p = 2 / 2^9.
        let strong = verdict.finalist(1).unwrap();
        assert!((strong.p_value - 2.0 / 512.0).abs() < 1e-12);
        assert!((strong.adjusted_p - 4.0 / 512.0).abs() < 1e-12, "Holm: × 2");
        assert_eq!(verdict.winner, Some(1));
        let only_weak = Verdict::new(None, baseline, vec![(2, scored(&weak))], 0.05);
        assert_eq!(only_weak.winner, None);
        assert_eq!(only_weak.best, Some(2));
        assert!(
            only_weak
                .summary()
                .contains("no candidate is proven better")
        );
    }

    #[test]
    fn holm_adjustment_matches_statsmodels() {
        // statsmodels.stats.multitest.multipletests([0.01, 0.04, 0.03], method="holm")
        // gives [0.03, 0.06, 0.06].
        let mut finalists: Vec<Finalist> = [0.01, 0.04, 0.03]
            .iter()
            .enumerate()
            .map(|(i, p)| Finalist {
                number: i,
                held_out: scored(&[true]),
                only_candidate: 0,
                only_baseline: 0,
                p_value: *p,
                adjusted_p: 1.0,
            })
            .collect();
        holm(&mut finalists);
        let adjusted: Vec<f64> = finalists.iter().map(|f| f.adjusted_p).collect();
        for (got, want) in adjusted.iter().zip([0.03, 0.06, 0.06]) {
            assert!((got - want).abs() < 1e-12, "{adjusted:?}");
        }
    }
}
