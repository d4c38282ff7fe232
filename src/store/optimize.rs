//! Prompt optimizations (`promptlab optimize`): the optimization's configuration and
//! state, and every candidate with its lineage and its tuning evaluation. The rows are
//! JSON the optimizer owns ([`crate::optimize`]); the store only keeps them safe.

use rusqlite::{OptionalExtension, params};

use super::{RunStatus, RunStore, StoreError};

/// An optimization as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizationRow {
    pub id: i64,
    pub eval_set: String,
    pub eval_set_path: String,
    pub config_json: String,
    pub state_json: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: RunStatus,
}

/// A candidate as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateRow {
    pub number: i64,
    pub round: i64,
    pub parent: Option<i64>,
    pub strategy: String,
    pub prompt_json: String,
    /// What the proposer answered (or how the strategy chose), for the lineage.
    pub proposal: String,
    /// Why it was refused before being evaluated.
    pub rejected: Option<String>,
    /// The run that evaluated it on the tuning part.
    pub run_id: Option<i64>,
    pub evaluation_json: Option<String>,
}

impl RunStore {
    pub fn create_optimization(
        &self,
        eval_set: &str,
        eval_set_path: &str,
        config_json: &str,
        state_json: &str,
        started_at: &str,
    ) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO optimizations (eval_set, eval_set_path, config_json, state_json, started_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![eval_set, eval_set_path, config_json, state_json, started_at],
            )
            .map_err(self.err("starting an optimization"))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Replaces the optimization's state; with `status` other than running, it ends.
    pub fn update_optimization(
        &self,
        id: i64,
        state_json: &str,
        status: RunStatus,
        finished_at: Option<&str>,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE optimizations SET state_json = ?2, status = ?3, finished_at = ?4
                 WHERE id = ?1",
                params![id, state_json, status.as_str(), finished_at],
            )
            .map(|_| ())
            .map_err(self.err("recording an optimization"))
    }

    pub fn optimization(&self, id: i64) -> Result<Option<OptimizationRow>, StoreError> {
        self.conn
            .query_row(
                "SELECT id, eval_set, eval_set_path, config_json, state_json, started_at,
                        finished_at, status
                 FROM optimizations WHERE id = ?1",
                [id],
                |row| {
                    let status: String = row.get(7)?;
                    Ok(OptimizationRow {
                        id: row.get(0)?,
                        eval_set: row.get(1)?,
                        eval_set_path: row.get(2)?,
                        config_json: row.get(3)?,
                        state_json: row.get(4)?,
                        started_at: row.get(5)?,
                        finished_at: row.get(6)?,
                        status: RunStatus::parse(&status).unwrap_or(RunStatus::Cancelled),
                    })
                },
            )
            .optional()
            .map_err(self.err("reading an optimization"))
    }

    /// Every optimization, newest first.
    pub fn optimizations(&self) -> Result<Vec<OptimizationRow>, StoreError> {
        let ids: Vec<i64> = {
            let mut statement = self
                .conn
                .prepare("SELECT id FROM optimizations ORDER BY id DESC")
                .map_err(self.err("listing optimizations"))?;
            statement
                .query_map([], |row| row.get(0))
                .and_then(|rows| rows.collect::<Result<_, _>>())
                .map_err(self.err("listing optimizations"))?
        };
        let mut rows = Vec::new();
        for id in ids {
            rows.extend(self.optimization(id)?);
        }
        Ok(rows)
    }

    /// The newest optimization of the eval set that did not finish.
    pub fn latest_unfinished_optimization(
        &self,
        eval_set_path: &str,
    ) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT id FROM optimizations WHERE eval_set_path = ?1 AND status != 'finished'
                 ORDER BY id DESC LIMIT 1",
                [eval_set_path],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.err("finding an optimization to resume"))
    }

    /// Records a candidate, or replaces the one with the same number.
    pub fn save_candidate(&self, optimization_id: i64, c: &CandidateRow) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO optimize_candidates
                 (optimization_id, number, round, parent, strategy, prompt_json, proposal,
                  rejected, run_id, evaluation_json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    optimization_id,
                    c.number,
                    c.round,
                    c.parent,
                    c.strategy,
                    c.prompt_json,
                    c.proposal,
                    c.rejected,
                    c.run_id,
                    c.evaluation_json
                ],
            )
            .map(|_| ())
            .map_err(self.err("recording a candidate"))
    }

    /// An optimization's candidates by number.
    pub fn candidates(&self, optimization_id: i64) -> Result<Vec<CandidateRow>, StoreError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT number, round, parent, strategy, prompt_json, proposal, rejected, run_id,
                        evaluation_json
                 FROM optimize_candidates WHERE optimization_id = ?1 ORDER BY number",
            )
            .map_err(self.err("reading candidates"))?;
        statement
            .query_map([optimization_id], |row| {
                Ok(CandidateRow {
                    number: row.get(0)?,
                    round: row.get(1)?,
                    parent: row.get(2)?,
                    strategy: row.get(3)?,
                    prompt_json: row.get(4)?,
                    proposal: row.get(5)?,
                    rejected: row.get(6)?,
                    run_id: row.get(7)?,
                    evaluation_json: row.get(8)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<_, _>>())
            .map_err(self.err("reading candidates"))
    }
}
