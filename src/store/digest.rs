//! What a run asked its models, as one digest: the SHA-256 of its cells' cache keys,
//! sorted. A cache key covers the model, the rendered prompt, the parameters and the
//! engine version, so two runs with the same digest sent the same requests (a cached
//! re-run is such a copy) and two with different digests differ in a prompt, a model, a
//! parameter or a case. The TUI's History compares a run with the last earlier run whose
//! digest differs, not with a copy of itself.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::{RunStore, StoreError};

impl RunStore {
    /// The configuration digest of run `only`, or of every run with cells when `None`.
    pub(super) fn config_digests(
        &self,
        only: Option<i64>,
    ) -> Result<HashMap<i64, String>, StoreError> {
        let action = "reading the cache keys of runs";
        let mut stmt = self
            .conn
            .prepare_cached("SELECT run_id, cache_key FROM cells WHERE ?1 IS NULL OR run_id = ?1")
            .map_err(self.err(action))?;
        let rows = stmt
            .query_map([only], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(self.err(action))?;
        let mut keys: HashMap<i64, Vec<String>> = HashMap::new();
        for row in rows {
            let (run, key) = row.map_err(self.err(action))?;
            keys.entry(run).or_default().push(key);
        }
        Ok(keys
            .into_iter()
            .map(|(run, mut keys)| {
                keys.sort_unstable();
                let mut hasher = Sha256::new();
                for key in &keys {
                    hasher.update(key.as_bytes());
                    hasher.update(b"\n");
                }
                let hex: String = hasher
                    .finalize()
                    .iter()
                    .take(8)
                    .map(|b| format!("{b:02x}"))
                    .collect();
                (run, hex)
            })
            .collect())
    }
}
