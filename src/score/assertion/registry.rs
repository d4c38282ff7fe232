//! The one list of assertion types. Each type is declared here once: its names, the fields it
//! takes, what a run must supply to check it, its help, and its parser. Whatever asks "which
//! types ..." asks this list: the unknown-type error and its suggestion, the unexpected-field
//! check, `not-` forms, the run's planning (`run::plan::assertions`) and the guide's table
//! ([`help_table`]).
//!
//! Adding a type: an entry below (its parser included); an [`AssertionKind`] variant and the
//! match arms the compiler then asks for (`name` in assertion.rs, `evaluate`/`expectation`
//! in pass_fail.rs or a scored check, `to_spec` in parse.rs); an example in
//! registry/tests.rs and cases in tests.rs; then `UPDATE_DOCS=1` for the table in
//! docs/src/assertions.md.

use std::fmt::Write as _;
use std::sync::LazyLock;

mod fields;

pub use fields::{Field, Needs, Reference};

use super::parse::Parser;
use super::{AssertionError, AssertionKind, AssertionSpec, TextMetric};
use crate::score::judge::Grader;
use AssertionKind::*;

/// One assertion type (any may also be written with a `not-` prefix).
#[derive(Debug)]
pub struct AssertionType {
    /// The canonical name, as results report it.
    pub name: &'static str,
    /// Other names it is known by (promptfoo's spellings).
    pub aliases: &'static [&'static str],
    /// What `value` holds, for the help; `None`: the type takes no `value`.
    pub value: Option<&'static str>,
    /// The fields it takes besides `type`, `value`, `weight` and `metric`, each with its help.
    pub fields: &'static [(Field, &'static str)],
    /// What a missing `value` is made of, if the case's `expected` answer can stand in.
    pub reference: Option<Reference>,
    /// What the run must supply besides the output.
    pub needs: Needs,
    /// When it passes (and, for a scored type, what the score is): one line.
    pub passes: &'static str,
    /// Builds the checked assertion; the fields were checked against `fields` already.
    pub(super) parse: fn(&Parser) -> Result<AssertionKind, AssertionError>,
}

const LIST: &str = "list or comma-separated string";
const COUNT: &str = "number, or `{min, max}`";
const COUNT_FIELDS: &[(Field, &str)] = &[
    (Field::Min, "instead of `value`"),
    (Field::Max, "instead of `value`"),
];
const THRESHOLD_75: (Field, &str) = (Field::Threshold, "default 0.75");
const THRESHOLD_50: (Field, &str) = (Field::Threshold, "default 0.5");
const JUDGE: (Field, &str) = (Field::Provider, "the judge model, optional");
/// `factuality` and closedqa score 0 or 1, so the default asks for 1.
const JUDGED_AGAINST_REFERENCE: &[(Field, &str)] =
    &[(Field::Threshold, "minimum score, default 1"), JUDGE];

/// Every assertion type, in the order the help lists them.
pub static REGISTRY: &[AssertionType] = &[
    AssertionType {
        name: "equals",
        aliases: &[],
        value: Some("string, or object/array"),
        fields: &[],
        reference: None,
        needs: Needs::Output,
        passes: "output equals it exactly (objects/arrays: parsed JSON, deep)",
        parse: |p| {
            let value = p.value().cloned().ok_or_else(|| {
                p.invalid(
                    "a value (a string, or a JSON object/array to compare with the parsed output)",
                )
            });
            Ok(Equals(value?))
        },
    },
    AssertionType {
        name: "contains",
        aliases: &[],
        value: Some("string"),
        fields: &[],
        reference: None,
        needs: Needs::Output,
        passes: "output contains it",
        parse: |p| Ok(Contains(p.string()?)),
    },
    AssertionType {
        name: "icontains",
        aliases: &[],
        value: Some("string"),
        fields: &[],
        reference: None,
        needs: Needs::Output,
        passes: "output contains it, ignoring case",
        parse: |p| Ok(IContains(p.string()?)),
    },
    AssertionType {
        name: "contains-any",
        aliases: &[],
        value: Some(LIST),
        fields: &[],
        reference: None,
        needs: Needs::Output,
        passes: "any of them appears in the output",
        parse: |p| Ok(ContainsAny(p.list()?)),
    },
    AssertionType {
        name: "contains-all",
        aliases: &[],
        value: Some(LIST),
        fields: &[],
        reference: None,
        needs: Needs::Output,
        passes: "all of them appear in the output",
        parse: |p| Ok(ContainsAll(p.list()?)),
    },
    AssertionType {
        name: "icontains-any",
        aliases: &[],
        value: Some(LIST),
        fields: &[],
        reference: None,
        needs: Needs::Output,
        passes: "any of them appears, ignoring case",
        parse: |p| Ok(IContainsAny(p.list()?)),
    },
    AssertionType {
        name: "icontains-all",
        aliases: &[],
        value: Some(LIST),
        fields: &[],
        reference: None,
        needs: Needs::Output,
        passes: "all of them appear, ignoring case",
        parse: |p| Ok(IContainsAll(p.list()?)),
    },
    AssertionType {
        name: "starts-with",
        aliases: &[],
        value: Some("string"),
        fields: &[],
        reference: None,
        needs: Needs::Output,
        passes: "output starts with it",
        parse: |p| Ok(StartsWith(p.string()?)),
    },
    AssertionType {
        name: "regex",
        aliases: &[],
        value: Some("pattern (Rust regex syntax)"),
        fields: &[],
        reference: None,
        needs: Needs::Output,
        passes: "the pattern matches",
        parse: |p| Ok(Regex(p.regex()?)),
    },
    AssertionType {
        name: "is-json",
        aliases: &[],
        value: Some("optional JSON Schema"),
        fields: &[],
        reference: None,
        needs: Needs::Output,
        passes: "output is JSON (and validates)",
        parse: |p| Ok(IsJson(p.schema()?)),
    },
    AssertionType {
        name: "contains-json",
        aliases: &[],
        value: Some("optional JSON Schema"),
        fields: &[],
        reference: None,
        needs: Needs::Output,
        passes: "a JSON object appears in the output (and validates)",
        parse: |p| Ok(ContainsJson(p.schema()?)),
    },
    AssertionType {
        name: "json-path",
        aliases: &[],
        value: Some("optional: what the match must equal"),
        fields: &[(Field::Path, "required, e.g. `$.a.b`")],
        reference: None,
        needs: Needs::Output,
        passes: "the JSONPath (RFC 9535) matches / equals the value",
        parse: |p| p.json_path(),
    },
    AssertionType {
        name: "word-count",
        aliases: &[],
        value: Some(COUNT),
        fields: COUNT_FIELDS,
        reference: None,
        needs: Needs::Output,
        passes: "word count in range",
        parse: |p| {
            let (min, max) = p.bounds()?;
            Ok(WordCount { min, max })
        },
    },
    AssertionType {
        name: "character-count",
        aliases: &["length"],
        value: Some(COUNT),
        fields: COUNT_FIELDS,
        reference: None,
        needs: Needs::Output,
        passes: "character count in range",
        parse: |p| {
            let (min, max) = p.bounds()?;
            Ok(Length { min, max })
        },
    },
    AssertionType {
        name: "levenshtein",
        aliases: &[],
        value: Some("string"),
        fields: &[(Field::Threshold, "default 5")],
        reference: None,
        needs: Needs::Output,
        passes: "edit distance ≤ threshold",
        parse: |p| Ok(Levenshtein { value: p.string()? }),
    },
    AssertionType {
        name: "latency",
        aliases: &[],
        value: None,
        fields: &[(Field::Threshold, "required, in ms")],
        reference: None,
        needs: Needs::Latency,
        passes: "generation took at most that long",
        parse: |p| match p.spec.threshold {
            Some(_) => Ok(Latency),
            None => Err(AssertionError::MissingThreshold),
        },
    },
    AssertionType {
        name: "boxes-match",
        aliases: &[],
        value: Some(
            "expected boxes `[{label, box: [x1, y1, x2, y2]}]` (usually `\"{{ expected }}\"`)",
        ),
        fields: &[
            (Field::Iou, "default 0.5"),
            (Field::Threshold, "minimum F1, default 1"),
        ],
        reference: None,
        needs: Needs::Output,
        passes: "a detector's boxes match the expected ones: the score is the F1 of a greedy match by confidence at IoU ≥ `iou` (labels compared ignoring case; an expected box without a label matches any); `[]` expects nothing",
        parse: |p| p.boxes(),
    },
    AssertionType {
        name: "rouge-n",
        aliases: &["rouge-1"],
        value: Some("reference text"),
        fields: &[THRESHOLD_75],
        reference: Some(Reference::Expected),
        needs: Needs::Output,
        passes: "ROUGE-1 F-measure against the reference ≥ threshold; the score is the F-measure",
        parse: |p| p.text_metric(TextMetric::Rouge(1)),
    },
    AssertionType {
        name: "rouge-2",
        aliases: &[],
        value: Some("reference text"),
        fields: &[THRESHOLD_75],
        reference: Some(Reference::Expected),
        needs: Needs::Output,
        passes: "ROUGE-2 F-measure against the reference ≥ threshold; the score is the F-measure",
        parse: |p| p.text_metric(TextMetric::Rouge(2)),
    },
    AssertionType {
        name: "rouge-l",
        aliases: &[],
        value: Some("reference text"),
        fields: &[THRESHOLD_75],
        reference: Some(Reference::Expected),
        needs: Needs::Output,
        passes: "ROUGE-L F-measure against the reference ≥ threshold; the score is the F-measure",
        parse: |p| p.text_metric(TextMetric::RougeL),
    },
    AssertionType {
        name: "bleu",
        aliases: &[],
        value: Some("reference text"),
        fields: &[THRESHOLD_50],
        reference: Some(Reference::Expected),
        needs: Needs::Output,
        passes: "sentence BLEU / 100 ≥ threshold; the score is BLEU / 100",
        parse: |p| p.text_metric(TextMetric::Bleu),
    },
    AssertionType {
        name: "chrf",
        aliases: &[],
        value: Some("reference text"),
        fields: &[THRESHOLD_50],
        reference: Some(Reference::Expected),
        needs: Needs::Output,
        passes: "sentence chrF / 100 ≥ threshold; the score is chrF / 100",
        parse: |p| p.text_metric(TextMetric::Chrf),
    },
    AssertionType {
        name: "similar",
        aliases: &[],
        value: Some("reference text"),
        fields: &[
            THRESHOLD_75,
            (Field::Provider, "an embedding model from the catalog"),
        ],
        reference: Some(Reference::Expected),
        needs: Needs::EmbeddingModel,
        passes: "cosine similarity of sentence embeddings ≥ threshold; the score is the cosine",
        parse: |p| {
            Ok(Similar {
                reference: p.reference()?,
                model: None,
                provider: p.provider(),
            })
        },
    },
    AssertionType {
        name: "llm-rubric",
        aliases: &[],
        value: Some("rubric text"),
        fields: &[
            (
                Field::Threshold,
                "minimum 0–1 score; without it the judge's `pass` decides",
            ),
            JUDGE,
        ],
        reference: None,
        needs: Needs::JudgeModel,
        passes: "the judge model says the output satisfies the rubric (with `threshold`: its 0–1 score reaches it)",
        parse: |p| p.model_graded(Grader::Rubric),
    },
    AssertionType {
        name: "factuality",
        aliases: &[],
        value: Some("reference answer"),
        fields: JUDGED_AGAINST_REFERENCE,
        reference: Some(Reference::Expected),
        needs: Needs::JudgeModel,
        passes: "the judge finds the output's facts consistent with the reference (category A, B, C or E; D = disagreement fails)",
        parse: |p| p.model_graded(Grader::Factuality),
    },
    AssertionType {
        name: "model-graded-closedqa",
        aliases: &[],
        value: Some("criterion"),
        fields: JUDGED_AGAINST_REFERENCE,
        reference: Some(Reference::ExpectedAsCriterion),
        needs: Needs::JudgeModel,
        passes: "the judge answers Y: the output meets the criterion",
        parse: |p| p.model_graded(Grader::ClosedQa),
    },
    AssertionType {
        name: "javascript",
        aliases: &[],
        value: Some(
            "JavaScript: an expression, a multi-line function body, or `file://x.js[:function]` (relative to a promptfoo config, or to the working folder)",
        ),
        fields: &[(
            Field::Threshold,
            "a returned number must reach it (default: above 0)",
        )],
        reference: None,
        needs: Needs::Output,
        passes: "the code, given `output` and `context` (`vars`, `prompt`, `test`...), returns true, a number (the score), or `{pass, score, reason}`; it runs in an embedded QuickJS with no file or network access, 10 s and 64 MiB per call",
        parse: |p| p.script(crate::script::Language::JavaScript),
    },
    AssertionType {
        name: "python",
        aliases: &[],
        value: Some(
            "Python: an expression, a function body, or `file://x.py[:function]` (default `get_assert`)",
        ),
        fields: &[(
            Field::Threshold,
            "a returned number or `score` must reach it (default: above 0)",
        )],
        reference: None,
        needs: Needs::Output,
        passes: "as `javascript`, run by the system `python3` (`PROMPTFOO_PYTHON` names another)",
        parse: |p| p.script(crate::script::Language::Python),
    },
    AssertionType {
        name: "assert-set",
        aliases: &[],
        value: None,
        fields: &[(
            Field::Threshold,
            "minimum weighted mean score; without it all must pass",
        )],
        reference: None,
        needs: Needs::Output,
        passes: "its nested `assert` list passes; the score is their weighted mean",
        parse: |p| p.assert_set(),
    },
    AssertionType {
        name: "is-xml",
        aliases: &[],
        value: Some("optional required element paths (`root.child`, comma-separated or a list)"),
        fields: &[],
        reference: None,
        needs: Needs::Output,
        passes: "output is well-formed XML with those elements",
        parse: |p| p.xml(false),
    },
    AssertionType {
        name: "contains-xml",
        aliases: &[],
        value: Some("optional required element paths"),
        fields: &[],
        reference: None,
        needs: Needs::Output,
        passes: "the first XML-looking span of the output is well-formed XML with those elements",
        parse: |p| p.xml(true),
    },
    AssertionType {
        name: "is-sql",
        aliases: &[],
        value: Some("optional `{databaseType, allowedTables}` (default MySQL)"),
        fields: &[],
        reference: None,
        needs: Needs::Output,
        passes: "output parses as SQL of that dialect, touching only allowed tables (`select::null::users` patterns)",
        parse: |p| p.sql(false),
    },
    AssertionType {
        name: "contains-sql",
        aliases: &[],
        value: Some("optional `{databaseType, allowedTables}`"),
        fields: &[],
        reference: None,
        needs: Needs::Output,
        passes: "as `is-sql`, on the first ```` ```sql ```` block if there is one",
        parse: |p| p.sql(true),
    },
    AssertionType {
        name: "is-html",
        aliases: &[],
        value: None,
        fields: &[],
        reference: None,
        needs: Needs::Output,
        passes: "output is HTML: elements HTML knows, no text outside them",
        parse: |_| Ok(Html { contained: false }),
    },
    AssertionType {
        name: "contains-html",
        aliases: &[],
        value: None,
        fields: &[],
        reference: None,
        needs: Needs::Output,
        passes: "output has HTML in it (two of promptfoo's indicators: tags, entities, attributes...)",
        parse: |_| Ok(Html { contained: true }),
    },
    AssertionType {
        name: "is-refusal",
        aliases: &[],
        value: None,
        fields: &[],
        reference: None,
        needs: Needs::Output,
        passes: "output declines (promptfoo's refusal phrases) or is empty (which scores 0)",
        parse: |_| Ok(IsRefusal),
    },
    AssertionType {
        name: "is-valid-openai-tools-call",
        aliases: &[],
        value: None,
        fields: &[],
        reference: None,
        needs: Needs::Output,
        passes: "output is OpenAI `tool_calls` (a remote model offered `tools`) whose every call names an offered function, with arguments its `parameters` schema accepts",
        parse: |_| Ok(OpenAiToolsCall),
    },
    AssertionType {
        name: "finish-reason",
        aliases: &[],
        value: Some("`stop` or `length`"),
        fields: &[],
        reference: None,
        needs: Needs::Output,
        passes: "generation ended that way (`stop`: end of text or a stop sequence; `length`: max_tokens), ignoring case",
        parse: |p| p.finish_reason(),
    },
    AssertionType {
        name: "gleu",
        aliases: &[],
        value: Some("reference text, or a list of them"),
        fields: &[THRESHOLD_50],
        reference: None,
        needs: Needs::Output,
        passes: "promptfoo's GLEU (the lesser of 1–4-gram precision and recall, lowercased) against the best reference ≥ threshold; the score is GLEU",
        parse: |p| p.gleu(),
    },
    AssertionType {
        name: "cost",
        aliases: &[],
        value: None,
        fields: &[(Field::Threshold, "required, in dollars")],
        reference: None,
        needs: Needs::Output,
        passes: "the generation cost at most that much (local models and echo cost 0)",
        parse: |p| match p.spec.threshold {
            Some(_) => Ok(Cost),
            None => Err(p.invalid("`threshold` (the maximum cost in dollars)")),
        },
    },
    AssertionType {
        name: "meteor",
        aliases: &[],
        value: Some("reference text, or a list of them"),
        fields: &[THRESHOLD_50],
        reference: None,
        needs: Needs::Output,
        passes: "promptfoo's METEOR (exact, Porter-stem and WordNet-synonym word matches, fragmentation penalty) against the best reference ≥ threshold; the score is METEOR; needs WordNet (`scripts/fetch-wordnet.sh`)",
        parse: |p| p.meteor(),
    },
    AssertionType {
        name: "perplexity",
        aliases: &[],
        value: None,
        fields: &[(
            Field::Threshold,
            "optional, the highest perplexity that passes",
        )],
        reference: None,
        needs: Needs::Output,
        passes: "the perplexity of the generated tokens (exp of minus their mean log-probability) is at most the threshold; llama.cpp models and servers that send logprobs",
        parse: |_| Ok(Perplexity { normalized: false }),
    },
    AssertionType {
        name: "perplexity-score",
        aliases: &[],
        value: None,
        fields: &[(Field::Threshold, "optional, the lowest score that passes")],
        reference: None,
        needs: Needs::Output,
        passes: "1 / (1 + perplexity) of the generated tokens is at least the threshold; the score is that value",
        parse: |_| Ok(Perplexity { normalized: true }),
    },
];

/// Every name a type goes by (each canonical name followed by its aliases), in registry
/// order; any may be prefixed with `not-`.
pub static ASSERTION_TYPES: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| REGISTRY.iter().flat_map(AssertionType::names).collect());

impl AssertionType {
    /// The canonical name, then the aliases.
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.name).chain(self.aliases.iter().copied())
    }

    /// The first field `spec` sets that this type does not take: a key the type would
    /// ignore (say, `threshold` on `contains`) is a config mistake that would otherwise
    /// pass silently.
    pub(super) fn check_fields(&self, spec: &AssertionSpec) -> Result<(), AssertionError> {
        let takes = |field: &Field| self.fields.iter().any(|(f, _)| f == field);
        let stray = Field::ALL.into_iter().find(|f| f.is_set(spec) && !takes(f));
        let stray = stray.map(Field::name).or_else(|| {
            let value = spec.value.as_ref().is_some_and(|v| !v.is_null());
            (value && self.value.is_none()).then_some("value")
        });
        match stray {
            Some(field) => Err(AssertionError::UnexpectedField(self.name.into(), field)),
            None => Ok(()),
        }
    }

    /// The help's "value" cell: what `value` holds, then the other fields.
    fn value_help(&self) -> String {
        let reference = match self.reference {
            Some(_) => ", or none to use the case's `expected`",
            None => "",
        };
        let value = self.value.map(|v| format!("{v}{reference}"));
        let fields = self.fields.iter();
        let fields = fields.map(|(field, help)| format!("`{}` ({help})", field.name()));
        value
            .into_iter()
            .chain(fields)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The type named `kind`, with or without `not-` (aliases included).
pub fn find(kind: &str) -> Option<&'static AssertionType> {
    let base = kind.strip_prefix("not-").unwrap_or(kind);
    REGISTRY.iter().find(|t| t.names().any(|n| n == base))
}

/// The type named `kind` and whether it is negated (`not-`), or the error naming the
/// supported types and the closest one.
pub(super) fn resolve(kind: &str) -> Result<(&'static AssertionType, bool), AssertionError> {
    let negated = kind.starts_with("not-");
    find(kind)
        .map(|t| (t, negated))
        .ok_or_else(|| unknown_type(kind))
}

fn unknown_type(name: &str) -> AssertionError {
    let (prefix, base) = match name.strip_prefix("not-") {
        Some(base) => ("not-", base),
        None => ("", name),
    };
    let wanted = base.to_lowercase().replace('_', "-");
    let suggestion = ASSERTION_TYPES
        .iter()
        .map(|t| (strsim::levenshtein(&wanted, t), *t))
        .min()
        .filter(|(d, t)| *d <= 2 || *d * 3 <= t.len())
        .map(|(_, t)| format!("{prefix}{t}"));
    let name = name.to_owned();
    AssertionError::UnknownType { name, suggestion }
}

impl AssertionKind {
    /// The registry's entry for this kind.
    pub fn assertion_type(&self) -> Option<&'static AssertionType> {
        find(self.name())
    }
}

/// The supported types as a markdown table (docs/src/assertions.md's, between its
/// `assertion-table` markers).
pub fn help_table() -> String {
    let mut table = String::from("| type | value | passes when | needs |\n|---|---|---|---|\n");
    for t in REGISTRY {
        let mut names = format!("`{}`", t.name);
        if !t.aliases.is_empty() {
            let aliases: Vec<String> = t.aliases.iter().map(|a| format!("`{a}`")).collect();
            let noun = if aliases.len() == 1 {
                "alias"
            } else {
                "aliases"
            };
            let _ = write!(names, " ({noun} {})", aliases.join(", "));
        }
        let (value, needs) = (t.value_help(), t.needs.help());
        let _ = writeln!(table, "| {names} | {value} | {} | {needs} |", t.passes);
    }
    table
}

#[cfg(test)]
mod tests;
