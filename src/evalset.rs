//! Evaluation sets (`eval-sets/*.yaml`): which prompts and models to run, default
//! assertions, and the cases, given inline or loaded from JSONL/CSV files beside the set.

pub mod agent;
mod append;
mod sources;
pub mod sweep;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use append::{InlineCasesError, append_case};

use crate::score::ClassificationSpec;
use crate::score::assertion::AssertionSpec;
use crate::yaml::{self, YamlError};

pub use sources::{CaseFieldError, SourceError};

/// One case: the variables a prompt is rendered with, and what is expected of the output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Stable identifier; defaults to the case's 1-based position in the set.
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub vars: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<serde_json::Value>,
    #[serde(default, rename = "assert", skip_serializing_if = "Vec::is_empty")]
    pub assertions: Vec<AssertionSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Minimum weighted score to pass; without it every assertion must pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// A person's verdict on the output (`pass` or `fail`): with model-graded assertions,
    /// the run reports how often the judge agrees (Cohen's kappa).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human: Option<HumanLabel>,
    /// JavaScript (or `file://` JS/Python) that reshapes the output before the assertions
    /// see it (promptfoo's `options.transform`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<String>,
    /// Saves this case's output (after `transform`) as a variable of every later case
    /// (promptfoo's `options.storeOutputAs`); the cases then run in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_output_as: Option<String>,
    /// Where the case came from (`file:line`), for error messages.
    #[serde(skip)]
    pub origin: String,
    /// How many of `assertions` (the first ones) came from the set's `defaults.assert`,
    /// so an error in one names the eval set, not the case that received it.
    #[serde(skip)]
    pub default_assertions: usize,
}

impl Case {
    /// What people call this case: its description, or else its first variable's value.
    pub fn label(&self) -> String {
        case_label(&self.description, &self.vars)
    }
}

/// A case's description, or else the value of its first variable (the part of a case
/// that tells it apart when it has no description).
pub fn case_label(description: &str, vars: &serde_json::Map<String, serde_json::Value>) -> String {
    if !description.is_empty() {
        return description.to_string();
    }
    vars.values()
        .next()
        .map(|value| {
            value
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| value.to_string())
        })
        .unwrap_or_default()
}

/// A person's pass/fail verdict on a case's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HumanLabel {
    Pass,
    Fail,
}

/// What every case gets unless it says otherwise.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseDefaults {
    #[serde(default, rename = "assert")]
    pub assertions: Vec<AssertionSpec>,
    #[serde(default)]
    pub vars: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub threshold: Option<f64>,
}

/// Whether the YAML file is an agent eval set (`kind: agent`), read leniently: a file
/// that does not parse is not one.
pub fn is_agent_set(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| yaml::value_from_str(path, &text).ok())
        .is_some_and(|v| v.get("kind").and_then(serde_json::Value::as_str) == Some("agent"))
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSpec {
    #[serde(default)]
    pub classification: Option<ClassificationSpec>,
    #[serde(default)]
    pub detection: Option<DetectionSpec>,
}

/// Detection metrics over a detector's column: each case's `expected` is its list of boxes
/// (`{label, box: [x1, y1, x2, y2]}`), the output the boxes found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionSpec {
    /// IoU at which precision and recall are counted (AP uses COCO's thresholds).
    #[serde(default = "half")]
    pub iou: f64,
}

fn half() -> f64 {
    crate::score::assertion::DEFAULT_BOX_IOU
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EvalSetSpec {
    name: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    prompts: Vec<String>,
    #[serde(default)]
    models: Vec<String>,
    #[serde(default)]
    judge: Option<String>,
    #[serde(default)]
    pairwise: Option<String>,
    #[serde(default)]
    sweep: Option<sweep::SweepSpec>,
    #[serde(default)]
    defaults: CaseDefaults,
    #[serde(default)]
    cases: Vec<Case>,
    /// JSONL or CSV files, relative to the eval set file.
    #[serde(default)]
    cases_from: Vec<String>,
    #[serde(default)]
    metrics: MetricsSpec,
    #[serde(default)]
    derived_metrics: Vec<crate::score::named::DerivedMetric>,
}

/// A loaded evaluation set with defaults applied to every case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSet {
    pub name: String,
    pub description: String,
    pub prompts: Vec<String>,
    pub models: Vec<String>,
    /// Models that run only some of the prompts (model → prompt ids); the others run
    /// every prompt. From promptfoo configs, whose providers can list their prompts.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub model_prompts: std::collections::BTreeMap<String, Vec<String>>,
    /// The catalog model that judges model-graded assertions (unless one names its own
    /// `provider`, or the run is given `--judge`).
    pub judge: Option<String>,
    /// What "better" means for `--pairwise` comparison (a default criterion otherwise).
    pub pairwise: Option<String>,
    /// What `promptlab sweep` varies.
    pub sweep: Option<sweep::SweepSpec>,
    pub cases: Vec<Case>,
    pub metrics: MetricsSpec,
    /// Metrics computed per column from the named metrics' sums (promptfoo's
    /// `derivedMetrics`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub derived_metrics: Vec<crate::score::named::DerivedMetric>,
    pub source: PathBuf,
    /// How its templates render and its assertions check: promptlab's strict semantics,
    /// or promptfoo's for an imported promptfoo config.
    #[serde(default, skip_serializing_if = "is_promptlab")]
    pub dialect: crate::dialect::Dialect,
}

fn is_promptlab(dialect: &crate::dialect::Dialect) -> bool {
    *dialect == crate::dialect::Dialect::Promptlab
}

impl EvalSet {
    /// A set with a name and a file but nothing else (a stored run whose file is gone,
    /// an agent evaluation's results).
    pub fn named(name: &str, source: &Path) -> EvalSet {
        EvalSet {
            name: name.to_string(),
            description: String::new(),
            prompts: Vec::new(),
            models: Vec::new(),
            model_prompts: Default::default(),
            judge: None,
            pairwise: None,
            sweep: None,
            cases: Vec::new(),
            metrics: Default::default(),
            derived_metrics: Vec::new(),
            source: source.to_path_buf(),
            dialect: Default::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EvalSetError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl EvalSet {
    pub fn load(path: &Path) -> Result<EvalSet, EvalSetError> {
        if is_agent_set(path) {
            return Err(EvalSetError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "this is an agent eval set (`kind: agent`): run it with `promptlab eval {}` (or `promptlab agent --eval`)",
                    path.display()
                ),
            });
        }
        let spec: EvalSetSpec = yaml::read_file(path)?;
        let invalid = |message: String| EvalSetError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let fraction = |t: f64| t.is_finite() && (0.0..=1.0).contains(&t);
        if let Some(t) = spec.defaults.threshold.filter(|t| !fraction(*t)) {
            return Err(invalid(format!(
                "defaults.threshold {t}: expected a fraction from 0 to 1"
            )));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let mut cases = spec.cases;
        for (i, case) in cases.iter_mut().enumerate() {
            case.origin = match case.id.as_str() {
                "" => format!("{}: case {}", path.display(), i + 1),
                id => format!("{}: case {} (`{id}`)", path.display(), i + 1),
            };
        }
        for file in &spec.cases_from {
            cases.extend(sources::load_cases(&base.join(file))?);
        }
        if cases.is_empty() {
            return Err(invalid(
                "the eval set has no cases: expected `cases:` entries or `cases_from:` files with at least one case".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, case) in cases.iter_mut().enumerate() {
            if case.id.is_empty() {
                case.id = (i + 1).to_string();
            }
            if !seen.insert(case.id.clone()) {
                return Err(invalid(format!(
                    "{}: duplicate case id `{}`",
                    case.origin, case.id
                )));
            }
            for (key, value) in &spec.defaults.vars {
                case.vars
                    .entry(key.clone())
                    .or_insert_with(|| value.clone());
            }
            let mut assertions = spec.defaults.assertions.clone();
            assertions.append(&mut case.assertions);
            case.assertions = assertions;
            case.default_assertions = spec.defaults.assertions.len();
            if let Some(t) = case.threshold.filter(|t| !fraction(*t)) {
                return Err(invalid(format!(
                    "{}: threshold {t}: expected a fraction from 0 to 1",
                    case.origin
                )));
            }
            if case.threshold.is_none() {
                case.threshold = spec.defaults.threshold;
            }
        }
        if let Some(c) = &spec.metrics.classification
            && c.label_path.is_some()
            && c.label_regex.is_some()
        {
            return Err(invalid(
                "metrics.classification: give `label_path` or `label_regex`, not both".into(),
            ));
        }
        let name = spec.name.unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        Ok(EvalSet {
            name,
            description: spec.description,
            prompts: spec.prompts,
            models: spec.models,
            model_prompts: Default::default(),
            judge: spec.judge,
            pairwise: spec.pairwise,
            sweep: spec.sweep,
            cases,
            metrics: spec.metrics,
            derived_metrics: spec.derived_metrics,
            source: path.to_path_buf(),
            dialect: Default::default(),
        })
    }

    /// Every tag used by some case, sorted.
    pub fn tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = self
            .cases
            .iter()
            .flat_map(|c| c.tags.iter().cloned())
            .collect();
        tags.sort();
        tags.dedup();
        tags
    }
}

#[cfg(test)]
mod tests;

/// The image file a case's variables name (a detection or digit set's `image`): the first
/// variable whose value ends in `.jpg`, `.jpeg`, `.png` or `.bmp` and is a file, relative
/// to the eval set's folder unless absolute. Reports and the TUI show it.
pub fn image_in_vars(
    eval_set_path: &std::path::Path,
    vars: &serde_json::Map<String, serde_json::Value>,
) -> Option<std::path::PathBuf> {
    const EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "bmp"];
    vars.values()
        .filter_map(serde_json::Value::as_str)
        .find_map(|text| {
            let lower = text.to_lowercase();
            if !EXTENSIONS.iter().any(|e| lower.ends_with(&format!(".{e}"))) {
                return None;
            }
            let path = std::path::Path::new(text);
            let path = match (path.is_absolute(), eval_set_path.parent()) {
                (false, Some(dir)) => dir.join(path),
                _ => path.to_path_buf(),
            };
            path.is_file().then_some(path)
        })
}
