//! Vision models as engines, so an eval set can target them like a language model: the
//! prompt is an image path (made absolute when the run is planned) and the answer is
//! the predicted label. Scoring, the matrix, the run store and reports stay the same.

use std::path::Path;
use std::time::Instant;

use super::{
    Capabilities, Engine, EngineError, FinishReason, Flow, Generation, GenerationEvent,
    GenerationRequest,
};
use crate::prompt::RenderedPrompt;
use crate::vision::image_input;
use crate::vision::train::DigitClassifier;

/// The digit CNN: answers with the class name of the most probable class.
pub struct DigitEngine {
    classifier: DigitClassifier,
}

impl DigitEngine {
    pub fn load(weights: &Path) -> Result<DigitEngine, EngineError> {
        let classifier =
            DigitClassifier::load(weights).map_err(|e| EngineError::Load(e.to_string()))?;
        Ok(DigitEngine { classifier })
    }

    fn classify(&self, prompt: &RenderedPrompt) -> Result<String, EngineError> {
        let path = prompt.to_plain_text();
        let size = self.classifier.card.input[1];
        let pixels = image_input::digit_from_file(Path::new(path.trim()), size)
            .map_err(|e| EngineError::Generation(e.to_string()))?;
        let probabilities = self
            .classifier
            .predict(&pixels)
            .map_err(|e| EngineError::Generation(e.to_string()))?;
        let best = probabilities
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
        Ok(self.classifier.card.classes[best].clone())
    }
}

impl Engine for DigitEngine {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            chat_template: false,
            grammar: false,
            parallel_sequences: 1,
            context_size: 0,
        }
    }

    fn render_prompt(&self, prompt: &RenderedPrompt) -> Result<String, EngineError> {
        Ok(prompt.to_plain_text())
    }

    fn count_tokens(&self, _text: &str) -> Result<usize, EngineError> {
        Ok(0)
    }

    fn generate_batch(
        &mut self,
        requests: &[GenerationRequest],
        on_event: &mut dyn FnMut(GenerationEvent) -> Flow,
    ) {
        for (index, request) in requests.iter().enumerate() {
            if on_event(GenerationEvent::Started(index)) == Flow::Stop {
                return;
            }
            let started = Instant::now();
            let result = self.classify(&request.prompt).map(|label| {
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                Generation {
                    text: label,
                    finish: FinishReason::EndOfText,
                    prompt_tokens: 0,
                    completion_tokens: 1,
                    ttft_ms: ms,
                    total_ms: ms,
                    prompt_tokens_per_s: None,
                    tokens_per_s: None,
                }
            });
            if on_event(GenerationEvent::Finished(index, result)) == Flow::Stop {
                return;
            }
        }
    }
}
