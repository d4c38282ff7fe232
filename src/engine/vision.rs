//! Vision models as engines, so an eval set can target them like a language model: the
//! prompt is an image path (made absolute when the run is planned) and the answer is
//! the predicted label (a classifier) or the boxes found as JSON (a detector). Scoring,
//! the matrix, the run store and reports stay the same.

use std::path::Path;
use std::time::Instant;

use super::{
    Capabilities, Engine, EngineError, FinishReason, Flow, Generation, GenerationEvent,
    GenerationRequest,
};
use crate::catalog::DetectSettings;
use crate::prompt::RenderedPrompt;
use crate::vision::detect::{DetectOptions, Detection, Detector};
use crate::vision::image_input;
use crate::vision::train::DigitClassifier;

/// A vision model's answer to one prompt; [`VisionEngine`] does the rest.
pub trait ImageModel {
    /// The answer for a prompt whose first line is an image path.
    fn answer(&mut self, prompt: &str) -> Result<String, EngineError>;
}

/// Any [`ImageModel`] as an engine: one image at a time, answered as one "token".
pub struct VisionEngine<M: ImageModel>(pub M);

impl<M: ImageModel> Engine for VisionEngine<M> {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            chat_template: false,
            grammar: false,
            parallel_sequences: 1,
            context_size: 0,
            tool_calls: false,
            image_input: true,
            embeddings: false,
            runs_on: Some("CPU".to_string()),
            offload_note: None,
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
            let result = self.0.answer(&request.prompt.to_plain_text()).map(|text| {
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                Generation {
                    text,
                    finish: FinishReason::EndOfText,
                    prompt_tokens: 0,
                    completion_tokens: 1,
                    ttft_ms: ms,
                    total_ms: ms,
                    prompt_tokens_per_s: None,
                    tokens_per_s: None,
                    cached_prompt_tokens: 0,
                    logprobs: None,
                }
            });
            if on_event(GenerationEvent::Finished(index, result)) == Flow::Stop {
                return;
            }
        }
    }
}

/// The digit CNN: answers with the class name of the most probable class.
pub struct DigitModel {
    classifier: DigitClassifier,
}

impl DigitModel {
    pub fn load(weights: &Path) -> Result<DigitModel, EngineError> {
        let classifier =
            DigitClassifier::load(weights).map_err(|e| EngineError::Load(e.to_string()))?;
        Ok(DigitModel { classifier })
    }
}

impl ImageModel for DigitModel {
    fn answer(&mut self, text: &str) -> Result<String, EngineError> {
        let size = self.classifier.card.input[1];
        let pixels = image_input::digit_from_file(Path::new(image_line(text)), size)
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

/// A YOLO detector with the catalog entry's filters: answers with
/// `{"objects": [{"label", "confidence", "box": [x1, y1, x2, y2]}]}`.
pub struct DetectModel {
    detector: Detector,
    options: DetectOptions,
}

impl DetectModel {
    pub fn load(
        model: &Path,
        settings: &DetectSettings,
        threads: usize,
    ) -> Result<DetectModel, EngineError> {
        let detector = Detector::load(model, settings.names.as_deref(), None, threads)
            .map_err(|e| EngineError::Load(e.to_string()))?;
        Ok(DetectModel {
            detector,
            options: DetectOptions::from(settings),
        })
    }
}

impl ImageModel for DetectModel {
    fn answer(&mut self, text: &str) -> Result<String, EngineError> {
        let path = Path::new(image_line(text));
        let image = crate::vision::image_input::open_image(path)
            .map_err(|e| EngineError::Generation(e.to_string()))?;
        let (detections, _) = self
            .detector
            .detect(&image, &self.options)
            .map_err(|e| EngineError::Generation(e.to_string()))?;
        Ok(detections_json(&detections))
    }
}

/// Rounded so that the text (which is cached and diffed) does not flicker in the last digits.
pub fn detections_json(detections: &[Detection]) -> String {
    let round = |x: f32, places: i32| {
        let scale = 10f64.powi(places);
        (f64::from(x) * scale).round() / scale
    };
    let objects: Vec<serde_json::Value> = detections
        .iter()
        .map(|d| {
            serde_json::json!({
                "label": d.label,
                "confidence": round(d.confidence, 3),
                "box": d.bbox.map(|v| round(v, 1)),
            })
        })
        .collect();
    serde_json::json!({ "objects": objects }).to_string()
}

/// The image path: the prompt's first line (a CLIP prompt lists labels after it).
fn image_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim()
}

/// CLIP zero-shot: the prompt is the image path and then one candidate label per line;
/// the answer is the label whose caption (the entry's `label_template`) fits best.
pub struct ClipModel {
    model: crate::vision::clip::ZeroShot,
    template: String,
}

impl ClipModel {
    pub fn load(model: &Path, template: String) -> Result<ClipModel, EngineError> {
        let dir = crate::vision::clip::resolve_model(&model.display().to_string())
            .map_err(|e| EngineError::Load(e.to_string()))?;
        let model = crate::vision::clip::ZeroShot::load(&dir)
            .map_err(|e| EngineError::Load(e.to_string()))?;
        Ok(ClipModel { model, template })
    }
}

impl ImageModel for ClipModel {
    fn answer(&mut self, text: &str) -> Result<String, EngineError> {
        let path = Path::new(image_line(text));
        let labels: Vec<String> = text
            .lines()
            .skip(1)
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        if labels.len() < 2 {
            return Err(EngineError::Generation(
                "a CLIP prompt is the image path, then at least two candidate labels, one per line"
                    .into(),
            ));
        }
        let image = crate::vision::image_input::open_image(path)
            .map_err(|e| EngineError::Generation(e.to_string()))?;
        let probabilities = self
            .model
            .classify(&[image], &labels, &self.template)
            .map_err(|e| EngineError::Generation(e.to_string()))?;
        let row = probabilities.into_iter().next().unwrap_or_default();
        let best = row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
        Ok(labels[best].clone())
    }
}
