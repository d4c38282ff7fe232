//! Killing a writer at arbitrary moments never leaves a damaged database or a
//! partial cell.
//!
//! The parent test re-runs this test binary as a child (selecting
//! `crash_child` with an environment variable, the usual way to get a second
//! process from a test), lets it record cells in a loop, SIGKILLs it, and then
//! checks the database from the outside. Every cell the child writes is derived
//! from its position, so the parent can tell a complete cell from a damaged one
//! and a missing cache entry from a present one.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

const CHILD_DB_ENV: &str = "PROMPTLAB_STORE_CRASH_CHILD_DB";
/// Printed by the child once its run exists. Searched for anywhere in a line:
/// the test harness prints "test ... crash_child ... " before the test's own
/// output, on the same line.
const READY: &str = "crash-child-ready";
const CASES_PER_COLUMN: usize = 50;
const CELLS_PER_RUN: usize = 100_000;
/// The child stops by itself after this long, should the parent fail to kill it.
const CHILD_LIFETIME: Duration = Duration::from_secs(30);

/// The cell the child records at position `n` of run `run_id`: sizes vary
/// from tiny to several database pages, and every 7th cell failed and every
/// 5th came from the cache, so both branches of `record_cell` are killed.
fn crash_cell(run_id: i64, n: usize) -> StoredCell {
    let column_index = n / CASES_PER_COLUMN;
    let case_index = n % CASES_PER_COLUMN;
    let errored = n % 7 == 3;
    let size = (n * 7919) % 24_000;
    StoredCell {
        column_index,
        case_index,
        column_id: format!("col-{column_index}"),
        case_id: format!("case-{case_index}"),
        cache_key: format!("run-{run_id}-cell-{n}"),
        prompt_json: format!(r#"[{{"role":"user","content":"cell {n}"}}]"#),
        output: format!("<{n}>").repeat(size / 4 + 1),
        error: errored.then(|| format!("error in cell {n}")),
        passed: n.is_multiple_of(3),
        score: n as f64 / 10.0,
        assertions_json: format!(r#"[{{"n":{n}}}]"#),
        finish: n.is_multiple_of(2).then(|| "stop".to_string()),
        prompt_tokens: n as u32,
        completion_tokens: (n * 2) as u32,
        ttft_ms: n as f64 + 0.25,
        latency_ms: n as f64 + 0.5,
        tokens_per_s: (!n.is_multiple_of(4)).then_some(n as f64 * 1.5),
        cached: n % 5 == 1,
        logprobs_json: None,
    }
}

fn makes_generation(cell: &StoredCell) -> bool {
    cell.error.is_none() && !cell.cached
}

/// Runs only in the child process; in a normal test run it returns at once.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CHILD_DB_ENV) else {
        return;
    };
    let mut store = RunStore::open(Path::new(&path)).expect("child opens the store");
    let run_id = store
        .create_run(&new_run("evals/crash.yaml", CELLS_PER_RUN))
        .expect("child creates a run");
    println!("{READY} run {run_id}");
    let deadline = Instant::now() + CHILD_LIFETIME;
    for n in 0..CELLS_PER_RUN {
        if Instant::now() > deadline {
            break;
        }
        store
            .record_cell(run_id, &crash_cell(run_id, n))
            .expect("child records a cell");
    }
}

/// Kills the child if the parent test fails before doing so.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_child(db: &Path) -> KillOnDrop {
    // Test names leave out the crate name that module_path! starts with.
    let module = module_path!();
    let module = module.split_once("::").map_or(module, |(_, rest)| rest);
    let child = Command::new(std::env::current_exe().unwrap())
        .args([&format!("{module}::crash_child"), "--exact", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(CHILD_DB_ENV, db)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the test binary as a child");
    KillOnDrop(child)
}

/// Blocks until the child prints its ready line; panics with its stderr if
/// it exits first.
fn wait_until_ready(child: &mut KillOnDrop) {
    let stdout = child.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains(READY) => return,
            Some(Ok(_)) => continue,
            _ => {
                let mut stderr = String::new();
                if let Some(mut err) = child.0.stderr.take() {
                    let _ = err.read_to_string(&mut stderr);
                }
                panic!("child exited before it was ready:\n{stderr}");
            }
        }
    }
}

/// Checks every run the children left: each holds exactly the first N cells
/// it was given, all complete, and the cache holds exactly the generations of
/// those cells. Returns the number of cells found.
fn check_database(path: &Path) -> usize {
    let store = RunStore::open(path).expect("the database opens after a kill");
    assert!(store.integrity_check().unwrap(), "integrity_check failed");
    let generations = store
        .conn
        .query_row("SELECT count(*) FROM generations", [], |row| {
            rows::get_usize(row, 0)
        })
        .unwrap();

    let mut total = 0;
    let mut expected_generations = 0;
    let runs = store.runs().unwrap();
    for run in &runs {
        assert_eq!(run.status, RunStatus::Running, "run {}", run.id);
        let cells = store.cells(run.id).unwrap();
        assert_eq!(cells.len(), run.cells_done);
        for (n, cell) in cells.iter().enumerate() {
            let expected = crash_cell(run.id, n);
            // Cells are written in order, so a gap or a damaged cell shows up
            // as a mismatch at the first bad position. The messages stay short:
            // outputs run to tens of kilobytes.
            assert!(
                cell == &expected,
                "run {} cell {n} is not what the child wrote (output {} of {} bytes)",
                run.id,
                cell.output.len(),
                expected.output.len()
            );
            let generation = store.cached_generation(&cell.cache_key).unwrap();
            if makes_generation(cell) {
                assert!(
                    generation == Some(super::generation_of(cell)),
                    "run {} cell {n}: its cache entry is {}",
                    run.id,
                    if generation.is_some() {
                        "wrong"
                    } else {
                        "missing"
                    }
                );
                expected_generations += 1;
            } else {
                assert!(
                    generation.is_none(),
                    "run {} cell {n}: errored or cached, yet it made a cache entry",
                    run.id
                );
            }
        }
        total += cells.len();
    }
    // No generation without its cell (the one in flight at the kill).
    assert_eq!(generations, expected_generations, "stray cache entries");
    // The newest run is the one a resume would pick up.
    if let Some(newest) = runs.first() {
        assert_eq!(
            store.latest_resumable("evals/crash.yaml").unwrap(),
            Some(newest.id)
        );
    }
    total
}

#[test]
fn a_killed_writer_leaves_only_complete_cells() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".promptlab").join("runs.db");
    // The first kill may land while the child is still starting or migrating
    // the new file; the others while it writes cells, at different depths.
    let kills = [
        (false, 2),
        (false, 30),
        (true, 0),
        (true, 15),
        (true, 120),
        (true, 400),
    ];
    let mut seen = Vec::new();
    for (wait_for_ready, delay_ms) in kills {
        let mut child = spawn_child(&path);
        if wait_for_ready {
            wait_until_ready(&mut child);
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.0.kill().expect("kill the child");
        let status = child.0.wait().unwrap();
        assert!(!status.success(), "the child ended before it was killed");
        seen.push(check_database(&path));
    }
    eprintln!("cells present after each kill: {seen:?}");
    assert!(
        seen.last().is_some_and(|&n| n > 0),
        "no child recorded any cell, so nothing was tested: {seen:?}"
    );
}
