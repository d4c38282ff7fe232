//! What an agent did to answer a question: each step (a tool call with its result, a
//! repeated or unusable reply, the answer), why it stopped, and the tool-call convention
//! it spoke. Plain records, so the run store and reports read them without the agent.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How tool calls are written in the model's replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Convention {
    Hermes,
    Json,
    Native,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepAction {
    ToolCall {
        name: String,
        arguments: Value,
        /// The tool's JSON result, or None when it failed (see `error`).
        result: Option<Value>,
        error: Option<String>,
        tool_ms: f64,
    },
    Answer {
        text: String,
    },
    /// A reply cut short by the token cap, told to the model as an error.
    Malformed {
        error: String,
    },
    /// A call identical to an earlier one: not run again; the model is asked to answer
    /// from the results it has, and its next reply may only be the answer.
    Repeated {
        name: String,
        arguments: Value,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStep {
    pub index: usize,
    /// The model's reply as generated.
    pub reply: String,
    pub action: StepAction,
    pub prompt_tokens: u32,
    /// Prompt tokens not read again: the engine's KV cache still held them.
    #[serde(default)]
    pub cached_prompt_tokens: u32,
    pub generated_tokens: u32,
    pub generation_ms: f64,
    /// From the start of the reply's request to its first token (prompt reading
    /// included); 0 in traces recorded before it was kept.
    #[serde(default)]
    pub ttft_ms: f64,
}

impl AgentStep {
    /// One line: what the step did and what it cost, e.g.
    /// `step 1 · call calculator({"expression":"2+2"}) [12 tokens, 0.8 s; tool 0 ms]`.
    pub fn headline(&self) -> String {
        let number = self.index + 1;
        let timing = format!(
            "{} tokens, {:.1} s",
            self.generated_tokens,
            self.generation_ms / 1000.0
        );
        match &self.action {
            StepAction::ToolCall {
                name,
                arguments,
                tool_ms,
                ..
            } => {
                format!("step {number} · call {name}({arguments}) [{timing}; tool {tool_ms:.0} ms]")
            }
            StepAction::Repeated { name, .. } => format!(
                "step {number} · repeated the call to {name}: not run again, asking for the answer [{timing}]"
            ),
            StepAction::Answer { .. } => format!("step {number} · answer [{timing}]"),
            StepAction::Malformed { error } => {
                format!("step {number} · unusable reply: {error} [{timing}]")
            }
        }
    }

    /// What a tool call gave back, as the model saw it (None for other steps).
    pub fn outcome(&self) -> Option<Result<&Value, &str>> {
        match &self.action {
            StepAction::ToolCall { result, error, .. } => Some(match (result, error) {
                (Some(value), _) => Ok(value),
                (None, error) => Err(error.as_deref().unwrap_or("no result")),
            }),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStop {
    Answered,
    MaxSteps,
    MaxTokens,
    WallTime,
    Cancelled,
    EngineError,
}

impl AgentStop {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStop::Answered => "answered",
            AgentStop::MaxSteps => "max_steps",
            AgentStop::MaxTokens => "max_tokens",
            AgentStop::WallTime => "wall_time",
            AgentStop::Cancelled => "cancelled",
            AgentStop::EngineError => "engine_error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentTrace {
    pub question: String,
    pub convention: Convention,
    pub tools: Vec<String>,
    pub steps: Vec<AgentStep>,
    pub answer: Option<String>,
    pub stop: AgentStop,
    pub error: Option<String>,
    pub total_ms: f64,
}

impl AgentTrace {
    pub fn generated_tokens(&self) -> u32 {
        self.steps.iter().map(|s| s.generated_tokens).sum()
    }

    /// The tool calls in order, as (name, arguments).
    pub fn calls(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.steps.iter().filter_map(|s| match &s.action {
            StepAction::ToolCall {
                name, arguments, ..
            } => Some((name.as_str(), arguments)),
            _ => None,
        })
    }
}
