//! GGUF models through llama.cpp (`llama-cpp-2`). The model is memory-mapped and loaded
//! once; each batch gets one context. Chat prompts are rendered with the chat template
//! embedded in the GGUF (see `chat_template`), and JSON schemas become llama.cpp grammars
//! so constrained output always parses.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::logit_bias::LlamaLogitBias;
use llama_cpp_2::{LogOptions, json_schema_to_grammar, send_logs_to_tracing};

use super::chat_template::ChatTemplate;
use super::{
    Capabilities, Engine, EngineError, FinishReason, Flow, Generation, GenerationEvent,
    GenerationRequest,
};
use crate::gguf::GgufInfo;
use crate::prompt::RenderedPrompt;

/// Context size used when the catalog does not set one (capped by the model's own).
pub const DEFAULT_CONTEXT: u32 = 4096;
const BATCH_SIZE: u32 = 512;
/// Tokens the repeat penalty looks back over.
const PENALTY_WINDOW: i32 = 64;

#[derive(Debug, Clone, Default)]
pub struct LlamaOptions {
    pub context_size: Option<u32>,
    /// CPU threads; defaults to the number of cores.
    pub threads: Option<u32>,
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

pub struct LlamaEngine {
    model: LlamaModel,
    chat_template: Option<ChatTemplate>,
    bos_text: Option<String>,
    context_size: u32,
    threads: i32,
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
            model,
            chat_template,
            bos_text: bos,
            context_size,
            threads,
        })
    }

    fn new_context(&self) -> Result<LlamaContext<'_>, EngineError> {
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(self.context_size))
            .with_n_batch(BATCH_SIZE)
            .with_n_ubatch(BATCH_SIZE)
            .with_n_threads(self.threads)
            .with_n_threads_batch(self.threads)
            .with_no_perf(false)
            // llama.cpp's AUTO policy turns flash attention on for CPU; for single-token
            // decoding on these small models it measured ~5% slower (and llama.cpp's own
            // tools default to off on CPU), so it stays off.
            .with_flash_attention_policy(llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED);
        self.model
            .new_context(backend()?, params)
            .map_err(|e| EngineError::Generation(format!("cannot create a llama.cpp context: {e}")))
    }

    fn tokenize(&self, text: &str) -> Vec<llama_cpp_2::token::LlamaToken> {
        self.model.vocab().tokenize(text.as_bytes(), true, true)
    }

    fn sampler(&self, request: &GenerationRequest) -> Result<LlamaSampler, EngineError> {
        let p = &request.params;
        let mut chain = Vec::new();
        if let Some(schema) = &request.schema {
            let grammar = schema_to_grammar(schema)?;
            chain.push(
                LlamaSampler::grammar(&self.model, &grammar, "root")
                    .map_err(|e| EngineError::Schema(format!("grammar rejected: {e}")))?,
            );
        }
        if p.ignore_eos {
            let vocab = self.model.vocab();
            let banned: Vec<LlamaLogitBias> = vocab
                .tokens()
                .filter(|t| vocab.is_eog(*t))
                .map(|t| LlamaLogitBias::new(t, f32::NEG_INFINITY))
                .collect();
            chain.push(LlamaSampler::logit_bias(self.model.n_vocab(), &banned));
        }
        if p.repeat_penalty != 1.0 {
            chain.push(LlamaSampler::penalties(
                self.model.n_vocab(),
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
        Ok(LlamaSampler::chain_simple(chain))
    }

    fn generate_one(
        &self,
        ctx: &mut LlamaContext<'_>,
        batch: &mut LlamaBatch<'_>,
        request: &GenerationRequest,
        on_token: &mut dyn FnMut(&str) -> Flow,
    ) -> Result<Generation, EngineError> {
        let start = Instant::now();
        let text = self.render_prompt(&request.prompt)?;
        let tokens = self.tokenize(&text);
        let context_size = ctx.n_ctx();
        if tokens.is_empty() {
            return Err(EngineError::Generation("the prompt is empty".into()));
        }
        if tokens.len() >= context_size as usize {
            return Err(EngineError::PromptTooLong {
                prompt_tokens: tokens.len(),
                context_size,
            });
        }
        let mut sampler = self.sampler(request)?;
        let decode_err = |e: llama_cpp_2::DecodeError| EngineError::Generation(e.to_string());
        let add_err =
            |e: llama_cpp_2::llama_batch::BatchAddError| EngineError::Generation(e.to_string());

        ctx.clear_kv_cache();
        let last = tokens.len() - 1;
        for (chunk_index, chunk) in tokens.chunks(BATCH_SIZE as usize).enumerate() {
            batch.clear();
            for (j, token) in chunk.iter().enumerate() {
                let pos = chunk_index * BATCH_SIZE as usize + j;
                batch
                    .add(*token, pos as i32, &[0], pos == last)
                    .map_err(add_err)?;
            }
            ctx.decode(batch).map_err(decode_err)?;
        }
        let prompt_done = Instant::now();

        let vocab = self.model.vocab();
        let stops = &request.params.stop;
        let longest_stop = stops.iter().map(String::len).max().unwrap_or(0);
        let mut output = String::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut pos = tokens.len();
        let mut logits_index = batch.n_tokens() - 1;
        let mut completion_tokens = 0u32;
        let mut first_token_at = None;
        let finish = loop {
            if completion_tokens >= request.params.max_tokens || pos >= context_size as usize {
                break FinishReason::Length;
            }
            // sample() also accepts the token into every sampler (grammar included).
            let token = sampler.sample(ctx, logits_index);
            first_token_at.get_or_insert_with(Instant::now);
            if vocab.is_eog(token) && !request.params.ignore_eos {
                break FinishReason::EndOfText;
            }
            completion_tokens += 1;
            pending.extend(vocab.token_to_piece(token, false, None));
            let piece = take_utf8(&mut pending);
            let searched_from = output.len().saturating_sub(longest_stop);
            output.push_str(&piece);
            if let Some(cut) =
                super::cut_at_stop(&output[floor_char(&output, searched_from)..], stops)
            {
                output.truncate(floor_char(&output, searched_from) + cut);
                break FinishReason::StopSequence;
            }
            if !piece.is_empty() && on_token(&piece) == Flow::Stop {
                break FinishReason::Cancelled;
            }
            // Decoding the last token would only feed logits nobody samples.
            if completion_tokens >= request.params.max_tokens {
                break FinishReason::Length;
            }
            batch.clear();
            batch.add(token, pos as i32, &[0], true).map_err(add_err)?;
            ctx.decode(batch).map_err(decode_err)?;
            pos += 1;
            logits_index = 0;
        };
        if finish != FinishReason::StopSequence {
            output.push_str(&String::from_utf8_lossy(&pending));
        }
        let end = Instant::now();
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        let prompt_secs = (prompt_done - start).as_secs_f64();
        let gen_secs = (end - prompt_done).as_secs_f64();
        Ok(Generation {
            text: output,
            finish,
            prompt_tokens: tokens.len() as u32,
            completion_tokens,
            ttft_ms: ms(first_token_at.unwrap_or(end) - start),
            total_ms: ms(end - start),
            prompt_tokens_per_s: (prompt_secs > 0.0).then(|| tokens.len() as f64 / prompt_secs),
            tokens_per_s: (gen_secs > 0.0 && completion_tokens > 0)
                .then(|| completion_tokens as f64 / gen_secs),
        })
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
            parallel_sequences: 1,
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
                    && self.model.vocab().should_add_bos()
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

    fn generate_batch(
        &mut self,
        requests: &[GenerationRequest],
        on_event: &mut dyn FnMut(GenerationEvent) -> Flow,
    ) {
        let mut ctx = match self.new_context() {
            Ok(ctx) => ctx,
            Err(err) => {
                for i in 0..requests.len() {
                    if on_event(GenerationEvent::Finished(i, Err(err.clone()))) == Flow::Stop {
                        return;
                    }
                }
                return;
            }
        };
        let mut batch = LlamaBatch::new(BATCH_SIZE as usize, 1);
        for (i, request) in requests.iter().enumerate() {
            if on_event(GenerationEvent::Started(i)) == Flow::Stop {
                return;
            }
            let mut stopped = false;
            let result = self.generate_one(&mut ctx, &mut batch, request, &mut |piece| {
                let flow = on_event(GenerationEvent::Token(i, piece.to_string()));
                stopped |= flow == Flow::Stop;
                flow
            });
            if on_event(GenerationEvent::Finished(i, result)) == Flow::Stop || stopped {
                return;
            }
        }
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
