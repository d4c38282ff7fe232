//! What an agent runs with, read from the project: its engine (a local GGUF or a remote
//! model), the tools the catalog's models make available, and the folders tools may read.

use std::path::Path;
use std::time::Duration;

use crate::catalog::{ModelCatalog, ModelKind};
use crate::engine::{EngineError, EngineWorker};

use super::tools::{self, ToolSet};

/// Where the vision tools' models come from: catalog names given here, else the
/// catalog's `tools:` section, else the first model of each kind.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ToolModels {
    pub digits: Option<String>,
    /// Detectors merged into `detect_objects`.
    pub detectors: Vec<String>,
    pub clip: Option<String>,
}

/// A tool or tool model asked for that the catalog cannot provide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolSetupError {
    #[error("unknown tool `{name}`; tools: {}", tools::TOOL_NAMES.join(", "))]
    UnknownTool { name: String },
    #[error("model `{name}` is not a `kind: {}` model", .kind.yaml_name())]
    WrongKind { name: String, kind: ModelKind },
    #[error("unknown model `{0}`")]
    UnknownModel(String),
}

pub fn project_tools(
    catalog: &ModelCatalog,
    models: &ToolModels,
    wanted: Option<&[String]>,
    timeout: Duration,
) -> Result<ToolSet, ToolSetupError> {
    if let Some(wanted) = wanted
        && let Some(unknown) = wanted
            .iter()
            .find(|w| !tools::TOOL_NAMES.contains(&w.as_str()))
    {
        return Err(ToolSetupError::UnknownTool {
            name: unknown.clone(),
        });
    }
    let include = |name: &str| wanted.is_none_or(|w| w.iter().any(|x| x == name));
    let pick = |chosen: &Option<String>,
                kind: ModelKind|
     -> Result<Option<(String, crate::catalog::ModelEntry)>, ToolSetupError> {
        match chosen {
            Some(name) => match catalog.models.get(name) {
                Some(entry) if entry.kind() == kind => Ok(Some((name.clone(), entry.clone()))),
                Some(_) => Err(ToolSetupError::WrongKind {
                    name: name.clone(),
                    kind,
                }),
                None => Err(ToolSetupError::UnknownModel(name.clone())),
            },
            None => Ok(catalog
                .models
                .iter()
                .find(|(_, e)| e.kind() == kind)
                .map(|(n, e)| (n.clone(), e.clone()))),
        }
    };
    let mut set = ToolSet::new(timeout);
    if include("detect_objects") {
        let chosen: &[String] = if models.detectors.is_empty() {
            &catalog.tools.detect_objects
        } else {
            &models.detectors
        };
        let mut entries = Vec::new();
        for name in chosen {
            if let Some(found) = pick(&Some(name.clone()), ModelKind::YoloDetector)? {
                entries.push(found);
            }
        }
        if chosen.is_empty()
            && let Some(first) = pick(&None, ModelKind::YoloDetector)?
        {
            entries.push(first);
        }
        if entries.is_empty() {
            set.leave_out(
                "detect_objects",
                "no `kind: yolo-detector` model in the catalog",
            );
        } else {
            let backends: Vec<(String, std::path::PathBuf, crate::catalog::DetectSettings)> =
                entries
                    .into_iter()
                    .filter_map(|(name, entry)| match entry.settings {
                        crate::catalog::KindSettings::YoloDetector(detect) => {
                            Some((name, entry.path, detect))
                        }
                        _ => None,
                    })
                    .collect();
            match tools::DetectObjects::load(&backends) {
                Ok(tool) => set.add(Box::new(tool)),
                Err(e) => set.leave_out("detect_objects", e.to_string()),
            }
        }
    }
    if include("classify_image") {
        let chosen = models.clip.clone().or(catalog.tools.classify_image.clone());
        match pick(&chosen, ModelKind::Clip)? {
            Some((name, entry)) => {
                match crate::vision::clip::resolve_model(&entry.path.display().to_string()) {
                    Ok(dir) => set.add(Box::new(tools::ClassifyImage::new(
                        dir,
                        match &entry.settings {
                            crate::catalog::KindSettings::Clip {
                                label_template: Some(template),
                            } => template.clone(),
                            _ => "a photo of {}".into(),
                        },
                    ))),
                    Err(e) => set.leave_out("classify_image", format!("`{name}`: {e}")),
                }
            }
            None => set.leave_out(
                "classify_image",
                "no `kind: clip` model in the catalog (CLIP weights are not shipped)",
            ),
        }
    }
    if include("classify_digit") {
        let chosen = models
            .digits
            .clone()
            .or(catalog.tools.classify_digit.clone());
        match pick(&chosen, ModelKind::DigitCnn)? {
            Some((_, entry)) if entry.path.is_file() => {
                set.add(Box::new(tools::ClassifyDigit::new(entry.path.clone())));
            }
            Some((name, entry)) => set.leave_out(
                "classify_digit",
                format!(
                    "`{name}` is not trained yet ({} is missing; run `promptlab vision digits train`)",
                    entry.path.display()
                ),
            ),
            None => set.leave_out("classify_digit", "no `kind: digit-cnn` model in the catalog"),
        }
    }
    if include("list_images") {
        set.add(Box::new(tools::ListImages));
    }
    if include("calculator") {
        set.add(Box::new(tools::Calculator::default()));
    }
    Ok(set)
}

/// The engine an agent runs on for a catalog model: a local GGUF chat model (one
/// conversation, its KV cache kept between steps) or a remote `kind: openai` model.
pub fn load_engine(
    model: &crate::catalog::ModelRef,
    gpu_layers: Option<crate::catalog::GpuLayers>,
) -> Result<EngineWorker, EngineError> {
    if !model
        .entry
        .as_ref()
        .is_some_and(|e| e.kind().is_language_model())
    {
        return Err(EngineError::Load(format!(
            "`{}` is not a language model: the agent needs a GGUF chat model or a `kind: openai` model from models/models.yaml",
            model.name
        )));
    }
    crate::engine::open(
        model,
        &crate::engine::OpenOptions::conversations(1).with_gpu_layers(gpu_layers),
    )
}

/// The folders tools may read by default: the project itself.
pub fn default_roots(project_root: &Path) -> Vec<std::path::PathBuf> {
    vec![project_root.to_path_buf()]
}
