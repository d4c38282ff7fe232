//! The result cache: a model's output for one cache key, reused by a later cell (or a
//! judge) that asks the same model the same thing.

use std::collections::{HashMap, HashSet};

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::rows::{GENERATION_COLUMNS, generation_from_row, generation_from_row_at};
use super::{KEYS_PER_QUERY, RunStore, StoreError};

/// A model's output for one cache key: what a cache hit reuses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedGeneration {
    pub output: String,
    pub finish: Option<String>,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub ttft_ms: f64,
    pub latency_ms: f64,
    pub tokens_per_s: Option<f64>,
    /// The generated tokens' log-probabilities as a JSON list, when they were asked for.
    #[serde(default)]
    pub logprobs_json: Option<String>,
}

impl RunStore {
    /// Caches a generation that is not a cell of its own (a judge's reply), so judging
    /// the same output again costs nothing.
    pub fn cache_generation(
        &self,
        cache_key: &str,
        generation: &CachedGeneration,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(&format!(
                "INSERT OR REPLACE INTO generations (cache_key, {GENERATION_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ))
            .and_then(|mut stmt| {
                stmt.execute(params![
                    cache_key,
                    generation.output,
                    generation.finish,
                    generation.prompt_tokens,
                    generation.completion_tokens,
                    generation.ttft_ms,
                    generation.latency_ms,
                    generation.tokens_per_s,
                    generation.logprobs_json,
                ])
            })
            .map(|_| ())
            .map_err(self.err("caching a judge's reply"))
    }

    pub fn cached_generation(
        &self,
        cache_key: &str,
    ) -> Result<Option<CachedGeneration>, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {GENERATION_COLUMNS} FROM generations WHERE cache_key = ?1"
            ))
            .and_then(|mut stmt| stmt.query_row([cache_key], generation_from_row).optional())
            .map_err(self.err("looking up the cache"))
    }

    /// Looks up many cache keys at once (a run checks its whole matrix before
    /// generating). Keys without an entry are absent from the map.
    pub fn cached_generations(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, CachedGeneration>, StoreError> {
        let unique: Vec<&str> = keys
            .iter()
            .map(String::as_str)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut found = HashMap::new();
        for chunk in unique.chunks(KEYS_PER_QUERY) {
            let placeholders = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "SELECT cache_key, {GENERATION_COLUMNS} FROM generations
                 WHERE cache_key IN ({placeholders})"
            );
            let mut stmt = self
                .conn
                .prepare(&sql)
                .map_err(self.err("looking up the cache"))?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(chunk), |row| {
                    Ok((row.get::<_, String>(0)?, generation_from_row_at(row, 1)?))
                })
                .map_err(self.err("looking up the cache"))?;
            for row in rows {
                let (key, generation) = row.map_err(self.err("looking up the cache"))?;
                found.insert(key, generation);
            }
        }
        Ok(found)
    }
}
