//! The database schema and its migrations.
//!
//! The schema version lives in SQLite's `PRAGMA user_version` (0 for a new,
//! empty file). `MIGRATIONS[i]` takes a database from version `i` to `i + 1`;
//! all pending ones run in one transaction together with the version bump, so a
//! database is always at exactly one known version, even after a kill during
//! an upgrade. Migrations are append-only: once released, an entry is never
//! edited, because databases in the wild were built by it.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// The schema version this code writes and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub(super) const MIGRATIONS: &[&str] = &[
    // Version 1.
    //
    // STRICT tables make SQLite refuse a value of the wrong type instead of
    // storing it silently, so the row mapping can trust the column types.
    // `created_at` defaults come from SQLite's clock so this module needs no
    // date library; caller-visible times (`started_at`, `finished_at`) are
    // passed in by the caller, which owns the clock and the format.
    r#"
    -- AUTOINCREMENT: a deleted run's id is never handed out again, so "run 12"
    -- in an old report or shell history never silently means another run.
    CREATE TABLE runs (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        eval_set      TEXT NOT NULL,
        eval_set_path TEXT NOT NULL,
        config_json   TEXT NOT NULL,
        started_at    TEXT NOT NULL,
        finished_at   TEXT,
        status        TEXT NOT NULL DEFAULT 'running'
                      CHECK (status IN ('running', 'finished', 'cancelled')),
        cell_count    INTEGER NOT NULL CHECK (cell_count >= 0),
        label         TEXT
    ) STRICT;

    -- Resume and "runs of this eval set" look runs up by path, newest first;
    -- the index carries the rowid, so ORDER BY id DESC needs no sort.
    CREATE INDEX runs_by_eval_set_path ON runs (eval_set_path);

    -- One row per prompt x model x case. The primary key is also the index for
    -- "all cells of a run, in matrix order".
    CREATE TABLE cells (
        run_id            INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        column_index      INTEGER NOT NULL CHECK (column_index >= 0),
        case_index        INTEGER NOT NULL CHECK (case_index >= 0),
        column_id         TEXT NOT NULL,
        case_id           TEXT NOT NULL,
        cache_key         TEXT NOT NULL,
        prompt_json       TEXT NOT NULL,
        output            TEXT NOT NULL,
        error             TEXT,
        passed            INTEGER NOT NULL CHECK (passed IN (0, 1)),
        score             REAL NOT NULL,
        assertions_json   TEXT NOT NULL,
        finish            TEXT,
        prompt_tokens     INTEGER NOT NULL CHECK (prompt_tokens >= 0),
        completion_tokens INTEGER NOT NULL CHECK (completion_tokens >= 0),
        ttft_ms           REAL NOT NULL,
        latency_ms        REAL NOT NULL,
        tokens_per_s      REAL,
        cached            INTEGER NOT NULL CHECK (cached IN (0, 1)),
        created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        PRIMARY KEY (run_id, column_index, case_index)
    ) STRICT;

    -- The result cache holds generations, not scores: editing an assertion
    -- re-scores cached outputs without generating again. It is deliberately
    -- not referenced by cells, so the cache can be pruned without touching
    -- the history of runs.
    CREATE TABLE generations (
        cache_key         TEXT PRIMARY KEY NOT NULL,
        output            TEXT NOT NULL,
        finish            TEXT,
        prompt_tokens     INTEGER NOT NULL CHECK (prompt_tokens >= 0),
        completion_tokens INTEGER NOT NULL CHECK (completion_tokens >= 0),
        ttft_ms           REAL NOT NULL,
        latency_ms        REAL NOT NULL,
        tokens_per_s      REAL,
        created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    ) STRICT;
    "#,
    // Version 2: training runs of vision models (the digit CNN). The card holds the
    // hyperparameters, per-epoch curves and test metrics as JSON; it is rewritten after
    // every epoch, so an interrupted run keeps its curves so far.
    r#"
    CREATE TABLE training_runs (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        kind          TEXT NOT NULL,
        dataset       TEXT NOT NULL,
        preset        TEXT NOT NULL,
        started_at    TEXT NOT NULL,
        finished_at   TEXT,
        status        TEXT NOT NULL DEFAULT 'running'
                      CHECK (status IN ('running', 'finished', 'cancelled', 'failed')),
        parameters    INTEGER NOT NULL CHECK (parameters >= 0),
        config_json   TEXT NOT NULL,
        card_json     TEXT,
        weights_path  TEXT,
        test_accuracy REAL,
        created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    ) STRICT;
    "#,
    // Version 3: agent runs. The steps (replies, tool calls, arguments, results, timings)
    // are rewritten after every step, so an interrupted run keeps what it did.
    r#"
    CREATE TABLE agent_runs (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at       TEXT NOT NULL,
        model            TEXT NOT NULL,
        question         TEXT NOT NULL,
        tools_json       TEXT NOT NULL,
        status           TEXT NOT NULL DEFAULT 'running',
        answer           TEXT,
        steps_json       TEXT NOT NULL DEFAULT '[]',
        total_ms         REAL,
        generated_tokens INTEGER NOT NULL DEFAULT 0 CHECK (generated_tokens >= 0),
        created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    ) STRICT;
    "#,
    // Version 4: a judge's pairwise ranking of a run's columns (`eval --pairwise`); a run
    // keeps its latest one.
    r#"
    CREATE TABLE pairwise_rankings (
        run_id       INTEGER PRIMARY KEY NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        judge        TEXT NOT NULL,
        report_json  TEXT NOT NULL,
        created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    ) STRICT;
    "#,
    // Version 5: parameter sweeps. Each setting of a sweep is an ordinary run; the sweep
    // keeps which runs are its settings, with the setting's values as JSON.
    r#"
    CREATE TABLE sweeps (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        eval_set      TEXT NOT NULL,
        eval_set_path TEXT NOT NULL,
        spec_json     TEXT NOT NULL,
        started_at    TEXT NOT NULL,
        created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    ) STRICT;
    CREATE TABLE sweep_runs (
        sweep_id     INTEGER NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
        run_id       INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        setting_json TEXT NOT NULL,
        PRIMARY KEY (sweep_id, run_id)
    ) STRICT;
    "#,
    // Version 6: sweeps of digit-CNN training runs (`vision digits sweep`).
    r#"
    CREATE TABLE training_sweep_runs (
        sweep_id        INTEGER NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
        training_run_id INTEGER NOT NULL REFERENCES training_runs (id) ON DELETE CASCADE,
        setting_json    TEXT NOT NULL,
        PRIMARY KEY (sweep_id, training_run_id)
    ) STRICT;
    "#,
    // Version 7: each cell of an agent evaluation links to the agent run holding its
    // trace, and agent runs keep the rest of the trace (tool-call convention, error), so
    // an interrupted evaluation resumes by scoring its finished questions again instead
    // of asking them again.
    r#"
    ALTER TABLE agent_runs ADD COLUMN convention TEXT;
    ALTER TABLE agent_runs ADD COLUMN error TEXT;
    CREATE TABLE agent_cells (
        run_id       INTEGER NOT NULL,
        column_index INTEGER NOT NULL,
        case_index   INTEGER NOT NULL,
        agent_run_id INTEGER NOT NULL REFERENCES agent_runs (id) ON DELETE CASCADE,
        PRIMARY KEY (run_id, column_index, case_index),
        FOREIGN KEY (run_id, column_index, case_index)
            REFERENCES cells (run_id, column_index, case_index) ON DELETE CASCADE
    ) STRICT;
    "#,
    // Version 8: each generated token's log-probability, as a JSON list, for cells whose
    // assertions need it (`perplexity`) and for their cached generations.
    r#"
    ALTER TABLE cells ADD COLUMN logprobs_json TEXT;
    ALTER TABLE generations ADD COLUMN logprobs_json TEXT;
    "#,
    // Version 9: prompt optimizations (`promptlab optimize`). Each candidate is a prompt
    // version with its lineage; its evaluation is an ordinary run (one column of it), so
    // every comparison and report works on it. `state_json` holds the split and the
    // verdict; `evaluation_json` a candidate's per-case outcomes on the tuning part.
    r#"
    CREATE TABLE optimizations (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        eval_set      TEXT NOT NULL,
        eval_set_path TEXT NOT NULL,
        config_json   TEXT NOT NULL,
        state_json    TEXT NOT NULL,
        started_at    TEXT NOT NULL,
        finished_at   TEXT,
        status        TEXT NOT NULL DEFAULT 'running'
                      CHECK (status IN ('running', 'finished', 'cancelled')),
        created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    ) STRICT;
    CREATE TABLE optimize_candidates (
        optimization_id INTEGER NOT NULL REFERENCES optimizations (id) ON DELETE CASCADE,
        number          INTEGER NOT NULL CHECK (number >= 0),
        round           INTEGER NOT NULL CHECK (round >= 0),
        parent          INTEGER,
        strategy        TEXT NOT NULL,
        prompt_json     TEXT NOT NULL,
        proposal        TEXT NOT NULL,
        rejected        TEXT,
        run_id          INTEGER REFERENCES runs (id) ON DELETE SET NULL,
        evaluation_json TEXT,
        PRIMARY KEY (optimization_id, number)
    ) STRICT;
    "#,
];

pub(crate) fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// Checks a version read from the file and returns how many migrations it has
/// already had.
pub(crate) fn check_version(path: &Path, found: i64) -> Result<usize, StoreError> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    // user_version is a signed header field that promptlab never sets below 0.
    usize::try_from(found).map_err(|_| StoreError::Corrupt {
        path: path.to_path_buf(),
        message: format!("schema version {found} (user_version) was never written by promptlab"),
    })
}

/// Brings the database up to `SCHEMA_VERSION`. Called after the caller has
/// checked the version once without a lock; it is checked again under the
/// write lock because another process may have migrated (or a newer promptlab
/// may have upgraded) the file in between.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let action = "upgrading the schema";
    let sql_err = |e| StoreError::from_sqlite(path, action, e);

    // IMMEDIATE takes the write lock up front: two processes opening a fresh
    // database at once serialise here instead of both creating tables.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_err)?;
    // On error, dropping `tx` rolls back; nothing was written.
    let start = check_version(path, user_version(&tx).map_err(sql_err)?)?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(start) {
        tx.execute_batch(sql).map_err(|e| {
            StoreError::from_sqlite(
                path,
                &format!("migrating to schema version {}", index + 1),
                e,
            )
        })?;
    }
    // PRAGMA takes no bound parameters; the value is our own constant.
    tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
        .map_err(sql_err)?;
    tx.commit().map_err(sql_err)
}
