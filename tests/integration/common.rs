//! Shared helpers for the integration tests: temporary projects and the cached real models.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where scripts/fetch-models.sh keeps the real models.
pub fn models_cache() -> PathBuf {
    std::env::var_os("PROMPTLAB_MODELS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/promptlab/models")
        })
}

/// A real model file; a missing one is a setup error, not a skipped test.
pub fn real_model(file: &str) -> PathBuf {
    let path = models_cache().join(file);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-models.sh first",
        path.display()
    );
    path
}

pub const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const GEMMA: &str = "gemma-3-270m-q4_k_m.gguf";

/// A throwaway project folder with `prompts/`, `eval-sets/` and `models/`.
pub struct TempProject {
    pub dir: tempfile::TempDir,
}

impl TempProject {
    pub fn new() -> TempProject {
        let dir = tempfile::tempdir().expect("temp dir");
        for sub in ["prompts", "eval-sets", "models"] {
            std::fs::create_dir(dir.path().join(sub)).expect("create folder");
        }
        TempProject { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(&path, text).expect("write file");
        path
    }
}

/// Runs the promptlab binary in `cwd` and waits for it.
pub fn promptlab(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_promptlab"))
        .args(args)
        .current_dir(cwd)
        // Tables fit COLUMNS when it is set; tests read them as a pipe gets them.
        .env_remove("COLUMNS")
        .output()
        .expect("run promptlab")
}

/// Both streams, for assertions and failure messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Where scripts/fetch-vision.sh keeps ONNX Runtime, the detector and the photos.
pub fn vision_cache() -> PathBuf {
    std::env::var_os("PROMPTLAB_VISION_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/promptlab/vision")
        })
}

/// A file in the vision cache; a missing one is a setup error, not a skipped test.
pub fn vision_asset(relative: &str) -> String {
    let path = vision_cache().join(relative);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-vision.sh",
        path.display()
    );
    path.display().to_string()
}

/// The port a `promptlab serve --listen 127.0.0.1:0` child bound, from the line it prints
/// once listening (a port chosen in advance can be taken by another socket first).
pub fn served_port(child: &mut std::process::Child) -> u16 {
    use std::io::BufRead;
    let stderr = child.stderr.take().expect("stderr piped");
    let mut lines = std::io::BufReader::new(stderr).lines();
    let line = lines
        .next()
        .expect("the server printed nothing")
        .expect("readable stderr");
    let port = line
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not a listening line: {line}"));
    // Keep draining so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    port
}

/// Copies a folder and everything in it.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Serves `app` on a free loopback port from a thread of its own; returns the port.
pub fn serve_on_loopback(app: axum::Router) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    port
}
