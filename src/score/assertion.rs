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

use crate::dialect::Dialect;

mod gleu;
mod parse;
mod parse_more;
mod pass_fail;
mod refusal;
pub mod registry;
mod scored;
mod scripted;
pub mod structured;
#[cfg(test)]
mod tests;
mod text;
mod tools_call;

use crate::script::Script;
use parse::*;
pub use registry::ASSERTION_TYPES;
pub use scored::TextMetric;
pub(crate) use scripted::output_text;
use text::*;

/// promptfoo's default minimum cosine for `similar`.
const DEFAULT_SIMILARITY: f64 = 0.75;
/// promptfoo's default maximum edit distance for `levenshtein`.
const DEFAULT_LEVENSHTEIN_DISTANCE: f64 = 5.0;
/// COCO's usual match threshold, and the default for `boxes-match`.
pub const DEFAULT_BOX_IOU: f64 = 0.5;
/// How much of the output (or of a value) a reason quotes.
const EXCERPT_CHARS: usize = 80;

/// The raw YAML/JSON shape of one assertion.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
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
    /// `boxes-match`: the IoU at which a found box matches an expected one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iou: Option<f64>,
    /// Model-graded assertions: the catalog model that judges (promptfoo's name for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// JavaScript (or `file://` JS/Python) that reshapes the output before this assertion
    /// sees it, as promptfoo's assertion-level `transform`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<String>,
    /// Handed to `javascript`/`python` assertions as `context.config` (promptfoo's `config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    /// `assert-set`: the nested assertions.
    #[serde(default, rename = "assert", skip_serializing_if = "Option::is_none")]
    pub assertions: Option<Vec<AssertionSpec>>,
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
    /// Whose semantics it checks with (promptfoo configs: JavaScript's).
    pub dialect: Dialect,
    /// Reshapes the output first (promptfoo's assertion-level `transform`).
    pub transform: Option<Box<Script>>,
    /// `context.config` for scripts.
    pub config: Option<Value>,
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
    /// Detector output against expected boxes; the score is the F1 of the match and the
    /// threshold its minimum (default 1: every box found, nothing extra).
    BoxesMatch {
        expected: Vec<crate::score::detection::LabelledRect>,
        iou: f64,
    },
    /// ROUGE, BLEU or chrF of the output against a reference text, 0 to 1; the threshold
    /// is the minimum (defaults as promptfoo: 0.75 for ROUGE, 0.5 for BLEU and chrF).
    TextMetric {
        metric: TextMetric,
        reference: String,
        /// More references (promptfoo's `bleu` takes a list and keeps the best match).
        others: Vec<String>,
    },
    /// Cosine similarity of sentence embeddings, output against reference; the threshold
    /// is the minimum (default 0.75, as promptfoo). `model` is the embedding model's
    /// folder, filled in from the catalog when the run is planned.
    Similar {
        reference: String,
        model: Option<std::path::PathBuf>,
        /// The catalog embedding model named by `provider` (default: the first one).
        provider: Option<String>,
    },
    /// Judged by a language model (`llm-rubric`, `factuality`, `model-graded-closedqa`):
    /// `criterion` is the rubric or the reference answer; `judge` the catalog model, from
    /// the assertion's `provider` or, once planned, the run's judge. [`Assertion::check`]
    /// leaves it unjudged; the run's judge phase fills it in.
    ModelGraded {
        grader: crate::score::judge::Grader,
        criterion: String,
        judge: Option<String>,
    },
    /// `javascript` or `python`: the script decides (boolean, number against the
    /// threshold, or a `{pass, score, reason}` object), as in promptfoo.
    Script(Box<Script>),
    /// `assert-set`: nested assertions scored together (weighted mean; with a threshold,
    /// the mean must reach it, otherwise every one must pass).
    AssertSet(Vec<Assertion>),
    /// `is-xml` / `contains-xml`: (contained, required element paths such as `root.item`).
    Xml {
        contained: bool,
        required: Vec<String>,
    },
    /// `is-sql` / `contains-sql`.
    Sql {
        contained: bool,
        check: structured::SqlCheck,
    },
    /// `is-html` / `contains-html`.
    Html {
        contained: bool,
    },
    /// The output declines to answer (promptfoo's refusal phrases), or is empty.
    IsRefusal,
    /// The output is OpenAI `tool_calls` whose every call names a tool the provider
    /// offered, with arguments its `parameters` schema accepts.
    OpenAiToolsCall,
    /// Why generation stopped, in OpenAI's words (`stop`, `length`...).
    FinishReason(String),
    /// The call's cost in dollars is at most the threshold (0 for local models).
    Cost,
    /// promptfoo's GLEU against one or more references (threshold default 0.5).
    Gleu(Vec<String>),
    /// The perplexity of the generated tokens is at most the threshold (`perplexity`), or
    /// 1 / (1 + perplexity) at least the threshold (`perplexity-score`, `normalized`).
    Perplexity {
        normalized: bool,
    },
    /// promptfoo's METEOR against one or more references (threshold default 0.5).
    Meteor(Vec<String>),
}

/// A compiled regex in its dialect's engine; equality is by source text.
#[derive(Debug, Clone)]
pub struct RegexPattern {
    source: String,
    compiled: crate::dialect::Regex,
}

impl RegexPattern {
    pub fn as_str(&self) -> &str {
        &self.source
    }
    /// The first match's byte range in `text`.
    pub fn find(&self, text: &str) -> Option<std::ops::Range<usize>> {
        self.compiled.find(text)
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

#[derive(Clone, Copy, Default)]
pub struct CheckInput<'a> {
    pub output: &'a str,
    pub latency_ms: Option<f64>,
    /// The output as scripts see it, when a transform made it something else than the
    /// text (a transform may return an object); `output` is then its text form.
    pub value: Option<&'a Value>,
    /// promptfoo's `context` for scripts (`vars`, `prompt`, `test`, `provider`...).
    pub context: Option<&'a Value>,
    pub finish: Option<crate::engine::FinishReason>,
    /// In dollars, when the model has a price.
    pub cost: Option<f64>,
    /// The generated tokens' log-probabilities, when the engine reported them.
    pub logprobs: Option<&'a [f64]>,
    /// The OpenAI tools the model was offered (rendered with the case's variables); the
    /// output is then the model's structured reply, not plain text.
    pub tools: Option<&'a [Value]>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssertionOutcome {
    /// The assertion's type name, e.g. `not-icontains`.
    pub assertion: String,
    pub passed: bool,
    /// 0..=1.
    pub score: f64,
    pub weight: f64,
    /// One line; present whenever `passed` is false (and for judged assertions, the
    /// judge's reason either way).
    pub reason: Option<String>,
    /// A model-graded assertion that could not be judged (judge reply unparseable, judge
    /// failed, run stopped first): the cell counts as an error, not a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge_error: Option<String>,
    /// The named metric the assertion's score counts toward (`metric:` in YAML).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Further named metrics a script returned (promptfoo's `namedScores` in a
    /// `javascript` or `python` assertion's result).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub named_scores: std::collections::BTreeMap<String, f64>,
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
    #[error("regex: invalid regex: {0}")]
    InvalidRegex(#[source] crate::dialect::RegexError),
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
            BoxesMatch { .. } => "boxes-match",
            TextMetric { metric, .. } => metric.name(),
            Similar { .. } => "similar",
            ModelGraded { grader, .. } => grader.name(),
            Script(script) => script.language.name(),
            AssertSet(_) => "assert-set",
            Xml {
                contained: false, ..
            } => "is-xml",
            Xml {
                contained: true, ..
            } => "contains-xml",
            Sql {
                contained: false, ..
            } => "is-sql",
            Sql {
                contained: true, ..
            } => "contains-sql",
            Html { contained: false } => "is-html",
            Html { contained: true } => "contains-html",
            IsRefusal => "is-refusal",
            OpenAiToolsCall => "is-valid-openai-tools-call",
            FinishReason(_) => "finish-reason",
            Cost => "cost",
            Gleu(_) => "gleu",
            Perplexity { normalized: false } => "perplexity",
            Perplexity { normalized: true } => "perplexity-score",
            Meteor(_) => "meteor",
        }
    }

    /// The catalog model the assertion names with `provider`: `similar`'s embedding model,
    /// a model-graded assertion's judge (once planned: the judge chosen for it).
    pub fn provider(&self) -> Option<&str> {
        match self {
            AssertionKind::Similar { provider, .. } => provider.as_deref(),
            AssertionKind::ModelGraded { judge, .. } => judge.as_deref(),
            _ => None,
        }
    }

    /// Gives an assertion that [needs](registry::Needs::EmbeddingModel) an embedding model
    /// the model's folder; other kinds have no use for one.
    pub fn set_embedding_model(&mut self, folder: std::path::PathBuf) {
        if let AssertionKind::Similar { model, .. } = self {
            *model = Some(folder);
        }
    }

    /// Gives an assertion that [needs](registry::Needs::JudgeModel) a judge its judge;
    /// other kinds have no use for one.
    pub fn set_judge(&mut self, name: String) {
        if let AssertionKind::ModelGraded { judge, .. } = self {
            *judge = Some(name);
        }
    }
}

impl Assertion {
    /// An assertion of a promptlab eval set.
    pub fn from_spec(spec: &AssertionSpec) -> Result<Assertion, AssertionError> {
        Assertion::from_spec_in(spec, Dialect::Promptlab)
    }

    /// An assertion checked with `dialect`'s semantics.
    pub fn from_spec_in(
        spec: &AssertionSpec,
        dialect: Dialect,
    ) -> Result<Assertion, AssertionError> {
        let (assertion_type, negated) = registry::resolve(&spec.kind)?;
        // promptfoo ignores a `threshold` that its pass/fail types do not read.
        let cleared;
        let spec = if dialect.ignores_stray_threshold()
            && spec.threshold.is_some()
            && assertion_type.check_fields(spec).is_err()
        {
            cleared = AssertionSpec {
                threshold: None,
                ..spec.clone()
            };
            &cleared
        } else {
            spec
        };
        let name = assertion_type.name;
        let weight = spec.weight.unwrap_or(1.0);
        if !(weight.is_finite() && weight >= 0.0) {
            return Err(AssertionError::InvalidWeight(weight));
        }
        assertion_type.check_fields(spec)?;
        if let Some(t) = spec.threshold.filter(|t| !(t.is_finite() && *t >= 0.0)) {
            return Err(AssertionError::InvalidThreshold(name.into(), t));
        }
        let transform = match &spec.transform {
            Some(code) => Some(
                Script::parse(
                    code,
                    crate::script::Language::JavaScript,
                    std::path::Path::new(""),
                )
                .map(Box::new)
                .map_err(|e| AssertionError::InvalidValue("transform".into(), e.to_string()))?,
            ),
            None => None,
        };
        if spec.assertions.is_some() && name != "assert-set" {
            return Err(AssertionError::UnexpectedField(name.into(), "assert"));
        }
        Ok(Assertion {
            kind: (assertion_type.parse)(&Parser {
                name,
                spec,
                dialect,
            })?,
            negated,
            weight,
            threshold: spec.threshold,
            metric: spec.metric.clone(),
            dialect,
            transform,
            config: spec.config.clone(),
        })
    }

    /// The type name as written in YAML, e.g. `not-icontains` (an alias gives the canonical name).
    pub fn type_name(&self) -> String {
        let prefix = if self.negated { "not-" } else { "" };
        format!("{prefix}{}", self.kind.name())
    }

    pub fn check(&self, input: &CheckInput) -> AssertionOutcome {
        let mut outcome = match &self.transform {
            Some(transform) => self.check_transformed(transform, input),
            None => self.check_output(input),
        };
        outcome.metric = self.metric.clone();
        outcome
    }

    /// A failed outcome with `reason`.
    pub(super) fn failed(&self, reason: String) -> AssertionOutcome {
        AssertionOutcome {
            named_scores: Default::default(),
            metric: None,
            assertion: self.type_name(),
            passed: false,
            score: 0.0,
            weight: self.weight,
            reason: Some(reason.replace(['\n', '\r'], " ")),
            judge_error: None,
        }
    }

    fn check_output(&self, input: &CheckInput) -> AssertionOutcome {
        if let Some(outcome) = self.check_new(input) {
            return outcome;
        }
        if let AssertionKind::BoxesMatch { expected, iou } = &self.kind {
            return self.check_boxes(expected, *iou, input);
        }
        if let AssertionKind::TextMetric {
            metric,
            reference,
            others,
        } = &self.kind
        {
            return self.check_text_metric(*metric, reference, others, input);
        }
        if let AssertionKind::Similar {
            reference, model, ..
        } = &self.kind
        {
            return self.check_similar(reference, model.as_deref(), input);
        }
        if let AssertionKind::ModelGraded { .. } = &self.kind {
            return self.unjudged("not judged yet".into());
        }
        let (passed, reason) = match self.evaluate(input) {
            // Could not be evaluated at all, so the negated form fails too.
            Err(why) => (false, Some(why.to_string())),
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
            named_scores: Default::default(),
            metric: None,
            assertion: self.type_name(),
            passed,
            score: if passed { 1.0 } else { 0.0 },
            weight: self.weight,
            // Excerpts are escaped, but library messages (serde, jsonschema) might not be.
            reason: reason.map(|r| r.replace(['\n', '\r'], " ")),
            judge_error: None,
        }
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
