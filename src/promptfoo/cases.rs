//! promptfoo's `tests`, `defaultTest` and `scenarios` as promptlab cases: tests inline or
//! from `file://` YAML, JSON, JSONL and CSV files (CSV `__expected`, `__expected1..N`,
//! `__description`, `__threshold`, `__metric`), `file://` variable values, array
//! variables expanded to every combination, and assertions with `not-` prefixes,
//! `threshold`, `weight` and `metric`.

use serde_json::{Map, Value};

mod csv;
mod files;

use csv::csv_tests;
#[cfg(test)]
pub(super) use csv::expected_assertion;
use files::{assertion_file_value, load_var_files, prepare_vars, test_files};

use super::{PromptfooError, Reader};
use crate::dialect::Dialect;
use crate::evalset::Case;
use crate::score::assertion::{Assertion, AssertionError, AssertionSpec};

/// promptfoo's assertion types (those it documents), so that `__expected` text such as
/// `Paris: capital` that names no type is compared for equality, as promptfoo does.
const PROMPTFOO_TYPES: &[&str] = &[
    "answer-relevance",
    "bleu",
    "classifier",
    "contains",
    "contains-all",
    "contains-any",
    "contains-html",
    "contains-json",
    "contains-sql",
    "contains-xml",
    "context-faithfulness",
    "context-recall",
    "context-relevance",
    "conversation-relevance",
    "cost",
    "equals",
    "factuality",
    "finish-reason",
    "g-eval",
    "gleu",
    "guardrails",
    "icontains",
    "icontains-all",
    "icontains-any",
    "is-html",
    "is-json",
    "is-refusal",
    "is-sql",
    "is-valid-function-call",
    "is-valid-openai-function-call",
    "is-xml",
    "javascript",
    "latency",
    "levenshtein",
    "llm-rubric",
    "meteor",
    "model-graded-closedqa",
    "model-graded-factuality",
    "moderation",
    "perplexity",
    "perplexity-score",
    "pi",
    "python",
    "regex",
    "rouge-n",
    "ruby",
    "select-best",
    "similar",
    "starts-with",
    "webhook",
    "word-count",
];

/// The cases, and the grader named by `defaultTest.options.provider`.
pub(super) struct Cases {
    pub cases: Vec<Case>,
    pub judge: Option<Value>,
}

/// A test as promptfoo writes it, before defaults and expansion.
#[derive(Debug, Clone, Default)]
struct RawTest {
    description: String,
    vars: Map<String, Value>,
    assertions: Vec<Value>,
    threshold: Option<f64>,
    /// Metric for every assertion that names none (CSV `__metric`).
    metric: Option<String>,
    /// `options.transform` (or its old name `postprocess`), `file://` paths made absolute.
    transform: Option<String>,
    /// `options.transformVars`, `file://` paths made absolute.
    transform_vars: Option<String>,
    origin: String,
    /// `options.disableVarExpansion`: list variables stay lists.
    no_expansion: bool,
    /// `options.storeOutputAs`.
    store_output_as: Option<String>,
    /// The test's output is transformed by what promptlab lacks: with
    /// `--skip-unsupported` its assertions are skipped, not run on the untransformed text.
    transform_dropped: bool,
}

pub(super) fn read(
    reader: &mut Reader,
    tests: Option<&Value>,
    default_test: Option<&Value>,
    scenarios: Option<&Value>,
) -> Result<Cases, PromptfooError> {
    let mut judge = None;
    let defaults = match default_test {
        None => RawTest::default(),
        Some(value) => {
            let defaults = test_object(reader, value, "defaultTest")?;
            if let Some(Value::Object(options)) = value.get("options") {
                judge = options.get("provider").cloned();
            }
            defaults
        }
    };
    let mut raw = match tests {
        Some(value) => test_list(reader, value, "tests")?,
        None => Vec::new(),
    };
    if let Some(scenarios) = scenarios {
        raw.extend(scenario_tests(reader, scenarios)?);
    }
    if tests.is_none() && scenarios.is_none() {
        // promptfoo runs each prompt once when there are no tests.
        raw.push(RawTest {
            origin: "the config (no tests)".into(),
            ..RawTest::default()
        });
    }
    let mut cases = Vec::new();
    for test in raw {
        let mut test = merge(&defaults, test);
        if let Some(code) = &test.transform_vars {
            test.vars = super::scripts::transform_vars(reader, code, test.vars, &test.origin)?;
        }
        let combos = match test.no_expansion {
            false => expand(reader, &test.vars, &test.origin)?,
            true => vec![test.vars.clone()],
        };
        for vars in combos {
            let vars = load_var_files(reader, vars, &test.origin)?;
            let vars = prepare_vars(vars);
            let mut assertions = Vec::new();
            // The output these assertions would see is transformed by what promptlab
            // lacks: checking the raw text instead would give wrong verdicts.
            let checked = if test.transform_dropped {
                &[][..]
            } else {
                &test.assertions[..]
            };
            for (i, value) in checked.iter().enumerate() {
                let at = format!("{}: assert[{i}]", test.origin);
                if let Some(spec) = assertion(reader, value, test.metric.as_deref(), &at)? {
                    assertions.push(spec);
                }
            }
            cases.push(Case {
                id: (cases.len() + 1).to_string(),
                description: test.description.clone(),
                vars,
                expected: None,
                assertions,
                tags: Vec::new(),
                threshold: test.threshold,
                human: None,
                origin: test.origin.clone(),
                default_assertions: 0,
                transform: test.transform.clone(),
                store_output_as: test.store_output_as.clone(),
            });
        }
    }
    if cases.is_empty() {
        return Err(reader.invalid("the config has no tests"));
    }
    Ok(Cases { cases, judge })
}

/// `defaultTest` first, the test over it: vars merge (the test's win), assertions add up.
fn merge(defaults: &RawTest, test: RawTest) -> RawTest {
    let mut vars = defaults.vars.clone();
    vars.extend(test.vars);
    let mut assertions = defaults.assertions.clone();
    assertions.extend(test.assertions);
    RawTest {
        description: test.description,
        vars,
        assertions,
        threshold: test.threshold.or(defaults.threshold),
        metric: test.metric.or_else(|| defaults.metric.clone()),
        transform: test.transform.or_else(|| defaults.transform.clone()),
        transform_vars: test
            .transform_vars
            .or_else(|| defaults.transform_vars.clone()),
        origin: test.origin,
        no_expansion: test.no_expansion || defaults.no_expansion,
        store_output_as: test
            .store_output_as
            .or_else(|| defaults.store_output_as.clone()),
        transform_dropped: test.transform_dropped || defaults.transform_dropped,
    }
}

/// Every combination of the values of array variables (promptfoo's
/// `generateVarCombinations`): a list expands only when its first item is a string, and a
/// `file://` glob gives one value per file.
fn expand(
    reader: &Reader,
    vars: &Map<String, Value>,
    at: &str,
) -> Result<Vec<Map<String, Value>>, PromptfooError> {
    let mut combos = vec![Map::new()];
    for (key, value) in vars {
        let choices: Vec<Value> = match value {
            Value::Array(items) if items.first().is_some_and(Value::is_string) => items.clone(),
            Value::String(reference)
                if reference.starts_with("file://") && reference.contains(['*', '?', '[']) =>
            {
                let files = reader.files(reference, &format!("{at}: vars.{key}"))?;
                files
                    .iter()
                    .map(|f| Value::String(format!("file://{}", f.display())))
                    .collect()
            }
            other => vec![other.clone()],
        };
        combos = combos
            .into_iter()
            .flat_map(|combo| {
                choices.iter().map(move |choice| {
                    let mut combo = combo.clone();
                    combo.insert(key.clone(), choice.clone());
                    combo
                })
            })
            .collect();
    }
    Ok(combos)
}

/// `tests:` as a list of tests and `file://` references, or one reference.
fn test_list(reader: &mut Reader, value: &Value, at: &str) -> Result<Vec<RawTest>, PromptfooError> {
    match value {
        Value::String(reference) => test_files(reader, reference, at),
        Value::Array(items) => {
            let mut tests = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let at = format!("{at}[{i}]");
                match item {
                    Value::String(reference) => tests.extend(test_files(reader, reference, &at)?),
                    Value::Object(_) => tests.push(test_object(reader, item, &at)?),
                    _ => {
                        return Err(reader
                            .invalid(format!("{at}: expected a test object or a file:// path")));
                    }
                }
            }
            Ok(tests)
        }
        _ => Err(reader.invalid(format!("{at}: expected a list of tests or a file:// path"))),
    }
}

/// One test object: `description`, `vars` (or a `file://` vars file), `assert`,
/// `threshold`, `options.provider` (only on `defaultTest`), `metadata`.
fn test_object(reader: &mut Reader, value: &Value, at: &str) -> Result<RawTest, PromptfooError> {
    let Value::Object(object) = value else {
        return Err(reader.invalid(format!("{at}: expected a test object")));
    };
    let mut test = RawTest {
        origin: at.to_string(),
        ..RawTest::default()
    };
    for (key, value) in object {
        match key.as_str() {
            "description" => test.description = value.as_str().unwrap_or_default().to_string(),
            "vars" => {
                test.vars = match value {
                    Value::Object(vars) => vars.clone(),
                    Value::String(reference) if reference.starts_with("file://") => {
                        match assertion_file_value(reader, reference, &format!("{at}.vars"))? {
                            Some(Value::Object(vars)) => vars,
                            Some(_) => {
                                return Err(reader.invalid(format!(
                                    "{at}.vars: {reference} does not hold an object"
                                )));
                            }
                            None => Map::new(),
                        }
                    }
                    _ => return Err(reader.invalid(format!("{at}.vars: expected an object"))),
                }
            }
            "assert" => {
                test.assertions = match value {
                    Value::Array(items) => items.clone(),
                    Value::Null => Vec::new(),
                    _ => return Err(reader.invalid(format!("{at}.assert: expected a list"))),
                }
            }
            "threshold" => {
                test.threshold =
                    Some(value.as_f64().ok_or_else(|| {
                        reader.invalid(format!("{at}.threshold: expected a number"))
                    })?)
            }
            "options" => {
                if let Value::Object(options) = value {
                    for (option, setting) in options {
                        test_option(reader, &mut test, option, setting, at);
                    }
                }
            }
            "metadata" => {}
            other => reader.unsupported(format!("{at}: test field `{other}`")),
        }
    }
    Ok(test)
}

/// One of a test's `options`: applied, ignored with a warning (what changes nothing
/// promptfoo evaluates), or unsupported.
fn test_option(reader: &mut Reader, test: &mut RawTest, option: &str, setting: &Value, at: &str) {
    match option {
        // Read by `read` from `defaultTest` (the judge).
        "provider" if at == "defaultTest" => {}
        "disableVarExpansion" => test.no_expansion = setting.as_bool().unwrap_or(false),
        "storeOutputAs" => match setting {
            Value::String(name) if !name.is_empty() => test.store_output_as = Some(name.clone()),
            _ => reader.unsupported(format!("{at}: option `storeOutputAs`: expected a name")),
        },
        "transformVars" => match setting {
            Value::String(code) => {
                test.transform_vars = Some(super::scripts::resolve(reader, code))
            }
            _ => reader.unsupported(format!("{at}: option `transformVars`: expected code")),
        },
        "transform" | "postprocess" => match setting {
            Value::String(code) => test.transform = Some(super::scripts::resolve(reader, code)),
            _ => {
                test.transform_dropped = true;
                reader.unsupported(format!("{at}: option `{option}`: expected code"));
            }
        },
        // promptfoo's test options do not set sampling, and running serially changes no
        // verdict here (tests that chain outputs run in order anyway).
        "runSerially" | "temperature" | "maxTokens" | "max_tokens" | "disableConversationVar" => {
            reader.warn(format!(
                "`options.{option}` on a test changes nothing promptfoo evaluates; ignored"
            ));
        }
        other => reader.unsupported(format!("{at}: option `{other}`")),
    }
}

/// `scenarios`: each `config` entry crossed with each of the scenario's tests.
fn scenario_tests(reader: &mut Reader, value: &Value) -> Result<Vec<RawTest>, PromptfooError> {
    let Value::Array(scenarios) = value else {
        return Err(reader.invalid("`scenarios`: expected a list"));
    };
    let mut out = Vec::new();
    for (k, scenario) in scenarios.iter().enumerate() {
        let at = format!("scenarios[{k}]");
        let Value::Object(scenario) = scenario else {
            return Err(reader.invalid(format!("{at}: expected an object")));
        };
        let configs = match scenario.get("config") {
            Some(Value::Array(configs)) => configs
                .iter()
                .enumerate()
                .map(|(c, config)| test_object(reader, config, &format!("{at}.config[{c}]")))
                .collect::<Result<Vec<_>, _>>()?,
            None => vec![RawTest::default()],
            Some(_) => return Err(reader.invalid(format!("{at}.config: expected a list"))),
        };
        let tests = match scenario.get("tests") {
            Some(tests) => test_list(reader, tests, &format!("{at}.tests"))?,
            None => vec![RawTest::default()],
        };
        for (c, config) in configs.iter().enumerate() {
            for test in &tests {
                let mut merged = merge(config, test.clone());
                if merged.description.is_empty() {
                    merged.description = config.description.clone();
                }
                merged.origin = format!("{at}.config[{c}] × {}", test.origin);
                out.push(merged);
            }
        }
    }
    Ok(out)
}

/// One assertion object as promptlab's spec; None when its type is unsupported.
fn assertion(
    reader: &mut Reader,
    value: &Value,
    metric: Option<&str>,
    at: &str,
) -> Result<Option<AssertionSpec>, PromptfooError> {
    let Value::Object(object) = value else {
        return Err(reader.invalid(format!("{at}: expected an object with `type`")));
    };
    // `$ref: '#/assertionTemplates/NAME'`
    let referenced;
    let object = match object.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.trim_start_matches("#/assertionTemplates/");
            referenced = match reader.assertion_templates.get(name) {
                Some(Value::Object(template)) => template.clone(),
                _ => {
                    return Err(reader.invalid(format!(
                        "{at}: `$ref: {reference}` names no entry of `assertionTemplates`"
                    )));
                }
            };
            &referenced
        }
        None => object,
    };
    let kind = object
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| reader.invalid(format!("{at}: expected `type`")))?;
    let kind = match kind {
        "model-graded-factuality" => "factuality".to_string(),
        "not-model-graded-factuality" => "not-factuality".to_string(),
        other => other.to_string(),
    };
    let number = |key: &str| object.get(key).and_then(Value::as_f64);
    let mut value = object.get("value").cloned();
    // Scripts stay references (resolved against the config), run when checked.
    if super::scripts::is_script_type(&kind)
        && let Some(Value::String(code)) = &value
    {
        value = Some(Value::String(super::scripts::resolve(reader, code)));
    } else if let Some(reference) = value
        .as_ref()
        .and_then(Value::as_str)
        .filter(|s| s.starts_with("file://"))
        .map(str::to_string)
    {
        match assertion_file_value(reader, &reference, &format!("{at}.value"))? {
            Some(loaded) => value = Some(loaded),
            None => return Ok(None),
        }
    }
    let spec = AssertionSpec {
        kind: kind.clone(),
        value,
        threshold: number("threshold"),
        weight: number("weight"),
        metric: object
            .get("metric")
            .and_then(Value::as_str)
            .or(metric)
            .map(str::to_string),
        path: None,
        min: None,
        max: None,
        iou: None,
        provider: object
            .get("provider")
            .and_then(Value::as_str)
            .map(str::to_string),
        transform: object
            .get("transform")
            .and_then(Value::as_str)
            .map(|code| super::scripts::resolve(reader, code)),
        config: object.get("config").cloned(),
        assertions: match object.get("assert") {
            Some(nested) => Some(super::scripts::nested(
                reader, nested, metric, at, assertion,
            )?),
            None => None,
        },
    };
    let mut dropped = false;
    const FIELDS: &[&str] = &[
        "type",
        "value",
        "threshold",
        "weight",
        "metric",
        "provider",
        "transform",
        "config",
        "assert",
    ];
    for key in object.keys() {
        if !FIELDS.contains(&key.as_str()) {
            reader.unsupported(format!("{at}: assertion field `{key}`"));
            // A `transform` or other unread field changes what the assertion checks.
            dropped = true;
        }
    }
    if dropped {
        return Ok(None);
    }
    // A templated value (`^Hello {{name}}`) is checked once rendered, per test.
    if spec.value.as_ref().is_some_and(templated) {
        return match crate::score::assertion::registry::find(&kind) {
            Some(_) => Ok(Some(spec)),
            None => {
                reader.unsupported(format!("assertion type `{kind}`"));
                Ok(None)
            }
        };
    }
    match Assertion::from_spec_in(&spec, Dialect::Promptfoo) {
        Ok(_) => Ok(Some(spec)),
        Err(AssertionError::UnknownType { .. }) => {
            reader.unsupported(format!("assertion type `{kind}`"));
            Ok(None)
        }
        Err(err) => Err(reader.invalid(format!("{at}: {err}"))),
    }
}

/// Whether a value holds template syntax anywhere.
fn templated(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains("{{") || s.contains("{%"),
        Value::Array(items) => items.iter().any(templated),
        Value::Object(map) => map.values().any(templated),
        _ => false,
    }
}
