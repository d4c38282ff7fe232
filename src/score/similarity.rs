//! Semantic similarity for the `similar` assertion: sentence embeddings from a BERT-style
//! model in the Hugging Face layout (all-MiniLM-L6-v2 by default), run with candle and the
//! `tokenizers` crate, mean-pooled over the attention mask and L2-normalised as
//! sentence-transformers does; similarity is the cosine. Loaded models and every text's
//! embedding are kept for the process, so an expected answer is embedded once per run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};

/// sentence-transformers' `max_seq_length` for all-MiniLM-L6-v2.
const DEFAULT_MAX_TOKENS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddingError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("embedding failed: {0}")]
    Compute(String),
}

fn file_error(path: &Path, message: impl Into<String>) -> EmbeddingError {
    EmbeddingError::File {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

pub struct Embedder {
    backend: Backend,
    cache: Mutex<HashMap<String, Arc<Vec<f32>>>>,
}

enum Backend {
    /// Hugging Face layout, run with candle.
    Bert {
        model: Box<BertModel>,
        tokenizer: Box<tokenizers::Tokenizer>,
    },
    /// A GGUF embedding model, run with llama.cpp.
    Gguf(crate::engine::llama::embed::GgufEmbedder),
}

impl Embedder {
    /// Loads a model folder in the Hugging Face layout, or a `.gguf` embedding model.
    pub fn load(path: &Path) -> Result<Embedder, EmbeddingError> {
        if path.is_file() {
            let gguf = crate::engine::llama::embed::GgufEmbedder::load(path)
                .map_err(|e| file_error(path, e.to_string()))?;
            return Ok(Embedder {
                backend: Backend::Gguf(gguf),
                cache: Mutex::new(HashMap::new()),
            });
        }
        Embedder::load_folder(path)
    }

    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` from `dir`.
    fn load_folder(dir: &Path) -> Result<Embedder, EmbeddingError> {
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
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &Device::Cpu) }
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
        Ok(Embedder {
            backend: Backend::Bert {
                model: Box::new(model),
                tokenizer: Box::new(tokenizer),
            },
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The normalised embedding of `text` (computed once, then cached).
    pub fn embed(&self, text: &str) -> Result<Arc<Vec<f32>>, EmbeddingError> {
        if let Some(found) = self.cache.lock().ok().and_then(|c| c.get(text).cloned()) {
            return Ok(found);
        }
        let embedding = Arc::new(self.compute(text)?);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(text.to_string(), embedding.clone());
        }
        Ok(embedding)
    }

    fn compute(&self, text: &str) -> Result<Vec<f32>, EmbeddingError> {
        let (model, tokenizer) = match &self.backend {
            Backend::Gguf(gguf) => {
                return gguf
                    .embed(text)
                    .map_err(|e| EmbeddingError::Compute(e.to_string()));
            }
            Backend::Bert { model, tokenizer } => (model, tokenizer),
        };
        let fail = |e: candle_core::Error| EmbeddingError::Compute(e.to_string());
        let encoding = tokenizer
            .encode(text, true)
            .map_err(|e| EmbeddingError::Compute(format!("cannot tokenize: {e}")))?;
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

    /// Cosine similarity of two texts (-1 to 1).
    pub fn similarity(&self, a: &str, b: &str) -> Result<f64, EmbeddingError> {
        let (x, y) = (self.embed(a)?, self.embed(b)?);
        Ok(x.iter().zip(y.iter()).map(|(p, q)| f64::from(p * q)).sum())
    }
}

/// `max_seq_length` from sentence-transformers' config, when the folder has it.
fn sentence_max_tokens(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("sentence_bert_config.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| v.get("max_seq_length").and_then(serde_json::Value::as_u64))
        .map_or(DEFAULT_MAX_TOKENS, |n| n as usize)
}

static LOADED: LazyLock<Mutex<HashMap<PathBuf, Arc<Embedder>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The embedder for `dir`, loaded on first use and shared by every assertion after.
pub fn embedder(dir: &Path) -> Result<Arc<Embedder>, EmbeddingError> {
    let mut loaded = LOADED
        .lock()
        .map_err(|_| EmbeddingError::Compute("the embedding cache is poisoned".into()))?;
    if let Some(found) = loaded.get(dir) {
        return Ok(found.clone());
    }
    let embedder = Arc::new(Embedder::load(dir)?);
    loaded.insert(dir.to_path_buf(), embedder.clone());
    Ok(embedder)
}
