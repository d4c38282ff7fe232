//! Parameter sweeps: an eval set's `sweep:` section declares values for generation
//! parameters (a grid, or a seeded random sample of it) and, optionally, the prompts and
//! models to cross them with. Each parameter setting is one stored run whose columns are
//! the prompts × models, so a model loads once per setting; identical cells come from the
//! cache. A sweep point (one setting on one column) is one line of the
//! parallel-coordinates plot.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::params::GenerationParams;
use crate::run::RunResult;

/// The parameters a sweep may vary.
pub const SWEEPABLE: &[&str] = &[
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repeat_penalty",
    "max_tokens",
];

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SweepMethod {
    #[default]
    Grid,
    Random,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    #[serde(default)]
    pub method: SweepMethod,
    /// Settings drawn by `random` (without replacement, from the grid).
    #[serde(default)]
    pub samples: Option<usize>,
    #[serde(default)]
    pub seed: u64,
    /// Parameter name → the values to try.
    #[serde(default)]
    pub params: BTreeMap<String, Vec<Value>>,
    /// Prompts (`name` or `name:variant`) crossed with every setting; default: the set's.
    #[serde(default)]
    pub prompts: Vec<String>,
    /// Models crossed with every setting; default: the set's.
    #[serde(default)]
    pub models: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("sweep: {0}")]
    Invalid(String),
}

/// One parameter setting: the values as written, and as parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    pub values: BTreeMap<String, Value>,
    pub params: GenerationParams,
}

impl SweepSpec {
    /// Every setting the sweep runs, in a stable order.
    pub fn settings(&self) -> Result<Vec<Setting>, SweepError> {
        for (name, values) in &self.params {
            if !SWEEPABLE.contains(&name.as_str()) {
                return Err(SweepError::Invalid(format!(
                    "cannot sweep `{name}`: expected one of {}",
                    SWEEPABLE.join(", ")
                )));
            }
            if values.is_empty() {
                return Err(SweepError::Invalid(format!("`{name}` has no values")));
            }
        }
        let mut grid: Vec<BTreeMap<String, Value>> = vec![BTreeMap::new()];
        for (name, values) in &self.params {
            grid = grid
                .into_iter()
                .flat_map(|partial| {
                    values.iter().map(move |v| {
                        let mut next = partial.clone();
                        next.insert(name.clone(), v.clone());
                        next
                    })
                })
                .collect();
        }
        if self.method == SweepMethod::Random {
            use rand::SeedableRng;
            use rand::seq::SliceRandom;
            let samples = self.samples.ok_or_else(|| {
                SweepError::Invalid("`method: random` needs `samples` (how many settings)".into())
            })?;
            let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed);
            grid.shuffle(&mut rng);
            grid.truncate(samples);
        }
        grid.into_iter()
            .map(|values| {
                let params: GenerationParams =
                    serde_json::from_value(Value::Object(values.clone().into_iter().collect()))
                        .map_err(|e| {
                            SweepError::Invalid(format!(
                                "values {}: {e}",
                                Value::from(
                                    values
                                        .clone()
                                        .into_iter()
                                        .collect::<serde_json::Map<_, _>>()
                                )
                            ))
                        })?;
                Ok(Setting { values, params })
            })
            .collect()
    }
}

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

    /// The point with the highest pass rate (then mean score).
    pub fn best(&self) -> Option<&SweepPoint> {
        self.points.iter().max_by(|a, b| {
            a.pass_rate
                .total_cmp(&b.pass_rate)
                .then(a.mean_score.total_cmp(&b.mean_score))
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> SweepSpec {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn a_grid_is_the_cartesian_product() {
        let s = spec("params: {temperature: [0, 0.7], top_k: [1, 20, 40]}");
        let settings = s.settings().unwrap();
        assert_eq!(settings.len(), 6);
        assert_eq!(settings[0].params.temperature, Some(0.0));
        assert_eq!(settings[0].params.top_k, Some(1));
        assert_eq!(settings[5].params.temperature, Some(0.7));
        assert_eq!(settings[5].params.top_k, Some(40));
    }

    #[test]
    fn a_random_sample_is_seeded_and_distinct() {
        let s = spec(
            "method: random\nsamples: 4\nseed: 3\nparams: {temperature: [0, 0.3, 0.7, 1.0], top_p: [0.8, 0.9, 1.0]}",
        );
        let a = s.settings().unwrap();
        assert_eq!(a.len(), 4);
        assert_eq!(a, s.settings().unwrap(), "same seed, same sample");
        let mut seen: Vec<_> = a.iter().map(|x| format!("{:?}", x.values)).collect();
        seen.dedup();
        assert_eq!(seen.len(), 4);
    }

    #[test]
    fn bad_sweeps_say_what_is_wrong() {
        let err = spec("params: {seed: [1, 2]}")
            .settings()
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot sweep `seed`"), "{err}");
        let err = spec("params: {temperature: []}")
            .settings()
            .unwrap_err()
            .to_string();
        assert!(err.contains("no values"), "{err}");
        let err = spec("method: random\nparams: {temperature: [0]}")
            .settings()
            .unwrap_err()
            .to_string();
        assert!(err.contains("samples"), "{err}");
        let err = spec("params: {temperature: [hot]}")
            .settings()
            .unwrap_err()
            .to_string();
        assert!(err.contains("temperature"), "{err}");
    }
}
