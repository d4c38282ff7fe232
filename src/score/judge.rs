//! Model-graded assertions: `llm-rubric`, `factuality` and `model-graded-closedqa`.
//!
//! A judge is a chat model from the catalog that reads the output (with the task and the
//! rubric or reference answer) through an ordinary prompt template, `prompts/judge-*.yaml`,
//! and replies with JSON forced by the template's schema. This module knows the three
//! graders: their templates (a project's own copy wins over the built-in one), the
//! variables a template gets, and how a reply becomes a verdict. Running the judge is the
//! run's business (`run::judge`).

use serde::Deserialize;
use serde_json::Value;

use crate::prompt::{Prompt, PromptError, RenderedPrompt};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Grader {
    /// Does the output satisfy a rubric? `{reason, pass, score}`.
    #[default]
    Rubric,
    /// How do the output's facts relate to a reference answer? `{reason, category}`, A–E.
    Factuality,
    /// Does the output meet a criterion (by default: the reference answer)? `{reason, answer}`.
    ClosedQa,
}

pub const GRADERS: [Grader; 3] = [Grader::Rubric, Grader::Factuality, Grader::ClosedQa];

/// A judge's verdict on one output.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub passed: bool,
    /// 0..=1.
    pub score: f64,
    pub reason: String,
}

impl Grader {
    pub fn from_name(name: &str) -> Option<Grader> {
        match name {
            "llm-rubric" => Some(Grader::Rubric),
            "factuality" => Some(Grader::Factuality),
            "model-graded-closedqa" => Some(Grader::ClosedQa),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Grader::Rubric => "llm-rubric",
            Grader::Factuality => "factuality",
            Grader::ClosedQa => "model-graded-closedqa",
        }
    }

    /// The judge template's prompt name; a project prompt of this name replaces the
    /// built-in one.
    pub fn prompt_name(self) -> &'static str {
        match self {
            Grader::Rubric => "judge-llm-rubric",
            Grader::Factuality => "judge-factuality",
            Grader::ClosedQa => "judge-closedqa",
        }
    }

    fn builtin_template(self) -> &'static str {
        match self {
            Grader::Rubric => include_str!("../../prompts/judge-llm-rubric.yaml"),
            Grader::Factuality => include_str!("../../prompts/judge-factuality.yaml"),
            Grader::ClosedQa => include_str!("../../prompts/judge-closedqa.yaml"),
        }
    }

    /// The built-in judge template (the same file as `prompts/judge-*.yaml` here).
    pub fn builtin_prompt(self) -> Result<Prompt, PromptError> {
        let path = std::path::PathBuf::from(format!("<built-in>/{}.yaml", self.prompt_name()));
        let mut prompts = Prompt::parse_file(&path, self.builtin_template())?;
        Ok(prompts.remove(0))
    }

    /// What `value` must be, for the error when it is missing.
    pub fn value_expected(self) -> &'static str {
        match self {
            Grader::Rubric => {
                "a rubric: what a good output does (e.g. `value: is polite and names a refund date`)"
            }
            Grader::Factuality => {
                "a reference answer (or leave `value` out to use the case's `expected`)"
            }
            Grader::ClosedQa => {
                "a criterion (or leave `value` out to use the case's `expected` answer)"
            }
        }
    }

    pub fn expectation(self) -> &'static str {
        match self {
            Grader::Rubric => "satisfy the rubric",
            Grader::Factuality => "agree with the reference answer",
            Grader::ClosedQa => "meet the criterion",
        }
    }

    /// The variables a judge template gets.
    pub fn variables(self, question: &str, output: &str, criterion: &str) -> Value {
        serde_json::json!({
            "question": question,
            "output": output,
            "rubric": criterion,
            "criterion": criterion,
            "expected": criterion,
        })
    }

    /// Reads a judge's reply. `threshold` is the assertion's minimum score (for
    /// `llm-rubric`, a score at or above it passes whatever `pass` says).
    pub fn verdict(self, reply: &str, threshold: Option<f64>) -> Result<Verdict, JudgeReplyError> {
        let trimmed = reply.trim();
        let value = reply_json(trimmed)?;
        let reason = value
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_string();
        let fail = |what: &'static str| JudgeReplyError::Missing {
            what,
            shown: short(trimmed),
        };
        let (passed, score) = match self {
            Grader::Rubric => {
                #[derive(Deserialize)]
                struct Reply {
                    pass: bool,
                    score: f64,
                }
                let reply: Reply = serde_json::from_value(value.clone())
                    .map_err(|_| fail("boolean `pass` and number `score`"))?;
                if !reply.score.is_finite() {
                    return Err(fail("finite `score`"));
                }
                // Small judges write 0–10 or 0–100 scales now and then.
                let score = match reply.score {
                    s if s > 10.0 => s / 100.0,
                    s if s > 1.0 => s / 10.0,
                    s => s,
                }
                .clamp(0.0, 1.0);
                let passed = match threshold {
                    Some(t) => score + 1e-9 >= t,
                    None => reply.pass,
                };
                (passed, score)
            }
            Grader::Factuality => {
                let category = value
                    .get("category")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|c| ["A", "B", "C", "D", "E"].contains(c))
                    .ok_or_else(|| fail("`category` A–E"))?;
                let score = if category == "D" { 0.0 } else { 1.0 };
                let reason = format!("category {category}: {reason}");
                return Ok(Verdict {
                    passed: score + 1e-9 >= threshold.unwrap_or(1.0),
                    score,
                    reason,
                });
            }
            Grader::ClosedQa => {
                let answer = value
                    .get("answer")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|a| *a == "Y" || *a == "N")
                    .ok_or_else(|| fail("`answer` Y or N"))?;
                let score = if answer == "Y" { 1.0 } else { 0.0 };
                (score + 1e-9 >= threshold.unwrap_or(1.0), score)
            }
        };
        Ok(Verdict {
            passed,
            score,
            reason,
        })
    }
}

/// A judge's reply that gives no verdict; `shown` is the start of the reply.
#[derive(Debug, thiserror::Error)]
pub enum JudgeReplyError {
    #[error("the judge's reply is not JSON ({source}): {shown}")]
    NotJson {
        #[source]
        source: serde_json::Error,
        shown: String,
    },
    #[error("the judge's reply has no {what}: {shown}")]
    Missing { what: &'static str, shown: String },
}

/// The reply as JSON, or why it is not.
fn reply_json(trimmed: &str) -> Result<Value, JudgeReplyError> {
    serde_json::from_str(trimmed).map_err(|source| JudgeReplyError::NotJson {
        source,
        shown: short(trimmed),
    })
}

/// The pairwise judge's template name (`prompts/judge-pairwise.yaml` overrides it).
pub const PAIRWISE_PROMPT: &str = "judge-pairwise";

/// What "better" means when the eval set does not say.
pub const DEFAULT_PAIRWISE_CRITERION: &str = "Which response completes the task better: correct, helpful, and following any instructions in the task.";

/// The built-in pairwise judge template.
pub fn builtin_pairwise_prompt() -> Result<Prompt, PromptError> {
    let path = std::path::PathBuf::from(format!("<built-in>/{PAIRWISE_PROMPT}.yaml"));
    let mut prompts = Prompt::parse_file(&path, include_str!("../../prompts/judge-pairwise.yaml"))?;
    Ok(prompts.remove(0))
}

/// Reads a pairwise judge's reply: which response, as shown, won.
pub fn pairwise_winner(
    reply: &str,
) -> Result<(crate::score::pairwise::Shown, String), JudgeReplyError> {
    let trimmed = reply.trim();
    let value = reply_json(trimmed)?;
    let winner = value
        .get("winner")
        .and_then(Value::as_str)
        .and_then(crate::score::pairwise::Shown::parse)
        .ok_or_else(|| JudgeReplyError::Missing {
            what: "`winner` A, B or tie",
            shown: short(trimmed),
        })?;
    let reason = value
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok((winner, reason))
}

/// The task as the judge sees it: the last user message of a chat prompt (the system
/// prompt is instructions to the model, not the question), or a completion prompt whole.
pub fn question_of(prompt: &RenderedPrompt) -> String {
    match prompt {
        RenderedPrompt::Completion(text) => text.clone(),
        RenderedPrompt::Chat(messages) | RenderedPrompt::Promptfoo { messages, .. } => messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map(|m| m.content.clone())
            .unwrap_or_else(|| prompt.to_plain_text()),
    }
}

fn short(text: &str) -> String {
    let mut cut: String = text.chars().take(120).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_templates_parse_and_force_json() {
        for grader in GRADERS {
            let prompt = grader.builtin_prompt().unwrap();
            assert_eq!(prompt.id, grader.prompt_name());
            assert!(prompt.schema.is_some(), "{} has no schema", grader.name());
            let vars = minijinja::Value::from_serialize(grader.variables("q", "o", "c"));
            prompt.render(&vars).unwrap();
            assert_eq!(Grader::from_name(grader.name()), Some(grader));
        }
    }

    #[test]
    fn rubric_verdicts() {
        let v = Grader::Rubric
            .verdict(r#"{"reason": "polite", "pass": true, "score": 0.9}"#, None)
            .unwrap();
        assert_eq!(
            (v.passed, v.score, v.reason.as_str()),
            (true, 0.9, "polite")
        );
        // The threshold decides when given.
        let v = Grader::Rubric
            .verdict(r#"{"reason": "", "pass": true, "score": 0.4}"#, Some(0.5))
            .unwrap();
        assert!(!v.passed);
        // A 0–10 score is rescaled.
        let v = Grader::Rubric
            .verdict(r#"{"reason": "", "pass": false, "score": 7}"#, Some(0.5))
            .unwrap();
        assert_eq!((v.passed, v.score), (true, 0.7));
    }

    #[test]
    fn factuality_and_closedqa_verdicts() {
        let d = Grader::Factuality
            .verdict(r#"{"reason": "wrong year", "category": "D"}"#, None)
            .unwrap();
        assert_eq!((d.passed, d.score), (false, 0.0));
        assert!(d.reason.starts_with("category D"));
        let b = Grader::Factuality
            .verdict(r#"{"reason": "more", "category": "B"}"#, None)
            .unwrap();
        assert!(b.passed);
        let n = Grader::ClosedQa
            .verdict(r#"{"reason": "no", "answer": "N"}"#, None)
            .unwrap();
        assert!(!n.passed);
        let y = Grader::ClosedQa
            .verdict(r#"{"reason": "yes", "answer": "Y"}"#, None)
            .unwrap();
        assert!(y.passed);
    }

    #[test]
    fn unreadable_replies_are_errors_not_verdicts() {
        for (grader, reply) in [
            (Grader::Rubric, "yes it passes"),
            (Grader::Rubric, r#"{"reason": "x"}"#),
            (Grader::Factuality, r#"{"reason": "x", "category": "F"}"#),
            (Grader::ClosedQa, r#"{"answer": "maybe"}"#),
        ] {
            let err = grader.verdict(reply, None).unwrap_err().to_string();
            assert!(err.starts_with("the judge's reply"), "{err}");
        }
    }

    #[test]
    fn the_question_is_the_last_user_message() {
        use crate::prompt::ChatMessage;
        let chat = RenderedPrompt::Chat(vec![
            ChatMessage {
                role: "system".into(),
                content: "be brief".into(),
            },
            ChatMessage {
                role: "user".into(),
                content: "why is the sky blue?".into(),
            },
        ]);
        assert_eq!(question_of(&chat), "why is the sky blue?");
    }
}
