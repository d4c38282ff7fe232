//! Loading a model file in a child process before this process loads it.
//!
//! llama.cpp ends the whole process (`GGML_ASSERT`, `abort`) on some damaged files that
//! pass promptlab's header check — an expert count that contradicts the model, two
//! vocabulary entries with the same text — and nothing in-process can catch that. A child
//! that dies instead turns it into an error naming the file: `serve` keeps serving its
//! other models, `eval` reports the model and exits cleanly. A file that loaded once is
//! remembered (its path, size and modification time, and promptlab's version) on disk, so
//! each file is loaded twice only the first time it is used.

use std::collections::HashSet;
use std::io::Read;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use sha2::{Digest, Sha256};

use super::backend;
use crate::engine::EngineError;

/// The hidden subcommand of the `promptlab` binary that loads one file and exits:
/// `promptlab probe-model PATH`.
pub const PROBE_SUBCOMMAND: &str = "probe-model";

/// How long a child may take to load a file (a large model read from a slow disk).
const PROBE_TIMEOUT: Duration = Duration::from_secs(600);

/// The child's error output kept for the message (llama.cpp's backtrace can be long).
const KEPT_OUTPUT: usize = 64 * 1024;

static PROGRAM: OnceLock<PathBuf> = OnceLock::new();

/// Files that loaded in a child during this process's life.
static LOADED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// From now on, this process loads every GGUF file in a child first: `program` is the
/// promptlab binary, run as `program probe-model PATH`. Without this call (the library
/// used on its own, unit tests) files are loaded in-process only.
pub fn isolate_loads(program: PathBuf) {
    let _ = PROGRAM.set(program);
}

/// The child's side: loads the file with llama.cpp, creates a small context and decodes
/// one token (graph building has asserts of its own), then returns.
pub fn load_here(path: &Path) -> Result<(), EngineError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        EngineError::Load(format!("{}: {what}: {e}", path.display()))
    };
    let params = LlamaModelParams::default().with_n_gpu_layers(0);
    let model = LlamaModel::load_from_file(backend()?, path, &params)
        .map_err(|e| fail("llama.cpp could not load the model", &e))?;
    let context = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(64))
        .with_n_batch(64)
        .with_n_ubatch(64)
        .with_n_threads(1)
        .with_n_threads_batch(1);
    let mut ctx = model
        .new_context(backend()?, context)
        .map_err(|e| fail("cannot create a context", &e))?;
    let token = model.vocab().bos();
    let token = if token.0 >= 0 && token.0 < model.n_vocab() {
        token
    } else {
        llama_cpp_2::token::LlamaToken(0)
    };
    let mut batch = LlamaBatch::new(1, 1);
    batch
        .add(token, 0, &[0], true)
        .map_err(|e| fail("batch", &e))?;
    // An error here (an encoder-only model cannot decode) is not a crash: the load is
    // what is being tried.
    let _ = ctx.decode(&mut batch);
    Ok(())
}

/// Loads `path` in a child unless it loaded before; an error when the child crashed.
/// A child that reports an ordinary error (or cannot be started) is not an error here:
/// the in-process load that follows reports it the usual way.
pub(crate) fn check(path: &Path) -> Result<(), EngineError> {
    let Some(program) = PROGRAM.get() else {
        return Ok(());
    };
    let Some(key) = file_key(path) else {
        return Ok(());
    };
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    let loaded = loaded.get_or_insert_with(HashSet::new);
    if loaded.contains(&key) {
        return Ok(());
    }
    let marker = marker_dir().map(|dir| dir.join(&key));
    if marker.as_ref().is_some_and(|m| m.exists()) {
        loaded.insert(key);
        return Ok(());
    }
    match run_child(program, path) {
        ChildOutcome::Loaded => {
            if let Some(marker) = marker {
                // A marker that cannot be written costs a probe next time, nothing more.
                let _ = marker
                    .parent()
                    .map(std::fs::create_dir_all)
                    .transpose()
                    .and_then(|_| std::fs::write(&marker, path.display().to_string()));
            }
            loaded.insert(key);
            Ok(())
        }
        ChildOutcome::Refused => Ok(()),
        ChildOutcome::Crashed(how) => Err(EngineError::LoadCrashed(format!(
            "{}: llama.cpp crashed while loading this file ({how}); promptlab loaded it in a separate process first, so nothing else stopped. The file is damaged, or needs another llama.cpp than promptlab's",
            path.display()
        ))),
    }
}

enum ChildOutcome {
    Loaded,
    /// The child exited with an error of its own (the file is refused the usual way).
    Refused,
    Crashed(String),
}

fn run_child(program: &Path, path: &Path) -> ChildOutcome {
    let spawned = Command::new(program)
        .arg(PROBE_SUBCOMMAND)
        .arg(path)
        // ggml would attach a debugger to print a backtrace before aborting.
        .env("GGML_NO_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            tracing::warn!(
                "cannot start {} to load {} apart: {e}; loading it in-process",
                program.display(),
                path.display()
            );
            return ChildOutcome::Refused;
        }
    };
    // Read the error output as it comes, so a long one cannot fill the pipe and stall the
    // child.
    let reader = child.stderr.take().map(|mut stderr| {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut chunk = [0u8; 8192];
            while let Ok(n @ 1..) = stderr.read(&mut chunk) {
                kept.extend_from_slice(&chunk[..n]);
                if kept.len() > KEPT_OUTPUT {
                    kept.drain(..kept.len() - KEPT_OUTPUT);
                }
            }
            String::from_utf8_lossy(&kept).into_owned()
        })
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() < PROBE_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let output = reader.and_then(|r| r.join().ok()).unwrap_or_default();
    match status {
        None => ChildOutcome::Crashed(format!(
            "it did not finish loading within {} s",
            PROBE_TIMEOUT.as_secs()
        )),
        Some(status) if status.success() => ChildOutcome::Loaded,
        Some(status) => match crash_signal(&status) {
            Some(signal) => ChildOutcome::Crashed(describe_crash(signal, &output)),
            None => ChildOutcome::Refused,
        },
    }
}

/// The signal that ended the child, if one did (an abort, a segmentation fault).
#[cfg(unix)]
fn crash_signal(status: &std::process::ExitStatus) -> Option<String> {
    use std::os::unix::process::ExitStatusExt;
    status.signal().map(|signal| match signal {
        6 => "SIGABRT".to_string(),
        11 => "SIGSEGV".to_string(),
        7 => "SIGBUS".to_string(),
        8 => "SIGFPE".to_string(),
        4 => "SIGILL".to_string(),
        9 => "SIGKILL, perhaps out of memory".to_string(),
        n => format!("signal {n}"),
    })
}

/// On Windows an abort exits with code 3 and a crash with an NTSTATUS code.
#[cfg(not(unix))]
fn crash_signal(status: &std::process::ExitStatus) -> Option<String> {
    match status.code() {
        Some(3) => Some("abort".to_string()),
        Some(code) if code < 0 => Some(format!("exception {:#x}", code as u32)),
        _ => None,
    }
}

/// The assertion llama.cpp printed (its source file's name, not the build path), or the
/// last line of the child's error output.
fn describe_crash(signal: String, output: &str) -> String {
    let assertion = output
        .lines()
        .find(|line| line.contains("GGML_ASSERT") || line.contains("GGML_ABORT"))
        .or_else(|| output.lines().rev().find(|line| !line.trim().is_empty()))
        .map(|line| {
            let line = line.trim();
            // "/long/build/path/llama-model.cpp:1364: GGML_ASSERT(...) failed"
            match line.split_once(": ") {
                Some((place, rest)) if place.contains('/') => {
                    let file = place.rsplit('/').next().unwrap_or(place);
                    format!("{file}: {rest}")
                }
                _ => line.to_string(),
            }
        });
    match assertion {
        Some(text) => {
            let text: String = text.chars().take(300).collect();
            format!("{signal}: {text}")
        }
        None => signal,
    }
}

/// Identifies a file's content as loaded: its canonical path, size and modification time,
/// and promptlab's version (which fixes the llama.cpp it was built with).
fn file_key(path: &Path) -> Option<String> {
    let canonical = std::fs::canonicalize(path).ok()?;
    let meta = std::fs::metadata(&canonical).ok()?;
    let modified = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    let mut hash = Sha256::new();
    hash.update(env!("CARGO_PKG_VERSION"));
    hash.update([0]);
    hash.update(canonical.to_string_lossy().as_bytes());
    hash.update([0]);
    hash.update(meta.len().to_le_bytes());
    hash.update(modified.to_le_bytes());
    Some(format!("{:x}", hash.finalize()))
}

/// `$XDG_CACHE_HOME/promptlab/loaded`, else `~/.cache/promptlab/loaded`.
fn marker_dir() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(cache.join("promptlab").join("loaded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_is_described_by_its_assertion() {
        let output = "llama_model_loader: loaded meta data\n/root/.cargo/registry/src/x/llama.cpp/src/llama-model.cpp:1364: GGML_ASSERT(n_expert_used_max <= hparams.n_expert) failed\n";
        assert_eq!(
            describe_crash("SIGABRT".into(), output),
            "SIGABRT: llama-model.cpp:1364: GGML_ASSERT(n_expert_used_max <= hparams.n_expert) failed"
        );
        assert_eq!(
            describe_crash("SIGSEGV".into(), "loading\nsomething went wrong\n\n"),
            "SIGSEGV: something went wrong"
        );
        assert_eq!(describe_crash("signal 31".into(), ""), "signal 31");
    }

    #[test]
    fn a_file_key_changes_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        std::fs::write(&path, b"one").unwrap();
        let first = file_key(&path).unwrap();
        assert_eq!(file_key(&path).unwrap(), first);
        std::fs::write(&path, b"longer").unwrap();
        assert_ne!(file_key(&path).unwrap(), first);
        assert!(file_key(&dir.path().join("missing.gguf")).is_none());
    }
}
