//! Summaries of a run repeated K times with different seeds (`eval --repeat K`): per
//! column pass@1 with its interval, pass@K (at least one of the K attempts passes, the
//! unbiased estimator of Chen et al.) and pass^K (all K pass).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::RunResult;
use crate::score::stats::{pass_all_k, pass_at_k, wilson_interval};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepeatColumn {
    pub column: String,
    pub cases: usize,
    /// Passing cells over all repeats, out of `cases × repeats`.
    pub passed: usize,
    pub attempts: usize,
    pub pass_at_1: f64,
    pub pass_at_1_interval: Option<(f64, f64)>,
    pub pass_at_k: f64,
    pub pass_all_k: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepeatReport {
    pub eval_set: String,
    pub repeats: usize,
    /// The stored run of each repeat, when the run store is on.
    pub runs: Vec<i64>,
    pub columns: Vec<RepeatColumn>,
}

/// Summarises repeats of the same plan (same columns and cases in the same order).
pub fn repeat_report(results: &[RunResult], runs: Vec<i64>) -> Option<RepeatReport> {
    let first = results.first()?;
    let k = results.len();
    let columns = first
        .columns
        .iter()
        .enumerate()
        .map(|(index, column)| {
            let mut per_case: BTreeMap<usize, usize> = BTreeMap::new();
            for result in results {
                for cell in result.cells.iter().filter(|c| c.column == index) {
                    *per_case.entry(cell.case).or_default() += usize::from(cell.passed);
                }
            }
            let cases = per_case.len();
            let passed: usize = per_case.values().sum();
            let mean = |f: &dyn Fn(usize) -> Option<f64>| {
                per_case.values().filter_map(|&c| f(c)).sum::<f64>() / cases.max(1) as f64
            };
            RepeatColumn {
                column: column.id.clone(),
                cases,
                passed,
                attempts: cases * k,
                pass_at_1: passed as f64 / (cases * k).max(1) as f64,
                pass_at_1_interval: wilson_interval(passed, cases * k),
                pass_at_k: mean(&|c| pass_at_k(k, c, k)),
                pass_all_k: mean(&|c| pass_all_k(k, c, k)),
            }
        })
        .collect();
    Some(RepeatReport {
        eval_set: first.eval_set.clone(),
        repeats: k,
        runs,
        columns,
    })
}

impl RepeatReport {
    /// A Markdown summary, e.g. for a pull-request comment.
    pub fn to_markdown(&self) -> String {
        let k = self.repeats;
        let mut out = format!(
            "# {} · {k} repeats\n\n| prompt @ model | cases | pass@1 | 95% interval | pass@{k} | pass^{k} |\n|---|---|---|---|---|---|\n",
            self.eval_set
        );
        for c in &self.columns {
            let interval = c
                .pass_at_1_interval
                .map(|(l, h)| format!("{:.1}–{:.1}%", l * 100.0, h * 100.0))
                .unwrap_or_default();
            out.push_str(&format!(
                "| {} | {} | {:.1}% ({}/{}) | {interval} | {:.1}% | {:.1}% |\n",
                c.column.replace('|', "\\|"),
                c.cases,
                c.pass_at_1 * 100.0,
                c.passed,
                c.attempts,
                c.pass_at_k * 100.0,
                c.pass_all_k * 100.0
            ));
        }
        if !self.runs.is_empty() {
            let runs: Vec<String> = self.runs.iter().map(i64::to_string).collect();
            out.push_str(&format!("\nStored runs: {}\n", runs.join(", ")));
        }
        out
    }
}
