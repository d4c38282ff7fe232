//! Models from the Hugging Face hub, through `hf-hub` and its cache layout
//! (`models--ORG--NAME/{refs,snapshots,blobs}`), shared with the Python tools. Lookups
//! are offline: a file already in the cache resolves without the network, and with
//! `HF_HUB_OFFLINE=1` nothing else is tried. Downloads resume where they stopped and are
//! checked against the SHA-256 the hub names their blob by.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(
        "{repo}: `{file}` is not in the local hub cache ({cache}) and HF_HUB_OFFLINE is set; unset it to download"
    )]
    OfflineMiss {
        repo: String,
        file: String,
        cache: PathBuf,
    },
    #[error("{repo}: {message}")]
    Hub { repo: String, message: String },
    #[error(
        "{repo}: which file? It has several GGUF files: {}; name one (promptlab models pull {repo} FILE)",
        .files.join(", ")
    )]
    Ambiguous { repo: String, files: Vec<String> },
    #[error("{path}: checksum mismatch: the hub says sha256 {expected}, the file has {actual}")]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The hub cache: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`.
pub fn cache() -> hf_hub::Cache {
    match std::env::var_os("HF_HUB_CACHE").filter(|v| !v.is_empty()) {
        Some(dir) => hf_hub::Cache::new(PathBuf::from(dir)),
        None => hf_hub::Cache::from_env(),
    }
}

/// `HF_HUB_OFFLINE` is set to something true.
pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| {
        matches!(
            v.trim().to_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

fn repo(id: &str, revision: Option<&str>) -> hf_hub::Repo {
    match revision {
        Some(rev) => hf_hub::Repo::with_revision(id.into(), hf_hub::RepoType::Model, rev.into()),
        None => hf_hub::Repo::model(id.into()),
    }
}

/// The cached copy of `file` from repo `id` (at `revision`, default `main`), if any.
pub fn cached(id: &str, file: &str, revision: Option<&str>) -> Option<PathBuf> {
    cache().repo(repo(id, revision)).get(file)
}

/// The GGUF files of a cached snapshot of `id`, for choosing one without the network.
pub fn cached_gguf_files(id: &str, revision: Option<&str>) -> Vec<String> {
    let repo = repo(id, revision);
    let folder = cache().path().join(repo.folder_name());
    let Ok(commit) = std::fs::read_to_string(folder.join("refs").join(repo.revision())) else {
        return Vec::new();
    };
    let snapshot = folder.join("snapshots").join(commit.trim());
    let mut files: Vec<String> = std::fs::read_dir(snapshot)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.to_lowercase().ends_with(".gguf"))
        .collect();
    files.sort();
    files
}

/// Picks the GGUF to pull when none is named: the only one, else the one quantized
/// Q4_K_M (a common default), else the choice is the user's.
pub fn choose_gguf(id: &str, files: &[String]) -> Result<String, HubError> {
    let ggufs: Vec<&String> = files
        .iter()
        .filter(|f| f.to_lowercase().ends_with(".gguf"))
        .collect();
    match ggufs.as_slice() {
        [] => Err(HubError::Hub {
            repo: id.into(),
            message: "the repo has no .gguf file".into(),
        }),
        [one] => Ok((*one).clone()),
        many => {
            let q4km: Vec<&&String> = many
                .iter()
                .filter(|f| f.to_lowercase().contains("q4_k_m"))
                .collect();
            match q4km.as_slice() {
                [one] => Ok((**one).clone()),
                _ => Err(HubError::Ambiguous {
                    repo: id.into(),
                    files: many.iter().map(|f| (*f).clone()).collect(),
                }),
            }
        }
    }
}

/// Where `file` of `id` is: the cache if it is there, else downloaded into it (with a
/// progress bar, resuming a partial download). `file: None` picks the GGUF.
pub fn pull(id: &str, file: Option<&str>, revision: Option<&str>) -> Result<PathBuf, HubError> {
    let hub_error = |message: String| HubError::Hub {
        repo: id.into(),
        message,
    };
    let file = match file {
        Some(file) => file.to_string(),
        None => {
            let local = cached_gguf_files(id, revision);
            if offline() || !local.is_empty() {
                choose_gguf(id, &local).map_err(|e| match e {
                    HubError::Hub { .. } if offline() => HubError::OfflineMiss {
                        repo: id.into(),
                        file: "a .gguf file".into(),
                        cache: cache().path().clone(),
                    },
                    other => other,
                })?
            } else {
                let names = remote_files(id, revision)?;
                choose_gguf(id, &names)?
            }
        }
    };
    if let Some(path) = cached(id, &file, revision) {
        return Ok(path);
    }
    if offline() {
        return Err(HubError::OfflineMiss {
            repo: id.into(),
            file,
            cache: cache().path().clone(),
        });
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| hub_error(format!("cannot start the network runtime: {e}")))?;
    let api = hf_hub::api::tokio::ApiBuilder::from_cache(cache())
        .with_progress(true)
        .build()
        .map_err(|e| hub_error(e.to_string()))?;
    let path = runtime
        .block_on(api.repo(repo(id, revision)).get(&file))
        .map_err(|e| hub_error(format!("cannot download `{file}`: {e}")))?;
    verify(&path)?;
    Ok(path)
}

fn remote_files(id: &str, revision: Option<&str>) -> Result<Vec<String>, HubError> {
    let hub_error = |message: String| HubError::Hub {
        repo: id.into(),
        message,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| hub_error(format!("cannot start the network runtime: {e}")))?;
    let api = hf_hub::api::tokio::ApiBuilder::from_cache(cache())
        .build()
        .map_err(|e| hub_error(e.to_string()))?;
    let info = runtime
        .block_on(api.repo(repo(id, revision)).info())
        .map_err(|e| hub_error(format!("cannot list the repo: {e}")))?;
    Ok(info.siblings.into_iter().map(|s| s.rfilename).collect())
}

/// Checks a cached file against its blob's name, which for files stored with Git LFS
/// (every model file) is their SHA-256. Small files named by a git hash are not checked.
pub fn verify(path: &Path) -> Result<(), HubError> {
    let io = |source| HubError::Io {
        path: path.to_path_buf(),
        source,
    };
    let blob = std::fs::canonicalize(path).map_err(io)?;
    let Some(expected) = blob
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n.len() == 64 && n.chars().all(|c| c.is_ascii_hexdigit()))
    else {
        return Ok(());
    };
    let mut file = std::fs::File::open(&blob).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    let actual: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if actual != expected.to_lowercase() {
        return Err(HubError::Checksum {
            path: path.to_path_buf(),
            expected,
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quantization_people_usually_want_is_picked() {
        let files = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            choose_gguf("r", &files(&["README.md", "m.Q8_0.gguf"])).unwrap(),
            "m.Q8_0.gguf"
        );
        assert_eq!(
            choose_gguf("r", &files(&["m-q8_0.gguf", "m-q4_k_m.gguf"])).unwrap(),
            "m-q4_k_m.gguf"
        );
        let err = choose_gguf("r", &files(&["a.gguf", "b.gguf"])).unwrap_err();
        assert!(err.to_string().contains("a.gguf, b.gguf"), "{err}");
        assert!(choose_gguf("r", &files(&["config.json"])).is_err());
    }
}
