//! Sweeps (which runs are a sweep's settings) and pairwise rankings of runs.

use rusqlite::{OptionalExtension, params};

use super::{RunStore, StoreError};

impl RunStore {
    /// Starts a sweep; its settings' runs are added with [`RunStore::add_sweep_run`].
    pub fn create_sweep(
        &self,
        eval_set: &str,
        eval_set_path: &str,
        spec_json: &str,
        started_at: &str,
    ) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO sweeps (eval_set, eval_set_path, spec_json, started_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![eval_set, eval_set_path, spec_json, started_at],
            )
            .map_err(self.err("starting a sweep"))?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn add_sweep_run(
        &self,
        sweep_id: i64,
        run_id: i64,
        setting_json: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO sweep_runs (sweep_id, run_id, setting_json)
                 VALUES (?1, ?2, ?3)",
                params![sweep_id, run_id, setting_json],
            )
            .map(|_| ())
            .map_err(self.err("recording a sweep's run"))
    }

    /// A sweep's eval set name and its runs with their settings (JSON), in run order;
    /// None when there is no such sweep.
    #[allow(clippy::type_complexity)]
    pub fn sweep_runs(
        &self,
        sweep_id: i64,
    ) -> Result<Option<(String, Vec<(i64, String)>)>, StoreError> {
        let name: Option<String> = self
            .conn
            .query_row(
                "SELECT eval_set FROM sweeps WHERE id = ?1",
                [sweep_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.err("reading a sweep"))?;
        let Some(name) = name else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare(
                "SELECT run_id, setting_json FROM sweep_runs WHERE sweep_id = ?1 ORDER BY run_id",
            )
            .map_err(self.err("reading a sweep"))?;
        let runs = stmt
            .query_map([sweep_id], |row| Ok((row.get(0)?, row.get(1)?)))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(self.err("reading a sweep"))?;
        Ok(Some((name, runs)))
    }

    pub fn add_training_sweep_run(
        &self,
        sweep_id: i64,
        training_run_id: i64,
        setting_json: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO training_sweep_runs (sweep_id, training_run_id, setting_json)
                 VALUES (?1, ?2, ?3)",
                params![sweep_id, training_run_id, setting_json],
            )
            .map(|_| ())
            .map_err(self.err("recording a sweep's training run"))
    }

    /// A training sweep's runs with their settings (JSON), in run order.
    pub fn training_sweep_runs(&self, sweep_id: i64) -> Result<Vec<(i64, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT training_run_id, setting_json FROM training_sweep_runs
                 WHERE sweep_id = ?1 ORDER BY training_run_id",
            )
            .map_err(self.err("reading a sweep"))?;
        stmt.query_map([sweep_id], |row| Ok((row.get(0)?, row.get(1)?)))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(self.err("reading a sweep"))
    }

    /// The newest sweep's id.
    pub fn latest_sweep(&self) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row("SELECT max(id) FROM sweeps", [], |row| row.get(0))
            .map_err(self.err("reading sweeps"))
    }

    /// Keeps a run's pairwise ranking (replacing an earlier one), as JSON.
    pub fn save_pairwise(
        &self,
        run_id: i64,
        judge: &str,
        report_json: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO pairwise_rankings (run_id, judge, report_json)
                 VALUES (?1, ?2, ?3)",
                params![run_id, judge, report_json],
            )
            .map(|_| ())
            .map_err(self.err("saving a pairwise ranking"))
    }

    /// A run's pairwise ranking as JSON, if it has one.
    pub fn pairwise_json(&self, run_id: i64) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT report_json FROM pairwise_rankings WHERE run_id = ?1",
                [run_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.err("reading a pairwise ranking"))
    }
}
