//! Parameter sweeps: an eval set's `sweep:` section declares values for generation
//! parameters (a grid, or a seeded random sample of it) and, optionally, the prompts and
//! models to cross them with. Each parameter setting is one stored run whose columns are
//! the prompts × models, so a model loads once per setting; identical cells come from the
//! cache. A sweep point (one setting on one column) is one line of the
//! parallel-coordinates plot.

mod best;

use std::collections::BTreeMap;

pub use best::Best;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::evalset::sweep::Setting;
use crate::run::RunResult;

/// One line of the parallel-coordinates plot: a setting on one column of its run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    pub run_id: Option<i64>,
    pub prompt: String,
    pub model: String,
    pub values: BTreeMap<String, Value>,
    pub cases: usize,
    pub passed: usize,
    pub pass_rate: f64,
    pub pass_interval: Option<(f64, f64)>,
    pub mean_score: f64,
    pub mean_latency_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    pub sweep_id: Option<i64>,
    pub eval_set: String,
    /// What a point's rate measures: "pass rate", or "test accuracy" for training sweeps.
    #[serde(default = "pass_rate_metric")]
    pub metric: String,
    /// The swept parameter names, in axis order.
    pub params: Vec<String>,
    pub points: Vec<SweepPoint>,
}

fn pass_rate_metric() -> String {
    "pass rate".into()
}

impl SweepPoint {
    /// A digit-CNN training run as a point: its test accuracy is the rate; the mean
    /// latency field holds the training time in milliseconds.
    pub fn from_training(
        run_id: Option<i64>,
        values: BTreeMap<String, Value>,
        accuracy: f64,
        samples: usize,
        train_seconds: f64,
    ) -> SweepPoint {
        let correct = (accuracy * samples as f64).round() as usize;
        SweepPoint {
            run_id,
            prompt: String::new(),
            model: String::new(),
            values,
            cases: samples,
            passed: correct,
            pass_rate: accuracy,
            pass_interval: crate::score::stats::wilson_interval(correct, samples),
            mean_score: accuracy,
            mean_latency_ms: train_seconds * 1000.0,
        }
    }
}

impl SweepReport {
    /// A training sweep's report.
    pub fn training(
        sweep_id: Option<i64>,
        dataset: &str,
        params: Vec<String>,
        points: Vec<SweepPoint>,
    ) -> SweepReport {
        SweepReport {
            sweep_id,
            eval_set: format!("digit-cnn · {dataset}"),
            metric: "test accuracy".into(),
            params,
            points,
        }
    }

    /// From each setting's run result.
    pub fn new(
        sweep_id: Option<i64>,
        eval_set: &str,
        runs: &[(Setting, RunResult, Option<i64>)],
    ) -> SweepReport {
        let mut params: Vec<String> = Vec::new();
        let mut points = Vec::new();
        for (setting, result, run_id) in runs {
            for name in setting.values.keys() {
                if !params.contains(name) {
                    params.push(name.clone());
                }
            }
            for (index, column) in result.columns.iter().enumerate() {
                let Some(summary) = result.summaries.get(index) else {
                    continue;
                };
                points.push(SweepPoint {
                    run_id: *run_id,
                    prompt: column.prompt_id.clone(),
                    model: column.model.clone(),
                    values: setting.values.clone(),
                    cases: summary.cases,
                    passed: summary.passed,
                    pass_rate: summary.pass_rate,
                    pass_interval: summary.pass_interval,
                    mean_score: summary.mean_score,
                    mean_latency_ms: summary.mean_latency_ms,
                });
            }
        }
        SweepReport {
            sweep_id,
            eval_set: eval_set.to_string(),
            metric: pass_rate_metric(),
            params,
            points,
        }
    }
}

/// A stored sweep read back: each setting's run from the store.
pub fn stored_sweep(
    store: &crate::store::RunStore,
    sweep_id: i64,
) -> Result<Option<SweepReport>, crate::store::StoreError> {
    let Some((eval_set, runs)) = store.sweep_runs(sweep_id)? else {
        return Ok(None);
    };
    let trainings = store.training_sweep_runs(sweep_id)?;
    if !trainings.is_empty() {
        let all = store.training_runs()?;
        let mut params: Vec<String> = Vec::new();
        let mut points = Vec::new();
        for (run_id, setting_json) in trainings {
            let Ok(values) = serde_json::from_str::<BTreeMap<String, Value>>(&setting_json) else {
                continue;
            };
            let card = all
                .iter()
                .find(|r| r.id == run_id)
                .and_then(|r| r.card_json.as_deref())
                .and_then(|j| serde_json::from_str::<crate::vision::train::ModelCard>(j).ok());
            let Some(card) = card else { continue };
            for key in values.keys() {
                if !params.contains(key) {
                    params.push(key.clone());
                }
            }
            let (accuracy, samples) = card
                .test
                .as_ref()
                .map_or((0.0, 0), |t| (t.accuracy, t.samples));
            points.push(SweepPoint::from_training(
                Some(run_id),
                values,
                accuracy,
                samples,
                card.train_seconds,
            ));
        }
        let mut report = SweepReport::training(Some(sweep_id), "", params, points);
        report.eval_set = eval_set;
        return Ok(Some(report));
    }
    let mut results = Vec::new();
    for (run_id, setting_json) in runs {
        let (Ok(setting), Some(result)) = (
            serde_json::from_str::<Setting>(&setting_json),
            crate::run::stored_result(store, run_id)?,
        ) else {
            continue;
        };
        results.push((setting, result, Some(run_id)));
    }
    Ok(Some(SweepReport::new(Some(sweep_id), &eval_set, &results)))
}

/// `name=value` pairs of a setting, space-separated.
pub fn setting_text(values: &BTreeMap<String, Value>) -> String {
    values
        .iter()
        .map(|(k, v)| format!("{k}={}", value_text(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A value as a short label.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
