//! The one place a catalog entry becomes a running engine: eval, judging, the playground,
//! the agent, `serve`, `bench` and the `similar` assertion's embeddings all open their
//! models here, so a new engine is its module plus one arm below.

use super::echo::EchoEngine;
use super::llama::{LlamaEngine, LlamaOptions};
use super::vision::{ClipModel, DetectModel, DigitModel, VisionEngine};
use super::{Engine, EngineError, EngineWorker};
use crate::catalog::{EngineChoice, GpuLayers, KindSettings, ModelRef};

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
    /// `--gpu-layers`: layers of a GGUF model put on a GPU, over the catalog's `gpu_layers`.
    pub gpu_layers: Option<GpuLayers>,
}

impl OpenOptions {
    /// A batch of independent prompts (an eval run, a judge).
    pub fn batch(threads: Option<u32>, parallel: Option<u32>) -> OpenOptions {
        OpenOptions {
            threads,
            parallel,
            keep_conversation: false,
            gpu_layers: None,
        }
    }

    /// The same, with `--gpu-layers` (None: as the catalog says).
    pub fn with_gpu_layers(mut self, gpu_layers: Option<GpuLayers>) -> OpenOptions {
        self.gpu_layers = gpu_layers.or(self.gpu_layers);
        self
    }

    /// `slots` conversations at once, each keeping its cache between its turns.
    pub fn conversations(slots: u32) -> OpenOptions {
        OpenOptions {
            threads: None,
            parallel: Some(slots.max(1)),
            keep_conversation: true,
            gpu_layers: None,
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
    let gpu_override = options.gpu_layers;
    let path = entry.path.clone();
    let load: Box<dyn FnOnce() -> Result<Box<dyn Engine>, EngineError> + Send> =
        match entry.settings {
            KindSettings::Openai { servers, .. } => {
                Box::new(move || Ok(Box::new(super::openai::OpenAiEngine::new(servers)?) as _))
            }
            KindSettings::DigitCnn => {
                Box::new(move || Ok(Box::new(VisionEngine(DigitModel::load(&path)?)) as _))
            }
            KindSettings::Clip { label_template } => Box::new(move || {
                let template = label_template.unwrap_or_else(|| "a photo of {}".into());
                Ok(Box::new(VisionEngine(ClipModel::load(&path, template)?)) as _)
            }),
            KindSettings::YoloDetector(settings) => Box::new(move || {
                let threads = threads.map_or_else(
                    || std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
                    |t| t as usize,
                );
                let model = DetectModel::load(&path, &settings, threads)?;
                Ok(Box::new(VisionEngine(model)) as _)
            }),
            KindSettings::Embedding => {
                Box::new(move || Ok(Box::new(super::embedding::EmbeddingEngine::load(&path)?) as _))
            }
            KindSettings::Gguf(local) if local.engine == EngineChoice::Mistralrs => {
                return mistralrs(name, path, gpu_override.or(local.gpu_layers));
            }
            KindSettings::Gguf(local) => Box::new(move || {
                let llama_options = LlamaOptions {
                    context_size: local.context_size,
                    threads: options.threads,
                    parallel: options.parallel,
                    keep_conversation: options.keep_conversation,
                    gpu_layers: gpu_override.or(local.gpu_layers),
                    device: local.device,
                };
                Ok(Box::new(LlamaEngine::load(&path, &llama_options)?) as _)
            }),
        };
    EngineWorker::spawn(name, load)
}

#[cfg(feature = "mistralrs")]
fn mistralrs(
    name: &str,
    path: std::path::PathBuf,
    gpu_layers: Option<crate::catalog::GpuLayers>,
) -> Result<EngineWorker, EngineError> {
    EngineWorker::spawn(name, move || {
        Ok(
            Box::new(super::mistralrs::MistralRsEngine::load(&path, gpu_layers)?)
                as Box<dyn Engine>,
        )
    })
}

#[cfg(not(feature = "mistralrs"))]
fn mistralrs(
    name: &str,
    _path: std::path::PathBuf,
    _gpu_layers: Option<crate::catalog::GpuLayers>,
) -> Result<EngineWorker, EngineError> {
    Err(EngineError::Load(format!(
        "`{name}` asks for the mistral.rs engine, but this promptlab was built without it: build with `cargo build --release --features mistralrs`"
    )))
}
