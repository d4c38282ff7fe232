//! Comparing two stored runs: per prompt × model column, the pass-rate and score deltas,
//! the cases that regressed (passed before, fail now) or were fixed, and the cases whose
//! output changed while their verdict did not (a prompt edit that turns "Rio de Janeiro"
//! into "Rio" passes `contains: Rio` both times, and is still a change worth reading).
//! Cells are matched by column id and case id, so runs with different selections compare
//! on what they share. Each column's change is tested: exact McNemar on pass/fail, paired
//! bootstrap on scores.

mod words;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

pub use words::{WordChange, compact_diff, inline_diff, word_diff};

use crate::evalset::EvalSet;
use crate::score::stats::{self, PairedBootstrap};
use crate::store::{RunStore, StoreError, StoredCell};

/// Compares stored runs `a` and `b`, naming each changed case by its text in run `b`'s
/// eval set (when that file still loads).
pub fn compare_runs(store: &RunStore, a: i64, b: i64) -> Result<Comparison, StoreError> {
    let mut comparison = compare(&store.cells(a)?, &store.cells(b)?);
    let eval_set = store
        .run(b)?
        .and_then(|run| EvalSet::load(std::path::Path::new(&run.eval_set_path)).ok());
    if let Some(eval_set) = eval_set {
        let labels: HashMap<&str, String> = eval_set
            .cases
            .iter()
            .map(|case| (case.id.as_str(), case.label()))
            .collect();
        let changes = comparison
            .regressions
            .iter_mut()
            .chain(comparison.fixes.iter_mut())
            .chain(comparison.changed_outputs.iter_mut());
        for change in changes {
            if let Some(label) = labels.get(change.case.as_str()) {
                change.label = label.clone();
            }
        }
    }
    Ok(comparison)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnDelta {
    pub column: String,
    /// Cells present in both runs.
    pub shared: usize,
    pub pass_rate_a: f64,
    pub pass_rate_b: f64,
    pub mean_score_a: f64,
    pub mean_score_b: f64,
    pub passed_a: usize,
    pub passed_b: usize,
    /// Shared cases passed in A only (regressions) and in B only (fixes).
    pub passed_only_a: usize,
    pub passed_only_b: usize,
    /// Shared cases whose output text differs, whatever their verdicts.
    pub outputs_changed: usize,
    /// Exact McNemar p-value of the pass/fail change.
    pub mcnemar_p: f64,
    /// Paired bootstrap of the score change (B − A).
    pub score_change: Option<PairedBootstrap>,
}

impl ColumnDelta {
    /// The change in words: verdicts that flipped, with their test, and how many outputs
    /// changed. "No case changed" only when every shared output is the same text.
    pub fn verdict(&self) -> String {
        let outputs = format!("outputs changed: {}", self.outputs_changed);
        if self.passed_only_a == 0 && self.passed_only_b == 0 {
            return if self.outputs_changed == 0 {
                "no case changed".into()
            } else {
                format!("{outputs}, no pass/fail change")
            };
        }
        format!(
            "{} fixed, {} regressed: {} (McNemar p = {:.3}); {outputs}",
            self.passed_only_b,
            self.passed_only_a,
            stats::significance(self.mcnemar_p),
            self.mcnemar_p
        )
    }
}

/// Resamples for the score bootstrap; fixed seed so a comparison reads the same twice.
const BOOTSTRAP_RESAMPLES: usize = 10_000;
const BOOTSTRAP_SEED: u64 = 2026;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseChange {
    pub column: String,
    pub case: String,
    /// The case's description or first variable, when its eval set still loads.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub label: String,
    pub output_a: String,
    pub output_b: String,
    pub score_a: f64,
    pub score_b: f64,
}

impl CaseChange {
    /// The case as people know it: `3 Italy`, or its id alone.
    pub fn name(&self) -> String {
        if self.label.is_empty() || self.label == self.case {
            self.case.clone()
        } else {
            format!("{} {}", self.case, self.label)
        }
    }

    /// The two outputs' word diff on one line (see [`inline_diff`]).
    pub fn inline_diff(&self) -> String {
        inline_diff(&self.output_a, &self.output_b)
    }

    /// The two outputs' word diff, for highlighting.
    pub fn word_diff(&self) -> Vec<(WordChange, String)> {
        word_diff(&self.output_a, &self.output_b)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Comparison {
    pub columns: Vec<ColumnDelta>,
    /// Passed in A, failed in B.
    pub regressions: Vec<CaseChange>,
    /// Failed in A, passed in B.
    pub fixes: Vec<CaseChange>,
    /// The same verdict in both runs, a different output.
    pub changed_outputs: Vec<CaseChange>,
}

pub fn compare(a: &[StoredCell], b: &[StoredCell]) -> Comparison {
    let in_b: HashMap<(&str, &str), &StoredCell> = b
        .iter()
        .map(|c| ((c.column_id.as_str(), c.case_id.as_str()), c))
        .collect();
    let mut per_column: BTreeMap<&str, Vec<(&StoredCell, &StoredCell)>> = BTreeMap::new();
    for cell_a in a {
        if let Some(cell_b) = in_b.get(&(cell_a.column_id.as_str(), cell_a.case_id.as_str())) {
            per_column
                .entry(cell_a.column_id.as_str())
                .or_default()
                .push((cell_a, cell_b));
        }
    }
    let mut comparison = Comparison::default();
    for (column, pairs) in per_column {
        let n = pairs.len() as f64;
        let rate = |f: &dyn Fn(&(&StoredCell, &StoredCell)) -> bool| {
            pairs.iter().filter(|p| f(p)).count() as f64 / n
        };
        let mean =
            |f: &dyn Fn(&(&StoredCell, &StoredCell)) -> f64| pairs.iter().map(f).sum::<f64>() / n;
        let passed_only_a = pairs.iter().filter(|p| p.0.passed && !p.1.passed).count();
        let passed_only_b = pairs.iter().filter(|p| !p.0.passed && p.1.passed).count();
        let scores_a: Vec<f64> = pairs.iter().map(|p| p.0.score).collect();
        let scores_b: Vec<f64> = pairs.iter().map(|p| p.1.score).collect();
        comparison.columns.push(ColumnDelta {
            column: column.to_string(),
            shared: pairs.len(),
            pass_rate_a: rate(&|p| p.0.passed),
            pass_rate_b: rate(&|p| p.1.passed),
            mean_score_a: mean(&|p| p.0.score),
            mean_score_b: mean(&|p| p.1.score),
            passed_a: pairs.iter().filter(|p| p.0.passed).count(),
            passed_b: pairs.iter().filter(|p| p.1.passed).count(),
            passed_only_a,
            passed_only_b,
            outputs_changed: pairs.iter().filter(|p| p.0.output != p.1.output).count(),
            mcnemar_p: stats::mcnemar_exact(passed_only_a, passed_only_b),
            score_change: stats::paired_bootstrap(
                &scores_a,
                &scores_b,
                BOOTSTRAP_RESAMPLES,
                BOOTSTRAP_SEED,
            ),
        });
        for (cell_a, cell_b) in pairs {
            let change = || CaseChange {
                column: column.to_string(),
                case: cell_a.case_id.clone(),
                label: String::new(),
                output_a: cell_a.output.clone(),
                output_b: cell_b.output.clone(),
                score_a: cell_a.score,
                score_b: cell_b.score,
            };
            match (cell_a.passed, cell_b.passed) {
                (true, false) => comparison.regressions.push(change()),
                (false, true) => comparison.fixes.push(change()),
                _ if cell_a.output != cell_b.output => comparison.changed_outputs.push(change()),
                _ => {}
            }
        }
    }
    comparison
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(column: &str, case: &str, passed: bool) -> StoredCell {
        StoredCell {
            column_index: 0,
            case_index: 0,
            column_id: column.into(),
            case_id: case.into(),
            cache_key: String::new(),
            prompt_json: "null".into(),
            output: format!("{case}:{passed}"),
            error: None,
            passed,
            score: if passed { 1.0 } else { 0.0 },
            assertions_json: "[]".into(),
            finish: None,
            prompt_tokens: 0,
            completion_tokens: 0,
            ttft_ms: 0.0,
            latency_ms: 0.0,
            tokens_per_s: None,
            cached: false,
            logprobs_json: None,
        }
    }

    #[test]
    fn regressions_fixes_and_deltas() {
        let a = [
            cell("p @ m", "1", true),
            cell("p @ m", "2", false),
            cell("p @ m", "3", true),
            cell("p @ m", "only-a", true),
        ];
        let b = [
            cell("p @ m", "1", false),
            cell("p @ m", "2", true),
            cell("p @ m", "3", true),
            cell("q @ m", "1", true),
        ];
        let c = compare(&a, &b);
        assert_eq!(c.columns.len(), 1);
        assert_eq!(c.columns[0].shared, 3);
        assert!((c.columns[0].pass_rate_a - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.columns[0].pass_rate_b - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(c.regressions.len(), 1);
        assert_eq!(c.regressions[0].case, "1");
        assert_eq!(c.fixes.len(), 1);
        assert_eq!(c.fixes[0].case, "2");
    }

    /// Ten fixes and two regressions over 20 shared cases: McNemar's exact p is
    /// 0.0386 (statsmodels), so the change is called significant; one of each is not.
    #[test]
    fn changes_are_tested_and_put_in_words() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        for i in 0..20 {
            let (before, after) = match i {
                0..10 => (false, true),
                10..12 => (true, false),
                _ => (true, true),
            };
            a.push(cell("p @ m", &i.to_string(), before));
            b.push(cell("p @ m", &i.to_string(), after));
        }
        let column = &compare(&a, &b).columns[0];
        assert_eq!((column.passed_a, column.passed_b), (10, 18));
        assert_eq!((column.passed_only_a, column.passed_only_b), (2, 10));
        assert!((column.mcnemar_p - 0.03857421875).abs() < 1e-12);
        assert_eq!(
            column.verdict(),
            "10 fixed, 2 regressed: significant (p < 0.05) (McNemar p = 0.039); outputs changed: 12"
        );
        let scores = column.score_change.as_ref().unwrap();
        assert!((scores.mean_difference - 0.4).abs() < 1e-12);
        assert!(scores.low > 0.0 && scores.p_value < 0.05, "{scores:?}");

        let small = compare(&a[9..11], &b[9..11]);
        assert!(small.columns[0].verdict().contains("not significant"));
    }

    /// Issue 21: a prompt edit changed "Rio de Janeiro" to "Rio"; both pass `contains:
    /// Rio`, and the comparison said "no case changed".
    #[test]
    fn changed_outputs_with_the_same_verdict_are_counted_and_diffed() {
        let mut before = cell("capital @ echo", "2", true);
        before.output = "The capital is Rio de Janeiro.".into();
        let mut after = before.clone();
        after.output = "The capital is Rio.".into();
        let same = cell("capital @ echo", "1", true);
        let c = compare(&[same.clone(), before], &[same, after]);
        let column = &c.columns[0];
        assert_eq!(column.outputs_changed, 1);
        assert_eq!(column.verdict(), "outputs changed: 1, no pass/fail change");
        assert!(c.regressions.is_empty() && c.fixes.is_empty());
        assert_eq!(c.changed_outputs.len(), 1);
        assert_eq!(c.changed_outputs[0].case, "2");
        assert_eq!(
            c.changed_outputs[0].inline_diff(),
            "The capital is [-Rio de Janeiro.-]{+Rio.+}"
        );

        let identical = compare(&c_cells(), &c_cells());
        assert_eq!(identical.columns[0].verdict(), "no case changed");
        assert!(identical.changed_outputs.is_empty());
    }

    fn c_cells() -> Vec<StoredCell> {
        vec![cell("p @ m", "1", true), cell("p @ m", "2", false)]
    }
}
