//! Engines turn rendered prompts into text. The trait is small: generate a batch of
//! requests, streaming events to a callback that can stop generation, and report what the
//! engine can do. Each engine runs on its own OS thread ([`EngineWorker`]); llama.cpp is
//! synchronous and its context borrows its model, so it does not belong on async workers.

pub mod batcher;
pub mod chat_template;
pub mod echo;
pub mod embedding;
pub mod llama;
#[cfg(feature = "mistralrs")]
pub mod mistralrs;
mod open;
pub mod openai;
pub mod vision;
mod worker;

use serde::{Deserialize, Serialize};

use crate::params::SamplingParams;
use crate::prompt::RenderedPrompt;

pub use crate::cancel::CancelToken;
pub use open::{OpenOptions, open};
pub use worker::{EngineWorker, WorkerEvent};

/// Requests that arrive while others generate: a server's clients, an agent's next steps.
/// An engine with continuous batching admits each one at its next decoding step; events
/// name a request by the order it was taken from the feed (0, 1, 2, ...).
pub trait RequestFeed: Send {
    /// The next waiting request, if any. With `wait`, blocks until one arrives; `None`
    /// then means the feed is closed and no more will come.
    fn next_request(&mut self, wait: bool) -> Option<GenerationRequest>;

    /// Whether request `index` is no longer wanted (its client went away): it stops at its
    /// next token, finishing as cancelled.
    fn abandoned(&self, _index: usize) -> bool {
        false
    }
}

/// One generation to perform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationRequest {
    pub prompt: RenderedPrompt,
    pub params: SamplingParams,
    /// JSON Schema the output must follow; enforced by a grammar where the engine can.
    pub schema: Option<serde_json::Value>,
    /// A llama.cpp (GBNF) grammar with a `root` rule, for output that is not one JSON
    /// value (an agent's tool call in tags, or a plain answer). Not with `schema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grammar: Option<String>,
    /// Tools offered through the server's own tool-calling API, for engines that call
    /// tools themselves (see [`Capabilities::tool_calls`]); local engines refuse it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<ToolOffer>,
}

/// An agent step sent to a server that handles tools (OpenAI `tools`): the whole
/// conversation in OpenAI form, with its assistant `tool_calls` and `tool` results, and the
/// tool specs. A call the server makes comes back in the generation's text as
/// `<tool_call>\n{"name": …, "arguments": …}\n</tool_call>`, the form the agent reads
/// from local Hermes models, so traces look the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolOffer {
    pub conversation: Vec<serde_json::Value>,
    pub tools: Vec<serde_json::Value>,
    /// No more calls: the reply must be the answer (`tool_choice: "none"`).
    pub must_answer: bool,
    /// `tool_choice` sent as it is, over `must_answer` (an eval cell's provider setting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choice: Option<serde_json::Value>,
    /// How calls come back: the first as Hermes `<tool_call>` text (the agent's steps),
    /// or all of them as OpenAI `tool_calls` JSON (an eval cell, as promptfoo's output).
    #[serde(default, skip_serializing_if = "is_hermes")]
    pub calls: CallsAs,
}

/// The form a reply's tool calls take in the generation's text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallsAs {
    /// The first call, as `<tool_call>\n{"name": …, "arguments": …}\n</tool_call>`.
    #[default]
    Hermes,
    /// Every call as an OpenAI `tool_calls` array; with text beside the calls, the whole
    /// assistant message (`{"role", "content", "tool_calls"}`).
    OpenAi,
}

fn is_hermes(calls: &CallsAs) -> bool {
    *calls == CallsAs::Hermes
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model produced an end-of-generation token.
    EndOfText,
    /// A stop sequence appeared; it is not part of the text.
    StopSequence,
    /// `max_tokens` was reached.
    Length,
    /// The caller asked to stop.
    Cancelled,
}

/// The result of one generation, with the measurements recorded per cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub text: String,
    pub finish: FinishReason,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// From the start of the request to the first generated token.
    pub ttft_ms: f64,
    pub total_ms: f64,
    /// Prompt tokens per second during prompt processing.
    pub prompt_tokens_per_s: Option<f64>,
    /// Generated tokens per second, after the first token.
    pub tokens_per_s: Option<f64>,
    /// Prompt tokens not decoded for this request: already in the KV cache, shared with
    /// the batch's other prompts or kept from the previous request.
    #[serde(default)]
    pub cached_prompt_tokens: u32,
    /// Each generated token's natural-log probability under the model (before sampling
    /// settings), when the request asked for them (`SamplingParams::logprobs`) and the
    /// engine reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<f64>>,
}

impl Generation {
    /// A generation stopped by the caller, with the text it had so far.
    pub fn cancelled(text: String) -> Generation {
        Generation {
            text,
            finish: FinishReason::Cancelled,
            prompt_tokens: 0,
            completion_tokens: 0,
            ttft_ms: 0.0,
            total_ms: 0.0,
            prompt_tokens_per_s: None,
            tokens_per_s: None,
            cached_prompt_tokens: 0,
            logprobs: None,
        }
    }
}

/// What an engine supports, so callers can check a configuration before running it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Capabilities {
    /// The model carries a chat template, so chat prompts can be rendered.
    pub chat_template: bool,
    /// Output can be constrained by a JSON Schema grammar.
    pub grammar: bool,
    /// Sequences that can be decoded together in one batch.
    pub parallel_sequences: u32,
    /// Context window in tokens (0 when unlimited).
    pub context_size: u32,
    /// Takes [`GenerationRequest::tools`]: the model's server renders the tools and parses
    /// the calls, so the agent needs no local chat template. Local engines refuse tools.
    pub tool_calls: bool,
    /// Reads an image (its path is the prompt's first line) rather than text.
    pub image_input: bool,
    /// Turns a text into a sentence embedding ([`Engine::embed`]) instead of generating.
    #[serde(default)]
    pub embeddings: bool,
    /// Where the model runs, for people: `CPU (AVX2)`, `Vulkan0 (…): all 30 layers`
    /// (local engines; None for a remote server or the echo engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_on: Option<String>,
    /// Why a model that asked for a GPU runs on the CPU (a build without GPU support, a
    /// GPU the driver does not show).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offload_note: Option<String>,
}

/// An event from a batch generation, tagged with the request's index in the batch.
#[derive(Debug, Clone, PartialEq)]
pub enum GenerationEvent {
    Started(usize),
    Token(usize, String),
    Finished(usize, Result<Generation, EngineError>),
}

/// What the event callback tells the engine to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Load(String),
    /// llama.cpp crashed loading the file, in the child process that tried it first
    /// (`engine::llama::probe`): the file will not load, however often it is tried.
    #[error("{0}")]
    LoadCrashed(String),
    #[error(
        "model `{model}` has no chat template, so it cannot run the chat prompt `{prompt}`: use a `completion:` prompt for base models"
    )]
    NoChatTemplate { model: String, prompt: String },
    #[error("chat template: {0}")]
    ChatTemplate(String),
    #[error(
        "prompt has {prompt_tokens} tokens but the context holds {context_size}: raise `context_size` in models.yaml or shorten the prompt"
    )]
    PromptTooLong {
        prompt_tokens: usize,
        context_size: u32,
    },
    #[error("invalid JSON schema for grammar: {0}")]
    Schema(String),
    #[error("generation failed: {0}")]
    Generation(String),
    #[error("the engine thread stopped unexpectedly: {0}")]
    Crashed(String),
}

pub trait Engine {
    fn capabilities(&self) -> Capabilities;

    /// The exact text the model will see for `prompt` (after the chat template).
    fn render_prompt(&self, prompt: &RenderedPrompt) -> Result<String, EngineError>;

    /// Number of tokens `text` takes for this model.
    fn count_tokens(&self, text: &str) -> Result<usize, EngineError>;

    /// The model's own chat template, for callers that render conversations themselves
    /// (the agent, whose messages carry tool calls).
    fn chat_template(&self) -> Option<&chat_template::ChatTemplate> {
        None
    }

    /// The L2-normalised sentence embedding of `text`, from an engine whose capabilities
    /// say `embeddings`.
    fn embed(&mut self, _text: &str) -> Result<Vec<f32>, EngineError> {
        Err(EngineError::Generation(
            "this model does not embed text: the `similar` assertion needs a `kind: embedding` model".into(),
        ))
    }

    /// Generates every request, reporting progress through `on_event`. Returning
    /// [`Flow::Stop`] from the callback cancels: the request in progress finishes with
    /// [`FinishReason::Cancelled`] and the requests not yet started are not reported.
    fn generate_batch(
        &mut self,
        requests: &[GenerationRequest],
        on_event: &mut dyn FnMut(GenerationEvent) -> Flow,
    );

    /// Generates every request `feed` yields until it closes. Engines with continuous
    /// batching admit a request at the next step; this default takes whatever is waiting
    /// as one batch, then the next. [`Flow::Stop`] ends the feed's run.
    fn generate_feed(
        &mut self,
        feed: &mut dyn RequestFeed,
        on_event: &mut dyn FnMut(GenerationEvent) -> Flow,
    ) {
        let mut taken = 0;
        while let Some(first) = feed.next_request(true) {
            let mut batch = vec![first];
            let limit = self.capabilities().parallel_sequences.max(1) as usize;
            while batch.len() < limit {
                match feed.next_request(false) {
                    Some(next) => batch.push(next),
                    None => break,
                }
            }
            let offset = taken;
            taken += batch.len();
            let mut stopped = false;
            self.generate_batch(&batch, &mut |event| {
                let event = match event {
                    GenerationEvent::Started(i) => GenerationEvent::Started(offset + i),
                    GenerationEvent::Token(i, text) => GenerationEvent::Token(offset + i, text),
                    GenerationEvent::Finished(i, outcome) => {
                        GenerationEvent::Finished(offset + i, outcome)
                    }
                };
                // An abandoned request runs on here (stopping would stop its whole
                // batch); nobody hears of it.
                if feed.abandoned(event.index()) {
                    return Flow::Continue;
                }
                let flow = on_event(event);
                stopped |= flow == Flow::Stop;
                flow
            });
            if stopped {
                return;
            }
        }
    }
}

/// One request at a time, with its events: what a conversation (the agent) needs of a
/// model, whether it has an engine worker to itself ([`EngineWorker`]) or shares one with
/// other conversations through a [`batcher::Batcher`] ([`batcher::SharedModel`]).
pub trait Generator {
    /// The model's chat template, for callers that render conversations themselves.
    fn chat_template(&self) -> Option<&chat_template::ChatTemplate>;

    /// Whether the model takes [`GenerationRequest::tools`] (see [`Capabilities::tool_calls`]).
    fn calls_tools_itself(&self) -> bool;

    /// Generates `request`; its events carry index 0.
    fn generate(
        &mut self,
        request: &GenerationRequest,
        on_event: &mut dyn FnMut(GenerationEvent) -> Flow,
    );
}

impl GenerationEvent {
    /// The request the event is about.
    pub fn index(&self) -> usize {
        match self {
            GenerationEvent::Started(i)
            | GenerationEvent::Token(i, _)
            | GenerationEvent::Finished(i, _) => *i,
        }
    }
}

/// Cuts `text` at the earliest stop sequence, if one occurs.
pub fn cut_at_stop(text: &str, stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_stop_wins() {
        let stops = vec!["\n\n".to_string(), "END".to_string(), String::new()];
        assert_eq!(cut_at_stop("abc END x\n\n", &stops), Some(4));
        assert_eq!(cut_at_stop("abc", &stops), None);
    }
}
