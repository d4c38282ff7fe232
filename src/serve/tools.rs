//! Tool calling for `serve`: a request's `tools` go into the prompt the way the model's own
//! chat template lists them (Hermes/Qwen `<tool_call>` templates) or as instructions in the
//! system message (any other chat model), the reply is generated under a grammar built
//! from the tools' schemas, so a call always parses and matches one of them, and it comes
//! back as OpenAI `tool_calls`. The same conventions the agent uses.

use serde_json::{Value, json};

use crate::agent::convention::{self, Convention, Reply};
use crate::engine::chat_template::ChatTemplate;

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

/// `must_answer` (`tool_choice: "none"`): the tools stay listed, but the reply must be an
/// answer, not another call.
pub fn tool_prompt(
    template: &ChatTemplate,
    messages: &[Value],
    tools: &[Value],
    must_answer: bool,
) -> Result<ToolPrompt, String> {
    for (i, tool) in tools.iter().enumerate() {
        if tool["function"]["name"].as_str().is_none() {
            return Err(format!(
                "tools[{i}]: expected {{type: function, function: {{name, parameters}}}}"
            ));
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
            template
                .render_with_tools(&messages, tools, true)
                .map_err(|f| f.to_string())?
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
            template
                .render_with_tools(&out, &[], true)
                .map_err(|f| f.to_string())?
        }
    };
    let grammar = if must_answer {
        convention::answer_grammar(convention)
    } else {
        convention::grammar(convention, tools)
    }
    .map_err(|e| e.to_string())?;
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
        let prompt = tool_prompt(&template, &messages, &weather(), false).unwrap();
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
        let prompt = tool_prompt(&template, &messages, &weather(), false).unwrap();
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
        let err = tool_prompt(&template, &messages, &[json!({"type": "function"})], false).err();
        assert!(err.unwrap().contains("tools[0]"));
    }
}
