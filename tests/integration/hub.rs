//! Models from the Hugging Face hub without the hub: a cache folder laid out as hf-hub
//! writes it (refs/main → snapshots/COMMIT/FILE → ../../blobs/SHA256), with the real
//! SmolLM2 file as the blob. `models pull` resolves from it offline and checks the
//! checksum, catalog `hub:` entries resolve from it, and `models add`/`rm` edit the
//! catalog. Downloading itself needs huggingface.co, which is not reachable here.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{SMOLLM2, TempProject, real_model, text};
use sha2::{Digest, Sha256};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn sha256(path: &Path) -> String {
    let mut file = std::fs::File::open(path).unwrap();
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A hub cache with `repo` holding `file` (the SmolLM2 bytes, or `bytes` if given).
fn hub_cache(root: &Path, repo: &str, file: &str, bytes: Option<&[u8]>) -> PathBuf {
    let folder = root.join(format!("models--{}", repo.replace('/', "--")));
    std::fs::create_dir_all(folder.join("refs")).unwrap();
    std::fs::create_dir_all(folder.join("blobs")).unwrap();
    std::fs::create_dir_all(folder.join("snapshots").join(COMMIT)).unwrap();
    std::fs::write(folder.join("refs/main"), COMMIT).unwrap();
    let model = real_model(SMOLLM2);
    // Named by the real file's hash; given other bytes, the content does not match it.
    let blob_name = sha256(&model);
    let blob = folder.join("blobs").join(&blob_name);
    match bytes {
        Some(bytes) => std::fs::write(&blob, bytes).unwrap(),
        None => {
            if std::fs::hard_link(&model, &blob).is_err() {
                std::fs::copy(&model, &blob).unwrap();
            }
        }
    }
    std::os::unix::fs::symlink(
        format!("../../blobs/{blob_name}"),
        folder.join("snapshots").join(COMMIT).join(file),
    )
    .unwrap();
    root.to_path_buf()
}

fn promptlab(project: &TempProject, cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_promptlab"))
        .args(args)
        .env("HF_HUB_CACHE", cache)
        .env("HF_HUB_OFFLINE", "1")
        .current_dir(project.root())
        .output()
        .unwrap()
}

#[test]
fn pull_resolves_from_the_hub_cache_offline_and_the_model_runs() {
    let project = TempProject::new();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = hub_cache(
        cache_dir.path(),
        "test-org/Tiny-Smol-GGUF",
        "tiny-smol.Q4_1.gguf",
        None,
    );

    let out = promptlab(
        &project,
        &cache,
        &["models", "pull", "test-org/Tiny-Smol-GGUF"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("added `tiny-smol.q4_1`"), "{said}");
    assert!(said.contains("from the local hub cache"), "{said}");
    let catalog = std::fs::read_to_string(project.root().join("models/models.yaml")).unwrap();
    assert!(
        catalog.contains("\"repo\":\"test-org/Tiny-Smol-GGUF\""),
        "{catalog}"
    );

    // The catalog names the hub file, not a path: it resolves from the cache.
    let out = promptlab(&project, &cache, &["models", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("llama"), "{}", text(&out));

    project.write(
        "prompts/hi.yaml",
        "name: hi\nparams: {max_tokens: 4}\nmessages:\n  - role: user\n    content: \"Say {{ word }}\"\n",
    );
    project.write(
        "eval-sets/hi.yaml",
        "prompts: [hi]\nmodels: [tiny-smol.q4_1]\ncases:\n  - vars: {word: yes}\n",
    );
    let out = promptlab(
        &project,
        &cache,
        &["eval", "eval-sets/hi.yaml", "--no-store"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Without the file in the cache the entry is listed as not fetched.
    let other = tempfile::tempdir().unwrap();
    let out = promptlab(&project, other.path(), &["models", "list"]);
    assert!(
        text(&out).contains(
            "not fetched: promptlab models pull test-org/Tiny-Smol-GGUF tiny-smol.Q4_1.gguf"
        ),
        "{}",
        text(&out)
    );
}

#[test]
fn offline_misses_and_corrupt_files_are_refused() {
    let project = TempProject::new();
    let empty = tempfile::tempdir().unwrap();
    let out = promptlab(
        &project,
        empty.path(),
        &["models", "pull", "org/absent", "a.gguf"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("not in the local hub cache"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("HF_HUB_OFFLINE"), "{}", text(&out));

    let cache_dir = tempfile::tempdir().unwrap();
    let cache = hub_cache(
        cache_dir.path(),
        "org/bad",
        "bad.gguf",
        Some(b"GGUF but not really"),
    );
    let out = promptlab(&project, &cache, &["models", "pull", "org/bad", "bad.gguf"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("checksum mismatch"), "{}", text(&out));
    assert!(!project.root().join("models/models.yaml").exists());
}

#[test]
fn add_and_remove_local_files() {
    let project = TempProject::new();
    let cache = tempfile::tempdir().unwrap();
    let model = real_model(SMOLLM2);
    let model_arg = model.display().to_string();
    let out = promptlab(
        &project,
        cache.path(),
        &["models", "add", &model_arg, "--name", "small"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("chat template"), "{}", text(&out));
    let out = promptlab(
        &project,
        cache.path(),
        &["models", "add", &model_arg, "--name", "small"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("already in the catalog"),
        "{}",
        text(&out)
    );

    let not_gguf = project.write("models/notes.gguf", "plain text");
    let out = promptlab(
        &project,
        cache.path(),
        &["models", "add", &not_gguf.display().to_string()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("not a readable GGUF model"),
        "{}",
        text(&out)
    );

    let out = promptlab(&project, cache.path(), &["models", "rm", "smal"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("did you mean `small`"),
        "{}",
        text(&out)
    );
    let out = promptlab(&project, cache.path(), &["models", "rm", "small"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("its file stays at"), "{}", text(&out));
    assert!(model.is_file());
}
