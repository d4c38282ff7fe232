//! How tool calls are written, per model family, and the grammar that forces every call to
//! parse and match a tool's schema:
//!
//! - **Hermes/Qwen** (chat templates that list `tools` and use `<tool_call>` tags, like
//!   Qwen2.5's): the template renders the tools and the tool messages; a call is
//!   `<tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>` (or that JSON bare, as
//!   small Qwen models write it), anything else is the answer.
//! - **JSON** (any other chat model): the tools are described in the system message and every
//!   reply is one JSON object, `{"tool": name, "arguments": {…}}` or `{"answer": "…"}`;
//!   tool results come back as user messages.
//! - **Native** (a remote model behind an OpenAI-compatible server): the server renders the
//!   tools with its own template and returns OpenAI `tool_calls`; the engine writes a call
//!   into the reply in the Hermes form, and results go back as `tool` messages with the
//!   call's id. The server decides how calls are constrained.

use serde_json::{Value, json};

use crate::engine::EngineError;
use crate::engine::chat_template::ChatTemplate;
use crate::engine::llama::schema_to_grammar;
use crate::trace::Convention;

impl Convention {
    pub fn for_template(template: &ChatTemplate) -> Convention {
        if template.has_tool_calls() {
            Convention::Hermes
        } else {
            Convention::Json
        }
    }
}

/// What one model reply means.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Call {
        name: String,
        arguments: Value,
    },
    Answer(String),
    /// Could not be read (only when generation was cut short: the grammar allows nothing
    /// else). The text says what was wrong, for the model's next turn.
    Malformed(String),
}

/// One call object per tool: `{"name": const, "arguments": schema}` (Hermes) or
/// `{"tool": const, "arguments": schema}` (JSON).
fn call_schemas(tools: &[Value], name_key: &str) -> Vec<Value> {
    tools
        .iter()
        .map(|spec| {
            let function = &spec["function"];
            json!({
                "type": "object",
                "properties": {
                    name_key: {"const": function["name"]},
                    "arguments": function["parameters"],
                },
                "required": [name_key, "arguments"],
                "additionalProperties": false
            })
        })
        .collect()
}

/// The grammar of a reply that must answer (no more calls): plain text (Hermes) or
/// `{"answer": "…"}` (JSON).
pub fn answer_grammar(convention: Convention) -> Result<String, EngineError> {
    match convention {
        Convention::Native => Err(native_has_no_grammar()),
        Convention::Hermes => Ok("root ::= [^<{`] [^\\x00]*\n".into()),
        Convention::Json => schema_to_grammar(&json!({
            "type": "object",
            "properties": {"answer": {"type": "string"}},
            "required": ["answer"],
            "additionalProperties": false
        })),
    }
}

/// The grammar a reply is generated under: a call to one of `tools`, or an answer.
pub fn grammar(convention: Convention, tools: &[Value]) -> Result<String, EngineError> {
    grammar_of(convention, tools, true)
}

/// The grammar of a reply that must call one of `tools` (OpenAI `tool_choice: "required"`,
/// or a named function with `tools` narrowed to it).
pub fn call_grammar(convention: Convention, tools: &[Value]) -> Result<String, EngineError> {
    grammar_of(convention, tools, false)
}

fn grammar_of(
    convention: Convention,
    tools: &[Value],
    may_answer: bool,
) -> Result<String, EngineError> {
    match convention {
        Convention::Native => Err(native_has_no_grammar()),
        Convention::Hermes => {
            let call = schema_to_grammar(&json!({"oneOf": call_schemas(tools, "name")}))?;
            // The schema's grammar becomes one rule of ours; its other rules keep their
            // names, which never start with `agent-`.
            let call = call.replacen("root ::=", "agent-call-json ::=", 1);
            // Small Qwen models often write the call's JSON without the tags, so both
            // forms are calls; an answer therefore starts with neither `<` nor `{` (nor a code fence).
            let root = if may_answer {
                "root ::= agent-call | agent-answer\nagent-answer ::= [^<{`] [^\\x00]*\n"
            } else {
                "root ::= agent-call\n"
            };
            Ok(format!(
                "{root}agent-call ::= \"<tool_call>\\n\" agent-call-json \"\\n</tool_call>\" | agent-call-json\n{call}"
            ))
        }
        Convention::Json => {
            let mut options = call_schemas(tools, "tool");
            if may_answer {
                options.push(json!({
                    "type": "object",
                    "properties": {"answer": {"type": "string"}},
                    "required": ["answer"],
                    "additionalProperties": false
                }));
            }
            schema_to_grammar(&json!({"oneOf": options}))
        }
    }
}

fn native_has_no_grammar() -> EngineError {
    EngineError::Generation(
        "a server that calls tools itself applies its own grammar; none is sent".into(),
    )
}

/// The system message the JSON convention adds: the tools and the reply format.
pub fn json_instructions(tools: &[Value]) -> String {
    let mut text = String::from(
        "You can call tools. Reply with exactly one JSON object: either {\"tool\": NAME, \"arguments\": {...}} to call a tool, or {\"answer\": \"...\"} when you can answer. Tool results come back in the next message.\n\nTools:\n",
    );
    for spec in tools {
        let f = &spec["function"];
        text.push_str(&format!(
            "- {}: {} Arguments: {}\n",
            f["name"].as_str().unwrap_or_default(),
            f["description"].as_str().unwrap_or_default(),
            f["parameters"]
        ));
    }
    text
}

pub fn parse_reply(convention: Convention, text: &str) -> Reply {
    let trimmed = text.trim();
    match convention {
        Convention::Hermes | Convention::Native => {
            let body = match trimmed.strip_prefix("<tool_call>") {
                Some(body) => match body.trim_end().strip_suffix("</tool_call>") {
                    Some(body) => body,
                    None => {
                        return Reply::Malformed(
                            "the tool call was cut off before </tool_call>".into(),
                        );
                    }
                },
                None if trimmed.starts_with('{') => trimmed,
                None => return Reply::Answer(trimmed.to_string()),
            };
            match serde_json::from_str::<Value>(body.trim()) {
                Ok(call) => match (
                    call.get("name").and_then(Value::as_str),
                    call.get("arguments"),
                ) {
                    (Some(name), Some(arguments)) => Reply::Call {
                        name: name.to_string(),
                        arguments: arguments.clone(),
                    },
                    _ => Reply::Malformed("a tool call needs `name` and `arguments`".into()),
                },
                Err(e) => Reply::Malformed(format!("the tool call is not JSON: {e}")),
            }
        }
        Convention::Json => match serde_json::from_str::<Value>(trimmed) {
            Ok(reply) => {
                if let Some(answer) = reply.get("answer").and_then(Value::as_str) {
                    return Reply::Answer(answer.to_string());
                }
                match (
                    reply.get("tool").and_then(Value::as_str),
                    reply.get("arguments"),
                ) {
                    (Some(name), Some(arguments)) => Reply::Call {
                        name: name.to_string(),
                        arguments: arguments.clone(),
                    },
                    _ => Reply::Malformed(
                        "expected {\"tool\": …, \"arguments\": …} or {\"answer\": …}".into(),
                    ),
                }
            }
            Err(e) => Reply::Malformed(format!("the reply is not JSON (cut short?): {e}")),
        },
    }
}

/// The assistant message recording a call, and the message carrying its result back.
/// `id` ties the two together for servers (the Native convention).
pub fn call_messages(
    convention: Convention,
    raw: &str,
    id: &str,
    name: &str,
    arguments: &Value,
    result: &Value,
) -> [Value; 2] {
    match convention {
        Convention::Native => [
            json!({
                "role": "assistant",
                "content": null,
                "tool_calls": [{"id": id, "type": "function",
                                "function": {"name": name, "arguments": arguments.to_string()}}]
            }),
            json!({"role": "tool", "tool_call_id": id, "content": result.to_string()}),
        ],
        Convention::Hermes => [
            json!({
                "role": "assistant",
                "content": "",
                "tool_calls": [{"type": "function", "function": {"name": name, "arguments": arguments}}]
            }),
            json!({"role": "tool", "name": name, "content": result.to_string()}),
        ],
        Convention::Json => [
            json!({"role": "assistant", "content": raw.trim()}),
            json!({"role": "user", "content": format!("Result of {name}: {result}")}),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Vec<Value> {
        vec![json!({"type": "function", "function": {
            "name": "calculator",
            "description": "adds",
            "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"], "additionalProperties": false}
        }})]
    }

    #[test]
    fn replies_parse_in_both_conventions() {
        let call = "<tool_call>\n{\"name\": \"calculator\", \"arguments\": {\"expression\": \"1+1\"}}\n</tool_call>";
        assert_eq!(
            parse_reply(Convention::Hermes, call),
            Reply::Call {
                name: "calculator".into(),
                arguments: json!({"expression": "1+1"})
            }
        );
        assert_eq!(
            parse_reply(
                Convention::Hermes,
                r#"{"name": "calculator", "arguments": {"expression": "1+1"}}"#
            ),
            parse_reply(Convention::Hermes, call)
        );
        assert_eq!(
            parse_reply(Convention::Hermes, " It is 2.\n"),
            Reply::Answer("It is 2.".into())
        );
        assert!(matches!(
            parse_reply(Convention::Hermes, "<tool_call>\n{\"name\": \"calc"),
            Reply::Malformed(_)
        ));
        assert_eq!(
            parse_reply(Convention::Json, r#"{"answer": "2"}"#),
            Reply::Answer("2".into())
        );
        assert!(matches!(
            parse_reply(
                Convention::Json,
                r#"{"tool": "calculator", "arguments": {}}"#
            ),
            Reply::Call { .. }
        ));
        assert!(matches!(
            parse_reply(Convention::Json, "{\"tool"),
            Reply::Malformed(_)
        ));
    }

    #[test]
    fn grammars_are_accepted_by_llama_cpp_converter() {
        let hermes = grammar(Convention::Hermes, &tools()).unwrap();
        assert!(
            hermes.starts_with("root ::= agent-call | agent-answer"),
            "{hermes}"
        );
        assert!(hermes.contains("agent-call-json ::="), "{hermes}");
        assert_eq!(hermes.matches("root ::=").count(), 1, "{hermes}");
        let plain = grammar(Convention::Json, &tools()).unwrap();
        assert!(plain.contains("answer"), "{plain}");
    }
}
