//! The ways opening or writing the run database can fail, each checked for the
//! error a user would see and for the file being left as it was.

use std::fs;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::*;

/// Files in `dir`, to check that a refused open left no journal behind.
fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn future_database(path: &Path, journal_mode: &str) {
    let conn = Connection::open(path).unwrap();
    conn.query_row(&format!("PRAGMA journal_mode = {journal_mode}"), [], |_| {
        Ok(())
    })
    .unwrap();
    conn.execute_batch(
        "CREATE TABLE runs_v999 (id INTEGER PRIMARY KEY, shape TEXT);
         INSERT INTO runs_v999 (shape) VALUES ('from the future');
         PRAGMA user_version = 999;",
    )
    .unwrap();
}

#[test]
fn a_newer_schema_is_refused_and_left_byte_identical() {
    for journal_mode in ["delete", "wal"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.db");
        future_database(&path, journal_mode);
        let before = fs::read(&path).unwrap();
        let files_before = file_names(dir.path());

        let err = RunStore::open(&path).expect_err("a newer schema is refused");
        assert!(
            matches!(err, StoreError::NewerSchema { found: 999, supported, .. } if supported == SCHEMA_VERSION),
            "{err:?}"
        );
        assert_path_named(&err, &path);
        let message = err.to_string();
        assert!(message.contains("999") && message.contains(&SCHEMA_VERSION.to_string()));

        assert_eq!(
            fs::read(&path).unwrap(),
            before,
            "{journal_mode}: file altered"
        );
        assert_eq!(file_names(dir.path()), files_before, "{journal_mode}");
    }
}

#[test]
fn a_negative_schema_version_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = -1")
        .unwrap();
    let err = RunStore::open(&path).err().unwrap();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
}

#[test]
fn a_text_file_is_refused_as_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    // Both shorter and longer than a database page.
    for (name, text) in [
        ("short.db", "hello\n".to_string()),
        ("long.db", "not a database\n".repeat(1000)),
    ] {
        let path = dir.path().join(name);
        fs::write(&path, &text).unwrap();
        let err = RunStore::open(&path).expect_err("a text file is refused");
        assert!(matches!(err, StoreError::NotADatabase { .. }), "{err:?}");
        assert_path_named(&err, &path);
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
    }
}

#[test]
fn open_of_a_new_database_locked_by_another_writer_fails_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let holder = Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let err = RunStore::open_with_timeout(&path, timeout).expect_err("locked");
    let waited = started.elapsed();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert_path_named(&err, &path);
    assert!(
        waited >= timeout / 2,
        "gave up before the timeout: {waited:?}"
    );
    assert!(
        waited < timeout + Duration::from_secs(3),
        "waited {waited:?}"
    );

    holder.execute_batch("COMMIT").unwrap();
    RunStore::open_with_timeout(&path, timeout).expect("opens once the lock is gone");
}

#[test]
fn writes_to_a_database_locked_by_another_writer_fail_within_the_timeout() {
    let (_dir, path, _store) = temp_store();
    let holder = Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();

    // WAL lets a reader open while another process writes.
    let timeout = Duration::from_millis(300);
    let mut store = RunStore::open_with_timeout(&path, timeout).unwrap();
    assert_eq!(store.runs().unwrap(), vec![]);

    let started = Instant::now();
    let err = store.create_run(&new_run("a.yaml", 1)).expect_err("locked");
    let waited = started.elapsed();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert_path_named(&err, &path);
    assert!(
        waited >= timeout / 2,
        "gave up before the timeout: {waited:?}"
    );
    assert!(
        waited < timeout + Duration::from_secs(3),
        "waited {waited:?}"
    );

    holder.execute_batch("COMMIT").unwrap();
    let id = store.create_run(&new_run("a.yaml", 1)).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let err = store.record_cell(id, &cell(0, 0)).expect_err("locked");
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    holder.execute_batch("ROLLBACK").unwrap();
    store.record_cell(id, &cell(0, 0)).unwrap();
}

#[test]
fn a_full_disk_loses_only_the_cell_being_written() {
    let (_dir, path, mut store) = temp_store();
    let id = store.create_run(&new_run("a.yaml", 100)).unwrap();
    // SQLite reports SQLITE_FULL when the file would outgrow max_page_count,
    // exactly as when the disk fills.
    let pages: i64 = store
        .conn
        .query_row("PRAGMA page_count", [], |row| row.get(0))
        .unwrap();
    store
        .conn
        .execute_batch(&format!("PRAGMA max_page_count = {}", pages + 40))
        .unwrap();

    let mut recorded = Vec::new();
    let err = (0..100)
        .find_map(|case| {
            let mut c = cell(0, case);
            c.output = "x".repeat(20_000);
            match store.record_cell(id, &c) {
                Ok(()) => {
                    recorded.push(c);
                    None
                }
                Err(e) => Some((c, e)),
            }
        })
        .expect("the page limit is reached");
    let (lost, err) = err;
    assert!(matches!(err, StoreError::DiskFull { .. }), "{err:?}");
    assert_path_named(&err, &path);
    let message = err.to_string();
    assert!(
        message.contains("disk full") && message.contains("safe"),
        "{message}"
    );

    assert!(!recorded.is_empty());
    assert_eq!(store.cells(id).unwrap(), recorded);
    assert_eq!(store.cached_generation(&lost.cache_key).unwrap(), None);
    assert!(store.integrity_check().unwrap());
}

#[test]
fn an_unknown_status_is_reported_as_corrupt_data() {
    let (_dir, path, store) = temp_store();
    let id = store.create_run(&new_run("a.yaml", 1)).unwrap();
    let other = Connection::open(&path).unwrap();
    other
        .execute_batch(
            "PRAGMA ignore_check_constraints = ON;
             UPDATE runs SET status = 'paused';",
        )
        .unwrap();
    for err in [store.runs().err(), store.run(id).err()] {
        let err = err.expect("bad status is an error");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("\"paused\""), "{err}");
    }
}

#[test]
fn nan_measurements_are_refused_by_name() {
    let (_dir, _path, mut store) = temp_store();
    let id = store.create_run(&new_run("a.yaml", 1)).unwrap();
    let mut c = cell(0, 0);
    c.tokens_per_s = Some(f64::NAN);
    let err = store.record_cell(id, &c).expect_err("NaN is refused");
    assert!(matches!(err, StoreError::InvalidInput { .. }), "{err:?}");
    assert!(err.to_string().contains("tokens_per_s"), "{err}");
    assert_eq!(store.cells(id).unwrap(), vec![]);
}

#[test]
fn writes_to_a_missing_run_name_the_run() {
    let (_dir, _path, mut store) = temp_store();
    for err in [
        store.record_cell(41, &cell(0, 0)).err(),
        store.finish_run(41, "t", RunStatus::Finished).err(),
        store.resume_run(41).err(),
    ] {
        let err = err.expect("missing run is an error");
        assert!(
            matches!(err, StoreError::NoSuchRun { run_id: 41, .. }),
            "{err:?}"
        );
    }
    assert_eq!(store.cached_generation("key-0-0").unwrap(), None);
}

#[test]
fn sqlite_result_codes_map_to_store_errors() {
    use rusqlite::ffi;
    let path = Path::new("/p/.promptlab/runs.db");
    let from = |code| {
        StoreError::from_sqlite(
            path,
            "recording a cell",
            rusqlite::Error::SqliteFailure(ffi::Error::new(code), None),
        )
    };
    assert!(matches!(from(ffi::SQLITE_BUSY), StoreError::Locked { .. }));
    assert!(matches!(
        from(ffi::SQLITE_LOCKED),
        StoreError::Locked { .. }
    ));
    assert!(matches!(
        from(ffi::SQLITE_READONLY),
        StoreError::ReadOnly { .. }
    ));
    assert!(matches!(
        from(ffi::SQLITE_READONLY_DIRECTORY),
        StoreError::ReadOnly { .. }
    ));
    assert!(matches!(
        from(ffi::SQLITE_NOTADB),
        StoreError::NotADatabase { .. }
    ));
    assert!(matches!(
        from(ffi::SQLITE_CORRUPT),
        StoreError::Corrupt { .. }
    ));
    let full = from(ffi::SQLITE_FULL);
    assert!(matches!(full, StoreError::DiskFull { .. }));
    assert_eq!(
        full.to_string(),
        "disk full while recording a cell in /p/.promptlab/runs.db: \
         it was not recorded; everything recorded earlier is safe"
    );
    assert!(matches!(from(ffi::SQLITE_IOERR), StoreError::Sqlite { .. }));
}

/// Makes `target` unwritable for the rest of its life and undoes that on
/// drop, so the temporary directory can be removed.
#[cfg(unix)]
struct Unwritable {
    target: PathBuf,
    mode: u32,
    immutable: bool,
}

#[cfg(unix)]
impl Unwritable {
    /// Tries chmod, then (as root, where chmod stops nothing) `chattr +i`.
    /// None when neither stops writes here, e.g. root without chattr.
    fn make(target: &Path, still_writable: impl Fn() -> bool) -> Option<Unwritable> {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(target).unwrap().permissions().mode();
        let read_only = if target.is_dir() { 0o555 } else { 0o444 };
        fs::set_permissions(target, fs::Permissions::from_mode(read_only)).unwrap();
        let mut guard = Unwritable {
            target: target.to_path_buf(),
            mode,
            immutable: false,
        };
        if !still_writable() {
            return Some(guard);
        }
        let chattr = std::process::Command::new("chattr")
            .arg("+i")
            .arg(target)
            .stderr(std::process::Stdio::null())
            .status();
        guard.immutable = chattr.is_ok_and(|s| s.success());
        (guard.immutable && !still_writable()).then_some(guard)
    }
}

#[cfg(unix)]
impl Drop for Unwritable {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        if self.immutable {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(&self.target)
                .status();
        }
        let _ = fs::set_permissions(&self.target, fs::Permissions::from_mode(self.mode));
    }
}

#[cfg(unix)]
fn skip(what: &str) {
    eprintln!(
        "SKIPPED {what}: chmod does not stop writes for this user (root) and chattr +i \
         is unavailable, so the read-only error was not checked"
    );
}

#[cfg(unix)]
#[test]
fn a_read_only_database_file_is_refused() {
    let (_dir, path, store) = temp_store();
    store.create_run(&new_run("a.yaml", 1)).unwrap();
    drop(store);
    let before = fs::read(&path).unwrap();

    let still_writable = || fs::OpenOptions::new().append(true).open(&path).is_ok();
    let Some(_guard) = Unwritable::make(&path, still_writable) else {
        return skip("a_read_only_database_file_is_refused");
    };
    let err = RunStore::open(&path).expect_err("a read-only file is refused");
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
    assert_path_named(&err, &path);
    assert_eq!(fs::read(&path).unwrap(), before);
}

#[cfg(unix)]
#[test]
fn a_database_in_a_read_only_directory_is_refused() {
    let (_dir, path, store) = temp_store();
    store.create_run(&new_run("a.yaml", 1)).unwrap();
    drop(store);
    let dir = path.parent().unwrap().to_path_buf();
    let fresh = dir.join("fresh.db");

    let probe = dir.join("probe");
    let still_writable = || {
        let created = fs::write(&probe, "x").is_ok();
        let _ = fs::remove_file(&probe);
        created
    };
    let Some(_guard) = Unwritable::make(&dir, still_writable) else {
        return skip("a_database_in_a_read_only_directory_is_refused");
    };
    // An existing database needs its -wal and -shm files created beside it;
    // a new one needs to be created itself.
    for target in [&path, &fresh] {
        let err = RunStore::open(target).expect_err("a read-only dir is refused");
        assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
        assert_path_named(&err, target);
    }
}
