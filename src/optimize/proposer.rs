//! The proposer: any catalog model (local GGUF or an OpenAI-compatible server) asked to
//! write new prompt versions. A round's requests go to it as one batch.

use crate::catalog::ModelRef;
use crate::engine::{
    self, CancelToken, EngineError, EngineWorker, GenerationEvent, GenerationRequest, OpenOptions,
    WorkerEvent,
};
use crate::params::SamplingParams;
use crate::prompt::{ChatMessage, RenderedPrompt};

pub struct Proposer {
    pub name: String,
    worker: EngineWorker,
}

/// What the proposer is asked, and how freely it may answer.
#[derive(Debug, Clone)]
pub struct Ask {
    pub messages: Vec<ChatMessage>,
    pub seed: u32,
    pub temperature: f32,
    pub max_tokens: u32,
    /// A llama.cpp grammar the reply must follow (local models and llama-server).
    pub grammar: Option<String>,
}

impl Proposer {
    pub fn open(model: &ModelRef, threads: Option<u32>) -> Result<Proposer, EngineError> {
        let worker = engine::open(model, &OpenOptions::batch(threads, None))?;
        Ok(Proposer {
            name: model.name.clone(),
            worker,
        })
    }

    /// Every ask's reply (or why there is none), in order.
    pub fn ask(&self, asks: &[Ask], cancel: &CancelToken) -> Vec<Result<String, String>> {
        let requests: Vec<GenerationRequest> = asks
            .iter()
            .map(|ask| GenerationRequest {
                prompt: RenderedPrompt::Chat(ask.messages.clone()),
                params: SamplingParams {
                    temperature: ask.temperature,
                    max_tokens: ask.max_tokens,
                    seed: ask.seed,
                    ..SamplingParams::default()
                },
                schema: None,
                grammar: ask.grammar.clone(),
                tools: None,
            })
            .collect();
        let mut replies: Vec<Result<String, String>> =
            vec![Err("the proposer stopped before answering".into()); asks.len()];
        let events = self.worker.generate(requests, cancel.clone());
        for event in events {
            match event {
                WorkerEvent::BatchDone => break,
                WorkerEvent::Generation(GenerationEvent::Finished(index, outcome)) => {
                    if let Some(slot) = replies.get_mut(index) {
                        *slot = match outcome {
                            Ok(generation) => Ok(generation.text),
                            Err(err) => Err(err.to_string()),
                        };
                    }
                }
                WorkerEvent::Generation(_) => {}
            }
        }
        replies
    }
}

/// The instruction in a proposer's reply: between `<instruction>` tags (a reply cut off
/// before its closing tag has none), else the `instruction` field of a JSON reply, else
/// the whole reply without code fences (servers that ignore the grammar).
pub fn instruction_from(reply: &str) -> Option<String> {
    let trimmed = reply.trim();
    if let Some((_, rest)) = trimmed.split_once("<instruction>") {
        let (inside, _) = rest.split_once("</instruction>")?;
        return Some(inside.trim().to_string()).filter(|t| !t.is_empty());
    }
    if let Some(json) = crate::score::first_json(trimmed)
        && let Some(text) = json.get("instruction").and_then(|v| v.as_str())
    {
        return Some(text.trim().to_string()).filter(|t| !t.is_empty());
    }
    if trimmed.starts_with('{') {
        return None;
    }
    let unfenced = trimmed
        .trim_start_matches("```text")
        .trim_start_matches("```")
        .trim_end_matches("```")
        .trim();
    Some(unfenced.to_string()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instruction_comes_from_json_or_plain_text() {
        assert_eq!(
            instruction_from(r#"{"instruction": " Be brief. "}"#).as_deref(),
            Some("Be brief.")
        );
        assert_eq!(
            instruction_from("```\nBe brief.\n```").as_deref(),
            Some("Be brief.")
        );
        assert_eq!(instruction_from(r#"{"instruction": "#), None);
        assert_eq!(
            instruction_from(
                "<instruction>\nAnswer with {\"sentiment\": \"positive\"}.\n</instruction>"
            )
            .as_deref(),
            Some("Answer with {\"sentiment\": \"positive\"}.")
        );
        assert_eq!(instruction_from("<instruction>cut off by max_tokens"), None);
        assert_eq!(instruction_from("  "), None);
    }
}
