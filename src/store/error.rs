//! Errors of the run store, and the one place where SQLite's result codes are
//! turned into them.
//!
//! SQLite reports most trouble through a handful of numeric codes whose default
//! messages ("database is locked", "attempt to write a readonly database") name
//! neither the file nor what promptlab was doing. Every error here names the
//! database file, and the variants a user can act on (another run holds the
//! lock, the disk is full, the file belongs to a newer promptlab) are separate
//! so the CLI and the TUI can say what to do about them.

use std::path::{Path, PathBuf};

use rusqlite::ffi::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file or its directory could not be opened or created for a reason
    /// not covered by a more specific variant.
    #[error("cannot open the run database {}: {message}", path.display())]
    Open { path: PathBuf, message: String },

    #[error(
        "the run database {} has schema version {found}, but this promptlab supports \
         versions up to {supported}; use a newer promptlab (the file was left unchanged)",
        path.display()
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    #[error(
        "{} is not a SQLite database (expected promptlab's run database); \
         move it aside or choose another path",
        path.display()
    )]
    NotADatabase { path: PathBuf },

    #[error(
        "the run database {} is locked by another process beyond the busy timeout; \
         is another promptlab run writing to it?",
        path.display()
    )]
    Locked { path: PathBuf },

    #[error(
        "cannot write the run database {}: the file or its directory is read-only",
        path.display()
    )]
    ReadOnly { path: PathBuf },

    /// SQLITE_FULL. Every write is one transaction, so whatever was being
    /// written was rolled back as a whole and nothing earlier is affected.
    #[error(
        "disk full while {action} in {}: it was not recorded; everything recorded earlier is safe",
        path.display()
    )]
    DiskFull { path: PathBuf, action: String },

    #[error("the run database {} has no run {run_id}", path.display())]
    NoSuchRun { path: PathBuf, run_id: i64 },

    /// The file holds something this code cannot read back: a value of the
    /// wrong type or range, an unknown status text, or pages SQLite itself
    /// reports as malformed.
    #[error("the run database {} holds unexpected data: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },

    /// The caller passed a value the database cannot hold faithfully.
    #[error("refusing to write to the run database {}: {message}", path.display())]
    InvalidInput { path: PathBuf, message: String },

    #[error("the run database {}: {action} failed: {message}", path.display())]
    Sqlite {
        path: PathBuf,
        action: String,
        message: String,
    },
}

impl StoreError {
    /// Maps a rusqlite error met while doing `action` on the database at `path`.
    pub(crate) fn from_sqlite(path: &Path, action: &str, err: rusqlite::Error) -> StoreError {
        let path = path.to_path_buf();
        match &err {
            rusqlite::Error::SqliteFailure(code, _) => match code.code {
                // BUSY is "another connection holds the lock past our busy
                // timeout"; LOCKED is the same conflict inside one process.
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => StoreError::Locked { path },
                ErrorCode::ReadOnly => StoreError::ReadOnly { path },
                ErrorCode::NotADatabase => StoreError::NotADatabase { path },
                ErrorCode::DiskFull => StoreError::DiskFull {
                    path,
                    action: action.to_string(),
                },
                ErrorCode::DatabaseCorrupt => StoreError::Corrupt {
                    path,
                    message: format!("SQLite reports the file is malformed ({err})"),
                },
                // SQLite says only "unable to open database file"; when the
                // file or directory has no write permission, that is the
                // diagnosis the user needs.
                ErrorCode::CannotOpen | ErrorCode::PermissionDenied if looks_read_only(&path) => {
                    StoreError::ReadOnly { path }
                }
                ErrorCode::CannotOpen => StoreError::Open {
                    path,
                    message: format!("{action}: {err}"),
                },
                _ => StoreError::Sqlite {
                    path,
                    action: action.to_string(),
                    message: err.to_string(),
                },
            },
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::Utf8Error(..) => StoreError::Corrupt {
                path,
                message: format!("{action}: {err}"),
            },
            _ => StoreError::Sqlite {
                path,
                action: action.to_string(),
                message: err.to_string(),
            },
        }
    }
}

/// Whether the database file or its directory cannot be written. Only
/// consulted after SQLite has failed to open the file, to choose the message.
/// It tries rather than reading permission bits, because root ignores those
/// while an immutable file or a read-only mount stops root too.
fn looks_read_only(path: &Path) -> bool {
    use std::io::ErrorKind::{PermissionDenied, ReadOnlyFilesystem};
    let refused = |e: std::io::Error| matches!(e.kind(), PermissionDenied | ReadOnlyFilesystem);

    // Opening for writing without truncating leaves the file as it was.
    if path.exists()
        && let Err(e) = std::fs::OpenOptions::new().append(true).open(path)
    {
        return refused(e);
    }
    // SQLite must create its -wal and -shm files beside the database.
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let probe = dir.join(format!(".promptlab-write-probe-{}", std::process::id()));
    match std::fs::File::create_new(&probe) {
        Ok(_) => {
            // Best effort: a probe we cannot remove is harmless.
            let _ = std::fs::remove_file(&probe);
            false
        }
        Err(e) => refused(e),
    }
}
