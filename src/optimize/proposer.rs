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

/// The instruction in a proposer's reply: between `<instruction>` tags, else the
/// `instruction` field of a JSON reply, else the whole reply without code fences (servers
/// that ignore the grammar); or why there is none.
pub fn instruction_from(reply: &str) -> Result<String, String> {
    let trimmed = reply.trim();
    let found = if let Some((_, rest)) = trimmed.split_once("<instruction>") {
        let Some((inside, _)) = rest.split_once("</instruction>") else {
            return Err(
                "the proposer's reply was cut off before </instruction> (it ran out of tokens)"
                    .into(),
            );
        };
        inside.trim().to_string()
    } else if let Some(json) = crate::score::first_json(trimmed)
        && let Some(text) = json.get("instruction").and_then(|v| v.as_str())
    {
        text.trim().to_string()
    } else if trimmed.starts_with('{') {
        return Err("the proposer's reply is JSON without an `instruction`".into());
    } else {
        trimmed
            .trim_start_matches("```text")
            .trim_start_matches("```")
            .trim_end_matches("```")
            .trim()
            .to_string()
    };
    if found.is_empty() {
        Err("the proposer's reply holds an empty instruction".into())
    } else {
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instruction_comes_from_json_or_plain_text() {
        assert_eq!(
            instruction_from(r#"{"instruction": " Be brief. "}"#).as_deref(),
            Ok("Be brief.")
        );
        assert_eq!(
            instruction_from("```\nBe brief.\n```").as_deref(),
            Ok("Be brief.")
        );
        assert!(instruction_from(r#"{"instruction": "#).is_err());
        assert_eq!(
            instruction_from(
                "<instruction>\nAnswer with {\"sentiment\": \"positive\"}.\n</instruction>"
            )
            .as_deref(),
            Ok("Answer with {\"sentiment\": \"positive\"}.")
        );
        assert!(
            instruction_from("<instruction>cut off by max_tokens")
                .unwrap_err()
                .contains("cut off")
        );
        assert!(instruction_from("  ").is_err());
    }
}
