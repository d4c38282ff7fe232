//! Reads every file of a project on its own, so one broken file shows up with its error
//! next to the good ones instead of hiding them all (what a browsing view such as the
//! TUI's library needs; a run refuses a broken prompt only when it uses it, see
//! `prompt::PromptLibrary`).

use std::path::{Path, PathBuf};

use crate::catalog::{ModelCatalog, ModelEntry, ModelKind};
use crate::evalset::EvalSet;
use crate::evalset::agent::AgentEvalSet;
use crate::gguf::GgufInfo;
use crate::prompt::Prompt;

/// One file of `prompts/`: its text and its prompts (one per variant), or why it failed.
#[derive(Debug, Clone)]
pub struct PromptFile {
    pub path: PathBuf,
    pub text: String,
    pub prompts: Result<Vec<Prompt>, String>,
}

impl PromptFile {
    pub fn name(&self) -> String {
        match &self.prompts {
            Ok(prompts) => prompts
                .first()
                .map(|p| p.name.clone())
                .unwrap_or_else(|| file_stem(&self.path)),
            Err(_) => file_stem(&self.path),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EvalSetFile {
    pub path: PathBuf,
    pub eval_set: Result<EvalSet, String>,
}

impl EvalSetFile {
    pub fn name(&self) -> String {
        match &self.eval_set {
            Ok(set) => set.name.clone(),
            Err(_) => file_stem(&self.path),
        }
    }
}

/// An agent eval set (`kind: agent`) of `eval-sets/`, or why it failed to load.
#[derive(Debug, Clone)]
pub struct AgentSetFile {
    pub path: PathBuf,
    pub set: Result<AgentEvalSet, String>,
}

impl AgentSetFile {
    pub fn name(&self) -> String {
        match &self.set {
            Ok(set) => set.name.clone(),
            Err(_) => file_stem(&self.path),
        }
    }
}

/// A catalog entry with its GGUF header, or why the header could not be read.
#[derive(Debug, Clone)]
pub struct ModelFile {
    pub name: String,
    pub entry: ModelEntry,
    pub info: Result<GgufInfo, String>,
}

/// Whether a catalog model can be used here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelStatus {
    /// Its file or folder is there (a remote model always is).
    Ready,
    /// Absent, and the catalog names the command that fetches it.
    NotFetched(String),
    /// Absent, with no command given to fetch it (a digit CNN not trained yet too).
    Missing,
    /// There, but not readable as what the catalog says it is.
    Unreadable(String),
}

impl ModelFile {
    pub fn is_chat_model(&self) -> bool {
        self.entry.is_chat_model_with(self.info.as_ref().ok())
    }

    /// Whether it can run now: there (or remote) and its engine built into this binary.
    pub fn runnable_here(&self) -> bool {
        self.status() == ModelStatus::Ready
            && self
                .entry
                .local()
                .is_none_or(|local| local.engine.built_in())
    }

    pub fn status(&self) -> ModelStatus {
        // A remote model is always there; a GGUF whose header was read was there.
        if self.entry.kind() == ModelKind::Openai
            || (self.entry.kind() == ModelKind::Gguf && self.info.is_ok())
        {
            return ModelStatus::Ready;
        }
        if let Some(command) = self.entry.not_fetched() {
            return ModelStatus::NotFetched(command.to_string());
        }
        if !self.entry.path.exists() {
            return ModelStatus::Missing;
        }
        match (&self.info, self.entry.kind()) {
            (Err(error), ModelKind::Gguf) => ModelStatus::Unreadable(error.clone()),
            _ => ModelStatus::Ready,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ProjectScan {
    pub root: PathBuf,
    pub prompts: Vec<PromptFile>,
    pub eval_sets: Vec<EvalSetFile>,
    pub agent_sets: Vec<AgentSetFile>,
    pub models: Vec<ModelFile>,
    /// Set when `models/models.yaml` exists but does not load.
    pub catalog_error: Option<String>,
}

impl ProjectScan {
    /// The prompt (variant) with this id, from whichever file defines it.
    pub fn prompt(&self, id: &str) -> Option<&Prompt> {
        self.prompts
            .iter()
            .filter_map(|f| f.prompts.as_ref().ok())
            .flatten()
            .find(|p| p.id == id)
    }
}

pub fn scan(root: &Path) -> ProjectScan {
    let prompts = yaml_files(&root.join("prompts"))
        .into_iter()
        .map(|path| {
            let (text, prompts) = match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let prompts = Prompt::parse_file(&path, &text).map_err(|e| e.to_string());
                    (text, prompts)
                }
                Err(err) => (String::new(), Err(format!("{}: {err}", path.display()))),
            };
            PromptFile {
                path,
                text,
                prompts,
            }
        })
        .collect();
    let (agent_paths, set_paths): (Vec<PathBuf>, Vec<PathBuf>) =
        yaml_files(&root.join("eval-sets"))
            .into_iter()
            .partition(|path| crate::evalset::is_agent_set(path));
    let eval_sets = set_paths
        .into_iter()
        .map(|path| EvalSetFile {
            eval_set: EvalSet::load(&path).map_err(|e| e.to_string()),
            path,
        })
        .collect();
    let agent_sets = agent_paths
        .into_iter()
        .map(|path| AgentSetFile {
            set: AgentEvalSet::load(&path).map_err(|e| e.to_string()),
            path,
        })
        .collect();
    let catalog_path = root.join("models").join("models.yaml");
    let (models, catalog_error) = if catalog_path.is_file() {
        match ModelCatalog::load(&catalog_path) {
            Ok(catalog) => (
                catalog
                    .models
                    .into_iter()
                    .map(|(name, entry)| ModelFile {
                        info: if entry.kind().is_gguf() {
                            GgufInfo::read(&entry.path).map_err(|e| e.to_string())
                        } else if let Some(remote) = entry.servers() {
                            Err(format!(
                                "remote model `{}` on OpenAI-compatible servers ({})",
                                remote.model,
                                remote
                                    .endpoints
                                    .iter()
                                    .map(|e| e.url())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ))
                        } else {
                            Err(format!(
                                "{}: {}",
                                entry.path.display(),
                                entry.kind().description()
                            ))
                        },
                        name,
                        entry,
                    })
                    .collect(),
                None,
            ),
            Err(err) => (Vec::new(), Some(err.to_string())),
        }
    } else {
        (Vec::new(), None)
    };
    ProjectScan {
        root: root.to_path_buf(),
        prompts,
        eval_sets,
        agent_sets,
        models,
        catalog_error,
    }
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_file_is_listed_with_its_error_beside_the_good_ones() {
        let dir = tempfile::tempdir().unwrap();
        let prompts = dir.path().join("prompts");
        std::fs::create_dir_all(&prompts).unwrap();
        std::fs::write(
            prompts.join("good.yaml"),
            "messages:\n  - role: user\n    content: \"{{ x }}\"\n",
        )
        .unwrap();
        std::fs::write(prompts.join("bad.yaml"), "messages: [\n").unwrap();
        let scan = scan(dir.path());
        assert_eq!(scan.prompts.len(), 2);
        let bad = &scan.prompts[0];
        assert!(bad.path.ends_with("bad.yaml"));
        let error = bad.prompts.as_ref().unwrap_err();
        assert!(error.contains("bad.yaml"), "{error}");
        assert_eq!(scan.prompts[1].name(), "good");
        assert!(scan.prompt("good").is_some());
        assert!(scan.eval_sets.is_empty() && scan.models.is_empty());
        assert!(scan.catalog_error.is_none());
    }
}
