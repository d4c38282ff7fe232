//! Sentence-embedding models as engines (`kind: embedding` in the catalog), opened by
//! [`super::open`] like every other model. A model folder in the Hugging Face BERT layout
//! (all-MiniLM-L6-v2) runs with candle and the `tokenizers` crate, mean-pooled over its
//! tokens and L2-normalised as sentence-transformers does; a `.gguf` embedding model runs
//! with llama.cpp and its own pooling. Such an engine embeds; it does not generate.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};

use super::llama::embed::GgufEmbedder;
use super::{Capabilities, Engine, EngineError, Flow, GenerationEvent, GenerationRequest};
use crate::prompt::RenderedPrompt;

/// sentence-transformers' `max_seq_length` for all-MiniLM-L6-v2.
const DEFAULT_MAX_TOKENS: usize = 256;

pub struct EmbeddingEngine {
    backend: Backend,
}

enum Backend {
    /// Hugging Face layout, run with candle.
    Bert {
        model: Box<BertModel>,
        tokenizer: Box<tokenizers::Tokenizer>,
    },
    /// A GGUF embedding model, run with llama.cpp.
    Gguf(GgufEmbedder),
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> EngineError {
    EngineError::Load(format!("{}: {message}", path.display()))
}

impl EmbeddingEngine {
    /// Loads a model folder in the Hugging Face layout, or a `.gguf` embedding model.
    pub fn load(path: &Path) -> Result<EmbeddingEngine, EngineError> {
        let backend = if path.is_file() {
            Backend::Gguf(GgufEmbedder::load(path)?)
        } else {
            load_bert(path)?
        };
        Ok(EmbeddingEngine { backend })
    }

    /// The L2-normalised embedding of `text`.
    pub fn embed_text(&self, text: &str) -> Result<Vec<f32>, EngineError> {
        let (model, tokenizer) = match &self.backend {
            Backend::Gguf(gguf) => return gguf.embed(text),
            Backend::Bert { model, tokenizer } => (model, tokenizer),
        };
        let fail = |e: candle_core::Error| EngineError::Generation(format!("embedding: {e}"));
        let encoding = tokenizer
            .encode(text, true)
            .map_err(|e| EngineError::Generation(format!("embedding: cannot tokenize: {e}")))?;
        let ids = encoding.get_ids().to_vec();
        let n = ids.len();
        let input = Tensor::from_vec(ids, (1, n), &Device::Cpu).map_err(fail)?;
        let types = input.zeros_like().map_err(fail)?;
        let mask = input.ones_like().map_err(fail)?;
        let hidden = model.forward(&input, &types, Some(&mask)).map_err(fail)?;
        // One sequence, no padding: the masked mean is the plain mean over tokens.
        let pooled = hidden
            .mean(1)
            .and_then(|t| t.squeeze(0))
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(fail)?;
        let norm = pooled.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        Ok(pooled.into_iter().map(|x| x / norm).collect())
    }
}

/// Loads `config.json`, `model.safetensors` and `tokenizer.json` from `dir`.
fn load_bert(dir: &Path) -> Result<Backend, EngineError> {
    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path)
        .map_err(|e| file_error(&config_path, format!("cannot read: {e}")))?;
    let config: Config = serde_json::from_str(&text)
        .map_err(|e| file_error(&config_path, format!("not a BERT config: {e}")))?;
    let weights = dir.join("model.safetensors");
    if !weights.is_file() {
        return Err(file_error(&weights, "not found"));
    }
    // SAFETY: the file is memory-mapped read-only; it must not change while loaded.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &Device::Cpu) }
        .map_err(|e| file_error(&weights, format!("not readable safetensors: {e}")))?;
    let model = BertModel::load(vb, &config).map_err(|e| {
        file_error(
            &weights,
            format!("the weights do not match config.json: {e}"),
        )
    })?;
    let tokenizer_path = dir.join("tokenizer.json");
    let mut tokenizer = tokenizers::Tokenizer::from_file(&tokenizer_path)
        .map_err(|e| file_error(&tokenizer_path, format!("not a tokenizers file: {e}")))?;
    let max_tokens = sentence_max_tokens(dir).min(config.max_position_embeddings);
    // The file pads every input to 128 and truncates there; sentence-transformers
    // embeds unpadded inputs of up to `max_seq_length` tokens.
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(tokenizers::TruncationParams {
            max_length: max_tokens,
            ..Default::default()
        }))
        .map_err(|e| file_error(&tokenizer_path, format!("cannot set truncation: {e}")))?;
    Ok(Backend::Bert {
        model: Box::new(model),
        tokenizer: Box::new(tokenizer),
    })
}

/// `max_seq_length` from sentence-transformers' config, when the folder has it.
fn sentence_max_tokens(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("sentence_bert_config.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| v.get("max_seq_length").and_then(serde_json::Value::as_u64))
        .map_or(DEFAULT_MAX_TOKENS, |n| n as usize)
}

impl Engine for EmbeddingEngine {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            parallel_sequences: 1,
            embeddings: true,
            ..Capabilities::default()
        }
    }

    fn render_prompt(&self, prompt: &RenderedPrompt) -> Result<String, EngineError> {
        Ok(prompt.to_plain_text())
    }

    fn count_tokens(&self, text: &str) -> Result<usize, EngineError> {
        match &self.backend {
            Backend::Bert { tokenizer, .. } => tokenizer
                .encode(text, true)
                .map(|encoding| encoding.len())
                .map_err(|e| EngineError::Generation(format!("cannot tokenize: {e}"))),
            Backend::Gguf(gguf) => Ok(gguf.count_tokens(text)),
        }
    }

    fn generate_batch(
        &mut self,
        requests: &[GenerationRequest],
        on_event: &mut dyn FnMut(GenerationEvent) -> Flow,
    ) {
        for index in 0..requests.len() {
            let refused = Err(EngineError::Generation(
                "an embedding model scores `similar` assertions and does not generate text".into(),
            ));
            if on_event(GenerationEvent::Finished(index, refused)) == Flow::Stop {
                return;
            }
        }
    }

    fn embed(&mut self, text: &str) -> Result<Vec<f32>, EngineError> {
        self.embed_text(text)
    }
}
