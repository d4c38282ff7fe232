//! The prompts of a project's `prompts/` folder. A file that does not load is kept aside
//! with its error instead of failing the whole folder: an eval set that uses none of its
//! prompts still runs, and one that names a prompt the file may define stops with the
//! file's own error (file, line, what was expected).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Prompt, PromptError};
use crate::yaml;

/// Every prompt of a project's `prompts/` folder, variants expanded, and the files that
/// did not load.
#[derive(Debug, Clone, Default)]
pub struct PromptLibrary {
    pub prompts: Vec<Prompt>,
    pub broken: Vec<BrokenPromptFile>,
}

/// A prompt file that did not load.
#[derive(Debug, Clone)]
pub struct BrokenPromptFile {
    pub path: PathBuf,
    /// The prompt names it may define: its file stem, and its `name:` when the YAML
    /// reads far enough to tell.
    pub names: Vec<String>,
    pub error: Arc<PromptError>,
}

impl BrokenPromptFile {
    fn new(path: &Path, error: PromptError) -> BrokenPromptFile {
        let mut names: Vec<String> = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .into_iter()
            .collect();
        let declared = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| yaml::value_from_str(path, &text).ok())
            .and_then(|value| value.get("name")?.as_str().map(str::to_string));
        if let Some(name) = declared
            && !names.contains(&name)
        {
            names.push(name);
        }
        BrokenPromptFile {
            path: path.to_path_buf(),
            names,
            error: Arc::new(error),
        }
    }
}

impl PromptLibrary {
    /// Loads every `.yaml`/`.yml` file of `dir`; only an unreadable folder is an error.
    /// A second definition of a prompt id makes its file broken, so a run that uses the
    /// id stops instead of picking one of the two.
    pub fn load_dir(dir: &Path) -> Result<PromptLibrary, PromptError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| PromptError::Io {
                path: dir.to_path_buf(),
                source,
            })?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
            .collect();
        files.sort();
        let mut library = PromptLibrary::default();
        for file in files {
            let loaded = Prompt::load_file(&file).and_then(|prompts| {
                match prompts.iter().find_map(|prompt| {
                    library
                        .prompts
                        .iter()
                        .find(|p| p.id == prompt.id)
                        .map(|other| (prompt, other))
                }) {
                    Some((prompt, other)) => Err(PromptError::Invalid {
                        path: file.clone(),
                        message: format!(
                            "prompt `{}` is also defined in {}",
                            prompt.id,
                            other.source.display()
                        ),
                    }),
                    None => Ok(prompts),
                }
            });
            match loaded {
                Ok(prompts) => library.prompts.extend(prompts),
                Err(error) => library.broken.push(BrokenPromptFile::new(&file, error)),
            }
        }
        Ok(library)
    }

    /// Prompts selected by `selector`: a prompt name (all its variants) or `name:variant`.
    pub fn select(&self, selector: &str) -> Vec<&Prompt> {
        self.prompts
            .iter()
            .filter(|p| p.id == selector || p.name == selector)
            .collect()
    }

    /// The file that did not load and may define the prompt `selector` names: using the
    /// prompt then means using that file.
    pub fn broken_for(&self, selector: &str) -> Option<&BrokenPromptFile> {
        let name = selector.split(':').next().unwrap_or(selector);
        self.broken
            .iter()
            .find(|file| file.names.iter().any(|n| n == name))
    }

    pub fn names(&self) -> Vec<&str> {
        self.prompts.iter().map(|p| p.id.as_str()).collect()
    }

    /// The files that did not load, one per line (path: error), for messages.
    pub fn broken_text(&self) -> String {
        self.broken
            .iter()
            .map(|file| file.error.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }
}
