//! Tool calling for `serve`: a request's `tools` go into the prompt the way the model's own
//! chat template lists them (Hermes/Qwen `<tool_call>` templates) or as instructions in the
//! system message (any other chat model), the reply is generated under a grammar built
//! from the tools' schemas, so a call always parses and matches one of them, and it comes
//! back as OpenAI `tool_calls`. The same conventions the agent uses.

use serde_json::{Value, json};

use crate::agent::convention::{self, Reply};
use crate::engine::EngineError;
use crate::engine::chat_template::ChatTemplate;
use crate::template::TemplateFault;
use crate::trace::Convention;

/// The raw prompt and grammar for a request with tools.
pub struct ToolPrompt {
    pub text: String,
    pub grammar: String,
    pub convention: Convention,
}

/// A message's text content: a string, text parts joined, or nothing.
pub fn content_text(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// A call's arguments as an object (clients send them as a JSON string).
fn arguments(call: &Value) -> Value {
    let raw = &call["function"]["arguments"];
    match raw {
        Value::String(text) => serde_json::from_str(text).unwrap_or_else(|_| json!({})),
        Value::Object(_) => raw.clone(),
        _ => json!({}),
    }
}

/// A request's `tools` or `tool_choice` that cannot be served, or a prompt that could not
/// be built from them; the client is told in these words.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ToolRequestError {
    #[error(
        "tool_choice: expected \"auto\", \"none\", \"required\" or {{\"type\": \"function\", \"function\": {{\"name\": …}}}}, got \"{0}\""
    )]
    UnknownChoice(String),
    #[error(
        "tool_choice: expected {{\"type\": \"function\", \"function\": {{\"name\": …}}}}, got {0}"
    )]
    NotAFunction(Value),
    #[error("tool_choice names `{0}`, which is not one of the request's tools")]
    NotATool(String),
    #[error("tools[{0}]: expected {{type: function, function: {{name, parameters}}}}")]
    MalformedTool(usize),
    /// The chat template failed on the conversation.
    #[error(transparent)]
    Template(#[from] TemplateFault),
    #[error(transparent)]
    Grammar(#[from] EngineError),
}

/// OpenAI's `tool_choice`: what the reply may be. Every tool stays listed in the prompt;
/// the grammar decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// A call or an answer (`"auto"`, the default).
    Auto,
    /// An answer, no call (`"none"`).
    None,
    /// A call to any tool (`"required"`).
    Required,
    /// A call to this tool (`{"type": "function", "function": {"name": …}}`).
    Function(String),
}

impl ToolChoice {
    /// Reads the request's `tool_choice`; a function must be one of `tools`.
    pub fn parse(value: Option<&Value>, tools: &[Value]) -> Result<ToolChoice, ToolRequestError> {
        let choice = match value {
            None | Some(Value::Null) => ToolChoice::Auto,
            Some(Value::String(text)) => match text.as_str() {
                "auto" => ToolChoice::Auto,
                "none" => ToolChoice::None,
                "required" => ToolChoice::Required,
                other => return Err(ToolRequestError::UnknownChoice(other.to_string())),
            },
            Some(object) => match object["function"]["name"].as_str() {
                Some(name) => ToolChoice::Function(name.to_string()),
                None => return Err(ToolRequestError::NotAFunction(object.clone())),
            },
        };
        if let ToolChoice::Function(name) = &choice
            && !tools.iter().any(|t| t["function"]["name"] == name.as_str())
        {
            return Err(ToolRequestError::NotATool(name.clone()));
        }
        Ok(choice)
    }
}

pub fn tool_prompt(
    template: &ChatTemplate,
    messages: &[Value],
    tools: &[Value],
    choice: &ToolChoice,
) -> Result<ToolPrompt, ToolRequestError> {
    for (i, tool) in tools.iter().enumerate() {
        if tool["function"]["name"].as_str().is_none() {
            return Err(ToolRequestError::MalformedTool(i));
        }
    }
    let convention = Convention::for_template(template);
    let text = match convention {
        // A local template is never Native (that is for servers); it reads like Hermes.
        Convention::Hermes | Convention::Native => {
            let messages: Vec<Value> = messages
                .iter()
                .map(|m| {
                    let mut m = m.clone();
                    if let Some(Value::Array(calls)) = m.get("tool_calls").cloned() {
                        let calls: Vec<Value> = calls
                            .iter()
                            .map(|c| json!({"name": c["function"]["name"], "arguments": arguments(c)}))
                            .collect();
                        m["tool_calls"] = Value::Array(calls);
                    }
                    m["content"] = json!(content_text(&m));
                    m
                })
                .collect();
            template.render_with_tools(&messages, tools, true)?
        }
        Convention::Json => {
            let mut out: Vec<Value> = Vec::new();
            let instructions = convention::json_instructions(tools);
            for m in messages {
                let role = m["role"].as_str().unwrap_or("user");
                let text = content_text(m);
                let converted = match role {
                    "assistant" => match m.get("tool_calls").and_then(Value::as_array) {
                        Some(calls) if !calls.is_empty() => {
                            let call = &calls[0];
                            json!({"role": "assistant", "content": json!({"tool": call["function"]["name"], "arguments": arguments(call)}).to_string()})
                        }
                        _ => {
                            json!({"role": "assistant", "content": json!({"answer": text}).to_string()})
                        }
                    },
                    "tool" => json!({"role": "user", "content": format!("Tool result: {text}")}),
                    other => json!({"role": other, "content": text}),
                };
                out.push(converted);
            }
            match out.first_mut() {
                Some(first) if first["role"] == "system" => {
                    let merged = format!("{}\n\n{instructions}", content_text(first));
                    first["content"] = json!(merged);
                }
                _ => out.insert(0, json!({"role": "system", "content": instructions})),
            }
            template.render_with_tools(&out, &[], true)?
        }
    };
    let grammar = match choice {
        ToolChoice::Auto => convention::grammar(convention, tools),
        ToolChoice::None => convention::answer_grammar(convention),
        ToolChoice::Required => convention::call_grammar(convention, tools),
        ToolChoice::Function(name) => {
            let named: Vec<Value> = tools
                .iter()
                .filter(|t| t["function"]["name"] == name.as_str())
                .cloned()
                .collect();
            convention::call_grammar(convention, &named)
        }
    }?;
    Ok(ToolPrompt {
        text,
        grammar,
        convention,
    })
}

/// The assistant message for a reply, and its finish reason.
pub fn reply_message(convention: Convention, text: &str, call_id: &str) -> (Value, &'static str) {
    match convention::parse_reply(convention, text) {
        Reply::Call { name, arguments } => (
            json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": call_id, "type": "function",
                "function": {"name": name, "arguments": arguments.to_string()}
            }]}),
            "tool_calls",
        ),
        Reply::Answer(answer) => (json!({"role": "assistant", "content": answer}), "stop"),
        Reply::Malformed(_) => (json!({"role": "assistant", "content": text}), "length"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERMES: &str = "{%- if tools %}<tools>{% for t in tools %}{{ t | tojson }}{% endfor %}</tools>{% endif %}{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{{ c | tojson }}</tool_call>{% endfor %}{% endif %}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";

    fn weather() -> Vec<Value> {
        vec![
            json!({"type": "function", "function": {"name": "weather", "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}),
        ]
    }

    #[test]
    fn hermes_templates_list_the_tools_and_replay_calls() {
        let template = ChatTemplate::new(HERMES, "", "");
        let messages = vec![
            json!({"role": "user", "content": "Weather in Oslo?"}),
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "weather", "arguments": "{\"city\": \"Oslo\"}"}}]}),
            json!({"role": "tool", "tool_call_id": "c1", "content": "rain"}),
        ];
        let prompt = tool_prompt(&template, &messages, &weather(), &ToolChoice::Auto).unwrap();
        assert_eq!(prompt.convention, Convention::Hermes);
        assert!(prompt.text.contains("<tools>"), "{}", prompt.text);
        assert!(
            prompt
                .text
                .contains(r#"{"name": "weather", "arguments": {"city": "Oslo"}}"#),
            "{}",
            prompt.text
        );
        assert!(prompt.text.contains("<|tool|>rain"));

        let (message, finish) = reply_message(
            Convention::Hermes,
            "<tool_call>\n{\"name\": \"weather\", \"arguments\": {\"city\": \"Bergen\"}}\n</tool_call>",
            "call_1",
        );
        assert_eq!(finish, "tool_calls");
        assert_eq!(
            message["tool_calls"][0]["function"]["arguments"],
            r#"{"city":"Bergen"}"#
        );
        let (message, finish) = reply_message(Convention::Hermes, "It rains.", "call_2");
        assert_eq!(
            (message["content"].as_str(), finish),
            (Some("It rains."), "stop")
        );
    }

    #[test]
    fn other_templates_get_json_instructions() {
        let template = ChatTemplate::new(
            "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}",
            "",
            "",
        );
        let messages =
            vec![json!({"role": "user", "content": [{"type": "text", "text": "Oslo?"}]})];
        let prompt = tool_prompt(&template, &messages, &weather(), &ToolChoice::Auto).unwrap();
        assert_eq!(prompt.convention, Convention::Json);
        assert!(
            prompt.text.starts_with("<|system|>You can call tools."),
            "{}",
            prompt.text
        );
        assert!(prompt.text.contains("<|user|>Oslo?"));
        let (message, _) = reply_message(
            Convention::Json,
            r#"{"tool": "weather", "arguments": {"city": "Oslo"}}"#,
            "c",
        );
        assert_eq!(message["tool_calls"][0]["function"]["name"], "weather");
        let err = tool_prompt(
            &template,
            &messages,
            &[json!({"type": "function"})],
            &ToolChoice::Auto,
        )
        .err();
        assert!(err.unwrap().to_string().contains("tools[0]"));
    }

    #[test]
    fn tool_choice_is_read_and_checked_against_the_tools() {
        let tools = weather();
        let parse = |v: Value| ToolChoice::parse(Some(&v), &tools);
        assert_eq!(ToolChoice::parse(None, &tools), Ok(ToolChoice::Auto));
        assert_eq!(parse(json!("none")), Ok(ToolChoice::None));
        assert_eq!(parse(json!("required")), Ok(ToolChoice::Required));
        assert_eq!(
            parse(json!({"type": "function", "function": {"name": "weather"}})),
            Ok(ToolChoice::Function("weather".into()))
        );
        assert!(parse(json!({"type": "function", "function": {"name": "news"}})).is_err());
        assert!(parse(json!("sometimes")).is_err());
        assert!(parse(json!({"type": "function"})).is_err());

        // A forced call's grammar has no answer branch.
        let template = ChatTemplate::new(HERMES, "", "");
        let messages = vec![json!({"role": "user", "content": "Hi"})];
        let auto = tool_prompt(&template, &messages, &tools, &ToolChoice::Auto).unwrap();
        let forced = tool_prompt(&template, &messages, &tools, &ToolChoice::Required).unwrap();
        assert!(auto.grammar.contains("agent-answer"), "{}", auto.grammar);
        assert!(
            !forced.grammar.contains("agent-answer"),
            "{}",
            forced.grammar
        );
    }
}
