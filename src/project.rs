//! A promptlab project: a folder with `prompts/`, `eval-sets/` and `models/models.yaml`.

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
    #[error(transparent)]
    Prompt(#[from] PromptError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

impl Project {
    /// Finds the project containing `start` (a file or folder) by walking up to the first
    /// folder that has a `prompts/` folder.
    /// The run store's database file.
    pub fn store_path(&self) -> PathBuf {
        store_path(&self.root)
    }

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
