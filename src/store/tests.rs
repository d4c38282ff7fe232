//! Tests of the run store against real database files in temporary
//! directories. `crash` holds the kill-the-writer test, which needs a child
//! process.

mod crash;
mod failures;

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::*;

pub(super) fn new_run(eval_set_path: &str, cell_count: usize) -> NewRun {
    NewRun {
        eval_set: "greetings".to_string(),
        eval_set_path: eval_set_path.to_string(),
        config_json: r#"{"models":["tiny.gguf"],"seed":42}"#.to_string(),
        started_at: "2025-01-02T03:04:05Z".to_string(),
        cell_count,
    }
}

pub(super) fn cell(column_index: usize, case_index: usize) -> StoredCell {
    StoredCell {
        column_index,
        case_index,
        column_id: format!("prompt-a@model-{column_index}"),
        case_id: format!("case-{case_index}"),
        cache_key: format!("key-{column_index}-{case_index}"),
        prompt_json: r#"[{"role":"user","content":"Say hi"}]"#.to_string(),
        output: format!("Hi! ✓ «{column_index}/{case_index}»"),
        error: None,
        passed: case_index.is_multiple_of(2),
        score: 0.5,
        assertions_json: r#"[{"kind":"contains","passed":true}]"#.to_string(),
        finish: Some("stop".to_string()),
        prompt_tokens: 12,
        completion_tokens: 7,
        ttft_ms: 10.25,
        latency_ms: 80.5,
        tokens_per_s: Some(87.0),
        cached: false,
        logprobs_json: None,
    }
}

pub(super) fn temp_store() -> (TempDir, PathBuf, RunStore) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join(".promptlab").join("runs.db");
    let store = RunStore::open(&path).expect("open a new store");
    (dir, path, store)
}

fn generation_of(cell: &StoredCell) -> CachedGeneration {
    CachedGeneration {
        output: cell.output.clone(),
        finish: cell.finish.clone(),
        prompt_tokens: cell.prompt_tokens,
        completion_tokens: cell.completion_tokens,
        ttft_ms: cell.ttft_ms,
        latency_ms: cell.latency_ms,
        tokens_per_s: cell.tokens_per_s,
        logprobs_json: cell.logprobs_json.clone(),
    }
}

/// Issue 21: History's `c` needs to tell a cached re-run (the same requests) from a run
/// after an edit; the digest of the cells' cache keys does, in any recording order.
#[test]
fn config_digest_is_equal_for_copies_and_differs_after_an_edit() {
    let (_dir, _path, mut store) = temp_store();
    let cells = [cell(0, 0), cell(0, 1), cell(1, 0)];
    let original = store.create_run(&new_run("e.yaml", 3)).unwrap();
    for c in &cells {
        store.record_cell(original, c).unwrap();
    }
    let copy = store.create_run(&new_run("e.yaml", 3)).unwrap();
    for c in cells.iter().rev() {
        let mut cached = c.clone();
        cached.cached = true;
        store.record_cell(copy, &cached).unwrap();
    }
    let edited = store.create_run(&new_run("e.yaml", 3)).unwrap();
    for (i, c) in cells.iter().enumerate() {
        let mut c = c.clone();
        if i == 1 {
            c.cache_key = "key-after-an-edit".into();
        }
        store.record_cell(edited, &c).unwrap();
    }
    let empty = store.create_run(&new_run("e.yaml", 3)).unwrap();

    let digest = |id| store.run(id).unwrap().unwrap().config_digest;
    assert!(digest(original).is_some());
    assert_eq!(digest(copy), digest(original));
    assert_ne!(digest(edited), digest(original));
    assert_eq!(digest(empty), None);
    let listed: Vec<Option<String>> = store
        .runs()
        .unwrap()
        .into_iter()
        .map(|r| r.config_digest)
        .collect();
    assert_eq!(
        listed,
        [
            digest(empty),
            digest(edited),
            digest(copy),
            digest(original)
        ]
    );
}

#[test]
fn run_with_cells_round_trips() {
    let (_dir, _path, mut store) = temp_store();
    let id = store.create_run(&new_run("evals/greet.yaml", 4)).unwrap();

    let mut errored = cell(1, 0);
    errored.error = Some("model failed to load".to_string());
    errored.output = String::new();
    errored.passed = false;
    errored.score = 0.0;
    errored.finish = None;
    errored.tokens_per_s = None;
    // Recorded out of order: cells() must still return matrix order.
    let cells = vec![cell(0, 0), cell(0, 1), errored, cell(1, 1)];
    for index in [3, 1, 2, 0] {
        store.record_cell(id, &cells[index]).unwrap();
    }
    store
        .finish_run(id, "2025-01-02T03:05:00Z", RunStatus::Finished)
        .unwrap();

    assert_eq!(store.cells(id).unwrap(), cells);
    assert_eq!(
        store.run_config(id).unwrap().as_deref(),
        Some(r#"{"models":["tiny.gguf"],"seed":42}"#)
    );
    let row = store.run(id).unwrap().expect("the run exists");
    assert!(row.config_digest.is_some());
    assert_eq!(
        row,
        RunRow {
            id,
            eval_set: "greetings".to_string(),
            eval_set_path: "evals/greet.yaml".to_string(),
            started_at: "2025-01-02T03:04:05Z".to_string(),
            finished_at: Some("2025-01-02T03:05:00Z".to_string()),
            status: RunStatus::Finished,
            cell_count: 4,
            cells_done: 4,
            passed: 1,
            label: None,
            cached: 0,
            columns: vec!["prompt-a@model-0".into(), "prompt-a@model-1".into()],
            config_digest: row.config_digest.clone(),
        }
    );

    store.set_label(id, Some("baseline")).unwrap();
    assert_eq!(
        store.run(id).unwrap().unwrap().label.as_deref(),
        Some("baseline")
    );
    assert_eq!(store.run(id + 1).unwrap(), None);
    assert_eq!(store.run_config(id + 1).unwrap(), None);
    assert_eq!(store.cells(id + 1).unwrap(), vec![]);
}

#[test]
fn generated_cells_fill_the_cache_but_errored_and_cached_cells_do_not() {
    let (_dir, _path, mut store) = temp_store();
    let id = store.create_run(&new_run("evals/greet.yaml", 3)).unwrap();

    let generated = cell(0, 0);
    let mut errored = cell(0, 1);
    errored.error = Some("context overflow".to_string());
    let mut cached = cell(0, 2);
    cached.cached = true;
    for c in [&generated, &errored, &cached] {
        store.record_cell(id, c).unwrap();
    }

    assert_eq!(
        store.cached_generation(&generated.cache_key).unwrap(),
        Some(generation_of(&generated))
    );
    assert_eq!(store.cached_generation(&errored.cache_key).unwrap(), None);
    assert_eq!(store.cached_generation(&cached.cache_key).unwrap(), None);

    let keys = vec![
        generated.cache_key.clone(),
        errored.cache_key.clone(),
        generated.cache_key.clone(),
        "never-seen".to_string(),
    ];
    let found = store.cached_generations(&keys).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[&generated.cache_key], generation_of(&generated));
    assert!(store.cached_generations(&[]).unwrap().is_empty());
}

#[test]
fn bulk_cache_lookup_spans_several_queries() {
    let (_dir, _path, mut store) = temp_store();
    let count = KEYS_PER_QUERY + 37;
    let id = store.create_run(&new_run("evals/big.yaml", count)).unwrap();
    for case in 0..count {
        store.record_cell(id, &cell(0, case)).unwrap();
    }
    let mut keys: Vec<String> = (0..count).map(|case| cell(0, case).cache_key).collect();
    keys.extend((0..KEYS_PER_QUERY).map(|n| format!("missing-{n}")));
    let found = store.cached_generations(&keys).unwrap();
    assert_eq!(found.len(), count);
    assert_eq!(found["key-0-536"], generation_of(&cell(0, 536)));
}

#[test]
fn recording_a_cell_twice_replaces_it() {
    let (_dir, _path, mut store) = temp_store();
    let id = store.create_run(&new_run("evals/greet.yaml", 1)).unwrap();
    store.record_cell(id, &cell(0, 0)).unwrap();
    let mut again = cell(0, 0);
    again.output = "Hello again".to_string();
    again.passed = false;
    store.record_cell(id, &again).unwrap();

    assert_eq!(store.cells(id).unwrap(), vec![again.clone()]);
    assert_eq!(
        store.cached_generation(&again.cache_key).unwrap(),
        Some(generation_of(&again))
    );
    let row = store.run(id).unwrap().unwrap();
    assert_eq!((row.cells_done, row.passed), (1, 0));
}

/// A store written before agent evaluations could resume (version 6) upgrades in place:
/// its agent runs stay listed, and their traces, lacking a convention, are not offered
/// for resuming.
#[test]
fn a_version_6_store_gains_agent_cells_and_keeps_its_agent_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for migration in &schema::MIGRATIONS[..6] {
            conn.execute_batch(migration).unwrap();
        }
        conn.execute_batch(
            "PRAGMA user_version = 6;
             INSERT INTO agent_runs (started_at, model, question, tools_json, status, answer)
             VALUES ('t', 'qwen', '2+2?', '[\"calculator\"]', 'answered', '4');",
        )
        .unwrap();
    }
    let mut store = RunStore::open(&path).unwrap();
    assert_eq!(schema::user_version(&store.conn).unwrap(), SCHEMA_VERSION);
    let rows = store.agent_runs().unwrap();
    assert_eq!((rows.len(), rows[0].answer.as_deref()), (1, Some("4")));
    let run = store.create_run(&new_run("/x/agent.yaml", 1)).unwrap();
    store
        .record_agent_cell(run, &cell(0, 0), rows[0].id)
        .unwrap();
    assert!(store.agent_cell_traces(run).unwrap().is_empty());
}

#[test]
fn an_empty_file_is_migrated_to_the_current_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    std::fs::write(&path, b"").unwrap();

    let store = RunStore::open(&path).unwrap();
    assert_eq!(schema::user_version(&store.conn).unwrap(), SCHEMA_VERSION);
    let tables: Vec<String> = store
        .conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        tables,
        [
            "agent_cells",
            "agent_runs",
            "cells",
            "generations",
            "optimizations",
            "optimize_candidates",
            "pairwise_rankings",
            "runs",
            "sweep_runs",
            "sweeps",
            "training_runs",
            "training_sweep_runs"
        ]
    );
    let mode: String = store
        .conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(store);

    // Opening again finds nothing to do and keeps the data.
    let store = RunStore::open(&path).unwrap();
    store.create_run(&new_run("a.yaml", 0)).unwrap();
    drop(store);
    let store = RunStore::open(&path).unwrap();
    assert_eq!(store.runs().unwrap().len(), 1);
}

#[test]
fn open_creates_missing_parent_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir
        .path()
        .join("project")
        .join(".promptlab")
        .join("runs.db");
    RunStore::open(&path).unwrap();
    assert!(path.is_file());
}

#[test]
fn runs_are_listed_newest_first_with_counts() {
    let (_dir, _path, mut store) = temp_store();
    let first = store.create_run(&new_run("evals/a.yaml", 3)).unwrap();
    let second = store.create_run(&new_run("evals/b.yaml", 2)).unwrap();
    for c in [cell(0, 0), cell(0, 1), cell(0, 2)] {
        store.record_cell(first, &c).unwrap();
    }
    store.record_cell(second, &cell(0, 0)).unwrap();

    let runs = store.runs().unwrap();
    let summary: Vec<_> = runs
        .iter()
        .map(|r| (r.id, r.status, r.cell_count, r.cells_done, r.passed))
        .collect();
    assert_eq!(
        summary,
        [
            (second, RunStatus::Running, 2, 1, 1),
            (first, RunStatus::Running, 3, 3, 2),
        ]
    );
}

#[test]
fn latest_resumable_picks_the_newest_incomplete_unfinished_run() {
    let (_dir, _path, mut store) = temp_store();
    let set = "evals/a.yaml";
    assert_eq!(store.latest_resumable(set).unwrap(), None);

    let cancelled = store.create_run(&new_run(set, 2)).unwrap();
    store.record_cell(cancelled, &cell(0, 0)).unwrap();
    store
        .finish_run(cancelled, "t1", RunStatus::Cancelled)
        .unwrap();
    assert_eq!(store.latest_resumable(set).unwrap(), Some(cancelled));

    // Complete runs are not resumable whatever their status; finished runs
    // are not resumable however few cells they have.
    let complete = store.create_run(&new_run(set, 1)).unwrap();
    store.record_cell(complete, &cell(0, 0)).unwrap();
    let finished_short = store.create_run(&new_run(set, 5)).unwrap();
    store
        .finish_run(finished_short, "t2", RunStatus::Finished)
        .unwrap();
    // Another eval set's runs do not count.
    store.create_run(&new_run("evals/other.yaml", 9)).unwrap();
    assert_eq!(store.latest_resumable(set).unwrap(), Some(cancelled));

    // A run still marked running (its process died) is resumable.
    let died = store.create_run(&new_run(set, 3)).unwrap();
    assert_eq!(store.latest_resumable(set).unwrap(), Some(died));

    store.finish_run(died, "t3", RunStatus::Finished).unwrap();
    store.resume_run(cancelled).unwrap();
    let row = store.run(cancelled).unwrap().unwrap();
    assert_eq!((row.status, row.finished_at), (RunStatus::Running, None));
    assert_eq!(store.latest_resumable(set).unwrap(), Some(cancelled));
}

#[test]
fn integrity_check_passes_on_a_used_database() {
    let (_dir, _path, mut store) = temp_store();
    let id = store.create_run(&new_run("evals/a.yaml", 2)).unwrap();
    store.record_cell(id, &cell(0, 0)).unwrap();
    assert!(store.integrity_check().unwrap());
}

#[test]
fn deleting_a_run_deletes_its_cells_but_keeps_the_cache() {
    let (_dir, _path, mut store) = temp_store();
    let id = store.create_run(&new_run("evals/a.yaml", 1)).unwrap();
    store.record_cell(id, &cell(0, 0)).unwrap();
    store
        .conn
        .execute("DELETE FROM runs WHERE id = ?1", [id])
        .unwrap();
    let cells: i64 = store
        .conn
        .query_row("SELECT count(*) FROM cells", [], |row| row.get(0))
        .unwrap();
    assert_eq!(cells, 0, "foreign_keys must be on for ON DELETE CASCADE");
    assert!(store.cached_generation("key-0-0").unwrap().is_some());
    // AUTOINCREMENT: the id of a deleted run is not reused.
    assert!(store.create_run(&new_run("evals/a.yaml", 1)).unwrap() > id);
}

pub(super) fn assert_path_named(err: &StoreError, path: &Path) {
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "error does not name {}: {message}",
        path.display()
    );
}

#[test]
fn a_pairwise_ranking_is_kept_per_run_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let store = RunStore::open(&dir.path().join("runs.db")).unwrap();
    let run = store.create_run(&new_run("set", 2)).unwrap();
    assert_eq!(store.pairwise_json(run).unwrap(), None);
    store.save_pairwise(run, "qwen", "{\"a\": 1}").unwrap();
    store.save_pairwise(run, "qwen", "{\"a\": 2}").unwrap();
    assert_eq!(
        store.pairwise_json(run).unwrap().as_deref(),
        Some("{\"a\": 2}")
    );
    assert!(
        store.save_pairwise(run + 100, "qwen", "{}").is_err(),
        "no such run"
    );
}
