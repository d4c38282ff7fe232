//! Scoring: assertions on one output (`assertion`), detection and judge scores, and the
//! glue that reads labels out of outputs for the classification metrics (`crate::metrics`).

pub mod assertion;
pub mod detection;
pub mod judge;
pub mod meteor;
pub mod named;
pub mod pairwise;
pub mod similarity;
pub mod stats;
pub mod text_metrics;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a predicted label is read from an output, for classification metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassificationSpec {
    /// JSONPath into the output parsed as JSON, e.g. `$.sentiment`.
    #[serde(default)]
    pub label_path: Option<String>,
    /// Regex whose first capture group (or whole match) is the label.
    #[serde(default)]
    pub label_regex: Option<String>,
    /// JSONPath into `expected` when it is an object; otherwise `expected` is the label.
    #[serde(default)]
    pub expected_path: Option<String>,
    /// Fixed label order; by default the sorted union of true and predicted labels.
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    /// Compare labels lowercased and trimmed (default true).
    #[serde(default = "yes")]
    pub normalize: bool,
}

fn yes() -> bool {
    true
}

/// The label given to an output no label could be read from, so it counts as a wrong
/// prediction instead of disappearing from the metrics.
pub const INVALID_LABEL: &str = "<invalid>";

/// Reads the predicted label from an output as the classification spec says.
pub fn predicted_label(spec: &ClassificationSpec, output: &str) -> String {
    let raw = if let Some(path) = &spec.label_path {
        first_json(output)
            .and_then(|json| json_path_text(&json, path))
            .unwrap_or_else(|| INVALID_LABEL.to_string())
    } else if let Some(pattern) = &spec.label_regex {
        // Validated when the run is planned; an invalid pattern here yields no label.
        regex::Regex::new(pattern)
            .ok()
            .and_then(|re| {
                re.captures(output).map(|c| {
                    c.get(1)
                        .or_else(|| c.get(0))
                        .map(|m| m.as_str().to_string())
                        .unwrap_or_default()
                })
            })
            .unwrap_or_else(|| INVALID_LABEL.to_string())
    } else {
        output.to_string()
    };
    normalize(spec, raw)
}

/// Reads the true label from a case's expected value.
pub fn expected_label(spec: &ClassificationSpec, expected: &Value) -> Option<String> {
    let raw = match &spec.expected_path {
        Some(path) if expected.is_object() || expected.is_array() => {
            json_path_text(expected, path)?
        }
        _ => match expected {
            Value::String(s) => s.clone(),
            Value::Null => return None,
            other => other.to_string(),
        },
    };
    Some(normalize(spec, raw))
}

fn normalize(spec: &ClassificationSpec, label: String) -> String {
    normalize_label(spec, &label)
}

/// Labels are compared trimmed and lower-cased unless the spec says otherwise.
pub fn normalize_label(spec: &ClassificationSpec, label: &str) -> String {
    if spec.normalize && label != INVALID_LABEL {
        label.trim().to_lowercase()
    } else {
        label.to_string()
    }
}

fn json_path_text(value: &Value, path: &str) -> Option<String> {
    let path = serde_json_path::JsonPath::parse(path).ok()?;
    let node = path.query(value).first()?;
    Some(match node {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// The output parsed as JSON, or the first JSON object embedded in it (models often wrap
/// JSON in prose or code fences).
pub fn first_json(output: &str) -> Option<Value> {
    if let Ok(value) = serde_json::from_str::<Value>(output.trim()) {
        return Some(value);
    }
    for (start, _) in output.match_indices(['{', '[']) {
        let mut stream = serde_json::Deserializer::from_str(&output[start..]).into_iter::<Value>();
        if let Some(Ok(value)) = stream.next() {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ClassificationSpec {
        ClassificationSpec {
            label_path: Some("$.sentiment".into()),
            label_regex: None,
            expected_path: None,
            labels: None,
            normalize: true,
        }
    }

    #[test]
    fn labels_from_json_prose_and_garbage() {
        let s = spec();
        assert_eq!(
            predicted_label(&s, r#"{"sentiment": " Positive"}"#),
            "positive"
        );
        assert_eq!(
            predicted_label(&s, "Sure! ```json\n{\"sentiment\": \"negative\"}\n```"),
            "negative"
        );
        assert_eq!(predicted_label(&s, "I think it is good"), INVALID_LABEL);
        assert_eq!(
            expected_label(&s, &Value::from("NEGATIVE")).unwrap(),
            "negative"
        );
    }

    #[test]
    fn regex_label_uses_first_group() {
        let s = ClassificationSpec {
            label_path: None,
            label_regex: Some("(?i)answer: (\\w+)".into()),
            ..spec()
        };
        assert_eq!(predicted_label(&s, "Answer: Yes."), "yes");
    }
}
