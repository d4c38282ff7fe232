//! Runs promptfoo configurations (`promptfooconfig.yaml`) as they are: their prompts,
//! providers, tests, `defaultTest` and `scenarios` become promptlab prompts, catalog
//! models and an eval set, which then run like any other (store, reports, TUI).
//!
//! What promptfoo can do and promptlab cannot (webhook or ruby assertions, variable
//! transforms, custom providers...) is listed up front, before anything runs; with
//! `skip_unsupported` those parts are dropped and reported as skipped instead.

mod cases;
mod prompts;
mod providers;
mod scripts;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::catalog::{ModelCatalog, ModelEntry};
use crate::dialect::Dialect;
use crate::evalset::{EvalSet, MetricsSpec};
use crate::project::{Project, ProjectError};
use crate::prompt::{Prompt, PromptLibrary};
use crate::yaml::{self, YamlError};

/// A promptfoo configuration turned into promptlab's terms.
#[derive(Debug, Clone)]
pub struct Imported {
    pub eval_set: EvalSet,
    pub prompts: Vec<Prompt>,
    /// Catalog entries for the providers, under their column names.
    pub models: Vec<(String, ModelEntry)>,
    /// What was dropped because promptlab lacks it (only with `skip_unsupported`).
    pub skipped: Vec<String>,
    /// Settings promptfoo ignores or that change nothing evaluated, accepted as they are.
    pub warnings: Vec<String>,
    /// Labels of `echo` providers, each a column run by the echo engine.
    pub echoes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PromptfooError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "{path}: this promptfoo config uses what promptlab does not implement:\n  - {}\nrun with --skip-unsupported to run the rest and report these as skipped",
        .items.join("\n  - ")
    )]
    Unsupported { path: PathBuf, items: Vec<String> },
}

/// Top-level keys promptfoo accepts without evaluating them differently (`outputs` and
/// `vars` are not read by its evaluator): accepted, with a warning.
const WARNED_KEYS: &[&str] = &["outputs", "vars", "options"];

/// Top-level keys that change nothing about what is evaluated.
const IGNORED_KEYS: &[&str] = &[
    "$schema",
    "commandLineOptions",
    "env",
    "evaluateOptions",
    "metadata",
    "outputPath",
    "sharing",
    "tags",
    "tracing",
    "writeLatestResults",
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigSpec {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    prompts: Option<Value>,
    #[serde(default)]
    providers: Option<Value>,
    #[serde(default)]
    targets: Option<Value>,
    #[serde(default)]
    tests: Option<Value>,
    #[serde(default)]
    default_test: Option<Value>,
    #[serde(default)]
    scenarios: Option<Value>,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

/// Whether `path` is a promptfoo config rather than a promptlab eval set: its name says
/// so, or it has promptfoo's keys (`providers`, `tests`...) and none of an eval set's.
pub fn is_config(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if name.starts_with("promptfooconfig") {
        return true;
    }
    if !(name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json")) {
        return false;
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let Ok(Value::Object(top)) = crate::yaml::from_str::<Value>(path, &text) else {
        return false;
    };
    let promptfoo = ["providers", "targets", "tests", "defaultTest", "scenarios"];
    let ours = ["cases", "cases_from", "defaults", "models", "kind"];
    promptfoo.iter().any(|k| top.contains_key(*k)) && !ours.iter().any(|k| top.contains_key(*k))
}

/// Problems found while reading a config: hard errors stop at once, unsupported
/// features are collected so they can all be listed together.
pub(crate) struct Reader<'a> {
    pub path: &'a Path,
    pub base: PathBuf,
    pub unsupported: Vec<String>,
    /// `assertionTemplates`, which assertions name with `$ref`.
    pub assertion_templates: serde_json::Map<String, Value>,
    /// Settings accepted but ignored, each said once.
    pub warnings: Vec<String>,
    /// Labels of `echo` providers: names for the echo engine.
    pub echoes: Vec<String>,
}

impl Reader<'_> {
    pub fn invalid(&self, message: impl Into<String>) -> PromptfooError {
        PromptfooError::Invalid {
            path: self.path.to_path_buf(),
            message: message.into(),
        }
    }

    /// Says once that a setting is accepted and ignored.
    pub fn warn(&mut self, what: impl Into<String>) {
        let what = what.into();
        if !self.warnings.contains(&what) {
            self.warnings.push(what);
        }
    }

    pub fn unsupported(&mut self, what: impl Into<String>) {
        let what = what.into();
        if !self.unsupported.contains(&what) {
            self.unsupported.push(what);
        }
    }

    /// Files named by a `file://` reference, relative to the config, globs expanded.
    pub fn files(&self, reference: &str, at: &str) -> Result<Vec<PathBuf>, PromptfooError> {
        let relative = reference.trim_start_matches("file://");
        let full = self.base.join(relative);
        let pattern = full.to_string_lossy().into_owned();
        if !pattern.contains(['*', '?', '[']) {
            if !full.exists() {
                return Err(self.invalid(format!("{at}: `{reference}`: no such file")));
            }
            return Ok(vec![full]);
        }
        let mut found: Vec<PathBuf> = glob::glob(&pattern)
            .map_err(|e| self.invalid(format!("{at}: `{reference}`: bad pattern: {e}")))?
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        if found.is_empty() {
            return Err(self.invalid(format!("{at}: `{reference}` matches no file")));
        }
        Ok(found)
    }

    pub fn read_text(&self, file: &Path, at: &str) -> Result<String, PromptfooError> {
        std::fs::read_to_string(file)
            .map_err(|e| self.invalid(format!("{at}: {}: cannot read: {e}", file.display())))
    }
}

/// Reads a promptfoo config. `catalog` resolves provider names that are catalog models.
pub fn import(
    path: &Path,
    catalog: &ModelCatalog,
    skip_unsupported: bool,
) -> Result<Imported, PromptfooError> {
    let spec: ConfigSpec = yaml::read_file(path)?;
    let mut reader = Reader {
        path,
        base: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
        unsupported: Vec::new(),
        assertion_templates: serde_json::Map::new(),
        warnings: Vec::new(),
        echoes: Vec::new(),
    };
    let mut rest = spec.rest;
    if let Some(templates) = rest.remove("assertionTemplates") {
        match templates {
            Value::Object(templates) => reader.assertion_templates = templates,
            _ => return Err(reader.invalid("`assertionTemplates`: expected a map of assertions")),
        }
    }
    let derived_metrics = match rest.remove("derivedMetrics") {
        None => Vec::new(),
        Some(value) => serde_json::from_value(value).map_err(|e| {
            reader.invalid(format!(
                "`derivedMetrics`: expected a list of {{name, value}} with an expression as value ({e})"
            ))
        })?,
    };
    for key in rest.keys() {
        if WARNED_KEYS.contains(&key.as_str()) {
            reader.warn(format!(
                "top-level `{key}` is not read by promptfoo's evaluation; ignored"
            ));
        } else if !IGNORED_KEYS.contains(&key.as_str()) {
            reader.unsupported(format!("top-level `{key}`"));
        }
    }
    let prompts = match &spec.prompts {
        Some(value) => prompts::read(&mut reader, value)?,
        None => return Err(reader.invalid("no `prompts`: expected a list of prompts")),
    };
    let providers = match spec.providers.as_ref().or(spec.targets.as_ref()) {
        Some(value) => providers::read(&mut reader, value, catalog)?,
        None => {
            return Err(
                reader.invalid("no `providers` (or `targets`): expected a list of providers")
            );
        }
    };
    let cases = cases::read(
        &mut reader,
        spec.tests.as_ref(),
        spec.default_test.as_ref(),
        spec.scenarios.as_ref(),
    )?;
    let judge = match &cases.judge {
        Some(provider) => Some(providers::judge(&mut reader, provider, catalog)?),
        None => None,
    };
    if !reader.unsupported.is_empty() && !skip_unsupported {
        return Err(PromptfooError::Unsupported {
            path: path.to_path_buf(),
            items: reader.unsupported,
        });
    }
    let mut models = providers.entries;
    if let Some((name, entry)) = judge.as_ref().and_then(|j| j.entry.clone()) {
        models.push((name, entry));
    }
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "promptfoo".into());
    let eval_set = EvalSet {
        name,
        description: spec.description.unwrap_or_default(),
        prompts: prompts.iter().map(|p| p.id.clone()).collect(),
        models: providers.columns,
        model_prompts: providers
            .prompts
            .into_iter()
            .map(|(model, labels)| {
                let ids = labels.iter().map(|l| prompts::id_for_label(l)).collect();
                (model, ids)
            })
            .collect(),
        judge: judge.map(|j| j.name),
        pairwise: None,
        sweep: None,
        cases: cases.cases,
        metrics: MetricsSpec::default(),
        derived_metrics,
        source: path.to_path_buf(),
        dialect: Dialect::Promptfoo,
    };
    Ok(Imported {
        eval_set,
        prompts,
        models,
        skipped: reader.unsupported,
        warnings: reader.warnings,
        echoes: reader.echoes,
    })
}

/// A project to run a promptfoo config in, with the config's prompts and providers
/// added: the promptlab project around the config or around `cwd` (whose catalog names
/// the config may use), else the config's own folder, where only `echo` and the config's
/// remote providers exist.
pub fn open_project(
    config: &Path,
    explicit: Option<&Path>,
    cwd: &Path,
    skip_unsupported: bool,
) -> Result<(Project, Imported), OpenError> {
    let mut project = match explicit {
        Some(dir) => Project::open(dir)?,
        None => match Project::discover(config).or_else(|_| Project::discover(cwd)) {
            Ok(project) => project,
            Err(ProjectError::NotFound { .. }) => Project {
                root: config.parent().unwrap_or(Path::new(".")).to_path_buf(),
                prompts: PromptLibrary::default(),
                catalog: ModelCatalog::default(),
            },
            Err(other) => return Err(other.into()),
        },
    };
    let imported = import(config, &project.catalog, skip_unsupported)?;
    // The config's prompts take their names over same-named project prompts.
    project
        .prompts
        .prompts
        .retain(|p| !imported.prompts.iter().any(|q| q.id == p.id));
    project
        .prompts
        .broken
        .retain(|b| !imported.prompts.iter().any(|q| b.names.contains(&q.name)));
    project.prompts.prompts.extend(imported.prompts.clone());
    for (name, entry) in &imported.models {
        project.catalog.models.insert(name.clone(), entry.clone());
    }
    project
        .catalog
        .echoes
        .extend(imported.echoes.iter().cloned());
    Ok((project, imported))
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    Promptfoo(#[from] PromptfooError),
}

#[cfg(test)]
mod unit_tests;
