//! Agent evaluation sets: questions with assertions on what the agent did (which tools,
//! with which arguments, in how many steps) and on its final answer (every text assertion
//! of an ordinary eval set), scored into the figures that matter for tool use.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::score::assertion::{Assertion, AssertionSpec, CheckInput};
use crate::trace::{AgentTrace, StepAction};
use crate::yaml::{self, YamlError};

/// Assertion types about the trace rather than the answer.
pub const AGENT_ASSERTIONS: &[&str] = &[
    "tool-called",
    "tool-not-called",
    "tool-args-match",
    "tool-sequence",
    "max-steps",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentEvalSpec {
    /// Always `agent`: what tells these sets from prompt eval sets in `eval-sets/`.
    kind: String,
    name: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    models: Vec<String>,
    /// Agent prompt templates to compare (default: the built-in system prompt).
    #[serde(default)]
    prompts: Vec<String>,
    /// Tools offered (default: all that are set up).
    #[serde(default)]
    tools: Vec<String>,
    #[serde(default)]
    max_steps: Option<usize>,
    #[serde(default)]
    system: Option<String>,
    cases: Vec<AgentCaseSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentCaseSpec {
    id: Option<String>,
    question: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default, rename = "assert")]
    assertions: Vec<AssertionSpec>,
}

#[derive(Debug, Clone)]
pub enum AgentCheck {
    ToolCalled(String),
    /// None: no tool at all.
    ToolNotCalled(Option<String>),
    /// A call of `name` whose arguments contain `arguments` (objects compared as subsets,
    /// strings ignoring case and surrounding space).
    ToolArgsMatch {
        name: String,
        arguments: Value,
    },
    /// The calls, in this order, with nothing else between.
    ToolSequence(Vec<String>),
    MaxSteps(usize),
    Answer(Assertion),
}

impl AgentCheck {
    pub fn name(&self) -> String {
        match self {
            AgentCheck::ToolCalled(_) => "tool-called".into(),
            AgentCheck::ToolNotCalled(_) => "tool-not-called".into(),
            AgentCheck::ToolArgsMatch { .. } => "tool-args-match".into(),
            AgentCheck::ToolSequence(_) => "tool-sequence".into(),
            AgentCheck::MaxSteps(_) => "max-steps".into(),
            AgentCheck::Answer(a) => a.type_name(),
        }
    }

    /// Whether it judges the choice of tools (for the selection rate).
    fn is_selection(&self) -> bool {
        matches!(
            self,
            AgentCheck::ToolCalled(_) | AgentCheck::ToolNotCalled(_) | AgentCheck::ToolSequence(_)
        )
    }
}

#[derive(Debug, Clone)]
pub struct AgentCase {
    pub id: String,
    pub question: String,
    pub tags: Vec<String>,
    pub checks: Vec<AgentCheck>,
}

#[derive(Debug, Clone)]
pub struct AgentEvalSet {
    pub name: String,
    pub description: String,
    pub models: Vec<String>,
    pub prompts: Vec<String>,
    pub tools: Vec<String>,
    pub max_steps: Option<usize>,
    pub system: Option<String>,
    pub cases: Vec<AgentCase>,
    pub source: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentEvalError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("{path}: {}{message}", if case == "-" { String::new() } else { format!("case {case}: ") })]
    Case {
        path: PathBuf,
        case: String,
        message: String,
    },
    #[error("{path}: case {case}: {source}")]
    Check {
        path: PathBuf,
        case: String,
        #[source]
        source: AgentCheckError,
    },
}

/// An assertion of an agent case that is not a check an agent set takes.
#[derive(Debug, thiserror::Error)]
pub enum AgentCheckError {
    /// `kind` is the assertion type as written.
    #[error("{kind} expects {expected}")]
    Expects {
        kind: String,
        expected: &'static str,
    },
    /// Not an agent check, and not an answer assertion either.
    #[error("{source} (agent sets also take {})", AGENT_ASSERTIONS.join(", "))]
    Answer {
        #[source]
        source: crate::score::assertion::AssertionError,
    },
}

impl AgentEvalSet {
    pub fn load(path: &Path) -> Result<AgentEvalSet, AgentEvalError> {
        if path.is_file() && !super::is_agent_set(path) {
            return Err(AgentEvalError::Case {
                path: path.to_path_buf(),
                case: "-".into(),
                message: format!(
                    "not an agent eval set (those say `kind: agent`); run prompt eval sets with `promptlab eval {}`",
                    path.display()
                ),
            });
        }
        let spec: AgentEvalSpec = yaml::read_file(path)?;
        if spec.kind != "agent" {
            return Err(AgentEvalError::Case {
                path: path.to_path_buf(),
                case: "-".into(),
                message: format!("expected `kind: agent`, found `kind: {}`", spec.kind),
            });
        }
        let mut cases = Vec::new();
        for (index, case) in spec.cases.into_iter().enumerate() {
            let id = case.id.unwrap_or_else(|| (index + 1).to_string());
            let fail = |message: String| AgentEvalError::Case {
                path: path.to_path_buf(),
                case: id.clone(),
                message,
            };
            if case.question.trim().is_empty() {
                return Err(fail("`question` is empty".into()));
            }
            let checks = case
                .assertions
                .iter()
                .map(|a| {
                    parse_check(a).map_err(|source| AgentEvalError::Check {
                        path: path.to_path_buf(),
                        case: id.clone(),
                        source,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            cases.push(AgentCase {
                id,
                question: case.question,
                tags: case.tags,
                checks,
            });
        }
        let name = spec.name.unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        Ok(AgentEvalSet {
            name,
            description: spec.description,
            models: spec.models,
            prompts: spec.prompts,
            tools: spec.tools,
            max_steps: spec.max_steps,
            system: spec.system,
            cases,
            source: path.to_path_buf(),
        })
    }
}

fn parse_check(spec: &AssertionSpec) -> Result<AgentCheck, AgentCheckError> {
    let value = spec.value.as_ref();
    let expects = |expected: &'static str| AgentCheckError::Expects {
        kind: spec.kind.clone(),
        expected,
    };
    let text = |expected: &'static str| -> Result<String, AgentCheckError> {
        value
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| expects(expected))
    };
    Ok(match spec.kind.as_str() {
        "tool-called" => AgentCheck::ToolCalled(text("a tool name")?),
        "tool-not-called" => {
            AgentCheck::ToolNotCalled(value.and_then(Value::as_str).map(String::from))
        }
        "tool-args-match" => {
            let value = value.ok_or_else(|| expects("`{name, arguments}`"))?;
            match (
                value.get("name").and_then(Value::as_str),
                value.get("arguments"),
            ) {
                (Some(name), Some(arguments)) => AgentCheck::ToolArgsMatch {
                    name: name.to_string(),
                    arguments: arguments.clone(),
                },
                _ => return Err(expects("`{name, arguments}`")),
            }
        }
        "tool-sequence" => {
            let names: Option<Vec<String>> = value.and_then(Value::as_array).map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            });
            AgentCheck::ToolSequence(
                names
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| expects("a list of tool names"))?,
            )
        }
        "max-steps" => AgentCheck::MaxSteps(
            value
                .and_then(Value::as_u64)
                .ok_or_else(|| expects("a whole number"))? as usize,
        ),
        _ => AgentCheck::Answer(
            Assertion::from_spec(spec).map_err(|source| AgentCheckError::Answer { source })?,
        ),
    })
}

/// `want` is contained in `got`: objects key by key, arrays item by item (same length),
/// strings ignoring case and surrounding space, numbers by value.
pub fn json_subset(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => w
            .iter()
            .all(|(k, v)| g.get(k).is_some_and(|gv| json_subset(v, gv))),
        (Value::Array(w), Value::Array(g)) => {
            w.len() == g.len() && w.iter().zip(g).all(|(a, b)| json_subset(a, b))
        }
        (Value::String(w), Value::String(g)) => w.trim().eq_ignore_ascii_case(g.trim()),
        (Value::Number(w), Value::Number(g)) => w.as_f64() == g.as_f64(),
        (w, g) => w == g,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckOutcome {
    pub check: String,
    pub passed: bool,
    pub reason: Option<String>,
    /// Which figure it counts towards: `selection`, `arguments`, `steps` or `answer`.
    pub counts_for: String,
}

pub fn check_trace(checks: &[AgentCheck], trace: &AgentTrace) -> Vec<CheckOutcome> {
    let calls: Vec<(&str, &Value)> = trace.calls().collect();
    let names: Vec<&str> = calls.iter().map(|(n, _)| *n).collect();
    checks
        .iter()
        .map(|check| {
            let (passed, reason) = match check {
                AgentCheck::ToolCalled(name) => (
                    names.contains(&name.as_str()),
                    format!("expected a call to {name}; calls: {names:?}"),
                ),
                AgentCheck::ToolNotCalled(None) => (
                    names.is_empty(),
                    format!("expected no tool calls; calls: {names:?}"),
                ),
                AgentCheck::ToolNotCalled(Some(name)) => (
                    !names.contains(&name.as_str()),
                    format!("expected no call to {name}; calls: {names:?}"),
                ),
                AgentCheck::ToolArgsMatch { name, arguments } => (
                    calls
                        .iter()
                        .any(|(n, a)| n == name && json_subset(arguments, a)),
                    format!(
                        "expected {name} with arguments containing {arguments}; calls: {}",
                        calls
                            .iter()
                            .map(|(n, a)| format!("{n}({a})"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                AgentCheck::ToolSequence(sequence) => (
                    names.iter().map(|s| s.to_string()).collect::<Vec<_>>() == *sequence,
                    format!("expected the calls {sequence:?}; calls: {names:?}"),
                ),
                AgentCheck::MaxSteps(max) => (
                    trace.steps.len() <= *max,
                    format!("expected at most {max} steps; took {}", trace.steps.len()),
                ),
                AgentCheck::Answer(assertion) => {
                    let answer = trace.answer.as_deref().unwrap_or("");
                    let outcome = assertion.check(&CheckInput {
                        output: answer,
                        latency_ms: Some(trace.total_ms),
                        ..CheckInput::default()
                    });
                    let reason = match &trace.answer {
                        None => format!("no answer (stopped at {})", trace.stop.as_str()),
                        Some(_) => outcome.reason.unwrap_or_default(),
                    };
                    (outcome.passed && trace.answer.is_some(), reason)
                }
            };
            let counts_for = match check {
                c if c.is_selection() => "selection",
                AgentCheck::ToolArgsMatch { .. } => "arguments",
                AgentCheck::MaxSteps(_) => "steps",
                _ => "answer",
            };
            CheckOutcome {
                check: check.name(),
                passed,
                reason: (!passed).then_some(reason),
                counts_for: counts_for.into(),
            }
        })
        .collect()
}

/// Calls whose arguments validate against the tool's schema, out of all calls. A reply
/// cut off by the token cap is not a call (it may have been an answer): see [`cut_off`].
pub fn valid_calls(trace: &AgentTrace, specs: &[Value]) -> (usize, usize) {
    let mut valid = 0;
    let mut total = 0;
    for step in &trace.steps {
        match &step.action {
            StepAction::ToolCall {
                name, arguments, ..
            }
            | StepAction::Repeated { name, arguments } => {
                total += 1;
                let schema = specs
                    .iter()
                    .find(|s| s["function"]["name"] == name.as_str())
                    .map(|s| s["function"]["parameters"].clone());
                if let Some(schema) = schema
                    && jsonschema::is_valid(&schema, arguments)
                {
                    valid += 1;
                }
            }
            StepAction::Malformed { .. } | StepAction::Answer { .. } => {}
        }
    }
    (valid, total)
}

/// Replies that could not be used: generation hit the reply's token cap before the
/// grammar's structure closed.
pub fn cut_off(trace: &AgentTrace) -> usize {
    trace
        .steps
        .iter()
        .filter(|s| matches!(s.action, StepAction::Malformed { .. }))
        .count()
}

/// One model's figures over a set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentScores {
    pub model: String,
    pub cases: usize,
    pub passed: usize,
    pub valid_calls: usize,
    pub calls: usize,
    /// Replies cut off at the token cap.
    pub cut_off: usize,
    /// (passed, total) per figure.
    pub selection: (usize, usize),
    pub arguments: (usize, usize),
    pub answer: (usize, usize),
    pub steps: usize,
    pub total_ms: f64,
}

impl AgentScores {
    pub fn add(&mut self, trace: &AgentTrace, outcomes: &[CheckOutcome], specs: &[Value]) {
        self.cases += 1;
        if outcomes.iter().all(|o| o.passed) {
            self.passed += 1;
        }
        let (valid, calls) = valid_calls(trace, specs);
        self.valid_calls += valid;
        self.calls += calls;
        self.cut_off += cut_off(trace);
        for (kind, slot) in [
            ("selection", &mut self.selection),
            ("arguments", &mut self.arguments),
            ("answer", &mut self.answer),
        ] {
            let mine: Vec<&CheckOutcome> =
                outcomes.iter().filter(|o| o.counts_for == kind).collect();
            if !mine.is_empty() {
                slot.1 += 1;
                if mine.iter().all(|o| o.passed) {
                    slot.0 += 1;
                }
            }
        }
        self.steps += trace.steps.len();
        self.total_ms += trace.total_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{AgentStep, AgentStop, Convention};
    use serde_json::json;

    fn trace(calls: &[(&str, Value)], answer: Option<&str>) -> AgentTrace {
        let mut steps: Vec<AgentStep> = calls
            .iter()
            .enumerate()
            .map(|(index, (name, arguments))| AgentStep {
                index,
                reply: String::new(),
                action: StepAction::ToolCall {
                    name: name.to_string(),
                    arguments: arguments.clone(),
                    result: Some(json!({})),
                    error: None,
                    tool_ms: 1.0,
                },
                prompt_tokens: 0,
                cached_prompt_tokens: 0,
                generated_tokens: 10,
                generation_ms: 10.0,
                ttft_ms: 0.0,
            })
            .collect();
        if let Some(text) = answer {
            steps.push(AgentStep {
                index: steps.len(),
                reply: text.into(),
                action: StepAction::Answer { text: text.into() },
                prompt_tokens: 0,
                cached_prompt_tokens: 0,
                generated_tokens: 5,
                generation_ms: 5.0,
                ttft_ms: 0.0,
            });
        }
        AgentTrace {
            question: "q".into(),
            convention: Convention::Hermes,
            tools: vec![],
            steps,
            answer: answer.map(String::from),
            stop: if answer.is_some() {
                AgentStop::Answered
            } else {
                AgentStop::MaxSteps
            },
            error: None,
            total_ms: 100.0,
        }
    }

    fn checks(yaml: &str) -> Vec<AgentCheck> {
        let specs: Vec<AssertionSpec> = serde_norway::from_str(yaml).unwrap();
        specs.iter().map(|s| parse_check(s).unwrap()).collect()
    }

    #[test]
    fn trace_checks_pass_and_fail_with_reasons() {
        let t = trace(
            &[
                (
                    "detect_objects",
                    json!({"image": "Photos/Bus.jpg ", "classes": ["person"], "max_per_class": null}),
                ),
                ("calculator", json!({"expression": "3*2"})),
            ],
            Some("There are 6 people."),
        );
        let all = checks(
            r#"
- {type: tool-called, value: detect_objects}
- {type: tool-not-called, value: classify_digit}
- {type: tool-args-match, value: {name: detect_objects, arguments: {image: photos/bus.jpg, classes: [person]}}}
- {type: tool-sequence, value: [detect_objects, calculator]}
- {type: max-steps, value: 3}
- {type: icontains, value: "6 people"}
"#,
        );
        let outcomes = check_trace(&all, &t);
        assert!(outcomes.iter().all(|o| o.passed), "{outcomes:?}");
        let failing = checks(
            r#"
- {type: tool-not-called}
- {type: tool-args-match, value: {name: detect_objects, arguments: {min_confidence: 0.5}}}
- {type: tool-sequence, value: [calculator]}
- {type: max-steps, value: 2}
- {type: contains, value: seven}
"#,
        );
        let outcomes = check_trace(&failing, &t);
        assert!(outcomes.iter().all(|o| !o.passed), "{outcomes:?}");
        assert!(
            outcomes[0]
                .reason
                .as_deref()
                .unwrap()
                .contains("expected no tool calls")
        );
        assert_eq!(
            outcomes
                .iter()
                .map(|o| o.counts_for.as_str())
                .collect::<Vec<_>>(),
            ["selection", "arguments", "selection", "steps", "answer"]
        );
        // No answer fails every answer check, whatever it asserts.
        let unanswered = trace(&[], None);
        let outcome = &check_trace(&checks("[{type: not-contains, value: x}]"), &unanswered)[0];
        assert!(!outcome.passed && outcome.reason.as_deref().unwrap().contains("no answer"));
    }

    #[test]
    fn scores_count_valid_calls_and_figures() {
        let specs = vec![
            json!({"type": "function", "function": {"name": "calculator", "parameters": {
            "type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"], "additionalProperties": false}}}),
        ];
        let good = trace(&[("calculator", json!({"expression": "1+1"}))], Some("2"));
        let bad = trace(&[("calculator", json!({"expr": 1}))], None);
        assert_eq!(valid_calls(&good, &specs), (1, 1));
        assert_eq!(valid_calls(&bad, &specs), (0, 1));
        let mut cut = good.clone();
        cut.steps[0].action = StepAction::Malformed {
            error: "cut short".into(),
        };
        assert_eq!((valid_calls(&cut, &specs), cut_off(&cut)), ((0, 0), 1));
        let list = checks("[{type: tool-called, value: calculator}, {type: equals, value: '2'}]");
        let mut scores = AgentScores::default();
        scores.add(&good, &check_trace(&list, &good), &specs);
        scores.add(&bad, &check_trace(&list, &bad), &specs);
        assert_eq!((scores.cases, scores.passed), (2, 1));
        assert_eq!((scores.valid_calls, scores.calls), (1, 2));
        assert_eq!(scores.selection, (2, 2));
        assert_eq!(scores.answer, (1, 2));
        assert_eq!(scores.arguments, (0, 0));
    }

    #[test]
    fn unknown_assertions_name_the_agent_types() {
        let err = parse_check(&serde_norway::from_str("{type: tool-caled, value: x}").unwrap())
            .unwrap_err();
        assert!(matches!(err, AgentCheckError::Answer { .. }));
        assert!(err.to_string().contains("tool-called"), "{err}");
        let err = parse_check(&serde_norway::from_str("{type: tool-sequence, value: []}").unwrap())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "tool-sequence expects a list of tool names"
        );
    }
}
