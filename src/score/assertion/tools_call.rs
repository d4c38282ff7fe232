//! `is-valid-openai-tools-call`, as promptfoo 0.118 checks it: the output must be OpenAI
//! `tool_calls` (or an assistant message holding them), each call naming a function the
//! provider offered, with arguments that parse and that the function's `parameters`
//! schema accepts. Plain text never passes, except promptfoo's MCP result lines.

use super::*;

impl Assertion {
    pub(super) fn check_tools_call(&self, input: &CheckInput) -> AssertionOutcome {
        let verdict = tools_call_verdict(self.dialect, input);
        let passed = verdict.is_ok() != self.negated;
        let reason = (!passed).then(|| match verdict {
            Err(why) => why,
            Ok(()) => "expected output not to be valid OpenAI tool calls; they were".into(),
        });
        self.outcome(passed, if passed { 1.0 } else { 0.0 }, reason)
    }
}

/// `JSON.stringify` of a value, as promptfoo quotes it in its reasons.
fn stringify(value: &Value) -> String {
    value.to_string()
}

fn tools_call_verdict(dialect: Dialect, input: &CheckInput) -> Result<(), String> {
    // A transform's result, or a reply the model gave to offered tools, is structured;
    // any other output is a string, as promptfoo's providers return text.
    let structured = match (input.value, input.tools) {
        (Some(value), _) => Some(value.clone()),
        (None, Some(_)) => serde_json::from_str::<Value>(input.output).ok(),
        (None, None) => None,
    };
    let text = match &structured {
        Some(Value::String(s)) => s.clone(),
        Some(other) => stringify(other),
        None => input.output.to_string(),
    };
    if text.contains("MCP Tool Result") || text.contains("MCP Tool Error") {
        return mcp_verdict(&text);
    }
    let mut calls = structured.unwrap_or_else(|| Value::String(input.output.to_string()));
    if let Some(inner) = calls.get("tool_calls").filter(|_| calls.is_object()) {
        calls = inner.clone();
    }
    let looks_valid = calls.as_array().is_some_and(|list| {
        list.first().is_some_and(|first| {
            first
                .pointer("/function/name")
                .is_some_and(Value::is_string)
                && first
                    .pointer("/function/arguments")
                    .is_some_and(Value::is_string)
        })
    });
    let list = match calls.as_array() {
        Some(list) if looks_valid => list,
        _ => {
            return Err(format!(
                "OpenAI did not return a valid-looking tools response: {}",
                stringify(&calls)
            ));
        }
    };
    let Some(tools) = input.tools else {
        return Err(
            "Tools are expected to be an array of objects with a function property. Got: undefined (the provider offered no `tools`)"
                .into(),
        );
    };
    let functions: Vec<&Value> = tools
        .iter()
        .filter(|tool| tool.get("type").and_then(Value::as_str) == Some("function"))
        .filter_map(|tool| tool.get("function"))
        .collect();
    for call in list {
        let mut function = call.get("function").cloned().unwrap_or(Value::Null);
        if let Some(inner) = function
            .get("function_call")
            .filter(|_| function.is_object())
        {
            function = inner.clone();
        }
        let (Some(name), Some(arguments)) = (
            function.get("name").and_then(Value::as_str),
            function.get("arguments").and_then(Value::as_str),
        ) else {
            return Err(format!(
                "OpenAI did not return a valid-looking function call: {}",
                stringify(&function)
            ));
        };
        let arguments = dialect.parse_json(arguments).map_err(|e| e.to_string())?;
        // promptfoo looks up the first function of that name and takes its
        // `parameters`; one without them counts as missing.
        let schema = functions
            .iter()
            .find(|f| f.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|f| f.get("parameters"))
            .ok_or_else(|| format!("Called \"{name}\", but there is no function with that name"))?;
        let mut options = jsonschema::options();
        if let Some(draft) = dialect.default_schema_draft()
            && schema.get("$schema").is_none()
        {
            options = options.with_draft(draft);
        }
        let validator = options
            .build(schema)
            .map_err(|e| format!("the schema of \"{name}\" does not compile: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(&arguments)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        if !errors.is_empty() {
            return Err(format!(
                "Call to \"{name}\" does not match schema: {}",
                errors.join("; ")
            ));
        }
    }
    Ok(())
}

/// promptfoo's check of an MCP tool's result line in the output: any error line fails,
/// naming the tool and message of `MCP Tool Error (NAME): MESSAGE` when it reads so.
fn mcp_verdict(text: &str) -> Result<(), String> {
    if !text.contains("MCP Tool Error") {
        return Ok(());
    }
    let parsed = text
        .match_indices("MCP Tool Error (")
        .find_map(|(at, opening)| {
            let (name, after) = text[at + opening.len()..].split_once(')')?;
            let message = after.strip_prefix(": ")?.lines().next()?;
            (!name.is_empty() && !message.is_empty()).then_some((name, message))
        });
    let (name, message) = parsed.unwrap_or(("unknown", "unknown error"));
    Err(format!("MCP tool call failed for {name}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(output: &'a str, tools: Option<&'a [Value]>) -> CheckInput<'a> {
        CheckInput {
            output,
            latency_ms: None,
            value: None,
            context: None,
            finish: None,
            cost: None,
            logprobs: None,
            tools,
        }
    }

    fn weather() -> Vec<Value> {
        vec![json!({"type": "function", "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}
        }})]
    }

    #[test]
    fn calls_are_checked_against_the_offered_schemas() {
        let tools = weather();
        let good = r#"[{"id":"c","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]"#;
        assert_eq!(
            tools_call_verdict(Dialect::Promptfoo, &input(good, Some(&tools))),
            Ok(())
        );
        // The whole message, when the model also wrote text.
        let message =
            format!(r#"{{"role":"assistant","content":"Let me look.","tool_calls":{good}}}"#);
        assert_eq!(
            tools_call_verdict(Dialect::Promptfoo, &input(&message, Some(&tools))),
            Ok(())
        );
        let missing = r#"[{"type":"function","function":{"name":"get_weather","arguments":"{}"}}]"#;
        let why =
            tools_call_verdict(Dialect::Promptfoo, &input(missing, Some(&tools))).unwrap_err();
        assert!(
            why.starts_with("Call to \"get_weather\" does not match schema"),
            "{why}"
        );
        let unknown = r#"[{"type":"function","function":{"name":"get_time","arguments":"{}"}}]"#;
        assert_eq!(
            tools_call_verdict(Dialect::Promptfoo, &input(unknown, Some(&tools))),
            Err("Called \"get_time\", but there is no function with that name".into())
        );
        let broken =
            r#"[{"type":"function","function":{"name":"get_weather","arguments":"{city"}}]"#;
        assert!(tools_call_verdict(Dialect::Promptfoo, &input(broken, Some(&tools))).is_err());
    }

    #[test]
    fn text_is_never_a_tools_response() {
        // The echo provider's output is a string even when it reads as calls.
        let calls = r#"[{"type":"function","function":{"name":"get_weather","arguments":"{}"}}]"#;
        let why = tools_call_verdict(Dialect::Promptfoo, &input(calls, None)).unwrap_err();
        assert_eq!(
            why,
            format!(
                "OpenAI did not return a valid-looking tools response: {}",
                json!(calls)
            )
        );
        let tools = weather();
        let why = tools_call_verdict(Dialect::Promptfoo, &input("It is sunny.", Some(&tools)));
        assert_eq!(
            why,
            Err("OpenAI did not return a valid-looking tools response: \"It is sunny.\"".into())
        );
        assert!(tools_call_verdict(Dialect::Promptfoo, &input("[]", Some(&tools))).is_err());
    }

    #[test]
    fn mcp_lines_decide_as_in_promptfoo() {
        assert_eq!(
            tools_call_verdict(
                Dialect::Promptfoo,
                &input("MCP Tool Result (search): 3 hits", None)
            ),
            Ok(())
        );
        assert_eq!(
            tools_call_verdict(
                Dialect::Promptfoo,
                &input("MCP Tool Error (search): timed out\nmore", None)
            ),
            Err("MCP tool call failed for search: timed out".into())
        );
    }
}
