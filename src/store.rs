//! The run store: every evaluation run recorded in one embedded SQLite file,
//! `.promptlab/runs.db` under the project.
//!
//! It exists so that a run outlives the process that made it. A run records
//! its resolved configuration and, for each cell (one prompt x model x case),
//! the rendered prompt, the output, assertion results, score, token counts and
//! timings. The same file is the result cache (a cell whose cache key was
//! generated before reuses that generation) and what makes an interrupted run
//! resumable; reports, comparisons and the TUI read from it rather than from
//! anything kept in memory.
//!
//! Each cell is written in its own transaction, so a run killed at any moment
//! loses at most the cell in flight, and never leaves half of one.

pub mod agent;
mod cache;
mod digest;
mod error;
mod optimize;
mod rows;
mod schema;
mod sweeps;
#[cfg(test)]
mod tests;
mod training;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

pub use agent::AgentRunRow;
pub use cache::CachedGeneration;
pub use error::StoreError;
pub use optimize::{CandidateRow, OptimizationRow};
use rows::{CELL_COLUMNS, GENERATION_COLUMNS, RUN_ROW_SELECT, cell_from_row, run_from_row};
pub use schema::SCHEMA_VERSION;
pub use training::TrainingRunRow;

/// How long a write waits for another process's lock before giving up with
/// [`StoreError::Locked`]. Cells are written in short transactions, so a
/// second promptlab (say, the TUI beside a CLI run) waits milliseconds in
/// practice; five seconds only runs out when something holds the lock for good.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The fields of a run known when it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewRun {
    pub eval_set: String,
    pub eval_set_path: String,
    pub config_json: String,
    pub started_at: String,
    /// How many cells the complete run has; a run with fewer recorded cells
    /// is incomplete and may be resumed.
    pub cell_count: usize,
}

/// One prompt x model x case result, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredCell {
    pub column_index: usize,
    pub case_index: usize,
    pub column_id: String,
    pub case_id: String,
    pub cache_key: String,
    pub prompt_json: String,
    pub output: String,
    pub error: Option<String>,
    pub passed: bool,
    pub score: f64,
    pub assertions_json: String,
    pub finish: Option<String>,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub ttft_ms: f64,
    pub latency_ms: f64,
    pub tokens_per_s: Option<f64>,
    /// The output came from the cache rather than from the model.
    pub cached: bool,
    /// The generated tokens' log-probabilities as a JSON list, when they were asked for.
    pub logprobs_json: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Finished,
    Cancelled,
}

impl RunStatus {
    /// The text stored in `runs.status` (and allowed by its CHECK constraint).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Finished => "finished",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<RunStatus> {
        match text {
            "running" => Some(RunStatus::Running),
            "finished" => Some(RunStatus::Finished),
            "cancelled" => Some(RunStatus::Cancelled),
            _ => None,
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run as listed: its header plus progress counted from its cells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    pub id: i64,
    pub eval_set: String,
    pub eval_set_path: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: RunStatus,
    pub cell_count: usize,
    pub cells_done: usize,
    pub passed: usize,
    /// A name the user gave the run, if any (see [`RunStore::set_label`]).
    pub label: Option<String>,
    /// Recorded cells that came from the cache.
    pub cached: usize,
    /// The columns (`prompt @ model`) its recorded cells belong to, in column order.
    pub columns: Vec<String>,
    /// A digest of what the run asked its models (prompts, models, parameters, cases):
    /// equal for a cached re-run, different after an edit. None before its first cell.
    pub config_digest: Option<String>,
}

/// How runs of the eval set at `path` are found in the store: its absolute path.
pub fn eval_set_key(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// An open run database. One per process is enough; it is `Send` but not
/// `Sync`, so share it behind a mutex or give it to one writer thread.
#[derive(Debug)]
pub struct RunStore {
    conn: Connection,
    path: PathBuf,
}

/// SQLite's default limit on bound parameters was 999 before 3.32; stay well
/// under it so bulk lookups work whatever SQLite the binary links.
const KEYS_PER_QUERY: usize = 500;

impl RunStore {
    /// Opens (creating if needed) the run database at `path`, with the
    /// default busy timeout.
    pub fn open(path: &Path) -> Result<RunStore, StoreError> {
        RunStore::open_with_timeout(path, DEFAULT_BUSY_TIMEOUT)
    }

    /// Like [`RunStore::open`], waiting at most `busy_timeout` for another
    /// process's lock on every operation.
    pub fn open_with_timeout(path: &Path, busy_timeout: Duration) -> Result<RunStore, StoreError> {
        let open_err = |e| StoreError::from_sqlite(path, "opening", e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| io_error(path, dir, e))?;
        }

        // No SQLITE_OPEN_URI: a project path that happens to start with
        // "file:" must stay a path.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
        conn.busy_timeout(busy_timeout).map_err(open_err)?;

        // Read the version before anything writes: even switching to WAL
        // rewrites header bytes, and a newer promptlab's file must stay as it is.
        let found = schema::user_version(&conn)
            .map_err(|e| StoreError::from_sqlite(path, "reading the schema version", e))?;
        let applied = schema::check_version(path, found)?;

        // SQLite silently falls back to read-only when the file is not
        // writable; say so now rather than at the first cell of a run.
        if conn.is_readonly(rusqlite::MAIN_DB).map_err(open_err)? {
            return Err(StoreError::ReadOnly {
                path: path.to_path_buf(),
            });
        }

        // WAL lets reports and the TUI read while a run writes. WAL with
        // synchronous=NORMAL is durable against the process being killed
        // (every commit is in the WAL file, i.e. in the OS, before commit
        // returns); only a power loss or OS crash can drop the last few
        // commits, and even then the file stays consistent. The trade saves an
        // fsync per cell (WAL syncs only at checkpoints). The returned mode is
        // not checked: on a filesystem without WAL support SQLite keeps the
        // rollback journal, which is slower for readers but just as safe.
        conn.query_row("PRAGMA journal_mode = WAL", [], |row| {
            row.get::<_, String>(0)
        })
        .map_err(|e| StoreError::from_sqlite(path, "switching to WAL", e))?;
        // Both are per-connection settings, so they are set on every open.
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(open_err)?;

        // Only take the write lock when there is something to migrate, so a
        // reader can open the database while a long run is writing.
        if applied < schema::SCHEMA_VERSION as usize {
            schema::migrate(&mut conn, path)?;
        }
        Ok(RunStore {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The error mapper for a failed `action`; it borrows, so building one on
    /// the success path costs nothing.
    fn err<'a>(&'a self, action: &'a str) -> impl Fn(rusqlite::Error) -> StoreError + 'a {
        move |e| StoreError::from_sqlite(&self.path, action, e)
    }

    pub fn create_run(&self, run: &NewRun) -> Result<i64, StoreError> {
        let cell_count = self.to_i64(run.cell_count, "cell_count")?;
        self.conn
            .execute(
                "INSERT INTO runs (eval_set, eval_set_path, config_json, started_at, status, cell_count)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    run.eval_set,
                    run.eval_set_path,
                    run.config_json,
                    run.started_at,
                    RunStatus::Running,
                    cell_count
                ],
            )
            .map_err(self.err("creating a run"))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records one cell, replacing any earlier record of the same cell (a
    /// resumed run may redo the cell that was in flight when it stopped).
    ///
    /// A cell that was generated now, without error, also enters the cache.
    /// Cell and cache entry are written in one transaction, so a kill at any
    /// moment leaves both or neither. Errored cells are not cached so that the
    /// next run tries again; cached cells already have their entry.
    pub fn record_cell(&mut self, run_id: i64, cell: &StoredCell) -> Result<(), StoreError> {
        self.record_cell_with(run_id, cell, |tx, sql_err| {
            if cell.error.is_none() && !cell.cached {
                tx.prepare_cached(&format!(
                    "INSERT OR REPLACE INTO generations (cache_key, {GENERATION_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ))
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        cell.cache_key,
                        cell.output,
                        cell.finish,
                        cell.prompt_tokens,
                        cell.completion_tokens,
                        cell.ttft_ms,
                        cell.latency_ms,
                        cell.tokens_per_s,
                        cell.logprobs_json,
                    ])
                })
                .map_err(sql_err)?;
            }
            Ok(())
        })
    }

    /// Records one cell of an agent evaluation with a link to the agent run holding its
    /// trace, both in one transaction. Agent cells never enter the generation cache: an
    /// answer depends on tool results, not only on the request.
    pub fn record_agent_cell(
        &mut self,
        run_id: i64,
        cell: &StoredCell,
        agent_run_id: i64,
    ) -> Result<(), StoreError> {
        let column_index = self.to_i64(cell.column_index, "column_index")?;
        let case_index = self.to_i64(cell.case_index, "case_index")?;
        self.record_cell_with(run_id, cell, |tx, sql_err| {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO agent_cells (run_id, column_index, case_index, agent_run_id)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![run_id, column_index, case_index, agent_run_id])
            })
            .map_err(sql_err)?;
            Ok(())
        })
    }

    /// Writes `cell` and whatever `also` writes in one transaction.
    fn record_cell_with(
        &mut self,
        run_id: i64,
        cell: &StoredCell,
        also: impl FnOnce(
            &rusqlite::Transaction,
            &dyn Fn(rusqlite::Error) -> StoreError,
        ) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let action = format!(
            "recording cell (column {}, case {}) of run {run_id}",
            cell.column_index, cell.case_index
        );
        self.check_cell(&action, cell)?;
        let column_index = self.to_i64(cell.column_index, "column_index")?;
        let case_index = self.to_i64(cell.case_index, "case_index")?;
        let path = self.path.clone();
        let sql_err = |e: rusqlite::Error| {
            if e.sqlite_extended_error_code() == Some(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY) {
                StoreError::NoSuchRun {
                    path: path.clone(),
                    run_id,
                }
            } else {
                StoreError::from_sqlite(&path, &action, e)
            }
        };

        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        tx.prepare_cached(&format!(
            "INSERT OR REPLACE INTO cells (run_id, {CELL_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"
        ))
        .and_then(|mut stmt| {
            stmt.execute(params![
                run_id,
                column_index,
                case_index,
                cell.column_id,
                cell.case_id,
                cell.cache_key,
                cell.prompt_json,
                cell.output,
                cell.error,
                cell.passed,
                cell.score,
                cell.assertions_json,
                cell.finish,
                cell.prompt_tokens,
                cell.completion_tokens,
                cell.ttft_ms,
                cell.latency_ms,
                cell.tokens_per_s,
                cell.cached,
                cell.logprobs_json,
            ])
        })
        .map_err(sql_err)?;
        also(&tx, &sql_err)?;
        tx.commit().map_err(sql_err)
    }

    pub fn finish_run(
        &self,
        run_id: i64,
        finished_at: &str,
        status: RunStatus,
    ) -> Result<(), StoreError> {
        let changed = self
            .conn
            .execute(
                "UPDATE runs SET finished_at = ?1, status = ?2 WHERE id = ?3",
                params![finished_at, status, run_id],
            )
            .map_err(self.err(&format!("finishing run {run_id}")))?;
        self.expect_run(run_id, changed)
    }

    /// Marks a cancelled or interrupted run as running again, for resuming it.
    pub fn resume_run(&self, run_id: i64) -> Result<(), StoreError> {
        let changed = self
            .conn
            .execute(
                "UPDATE runs SET finished_at = NULL, status = ?1 WHERE id = ?2",
                params![RunStatus::Running, run_id],
            )
            .map_err(self.err(&format!("resuming run {run_id}")))?;
        self.expect_run(run_id, changed)
    }

    /// Names a run (or removes its name with `None`), so it can be found again
    /// in comparisons.
    pub fn set_label(&self, run_id: i64, label: Option<&str>) -> Result<(), StoreError> {
        let changed = self
            .conn
            .execute(
                "UPDATE runs SET label = ?1 WHERE id = ?2",
                params![label, run_id],
            )
            .map_err(self.err(&format!("labelling run {run_id}")))?;
        self.expect_run(run_id, changed)
    }

    /// All runs, newest first. "Newest" is creation order (the id), not
    /// `started_at`, whose text the caller formats and which need not sort.
    pub fn runs(&self) -> Result<Vec<RunRow>, StoreError> {
        let action = "listing runs";
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "{RUN_ROW_SELECT} GROUP BY r.id ORDER BY r.id DESC"
            ))
            .map_err(self.err(action))?;
        let rows = stmt.query_map([], run_from_row).map_err(self.err(action))?;
        let mut runs = rows
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err(action))?;
        let mut digests = self.config_digests(None)?;
        for run in &mut runs {
            run.config_digest = digests.remove(&run.id);
        }
        Ok(runs)
    }

    pub fn run(&self, id: i64) -> Result<Option<RunRow>, StoreError> {
        let run = self
            .conn
            .prepare_cached(&format!("{RUN_ROW_SELECT} WHERE r.id = ?1 GROUP BY r.id"))
            .and_then(|mut stmt| stmt.query_row([id], run_from_row).optional())
            .map_err(self.err(&format!("reading run {id}")))?;
        let Some(mut run) = run else {
            return Ok(None);
        };
        run.config_digest = self.config_digests(Some(id))?.remove(&id);
        Ok(Some(run))
    }

    /// The resolved configuration the run was started with, as given to
    /// [`RunStore::create_run`].
    pub fn run_config(&self, id: i64) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT config_json FROM runs WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .optional()
            .map_err(self.err(&format!("reading the configuration of run {id}")))
    }

    /// The cells of a run in matrix order: by column, then by case.
    pub fn cells(&self, run_id: i64) -> Result<Vec<StoredCell>, StoreError> {
        let action = format!("reading the cells of run {run_id}");
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {CELL_COLUMNS} FROM cells WHERE run_id = ?1
                 ORDER BY column_index, case_index"
            ))
            .map_err(self.err(&action))?;
        let rows = stmt
            .query_map([run_id], cell_from_row)
            .map_err(self.err(&action))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.err(&action))
    }

    /// The newest run of the eval set at `eval_set_path` that stopped before
    /// recording all its cells: still marked running (the process died) or
    /// cancelled. Finished runs are never resumed, even if short of cells.
    pub fn latest_resumable(&self, eval_set_path: &str) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT r.id FROM runs r
                 WHERE r.eval_set_path = ?1
                   AND r.status IN ('running', 'cancelled')
                   AND (SELECT count(*) FROM cells c WHERE c.run_id = r.id) < r.cell_count
                 ORDER BY r.id DESC
                 LIMIT 1",
                [eval_set_path],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.err("looking for a resumable run"))
    }

    /// SQLite's full consistency check of the file (pages, indexes, constraints
    /// of the b-trees). True when it reports nothing wrong.
    pub fn integrity_check(&self) -> Result<bool, StoreError> {
        let action = "checking integrity";
        let mut stmt = self
            .conn
            .prepare("PRAGMA integrity_check")
            .map_err(self.err(action))?;
        let problems = stmt
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(self.err(action))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err(action))?;
        Ok(problems == ["ok"])
    }

    fn expect_run(&self, run_id: i64, changed: usize) -> Result<(), StoreError> {
        if changed == 0 {
            return Err(StoreError::NoSuchRun {
                path: self.path.clone(),
                run_id,
            });
        }
        Ok(())
    }

    fn to_i64(&self, value: usize, field: &str) -> Result<i64, StoreError> {
        i64::try_from(value).map_err(|_| StoreError::InvalidInput {
            path: self.path.clone(),
            message: format!("{field} {value} does not fit in SQLite's 64-bit integer"),
        })
    }

    /// SQLite stores a NaN REAL as NULL, which would either break a NOT NULL
    /// column or silently turn into `None`; a NaN here is a bug upstream, so
    /// it is refused by name instead.
    fn check_cell(&self, action: &str, cell: &StoredCell) -> Result<(), StoreError> {
        let reals = [
            ("score", Some(cell.score)),
            ("ttft_ms", Some(cell.ttft_ms)),
            ("latency_ms", Some(cell.latency_ms)),
            ("tokens_per_s", cell.tokens_per_s),
        ];
        match reals.iter().find(|(_, v)| v.is_some_and(f64::is_nan)) {
            Some((field, _)) => Err(StoreError::InvalidInput {
                path: self.path.clone(),
                message: format!("{action}: {field} is NaN, which SQLite cannot store"),
            }),
            None => Ok(()),
        }
    }
}

fn io_error(path: &Path, at: &Path, err: std::io::Error) -> StoreError {
    use std::io::ErrorKind;
    match err.kind() {
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => StoreError::ReadOnly {
            path: path.to_path_buf(),
        },
        _ => StoreError::Open {
            path: path.to_path_buf(),
            message: format!("{}: {err}", at.display()),
        },
    }
}
