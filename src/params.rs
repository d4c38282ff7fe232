//! Generation parameters. They are layered: model catalog defaults, then the prompt file,
//! then the prompt variant; a later layer overrides only the keys it sets.

use serde::{Deserialize, Serialize};

/// Parameters as written in YAML: every key optional so layers can be merged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
