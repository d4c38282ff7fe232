//! Generation parameters. They are layered: model catalog defaults, then the prompt file,
//! then the prompt variant; a later layer overrides only the keys it sets.

use serde::{Deserialize, Serialize};

/// Parameters as written in YAML: every key optional so layers can be merged. Values
/// outside their range are refused when the file is read (with its line), not passed on
/// to an engine that would misbehave on them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ParamsFile")]
pub struct GenerationParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_p: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_penalty: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Vec<String>>,
}

impl GenerationParams {
    /// No parameter set: each engine's defaults apply.
    pub const NONE: GenerationParams = GenerationParams {
        temperature: None,
        top_p: None,
        top_k: None,
        min_p: None,
        repeat_penalty: None,
        max_tokens: None,
        seed: None,
        stop: None,
    };
}

/// [`GenerationParams`] as read, before its ranges are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamsFile {
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    top_k: Option<i32>,
    #[serde(default)]
    min_p: Option<f32>,
    #[serde(default)]
    repeat_penalty: Option<f32>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    seed: Option<u32>,
    #[serde(default)]
    stop: Option<Vec<String>>,
}

impl TryFrom<ParamsFile> for GenerationParams {
    type Error = String;

    fn try_from(file: ParamsFile) -> Result<Self, Self::Error> {
        let params = GenerationParams {
            temperature: file.temperature,
            top_p: file.top_p,
            top_k: file.top_k,
            min_p: file.min_p,
            repeat_penalty: file.repeat_penalty,
            max_tokens: file.max_tokens,
            seed: file.seed,
            stop: file.stop,
        };
        match params.problem() {
            Some(problem) => Err(problem),
            None => Ok(params),
        }
    }
}

impl GenerationParams {
    /// What is out of range, if anything.
    pub fn problem(&self) -> Option<String> {
        let within = |value: Option<f32>, low: f32, high: f32| {
            value.is_none_or(|v| v.is_finite() && (low..=high).contains(&v))
        };
        if !within(self.temperature, 0.0, 100.0) {
            return Some(format!(
                "temperature {:?}: expected 0 (greedy) or more",
                self.temperature.unwrap_or_default()
            ));
        }
        if !within(self.top_p, 0.0, 1.0) || self.top_p == Some(0.0) {
            return Some(format!(
                "top_p {:?}: expected a probability above 0 and at most 1",
                self.top_p.unwrap_or_default()
            ));
        }
        if !within(self.min_p, 0.0, 1.0) {
            return Some(format!(
                "min_p {:?}: expected a probability from 0 to 1",
                self.min_p.unwrap_or_default()
            ));
        }
        if self.top_k.is_some_and(|k| k < 0) {
            return Some(format!(
                "top_k {}: expected 0 (off) or more",
                self.top_k.unwrap_or_default()
            ));
        }
        if !within(self.repeat_penalty, f32::MIN_POSITIVE, 100.0) {
            return Some(format!(
                "repeat_penalty {:?}: expected a number above 0 (1 is off)",
                self.repeat_penalty.unwrap_or_default()
            ));
        }
        if self.max_tokens == Some(0) {
            return Some("max_tokens 0: expected at least 1".into());
        }
        None
    }

    /// `self` with every key that `over` sets replaced by `over`'s value.
    pub fn overlay(&self, over: &GenerationParams) -> GenerationParams {
        GenerationParams {
            temperature: over.temperature.or(self.temperature),
            top_p: over.top_p.or(self.top_p),
            top_k: over.top_k.or(self.top_k),
            min_p: over.min_p.or(self.min_p),
            repeat_penalty: over.repeat_penalty.or(self.repeat_penalty),
            max_tokens: over.max_tokens.or(self.max_tokens),
            seed: over.seed.or(self.seed),
            stop: over.stop.clone().or_else(|| self.stop.clone()),
        }
    }

    /// Fills unset keys with defaults suited to evaluation: greedy and reproducible.
    pub fn resolve(&self) -> SamplingParams {
        let d = SamplingParams::default();
        SamplingParams {
            temperature: self.temperature.unwrap_or(d.temperature),
            top_p: self.top_p.unwrap_or(d.top_p),
            top_k: self.top_k.unwrap_or(d.top_k),
            min_p: self.min_p.unwrap_or(d.min_p),
            repeat_penalty: self.repeat_penalty.unwrap_or(d.repeat_penalty),
            max_tokens: self.max_tokens.unwrap_or(d.max_tokens),
            seed: self.seed.unwrap_or(d.seed),
            stop: self.stop.clone().unwrap_or_default(),
            ignore_eos: false,
            logprobs: false,
        }
    }
}

/// Fully resolved parameters handed to an engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// 0 means greedy decoding.
    pub temperature: f32,
    pub top_p: f32,
    pub top_k: i32,
    pub min_p: f32,
    /// 1.0 disables the penalty.
    pub repeat_penalty: f32,
    pub max_tokens: u32,
    pub seed: u32,
    pub stop: Vec<String>,
    /// Never end at an end-of-generation token (benchmarks generate a fixed length).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_eos: bool,
    /// Report each generated token's log-probability (for `perplexity` assertions).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub logprobs: bool,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_p: 0.95,
            top_k: 40,
            min_p: 0.05,
            repeat_penalty: 1.0,
            max_tokens: 256,
            seed: 42,
            stop: Vec::new(),
            ignore_eos: false,
            logprobs: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 20: parameters out of range are refused with the file's line.
    #[test]
    fn issue_20_out_of_range_parameters_are_refused() {
        let path = std::path::Path::new("p.yaml");
        for (yaml, needle) in [
            ("temperature: -1", "temperature"),
            ("temperature: .nan", "temperature"),
            ("top_p: 7", "top_p"),
            ("top_p: 0", "top_p"),
            ("min_p: 1.5", "min_p"),
            ("top_k: -3", "top_k"),
            ("repeat_penalty: 0", "repeat_penalty"),
            ("max_tokens: 0", "max_tokens"),
        ] {
            let err =
                crate::yaml::from_str::<GenerationParams>(path, &format!("seed: 1\n{yaml}\n"))
                    .unwrap_err()
                    .to_string();
            assert!(
                err.contains(needle) && err.starts_with("p.yaml:"),
                "{yaml}: {err}"
            );
        }
        let fine: GenerationParams =
            crate::yaml::from_str(path, "temperature: 0\ntop_p: 1\nmax_tokens: 1\n").unwrap();
        assert_eq!(fine.max_tokens, Some(1));
    }

    #[test]
    fn later_layer_wins_only_where_set() {
        let model = GenerationParams {
            temperature: Some(0.7),
            max_tokens: Some(100),
            ..Default::default()
        };
        let prompt = GenerationParams {
            max_tokens: Some(20),
            stop: Some(vec!["\n".into()]),
            ..Default::default()
        };
        let merged = model.overlay(&prompt).resolve();
        assert_eq!(merged.temperature, 0.7);
        assert_eq!(merged.max_tokens, 20);
        assert_eq!(merged.stop, vec!["\n".to_string()]);
        assert_eq!(merged.seed, SamplingParams::default().seed);
    }
}
