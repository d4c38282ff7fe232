//! promptfoo's CSV tests: a row per test, columns are variables except the `__` ones, and
//! the `__expected` shorthand for assertions.

use std::path::Path;

use serde_json::{Map, Value};

use super::{PROMPTFOO_TYPES, RawTest};
use crate::promptfoo::{PromptfooError, Reader};

/// Tests from a CSV file: a row per test, columns are variables except promptfoo's
/// `__` columns.
pub(super) fn csv_tests(reader: &mut Reader, file: &Path) -> Result<Vec<RawTest>, PromptfooError> {
    let shown = file.display().to_string();
    let mut csv = ::csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(file)
        .map_err(|e| reader.invalid(format!("{shown}: cannot read: {e}")))?;
    let headers: Vec<String> = csv
        .headers()
        .map_err(|e| reader.invalid(format!("{shown}: {e}")))?
        .iter()
        // promptfoo trims keys: `answer, __expected` has an `__expected` column.
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
        .collect();
    let mut tests = Vec::new();
    for record in csv.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            reader.invalid(format!("{shown}:{line}: {e}"))
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let origin = format!("{shown}:{line}");
        let mut test = RawTest {
            origin: origin.clone(),
            ..RawTest::default()
        };
        for (header, cell) in headers.iter().zip(record.iter()) {
            match header.as_str() {
                h if h == "__expected"
                    || (h.starts_with("__expected") && h[10..].parse::<u32>().is_ok()) =>
                {
                    if !cell.trim().is_empty() {
                        test.assertions.push(expected_assertion(cell));
                    }
                }
                "__description" => test.description = cell.to_string(),
                "__threshold" => {
                    if !cell.trim().is_empty() {
                        test.threshold = Some(cell.trim().parse().map_err(|_| {
                            reader.invalid(format!(
                                "{origin}: __threshold: expected a number, got {cell:?}"
                            ))
                        })?);
                    }
                }
                "__metric" => test.metric = Some(cell.to_string()).filter(|m| !m.is_empty()),
                h if h.starts_with("__metadata") => {}
                h if h.starts_with("__") => {
                    reader.unsupported(format!("{shown}: CSV column `{h}`"));
                }
                name => {
                    test.vars
                        .insert(name.to_string(), Value::String(cell.to_string()));
                }
            }
        }
        tests.push(test);
    }
    Ok(tests)
}

/// promptfoo's assertion shorthand in CSV `__expected` cells: `type:value`,
/// `type(threshold):value`, `not-type:value`, `grade:`/`llm-rubric:` rubrics,
/// `javascript:`/`fn:`/`python:` code, and any other text as `equals`.
pub(in crate::promptfoo) fn expected_assertion(cell: &str) -> Value {
    let cell = cell.trim();
    for (prefix, kind) in [
        ("javascript:", "javascript"),
        ("fn:", "javascript"),
        ("eval:", "javascript"),
        ("python:", "python"),
        ("grade:", "llm-rubric"),
        ("llm-rubric:", "llm-rubric"),
    ] {
        if let Some(rest) = cell.strip_prefix(prefix) {
            return serde_json::json!({"type": kind, "value": rest.trim()});
        }
    }
    static SHORTHAND: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"^(not-)?([a-z][a-z0-9-]*[a-z0-9])(?:\((\d+(?:\.\d+)?)\))?(?::([\s\S]*))?$",
        )
        .expect("valid regex")
    });
    if let Some(caps) = SHORTHAND.captures(cell) {
        let kind = &caps[2];
        if PROMPTFOO_TYPES.contains(&kind) {
            let negated = caps.get(1).is_some();
            let mut object = Map::new();
            let name = if negated {
                format!("not-{kind}")
            } else {
                kind.to_string()
            };
            object.insert("type".into(), Value::String(name));
            let threshold = caps.get(3).and_then(|t| t.as_str().parse::<f64>().ok());
            // promptfoo's `assertionFromString` gives these types a threshold when the cell
            // has none (so `levenshtein:` allows a distance of 0.75, not 5).
            let default = match kind {
                "similar" => Some(0.8),
                "answer-relevance"
                | "classifier"
                | "context-faithfulness"
                | "context-recall"
                | "context-relevance"
                | "cost"
                | "latency"
                | "levenshtein"
                | "perplexity-score"
                | "perplexity"
                | "rouge-n"
                | "starts-with" => Some(0.75),
                _ => None,
            };
            if let Some(threshold) = threshold.or(default) {
                object.insert("threshold".into(), serde_json::json!(threshold));
            }
            if let Some(value) = caps.get(4).map(|v| v.as_str().trim()) {
                let value = if kind.ends_with("-any") || kind.ends_with("-all") {
                    Value::Array(
                        value
                            .split(',')
                            .map(|v| Value::String(v.trim().to_string()))
                            .collect(),
                    )
                } else {
                    Value::String(value.to_string())
                };
                object.insert("value".into(), value);
            }
            return Value::Object(object);
        }
    }
    serde_json::json!({"type": "equals", "value": cell})
}
