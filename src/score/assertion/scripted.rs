//! Assertions whose verdict is not a plain predicate on the text: `javascript` and
//! `python` (the script's result read as promptfoo reads it), `assert-set` (nested
//! assertions), `is-refusal` (promptfoo scores an empty reply 0 even when it passes), and
//! assertion-level transforms.

use super::*;
use crate::script::{Language, Role};

impl Assertion {
    /// The outcome of the kinds checked here; None for the others.
    pub(super) fn check_new(&self, input: &CheckInput) -> Option<AssertionOutcome> {
        match &self.kind {
            AssertionKind::Script(script) => Some(self.check_script(script, input)),
            AssertionKind::AssertSet(set) => Some(self.check_set(set, input)),
            AssertionKind::IsRefusal => Some(self.check_refusal(input)),
            AssertionKind::OpenAiToolsCall => Some(self.check_tools_call(input)),
            AssertionKind::Gleu(references) => Some(self.check_gleu(references, input)),
            AssertionKind::Meteor(references) => Some(self.check_meteor(references, input)),
            AssertionKind::Perplexity { normalized } => {
                Some(self.check_perplexity(*normalized, input))
            }
            _ => None,
        }
    }

    /// promptfoo's assertion `transform`: the output the assertion sees is what the
    /// script returns, given `(output, {vars, prompt: {label}})`.
    pub(super) fn check_transformed(
        &self,
        transform: &Script,
        input: &CheckInput,
    ) -> AssertionOutcome {
        let output = input.value.cloned().unwrap_or_else(|| json!(input.output));
        let context = input.context.cloned().unwrap_or_else(|| json!({}));
        let transform_context = json!({
            "vars": context.get("vars").cloned().unwrap_or_else(|| json!({})),
            "prompt": {"label": context.get("prompt").cloned().unwrap_or(Value::Null)},
        });
        let what = crate::script::excerpt(&transform.written);
        match transform.call(Role::Transform, &output, &transform_context) {
            Ok(Value::Null) => self.failed(format!(
                "transform `{what}` did not return a value (a multi-line transform needs `return`)"
            )),
            Ok(value) => {
                let text = output_text(&value);
                self.check_output(&CheckInput {
                    output: &text,
                    value: Some(&value),
                    ..*input
                })
            }
            Err(err) => self.failed(format!("transform `{what}` failed: {err}")),
        }
    }

    /// promptfoo's `perplexity` and `perplexity-score`: exp of the negated mean token
    /// log-probability, against an optional threshold (none: always passes).
    fn check_perplexity(&self, normalized: bool, input: &CheckInput) -> AssertionOutcome {
        let Some(logprobs) = input.logprobs.filter(|l| !l.is_empty()) else {
            return self.failed(format!(
                "{}: the model reported no token log-probabilities (llama.cpp models and OpenAI-compatible servers that send `logprobs` do; echo, mistral.rs and vision models do not)",
                self.kind.name()
            ));
        };
        let mean = logprobs.iter().sum::<f64>() / logprobs.len() as f64;
        let perplexity = (-mean).exp();
        let (holds, score, reason) = match normalized {
            false => {
                let holds = self.threshold.is_none_or(|t| perplexity <= t);
                (
                    holds,
                    None,
                    format!("perplexity {perplexity:.2} is above the threshold"),
                )
            }
            true => {
                let value = 1.0 / (1.0 + perplexity);
                let holds = self.threshold.is_none_or(|t| value >= t);
                (
                    holds,
                    Some(value),
                    format!(
                        "perplexity score {value:.4} (perplexity {perplexity:.2}) is below the threshold"
                    ),
                )
            }
        };
        let passed = holds != self.negated;
        let score = match score {
            Some(value) if self.negated => 1.0 - value,
            Some(value) => value,
            None => f64::from(u8::from(passed)),
        };
        let reason = (!passed).then(|| match self.negated {
            false => format!("{reason} {}", self.threshold.unwrap_or_default()),
            true => format!(
                "perplexity {perplexity:.2} met the threshold, and the assertion is negated"
            ),
        });
        self.outcome(passed, score, reason)
    }

    pub(super) fn outcome(
        &self,
        passed: bool,
        score: f64,
        reason: Option<String>,
    ) -> AssertionOutcome {
        AssertionOutcome {
            named_scores: Default::default(),
            metric: None,
            assertion: self.type_name(),
            passed,
            score,
            weight: self.weight,
            reason: reason.map(|r| r.replace(['\n', '\r'], " ")),
            judge_error: None,
        }
    }

    fn check_script(&self, script: &Script, input: &CheckInput) -> AssertionOutcome {
        let output = input.value.cloned().unwrap_or_else(|| json!(input.output));
        let mut context = input.context.cloned().unwrap_or_else(|| json!({}));
        if let (Some(config), Value::Object(map)) = (&self.config, &mut context) {
            map.insert("config".into(), config.clone());
        }
        let what = crate::script::excerpt(&script.written);
        let language = script.language.name();
        let result = match script.call(Role::Assertion, &output, &context) {
            Ok(result) => result,
            Err(err) => return self.failed(format!("{language} `{what}` failed: {err}")),
        };
        let named_scores = named_scores_of(&result);
        let verdict = match script.language {
            Language::JavaScript => javascript_verdict(result, self.threshold),
            Language::Python => python_verdict(result, self.threshold),
        };
        let mut outcome = self.script_outcome(verdict, language, &what);
        outcome.named_scores = named_scores;
        outcome
    }

    fn script_outcome(
        &self,
        verdict: Result<Verdict, VerdictError>,
        language: &str,
        what: &str,
    ) -> AssertionOutcome {
        match verdict {
            Ok(Verdict::Bool(matched)) => {
                let passed = matched != self.negated;
                let reason = (!passed).then(|| format!("{language} `{what}` returned {matched}"));
                self.outcome(passed, if passed { 1.0 } else { 0.0 }, reason)
            }
            // promptfoo applies no `not-` to a number or an object a script returns.
            Ok(Verdict::Scored {
                passed,
                score,
                reason,
            }) => {
                let reason = (!passed).then(|| match reason {
                    Some(reason) if !reason.is_empty() => reason,
                    _ => format!("{language} `{what}` scored {score}"),
                });
                self.outcome(passed, score, reason)
            }
            Err(why) => self.failed(format!("{language} `{what}`: {why}")),
        }
    }

    /// promptfoo's `assert-set`: the weighted mean of the nested scores; with a
    /// threshold it must reach it, otherwise every nested assertion must pass.
    fn check_set(&self, set: &[Assertion], input: &CheckInput) -> AssertionOutcome {
        let outcomes: Vec<AssertionOutcome> = set.iter().map(|a| a.check(input)).collect();
        let total: f64 = outcomes.iter().map(|o| o.weight).sum();
        let score = match total > 0.0 {
            true => outcomes.iter().map(|o| o.score * o.weight).sum::<f64>() / total,
            false => 0.0,
        };
        let failures: Vec<String> = outcomes
            .iter()
            .filter(|o| !o.passed && o.weight > 0.0)
            .map(|o| match &o.reason {
                Some(reason) => format!("{}: {reason}", o.assertion),
                None => o.assertion.clone(),
            })
            .collect();
        let (passed, reason) = match self.threshold.filter(|t| *t > 0.0) {
            Some(t) => (
                score >= t,
                format!("the set scored {score:.2}, below its threshold {t}"),
            ),
            None => (failures.is_empty(), failures.join("; ")),
        };
        let passed = passed != self.negated;
        let reason = (!passed).then(|| match self.negated {
            true => "every assertion of the set passed".to_string(),
            false => reason,
        });
        self.outcome(passed, score, reason)
    }

    /// promptfoo's `is-refusal`: its refusal phrases; an empty reply counts as a refusal
    /// but scores 0 either way.
    fn check_refusal(&self, input: &CheckInput) -> AssertionOutcome {
        if input.output.trim().is_empty() {
            let passed = !self.negated;
            let reason =
                (!passed).then(|| "expected output not to be a refusal; it was empty".into());
            return self.outcome(passed, 0.0, reason);
        }
        let refused = structured::is_refusal(input.output);
        let passed = refused != self.negated;
        let not = if self.negated { "not " } else { "" };
        let reason = (!passed).then(|| {
            format!(
                "expected output {not}to be a refusal; output was {}",
                excerpt(input.output)
            )
        });
        self.outcome(passed, if passed { 1.0 } else { 0.0 }, reason)
    }
}

/// A transformed output as text assertions see it: a string as it is, anything else as
/// JSON (promptfoo's `coerceString`).
pub(crate) fn output_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A script's result that is not a verdict promptfoo would read.
#[derive(Debug, thiserror::Error)]
enum VerdictError {
    #[error("must return a boolean, number, or {{pass, score, reason}} object")]
    Shape,
    /// `got` is an excerpt of what the script returned.
    #[error("must return a boolean, number, or {{pass, score, reason}} object; got {got}")]
    ShapeGot { got: String },
    #[error("invalid JSON {text:?}: {source}")]
    InvalidJson {
        text: String,
        #[source]
        source: serde_json::Error,
    },
}

enum Verdict {
    Bool(bool),
    Scored {
        passed: bool,
        score: f64,
        reason: Option<String>,
    },
}

/// promptfoo's `isGradingResult`: `pass`, `score` and `reason` of the right types.
fn grading_result(value: &Value) -> Option<Verdict> {
    let pass = value.get("pass")?.as_bool()?;
    let score = value.get("score")?.as_f64()?;
    let reason = value.get("reason")?.as_str()?;
    Some(Verdict::Scored {
        passed: pass,
        score,
        reason: Some(reason.to_string()),
    })
}

/// A number passes above 0, or at the threshold when there is one.
fn scored(score: f64, threshold: Option<f64>) -> Verdict {
    let passed = match threshold {
        Some(t) => score >= t,
        None => score > 0.0,
    };
    Verdict::Scored {
        passed,
        score,
        reason: None,
    }
}

fn javascript_verdict(result: Value, threshold: Option<f64>) -> Result<Verdict, VerdictError> {
    match &result {
        Value::Bool(b) => Ok(Verdict::Bool(*b)),
        Value::Number(n) => Ok(scored(n.as_f64().unwrap_or(0.0), threshold)),
        other => grading_result(other).ok_or_else(|| VerdictError::ShapeGot {
            got: excerpt(&other.to_string()),
        }),
    }
}

fn python_verdict(result: Value, threshold: Option<f64>) -> Result<Verdict, VerdictError> {
    match result {
        Value::Bool(b) => Ok(Verdict::Bool(b)),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Verdict::Bool(true)),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Verdict::Bool(false)),
        // A JSON string is taken as it is, without the threshold (as promptfoo does).
        Value::String(s) if s.starts_with('{') => {
            let parsed: Value = match serde_json::from_str(&s) {
                Ok(parsed) => parsed,
                Err(source) => return Err(VerdictError::InvalidJson { text: s, source }),
            };
            grading_result(&parsed).ok_or(VerdictError::Shape)
        }
        Value::Object(mut map) => {
            // Python dataclasses write `pass_`.
            if !map.contains_key("pass")
                && let Some(pass) = map.remove("pass_")
            {
                map.insert("pass".into(), pass);
            }
            match grading_result(&Value::Object(map)).ok_or(VerdictError::Shape)? {
                Verdict::Scored {
                    passed,
                    score,
                    reason,
                } => match threshold.filter(|t| score < *t) {
                    Some(t) => {
                        let below = format!("Python score {score} is less than threshold {t}");
                        let reason = match reason.filter(|r| !r.is_empty()) {
                            Some(r) => format!("{below}: {r}"),
                            None => below,
                        };
                        Ok(Verdict::Scored {
                            passed: false,
                            score,
                            reason: Some(reason),
                        })
                    }
                    None => Ok(Verdict::Scored {
                        passed,
                        score,
                        reason,
                    }),
                },
                other => Ok(other),
            }
        }
        Value::Null | Value::Array(_) => Err(VerdictError::Shape),
        other => {
            let text = output_text(&other);
            match parse_float_prefix(&text) {
                Some(score) => Ok(scored(score, threshold)),
                None => Err(VerdictError::ShapeGot {
                    got: excerpt(&text),
                }),
            }
        }
    }
}

/// JavaScript's `parseFloat`: the longest leading decimal number, after leading space.
fn parse_float_prefix(text: &str) -> Option<f64> {
    let text = text.trim_start();
    if let Some(rest) = text.strip_prefix(['+', '-'])
        && rest.starts_with("Infinity")
    {
        return Some(if text.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    let pattern = regex::Regex::new(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?").ok()?;
    pattern.find(text)?.as_str().parse().ok()
}

/// The numeric `namedScores` of a script's result object (`named_scores` from Python),
/// which count toward those named metrics as promptfoo counts them.
fn named_scores_of(result: &Value) -> std::collections::BTreeMap<String, f64> {
    ["namedScores", "named_scores"]
        .iter()
        .find_map(|key| result.get(*key).and_then(Value::as_object))
        .map(|scores| {
            scores
                .iter()
                .filter_map(|(name, score)| score.as_f64().map(|s| (name.clone(), s)))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_results_read_as_promptfoo_reads_them() {
        let verdict = |v: Value, t| match python_verdict(v, t) {
            Ok(Verdict::Bool(b)) => format!("bool {b}"),
            Ok(Verdict::Scored { passed, score, .. }) => format!("{passed} {score}"),
            Err(_) => "error".into(),
        };
        assert_eq!(verdict(json!("TRUE"), None), "bool true");
        assert_eq!(verdict(json!(0.4), Some(0.5)), "false 0.4");
        assert_eq!(verdict(json!("0.7 points"), None), "true 0.7");
        assert_eq!(verdict(json!(0), None), "false 0");
        assert_eq!(verdict(Value::Null, None), "error");
        assert_eq!(
            verdict(
                json!({"pass_": true, "score": 0.2, "reason": "r"}),
                Some(0.5)
            ),
            "false 0.2"
        );
        assert_eq!(verdict(json!({"pass": true, "score": 1}), None), "error");
        assert_eq!(
            verdict(
                json!("{\"pass\": true, \"score\": 0.1, \"reason\": \"\"}"),
                Some(0.5)
            ),
            "true 0.1"
        );
    }

    #[test]
    fn javascript_results_read_as_promptfoo_reads_them() {
        let verdict = |v: Value, t| match javascript_verdict(v, t) {
            Ok(Verdict::Bool(b)) => format!("bool {b}"),
            Ok(Verdict::Scored { passed, score, .. }) => format!("{passed} {score}"),
            Err(_) => "error".into(),
        };
        assert_eq!(verdict(json!(false), None), "bool false");
        assert_eq!(verdict(json!(0.5), Some(0.6)), "false 0.5");
        assert_eq!(verdict(json!(0.5), None), "true 0.5");
        assert_eq!(verdict(json!("true"), None), "error");
        assert_eq!(verdict(Value::Null, None), "error");
    }
}
