//! Deterministic assertions on model output: the `assert:` entries of an eval set.
//!
//! Names and meanings follow promptfoo (`contains`, `icontains-any`, `is-json`, `levenshtein`,
//! `latency`, ...; any type can be negated with a `not-` prefix) so promptfoo configs carry over.
//! [`Assertion::from_spec`] validates everything up front (unknown types, regexes, schemas,
//! JSONPaths) so a broken eval set fails when it is loaded, not halfway through a paid run.
//! [`Assertion::check`] never fails: a bad output is a failed [`AssertionOutcome`] with a
//! one-line reason saying what was expected and what was found.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[cfg(test)]
mod tests;

/// Every supported base type name (any may be prefixed with `not-`).
/// `length` is an alias of promptfoo's `character-count`.
#[rustfmt::skip]
pub const ASSERTION_TYPES: &[&str] = &[
    "equals", "contains", "icontains", "contains-any", "contains-all", "icontains-any",
    "icontains-all", "starts-with", "regex", "is-json", "contains-json", "json-path",
    "word-count", "character-count", "length", "levenshtein", "latency",
];

/// promptfoo's default maximum edit distance for `levenshtein`.
const DEFAULT_LEVENSHTEIN_DISTANCE: f64 = 5.0;
/// How much of the output (or of a value) a reason quotes.
const EXCERPT_CHARS: usize = 80;

/// The raw YAML/JSON shape of one assertion.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AssertionSpec {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// One assertion as written in YAML (`assert:` lists in eval sets), already parsed and validated.
/// (De)serializes as its [`AssertionSpec`], so it round-trips through YAML and reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "AssertionSpec", into = "AssertionSpec")]
pub struct Assertion {
    pub kind: AssertionKind,
    pub negated: bool,
    /// Weight in [`combine`]; 0 records the outcome without letting it affect the test.
    pub weight: f64,
    /// `levenshtein`: maximum distance (default 5); `latency`: maximum milliseconds.
    pub threshold: Option<f64>,
    pub metric: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AssertionKind {
    /// A string (or number) compares exactly; an object or array compares with the parsed output.
    Equals(Value),
    Contains(String),
    IContains(String),
    ContainsAny(Vec<String>),
    ContainsAll(Vec<String>),
    IContainsAny(Vec<String>),
    IContainsAll(Vec<String>),
    StartsWith(String),
    Regex(RegexPattern),
    IsJson(Option<JsonSchema>),
    ContainsJson(Option<JsonSchema>),
    /// `value: None` means the path only has to match something.
    JsonPath {
        path: JsonPathExpr,
        value: Option<Value>,
    },
    WordCount {
        min: Option<usize>,
        max: Option<usize>,
    },
    /// promptfoo's `character-count`: Unicode scalar values (`char`s), not bytes.
    Length {
        min: Option<usize>,
        max: Option<usize>,
    },
    /// The maximum distance is the assertion's threshold (default 5).
    Levenshtein {
        value: String,
    },
    /// The maximum latency in milliseconds is the assertion's (required) threshold.
    Latency,
}

/// A compiled regex; equality is by source text.
#[derive(Debug, Clone)]
pub struct RegexPattern(regex::Regex);

impl RegexPattern {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
    pub fn regex(&self) -> &regex::Regex {
        &self.0
    }
}

impl PartialEq for RegexPattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

/// A compiled JSON schema; equality is by the schema document.
#[derive(Clone)]
pub struct JsonSchema {
    schema: Value,
    validator: Arc<jsonschema::Validator>,
}

impl JsonSchema {
    pub fn schema(&self) -> &Value {
        &self.schema
    }
}

impl fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JsonSchema").field(&self.schema).finish()
    }
}

impl PartialEq for JsonSchema {
    fn eq(&self, other: &Self) -> bool {
        self.schema == other.schema
    }
}

/// A compiled RFC 9535 JSONPath together with its source text.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPathExpr {
    source: String,
    compiled: serde_json_path::JsonPath,
}

impl JsonPathExpr {
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

pub struct CheckInput<'a> {
    pub output: &'a str,
    pub latency_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssertionOutcome {
    /// The assertion's type name, e.g. `not-icontains`.
    pub assertion: String,
    pub passed: bool,
    /// 0..=1.
    pub score: f64,
    pub weight: f64,
    /// One line; present whenever `passed` is false.
    pub reason: Option<String>,
}

/// Why an [`AssertionSpec`] was rejected. A leading `String` is the (base) assertion type.
#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    #[error(
        "unknown assertion type {name:?}{}; supported types: {} (any may be prefixed with \"not-\")",
        .suggestion.as_ref().map(|s| format!("; did you mean {s:?}?")).unwrap_or_default(),
        ASSERTION_TYPES.join(", ")
    )]
    UnknownType {
        name: String,
        suggestion: Option<String>,
    },
    /// (type, what it expects)
    #[error("{0} expects {1}")]
    InvalidValue(String, String),
    #[error("{0} does not take `{1}`")]
    UnexpectedField(String, &'static str),
    /// (regex's message)
    #[error("regex: invalid regex: {0}")]
    InvalidRegex(String),
    /// (type, message)
    #[error("{0}: invalid JSON schema: {1}")]
    InvalidSchema(String, String),
    /// (path, message)
    #[error("json-path: invalid JSONPath {0:?}: {1}")]
    InvalidJsonPath(String, String),
    #[error("latency requires `threshold` (the maximum latency in milliseconds)")]
    MissingThreshold,
    #[error("{0}: threshold must be a finite non-negative number, got {1}")]
    InvalidThreshold(String, f64),
    #[error("weight must be a finite non-negative number, got {0}")]
    InvalidWeight(f64),
}

impl TryFrom<AssertionSpec> for Assertion {
    type Error = AssertionError;
    fn try_from(spec: AssertionSpec) -> Result<Self, Self::Error> {
        Assertion::from_spec(&spec)
    }
}

impl From<Assertion> for AssertionSpec {
    fn from(assertion: Assertion) -> Self {
        assertion.to_spec()
    }
}

impl AssertionKind {
    /// The canonical base type name (without `not-`).
    pub fn name(&self) -> &'static str {
        use AssertionKind::*;
        match self {
            Equals(_) => "equals",
            Contains(_) => "contains",
            IContains(_) => "icontains",
            ContainsAny(_) => "contains-any",
            ContainsAll(_) => "contains-all",
            IContainsAny(_) => "icontains-any",
            IContainsAll(_) => "icontains-all",
            StartsWith(_) => "starts-with",
            Regex(_) => "regex",
            IsJson(_) => "is-json",
            ContainsJson(_) => "contains-json",
            JsonPath { .. } => "json-path",
            WordCount { .. } => "word-count",
            Length { .. } => "character-count",
            Levenshtein { .. } => "levenshtein",
            Latency => "latency",
        }
    }
}

impl Assertion {
    pub fn from_spec(spec: &AssertionSpec) -> Result<Assertion, AssertionError> {
        let (negated, base) = match spec.kind.strip_prefix("not-") {
            Some(base) => (true, base),
            None => (false, spec.kind.as_str()),
        };
        let base = match base {
            "length" => "character-count",
            b if ASSERTION_TYPES.contains(&b) => b,
            _ => return Err(unknown_type(&spec.kind, negated, base)),
        };
        let weight = spec.weight.unwrap_or(1.0);
        if !(weight.is_finite() && weight >= 0.0) {
            return Err(AssertionError::InvalidWeight(weight));
        }
        // A key the type ignores (say, `threshold` on `contains`) is a config mistake that
        // would otherwise pass silently.
        let takes: &[&str] = match base {
            "levenshtein" | "latency" => &["threshold"],
            "json-path" => &["path"],
            "word-count" | "character-count" => &["min", "max"],
            _ => &[],
        };
        let given = [
            ("threshold", spec.threshold.is_some()),
            ("path", spec.path.is_some()),
            ("min", spec.min.is_some()),
            ("max", spec.max.is_some()),
        ];
        if let Some((field, _)) = given.iter().find(|(f, set)| *set && !takes.contains(f)) {
            return Err(AssertionError::UnexpectedField(base.into(), field));
        }
        if let Some(t) = spec.threshold.filter(|t| !(t.is_finite() && *t >= 0.0)) {
            return Err(AssertionError::InvalidThreshold(base.into(), t));
        }
        Ok(Assertion {
            kind: parse_kind(base, spec)?,
            negated,
            weight,
            threshold: spec.threshold,
            metric: spec.metric.clone(),
        })
    }

    /// The type name as written in YAML, e.g. `not-icontains` (an alias gives the canonical name).
    pub fn type_name(&self) -> String {
        let prefix = if self.negated { "not-" } else { "" };
        format!("{prefix}{}", self.kind.name())
    }

    /// The spec this assertion stands for, normalised (canonical type, `min`/`max` in `value`).
    pub fn to_spec(&self) -> AssertionSpec {
        use AssertionKind::*;
        let value = match &self.kind {
            Equals(v) => Some(v.clone()),
            Contains(s) | IContains(s) | StartsWith(s) | Levenshtein { value: s } => Some(json!(s)),
            ContainsAny(l) | ContainsAll(l) | IContainsAny(l) | IContainsAll(l) => Some(json!(l)),
            Regex(p) => Some(json!(p.as_str())),
            IsJson(s) | ContainsJson(s) => s.as_ref().map(|s| s.schema.clone()),
            JsonPath { value, .. } => value.clone(),
            WordCount { min, max } | Length { min, max } => Some(match (min, max) {
                (Some(a), Some(b)) if a == b => json!(a),
                (Some(a), Some(b)) => json!({"min": a, "max": b}),
                (Some(a), None) => json!({"min": a}),
                (None, b) => json!({"max": b}),
            }),
            Latency => None,
        };
        let path = match &self.kind {
            JsonPath { path, .. } => Some(path.source.clone()),
            _ => None,
        };
        AssertionSpec {
            kind: self.type_name(),
            value,
            threshold: self.threshold,
            weight: (self.weight != 1.0).then_some(self.weight),
            metric: self.metric.clone(),
            path,
            min: None,
            max: None,
        }
    }

    pub fn check(&self, input: &CheckInput) -> AssertionOutcome {
        let (passed, reason) = match self.evaluate(input) {
            // Could not be evaluated at all, so the negated form fails too.
            Err(why) => (false, Some(why)),
            Ok((matched, found)) => {
                let passed = matched != self.negated;
                let reason = (!passed).then(|| {
                    let (subject, predicate) = self.expectation();
                    let not = if self.negated { "not " } else { "" };
                    format!("expected {subject} {not}to {predicate}; {found}")
                });
                (passed, reason)
            }
        };
        AssertionOutcome {
            assertion: self.type_name(),
            passed,
            score: if passed { 1.0 } else { 0.0 },
            weight: self.weight,
            // Excerpts are escaped, but library messages (serde, jsonschema) might not be.
            reason: reason.map(|r| r.replace(['\n', '\r'], " ")),
        }
    }

    /// Whether the un-negated assertion holds, and what was found (for a reason).
    /// `Err` means the output cannot be judged either way.
    fn evaluate(&self, input: &CheckInput) -> Result<(bool, String), String> {
        use AssertionKind::*;
        let out = input.output;
        let seen = |at: Option<usize>| format!("output was {}", excerpt_at(out, at.unwrap_or(0)));
        let has = |needle: &String, ignore_case: bool| match ignore_case {
            true => out.to_lowercase().contains(&needle.to_lowercase()),
            false => out.contains(needle.as_str()),
        };
        Ok(match &self.kind {
            Equals(want @ (Value::Object(_) | Value::Array(_))) => {
                match serde_json::from_str(out) {
                    Ok(got) => (json_eq(&got, want), format!("got {}", describe(&got))),
                    Err(e) => (false, format!("output is not JSON ({e}): {}", excerpt(out))),
                }
            }
            Equals(want) => (out == scalar_text(want), format!("got {}", excerpt(out))),
            Contains(s) => (out.contains(s.as_str()), seen(out.find(s.as_str()))),
            IContains(s) => (has(s, true), seen(None)),
            ContainsAny(list) | IContainsAny(list) => {
                match list
                    .iter()
                    .find(|s| has(s, matches!(self.kind, IContainsAny(_))))
                {
                    Some(s) => (true, format!("found {}", excerpt(s))),
                    None => (false, seen(None)),
                }
            }
            ContainsAll(list) | IContainsAll(list) => {
                let ignore_case = matches!(self.kind, IContainsAll(_));
                let missing: Vec<String> = list
                    .iter()
                    .filter(|s| !has(s, ignore_case))
                    .cloned()
                    .collect();
                match missing.is_empty() {
                    true => (true, seen(None)),
                    false => (
                        false,
                        format!("missing {}; {}", quote_list(&missing), seen(None)),
                    ),
                }
            }
            StartsWith(s) => (out.starts_with(s.as_str()), seen(None)),
            Regex(re) => match re.0.find(out) {
                Some(m) => (true, format!("it matched {}", excerpt(m.as_str()))),
                None => (false, seen(None)),
            },
            IsJson(schema) => match serde_json::from_str::<Value>(out) {
                Ok(value) => match schema.as_ref().and_then(|s| schema_violation(s, &value)) {
                    Some(violation) => (false, violation),
                    None => (true, format!("got {}", describe(&value))),
                },
                Err(e) => {
                    let fenced = out.trim_start().starts_with("```");
                    let hint = if fenced {
                        " (fenced; contains-json allows that)"
                    } else {
                        ""
                    };
                    (false, format!("not JSON: {e}{hint}; {}", seen(None)))
                }
            },
            ContainsJson(schema) => {
                let found = embedded_json(out, false);
                let Some(first) = found.first() else {
                    return Ok((false, format!("no JSON object found; {}", seen(None))));
                };
                let Some(schema) = schema else {
                    return Ok((true, format!("found {}", describe(first))));
                };
                match found.iter().find(|v| schema_violation(schema, v).is_none()) {
                    Some(valid) => (true, format!("found {}", describe(valid))),
                    None => {
                        let why = schema_violation(schema, first).unwrap_or_default();
                        (
                            false,
                            format!("{} JSON object(s), none valid; first: {why}", found.len()),
                        )
                    }
                }
            }
            JsonPath { path, value } => json_path_check(out, path, value.as_ref()),
            WordCount { min, max } | Length { min, max } => {
                let (n, unit) = match self.kind {
                    WordCount { .. } => (out.split_whitespace().count(), "word"),
                    _ => (out.chars().count(), "character"),
                };
                (
                    in_bounds(n, *min, *max),
                    format!("it has {n} {unit}{}", plural(n)),
                )
            }
            Levenshtein { value } => {
                let max = self.threshold.unwrap_or(DEFAULT_LEVENSHTEIN_DISTANCE);
                // The length difference is a lower bound: it skips the O(n·m) comparison when
                // a long output is checked against a short value.
                let gap = out.chars().count().abs_diff(value.chars().count());
                let (d, at_least) = match gap as f64 > max {
                    true => (gap, "at least "),
                    false => (strsim::levenshtein(out, value), ""),
                };
                (
                    d as f64 <= max,
                    format!("the distance is {at_least}{d}; {}", seen(None)),
                )
            }
            Latency => {
                let Some(ms) = input.latency_ms else {
                    return Err("latency was not measured (a cached response?)".to_owned());
                };
                (
                    ms <= self.threshold.unwrap_or(0.0),
                    format!("it took {ms} ms"),
                )
            }
        })
    }

    /// (subject, predicate) of what the un-negated assertion expects.
    fn expectation(&self) -> (&'static str, String) {
        use AssertionKind::*;
        let predicate = match &self.kind {
            Equals(v @ (Value::Object(_) | Value::Array(_))) => {
                format!("equal JSON {}", describe(v))
            }
            Equals(v) => format!("equal {}", excerpt(&scalar_text(v))),
            Contains(s) => format!("contain {}", excerpt(s)),
            IContains(s) => format!("contain {} (ignoring case)", excerpt(s)),
            ContainsAny(l) => format!("contain any of {}", quote_list(l)),
            ContainsAll(l) => format!("contain all of {}", quote_list(l)),
            IContainsAny(l) => format!("contain any of {} (ignoring case)", quote_list(l)),
            IContainsAll(l) => format!("contain all of {} (ignoring case)", quote_list(l)),
            StartsWith(s) => format!("start with {}", excerpt(s)),
            Regex(re) => format!("match regex {}", excerpt(re.as_str())),
            IsJson(None) => "be valid JSON".to_owned(),
            IsJson(Some(_)) => "be JSON matching the schema".to_owned(),
            ContainsJson(None) => "contain a JSON object".to_owned(),
            ContainsJson(Some(_)) => "contain a JSON object matching the schema".to_owned(),
            JsonPath { path, value: None } => format!("have a match for {}", path.source),
            JsonPath {
                path,
                value: Some(v),
            } => format!("have {} = {}", path.source, describe(v)),
            WordCount { min, max } => bounds_text(*min, *max, "word"),
            Length { min, max } => bounds_text(*min, *max, "character"),
            Levenshtein { value } => {
                let max = self.threshold.unwrap_or(DEFAULT_LEVENSHTEIN_DISTANCE);
                format!("be within edit distance {max} of {}", excerpt(value))
            }
            Latency => {
                let max = self.threshold.unwrap_or(0.0);
                return ("latency", format!("be at most {max} ms"));
            }
        };
        ("output", predicate)
    }
}

/// Combine outcomes: score = weighted mean of scores (weight-0 assertions don't count; with
/// nothing counted the score is 1). Passes if `score >= threshold` when a threshold is given,
/// otherwise if every assertion with weight > 0 passed.
pub fn combine(outcomes: &[AssertionOutcome], threshold: Option<f64>) -> (bool, f64) {
    let counted = || outcomes.iter().filter(|o| o.weight > 0.0);
    let total: f64 = counted().map(|o| o.weight).sum();
    let score = match total > 0.0 {
        true => (counted().map(|o| o.score * o.weight).sum::<f64>() / total).clamp(0.0, 1.0),
        false => 1.0,
    };
    let passed = match threshold {
        // A little tolerance so weights 1 and 2 reach a threshold written as 0.6667.
        Some(t) => score + 1e-9 >= t,
        None => counted().all(|o| o.passed),
    };
    (passed, score)
}

fn unknown_type(name: &str, negated: bool, base: &str) -> AssertionError {
    let wanted = base.to_lowercase().replace('_', "-");
    let suggestion = ASSERTION_TYPES
        .iter()
        .map(|t| (strsim::levenshtein(&wanted, t), *t))
        .min()
        .filter(|(d, t)| *d <= 2 || *d * 3 <= t.len())
        .map(|(_, t)| format!("{}{t}", if negated { "not-" } else { "" }));
    let name = name.to_owned();
    AssertionError::UnknownType { name, suggestion }
}

fn parse_kind(base: &str, spec: &AssertionSpec) -> Result<AssertionKind, AssertionError> {
    use AssertionKind::*;
    let value = spec.value.as_ref().filter(|v| !v.is_null());
    let invalid = |expected: &str| AssertionError::InvalidValue(base.into(), expected.into());
    // promptfoo stringifies numbers (and booleans, in lists), so `value: 0` looks for "0".
    let text = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(scalar_text(v)),
        _ => None,
    };
    Ok(match base {
        "equals" => Equals(value.cloned().ok_or_else(|| {
            invalid("a value (a string, or a JSON object/array to compare with the parsed output)")
        })?),
        "contains" | "icontains" | "starts-with" | "levenshtein" => {
            let s = value.filter(|v| !v.is_boolean()).and_then(text);
            let s = s.ok_or_else(|| invalid("a non-empty string (or number) value"))?;
            match base {
                "contains" => Contains(s),
                "icontains" => IContains(s),
                "starts-with" => StartsWith(s),
                _ => Levenshtein { value: s },
            }
        }
        "contains-any" | "contains-all" | "icontains-any" | "icontains-all" => {
            let expected = "a non-empty list of non-empty strings or a comma-separated string";
            let list = match value {
                Some(Value::Array(items)) => items.iter().map(text).collect::<Option<Vec<_>>>(),
                // promptfoo also lets quotes protect commas; rather than misread such a
                // string, ask for a list.
                Some(Value::String(s)) if s.contains('"') => {
                    return Err(invalid(&format!(
                        "{expected} (with quotes or commas: a list)"
                    )));
                }
                Some(Value::String(s)) => {
                    let fields = s.split(',').map(str::trim).filter(|f| !f.is_empty());
                    Some(fields.map(str::to_owned).collect())
                }
                _ => None,
            };
            let list = list.filter(|l| !l.is_empty());
            let list = list.ok_or_else(|| invalid(expected))?;
            match base {
                "contains-any" => ContainsAny(list),
                "contains-all" => ContainsAll(list),
                "icontains-any" => IContainsAny(list),
                _ => IContainsAll(list),
            }
        }
        "regex" => {
            let source = value.and_then(Value::as_str).filter(|s| !s.is_empty());
            let source = source.ok_or_else(|| invalid("a regular expression string"))?;
            let re = regex::Regex::new(source);
            Regex(RegexPattern(
                re.map_err(|e| AssertionError::InvalidRegex(e.to_string()))?,
            ))
        }
        "is-json" => IsJson(parse_schema(base, value)?),
        "contains-json" => ContainsJson(parse_schema(base, value)?),
        "json-path" => {
            let source = spec.path.clone().filter(|p| !p.trim().is_empty());
            let source = source.ok_or_else(|| invalid("`path`, a JSONPath such as $.items[0]"))?;
            let compiled = serde_json_path::JsonPath::parse(&source)
                .map_err(|e| AssertionError::InvalidJsonPath(source.clone(), e.to_string()))?;
            let path = JsonPathExpr { source, compiled };
            JsonPath {
                path,
                value: value.cloned(),
            }
        }
        "word-count" | "character-count" => {
            let (min, max) = parse_bounds(value, spec).map_err(|e| invalid(&e))?;
            match base {
                "word-count" => WordCount { min, max },
                _ => Length { min, max },
            }
        }
        "latency" if value.is_some() => {
            return Err(AssertionError::UnexpectedField(base.into(), "value"));
        }
        "latency" if spec.threshold.is_none() => return Err(AssertionError::MissingThreshold),
        "latency" => Latency,
        _ => return Err(unknown_type(&spec.kind, false, base)),
    })
}

/// An optional schema: an object or boolean, or JSON text holding one (promptfoo would also
/// take YAML text or a file:// reference). An empty string or null means no schema.
fn parse_schema(base: &str, value: Option<&Value>) -> Result<Option<JsonSchema>, AssertionError> {
    let invalid = |message: String| AssertionError::InvalidSchema(base.into(), message);
    let schema = match value {
        None => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| invalid(e.to_string()))?,
        Some(v) => v.clone(),
    };
    if !(schema.is_object() || schema.is_boolean()) {
        return Err(invalid("a schema must be an object or a boolean".into()));
    }
    // promptfoo checks `format` (ajv-formats), so do the same.
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema);
    let validator = validator.map_err(|e| invalid(clip(&e.to_string(), 200)))?;
    Ok(Some(JsonSchema {
        schema,
        validator: Arc::new(validator),
    }))
}

type Bounds = (Option<usize>, Option<usize>);

/// `value` as a number (exact) or `{min, max}`, or top-level `min`/`max`.
fn parse_bounds(value: Option<&Value>, spec: &AssertionSpec) -> Result<Bounds, String> {
    let expected = "a non-negative whole number, or `min` and/or `max`";
    let whole = |v: Option<&Value>| -> Result<Option<usize>, String> {
        let n = match v {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
            Some(_) => None,
        };
        let n = n.filter(|n| *n >= 0.0 && n.fract() == 0.0 && *n <= u32::MAX as f64);
        n.map(|n| Some(n as usize))
            .ok_or_else(|| expected.to_owned())
    };
    let (top_min, top_max) = (spec.min.map(Value::from), spec.max.map(Value::from));
    let (min, max) = match value {
        None => (whole(top_min.as_ref())?, whole(top_max.as_ref())?),
        Some(_) if top_min.is_some() || top_max.is_some() => {
            return Err("either `value` or top-level `min`/`max`, not both".into());
        }
        Some(Value::Object(map)) if map.keys().all(|k| k == "min" || k == "max") => {
            (whole(map.get("min"))?, whole(map.get("max"))?)
        }
        Some(Value::Object(_)) => return Err(format!("{expected} (as `value: {{min, max}}`)")),
        Some(v) => (whole(Some(v))?, whole(Some(v))?),
    };
    match (min, max) {
        (None, None) => Err(expected.to_owned()),
        (Some(a), Some(b)) if a > b => Err(format!("`min` ({a}) to be at most `max` ({b})")),
        bounds => Ok(bounds),
    }
}

fn json_path_check(out: &str, path: &JsonPathExpr, want: Option<&Value>) -> (bool, String) {
    let docs = match serde_json::from_str::<Value>(out) {
        Ok(v) => vec![v],
        Err(_) => embedded_json(out, true),
    };
    let Some(first) = docs.first() else {
        return (
            false,
            format!("output has no JSON object or array: {}", excerpt(out)),
        );
    };
    // Text may embed several JSON values: use the first one the path matches in.
    let query = |doc| {
        path.compiled
            .query(doc)
            .all()
            .into_iter()
            .cloned()
            .collect::<Vec<_>>()
    };
    let nodes = docs.iter().map(query).find(|nodes| !nodes.is_empty());
    let p = &path.source;
    let shown = match nodes.as_deref() {
        None | Some([]) => return (false, format!("nothing matches {p} in {}", describe(first))),
        Some([one]) => describe(one),
        Some(many) => format!("{} values: {}", many.len(), describe(&json!(many))),
    };
    let (Some(want), Some(nodes)) = (want, nodes) else {
        return (true, format!("{p} is {shown}"));
    };
    let equal = nodes.iter().any(|n| json_eq(n, want));
    match nodes.as_slice() {
        // "5" vs 5 is a classic mistake; say so rather than print two similar-looking values.
        [one] if !equal && type_of(one) != type_of(want) => {
            let (got, wanted) = (type_of(one), type_of(want));
            (false, format!("{p} is {shown}, a {got}, not a {wanted}"))
        }
        _ => (equal, format!("{p} is {shown}")),
    }
}

/// JSON values embedded in text (prose, markdown fences), left to right. Only objects unless
/// `arrays`: promptfoo's contains-json ignores arrays, since `[1]` is usually a citation.
fn embedded_json(text: &str, arrays: bool) -> Vec<Value> {
    let mut found = Vec::new();
    let mut pos = 0;
    while let Some(offset) = text[pos..].find(|c| c == '{' || (arrays && c == '[')) {
        let start = pos + offset;
        let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
        pos = start + 1;
        if let Some(Ok(value)) = stream.next() {
            found.push(value);
            pos = start + stream.byte_offset().max(1);
        }
    }
    found
}

/// The first schema violation as "at /path: message (+N more)", or None if the value conforms.
fn schema_violation(schema: &JsonSchema, value: &Value) -> Option<String> {
    let mut errors = schema.validator.iter_errors(value);
    let first = errors.next()?;
    let at = match first.instance_path.as_str() {
        "" => "(root)",
        path => path,
    };
    let message = clip(&first.to_string(), 120);
    let more = match errors.count() {
        0 => String::new(),
        n => format!(" (+{n} more)"),
    };
    Some(format!("schema violation at {at}: {message}{more}"))
}

/// JSON equality where 1 and 1.0 are equal (JSON has one number type) and key order is ignored.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            let same = |(k, v): (&String, &Value)| y.get(k).is_some_and(|w| json_eq(v, w));
            x.len() == y.len() && x.iter().all(same)
        }
        _ => a == b,
    }
}

/// A scalar as JavaScript's `String(v)` prints it (promptfoo compares that way): 5.0 is "5".
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => n.as_f64().unwrap_or_default().to_string(),
        other => other.to_string(),
    }
}

fn in_bounds(n: usize, min: Option<usize>, max: Option<usize>) -> bool {
    min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m)
}

fn bounds_text(min: Option<usize>, max: Option<usize>, unit: &str) -> String {
    match (min, max) {
        (Some(a), Some(b)) if a == b => format!("have exactly {a} {unit}{}", plural(a)),
        (Some(a), Some(b)) => format!("have between {a} and {b} {unit}s"),
        (Some(a), None) => format!("have at least {a} {unit}{}", plural(a)),
        (None, Some(b)) => format!("have at most {b} {unit}{}", plural(b)),
        (None, None) => format!("have any number of {unit}s"),
    }
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A JSON value for a reason: strings quoted, anything else as compact JSON; truncated.
fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => excerpt(s),
        other => clip(&other.to_string(), EXCERPT_CHARS),
    }
}

/// `s` cut to `max` chars, with an ellipsis if anything was cut.
fn clip(s: &str, max: usize) -> String {
    let mut short: String = s.chars().take(max).collect();
    if s.chars().nth(max).is_some() {
        short.push('…');
    }
    short
}

/// A quoted, escaped (so single-line) excerpt of ~80 chars.
fn excerpt(s: &str) -> String {
    format!("{:?}", clip(s, EXCERPT_CHARS))
}

/// An excerpt starting a little before byte offset `at`, so that a match there is visible.
fn excerpt_at(s: &str, at: usize) -> String {
    let before = s.get(..at).unwrap_or_default();
    match before.char_indices().rev().nth(19) {
        Some((start, _)) if start > 0 => format!("…{}", excerpt(&s[start..])),
        _ => excerpt(s),
    }
}

fn quote_list(items: &[String]) -> String {
    let mut shown: Vec<String> = items.iter().take(5).map(|s| excerpt(s)).collect();
    if items.len() > 5 {
        shown.push(format!("… (+{} more)", items.len() - 5));
    }
    format!("[{}]", shown.join(", "))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
