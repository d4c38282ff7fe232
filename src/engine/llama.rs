//! GGUF models through llama.cpp (`llama-cpp-2`). The model is memory-mapped and loaded
//! once; each batch gets one context. Chat prompts are rendered with the chat template
//! embedded in the GGUF (see `chat_template`), and JSON schemas become llama.cpp grammars
//! so constrained output always parses.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::OnceLock;

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::logit_bias::LlamaLogitBias;
use llama_cpp_2::{LogOptions, json_schema_to_grammar, send_logs_to_tracing};

pub mod device;
pub mod embed;
mod grammar;
mod pool;
pub mod probe;
mod scheduler;

use llama_cpp_2::token::LlamaToken;

use super::chat_template::ChatTemplate;
use super::{
    Capabilities, Engine, EngineError, Flow, GenerationEvent, GenerationRequest, RequestFeed,
};
use crate::gguf::GgufInfo;
use crate::prompt::RenderedPrompt;
use pool::Pool;
use scheduler::{Queued, Scheduler};

/// Context size used when the catalog does not set one (capped by the model's own).
pub const DEFAULT_CONTEXT: u32 = 4096;
const BATCH_SIZE: u32 = 512;
/// Sequences decoded together by default: on 2–4 cores, throughput grows up to about
/// eight sequences and flattens after.
pub const DEFAULT_PARALLEL: u32 = 8;

/// Model files up to this size run as one instance per core when their cells or
/// questions come in batches (an instance's weights are mapped once and shared; its KV
/// cache and scratch buffers are its own). Larger models are bound by memory bandwidth,
/// which more instances do not add.
pub const SMALL_MODEL_BYTES: u64 = 1 << 30;

/// How many llama.cpp instances of `entry` to run on `threads` threads for `batches`
/// batches of work: one per thread for a small model, never more than batches; one for
/// anything else (mistral.rs, remote and vision models have their own concurrency).
/// On 2 cores, two single-threaded SmolLM2 instances finish a batched eval 1.2–1.3×
/// sooner than one instance on both cores, whose threads wait for each other at every
/// layer. Outputs do not change: the kernels are batch- and thread-invariant.
pub fn instances(entry: &crate::catalog::ModelEntry, threads: usize, batches: usize) -> usize {
    if !entry.runs_on_llama_cpp() {
        return 1;
    }
    let small = std::fs::metadata(&entry.path).is_ok_and(|m| m.len() <= SMALL_MODEL_BYTES);
    if !small {
        return 1;
    }
    threads.min(batches).max(1)
}

/// Architectures whose outputs were measured identical at any `--parallel` (byte for
/// byte against one sequence at a time; `benches/invariance.sh`,
/// `tests/integration/batch_invariance.rs`). Another architecture may use kernels these
/// did not (mixture-of-experts products, sliding windows), so a run at `--parallel` above 1
/// on it says its outputs can differ.
pub const BATCH_INVARIANT_ARCHITECTURES: &[&str] = &["llama", "gemma3", "qwen2"];

/// The architecture of a catalog model run by this engine whose batched outputs can
/// differ from one sequence at a time (None for every other model).
pub fn not_batch_invariant(entry: &crate::catalog::ModelEntry) -> Option<String> {
    if !entry.runs_on_llama_cpp() {
        return None;
    }
    crate::gguf::GgufInfo::read(&entry.path)
        .ok()?
        .architecture()
        .filter(|a| !BATCH_INVARIANT_ARCHITECTURES.contains(a))
        .map(str::to_string)
}
/// Tokens the repeat penalty looks back over.
const PENALTY_WINDOW: i32 = 64;

#[derive(Debug, Clone, Default)]
pub struct LlamaOptions {
    /// Context window per sequence.
    pub context_size: Option<u32>,
    /// Requests decoded together (continuous batching); default [`DEFAULT_PARALLEL`].
    pub parallel: Option<u32>,
    /// CPU threads; defaults to the number of cores.
    pub threads: Option<u32>,
    /// Keep each slot's KV cache for the next call, whose prompts then decode only what
    /// follows the longest start they share with a slot: a conversation that grows turn
    /// by turn (the agent, the playground, a server's clients) re-reads only its new
    /// messages. The pool is then sized for whole context windows.
    pub keep_conversation: bool,
    /// Layers on a GPU (`gpu_layers` in models.yaml); unset: all, when there is a GPU.
    pub gpu_layers: Option<crate::catalog::GpuLayers>,
    /// The one device to use, by llama.cpp's name (`device` in models.yaml).
    pub device: Option<String>,
}

impl LlamaOptions {
    /// One conversation at a time (the playground, the agent): a single sequence, all cores.
    pub fn one_conversation(context_size: Option<u32>) -> LlamaOptions {
        LlamaOptions {
            context_size,
            parallel: Some(1),
            threads: None,
            keep_conversation: true,
            ..LlamaOptions::default()
        }
    }
}

/// llama.cpp is initialised once per process; its logs go to `tracing`, never to the
/// terminal, so they cannot scribble over a progress bar or the TUI.
fn backend() -> Result<&'static LlamaBackend, EngineError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            keep_matmul_kernels_batch_invariant();
            send_logs_to_tracing(LogOptions::default());
            #[cfg(feature = "dynamic-backends")]
            load_backends_beside_the_binary();
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EngineError::Load(format!("cannot initialise llama.cpp: {e}")))
}

/// A `dynamic-backends` build's CPU variants and GPU backends are shared libraries that
/// build.rs puts beside the binary, leaving out the variants promptlab must not use (AMX:
/// see build.rs); ggml loads the best CPU variant for this machine and every GPU backend
/// from that folder only (its default search would also read the build's own folder, which
/// still has them). `GGML_BACKEND_PATH` adds one more backend, as in llama.cpp.
#[cfg(feature = "dynamic-backends")]
fn load_backends_beside_the_binary() {
    let folder = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .and_then(|dir| std::ffi::CString::new(dir.to_string_lossy().into_owned()).ok());
    // SAFETY: called once, before llama.cpp is initialised; the path outlives the call.
    unsafe {
        match &folder {
            Some(dir) => llama_cpp_sys_2::ggml_backend_load_all_from_path(dir.as_ptr()),
            None => llama_cpp_sys_2::ggml_backend_load_all(),
        }
    }
}

/// ggml multiplies K-quant weights (Q2_K–Q6_K, IQ) by 8 or more rows with a tiled kernel and
/// by fewer with per-row dot products, which round differently: Qwen2.5's Q6_K `ffn_down`
/// gave a sequence other logits beside 7 others than alone. `GGML_CPU_TILED_MM=0` keeps
/// every product on the dot products; measured on Qwen2.5-Coder-0.5B it was also the
/// fastest setting (tiled for every row count was slower one at a time, and no faster
/// batched). ggml reads the variable once, at its first product; one set by the user wins.
fn keep_matmul_kernels_batch_invariant() {
    const TILED: &str = "GGML_CPU_TILED_MM";
    if std::env::var_os(TILED).is_none() {
        // SAFETY: this runs once, before llama.cpp starts and so before any of its threads
        // could read the environment; Rust's own readers take the environment lock.
        unsafe { std::env::set_var(TILED, "0") };
    }
}

/// The llama.cpp grammar that forces output to follow `schema`.
pub fn schema_to_grammar(schema: &serde_json::Value) -> Result<String, EngineError> {
    json_schema_to_grammar(&schema.to_string()).map_err(|e| {
        EngineError::Schema(format!(
            "llama.cpp cannot turn it into a grammar ({e}); check `$ref`s and unsupported keywords"
        ))
    })
}

pub fn default_threads() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

/// A model's vocabulary without its weights: counts the tokens of a prompt the way the
/// engine would, in a few milliseconds and megabytes (for previews while editing).
pub struct Tokenizer {
    model: LlamaModel,
    bos_text: Option<String>,
}

impl Tokenizer {
    pub fn load(path: &Path) -> Result<Tokenizer, EngineError> {
        let info = GgufInfo::read(path).map_err(|e| EngineError::Load(e.to_string()))?;
        probe::check(path)?;
        let params = LlamaModelParams::default().with_vocab_only(true);
        let model = LlamaModel::load_from_file(backend()?, path, &params).map_err(|e| {
            EngineError::Load(format!(
                "{}: llama.cpp cannot read its vocabulary: {e}",
                path.display()
            ))
        })?;
        Ok(Tokenizer {
            model,
            bos_text: info.bos_token(),
        })
    }

    /// Tokens of `text`, a prompt after the chat template; a BOS the template wrote is
    /// counted once, as generation does.
    pub fn count(&self, text: &str) -> usize {
        let bos = self.bos_text.as_deref().unwrap_or("");
        let text = if !bos.is_empty() && self.model.vocab().should_add_bos() {
            text.strip_prefix(bos).unwrap_or(text)
        } else {
            text
        };
        self.model
            .vocab()
            .tokenize(text.as_bytes(), true, true)
            .len()
    }
}

type KeptPool<'m> = RefCell<Option<Pool<'m>>>;

self_cell::self_cell!(
    /// The model, and the pool of slots kept for the next call (which borrows the model).
    struct ModelCell {
        owner: LlamaModel,
        #[not_covariant]
        dependent: KeptPool,
    }
);

pub struct LlamaEngine {
    cell: ModelCell,
    keep_conversation: bool,
    chat_template: Option<ChatTemplate>,
    bos_text: Option<String>,
    context_size: u32,
    threads: i32,
    parallel: u32,
    /// Where the layers are, as `device::placement_text` says it.
    runs_on: String,
    offload_note: Option<String>,
}

impl LlamaEngine {
    /// Validates the GGUF header (so a truncated or corrupt file gets a clear error
    /// instead of reaching llama.cpp), then memory-maps the model.
    pub fn load(path: &Path, options: &LlamaOptions) -> Result<LlamaEngine, EngineError> {
        let info = GgufInfo::read(path).map_err(|e| EngineError::Load(e.to_string()))?;
        probe::check(path)?;
        let backend = backend()?;
        let offload = crate::catalog::LocalModel {
            gpu_layers: options.gpu_layers,
            device: options.device.clone(),
            ..Default::default()
        };
        let plan = device::plan(&offload, device::devices()?)
            .map_err(|e| EngineError::Load(format!("{}: {e}", path.display())))?;
        // On the CPU, weights stay in llama.cpp's plain layout, memory-mapped: repacking is
        // compiled out (`GGML_CPU_REPACK=OFF` in .cargo/config.toml), for batch invariance.
        // An empty device list keeps every op on the CPU even when a GPU is present.
        let only: Vec<usize> = plan.only_device.into_iter().collect();
        let params = LlamaModelParams::default()
            .with_n_gpu_layers(plan.gpu_layers)
            .with_devices(&only)
            .map_err(|e| EngineError::Load(format!("{}: {e}", path.display())))?;
        let model = LlamaModel::load_from_file(backend, path, &params).map_err(|e| {
            EngineError::Load(format!(
                "{}: llama.cpp could not load the model: {e}",
                path.display()
            ))
        })?;
        let runs_on =
            device::placement_text(&plan, model.n_layer(), device::cpu_features().as_deref());
        let bos = info.bos_token();
        let chat_template = info.chat_template().map(|source| {
            ChatTemplate::new(
                source,
                bos.clone().unwrap_or_default(),
                info.eos_token().unwrap_or_default(),
            )
        });
        let trained = model.n_ctx_train().max(1);
        let context_size = options.context_size.unwrap_or(DEFAULT_CONTEXT).min(trained);
        let threads = options.threads.unwrap_or_else(default_threads).max(1) as i32;
        Ok(LlamaEngine {
            cell: ModelCell::new(model, |_| RefCell::new(None)),
            keep_conversation: options.keep_conversation,
            chat_template,
            bos_text: bos,
            context_size,
            threads,
            parallel: options.parallel.unwrap_or(DEFAULT_PARALLEL).max(1),
            runs_on,
            offload_note: plan.note,
        })
    }

    fn model(&self) -> &LlamaModel {
        self.cell.borrow_owner()
    }

    /// The prompt's tokens, checked against the context window.
    fn prepare(&self, request: &GenerationRequest) -> Result<Vec<LlamaToken>, EngineError> {
        let text = self.render_prompt(&request.prompt)?;
        let tokens = self.tokenize(&text);
        if tokens.is_empty() {
            Err(EngineError::Generation("the prompt is empty".into()))
        } else if tokens.len() >= self.context_size as usize {
            Err(EngineError::PromptTooLong {
                prompt_tokens: tokens.len(),
                context_size: self.context_size,
            })
        } else {
            Ok(tokens)
        }
    }

    /// Runs the scheduler on a pool of `slots` streams of `cells` cells: the kept one when
    /// it is large enough, else a new one (kept afterwards when conversations are kept).
    fn schedule(
        &self,
        slots: usize,
        cells: u32,
        queue: VecDeque<Queued>,
        feed: Option<&mut (dyn RequestFeed + '_)>,
        on_event: &mut dyn FnMut(GenerationEvent) -> Flow,
    ) {
        let keep = self.keep_conversation;
        // A kept pool has room for whole conversations, so it can serve any later call.
        let (slots, cells) = if keep {
            (self.parallel as usize, self.context_size)
        } else {
            (slots, cells)
        };
        self.cell.with_dependent(|model, kept| {
            let mut kept = kept.borrow_mut();
            if kept.as_ref().is_some_and(|pool| !pool.fits(slots, cells)) {
                // Free the old context before allocating the larger one.
                *kept = None;
            }
            if kept.is_none() {
                match Pool::new(model, slots as u32, cells, self.threads) {
                    Ok(pool) => *kept = Some(pool),
                    Err(err) => {
                        for queued in &queue {
                            let event = GenerationEvent::Finished(queued.index, Err(err.clone()));
                            if on_event(event) == Flow::Stop {
                                return;
                            }
                        }
                        return;
                    }
                }
            }
            let Some(pool) = kept.as_mut() else {
                return;
            };
            let taken = queue.len();
            Scheduler {
                engine: self,
                pool,
                queue,
                feed,
                taken,
                context_size: self.context_size as usize,
            }
            .run(on_event);
            if !keep {
                // A batch's pool is sized for it; kept, it would only hold memory.
                *kept = None;
            }
        });
    }

    fn tokenize(&self, text: &str) -> Vec<llama_cpp_2::token::LlamaToken> {
        self.model().vocab().tokenize(text.as_bytes(), true, true)
    }

    /// The request's sampler chain, and its grammar sampler kept apart: checking one
    /// token against a grammar is cheap, masking the whole vocabulary is not, so the
    /// grammar is only applied in full when the chain's choice breaks it.
    fn sampler(
        &self,
        request: &GenerationRequest,
    ) -> Result<(LlamaSampler, Option<LlamaSampler>), EngineError> {
        if request.tools.is_some() {
            return Err(EngineError::Generation(
                "llama.cpp models get their tools through their own chat template, not a server's tool API".into(),
            ));
        }
        let p = &request.params;
        let mut chain = Vec::new();
        let source = match (&request.schema, &request.grammar) {
            (Some(_), Some(_)) => {
                return Err(EngineError::Schema(
                    "a request takes a JSON schema or a grammar, not both".into(),
                ));
            }
            (Some(schema), None) => Some(schema_to_grammar(schema)?),
            (None, grammar) => grammar.clone(),
        };
        if let Some(source) = &source {
            grammar::check_repetitions(source)
                .map_err(|e| EngineError::Schema(format!("grammar rejected: {e}")))?;
        }
        let grammar = match source {
            Some(source) => Some(
                LlamaSampler::grammar(self.model(), &source, "root")
                    .map_err(|e| EngineError::Schema(format!("grammar rejected: {e}")))?,
            ),
            None => None,
        };
        if p.ignore_eos {
            let vocab = self.model().vocab();
            let banned: Vec<LlamaLogitBias> = vocab
                .tokens()
                .filter(|t| vocab.is_eog(*t))
                .map(|t| LlamaLogitBias::new(t, f32::NEG_INFINITY))
                .collect();
            chain.push(LlamaSampler::logit_bias(self.model().n_vocab(), &banned));
        }
        if p.repeat_penalty != 1.0 {
            chain.push(LlamaSampler::penalties(
                self.model().n_vocab(),
                PENALTY_WINDOW,
                p.repeat_penalty,
                0.0,
                0.0,
            ));
        }
        if p.temperature <= 0.0 {
            chain.push(LlamaSampler::greedy());
        } else {
            chain.push(LlamaSampler::top_k(p.top_k));
            chain.push(LlamaSampler::top_p(p.top_p, 1));
            chain.push(LlamaSampler::min_p(p.min_p, 1));
            chain.push(LlamaSampler::temp(p.temperature));
            chain.push(LlamaSampler::dist(p.seed));
        }
        Ok((LlamaSampler::chain_simple(chain), grammar))
    }
}

/// Moves the longest valid UTF-8 prefix out of `pending`; a token may end mid-character.
fn take_utf8(pending: &mut Vec<u8>) -> String {
    let valid = match std::str::from_utf8(pending) {
        Ok(s) => s.len(),
        Err(e) if e.error_len().is_some() => {
            // Invalid bytes, not just an unfinished character: keep them visible.
            let text = String::from_utf8_lossy(pending).into_owned();
            pending.clear();
            return text;
        }
        Err(e) => e.valid_up_to(),
    };
    let rest = pending.split_off(valid);
    String::from_utf8(std::mem::replace(pending, rest)).unwrap_or_default()
}

fn floor_char(s: &str, mut index: usize) -> usize {
    while index > 0 && !s.is_char_boundary(index) {
        index -= 1;
    }
    index
}

impl Engine for LlamaEngine {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            chat_template: self.chat_template.is_some(),
            grammar: true,
            parallel_sequences: self.parallel,
            context_size: self.context_size,
            tool_calls: false,
            image_input: false,
            embeddings: false,
            runs_on: Some(self.runs_on.clone()),
            offload_note: self.offload_note.clone(),
        }
    }

    fn render_prompt(&self, prompt: &RenderedPrompt) -> Result<String, EngineError> {
        match prompt {
            RenderedPrompt::Completion(text) => Ok(text.clone()),
            RenderedPrompt::Chat(messages) | RenderedPrompt::Promptfoo { messages, .. } => {
                let template = self.chat_template.as_ref().ok_or_else(|| {
                    EngineError::ChatTemplate("the model has no chat template".into())
                })?;
                let text = template
                    .render(messages, true)
                    .map_err(|f| EngineError::ChatTemplate(f.to_string()))?;
                // Tokenizing adds BOS itself when the model wants one; a template that
                // also writes it would double it (llama.cpp's server strips it the same way).
                let bos = self.bos_text.as_deref().unwrap_or("");
                if !bos.is_empty()
                    && self.model().vocab().should_add_bos()
                    && let Some(rest) = text.strip_prefix(bos)
                {
                    return Ok(rest.to_string());
                }
                Ok(text)
            }
        }
    }

    fn count_tokens(&self, text: &str) -> Result<usize, EngineError> {
        Ok(self.tokenize(text).len())
    }

    fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }

    fn generate_batch(
        &mut self,
        requests: &[GenerationRequest],
        on_event: &mut dyn FnMut(GenerationEvent) -> Flow,
    ) {
        // Render and tokenize everything first: prompts that cannot run fail at once, and
        // the pool is sized for the longest sequence before it exists.
        let mut queue = VecDeque::with_capacity(requests.len());
        for (index, request) in requests.iter().enumerate() {
            match self.prepare(request) {
                Ok(tokens) => queue.push_back(Queued {
                    index,
                    request: request.clone(),
                    tokens,
                }),
                Err(err) => {
                    if on_event(GenerationEvent::Finished(index, Err(err))) == Flow::Stop {
                        return;
                    }
                }
            }
        }
        if queue.is_empty() {
            return;
        }
        let longest = queue
            .iter()
            .map(|q| q.tokens.len() + q.request.params.max_tokens as usize)
            .max()
            .unwrap_or(0)
            .min(self.context_size as usize);
        let slots = (self.parallel as usize).clamp(1, queue.len());
        self.schedule(slots, longest as u32, queue, None, on_event);
    }

    fn generate_feed(
        &mut self,
        feed: &mut dyn RequestFeed,
        on_event: &mut dyn FnMut(GenerationEvent) -> Flow,
    ) {
        // Requests of any length may come: every slot can hold a whole context window.
        self.schedule(
            self.parallel as usize,
            self.context_size,
            VecDeque::new(),
            Some(feed),
            on_event,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_split_across_tokens_is_held_back() {
        let mut pending = "é".as_bytes()[..1].to_vec();
        assert_eq!(take_utf8(&mut pending), "");
        pending.extend(&"é".as_bytes()[1..]);
        pending.extend(b"x");
        assert_eq!(take_utf8(&mut pending), "éx");
        assert!(pending.is_empty());
    }
}
