//! A catalog entry: what every model has, and the settings of its kind as an enum, read
//! from `models.yaml`'s flat keys and checked so that keys of another kind are refused.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{DetectSettings, EngineChoice, GpuLayers, HubFile, ModelKind, path_is_empty, remote};
use crate::params::GenerationParams;

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
    /// Layers offloaded to a GPU; unset: all of them when the build and the machine have
    /// a GPU (see `engine::llama::device`).
    pub gpu_layers: Option<GpuLayers>,
    /// The GPU to use, by llama.cpp's device name (`Vulkan0`, `CUDA1`, `Metal`); unset:
    /// every GPU llama.cpp finds.
    pub device: Option<String>,
}

/// [`ModelEntry`] as written in `models.yaml`: every kind's keys side by side, checked
/// and sorted by kind in [`ModelEntry::try_from`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EntryFields {
    #[serde(default, skip_serializing_if = "path_is_empty")]
    pub(super) path: PathBuf,
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
    pub(super) fetch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    openai: Option<remote::RemoteSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    engine: Option<EngineChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) hub: Option<HubFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gpu_layers: Option<GpuLayers>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device: Option<String>,
}

/// A catalog entry whose keys do not fit its kind; worded to follow "model `name` ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// A key that only other kinds of model read.
    #[error(
        "sets `{key}:`, which only {} reads (this entry is `kind: {}`)",
        kinds_text(.readers),
        .kind.yaml_name()
    )]
    ForeignKey {
        key: &'static str,
        readers: &'static [ModelKind],
        kind: ModelKind,
    },
    #[error("has `kind: openai` but no `openai:` section")]
    NoOpenaiSection,
    #[error("has an empty `device:`: name a device such as `Vulkan0`, or leave the key out")]
    EmptyDevice,
    /// What [`remote::RemoteSettings::problem`] found.
    #[error("{0}")]
    Openai(String),
}

/// `` `kind: a` or `kind: b` ``.
fn kinds_text(kinds: &[ModelKind]) -> String {
    let names: Vec<String> = kinds
        .iter()
        .map(|k| format!("`kind: {}`", k.yaml_name()))
        .collect();
    names.join(" or ")
}

impl TryFrom<EntryFields> for ModelEntry {
    type Error = EntryError;

    fn try_from(fields: EntryFields) -> Result<ModelEntry, EntryError> {
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
                "gpu_layers",
                fields.gpu_layers.is_some(),
                &[ModelKind::Gguf][..],
            ),
            ("device", fields.device.is_some(), &[ModelKind::Gguf][..]),
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
        for (key, present, readers) in written {
            if present && !readers.contains(&kind) {
                return Err(EntryError::ForeignKey { key, readers, kind });
            }
        }
        if fields
            .device
            .as_deref()
            .is_some_and(|d| d.trim().is_empty())
        {
            return Err(EntryError::EmptyDevice);
        }
        let params = fields.params.unwrap_or_default();
        let settings = match kind {
            ModelKind::Gguf => KindSettings::Gguf(LocalModel {
                engine: fields.engine.unwrap_or_default(),
                context_size: fields.context_size,
                params,
                gpu_layers: fields.gpu_layers,
                device: fields.device,
            }),
            ModelKind::Openai => {
                let servers = fields.openai.ok_or(EntryError::NoOpenaiSection)?;
                if let Some(problem) = servers.problem() {
                    return Err(EntryError::Openai(problem));
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
                fields.gpu_layers = local.gpu_layers;
                fields.device = local.device;
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
