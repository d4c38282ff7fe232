//! GGUF models through llama.cpp (`llama-cpp-2`). The model is memory-mapped and loaded
//! once; each batch gets one context. Chat prompts are rendered with the chat template
//! embedded in the GGUF (see `chat_template`), and JSON schemas become llama.cpp grammars
//! so constrained output always parses.

use std::cell::RefCell;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::OnceLock;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::logit_bias::LlamaLogitBias;
use llama_cpp_2::{LogOptions, json_schema_to_grammar, send_logs_to_tracing};

pub mod embed;
mod scheduler;

use llama_cpp_2::token::LlamaToken;

use super::chat_template::ChatTemplate;
use super::{Capabilities, Engine, EngineError, Flow, GenerationEvent, GenerationRequest};
use crate::gguf::GgufInfo;
use crate::prompt::RenderedPrompt;

/// Context size used when the catalog does not set one (capped by the model's own).
pub const DEFAULT_CONTEXT: u32 = 4096;
const BATCH_SIZE: u32 = 512;
/// Sequences decoded together by default: on 2–4 cores, throughput grows up to about
/// eight sequences and flattens after.
pub const DEFAULT_PARALLEL: u32 = 8;
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
    /// Keep the KV cache of a lone request for the next one, which then decodes only
    /// what follows their common start: a conversation that grows turn by turn (the
    /// agent, the playground) re-reads only its new messages.
    pub keep_conversation: bool,
}

impl LlamaOptions {
    /// One conversation at a time (the playground, the agent): a single sequence, all cores.
    pub fn one_conversation(context_size: Option<u32>) -> LlamaOptions {
        LlamaOptions {
            context_size,
            parallel: Some(1),
            threads: None,
            keep_conversation: true,
        }
    }
}

/// llama.cpp is initialised once per process; its logs go to `tracing`, never to the
/// terminal, so they cannot scribble over a progress bar or the TUI.
fn backend() -> Result<&'static LlamaBackend, EngineError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            send_logs_to_tracing(LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EngineError::Load(format!("cannot initialise llama.cpp: {e}")))
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

/// The context kept between lone requests, and the tokens its sequence 0 holds.
struct KeptContext<'m> {
    ctx: LlamaContext<'m>,
    cells: u32,
    tokens: Vec<LlamaToken>,
}

type KeptSlot<'m> = RefCell<Option<KeptContext<'m>>>;

self_cell::self_cell!(
    /// The model, and the context kept for the next request (which borrows the model).
    struct ModelCell {
        owner: LlamaModel,
        #[not_covariant]
        dependent: KeptSlot,
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
}

impl LlamaEngine {
    /// Validates the GGUF header (so a truncated or corrupt file gets a clear error
    /// instead of reaching llama.cpp), then memory-maps the model.
    pub fn load(path: &Path, options: &LlamaOptions) -> Result<LlamaEngine, EngineError> {
        let info = GgufInfo::read(path).map_err(|e| EngineError::Load(e.to_string()))?;
        let backend = backend()?;
        let params = LlamaModelParams::default();
        let model = LlamaModel::load_from_file(backend, path, &params).map_err(|e| {
            EngineError::Load(format!(
                "{}: llama.cpp could not load the model: {e}",
                path.display()
            ))
        })?;
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
        })
    }

    fn model(&self) -> &LlamaModel {
        self.cell.borrow_owner()
    }

    /// A context on `model` whose unified KV cache holds `cells` tokens across `sequences`.
    fn new_context<'m>(
        &self,
        model: &'m LlamaModel,
        cells: u32,
        sequences: u32,
    ) -> Result<LlamaContext<'m>, EngineError> {
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(cells.max(256)))
            .with_n_seq_max(sequences)
            .with_kv_unified(true)
            .with_n_batch(BATCH_SIZE)
            .with_n_ubatch(BATCH_SIZE)
            .with_n_threads(self.threads)
            .with_n_threads_batch(self.threads)
            .with_no_perf(false)
            // llama.cpp's AUTO policy turns flash attention on for CPU; for single-token
            // decoding on these small models it measured ~5% slower (and llama.cpp's own
            // tools default to off on CPU), so it stays off.
            .with_flash_attention_policy(llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED);
        model
            .new_context(backend()?, params)
            .map_err(|e| EngineError::Generation(format!("cannot create a llama.cpp context: {e}")))
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
        }
    }

    fn render_prompt(&self, prompt: &RenderedPrompt) -> Result<String, EngineError> {
        match prompt {
            RenderedPrompt::Completion(text) => Ok(text.clone()),
            RenderedPrompt::Chat(messages) => {
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
        // Render and tokenize everything first: prompts that cannot run fail at once,
        // and the shared prefixes and the KV size are known before the context exists.
        let mut prepared: Vec<Option<Vec<LlamaToken>>> = Vec::with_capacity(requests.len());
        for (i, request) in requests.iter().enumerate() {
            let tokens = self.render_prompt(&request.prompt).and_then(|text| {
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
            });
            match tokens {
                Ok(tokens) => prepared.push(Some(tokens)),
                Err(err) => {
                    prepared.push(None);
                    if on_event(GenerationEvent::Finished(i, Err(err))) == Flow::Stop {
                        return;
                    }
                }
            }
        }
        let views: Vec<Option<&[LlamaToken]>> = prepared.iter().map(|p| p.as_deref()).collect();
        let (groups, group_of) = scheduler::prefix_groups(&views);
        let parallel = (self.parallel as usize).clamp(1, requests.len().max(1));
        // Worst case: every slot holds a whole prompt and its generation (slots of an
        // earlier group keep that group's prefix alive while the next prefix loads), plus
        // the prefix sequence itself.
        let per_slot = requests
            .iter()
            .zip(&prepared)
            .filter_map(|(request, tokens)| {
                tokens
                    .as_ref()
                    .map(|t| t.len() + request.params.max_tokens as usize)
            })
            .max()
            .unwrap_or(0)
            .min(self.context_size as usize);
        let longest_prefix = groups.iter().map(|g| g.len).max().unwrap_or(0);
        let cells = u32::try_from(per_slot * parallel + longest_prefix + BATCH_SIZE as usize)
            .unwrap_or(u32::MAX);
        let keep = self.keep_conversation && requests.len() == 1;
        let prompt: Vec<LlamaToken> = match prepared.first() {
            Some(Some(tokens)) if keep => tokens.clone(),
            _ => Vec::new(),
        };
        let prepared: Vec<Option<scheduler::Prepared>> = prepared
            .into_iter()
            .zip(group_of)
            .map(|(tokens, group)| tokens.map(|tokens| scheduler::Prepared { tokens, group }))
            .collect();
        let this = &*self;
        this.cell.with_dependent(|model, kept_slot| {
            let mut kept = kept_slot.borrow_mut();
            if !keep {
                // A batch gets a context sized for it; a kept one would only hold memory.
                *kept = None;
            }
            let mut fresh = None;
            let outcome = if keep {
                this.kept_context(model, &mut kept, cells, &prompt)
                    .map(|(kept, resume_from)| (&mut kept.ctx, resume_from))
            } else {
                this.new_context(model, cells, parallel as u32 + 1)
                    .map(|ctx| (fresh.insert(ctx), 0))
            };
            let (ctx, resume_from) = match outcome {
                Ok(found) => found,
                Err(err) => {
                    *kept = None;
                    for i in prepared
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| p.is_some())
                        .map(|(i, _)| i)
                    {
                        if on_event(GenerationEvent::Finished(i, Err(err.clone()))) == Flow::Stop {
                            return;
                        }
                    }
                    return;
                }
            };
            let in_cache = scheduler::Scheduler {
                engine: this,
                ctx,
                requests,
                prepared,
                groups,
                parallel,
                context_size: this.context_size as usize,
                keep,
                resume_from,
            }
            .run(on_event);
            if let Some(kept) = kept.as_mut() {
                kept.tokens = in_cache;
            }
        });
    }
}

impl LlamaEngine {
    /// The kept context, made ready for `prompt`: what it holds beyond their common start
    /// is dropped, and the length of that start returned (the prompt's last token is
    /// always decoded again, since sampling needs its logits). A new context, sized for
    /// the whole window so that a growing conversation keeps it, when there is none or
    /// it is too small.
    fn kept_context<'k, 'm>(
        &self,
        model: &'m LlamaModel,
        kept: &'k mut Option<KeptContext<'m>>,
        cells: u32,
        prompt: &[LlamaToken],
    ) -> Result<(&'k mut KeptContext<'m>, usize), EngineError> {
        if kept.as_ref().is_none_or(|k| k.cells < cells) {
            // Free the old context before allocating the larger one.
            *kept = None;
            let cells = cells.max(self.context_size.saturating_add(BATCH_SIZE));
            *kept = Some(KeptContext {
                ctx: self.new_context(model, cells, 2)?,
                cells,
                tokens: Vec::new(),
            });
        }
        let Some(kept) = kept.as_mut() else {
            return Err(EngineError::Generation("no context".into()));
        };
        let common = kept
            .tokens
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count()
            .min(prompt.len().saturating_sub(1));
        let cleared = kept
            .ctx
            .clear_kv_cache_seq(Some(0), Some(common as u32), None)
            .unwrap_or(false)
            && kept
                .ctx
                .clear_kv_cache_seq(Some(1), None, None)
                .unwrap_or(false);
        if !cleared {
            // llama.cpp could not cut the sequence (some model kinds cannot): start over.
            kept.ctx.clear_kv_cache();
            kept.tokens.clear();
            return Ok((kept, 0));
        }
        kept.tokens.truncate(common);
        Ok((kept, common))
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
