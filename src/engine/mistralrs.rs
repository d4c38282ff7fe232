//! mistral.rs as a second local engine for GGUF chat models (cargo feature `mistralrs`).
//! It runs the same requests as llama.cpp through the same [`Engine`] trait, so the two
//! can be compared on one model in one run.
//!
//! mistral.rs reads only some GGUF architectures and panics on others (gemma3, measured),
//! so the architecture is checked from the header before loading, and every call into it
//! is guarded: a panic becomes the request's error, never a crash.
//!
//! Requests run one at a time. mistral.rs 0.8.1 batches concurrent requests itself, but
//! on CPU without paged attention the batched sequences share state: three prompts
//! submitted together all came back with the last one's answer ("Lis of Kenya is
//! Nairobi." for France), while the same prompts one at a time were answered correctly.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::Instant;

use futures_util::FutureExt;
use mistralrs::{
    Constraint, GgufModelBuilder, Model, RequestBuilder, SamplingParams as MrsSampling, StopTokens,
    TextMessageRole,
};

use super::chat_template::ChatTemplate;
use super::{
    Capabilities, Engine, EngineError, FinishReason, Flow, Generation, GenerationEvent,
    GenerationRequest, cut_at_stop,
};
use crate::gguf::GgufInfo;
use crate::prompt::RenderedPrompt;

/// GGUF architectures mistral.rs 0.8 loads (its quantized model families).
pub const SUPPORTED_ARCHITECTURES: &[&str] = &[
    "llama",
    "mistral3",
    "phi2",
    "phi3",
    "starcoder2",
    "qwen2",
    "qwen3",
];

pub struct MistralRsEngine {
    runtime: tokio::runtime::Runtime,
    model: Model,
    chat_template: Option<ChatTemplate>,
    /// The end-of-text tokens of this vocabulary that llguidance may force once a JSON
    /// schema is satisfied (see [`grammar_end_tokens`]).
    grammar_end_tokens: Vec<String>,
    runs_on: &'static str,
    offload_note: Option<String>,
}

/// Token texts llguidance takes as end of text (its `toktrie_hf_tokenizers` list).
const LLGUIDANCE_EOS_NAMES: &[&str] = &["</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>"];

/// Which of llguidance's end-of-text names are single tokens in this model's vocabulary.
/// Once a JSON schema is complete llguidance allows only its end-of-text token, which is
/// not always the token mistral.rs stops on (SmolLM2: `<|endoftext|>` against the chat's
/// `<|im_end|>`), so without this a finished object ran on, invisibly, to `max_tokens`.
fn grammar_end_tokens(runtime: &tokio::runtime::Runtime, model: &Model) -> Vec<String> {
    LLGUIDANCE_EOS_NAMES
        .iter()
        .filter(|name| {
            let tokens = runtime.block_on(
                AssertUnwindSafe(model.tokenize(
                    either::Either::Right(name.to_string()),
                    None,
                    false,
                    false,
                    None,
                ))
                .catch_unwind(),
            );
            matches!(tokens, Ok(Ok(ids)) if ids.len() == 1)
        })
        .map(|name| name.to_string())
        .collect()
}

/// `schema` with llguidance told to allow no whitespace between JSON tokens. By default
/// it allows any run of it, and a small model can spend its whole `max_tokens` on
/// newlines, leaving the object unfinished (seen on CI). llama.cpp's grammars already
/// bound whitespace. A schema that sets its own `x-guidance` options keeps them.
fn without_free_whitespace(schema: &serde_json::Value) -> serde_json::Value {
    let mut schema = schema.clone();
    if let Some(object) = schema.as_object_mut() {
        object.entry("x-guidance").or_insert_with(|| {
            serde_json::json!({
                "whitespace_flexible": false,
                "item_separator": ", ",
                "key_separator": ": ",
            })
        });
    }
    schema
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl MistralRsEngine {
    /// Loads the model on the CPU, or on mistral.rs's own choice of GPU when `gpu_layers`
    /// asks for one and this build has one (`--features cuda` or `metal`): mistral.rs
    /// places whole models, so any count above zero means all of them.
    pub fn load(
        path: &Path,
        gpu_layers: Option<crate::catalog::GpuLayers>,
    ) -> Result<MistralRsEngine, EngineError> {
        // A path that does not exist would be taken for a hub repo id.
        if !path.is_file() {
            return Err(EngineError::Load(format!(
                "{}: no such model file",
                path.display()
            )));
        }
        let info = GgufInfo::read(path).map_err(|e| EngineError::Load(e.to_string()))?;
        let architecture = info.architecture().unwrap_or("unknown").to_string();
        if !SUPPORTED_ARCHITECTURES.contains(&architecture.as_str()) {
            return Err(EngineError::Load(format!(
                "{}: mistral.rs cannot run the `{architecture}` architecture (it reads {}); use the llama.cpp engine for this model",
                path.display(),
                SUPPORTED_ARCHITECTURES.join(", ")
            )));
        }
        let chat_template = info.chat_template().map(|source| {
            ChatTemplate::new(
                source,
                info.bos_token().unwrap_or_default(),
                info.eos_token().unwrap_or_default(),
            )
        });
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let dir: PathBuf = absolute
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let file = absolute
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| EngineError::Load(format!("cannot start a runtime: {e}")))?;
        let gpu = gpu_layers.unwrap_or_default().offloads()
            && (cfg!(feature = "cuda") || cfg!(feature = "metal"));
        let mut builder =
            GgufModelBuilder::new(dir.display().to_string(), vec![file]).with_max_num_seqs(1);
        if !gpu {
            builder = builder.with_force_cpu();
        }
        let model = runtime
            .block_on(AssertUnwindSafe(builder.build()).catch_unwind())
            .map_err(|panic| {
                EngineError::Load(format!(
                    "{}: mistral.rs failed while loading: {}",
                    path.display(),
                    panic_text(panic.as_ref())
                ))
            })?
            .map_err(|e| {
                EngineError::Load(format!(
                    "{}: mistral.rs cannot load it: {e}",
                    path.display()
                ))
            })?;
        let grammar_end_tokens = grammar_end_tokens(&runtime, &model);
        Ok(MistralRsEngine {
            runtime,
            model,
            chat_template,
            grammar_end_tokens,
            runs_on: if gpu { "GPU (mistral.rs)" } else { "CPU" },
            offload_note: gpu_layers
                .filter(|layers| layers.offloads() && !gpu)
                .map(|layers| format!("asks for `gpu_layers: {layers}`, but this promptlab's mistral.rs was built without GPU support (build it with `--features mistralrs,cuda` or `mistralrs,metal`): it runs on the CPU")),
        })
    }

    fn request(&self, request: &GenerationRequest) -> Result<RequestBuilder, EngineError> {
        let RenderedPrompt::Chat(messages) = &request.prompt else {
            return Err(EngineError::Generation(
                "the mistral.rs engine runs chat prompts only; use llama.cpp for `completion:` prompts".into(),
            ));
        };
        if request.grammar.is_some() || request.tools.is_some() {
            return Err(EngineError::Generation(
                "the mistral.rs engine takes JSON schemas, not GBNF grammars or tool offers".into(),
            ));
        }
        let mut builder = RequestBuilder::new();
        for message in messages {
            let role = match message.role.as_str() {
                "system" => TextMessageRole::System,
                "assistant" => TextMessageRole::Assistant,
                "user" => TextMessageRole::User,
                other => TextMessageRole::Custom(other.to_string()),
            };
            builder = builder.add_message(role, &message.content);
        }
        let p = &request.params;
        let mut stop = p.stop.clone();
        if request.schema.is_some() {
            stop.extend(self.grammar_end_tokens.iter().cloned());
        }
        let greedy = p.temperature <= 0.0;
        let sampling = MrsSampling {
            temperature: (!greedy).then_some(f64::from(p.temperature)),
            top_k: if greedy {
                Some(1)
            } else {
                usize::try_from(p.top_k).ok().filter(|k| *k > 0)
            },
            top_p: (!greedy).then_some(f64::from(p.top_p)),
            min_p: (!greedy).then_some(f64::from(p.min_p)),
            top_n_logprobs: 0,
            frequency_penalty: None,
            presence_penalty: None,
            repetition_penalty: (p.repeat_penalty != 1.0).then_some(p.repeat_penalty),
            stop_toks: (!stop.is_empty()).then_some(StopTokens::Seqs(stop)),
            max_len: Some(p.max_tokens as usize),
            logits_bias: None,
            n_choices: 1,
            dry_params: None,
        };
        builder = builder.set_sampling(sampling);
        if let Some(schema) = &request.schema {
            builder =
                builder.set_constraint(Constraint::JsonSchema(without_free_whitespace(schema)));
        }
        Ok(builder)
    }

    async fn run_one(
        &self,
        index: usize,
        request: &GenerationRequest,
    ) -> (usize, Result<Generation, EngineError>) {
        let builder = match self.request(request) {
            Ok(builder) => builder,
            Err(err) => return (index, Err(err)),
        };
        let start = Instant::now();
        let outcome = AssertUnwindSafe(self.model.send_chat_request(builder))
            .catch_unwind()
            .await;
        let response = match outcome {
            Err(panic) => {
                return (
                    index,
                    Err(EngineError::Crashed(format!(
                        "mistral.rs panicked: {}",
                        panic_text(panic.as_ref())
                    ))),
                );
            }
            Ok(Err(err)) => return (index, Err(EngineError::Generation(err.to_string()))),
            Ok(Ok(response)) => response,
        };
        let total = start.elapsed().as_secs_f64() * 1000.0;
        let Some(choice) = response.choices.first() else {
            return (
                index,
                Err(EngineError::Generation(
                    "mistral.rs returned no choice".into(),
                )),
            );
        };
        let mut text = choice.message.content.clone().unwrap_or_default();
        let mut finish = match choice.finish_reason.as_str() {
            "length" => FinishReason::Length,
            _ => FinishReason::EndOfText,
        };
        if let Some(cut) = cut_at_stop(&text, &request.params.stop) {
            text.truncate(cut);
            finish = FinishReason::StopSequence;
        }
        let usage = &response.usage;
        let prompt_ms = f64::from(usage.total_prompt_time_sec) * 1000.0;
        let rate = |r: f32| (r.is_finite() && r > 0.0).then_some(f64::from(r));
        (
            index,
            Ok(Generation {
                text,
                finish,
                prompt_tokens: u32::try_from(usage.prompt_tokens).unwrap_or(u32::MAX),
                completion_tokens: u32::try_from(usage.completion_tokens).unwrap_or(u32::MAX),
                ttft_ms: if prompt_ms > 0.0 { prompt_ms } else { total },
                total_ms: total,
                prompt_tokens_per_s: rate(usage.avg_prompt_tok_per_sec),
                tokens_per_s: rate(usage.avg_compl_tok_per_sec),
                cached_prompt_tokens: 0,
                logprobs: None,
            }),
        )
    }
}

impl Engine for MistralRsEngine {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            chat_template: self.chat_template.is_some(),
            grammar: true,
            parallel_sequences: 1,
            context_size: 0,
            tool_calls: false,
            image_input: false,
            embeddings: false,
            runs_on: Some(self.runs_on.to_string()),
            offload_note: self.offload_note.clone(),
        }
    }

    fn render_prompt(&self, prompt: &RenderedPrompt) -> Result<String, EngineError> {
        match prompt {
            RenderedPrompt::Completion(text) => Ok(text.clone()),
            RenderedPrompt::Chat(messages) | RenderedPrompt::Promptfoo { messages, .. } => self
                .chat_template
                .as_ref()
                .ok_or_else(|| EngineError::ChatTemplate("the model has no chat template".into()))?
                .render(messages, true)
                .map_err(|f| EngineError::ChatTemplate(f.to_string())),
        }
    }

    fn count_tokens(&self, text: &str) -> Result<usize, EngineError> {
        let tokens = self
            .runtime
            .block_on(
                AssertUnwindSafe(self.model.tokenize(
                    either::Either::Right(text.to_string()),
                    None,
                    false,
                    false,
                    None,
                ))
                .catch_unwind(),
            )
            .map_err(|panic| EngineError::Crashed(panic_text(panic.as_ref())))?
            .map_err(|e| EngineError::Generation(e.to_string()))?;
        Ok(tokens.len())
    }

    fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }

    fn generate_batch(
        &mut self,
        requests: &[GenerationRequest],
        on_event: &mut dyn FnMut(GenerationEvent) -> Flow,
    ) {
        let this = &*self;
        this.runtime.block_on(async {
            for (index, request) in requests.iter().enumerate() {
                if on_event(GenerationEvent::Started(index)) == Flow::Stop {
                    on_event(GenerationEvent::Finished(
                        index,
                        Ok(Generation::cancelled(String::new())),
                    ));
                    return;
                }
                let (_, outcome) = this.run_one(index, request).await;
                if let Ok(generation) = &outcome
                    && !generation.text.is_empty()
                {
                    // Replies arrive whole: one token event carries the text for live views.
                    let _ = on_event(GenerationEvent::Token(index, generation.text.clone()));
                }
                if on_event(GenerationEvent::Finished(index, outcome)) == Flow::Stop {
                    return;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::without_free_whitespace;
    use serde_json::json;

    #[test]
    fn schemas_get_fixed_separators_unless_they_choose_their_own() {
        let plain = without_free_whitespace(&json!({"type": "object"}));
        assert_eq!(plain["x-guidance"]["whitespace_flexible"], json!(false));
        assert_eq!(plain["type"], json!("object"));

        let own = json!({"type": "object", "x-guidance": {"whitespace_flexible": true}});
        assert_eq!(without_free_whitespace(&own), own);
    }
}
