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

/// A catalog entry: what every model has (a file, a description, how to fetch it) and,
/// by kind, only the settings that kind reads, so an entry such as a detector with a
/// context size or a GGUF file with server settings cannot be written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "EntryFields", into = "EntryFields")]
pub struct ModelEntry {
    /// The model file or folder, relative to the catalog's folder or absolute (empty for
    /// `kind: openai`).
    pub path: PathBuf,
    pub description: String,
    /// The command that downloads the file: while it is missing, the model is listed as
    /// not fetched (not an error), and using it says to run this.
    pub fetch: Option<String>,
    /// A file of a Hugging Face repo, found in the local hub cache (offline) when the
    /// catalog is loaded; `path` is then where it is.
    pub hub: Option<HubFile>,
    pub settings: KindSettings,
}

/// What a model is, with the settings only that kind of model reads.
#[derive(Debug, Clone, PartialEq)]
pub enum KindSettings {
    /// A GGUF language model run by llama.cpp or mistral.rs.
    Gguf(LocalModel),
    /// A chat model behind OpenAI-compatible servers.
    Openai {
        servers: remote::RemoteSettings,
        params: GenerationParams,
    },
    DigitCnn,
    YoloDetector(DetectSettings),
    /// `label_template`: how a label becomes a caption, `{}` standing for the label.
    Clip {
        label_template: Option<String>,
    },
    Embedding,
}

/// The settings of a GGUF language model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocalModel {
    pub engine: EngineChoice,
    /// Context window to allocate; defaults to min(4096, the model's training context).
    pub context_size: Option<u32>,
    pub params: GenerationParams,
}

/// [`ModelEntry`] as written in `models.yaml`: every kind's keys side by side, checked
/// and sorted by kind in [`ModelEntry::try_from`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFields {
    #[serde(default, skip_serializing_if = "path_is_empty")]
    path: PathBuf,
    #[serde(default)]
    description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    context_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    params: Option<GenerationParams>,
    #[serde(default, skip_serializing_if = "ModelKind::is_gguf")]
    kind: ModelKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    detect: Option<DetectSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    label_template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fetch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    openai: Option<remote::RemoteSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    engine: Option<EngineChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hub: Option<HubFile>,
}

impl TryFrom<EntryFields> for ModelEntry {
    /// What is wrong, worded to follow "model `name` ".
    type Error = String;

    fn try_from(fields: EntryFields) -> Result<ModelEntry, String> {
        let kind = fields.kind;
        let written = [
            (
                "context_size",
                fields.context_size.is_some(),
                &[ModelKind::Gguf][..],
            ),
            (
                "params",
                // `params: {}` says nothing, and older records wrote it for every kind.
                fields
                    .params
                    .as_ref()
                    .is_some_and(|p| *p != GenerationParams::default()),
                &[ModelKind::Gguf, ModelKind::Openai][..],
            ),
            ("engine", fields.engine.is_some(), &[ModelKind::Gguf][..]),
            (
                "detect",
                fields.detect.is_some(),
                &[ModelKind::YoloDetector][..],
            ),
            (
                "label_template",
                fields.label_template.is_some(),
                &[ModelKind::Clip][..],
            ),
            ("openai", fields.openai.is_some(), &[ModelKind::Openai][..]),
        ];
        for (key, present, kinds) in written {
            if present && !kinds.contains(&kind) {
                let wanted: Vec<String> = kinds
                    .iter()
                    .map(|k| format!("`kind: {}`", k.yaml_name()))
                    .collect();
                return Err(format!(
                    "sets `{key}:`, which only {} reads (this entry is `kind: {}`)",
                    wanted.join(" or "),
                    kind.yaml_name()
                ));
            }
        }
        let params = fields.params.unwrap_or_default();
        let settings = match kind {
            ModelKind::Gguf => KindSettings::Gguf(LocalModel {
                engine: fields.engine.unwrap_or_default(),
                context_size: fields.context_size,
                params,
            }),
            ModelKind::Openai => {
                let servers = fields
                    .openai
                    .ok_or("has `kind: openai` but no `openai:` section")?;
                if let Some(problem) = servers.problem() {
                    return Err(problem);
                }
                KindSettings::Openai { servers, params }
            }
            ModelKind::DigitCnn => KindSettings::DigitCnn,
            ModelKind::YoloDetector => {
                KindSettings::YoloDetector(fields.detect.unwrap_or_default())
            }
            ModelKind::Clip => KindSettings::Clip {
                label_template: fields.label_template,
            },
            ModelKind::Embedding => KindSettings::Embedding,
        };
        Ok(ModelEntry {
            path: fields.path,
            description: fields.description,
            fetch: fields.fetch,
            hub: fields.hub,
            settings,
        })
    }
}

impl From<ModelEntry> for EntryFields {
    fn from(entry: ModelEntry) -> EntryFields {
        let mut fields = EntryFields {
            kind: entry.kind(),
            path: entry.path,
            description: entry.description,
            fetch: entry.fetch,
            hub: entry.hub,
            ..EntryFields::default()
        };
        let non_default =
            |params: GenerationParams| Some(params).filter(|p| *p != GenerationParams::default());
        match entry.settings {
            KindSettings::Gguf(local) => {
                fields.engine = Some(local.engine).filter(|e| *e != EngineChoice::Llama);
                fields.context_size = local.context_size;
                fields.params = non_default(local.params);
            }
            KindSettings::Openai { servers, params } => {
                fields.openai = Some(servers);
                fields.params = non_default(params);
            }
            KindSettings::YoloDetector(detect) => fields.detect = Some(detect),
            KindSettings::Clip { label_template } => fields.label_template = label_template,
            KindSettings::DigitCnn | KindSettings::Embedding => {}
        }
        fields
    }
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
    /// A GGUF language model at `path` run by llama.cpp with default settings.
    pub fn gguf(path: impl Into<PathBuf>) -> ModelEntry {
        ModelEntry::new(path, KindSettings::Gguf(LocalModel::default()))
    }

    pub fn new(path: impl Into<PathBuf>, settings: KindSettings) -> ModelEntry {
        ModelEntry {
            path: path.into(),
            description: String::new(),
            fetch: None,
            hub: None,
            settings,
        }
    }

    pub fn kind(&self) -> ModelKind {
        match &self.settings {
            KindSettings::Gguf(_) => ModelKind::Gguf,
            KindSettings::Openai { .. } => ModelKind::Openai,
            KindSettings::DigitCnn => ModelKind::DigitCnn,
            KindSettings::YoloDetector(_) => ModelKind::YoloDetector,
            KindSettings::Clip { .. } => ModelKind::Clip,
            KindSettings::Embedding => ModelKind::Embedding,
        }
    }

    /// The default generation parameters of a language model (none for other kinds).
    pub fn params(&self) -> &GenerationParams {
        match &self.settings {
            KindSettings::Gguf(local) => &local.params,
            KindSettings::Openai { params, .. } => params,
            _ => &GenerationParams::NONE,
        }
    }

    pub fn params_mut(&mut self) -> Option<&mut GenerationParams> {
        match &mut self.settings {
            KindSettings::Gguf(local) => Some(&mut local.params),
            KindSettings::Openai { params, .. } => Some(params),
            _ => None,
        }
    }

    /// The settings of a local GGUF model.
    pub fn local(&self) -> Option<&LocalModel> {
        match &self.settings {
            KindSettings::Gguf(local) => Some(local),
            _ => None,
        }
    }

    /// The servers of a remote model.
    pub fn servers(&self) -> Option<&remote::RemoteSettings> {
        match &self.settings {
            KindSettings::Openai { servers, .. } => Some(servers),
            _ => None,
        }
    }

    /// A GGUF model that llama.cpp (not mistral.rs) runs.
    pub fn runs_on_llama_cpp(&self) -> bool {
        self.local()
            .is_some_and(|local| local.engine == EngineChoice::Llama)
    }

    /// Whether chat prompts can run on this model: a remote server's model, or a GGUF
    /// file whose header carries a chat template. The one place this is decided.
    pub fn is_chat_model(&self) -> bool {
        self.is_chat_model_with(crate::gguf::GgufInfo::read(&self.path).ok().as_ref())
    }

    /// [`ModelEntry::is_chat_model`] with the GGUF header already read (None: unreadable).
    pub fn is_chat_model_with(&self, info: Option<&crate::gguf::GgufInfo>) -> bool {
        match self.kind() {
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
            let mut entry = ModelEntry::try_from(fields).map_err(&bad_entry)?;
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
    fn settings_of_another_kind_are_refused_with_the_model_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("models.yaml");
        for (entry, expected) in [
            (
                "path: p.onnx\n    kind: yolo-detector\n    context_size: 512",
                "model `m` sets `context_size:`, which only `kind: gguf` reads (this entry is `kind: yolo-detector`)",
            ),
            (
                "path: s.gguf\n    detect: {min_confidence: 0.5}",
                "model `m` sets `detect:`, which only `kind: yolo-detector` reads (this entry is `kind: gguf`)",
            ),
            (
                "path: d.safetensors\n    kind: digit-cnn\n    params: {temperature: 0.5}",
                "sets `params:`, which only `kind: gguf` or `kind: openai` reads",
            ),
            (
                "path: s.gguf\n    openai: {model: q, endpoints: [\"http://h/v1\"]}",
                "sets `openai:`, which only `kind: openai` reads",
            ),
            (
                "kind: openai",
                "model `m` has `kind: openai` but no `openai:` section",
            ),
            (
                "kind: clip",
                "model `m` needs a `path:` (or `hub: {repo, file}`)",
            ),
        ] {
            std::fs::write(&path, format!("models:\n  m:\n    {entry}\n")).unwrap();
            let err = ModelCatalog::load(&path).unwrap_err().to_string();
            assert!(err.contains(expected), "{entry}: {err}");
        }
    }

    #[test]
    fn an_entry_keeps_its_kind_settings_through_serialization() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("models.yaml");
        std::fs::write(
            &path,
            "models:\n  big:\n    path: b.gguf\n    engine: mistralrs\n    context_size: 1024\n    params: {temperature: 0.2}\n  people:\n    path: p.onnx\n    kind: yolo-detector\n    detect: {min_confidence: 0.5, classes: [person]}\n",
        )
        .unwrap();
        let catalog = ModelCatalog::load(&path).unwrap();
        let big = &catalog.models["big"];
        let local = big.local().unwrap();
        assert_eq!(local.engine, EngineChoice::Mistralrs);
        assert_eq!(local.context_size, Some(1024));
        assert_eq!(big.params().temperature, Some(0.2));
        let people = &catalog.models["people"];
        assert_eq!(people.kind(), ModelKind::YoloDetector);
        assert_eq!(people.params(), &GenerationParams::NONE);
        for entry in [big, people] {
            let json = serde_json::to_value(entry).unwrap();
            assert_eq!(&serde_json::from_value::<ModelEntry>(json).unwrap(), entry);
        }
        let json = serde_json::to_value(people).unwrap();
        assert_eq!(json["kind"], "yolo-detector");
        assert_eq!(json["detect"]["classes"][0], "person");
        assert!(json.get("params").is_none() && json.get("engine").is_none());
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
