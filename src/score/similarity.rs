//! Semantic similarity for the `similar` assertion: the cosine of two sentence
//! embeddings from a `kind: embedding` model (all-MiniLM-L6-v2 by default), which runs as
//! an engine like every other model (`engine::embedding`). Loaded models and every text's
//! embedding are kept for the process, so an expected answer is embedded once per run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use crate::catalog::{KindSettings, ModelEntry, ModelRef};
use crate::engine::{EngineError, EngineWorker, OpenOptions};

#[derive(Debug, thiserror::Error)]
pub enum EmbeddingError {
    #[error("{path}: {source}")]
    Load {
        path: PathBuf,
        #[source]
        source: EngineError,
    },
    #[error("embedding failed: {0}")]
    Compute(String),
}

/// An embedding model on its engine thread, with the embeddings it has computed.
pub struct Embedder {
    worker: Mutex<EngineWorker>,
    cache: Mutex<HashMap<String, Arc<Vec<f32>>>>,
}

impl Embedder {
    /// Opens a model folder in the Hugging Face layout, or a `.gguf` embedding model.
    pub fn load(path: &Path) -> Result<Embedder, EmbeddingError> {
        let model = ModelRef {
            name: path
                .file_name()
                .map_or_else(|| "embedding".into(), |n| n.to_string_lossy().into_owned()),
            entry: Some(ModelEntry::new(path, KindSettings::Embedding)),
        };
        let worker = crate::engine::open(&model, &OpenOptions::default()).map_err(|source| {
            EmbeddingError::Load {
                path: path.to_path_buf(),
                source,
            }
        })?;
        Ok(Embedder {
            worker: Mutex::new(worker),
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
        let worker = self
            .worker
            .lock()
            .map_err(|_| EmbeddingError::Compute("the embedding engine is poisoned".into()))?;
        worker
            .embed(text.to_string())
            .map_err(|e| EmbeddingError::Compute(e.to_string()))
    }

    /// Cosine similarity of two texts (-1 to 1).
    pub fn similarity(&self, a: &str, b: &str) -> Result<f64, EmbeddingError> {
        let (x, y) = (self.embed(a)?, self.embed(b)?);
        Ok(x.iter().zip(y.iter()).map(|(p, q)| f64::from(p * q)).sum())
    }
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
