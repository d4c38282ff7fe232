//! Building a case's cells for every column, at plan time and again in a chained run.

use std::path::PathBuf;

use super::assertions::{build_assertion, with_judge};
use super::{PlanError, cache_key, image_for_case};
use crate::engine::GenerationRequest;
use crate::evalset::Case;
use crate::prompt::Prompt;
use crate::run::PlannedCell;
use crate::script::{Language, Script};

/// Whether the assertion (or one nested in it) reads the tokens' log-probabilities, which
/// the engine then computes.
fn needs_logprobs(assertion: &crate::score::assertion::Assertion) -> bool {
    use crate::score::assertion::AssertionKind;
    match &assertion.kind {
        AssertionKind::Perplexity { .. } => true,
        AssertionKind::AssertSet(set) => set.iter().any(needs_logprobs),
        _ => false,
    }
}

/// What a variable stored from an earlier case's output holds until that output exists.
pub const STORED_OUTPUT_STAND_IN: &str = "[output of an earlier case]";

/// How one column renders a case.
#[derive(Debug, Clone)]
pub(super) struct ColumnTemplate {
    pub(super) prompt: Prompt,
    pub(super) params: crate::params::SamplingParams,
    /// The model's identity for cache keys.
    pub(super) identity: String,
    pub(super) vision: bool,
    /// OpenAI tools the model (a remote one) is offered, and the `tool_choice`.
    pub(super) tools: Option<(Vec<serde_json::Value>, Option<serde_json::Value>)>,
}

/// The conversation of a rendered prompt as OpenAI messages.
fn openai_messages(prompt: &crate::prompt::RenderedPrompt) -> Vec<serde_json::Value> {
    use crate::prompt::RenderedPrompt;
    match prompt {
        RenderedPrompt::Chat(messages) | RenderedPrompt::Promptfoo { messages, .. } => messages
            .iter()
            .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
            .collect(),
        RenderedPrompt::Completion(text) => {
            vec![serde_json::json!({"role": "user", "content": text})]
        }
    }
}

/// Every string in `value` rendered with the case's variables, as promptfoo renders a
/// provider's `tools` before sending them and before checking calls against them.
fn render_strings(
    value: &serde_json::Value,
    vars: &minijinja::Value,
    dialect: crate::dialect::Dialect,
) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    Ok(match value {
        Value::String(s) if s.contains("{{") || s.contains("{%") => Value::String(
            dialect
                .render_str(s, vars)
                .map_err(|fault| fault.to_string())?,
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| render_strings(item, vars, dialect))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_strings(v, vars, dialect)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// Builds the cells of a case for every column: kept in the plan, so a run whose cases
/// store outputs as variables (`store_output_as`) renders later cases again with them.
#[derive(Debug, Clone, Default)]
pub struct CellBuilder {
    pub(super) columns: Vec<ColumnTemplate>,
    /// The selected cases, in plan order.
    pub(super) cases: Vec<Case>,
    pub(super) catalog: crate::catalog::ModelCatalog,
    pub(super) run_judge: Option<String>,
    pub(super) eval_set_judge: Option<String>,
    pub(super) dialect: crate::dialect::Dialect,
    pub(super) eval_set_path: PathBuf,
}

impl CellBuilder {
    /// Whether some case stores its output for later cases, so cases must run in order.
    pub fn is_chained(&self) -> bool {
        self.cases.iter().any(|case| case.store_output_as.is_some())
    }

    /// The variable the case at `case_index` stores its output as.
    pub fn stores(&self, case_index: usize) -> Option<&str> {
        self.cases.get(case_index)?.store_output_as.as_deref()
    }

    /// The variables stored by the cases before `case_index`.
    pub(super) fn stored_before(&self, case_index: usize) -> impl Iterator<Item = &str> {
        self.cases[..case_index]
            .iter()
            .filter_map(|case| case.store_output_as.as_deref())
    }

    /// The variables of the case at `case_index` with `stored` outputs over them (as
    /// promptfoo does, a stored output wins over the case's own value); with
    /// `only_missing`, the stored values fill in only what the case lacks.
    pub fn vars_with(
        &self,
        case_index: usize,
        stored: &serde_json::Map<String, serde_json::Value>,
        only_missing: bool,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut vars = self.cases[case_index].vars.clone();
        for (name, value) in stored {
            if !only_missing || !vars.contains_key(name) {
                vars.insert(name.clone(), value.clone());
            }
        }
        vars
    }

    /// The cell of the case at `case_index` in `column`, rendered with the `stored`
    /// outputs of earlier cases (see [`CellBuilder::vars_with`]).
    pub fn cell(
        &self,
        column: usize,
        case_index: usize,
        stored: &serde_json::Map<String, serde_json::Value>,
        only_missing: bool,
    ) -> Result<PlannedCell, PlanError> {
        let template = &self.columns[column];
        let mut case = self.cases[case_index].clone();
        case.vars = self.vars_with(case_index, stored, only_missing);
        let case = &case;
        let vars = minijinja::Value::from_serialize(&case.vars);
        let mut rendered = template.prompt.render(&vars).map_err(|e| PlanError::Case {
            origin: case.origin.clone(),
            message: e.to_string(),
        })?;
        // A vision model's prompt is an image path, relative to the eval set; the image's
        // content goes into the cache key, so an edited image is run again.
        let mut identity = template.identity.clone();
        if template.vision {
            let (path, digest) = image_for_case(&rendered, &self.eval_set_path, case)?;
            rendered = crate::prompt::RenderedPrompt::Completion(path);
            identity.push_str(&format!("\nimage:{digest}"));
        }
        let assertions = case
            .assertions
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                build_assertion(spec, case, &self.catalog, self.dialect)
                    .and_then(|a| {
                        with_judge(
                            a,
                            case,
                            self.run_judge.as_deref(),
                            self.eval_set_judge.as_deref(),
                        )
                    })
                    .map_err(|err| match err {
                        // The eval set's defaults hold this assertion: say so, and which
                        // case it failed for.
                        PlanError::Case { origin, message } if i < case.default_assertions => {
                            PlanError::Case {
                                origin: format!(
                                    "{}: defaults.assert[{}]",
                                    self.eval_set_path.display(),
                                    i + 1
                                ),
                                message: format!("{message} (for {origin})"),
                            }
                        }
                        other => other,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut params = template.params.clone();
        params.logprobs = assertions.iter().any(needs_logprobs);
        let tools = match &template.tools {
            Some((specs, choice)) => {
                let rendered_specs = specs
                    .iter()
                    .map(|spec| render_strings(spec, &vars, self.dialect))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|message| PlanError::Case {
                        origin: case.origin.clone(),
                        message: format!("the model's tools: {message}"),
                    })?;
                Some(crate::engine::ToolOffer {
                    conversation: openai_messages(&rendered),
                    tools: rendered_specs,
                    must_answer: false,
                    choice: choice.clone(),
                    calls: crate::engine::CallsAs::OpenAi,
                })
            }
            None => None,
        };
        let request = GenerationRequest {
            prompt: rendered,
            params,
            schema: template.prompt.schema.clone(),
            grammar: None,
            tools,
        };
        let transform = match &case.transform {
            Some(code) => Some(
                Script::parse(code, Language::JavaScript, std::path::Path::new("")).map_err(
                    |e| PlanError::Case {
                        origin: case.origin.clone(),
                        message: format!("transform: {e}"),
                    },
                )?,
            ),
            None => None,
        };
        Ok(PlannedCell {
            column,
            case: case_index,
            cache_key: cache_key(&identity, &request),
            request,
            assertions,
            threshold: case.threshold,
            transform,
        })
    }
}
