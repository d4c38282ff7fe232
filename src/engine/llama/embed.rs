//! Sentence embeddings from a GGUF embedding model (a BERT-family encoder such as
//! all-MiniLM-L6-v2 converted with `scripts/minilm_to_gguf.py`) through llama.cpp: the
//! model's own pooling (read from the GGUF), then L2-normalised.

use std::num::NonZeroU32;
use std::path::Path;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;

use super::{EngineError, backend, default_threads};
use crate::gguf::GgufInfo;

/// sentence-transformers' input limit for MiniLM; longer texts are cut, keeping the
/// closing separator, as its tokenizer does.
pub const MAX_TOKENS: usize = 256;

pub struct GgufEmbedder {
    model: LlamaModel,
    threads: i32,
}

impl GgufEmbedder {
    pub fn load(path: &Path) -> Result<GgufEmbedder, EngineError> {
        let info = GgufInfo::read(path).map_err(|e| EngineError::Load(e.to_string()))?;
        let pooling = info
            .architecture()
            .map(|arch| format!("{arch}.pooling_type"))
            .and_then(|key| info.metadata.get(&key).and_then(|v| v.as_u64()));
        // 0 = none: the model gives per-token vectors, not one per text.
        if pooling.unwrap_or(0) == 0 {
            return Err(EngineError::Load(format!(
                "{}: not an embedding model (its GGUF sets no pooling type); convert a sentence-embedding model, e.g. with scripts/minilm_to_gguf.py",
                path.display()
            )));
        }
        super::probe::check(path)?;
        let model = LlamaModel::load_from_file(backend()?, path, &LlamaModelParams::default())
            .map_err(|e| EngineError::Load(format!("{}: {e}", path.display())))?;
        Ok(GgufEmbedder {
            model,
            threads: default_threads() as i32,
        })
    }

    pub fn count_tokens(&self, text: &str) -> usize {
        self.model
            .vocab()
            .tokenize(text.as_bytes(), true, false)
            .len()
    }

    /// The normalised embedding of `text`.
    pub fn embed(&self, text: &str) -> Result<Vec<f32>, EngineError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            EngineError::Generation(format!("embedding: {what}: {e}"))
        };
        let mut tokens = self.model.vocab().tokenize(text.as_bytes(), true, false);
        if tokens.len() > MAX_TOKENS
            && let Some(&last) = tokens.last()
        {
            tokens.truncate(MAX_TOKENS - 1);
            tokens.push(last);
        }
        let n = tokens.len().max(1) as u32;
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n.max(64)))
            .with_n_batch(n.max(64))
            .with_n_ubatch(n.max(64))
            .with_embeddings(true)
            .with_n_threads(self.threads)
            .with_n_threads_batch(self.threads);
        let mut ctx = self
            .model
            .new_context(backend()?, params)
            .map_err(|e| fail("cannot create a context", &e))?;
        let mut batch = LlamaBatch::new(tokens.len().max(1), 1);
        for (i, token) in tokens.iter().enumerate() {
            batch
                .add(*token, i as i32, &[0], true)
                .map_err(|e| fail("batch", &e))?;
        }
        ctx.encode(&mut batch).map_err(|e| fail("encode", &e))?;
        let pooled = ctx
            .embeddings_seq_ith(0)
            .map_err(|e| fail("no pooled embedding", &e))?;
        let norm = pooled.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        Ok(pooled.iter().map(|x| x / norm).collect())
    }
}
