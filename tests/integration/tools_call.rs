//! A promptfoo config whose OpenAI provider offers `tools`, run against a server on
//! loopback that answers as an OpenAI model calling tools does: the tools (rendered with
//! each test's variables) and `tool_choice` reach the server, the calls come back as the
//! cell's output in OpenAI's `tool_calls` form, and `is-valid-openai-tools-call` checks
//! them against the offered schemas as promptfoo 0.118 does.

use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::common::{TempProject, serve_on_loopback, text};

/// Every request body the server received.
type Seen = Arc<Mutex<Vec<Value>>>;

/// The assistant message for a question: a call to `get_weather` for "weather in CITY",
/// a call to a tool nobody offered for "time", text beside a call for "both", arguments
/// the schema refuses for "bad", else plain text.
fn message_for(question: &str) -> Value {
    let call = |name: &str, arguments: Value| {
        json!({"id": format!("call_{name}"), "type": "function",
               "function": {"name": name, "arguments": arguments.to_string()}})
    };
    if let Some(city) = question.split("weather in ").nth(1) {
        let city = city.trim_end_matches('?');
        json!({"role": "assistant", "content": null,
               "tool_calls": [call("get_weather", json!({"city": city}))]})
    } else if question.contains("time") {
        json!({"role": "assistant", "content": null, "tool_calls": [call("get_time", json!({}))]})
    } else if question.contains("both") {
        json!({"role": "assistant", "content": "Let me look.",
               "tool_calls": [call("get_weather", json!({"city": "Oslo"}))]})
    } else if question.contains("bad") {
        json!({"role": "assistant", "content": null,
               "tool_calls": [call("get_weather", json!({"town": 1}))]})
    } else {
        json!({"role": "assistant", "content": "Just text."})
    }
}

async fn completions(State(seen): State<Seen>, Json(body): Json<Value>) -> Response {
    seen.lock().unwrap().push(body.clone());
    let question = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string();
    let message = message_for(&question);
    let finish = if message.get("tool_calls").is_some() {
        "tool_calls"
    } else {
        "stop"
    };
    if body["stream"] != true {
        return Json(json!({
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 5}
        }))
        .into_response();
    }
    // Streamed: the calls by index, as OpenAI sends them.
    let mut delta = json!({"role": "assistant"});
    if let Some(content) = message["content"].as_str() {
        delta["content"] = json!(content);
    }
    if let Some(calls) = message["tool_calls"].as_array() {
        let indexed: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut c = c.clone();
                c["index"] = json!(i);
                c
            })
            .collect();
        delta["tool_calls"] = json!(indexed);
    }
    let events = [
        json!({"choices": [{"index": 0, "delta": delta, "finish_reason": null}]}).to_string(),
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}],
               "usage": {"prompt_tokens": 9, "completion_tokens": 5}})
        .to_string(),
        "[DONE]".to_string(),
    ];
    let chunks: Vec<Result<Bytes, std::io::Error>> = events
        .into_iter()
        .map(|e| Ok(Bytes::from(format!("data: {e}\n\n"))))
        .collect();
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap()
}

fn start_server() -> (u16, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(seen.clone());
    let port = serve_on_loopback(app);
    (port, seen)
}

#[test]
fn offered_tools_reach_the_server_and_its_calls_are_checked_against_them() {
    let (port, seen) = start_server();
    let project = TempProject::new();
    project.write("models/models.yaml", "models: {}\n");
    let config = project.write(
        "promptfooconfig.yaml",
        &format!(
            r#"description: tool calls
prompts:
  - "What is the {{{{ question }}}}?"
providers:
  - id: openai:chat:fake-model
    config:
      apiBaseUrl: http://127.0.0.1:{port}/v1
      temperature: 0
      tool_choice: auto
      tools:
        - type: function
          function:
            name: get_weather
            description: "Weather, asked as: {{{{ question }}}}"
            parameters:
              type: object
              properties:
                city: {{type: string}}
              required: [city]
tests:
  - vars: {{question: weather in Paris}}
    assert:
      - type: is-valid-openai-tools-call
  - vars: {{question: time now}}
    assert:
      - type: is-valid-openai-tools-call
  - vars: {{question: plain chat}}
    assert:
      - type: is-valid-openai-tools-call
  - vars: {{question: both at once}}
    assert:
      - type: is-valid-openai-tools-call
  - vars: {{question: bad arguments}}
    assert:
      - type: is-valid-openai-tools-call
"#
        ),
    );
    let report = project.root().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_promptlab"))
        .args(["eval", &config.display().to_string(), "-o"])
        .arg(&report)
        .current_dir(project.root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let cells = report["cells"].as_array().unwrap();
    let verdict = |case: u64| {
        let cell = cells.iter().find(|c| c["case"] == case).unwrap();
        (
            cell["passed"].as_bool().unwrap(),
            cell["assertions"][0]["reason"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    };
    assert_eq!(verdict(0), (true, String::new()));
    assert_eq!(
        verdict(1),
        (
            false,
            "Called \"get_time\", but there is no function with that name".to_string()
        )
    );
    let (passed, why) = verdict(2);
    assert!(
        !passed && why.contains("valid-looking tools response: \"Just text.\""),
        "{why}"
    );
    assert!(verdict(3).0);
    let (passed, why) = verdict(4);
    assert!(
        !passed && why.starts_with("Call to \"get_weather\" does not match schema"),
        "{why}"
    );

    // The output is OpenAI's tool_calls, the server's ids kept.
    let first = cells.iter().find(|c| c["case"] == 0).unwrap();
    let calls: Value = serde_json::from_str(first["output"].as_str().unwrap()).unwrap();
    assert_eq!(calls[0]["id"], "call_get_weather");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(calls[0]["function"]["arguments"], "{\"city\":\"Paris\"}");
    let both = cells.iter().find(|c| c["case"] == 3).unwrap();
    let message: Value = serde_json::from_str(both["output"].as_str().unwrap()).unwrap();
    assert_eq!(message["content"], "Let me look.");

    // The server got the tools rendered with each test's variables, and the choice.
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 5);
    let paris = seen
        .iter()
        .find(|body| body["messages"][0]["content"] == "What is the weather in Paris?")
        .unwrap();
    assert_eq!(
        paris["tools"][0]["function"]["description"],
        "Weather, asked as: weather in Paris"
    );
    assert_eq!(paris["tool_choice"], "auto");
}

#[test]
fn tools_on_a_local_catalog_model_are_named_as_unsupported() {
    let project = TempProject::new();
    project.write(
        "models/models.yaml",
        "models:\n  tiny:\n    path: tiny.gguf\n",
    );
    let config = project.write(
        "promptfooconfig.yaml",
        "prompts: [hi]\nproviders:\n  - id: tiny\n    config:\n      tools: [{type: function, function: {name: f}}]\ntests:\n  - assert: [{type: is-valid-openai-tools-call}]\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_promptlab"))
        .args(["eval", &config.display().to_string()])
        .current_dir(project.root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("config.tools on a local catalog model"),
        "{}",
        text(&out)
    );
}
