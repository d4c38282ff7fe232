//! Each case's assertions as the run will check them: values rendered with the case's
//! variables, a missing reference taken from `expected`, embedding and judge models
//! resolved from the catalog.

use serde_json::Value;

use super::PlanError;
use crate::evalset::Case;
use crate::score::assertion::{Assertion, AssertionSpec};
use crate::template::{self, Undefined};

/// Assertion values may use the case's variables and `expected`, e.g.
/// `value: "{{ expected }}"`; they are rendered per case, then parsed.
pub(super) fn build_assertion(
    spec: &AssertionSpec,
    case: &Case,
    catalog: &crate::catalog::ModelCatalog,
) -> Result<Assertion, PlanError> {
    let mut context = case.vars.clone();
    if let Some(expected) = &case.expected {
        context.insert("expected".into(), expected.clone());
    }
    let context = minijinja::Value::from_serialize(&context);
    let mut spec = spec.clone();
    // A text metric without `value` compares with the case's expected answer.
    let base = spec.kind.strip_prefix("not-").unwrap_or(&spec.kind);
    let judged_against_expected =
        crate::score::judge::Grader::from_name(base).is_some_and(|g| g.uses_expected());
    if spec.value.is_none()
        && (crate::score::assertion::TEXT_METRIC_TYPES.contains(&base)
            || base == "similar"
            || judged_against_expected)
    {
        match &case.expected {
            // closedqa judges against a criterion; an answer becomes one.
            Some(Value::String(expected))
                if !expected.is_empty() && base == "model-graded-closedqa" =>
            {
                spec.value = Some(Value::String(format!(
                    "The submission gives the same answer as this reference answer: {expected}"
                )));
            }
            Some(Value::String(expected)) if !expected.is_empty() => {
                spec.value = Some(Value::String(expected.clone()));
            }
            _ => {
                return Err(PlanError::Case {
                    origin: case.origin.clone(),
                    message: format!(
                        "assertion `{}` needs a reference text: give it a `value`, or give the case an `expected` answer",
                        spec.kind
                    ),
                });
            }
        }
    }
    if let Some(value) = &spec.value {
        spec.value = Some(
            render_value(value, &context).map_err(|message| PlanError::Case {
                origin: case.origin.clone(),
                message: format!("assertion `{}`: {message}", spec.kind),
            })?,
        );
    }
    let mut assertion = Assertion::from_spec(&spec).map_err(|e| PlanError::Case {
        origin: case.origin.clone(),
        message: e.to_string(),
    })?;
    if let crate::score::assertion::AssertionKind::Similar {
        model, provider, ..
    } = &mut assertion.kind
    {
        let embedding =
            |e: &&crate::catalog::ModelEntry| e.kind == crate::catalog::ModelKind::Embedding;
        let found = match provider.as_deref() {
            Some(name) => match catalog.models.get(name) {
                Some(entry) if embedding(&entry) => Some(entry),
                _ => {
                    return Err(PlanError::Case {
                        origin: case.origin.clone(),
                        message: format!(
                            "assertion `{}`: provider `{name}` is not a `kind: embedding` model in models/models.yaml",
                            spec.kind
                        ),
                    });
                }
            },
            None => catalog.models.values().find(embedding),
        };
        match found {
            Some(entry) => *model = Some(entry.path.clone()),
            None => {
                return Err(PlanError::Case {
                    origin: case.origin.clone(),
                    message: format!(
                        "assertion `{}` needs a `kind: embedding` model in models/models.yaml (scripts/fetch-models.sh fetches all-MiniLM-L6-v2)",
                        spec.kind
                    ),
                });
            }
        }
    }
    Ok(assertion)
}

/// Gives a model-graded assertion its judge, or says how to name one.
pub(super) fn with_judge(
    mut assertion: Assertion,
    case: &Case,
    run_judge: Option<&str>,
    eval_set_judge: Option<&str>,
) -> Result<Assertion, PlanError> {
    let type_name = assertion.type_name();
    if let crate::score::assertion::AssertionKind::ModelGraded { judge, .. } = &mut assertion.kind {
        *judge = super::judging::choose_judge(judge.as_deref(), run_judge, eval_set_judge);
        if judge.is_none() {
            return Err(PlanError::Case {
                origin: case.origin.clone(),
                message: format!(
                    "assertion `{type_name}` needs a judge model: set `judge:` in the eval set, `provider:` on the assertion, or pass --judge NAME (an instruction-tuned model from models/models.yaml)"
                ),
            });
        }
    }
    Ok(assertion)
}

fn render_value(value: &Value, context: &minijinja::Value) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) if s.contains("{{") || s.contains("{%") => {
            let env = template::environment(Undefined::Strict);
            // A value that is exactly one expression keeps its JSON type
            // (`{{ expected }}` with an object stays an object).
            let trimmed = s.trim();
            let single = trimmed.starts_with("{{")
                && trimmed.ends_with("}}")
                && trimmed.matches("{{").count() == 1;
            if single {
                let expr = &trimmed[2..trimmed.len() - 2];
                template::compilable(expr).map_err(|f| f.to_string())?;
                let compiled = env
                    .compile_expression(expr)
                    .map_err(|e| template::TemplateFault::from(&e).to_string())?;
                let out = compiled
                    .eval(context)
                    .map_err(|e| template::TemplateFault::from(&e).to_string())?;
                if out.is_undefined() {
                    return Err(format!("undefined value in `{trimmed}`"));
                }
                serde_json::to_value(&out).map_err(|e| e.to_string())?
            } else {
                Value::String(template::render_str(env, s, context).map_err(|f| f.to_string())?)
            }
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_value(v, context))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_value(v, context)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}
