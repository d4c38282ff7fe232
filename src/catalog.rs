//! The model catalog (`models/models.yaml`): short names for GGUF files, with default
//! generation parameters and context size. The name `echo` is always available and means
//! the echo engine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::yaml::{self, YamlError};

/// The engine name that returns the rendered prompt instead of generating.
pub const ECHO_MODEL: &str = "echo";

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
    models: BTreeMap<String, EntryFields>,
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
        for (name, mut fields) in spec.models {
            let bad_entry = |problem: String| CatalogError::BadEntry {
                source_file: path.to_path_buf(),
                name: name.clone(),
                problem,
            };
            if name == ECHO_MODEL {
                return Err(CatalogError::ReservedName {
                    source_file: path.to_path_buf(),
                    name,
                });
            }
            if let Some(hub) = &fields.hub
                && path_is_empty(&fields.path)
            {
                match crate::hub::cached(&hub.repo, &hub.file, hub.revision.as_deref()) {
                    Some(found) => fields.path = found,
                    None => {
                        // Listed as not fetched, with the command that fetches it.
                        fields.path = crate::hub::cache()
                            .path()
                            .join(hf_hub::Repo::model(hub.repo.clone()).folder_name())
                            .join(&hub.file);
                        fields.fetch =
                            Some(format!("promptlab models pull {} {}", hub.repo, hub.file));
                    }
                }
            }
            let mut entry = ModelEntry::try_from(fields).map_err(|e| bad_entry(e.to_string()))?;
            if entry.kind() != ModelKind::Openai && path_is_empty(&entry.path) {
                return Err(bad_entry("needs a `path:` (or `hub: {repo, file}`)".into()));
            }
            // A CLIP entry may name a hub repo (`openai/clip-vit-base-patch32`) rather
            // than a folder beside the catalog.
            let hub_id = entry.kind() == ModelKind::Clip && !base.join(&entry.path).exists();
            if entry.path.is_relative() && !hub_id && !path_is_empty(&entry.path) {
                entry.path = base.join(&entry.path);
            }
            if let KindSettings::YoloDetector(detect) = &mut entry.settings
                && let Some(names) = detect.names.as_mut()
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
                Some(entry) if entry.kind() != kind => "is the wrong kind of model for that tool",
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
mod entry;
mod offload;
pub mod remote;
pub use edit::{add_entry, remove_entry};
use entry::EntryFields;
pub use entry::{EntryError, KindSettings, LocalModel, ModelEntry};
pub use offload::{GPU_LAYERS_FORMS, GpuLayers, GpuLayersError};

#[cfg(test)]
mod tests;
