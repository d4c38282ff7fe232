//! Each case's assertions as the run will check them: values rendered with the case's
//! variables, a missing reference taken from `expected`, embedding and judge models
//! resolved from the catalog.

use serde_json::Value;

use super::PlanError;
use crate::dialect::Dialect;
use crate::evalset::Case;
use crate::score::assertion::registry::{self, Needs};
use crate::score::assertion::{Assertion, AssertionSpec};
use crate::template::{self, TemplateFault, Undefined};

/// An assertion value that does not render with the case's variables.
#[derive(Debug, thiserror::Error)]
pub enum AssertionValueError {
    #[error(transparent)]
    Template(#[from] TemplateFault),
    /// A value that is one expression evaluated to nothing.
    #[error("undefined value in `{0}`")]
    Undefined(String),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// Assertion values may use the case's variables and `expected`, e.g.
/// `value: "{{ expected }}"`; they are rendered per case, then parsed.
pub(super) fn build_assertion(
    spec: &AssertionSpec,
    case: &Case,
    catalog: &crate::catalog::ModelCatalog,
    dialect: Dialect,
) -> Result<Assertion, PlanError> {
    let mut context = case.vars.clone();
    if let Some(expected) = &case.expected {
        context.insert("expected".into(), expected.clone());
    }
    let context = minijinja::Value::from_serialize(&context);
    let mut spec = spec.clone();
    let assertion_type = registry::find(&spec.kind);
    // A type compared with a reference, given no `value`, uses the case's expected answer.
    if let Some(reference) = assertion_type.and_then(|t| t.reference)
        && spec.value.is_none()
    {
        match &case.expected {
            Some(Value::String(expected)) if !expected.is_empty() => {
                spec.value = Some(Value::String(reference.value_from(expected)));
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
        let rendered = render_any(value, &context, dialect);
        spec.value = Some(rendered.map_err(|source| PlanError::AssertionValue {
            origin: case.origin.clone(),
            kind: spec.kind.clone(),
            source,
        })?);
    }
    // `assert-set`'s nested assertions render with the same variables.
    if let Some(nested) = spec.assertions.take() {
        let rendered = nested
            .into_iter()
            .map(|n| render_nested(n, &context, dialect));
        spec.assertions = Some(rendered.collect::<Result<_, _>>().map_err(|source| {
            PlanError::AssertionValue {
                origin: case.origin.clone(),
                kind: spec.kind.clone(),
                source,
            }
        })?);
    }
    let mut assertion = Assertion::from_spec_in(&spec, dialect).map_err(|e| PlanError::Case {
        origin: case.origin.clone(),
        message: e.to_string(),
    })?;
    if assertion_type.is_some_and(|t| t.needs == Needs::EmbeddingModel) {
        let folder = embedding_model(catalog, assertion.kind.provider(), case, &spec.kind)?;
        assertion.kind.set_embedding_model(folder);
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
    let needs = assertion.kind.assertion_type().map(|t| t.needs);
    if needs == Some(Needs::JudgeModel) {
        let own = assertion.kind.provider();
        let Some(judge) = super::judging::choose_judge(own, run_judge, eval_set_judge) else {
            return Err(PlanError::Case {
                origin: case.origin.clone(),
                message: format!(
                    "assertion `{}` needs a judge model: set `judge:` in the eval set, `provider:` on the assertion, or pass --judge NAME (an instruction-tuned model from models/models.yaml)",
                    assertion.type_name()
                ),
            });
        };
        assertion.kind.set_judge(judge);
    }
    Ok(assertion)
}

/// The folder of the `kind: embedding` catalog model named `provider` (default: the first
/// one), or why there is none.
fn embedding_model(
    catalog: &crate::catalog::ModelCatalog,
    provider: Option<&str>,
    case: &Case,
    kind: &str,
) -> Result<std::path::PathBuf, PlanError> {
    let embedding =
        |e: &&crate::catalog::ModelEntry| e.kind() == crate::catalog::ModelKind::Embedding;
    let found = match provider {
        Some(name) => match catalog.models.get(name) {
            Some(entry) if embedding(&entry) => Some(entry),
            _ => {
                return Err(PlanError::Case {
                    origin: case.origin.clone(),
                    message: format!(
                        "assertion `{kind}`: provider `{name}` is not a `kind: embedding` model in models/models.yaml"
                    ),
                });
            }
        },
        None => catalog.models.values().find(embedding),
    };
    match found {
        Some(entry) => Ok(entry.path.clone()),
        None => Err(PlanError::Case {
            origin: case.origin.clone(),
            message: format!(
                "assertion `{kind}` needs a `kind: embedding` model in models/models.yaml (scripts/fetch-models.sh fetches all-MiniLM-L6-v2)"
            ),
        }),
    }
}

fn render_any(
    value: &Value,
    context: &minijinja::Value,
    dialect: Dialect,
) -> Result<Value, AssertionValueError> {
    if dialect.renders_values_as_text() {
        render_text_values(value, context, dialect)
    } else {
        render_value(value, context)
    }
}

/// promptfoo's rendering of an assertion value: a string is rendered to a string, a list's
/// strings each, an object is left as written.
fn render_text_values(
    value: &Value,
    context: &minijinja::Value,
    dialect: Dialect,
) -> Result<Value, AssertionValueError> {
    let render = |s: &str| -> Result<Value, AssertionValueError> {
        Ok(Value::String(dialect.render_str(s, context)?))
    };
    match value {
        Value::String(s) => render(s),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => render(s),
                other => Ok(other.clone()),
            })
            .collect::<Result<_, _>>()
            .map(Value::Array),
        other => Ok(other.clone()),
    }
}

fn render_nested(
    mut spec: AssertionSpec,
    context: &minijinja::Value,
    dialect: Dialect,
) -> Result<AssertionSpec, AssertionValueError> {
    if let Some(value) = &spec.value {
        spec.value = Some(render_any(value, context, dialect)?);
    }
    if let Some(nested) = spec.assertions.take() {
        let rendered = nested
            .into_iter()
            .map(|n| render_nested(n, context, dialect));
        spec.assertions = Some(rendered.collect::<Result<_, _>>()?);
    }
    Ok(spec)
}

fn render_value(value: &Value, context: &minijinja::Value) -> Result<Value, AssertionValueError> {
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
                template::compilable(expr)?;
                let compiled = env
                    .compile_expression(expr)
                    .map_err(|e| TemplateFault::from(&e))?;
                let out = compiled
                    .eval(context)
                    .map_err(|e| TemplateFault::from(&e))?;
                if out.is_undefined() {
                    return Err(AssertionValueError::Undefined(trimmed.to_string()));
                }
                serde_json::to_value(&out)?
            } else {
                Value::String(template::render_str(env, s, context)?)
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
                .collect::<Result<_, AssertionValueError>>()?,
        ),
        other => other.clone(),
    })
}
