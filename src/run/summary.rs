//! Per-column aggregates: pass rate, scores, latency, speed, classification metrics.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{CellResult, RunPlan};
use crate::metrics::classification::{ClassificationReport, classification_report};
use crate::score::detection::{DetectionReport, detection_report, parse_boxes};
use crate::score::{expected_label, normalize_label, predicted_label};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnSummary {
    pub column: String,
    pub cases: usize,
    pub passed: usize,
    pub errors: usize,
    pub pass_rate: f64,
    /// 95% Wilson interval of the pass rate (None for an empty column).
    #[serde(default)]
    pub pass_interval: Option<(f64, f64)>,
    pub mean_score: f64,
    pub mean_latency_ms: f64,
    pub mean_ttft_ms: f64,
    /// Generated tokens over generation time, across the column's cells.
    pub tokens_per_s: Option<f64>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Named metrics summed over the column's cells, derived metrics included.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub named_scores: BTreeMap<String, f64>,
    /// The assertions counted in each named metric.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub named_counts: BTreeMap<String, usize>,
    /// Derived metrics that could not be computed, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_errors: Vec<String>,
}

impl ColumnSummary {
    /// A named metric as the reports show it: its sum with the assertions counted
    /// (`2.00 (3)`), a derived value (`0.667`), or `–` when this column lacks it.
    pub fn named_metric_text(&self, name: &str) -> String {
        match (self.named_scores.get(name), self.named_counts.get(name)) {
            (Some(sum), Some(count)) => format!("{sum:.2} ({count})"),
            (Some(value), None) => format!("{value:.3}"),
            (None, _) => "–".into(),
        }
    }
}

pub(super) fn summarize(plan: &RunPlan, cells: &[CellResult]) -> Vec<ColumnSummary> {
    plan.columns
        .iter()
        .enumerate()
        .map(|(index, column)| {
            let mine: Vec<&CellResult> = cells.iter().filter(|c| c.column == index).collect();
            let n = mine.len();
            let mean = |f: &dyn Fn(&CellResult) -> f64| {
                if n == 0 {
                    0.0
                } else {
                    mine.iter().map(|c| f(c)).sum::<f64>() / n as f64
                }
            };
            let passed = mine.iter().filter(|c| c.passed).count();
            let mut named = crate::score::named::NamedScores::default();
            for cell in &mine {
                named.add(&cell.assertions);
            }
            // Derived metrics are computed from named ones: none without them.
            let metric_errors = if named.sums.is_empty() {
                Vec::new()
            } else {
                named.derive(&plan.eval_set.derived_metrics)
            };
            // Weight each cell's speed by its tokens: total tokens / total generation time.
            let (tokens, seconds) = mine
                .iter()
                .filter_map(|c| {
                    c.tokens_per_s
                        .filter(|t| *t > 0.0)
                        .map(|t| (c.completion_tokens as f64, c.completion_tokens as f64 / t))
                })
                .fold((0.0, 0.0), |acc, (t, s)| (acc.0 + t, acc.1 + s));
            ColumnSummary {
                column: column.id.clone(),
                cases: n,
                passed,
                errors: mine.iter().filter(|c| c.is_error()).count(),
                pass_rate: if n == 0 {
                    0.0
                } else {
                    passed as f64 / n as f64
                },
                pass_interval: crate::score::stats::wilson_interval(passed, n),
                mean_score: mean(&|c| c.score),
                mean_latency_ms: mean_of_ran(&mine, |c| c.latency_ms),
                mean_ttft_ms: mean_of_ran(&mine, |c| c.ttft_ms),
                tokens_per_s: (seconds > 0.0).then(|| tokens / seconds),
                prompt_tokens: mine.iter().map(|c| c.prompt_tokens as u64).sum(),
                completion_tokens: mine.iter().map(|c| c.completion_tokens as u64).sum(),
                named_scores: named.sums,
                named_counts: named.counts,
                metric_errors,
            }
        })
        .collect()
}

/// Mean over the cells that generated (an engine error has no latency to speak of).
fn mean_of_ran(cells: &[&CellResult], f: impl Fn(&CellResult) -> f64) -> f64 {
    let ran: Vec<f64> = cells
        .iter()
        .filter(|c| c.error.is_none())
        .map(|c| f(c))
        .collect();
    if ran.is_empty() {
        0.0
    } else {
        ran.iter().sum::<f64>() / ran.len() as f64
    }
}

pub(super) fn detection_reports(
    plan: &RunPlan,
    cells: &[CellResult],
) -> Vec<Option<DetectionReport>> {
    let Some(spec) = plan.eval_set.metrics.detection.as_ref() else {
        return vec![None; plan.columns.len()];
    };
    (0..plan.columns.len())
        .map(|column| {
            let cases: Vec<_> = cells
                .iter()
                .filter(|c| c.column == column)
                .filter_map(|cell| {
                    // Checked when the run was planned.
                    let expected = parse_boxes(plan.cases[cell.case].expected.as_ref()?).ok()?;
                    let found = serde_json::from_str::<serde_json::Value>(&cell.output)
                        .ok()
                        .and_then(|v| parse_boxes(&v).ok());
                    Some((expected, found))
                })
                .collect();
            (!cases.is_empty()).then(|| detection_report(&cases, spec.iou))
        })
        .collect()
}

pub(super) fn classification_reports(
    plan: &RunPlan,
    cells: &[CellResult],
) -> Vec<Option<ClassificationReport>> {
    let Some(spec) = plan.eval_set.metrics.classification.as_ref() else {
        return vec![None; plan.columns.len()];
    };
    (0..plan.columns.len())
        .map(|column| {
            let mut y_true = Vec::new();
            let mut y_pred = Vec::new();
            for cell in cells.iter().filter(|c| c.column == column) {
                let Some(expected) = plan.cases[cell.case].expected.as_ref() else {
                    continue;
                };
                let Some(truth) = expected_label(spec, expected) else {
                    continue;
                };
                y_true.push(truth);
                y_pred.push(predicted_label(spec, &cell.output));
            }
            let labels: Option<Vec<String>> = spec
                .labels
                .as_ref()
                .map(|labels| labels.iter().map(|l| normalize_label(spec, l)).collect());
            (!y_true.is_empty()).then(|| classification_report(&y_true, &y_pred, labels.as_deref()))
        })
        .collect()
}
