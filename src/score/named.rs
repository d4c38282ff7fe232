//! Named metrics, as promptfoo keeps them: an assertion that names a `metric` adds its
//! score to that metric, per column, summed over the column's cases (promptfoo's
//! `namedScores`, with `namedScoresCount` the assertions counted); `derived_metrics`
//! (promptfoo's `derivedMetrics`) are expressions over those sums, evaluated in order, so a
//! later one can use an earlier one (`f1` from `precision` and `recall`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::assertion::AssertionOutcome;
use crate::script::{Language, Role, Script, Source};

/// A metric computed from the named metrics' sums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DerivedMetric {
    pub name: String,
    /// An arithmetic expression over metric names, as mathjs reads it: `+ - * / ^ %`,
    /// parentheses, numbers and functions such as `sqrt`, `min`, `max`, `log`, `abs`.
    pub value: String,
}

/// Sums of the named metrics over a column's cells, and the assertions behind each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamedScores {
    pub sums: BTreeMap<String, f64>,
    pub counts: BTreeMap<String, usize>,
}

impl NamedScores {
    /// Adds one cell's assertion outcomes: each assertion's score to its `metric`, and
    /// the `namedScores` a script returned to theirs. As promptfoo counts, a metric
    /// counts the cell's assertions naming it, or 1 when only a script's result did.
    pub fn add(&mut self, outcomes: &[AssertionOutcome]) {
        let mut cell: BTreeMap<String, f64> = BTreeMap::new();
        for outcome in outcomes {
            if let Some(metric) = &outcome.metric {
                *cell.entry(metric.clone()).or_default() += outcome.score;
            }
            for (name, score) in &outcome.named_scores {
                if outcome.metric.as_ref() != Some(name) {
                    *cell.entry(name.clone()).or_default() += score;
                }
            }
        }
        for (name, score) in cell {
            let naming = outcomes
                .iter()
                .filter(|o| o.metric.as_ref() == Some(&name))
                .count();
            *self.sums.entry(name.clone()).or_default() += score;
            *self.counts.entry(name).or_default() += naming.max(1);
        }
    }

    /// Evaluates `derived` in order into the sums; returns a message per metric that could
    /// not be computed (it is then left out).
    pub fn derive(&mut self, derived: &[DerivedMetric]) -> Vec<String> {
        let mut errors = Vec::new();
        for metric in derived {
            match evaluate(&metric.value, &self.sums) {
                Ok(value) => {
                    self.sums.insert(metric.name.clone(), value);
                }
                Err(message) => errors.push(format!("derived metric `{}`: {message}", metric.name)),
            }
        }
        errors
    }
}

/// Why a derived metric has no value.
#[derive(Debug, thiserror::Error)]
pub enum DerivedMetricError {
    #[error("`{0}` is not an arithmetic expression")]
    NotArithmetic(String),
    #[error("not a finite number")]
    NotFinite,
    /// The script returned nothing (JavaScript gives `null` for NaN and infinities).
    #[error("not a finite number (a division by zero?)")]
    NoValue,
    #[error("expected a number, got {0}")]
    NotANumber(Value),
    #[error(transparent)]
    Script(#[from] crate::script::ScriptError),
}

/// `expression` with the metrics as variables, in the scripts' sandboxed JavaScript:
/// mathjs's `^` is JavaScript's `**`, and `Math`'s functions are in scope.
fn evaluate(expression: &str, scores: &BTreeMap<String, f64>) -> Result<f64, DerivedMetricError> {
    if expression.contains(['{', '}', ';', '`']) || expression.contains("=>") {
        return Err(DerivedMetricError::NotArithmetic(expression.to_string()));
    }
    let body = format!(
        "with (Math) {{\n  with (output) {{\n    return ({});\n  }}\n}}\n",
        expression.replace('^', "**")
    );
    let script = Script {
        language: Language::JavaScript,
        source: Source::Inline(body),
        written: expression.to_string(),
    };
    let scope: serde_json::Map<String, Value> =
        scores.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    match script.call(Role::Transform, &Value::Object(scope), &json!({})) {
        Ok(Value::Number(n)) => n
            .as_f64()
            .filter(|v| v.is_finite())
            .ok_or(DerivedMetricError::NotFinite),
        Ok(Value::Null) => Err(DerivedMetricError::NoValue),
        Ok(other) => Err(DerivedMetricError::NotANumber(other)),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(metric: &str, score: f64) -> AssertionOutcome {
        AssertionOutcome {
            named_scores: Default::default(),
            assertion: "equals".into(),
            passed: score > 0.5,
            score,
            weight: 1.0,
            reason: None,
            judge_error: None,
            metric: Some(metric.into()),
        }
    }

    #[test]
    fn sums_per_metric_and_derives_in_order() {
        let mut named = NamedScores::default();
        named.add(&[outcome("tp", 1.0), outcome("fp", 0.0)]);
        named.add(&[outcome("tp", 1.0), outcome("fp", 1.0)]);
        named.add(&[outcome("tp", 0.0), outcome("fn", 1.0)]);
        assert_eq!(named.sums["tp"], 2.0);
        assert_eq!(named.counts["tp"], 3);
        let errors = named.derive(&[
            DerivedMetric {
                name: "precision".into(),
                value: "tp / (tp + fp)".into(),
            },
            DerivedMetric {
                name: "recall".into(),
                value: "tp / (tp + fn)".into(),
            },
            DerivedMetric {
                name: "f1".into(),
                value: "2 * precision * recall / (precision + recall)".into(),
            },
            DerivedMetric {
                name: "squared".into(),
                value: "sqrt(tp ^ 2)".into(),
            },
        ]);
        assert!(errors.is_empty(), "{errors:?}");
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(named.sums["precision"], 2.0 / 3.0));
        assert!(close(named.sums["recall"], 2.0 / 3.0));
        assert!(close(named.sums["f1"], 2.0 / 3.0));
        assert!(close(named.sums["squared"], 2.0));
    }

    #[test]
    fn bad_expressions_are_reported_not_guessed() {
        let mut named = NamedScores::default();
        named.add(&[outcome("a", 0.0)]);
        let errors = named.derive(&[
            DerivedMetric {
                name: "x".into(),
                value: "a / a".into(),
            },
            DerivedMetric {
                name: "y".into(),
                value: "missing + 1".into(),
            },
            DerivedMetric {
                name: "z".into(),
                value: "(() => { while (true) {} })()".into(),
            },
        ]);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[1].contains("missing"), "{errors:?}");
        assert!(!named.sums.contains_key("x"));
    }
}
