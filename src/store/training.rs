//! Training runs of vision models: one row per run, its model card (hyperparameters,
//! curves, test metrics) rewritten after every epoch.

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{RunStore, StoreError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRunRow {
    pub id: i64,
    pub kind: String,
    pub dataset: String,
    pub preset: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// running, finished, cancelled or failed.
    pub status: String,
    pub parameters: usize,
    pub config_json: String,
    pub card_json: Option<String>,
    pub weights_path: Option<String>,
    pub test_accuracy: Option<f64>,
}

const SELECT: &str =
    "SELECT id, kind, dataset, preset, started_at, finished_at, status, parameters,
    card_json, weights_path, test_accuracy, config_json FROM training_runs";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TrainingRunRow> {
    Ok(TrainingRunRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        dataset: r.get(2)?,
        preset: r.get(3)?,
        started_at: r.get(4)?,
        finished_at: r.get(5)?,
        status: r.get(6)?,
        parameters: usize::try_from(r.get::<_, i64>(7)?).unwrap_or(0),
        card_json: r.get(8)?,
        weights_path: r.get(9)?,
        test_accuracy: r.get(10)?,
        config_json: r.get(11)?,
    })
}

impl RunStore {
    pub fn create_training_run(
        &self,
        kind: &str,
        dataset: &str,
        preset: &str,
        started_at: &str,
        config_json: &str,
    ) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO training_runs (kind, dataset, preset, started_at, parameters, config_json)
                 VALUES (?1, ?2, ?3, ?4, 0, ?5)",
                params![kind, dataset, preset, started_at, config_json],
            )
            .map_err(self.err("creating a training run"))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records progress (after an epoch) or the end of a training run.
    #[allow(clippy::too_many_arguments)]
    pub fn update_training_run(
        &self,
        id: i64,
        status: &str,
        parameters: usize,
        card_json: &str,
        finished_at: Option<&str>,
        weights_path: Option<&str>,
        test_accuracy: Option<f64>,
    ) -> Result<(), StoreError> {
        let parameters = self.to_i64(parameters, "parameters")?;
        let changed = self
            .conn
            .execute(
                "UPDATE training_runs SET status = ?2, parameters = ?3, card_json = ?4,
                 finished_at = ?5, weights_path = ?6, test_accuracy = ?7 WHERE id = ?1",
                params![
                    id,
                    status,
                    parameters,
                    card_json,
                    finished_at,
                    weights_path,
                    test_accuracy
                ],
            )
            .map_err(self.err(&format!("updating training run {id}")))?;
        if changed == 0 {
            return Err(StoreError::InvalidInput {
                path: self.path.clone(),
                message: format!("no training run {id}"),
            });
        }
        Ok(())
    }

    /// All training runs, newest first.
    pub fn training_runs(&self) -> Result<Vec<TrainingRunRow>, StoreError> {
        let action = "listing training runs";
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{SELECT} ORDER BY id DESC"))
            .map_err(self.err(action))?;
        let rows = stmt.query_map([], row).map_err(self.err(action))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.err(action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_runs_are_created_updated_and_listed_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::open(&dir.path().join("runs.db")).unwrap();
        let a = store
            .create_training_run("digit-cnn", "mnist", "mnist", "2026-11-28T01:00:00Z", "{}")
            .unwrap();
        let b = store
            .create_training_run("digit-cnn", "digits", "small", "2026-11-28T01:05:00Z", "{}")
            .unwrap();
        store
            .update_training_run(
                a,
                "finished",
                225_226,
                "{\"epochs\":[]}",
                Some("2026-11-28T01:04:00Z"),
                Some("models/d.safetensors"),
                Some(0.991),
            )
            .unwrap();
        let runs = store.training_runs().unwrap();
        assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), [b, a]);
        assert_eq!(runs[1].status, "finished");
        assert_eq!(runs[1].parameters, 225_226);
        assert_eq!(runs[1].test_accuracy, Some(0.991));
        assert_eq!(runs[0].status, "running");
        assert!(
            store
                .update_training_run(99, "finished", 0, "{}", None, None, None)
                .is_err()
        );
        let err = store
            .update_training_run(a, "exploded", 0, "{}", None, None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("runs.db"), "{err}");
    }
}
