//! What an agent evaluation runs and how each question is asked.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::agent::{AgentLimits, ToolModels};

/// What to run and how each question is asked. Stored with the run, so a resume asks the
/// remaining questions exactly as the first attempt did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentEvalOptions {
    /// Models to compare (empty: the set's `models`).
    pub models: Vec<String>,
    /// Agent prompts to compare, one column each (empty: the set's `prompts`, else the
    /// built-in system prompt).
    pub prompts: Vec<String>,
    /// Only cases with one of these tags.
    pub tags: Vec<String>,
    /// Only the first N cases (after `tags`).
    pub limit: Option<usize>,
    /// Offer only these tools (empty: the prompt's `tools`, else the set's, else all).
    pub tools: Vec<String>,
    pub tool_models: ToolModels,
    pub tool_timeout_s: u64,
    /// Folders the tools may read (empty: the project).
    pub allowed: Vec<PathBuf>,
    /// The system prompt when the set gives none and no agent prompt opens the
    /// conversation (default: the built-in one).
    pub system: Option<String>,
    /// Replies per question, unless the set says `max_steps`.
    pub max_steps: usize,
    pub max_tokens: u32,
    pub max_seconds: u64,
    pub temperature: Option<f32>,
    pub seed: Option<u32>,
    /// Added to every reply's sampling seed: repeat r of `--repeat` runs with offset r.
    pub seed_offset: u32,
    /// Optional number arguments only take numbers written in the question.
    pub ground_numbers: bool,
    /// Questions asked together on a local model, their replies decoded in one batch
    /// (default 8; 1 asks them one after another). The traces are the same either way.
    pub parallel: Option<u32>,
}

impl AgentEvalOptions {
    /// Questions to ask together when `waiting` are left to ask.
    pub fn parallel_questions(&self, waiting: usize) -> usize {
        let parallel = self
            .parallel
            .unwrap_or(crate::engine::llama::DEFAULT_PARALLEL)
            .max(1) as usize;
        parallel.min(waiting).max(1)
    }
}

impl Default for AgentEvalOptions {
    fn default() -> Self {
        let limits = AgentLimits::default();
        AgentEvalOptions {
            models: Vec::new(),
            prompts: Vec::new(),
            tags: Vec::new(),
            limit: None,
            tools: Vec::new(),
            tool_models: ToolModels::default(),
            tool_timeout_s: 60,
            allowed: Vec::new(),
            system: None,
            max_steps: limits.max_steps,
            max_tokens: limits.max_tokens,
            max_seconds: limits.max_wall.as_secs(),
            temperature: None,
            seed: None,
            seed_offset: 0,
            ground_numbers: true,
            parallel: None,
        }
    }
}
