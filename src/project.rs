//! A promptlab project: a folder with `prompts/`, `eval-sets/` and `models/models.yaml`.

pub mod init;
mod scan;

use std::path::{Path, PathBuf};

pub use scan::{AgentSetFile, EvalSetFile, ModelFile, ModelStatus, ProjectScan, PromptFile, scan};

use crate::catalog::{CatalogError, ModelCatalog};
use crate::prompt::{PromptError, PromptLibrary};

pub struct Project {
    pub root: PathBuf,
    pub prompts: PromptLibrary,
    pub catalog: ModelCatalog,
}

/// Where the project at `root` keeps its run store.
pub fn store_path(root: &Path) -> PathBuf {
    root.join(".promptlab").join("runs.db")
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error(
        "{start}: not inside a promptlab project (no `prompts/` folder here or in a parent folder); pass --project DIR"
    )]
    NotFound { start: PathBuf },
    #[error("{}", eval_set_not_found(name, looked, available))]
    EvalSetNotFound {
        name: String,
        looked: Vec<PathBuf>,
        available: Vec<String>,
    },
    #[error(transparent)]
    Prompt(#[from] PromptError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

fn eval_set_not_found(name: &str, looked: &[PathBuf], available: &[String]) -> String {
    let looked: Vec<String> = looked.iter().map(|p| p.display().to_string()).collect();
    let mut text = format!(
        "eval set `{name}` not found (looked for {})",
        looked.join(", ")
    );
    if !available.is_empty() {
        text.push_str(&format!("; eval sets here: {}", available.join(", ")));
    }
    text
}

/// The eval set a command line names: an existing file as given, or a bare NAME found as
/// `eval-sets/NAME.yaml` (or `.yml`) in the project that contains `cwd`.
pub fn resolve_eval_set(arg: &Path, cwd: &Path) -> Result<PathBuf, ProjectError> {
    let bare_name = arg.components().count() == 1 && arg.extension().is_none();
    if arg.exists() || !bare_name {
        return Ok(arg.to_path_buf());
    }
    let name = arg.to_string_lossy().to_string();
    let folder = project_root(cwd)
        .unwrap_or_else(|| cwd.to_path_buf())
        .join("eval-sets");
    let looked: Vec<PathBuf> = ["yaml", "yml"]
        .iter()
        .map(|ext| folder.join(format!("{name}.{ext}")))
        .collect();
    if let Some(found) = looked.iter().find(|path| path.is_file()) {
        return Ok(found.clone());
    }
    let mut available: Vec<String> = std::fs::read_dir(&folder)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            )
        })
        .filter_map(|path| Some(path.file_stem()?.to_string_lossy().to_string()))
        .collect();
    available.sort();
    let mut looked = looked;
    looked.insert(0, arg.to_path_buf());
    Err(ProjectError::EvalSetNotFound {
        name,
        looked,
        available,
    })
}

/// The nearest folder at or above `start` that holds a `prompts/` folder.
fn project_root(start: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(start).ok()?;
    absolute
        .ancestors()
        .find(|dir| dir.join("prompts").is_dir())
        .map(Path::to_path_buf)
}

impl Project {
    /// The run store's database file.
    pub fn store_path(&self) -> PathBuf {
        store_path(&self.root)
    }

    /// Finds the project containing `start` (a file or folder) by walking up to the first
    /// folder that has a `prompts/` folder.
    pub fn discover(start: &Path) -> Result<Project, ProjectError> {
        let absolute = std::path::absolute(start).unwrap_or_else(|_| start.to_path_buf());
        let mut dir = if absolute.is_dir() {
            Some(absolute.as_path())
        } else {
            absolute.parent()
        };
        while let Some(candidate) = dir {
            if candidate.join("prompts").is_dir() {
                return Project::open(candidate);
            }
            dir = candidate.parent();
        }
        Err(ProjectError::NotFound {
            start: start.to_path_buf(),
        })
    }

    /// Opens a project folder; a missing `models/models.yaml` means only `echo` exists.
    pub fn open(root: &Path) -> Result<Project, ProjectError> {
        let prompts = PromptLibrary::load_dir(&root.join("prompts"))?;
        let catalog_path = root.join("models").join("models.yaml");
        let catalog = if catalog_path.is_file() {
            ModelCatalog::load(&catalog_path)?
        } else {
            ModelCatalog::default()
        };
        Ok(Project {
            root: root.to_path_buf(),
            prompts,
            catalog,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_sets_are_found_by_name_from_anywhere_in_the_project() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("prompts")).unwrap();
        std::fs::create_dir_all(root.join("eval-sets")).unwrap();
        std::fs::create_dir_all(root.join("notes/deep")).unwrap();
        std::fs::write(root.join("eval-sets/capitals.yaml"), "").unwrap();
        std::fs::write(root.join("eval-sets/other.yml"), "").unwrap();
        let found = resolve_eval_set(Path::new("capitals"), &root.join("notes/deep")).unwrap();
        assert_eq!(
            found,
            std::path::absolute(root)
                .unwrap()
                .join("eval-sets/capitals.yaml")
        );
        let found = resolve_eval_set(Path::new("other"), root).unwrap();
        assert!(found.ends_with("eval-sets/other.yml"));
        // A path is taken as given, existing or not (its loader reports a missing file).
        let path = Path::new("eval-sets/missing.yaml");
        assert_eq!(resolve_eval_set(path, root).unwrap(), path);
        let error = resolve_eval_set(Path::new("capitols"), root)
            .unwrap_err()
            .to_string();
        assert!(error.contains("eval set `capitols` not found"), "{error}");
        assert!(error.contains("eval sets here: capitals, other"), "{error}");
    }
}
