//! The echo engine returns the rendered prompt as its output (promptfoo's `echo`,
//! aichat's dry run). It makes template and assertion tests exact and instant; it never
//! replaces tests on a real model.

use std::time::Instant;

use super::{
    Capabilities, Engine, EngineError, FinishReason, Flow, Generation, GenerationEvent,
    GenerationRequest,
};
use crate::prompt::RenderedPrompt;

#[derive(Debug, Default)]
pub struct EchoEngine;

impl Engine for EchoEngine {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            chat_template: true,
            grammar: false,
            parallel_sequences: 1,
            context_size: 0,
            tool_calls: false,
            image_input: false,
            embeddings: false,
            runs_on: None,
            offload_note: None,
        }
    }

    fn render_prompt(&self, prompt: &RenderedPrompt) -> Result<String, EngineError> {
        Ok(prompt.to_plain_text())
    }

    /// Whitespace-separated words stand in for tokens.
    fn count_tokens(&self, text: &str) -> Result<usize, EngineError> {
        Ok(text.split_whitespace().count())
    }

    fn generate_batch(
        &mut self,
        requests: &[GenerationRequest],
        on_event: &mut dyn FnMut(GenerationEvent) -> Flow,
    ) {
        for (index, request) in requests.iter().enumerate() {
            let start = Instant::now();
            if on_event(GenerationEvent::Started(index)) == Flow::Stop {
                return;
            }
            let mut text = match &request.prompt {
                // promptfoo's echo returns the rendered prompt text, JSON chats included.
                RenderedPrompt::Promptfoo { text, .. } => text.clone(),
                // As promptfoo's echo: a prompt that is one user message comes back as its text.
                RenderedPrompt::Chat(messages)
                    if messages.len() == 1 && messages[0].role == "user" =>
                {
                    messages[0].content.clone()
                }
                prompt => prompt.to_plain_text(),
            };
            let mut finish = FinishReason::EndOfText;
            if let Some(cut) = super::cut_at_stop(&text, &request.params.stop) {
                text.truncate(cut);
                finish = FinishReason::StopSequence;
            }
            let tokens = text.split_whitespace().count() as u32;
            let elapsed = start.elapsed().as_secs_f64() * 1000.0;
            let generation = Generation {
                text,
                finish,
                prompt_tokens: tokens,
                completion_tokens: tokens,
                ttft_ms: elapsed,
                total_ms: elapsed,
                prompt_tokens_per_s: None,
                tokens_per_s: None,
                cached_prompt_tokens: 0,
                logprobs: None,
            };
            if on_event(GenerationEvent::Finished(index, Ok(generation))) == Flow::Stop {
                return;
            }
        }
    }
}
