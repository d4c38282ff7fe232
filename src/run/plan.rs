//! Turns an eval set and a selection into a validated [`RunPlan`].

use std::path::PathBuf;

use super::{CaseInfo, Column, RunPlan};
use crate::catalog::{CatalogError, ModelRef};
use crate::engine::GenerationRequest;
use crate::evalset::{Case, EvalSet};
use crate::gguf::GgufInfo;
use crate::project::Project;
use crate::prompt::{Prompt, PromptBody, PromptError};

mod assertions;
mod cells;
pub(super) mod judging;

pub use assertions::AssertionValueError;
pub use cells::CellBuilder;
use cells::{ColumnTemplate, STORED_OUTPUT_STAND_IN};

/// The user's selection on top of what the eval set names (stored with each run, so a
/// resumed run selects the same cells).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunOptions {
    /// Prompt names or `name:variant`; empty means the eval set's `prompts`.
    pub prompts: Vec<String>,
    /// Model names; empty means the eval set's `models`.
    pub models: Vec<String>,
    /// Keep only cases with one of these tags.
    pub tags: Vec<String>,
    pub limit: Option<usize>,
    /// Added to every cell's seed: repeat `r` of `promptlab eval --repeat K` uses `r`, so
    /// each repeat samples afresh (and has its own cache entries).
    #[serde(default)]
    pub seed_offset: u32,
    /// The judge of model-graded assertions that name none (overrides the eval set's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<String>,
    /// Generation parameters over the prompts' and models' (a sweep's setting).
    #[serde(default, skip_serializing_if = "is_default")]
    pub params: crate::params::GenerationParams,
    /// Keep only the cases with these ids (an optimization's tuning or held-out part).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub case_ids: Vec<String>,
    /// Prompt versions that are in no file (an optimization's candidates), selected by
    /// their id like the library's; stored with the run, so a resume finds them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_prompts: Vec<Prompt>,
}

fn is_default(params: &crate::params::GenerationParams) -> bool {
    *params == crate::params::GenerationParams::default()
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(transparent)]
    Prompt(#[from] PromptError),
    /// The eval set uses a prompt whose file does not load.
    #[error("prompt `{selector}` comes from a file that does not load: {source}")]
    BrokenPrompt {
        selector: String,
        #[source]
        source: std::sync::Arc<PromptError>,
    },
    #[error("{path}: {source}")]
    Catalog {
        path: PathBuf,
        #[source]
        source: CatalogError,
    },
    #[error("model `{model}`: {message}")]
    Model { model: String, message: String },
    #[error("{origin}: {message}")]
    Case { origin: String, message: String },
    /// An assertion's value did not render with the case's variables.
    #[error("{origin}: assertion `{kind}`: {source}")]
    AssertionValue {
        origin: String,
        kind: String,
        #[source]
        source: AssertionValueError,
    },
}

pub fn plan(
    project: &Project,
    eval_set: EvalSet,
    options: &RunOptions,
) -> Result<RunPlan, PlanError> {
    let invalid = |message: String| PlanError::Invalid {
        path: eval_set.source.clone(),
        message,
    };

    let prompt_selectors = if options.prompts.is_empty() {
        eval_set.prompts.clone()
    } else {
        options.prompts.clone()
    };
    if prompt_selectors.is_empty() {
        return Err(invalid(
            "no prompts to run: expected `prompts:` in the eval set or --prompts".into(),
        ));
    }
    let mut prompts: Vec<&Prompt> = Vec::new();
    for selector in &prompt_selectors {
        if let Some(extra) = options.extra_prompts.iter().find(|p| &p.id == selector) {
            if !prompts.iter().any(|q| q.id == extra.id) {
                prompts.push(extra);
            }
            continue;
        }
        if let Some(broken) = project.prompts.broken_for(selector) {
            return Err(PlanError::BrokenPrompt {
                selector: selector.clone(),
                source: broken.error.clone(),
            });
        }
        let found = project.prompts.select(selector);
        if found.is_empty() {
            let not_loaded = if project.prompts.broken.is_empty() {
                String::new()
            } else {
                format!(
                    "; these prompt files did not load:\n{}",
                    project.prompts.broken_text()
                )
            };
            return Err(invalid(format!(
                "unknown prompt `{selector}`: expected one of {} (from {}){not_loaded}",
                project.prompts.names().join(", "),
                project.root.join("prompts").display()
            )));
        }
        for p in found {
            if !prompts.iter().any(|q| q.id == p.id) {
                prompts.push(p);
            }
        }
    }

    for prompt in &prompts {
        if !prompt.tools.is_empty() {
            return Err(PlanError::Invalid {
                path: prompt.source.clone(),
                message: format!(
                    "prompt `{}` is an agent prompt (it lists `tools`): run it with `promptlab agent --prompt {}` or an agent eval set",
                    prompt.id, prompt.id
                ),
            });
        }
        if let Some(schema) = &prompt.schema {
            crate::engine::llama::schema_to_grammar(schema).map_err(|e| PlanError::Invalid {
                path: prompt.source.clone(),
                message: format!("prompt `{}`: schema: {e}", prompt.id),
            })?;
        }
    }

    let mut model_names = if options.models.is_empty() {
        eval_set.models.clone()
    } else {
        options.models.clone()
    };
    let mut seen = std::collections::HashSet::new();
    model_names.retain(|name| seen.insert(name.clone()));
    if model_names.is_empty() {
        return Err(invalid(
            "no models to run: expected `models:` in the eval set or --models".into(),
        ));
    }
    let mut models = Vec::new();
    let mut identities = Vec::new();
    for name in &model_names {
        let model = project
            .catalog
            .resolve(name)
            .map_err(|source| PlanError::Catalog {
                path: eval_set.source.clone(),
                source,
            })?;
        let (has_template, identity) = check_model_file(&model)?;
        identities.push(identity);
        let vision = model.entry.as_ref().is_some_and(|e| e.kind().is_vision());
        for prompt in &prompts {
            if vision && !matches!(prompt.body, PromptBody::Completion(_)) {
                return Err(PlanError::Model {
                    model: model.name.clone(),
                    message: format!(
                        "a vision model reads an image path, so it runs `completion:` prompts such as `completion: \"{{{{ image }}}}\"`, not the chat prompt `{}` ({})",
                        prompt.id,
                        prompt.source.display()
                    ),
                });
            }
            if !matches!(prompt.body, PromptBody::Completion(_)) && !has_template {
                return Err(PlanError::Model {
                    model: model.name.clone(),
                    message: format!(
                        "the GGUF has no chat template, so it cannot run the chat prompt `{}` ({}): use a `completion:` prompt for base models",
                        prompt.id,
                        prompt.source.display()
                    ),
                });
            }
        }
        models.push(model);
    }

    let wanted_ids: std::collections::HashSet<&str> =
        options.case_ids.iter().map(String::as_str).collect();
    let cases: Vec<&Case> = eval_set
        .cases
        .iter()
        .filter(|c| options.tags.is_empty() || c.tags.iter().any(|t| options.tags.contains(t)))
        .filter(|c| wanted_ids.is_empty() || wanted_ids.contains(c.id.as_str()))
        .take(options.limit.unwrap_or(usize::MAX))
        .collect();
    if cases.is_empty() {
        return Err(invalid(format!(
            "no cases left to run after --filter {} (tags in this set: {})",
            options.tags.join(","),
            eval_set.tags().join(", ")
        )));
    }
    if let Some(spec) = eval_set.metrics.classification.as_ref() {
        if let Some(pattern) = &spec.label_regex {
            regex::Regex::new(pattern)
                .map_err(|e| invalid(format!("metrics.classification.label_regex: {e}")))?;
        }
        for path in [&spec.label_path, &spec.expected_path]
            .into_iter()
            .flatten()
        {
            serde_json_path::JsonPath::parse(path).map_err(|e| {
                invalid(format!(
                    "metrics.classification: invalid JSONPath {path:?}: {e}"
                ))
            })?;
        }
    }

    if eval_set.metrics.detection.is_some() {
        // A case without readable boxes would silently drop out of the metrics.
        for case in &cases {
            let boxes = match case.expected.as_ref() {
                None => Err("no `expected` boxes".to_string()),
                Some(expected) => {
                    crate::score::detection::parse_boxes(expected).map_err(|e| e.to_string())
                }
            };
            if let Err(message) = boxes {
                return Err(PlanError::Case {
                    origin: case.origin.clone(),
                    message: format!(
                        "metrics.detection needs `expected` as a list of boxes `{{label, box: [x1, y1, x2, y2]}}` (`[]` for none): {message}"
                    ),
                });
            }
        }
    }

    let mut columns = Vec::new();
    let mut column_models = Vec::new();
    let mut column_identities: Vec<String> = Vec::new();
    for model in &models {
        for prompt in &prompts {
            if let Some(only) = eval_set.model_prompts.get(&model.name)
                && !only.contains(&prompt.id)
            {
                continue;
            }
            columns.push(Column {
                id: format!("{} @ {}", prompt.id, model.name),
                prompt_id: prompt.id.clone(),
                model: model.name.clone(),
            });
            column_models.push((model, *prompt));
            column_identities.push(
                identities[models
                    .iter()
                    .position(|m| m.name == model.name)
                    .unwrap_or(0)]
                .clone(),
            );
        }
    }

    let builder = CellBuilder {
        columns: column_models
            .iter()
            .zip(&column_identities)
            .map(|((model, prompt), identity)| {
                let model_params = model
                    .entry
                    .as_ref()
                    .map(|e| e.params().clone())
                    .unwrap_or_default();
                let mut params = model_params
                    .overlay(&prompt.params)
                    .overlay(&options.params)
                    .resolve();
                params.seed = params.seed.wrapping_add(options.seed_offset);
                ColumnTemplate {
                    prompt: (*prompt).clone(),
                    params,
                    identity: identity.clone(),
                    vision: model.entry.as_ref().is_some_and(|e| e.kind().is_vision()),
                    tools: model
                        .entry
                        .as_ref()
                        .and_then(|e| e.servers())
                        .filter(|remote| !remote.tools.is_empty())
                        .map(|remote| (remote.tools.clone(), remote.tool_choice.clone())),
                }
            })
            .collect(),
        cases: cases.iter().map(|case| (*case).clone()).collect(),
        catalog: project.catalog.clone(),
        run_judge: options.judge.clone(),
        eval_set_judge: eval_set.judge.clone(),
        dialect: eval_set.dialect,
        eval_set_path: eval_set.source.clone(),
    };
    let mut cells = Vec::new();
    for column in 0..builder.columns.len() {
        for case_index in 0..builder.cases.len() {
            // A variable stored from an earlier output is not known yet: the prompts and
            // assertions are checked with a stand-in, and rendered again as the outputs
            // arrive (see `execute`).
            let unknown = builder
                .stored_before(case_index)
                .map(|name| (name.to_string(), serde_json::json!(STORED_OUTPUT_STAND_IN)))
                .collect();
            cells.push(builder.cell(column, case_index, &unknown, true)?);
        }
    }

    let case_infos = cases
        .iter()
        .map(|c| CaseInfo {
            id: c.id.clone(),
            description: c.description.clone(),
            tags: c.tags.clone(),
            vars: c.vars.clone(),
            expected: c.expected.clone(),
            human: c.human,
        })
        .collect();
    let judging = judging::plan_judging(project, &eval_set.source, &cells)?;
    Ok(RunPlan {
        judging,
        builder,
        columns,
        models: column_models.iter().map(|(m, _)| (*m).clone()).collect(),
        cases: case_infos,
        cells,
        eval_set,
    })
}

/// Reads the model's GGUF header: a missing, truncated or corrupt file is reported now,
/// before anything runs. Returns whether the model has a chat template, and the model's
/// identity for cache keys: its size and a hash of its header and tensor index (which
/// change with any re-quantization or re-conversion, without hashing gigabytes).
pub(super) fn check_model_file(model: &ModelRef) -> Result<(bool, String), PlanError> {
    let Some(entry) = &model.entry else {
        return Ok((true, crate::catalog::ECHO_MODEL.to_string()));
    };
    let fail = |message: String| PlanError::Model {
        model: model.name.clone(),
        message,
    };
    if let Some(remote) = entry.servers() {
        // The server owns the weights; its model name is the identity for the cache.
        return Ok((true, format!("openai:{}", remote.model)));
    }
    if entry.kind() == crate::catalog::ModelKind::Embedding {
        return Err(fail(
            "is an embedding model (for the `similar` assertion), not one to evaluate".into(),
        ));
    }
    if entry.kind() == crate::catalog::ModelKind::DigitCnn {
        // Loading checks the card and that the weights fit it.
        crate::vision::train::DigitClassifier::load(&entry.path)
            .map_err(|e| fail(e.to_string()))?;
        let card = crate::vision::train::card_path(&entry.path);
        let mut bytes = std::fs::read(&entry.path)
            .map_err(|e| fail(format!("{}: cannot read: {e}", entry.path.display())))?;
        bytes.extend(
            std::fs::read(&card)
                .map_err(|e| fail(format!("{}: cannot read: {e}", card.display())))?,
        );
        return Ok((false, format!("digit-cnn:{}", hex_sha256(&bytes))));
    }
    if let crate::catalog::KindSettings::Clip { label_template } = &entry.settings {
        let dir = crate::vision::clip::resolve_model(&entry.path.display().to_string())
            .map_err(|e| fail(e.to_string()))?;
        crate::vision::clip::ZeroShot::load(&dir).map_err(|e| fail(e.to_string()))?;
        let mut bytes = Vec::new();
        for file in ["config.json", "model.safetensors", "tokenizer.json"] {
            let path = dir.join(file);
            bytes.extend(
                std::fs::read(&path)
                    .map_err(|e| fail(format!("{}: cannot read: {e}", path.display())))?,
            );
        }
        bytes.extend(label_template.clone().unwrap_or_default().into_bytes());
        return Ok((false, format!("clip:{}", hex_sha256(&bytes))));
    }
    if let crate::catalog::KindSettings::YoloDetector(settings) = &entry.settings {
        // Loading checks ONNX Runtime, the file and its input now rather than per cell.
        crate::vision::detect::Detector::load(&entry.path, settings.names.as_deref(), None, 1)
            .map_err(|e| fail(e.to_string()))?;
        let mut bytes = std::fs::read(&entry.path)
            .map_err(|e| fail(format!("{}: cannot read: {e}", entry.path.display())))?;
        if let Some(names) = &settings.names {
            bytes.extend(std::fs::read(names).unwrap_or_default());
        }
        // The filters change the answer, so they are part of the model's identity.
        bytes.extend(serde_json::to_vec(settings).unwrap_or_default());
        return Ok((false, format!("yolo-detector:{}", hex_sha256(&bytes))));
    }
    if let Some(command) = entry.not_fetched() {
        return Err(fail(format!(
            "{} is not fetched yet: run `{command}`",
            entry.path.display()
        )));
    }
    let info = GgufInfo::read(&entry.path).map_err(|e| fail(e.to_string()))?;
    // A chat template that does not compile would fail every cell; say so before the run.
    if let Some(source) = info.chat_template() {
        let env = crate::template::environment(crate::template::Undefined::Lenient);
        crate::template::check_syntax(env, source).map_err(|e| {
            fail(format!(
                "{}: the chat template in the file does not compile ({e})",
                entry.path.display()
            ))
        })?;
    }
    let mut header = Vec::new();
    std::fs::File::open(&entry.path)
        .and_then(|f| {
            std::io::Read::read_to_end(&mut std::io::Read::take(f, info.data_offset), &mut header)
        })
        .map_err(|e| fail(format!("{}: cannot read: {e}", entry.path.display())))?;
    // The context size can cut a generation short, so it is part of what produced it.
    let context = entry
        .local()
        .and_then(|local| local.context_size)
        .map(|c| c.to_string())
        .unwrap_or_else(|| "default".into());
    let mut identity = format!(
        "gguf:{}:{}:ctx={context}",
        info.file_size,
        hex_sha256(&header)
    );
    // Another engine computes other outputs from the same file.
    if let Some(engine) = entry
        .local()
        .map(|local| local.engine)
        .filter(|e| *e != crate::catalog::EngineChoice::Llama)
    {
        identity.push_str(&format!(":engine={}", engine.name()));
    }
    // Where the layers run changes the arithmetic: llama.cpp's AVX2 and AVX-512 kernels
    // gave 91 of 128 SmolLM2 arithmetic outputs alike, and a GPU's differ again, so a
    // cached output is reused only on the same kind of device.
    if let Some(Ok(plan)) = crate::engine::llama::device::plan_for(entry) {
        identity.push_str(&format!(
            ":on={}",
            crate::engine::llama::device::cache_identity(&plan)
        ));
    }
    Ok((entry.is_chat_model_with(Some(&info)), identity))
}

/// The absolute path and content hash of the image a vision cell reads.
fn image_for_case(
    rendered: &crate::prompt::RenderedPrompt,
    eval_set: &std::path::Path,
    case: &Case,
) -> Result<(String, String), PlanError> {
    let text = match rendered {
        crate::prompt::RenderedPrompt::Completion(text) => text.trim().to_string(),
        crate::prompt::RenderedPrompt::Chat(_)
        | crate::prompt::RenderedPrompt::Promptfoo { .. } => String::new(),
    };
    // The first line is the image; any further lines (CLIP's candidate labels) follow it.
    let (text, rest) = text.split_once('\n').unwrap_or((text.as_str(), ""));
    let text = text.trim();
    let fail = |message: String| PlanError::Case {
        origin: case.origin.clone(),
        message,
    };
    if text.is_empty() {
        return Err(fail("the prompt rendered no image path (expected e.g. `completion: \"{{ image }}\"` and an `image` variable)".into()));
    }
    let base = eval_set.parent().unwrap_or(std::path::Path::new("."));
    let path = std::path::absolute(base.join(text)).unwrap_or_else(|_| base.join(text));
    let bytes = std::fs::read(&path).map_err(|e| fail(format!("image {}: {e}", path.display())))?;
    let mut prompt = path.display().to_string();
    if !rest.trim().is_empty() {
        prompt.push('\n');
        prompt.push_str(rest.trim());
    }
    Ok((prompt, hex_sha256(&bytes)))
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What makes a generation reproducible: model identity, the exact request (rendered
/// messages, parameters, seed, schema) and the engine version.
pub(super) fn cache_key(model_identity: &str, request: &GenerationRequest) -> String {
    let request = serde_json::to_string(request).unwrap_or_default();
    hex_sha256(format!("{ENGINE_VERSION}\n{model_identity}\n{request}").as_bytes())
}

/// Bumped with anything that can change generated text for the same request; a test
/// keeps the llama.cpp crate versions in step with Cargo.lock.
const ENGINE_VERSION: &str = concat!(
    "promptlab ",
    env!("CARGO_PKG_VERSION"),
    " llama-cpp-2 0.1.160 llama-cpp-sys-2 0.1.161"
);

#[cfg(test)]
mod tests {
    /// A `cargo update` of the llama.cpp crates changes kernels and so outputs; the cache
    /// key must change with it.
    #[test]
    fn engine_version_names_the_locked_llama_cpp_crates() {
        let lock = include_str!("../../Cargo.lock");
        for name in ["llama-cpp-2", "llama-cpp-sys-2"] {
            let marker = format!("name = \"{name}\"\nversion = \"");
            let start = lock
                .find(&marker)
                .map(|i| i + marker.len())
                .expect("crate in Cargo.lock");
            let end = lock[start..].find('"').expect("version ends");
            let version = &lock[start..start + end];
            assert!(
                super::ENGINE_VERSION.contains(&format!("{name} {version}")),
                "ENGINE_VERSION ({}) does not name {name} {version}",
                super::ENGINE_VERSION
            );
        }
    }
}
