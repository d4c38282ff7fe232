//! The model catalog (`models/models.yaml`): short names for GGUF files, with default
//! generation parameters and context size. The name `echo` is always available and means
//! the echo engine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::params::GenerationParams;
use crate::yaml::{self, YamlError};

/// The engine name that returns the rendered prompt instead of generating.
pub const ECHO_MODEL: &str = "echo";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// GGUF file, relative to the catalog's folder or absolute (none for `kind: openai`).
    #[serde(default, skip_serializing_if = "path_is_empty")]
    pub path: PathBuf,
    #[serde(default)]
    pub description: String,
    /// Context window to allocate; defaults to min(4096, the model's training context).
    #[serde(default)]
    pub context_size: Option<u32>,
    #[serde(default)]
    pub params: GenerationParams,
    /// What the file is: a GGUF language model (default) or a vision model that reads an
    /// image path as its prompt and answers with a label.
    #[serde(default, skip_serializing_if = "ModelKind::is_gguf")]
    pub kind: ModelKind,
    /// For `kind: yolo-detector`: the filters applied to every image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detect: Option<DetectSettings>,
    /// For `kind: clip`: how a label becomes a caption, `{}` standing for the label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_template: Option<String>,
    /// The command that downloads the file: while it is missing, the model is listed as
    /// not fetched (not an error), and using it says to run this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch: Option<String>,
    /// For `kind: openai`: the servers and how to talk to them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openai: Option<remote::RemoteSettings>,
    /// Which engine runs a GGUF model: llama.cpp (default) or mistral.rs (when built with
    /// the `mistralrs` feature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineChoice>,
    /// A file of a Hugging Face repo, found in the local hub cache (offline) when the
    /// catalog is loaded; `path` is then where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<HubFile>,
}

/// The engines that run GGUF files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineChoice {
    #[default]
    Llama,
    Mistralrs,
}

impl EngineChoice {
    /// Whether this build has the engine (mistral.rs is a cargo feature).
    pub fn built_in(self) -> bool {
        match self {
            EngineChoice::Llama => true,
            EngineChoice::Mistralrs => cfg!(feature = "mistralrs"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            EngineChoice::Llama => "llama",
            EngineChoice::Mistralrs => "mistralrs",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubFile {
    pub repo: String,
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

fn path_is_empty(path: &Path) -> bool {
    path.as_os_str().is_empty()
}

impl ModelEntry {
    /// Whether chat prompts can run on this model: a remote server's model, or a GGUF
    /// file whose header carries a chat template. The one place this is decided.
    pub fn is_chat_model(&self) -> bool {
        self.is_chat_model_with(crate::gguf::GgufInfo::read(&self.path).ok().as_ref())
    }

    /// [`ModelEntry::is_chat_model`] with the GGUF header already read (None: unreadable).
    pub fn is_chat_model_with(&self, info: Option<&crate::gguf::GgufInfo>) -> bool {
        match self.kind {
            ModelKind::Openai => true,
            ModelKind::Gguf => info.is_some_and(|info| info.chat_template().is_some()),
            _ => false,
        }
    }

    /// The file is absent but the catalog says how to get it.
    pub fn not_fetched(&self) -> Option<&str> {
        self.fetch.as_deref().filter(|_| !self.path.exists())
    }
}

/// How a catalog detector filters its boxes. Two entries with the same file and different
/// settings are two columns, so thresholds can be compared like prompts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectSettings {
    #[serde(default = "default_min_confidence")]
    pub min_confidence: f32,
    #[serde(default = "default_iou")]
    pub iou: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_class: Option<usize>,
    /// Model class name → reported name (alike names merge).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rename: BTreeMap<String, String>,
    /// Class names file, relative to the catalog (default: the model's metadata).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<PathBuf>,
}

fn default_min_confidence() -> f32 {
    0.25
}

fn default_iou() -> f32 {
    0.45
}

impl Default for DetectSettings {
    fn default() -> Self {
        DetectSettings {
            min_confidence: default_min_confidence(),
            iou: default_iou(),
            classes: None,
            max_per_class: None,
            rename: BTreeMap::new(),
            names: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    #[default]
    Gguf,
    /// A digit CNN trained with `promptlab vision digits train` (safetensors + card).
    DigitCnn,
    /// An Ultralytics YOLO ONNX export; answers with the boxes it finds, as JSON.
    YoloDetector,
    /// CLIP weights (a folder in the Hugging Face layout, or a repo id in the local hub
    /// cache), for the agent's `classify_image` tool.
    Clip,
    /// A sentence-embedding model (BERT layout: config.json, model.safetensors,
    /// tokenizer.json), for the `similar` assertion.
    Embedding,
    /// A chat model behind OpenAI-compatible servers (settings under `openai:`).
    Openai,
}

impl ModelKind {
    pub fn is_gguf(&self) -> bool {
        *self == ModelKind::Gguf
    }

    /// Reads an image path as its prompt (digit CNN, detector, CLIP).
    pub fn is_vision(&self) -> bool {
        matches!(
            self,
            ModelKind::DigitCnn | ModelKind::YoloDetector | ModelKind::Clip
        )
    }

    /// Generates text from chat messages: a local GGUF or a remote server's model.
    pub fn is_language_model(&self) -> bool {
        matches!(self, ModelKind::Gguf | ModelKind::Openai)
    }

    /// What a model of this kind is, for people: "a YOLO detector (vision)".
    pub fn description(&self) -> &'static str {
        match self {
            ModelKind::Gguf => "a GGUF language model",
            ModelKind::DigitCnn => "a digit CNN (vision: reads an image path as its prompt)",
            ModelKind::YoloDetector => {
                "a YOLO detector (vision: reads an image path, answers with boxes)"
            }
            ModelKind::Clip => "CLIP zero-shot classification (vision)",
            ModelKind::Embedding => "sentence embeddings for the `similar` assertion",
            ModelKind::Openai => "a chat model on OpenAI-compatible servers",
        }
    }

    /// The name written after `kind:` in the catalog.
    pub fn yaml_name(&self) -> &'static str {
        match self {
            ModelKind::Gguf => "gguf",
            ModelKind::DigitCnn => "digit-cnn",
            ModelKind::YoloDetector => "yolo-detector",
            ModelKind::Clip => "clip",
            ModelKind::Embedding => "embedding",
            ModelKind::Openai => "openai",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogSpec {
    #[serde(default)]
    models: BTreeMap<String, ModelEntry>,
    #[serde(default)]
    tools: ToolAssignments,
}

/// Which catalog models back the agent's vision tools (default: the first of each kind).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolAssignments {
    /// Detectors merged into one `detect_objects` tool (their classes joined).
    #[serde(default, deserialize_with = "one_or_many")]
    pub detect_objects: Vec<String>,
    #[serde(default)]
    pub classify_digit: Option<String>,
    #[serde(default)]
    pub classify_image: Option<String>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(name) => vec![name],
        OneOrMany::Many(names) => names,
    })
}

/// A model as referenced by an evaluation: its catalog name and resolved file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    pub name: String,
    /// None for the echo engine.
    pub entry: Option<ModelEntry>,
}

impl ModelRef {
    pub fn echo() -> ModelRef {
        ModelRef {
            name: ECHO_MODEL.to_string(),
            entry: None,
        }
    }

    pub fn is_echo(&self) -> bool {
        self.entry.is_none()
    }
}

#[derive(Debug, Clone, Default)]
pub struct ModelCatalog {
    pub models: BTreeMap<String, ModelEntry>,
    pub tools: ToolAssignments,
    pub source: Option<PathBuf>,
    /// More names for the echo engine (a promptfoo config's labelled `echo` providers,
    /// each its own column).
    pub echoes: std::collections::BTreeSet<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("{source_file}: `{name}` is reserved for the echo engine; choose another model name")]
    ReservedName { source_file: PathBuf, name: String },
    #[error("{source_file}: under `tools:`, `{name}` {problem}")]
    BadToolModel {
        source_file: PathBuf,
        name: String,
        problem: String,
    },
    #[error("{source_file}: model `{name}` {problem}")]
    BadEntry {
        source_file: PathBuf,
        name: String,
        problem: String,
    },
    #[error("unknown model `{name}`: {hint}")]
    UnknownModel { name: String, hint: String },
}

impl ModelCatalog {
    /// Loads `models.yaml`; relative model paths are resolved against its folder.
    pub fn load(path: &Path) -> Result<ModelCatalog, CatalogError> {
        let spec: CatalogSpec = yaml::read_file(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut models = BTreeMap::new();
        for (name, mut entry) in spec.models {
            if name == ECHO_MODEL {
                return Err(CatalogError::ReservedName {
                    source_file: path.to_path_buf(),
                    name,
                });
            }
            if let Some(hub) = &entry.hub
                && path_is_empty(&entry.path)
            {
                match crate::hub::cached(&hub.repo, &hub.file, hub.revision.as_deref()) {
                    Some(found) => entry.path = found,
                    None => {
                        // Listed as not fetched, with the command that fetches it.
                        entry.path = crate::hub::cache()
                            .path()
                            .join(hf_hub::Repo::model(hub.repo.clone()).folder_name())
                            .join(&hub.file);
                        entry.fetch =
                            Some(format!("promptlab models pull {} {}", hub.repo, hub.file));
                    }
                }
            }
            let problem = match (entry.kind, &entry.openai) {
                (ModelKind::Openai, None) => {
                    Some("has `kind: openai` but no `openai:` section".to_string())
                }
                (ModelKind::Openai, Some(settings)) => settings.problem(),
                (_, Some(_)) => Some("has an `openai:` section but not `kind: openai`".into()),
                (_, None) if path_is_empty(&entry.path) => {
                    Some("needs a `path:` (or `hub: {repo, file}`)".into())
                }
                _ => None,
            };
            if let Some(problem) = problem {
                return Err(CatalogError::BadEntry {
                    source_file: path.to_path_buf(),
                    name,
                    problem,
                });
            }
            // A CLIP entry may name a hub repo (`openai/clip-vit-base-patch32`) rather
            // than a folder beside the catalog.
            let hub_id = entry.kind == ModelKind::Clip && !base.join(&entry.path).exists();
            if entry.path.is_relative() && !hub_id && !path_is_empty(&entry.path) {
                entry.path = base.join(&entry.path);
            }
            if let Some(names) = entry.detect.as_mut().and_then(|d| d.names.as_mut())
                && names.is_relative()
            {
                *names = base.join(&*names);
            }
            models.insert(name, entry);
        }
        let assigned = spec
            .tools
            .detect_objects
            .iter()
            .map(|n| (n, ModelKind::YoloDetector))
            .chain(
                spec.tools
                    .classify_digit
                    .iter()
                    .map(|n| (n, ModelKind::DigitCnn)),
            )
            .chain(
                spec.tools
                    .classify_image
                    .iter()
                    .map(|n| (n, ModelKind::Clip)),
            );
        for (name, kind) in assigned {
            let problem = match models.get(name) {
                None => "is not a model of this catalog",
                Some(entry) if entry.kind != kind => "is the wrong kind of model for that tool",
                Some(_) => continue,
            };
            return Err(CatalogError::BadToolModel {
                source_file: path.to_path_buf(),
                name: name.clone(),
                problem: format!("{problem} (expected `kind: {}`)", kind.yaml_name()),
            });
        }
        Ok(ModelCatalog {
            models,
            tools: spec.tools,
            source: Some(path.to_path_buf()),
            echoes: Default::default(),
        })
    }

    /// Resolves a model name, with a suggestion when it is close to a known one.
    pub fn resolve(&self, name: &str) -> Result<ModelRef, CatalogError> {
        if name == ECHO_MODEL {
            return Ok(ModelRef::echo());
        }
        if self.echoes.contains(name) {
            return Ok(ModelRef {
                name: name.to_string(),
                entry: None,
            });
        }
        if let Some(entry) = self.models.get(name) {
            return Ok(ModelRef {
                name: name.to_string(),
                entry: Some(entry.clone()),
            });
        }
        let mut known: Vec<&str> = self.models.keys().map(String::as_str).collect();
        known.push(ECHO_MODEL);
        let closest = known
            .iter()
            .map(|k| (strsim::jaro_winkler(k, name), *k))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, k)| k);
        let catalog = self
            .source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "models/models.yaml (not found)".into());
        let hint = match closest {
            Some(k) => format!(
                "did you mean `{k}`? Models in {catalog}: {}",
                known.join(", ")
            ),
            None => format!(
                "expected one of the models in {catalog}: {}",
                known.join(", ")
            ),
        };
        Err(CatalogError::UnknownModel {
            name: name.to_string(),
            hint,
        })
    }
}

mod edit;
pub mod remote;
pub use edit::{add_entry, remove_entry};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_paths_and_suggests_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("models.yaml");
        std::fs::write(
            &path,
            "models:\n  smollm2:\n    path: s.gguf\n    context_size: 1024\n",
        )
        .unwrap();
        let catalog = ModelCatalog::load(&path).unwrap();
        let model = catalog.resolve("smollm2").unwrap();
        assert_eq!(model.entry.unwrap().path, dir.path().join("s.gguf"));
        assert!(catalog.resolve("echo").unwrap().is_echo());
        let err = catalog.resolve("smolm2").unwrap_err().to_string();
        assert!(err.contains("did you mean `smollm2`"), "{err}");
    }

    #[test]
    fn tools_section_names_models_of_the_right_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("models.yaml");
        let models = "models:\n  people:\n    path: p.onnx\n    kind: yolo-detector\n  faces:\n    path: f.onnx\n    kind: yolo-detector\n  llm:\n    path: l.gguf\n";
        std::fs::write(
            &path,
            format!("{models}tools:\n  detect_objects: [people, faces]\n"),
        )
        .unwrap();
        let catalog = ModelCatalog::load(&path).unwrap();
        assert_eq!(catalog.tools.detect_objects, ["people", "faces"]);

        std::fs::write(&path, format!("{models}tools:\n  detect_objects: people\n")).unwrap();
        let catalog = ModelCatalog::load(&path).unwrap();
        assert_eq!(catalog.tools.detect_objects, ["people"]);

        for (tools, expected) in [
            (
                "detect_objects: [people, llm]",
                "`llm` is the wrong kind of model for that tool (expected `kind: yolo-detector`)",
            ),
            (
                "classify_digit: digits",
                "`digits` is not a model of this catalog",
            ),
        ] {
            std::fs::write(&path, format!("{models}tools:\n  {tools}\n")).unwrap();
            let err = ModelCatalog::load(&path).unwrap_err().to_string();
            assert!(err.contains("models.yaml: under `tools:`"), "{err}");
            assert!(err.contains(expected), "{err}");
        }
    }
}
