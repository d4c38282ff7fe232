//! An eval set's `sweep:` section: the values to try for generation parameters (a grid,
//! or a seeded random sample of it) and the prompts and models to cross them with. Running
//! it is `crate::sweep`'s.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::params::GenerationParams;

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
