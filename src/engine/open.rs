//! The one place a catalog entry becomes a running engine: eval, judging, the playground,
//! the agent, `serve` and `bench` all open their models here, so a new engine is its
//! module plus one arm below.

use super::echo::EchoEngine;
use super::llama::{LlamaEngine, LlamaOptions};
use super::vision::{ClipModel, DetectModel, DigitModel, VisionEngine};
use super::{Engine, EngineError, EngineWorker};
use crate::catalog::{EngineChoice, ModelEntry, ModelKind, ModelRef};

/// How the caller will use the engine.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// CPU threads; defaults to every core.
    pub threads: Option<u32>,
    /// Requests decoded together (engines that batch); the engine's default when unset.
    pub parallel: Option<u32>,
    /// Conversations that grow turn by turn (the agent, the playground, a server's
    /// clients): each slot keeps its cache for its next request.
    pub keep_conversation: bool,
}

impl OpenOptions {
    /// A batch of independent prompts (an eval run, a judge).
    pub fn batch(threads: Option<u32>, parallel: Option<u32>) -> OpenOptions {
        OpenOptions {
            threads,
            parallel,
            keep_conversation: false,
        }
    }

    /// `slots` conversations at once, each keeping its cache between its turns.
    pub fn conversations(slots: u32) -> OpenOptions {
        OpenOptions {
            threads: None,
            parallel: Some(slots.max(1)),
            keep_conversation: true,
        }
    }
}

/// Starts the engine for `model` on its own thread: the echo engine, a vision model, a
/// remote server, or a GGUF file through llama.cpp or mistral.rs.
pub fn open(model: &ModelRef, options: &OpenOptions) -> Result<EngineWorker, EngineError> {
    let name = model.name.as_str();
    let Some(entry) = model.entry.clone() else {
        return EngineWorker::spawn(name, || Ok(Box::new(EchoEngine) as Box<dyn Engine>));
    };
    if let Some(command) = entry.not_fetched() {
        return Err(EngineError::Load(format!(
            "`{name}` is not fetched yet ({} is missing): run `{command}`",
            entry.path.display()
        )));
    }
    let options = options.clone();
    let threads = options.threads;
    let load: Box<dyn FnOnce() -> Result<Box<dyn Engine>, EngineError> + Send> = match entry.kind {
        ModelKind::Openai => {
            let settings = entry
                .openai
                .ok_or_else(|| EngineError::Load(format!("`{name}` has no `openai:` settings")))?;
            Box::new(move || Ok(Box::new(super::openai::OpenAiEngine::new(settings)?) as _))
        }
        ModelKind::DigitCnn => {
            Box::new(move || Ok(Box::new(VisionEngine(DigitModel::load(&entry.path)?)) as _))
        }
        ModelKind::Clip => Box::new(move || {
            let template = entry
                .label_template
                .unwrap_or_else(|| "a photo of {}".into());
            Ok(Box::new(VisionEngine(ClipModel::load(&entry.path, template)?)) as _)
        }),
        ModelKind::YoloDetector => Box::new(move || {
            let settings = entry.detect.unwrap_or_default();
            let threads = threads.map_or_else(
                || std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
                |t| t as usize,
            );
            let model = DetectModel::load(&entry.path, &settings, threads)?;
            Ok(Box::new(VisionEngine(model)) as _)
        }),
        ModelKind::Embedding => {
            return Err(EngineError::Load(format!(
                "`{name}` is an embedding model: it scores `similar` assertions and does not generate"
            )));
        }
        ModelKind::Gguf if entry.engine == Some(EngineChoice::Mistralrs) => {
            return mistralrs(name, entry);
        }
        ModelKind::Gguf => Box::new(move || {
            let llama_options = LlamaOptions {
                context_size: entry.context_size,
                threads: options.threads,
                parallel: options.parallel,
                keep_conversation: options.keep_conversation,
            };
            Ok(Box::new(LlamaEngine::load(&entry.path, &llama_options)?) as _)
        }),
    };
    EngineWorker::spawn(name, load)
}

#[cfg(feature = "mistralrs")]
fn mistralrs(name: &str, entry: ModelEntry) -> Result<EngineWorker, EngineError> {
    EngineWorker::spawn(name, move || {
        Ok(Box::new(super::mistralrs::MistralRsEngine::load(&entry.path)?) as Box<dyn Engine>)
    })
}

#[cfg(not(feature = "mistralrs"))]
fn mistralrs(name: &str, _entry: ModelEntry) -> Result<EngineWorker, EngineError> {
    Err(EngineError::Load(format!(
        "`{name}` asks for the mistral.rs engine, but this promptlab was built without it: build with `cargo build --release --features mistralrs`"
    )))
}
