//! The two dialects an eval runs in, in one place. promptlab's own eval sets are strict
//! (a missing variable is an error, Rust/Unicode regexes, rouge-score and sacrebleu);
//! promptfoo configs run as promptfoo 0.118 runs them: Nunjucks-like rendering (no block
//! trimming, the final newline kept, undefined renders empty, values printed as
//! JavaScript prints them), ECMAScript regexes, `JSON.parse`, and promptfoo's own ROUGE
//! and BLEU. Everything that differs is a method here, so callers never test "is this
//! promptfoo" themselves.

pub mod js;
pub mod nunjucks;
pub mod promptfoo_metrics;

use serde::{Deserialize, Serialize};

use crate::template::{self, TemplateFault, Undefined};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    #[default]
    Promptlab,
    Promptfoo,
}

/// The implementations of the reference-text metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metrics {
    /// rouge-score (lower-cased `[a-z0-9]` tokens) and sacrebleu, as published results use.
    Reference,
    /// promptfoo's: js-rouge (case-sensitive Treebank tokens of any script) and its own
    /// sentence BLEU over one or more references; see [`promptfoo_metrics`].
    Promptfoo,
}

/// A regex the dialect's engine refused; the message is the engine's own.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegexError {
    #[error(transparent)]
    Rust(#[from] regex::Error),
    #[error(transparent)]
    Ecma(#[from] regress::Error),
}

/// An output that is not JSON by the dialect's grammar.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error(transparent)]
    Serde(#[from] serde_json::Error),
    #[error(transparent)]
    Js(#[from] js::JsonParseError),
}

/// A compiled regular expression in a dialect's engine.
#[derive(Debug, Clone)]
pub enum Regex {
    /// Rust's `regex`: Unicode classes, linear time, `(?i)` inline flags.
    Rust(regex::Regex),
    /// ECMAScript (`new RegExp(source)`): lookaround, backreferences, ASCII `\w`/`\d`/`\b`.
    Ecma(std::sync::Arc<regress::Regex>),
}

impl Regex {
    /// The first match's byte range.
    pub fn find(&self, text: &str) -> Option<std::ops::Range<usize>> {
        match self {
            Regex::Rust(re) => re.find(text).map(|m| m.range()),
            Regex::Ecma(re) => re.find(text).map(|m| m.range()),
        }
    }
}

impl Dialect {
    /// Renders a template string with `context`.
    pub fn render_str(
        self,
        source: &str,
        context: &minijinja::Value,
    ) -> Result<String, TemplateFault> {
        match self {
            Dialect::Promptlab => {
                template::render_str(template::environment(Undefined::Strict), source, context)
            }
            Dialect::Promptfoo => nunjucks::render_str(source, context),
        }
    }

    /// Checks a template compiles, without rendering it.
    pub fn check_syntax(self, source: &str) -> Result<(), TemplateFault> {
        match self {
            Dialect::Promptlab => {
                template::check_syntax(template::environment(Undefined::Strict), source)
            }
            Dialect::Promptfoo => nunjucks::check_syntax(source),
        }
    }

    /// A regex as the dialect's engine compiles it.
    pub fn regex(self, source: &str) -> Result<Regex, RegexError> {
        Ok(match self {
            Dialect::Promptlab => Regex::Rust(regex::Regex::new(source)?),
            Dialect::Promptfoo => Regex::Ecma(std::sync::Arc::new(regress::Regex::new(source)?)),
        })
    }

    /// Parses an output as JSON: serde_json for promptlab, `JSON.parse`'s grammar for
    /// promptfoo (lone surrogate escapes and any nesting depth are accepted).
    pub fn parse_json(self, text: &str) -> Result<serde_json::Value, JsonError> {
        Ok(match self {
            Dialect::Promptlab => serde_json::from_str(text)?,
            Dialect::Promptfoo => js::json_parse(text)?,
        })
    }

    /// The JSON Schema draft a schema without `$schema` is read as: promptfoo's ajv
    /// defaults to draft-07 (tuple `items: [...]`), promptlab to the crate's latest.
    pub fn default_schema_draft(self) -> Option<jsonschema::Draft> {
        match self {
            Dialect::Promptlab => None,
            Dialect::Promptfoo => Some(jsonschema::Draft::Draft7),
        }
    }

    /// Which implementation scores ROUGE and BLEU.
    pub fn metrics(self) -> Metrics {
        match self {
            Dialect::Promptlab => Metrics::Reference,
            Dialect::Promptfoo => Metrics::Promptfoo,
        }
    }

    /// A comma-separated list written as one string (`contains-any: "a, b"`): promptfoo
    /// lets double quotes protect commas in `contains-any`.
    pub fn split_list(self, text: &str, quoted: bool) -> Option<Vec<String>> {
        match self {
            Dialect::Promptfoo if quoted => Some(promptfoo_metrics::split_quoted(text)),
            Dialect::Promptlab if text.contains('"') => None,
            _ => Some(
                text.split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
        }
    }

    /// Whether a `threshold` on a pass/fail assertion type is refused (promptlab: a config
    /// mistake) or ignored (promptfoo ignores it).
    pub fn ignores_stray_threshold(self) -> bool {
        self == Dialect::Promptfoo
    }

    /// Whether an assertion value is a template rendered into a string (promptfoo renders
    /// every string value, objects untouched) rather than promptlab's typed expression.
    pub fn renders_values_as_text(self) -> bool {
        self == Dialect::Promptfoo
    }
}
