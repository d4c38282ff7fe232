//! What scripts see of a cell: promptfoo's `context` object for `javascript`/`python`
//! assertions, and the case's output `transform`.

use serde_json::{Value, json};

use crate::engine::Generation;
use crate::prompt::RenderedPrompt;
use crate::run::{CellResult, PlannedCell, RunPlan};
use crate::score::assertion::{Assertion, AssertionKind};
use crate::script::{Role, Script};

/// Whether any assertion of the cell runs a script (only then is a context built).
pub(super) fn needs_context(cell: &PlannedCell) -> bool {
    fn scripted(assertion: &Assertion) -> bool {
        assertion.transform.is_some()
            || match &assertion.kind {
                AssertionKind::Script(_) => true,
                AssertionKind::AssertSet(set) => set.iter().any(scripted),
                _ => false,
            }
    }
    cell.assertions.iter().any(scripted)
}

pub(super) fn is_echo(plan: &RunPlan, cell: &PlannedCell) -> bool {
    plan.models
        .get(cell.column)
        .is_none_or(|model| model.entry.is_none())
}

/// promptfoo's assertion `context`: `prompt` (the rendered text), `vars`, `test`,
/// `provider` and `providerResponse`.
pub(super) fn context(plan: &RunPlan, cell: &PlannedCell, generation: &Generation) -> Value {
    let case = &plan.cases[cell.case];
    let column = &plan.columns[cell.column];
    let assertions: Vec<Value> = cell
        .assertions
        .iter()
        .map(|a| serde_json::to_value(a.to_spec()).unwrap_or(Value::Null))
        .collect();
    let mut test = json!({
        "vars": case.vars,
        "assert": assertions,
    });
    if !case.description.is_empty() {
        test["description"] = json!(case.description);
    }
    if let Some(threshold) = cell.threshold {
        test["threshold"] = json!(threshold);
    }
    let mut response = json!({
        "output": generation.text,
        "tokenUsage": {
            "total": generation.prompt_tokens + generation.completion_tokens,
            "prompt": generation.prompt_tokens,
            "completion": generation.completion_tokens,
        },
        "cached": false,
    });
    if let Some(cost) = cost(plan, cell, generation) {
        response["cost"] = json!(cost);
    }
    if let Some(finish) = finish(plan, cell, generation) {
        response["finishReason"] = json!(finish);
    }
    let mut context = json!({
        "prompt": prompt_text(&cell.request.prompt),
        "vars": case.vars,
        "test": test,
        "provider": {"id": column.model, "label": column.model},
        "providerResponse": response,
    });
    if let Some(logprobs) = &generation.logprobs {
        context["logProbs"] = json!(logprobs);
        context["providerResponse"]["logProbs"] = json!(logprobs);
    }
    context
}

/// The prompt as promptfoo hands it to scripts: the rendered text (one user message is
/// its text; a conversation, its messages as JSON).
fn prompt_text(prompt: &RenderedPrompt) -> String {
    match prompt {
        RenderedPrompt::Completion(text) | RenderedPrompt::Promptfoo { text, .. } => text.clone(),
        RenderedPrompt::Chat(messages) => match messages.as_slice() {
            [only] if only.role == "user" => only.content.clone(),
            _ => serde_json::to_string(messages).unwrap_or_default(),
        },
    }
}

/// What a generation cost: nothing on this machine (echo included, as promptfoo's echo
/// says 0); a remote model's price is not known.
pub(super) fn cost(plan: &RunPlan, cell: &PlannedCell, _generation: &Generation) -> Option<f64> {
    let model = plan.models.get(cell.column)?;
    match model.entry.as_ref() {
        Some(entry) if entry.servers().is_some() => None,
        _ => Some(0.0),
    }
}

/// Why generation stopped, in OpenAI's words; the echo provider reports none (as
/// promptfoo's).
pub(super) fn finish(
    plan: &RunPlan,
    cell: &PlannedCell,
    generation: &Generation,
) -> Option<&'static str> {
    (!is_echo(plan, cell))
        .then(|| crate::score::assertion::structured::finish_reason_name(generation.finish))
}

/// A case's transform that gave no output; `what` is an excerpt of the script.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error("transform `{what}` did not return a value (a multi-line transform needs `return`)")]
    NoValue { what: String },
    #[error("transform `{what}` failed: {source}")]
    Failed {
        what: String,
        #[source]
        source: crate::script::ScriptError,
    },
}

/// The case's transform of the output, given promptfoo's `{vars, prompt}` context.
pub(super) fn transform(
    transform: &Script,
    plan: &RunPlan,
    cell: &PlannedCell,
    generation: &Generation,
) -> Result<Value, TransformError> {
    let case = &plan.cases[cell.case];
    let column = &plan.columns[cell.column];
    let context = json!({
        "vars": case.vars,
        "prompt": {"raw": prompt_text(&cell.request.prompt), "label": column.prompt_id},
    });
    let what = crate::script::excerpt(&transform.written);
    match transform.call(Role::Transform, &json!(generation.text), &context) {
        Ok(Value::Null) => Err(TransformError::NoValue { what }),
        Ok(value) => Ok(value),
        Err(source) => Err(TransformError::Failed { what, source }),
    }
}

/// A cell whose transform failed: an error, as in promptfoo, with the model's output kept.
pub(super) fn transform_failed(
    cell: &PlannedCell,
    generation: Generation,
    error: TransformError,
) -> CellResult {
    let error = error.to_string();
    super::generated_cell(cell, generation, Some(error), false, 0.0, Vec::new())
}
