//! The OpenAI chat-completions wire format, as llama-server, vLLM, Ollama and LM Studio
//! speak it: building a request body and reading a reply, whole or as server-sent events.

use serde_json::{Map, Value, json};

use crate::engine::{FinishReason, GenerationRequest};
use crate::prompt::RenderedPrompt;

/// Which endpoint a request goes to: chat messages, or a raw completion prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Chat,
    Completion,
}

impl Route {
    pub fn of(prompt: &RenderedPrompt) -> Route {
        match prompt {
            RenderedPrompt::Chat(_) | RenderedPrompt::Promptfoo { .. } => Route::Chat,
            RenderedPrompt::Completion(_) => Route::Completion,
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Route::Chat => "chat/completions",
            Route::Completion => "completions",
        }
    }
}

/// The JSON body for `request`. `sampling_extensions` adds the llama.cpp samplers
/// (`top_k`, `min_p`, `repeat_penalty`) that llama-server and vLLM accept and the OpenAI
/// API refuses, so a remote run samples like a local one.
pub fn request_body(
    model: &str,
    request: &GenerationRequest,
    stream: bool,
    sampling_extensions: bool,
) -> Value {
    let p = &request.params;
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    match (&request.tools, &request.prompt) {
        (Some(offer), _) => {
            body.insert("messages".into(), json!(offer.conversation));
            body.insert("tools".into(), json!(offer.tools));
            let choice = match &offer.choice {
                Some(choice) => choice.clone(),
                None if offer.must_answer => json!("none"),
                None => json!("auto"),
            };
            body.insert("tool_choice".into(), choice);
        }
        (None, RenderedPrompt::Chat(messages) | RenderedPrompt::Promptfoo { messages, .. }) => {
            body.insert("messages".into(), json!(messages));
        }
        (None, RenderedPrompt::Completion(text)) => {
            body.insert("prompt".into(), json!(text));
        }
    }
    body.insert("temperature".into(), json!(p.temperature));
    body.insert("top_p".into(), json!(p.top_p));
    body.insert("max_tokens".into(), json!(p.max_tokens));
    body.insert("seed".into(), json!(p.seed));
    if !p.stop.is_empty() {
        body.insert("stop".into(), json!(p.stop));
    }
    if sampling_extensions {
        body.insert("top_k".into(), json!(p.top_k));
        body.insert("min_p".into(), json!(p.min_p));
        body.insert("repeat_penalty".into(), json!(p.repeat_penalty));
        if p.ignore_eos {
            body.insert("ignore_eos".into(), json!(true));
        }
    }
    if let Some(schema) = &request.schema {
        body.insert(
            "response_format".into(),
            json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": true}}),
        );
    }
    if p.logprobs {
        let asked = match request.prompt {
            RenderedPrompt::Completion(_) if request.tools.is_none() => json!(1),
            _ => json!(true),
        };
        body.insert("logprobs".into(), asked);
    }
    if let Some(grammar) = &request.grammar {
        // llama-server's extension; other servers ignore or refuse it.
        body.insert("grammar".into(), json!(grammar));
    }
    if stream {
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Value::Object(body)
}

/// What a reply (or the sum of a stream's chunks) says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    pub text: String,
    pub finish: Option<FinishReason>,
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
    /// Prompt tokens the server took from its cache (`usage.prompt_tokens_details`).
    pub cached_tokens: Option<u32>,
    /// llama-server's own measurements (`timings`), when it sends them.
    pub prompt_tokens_per_s: Option<f64>,
    pub tokens_per_s: Option<f64>,
    /// Content chunks received, the completion token count when no usage is reported.
    pub chunks: u32,
    /// Tool calls, assembled from whole messages or from stream deltas.
    pub tool_calls: Vec<ToolCall>,
    /// The generated tokens' log-probabilities, when asked for and sent.
    pub logprobs: Option<Vec<f64>>,
}

/// Calls kept from one reply; a server's larger `index` is ignored rather than allocated.
const MAX_TOOL_CALLS: usize = 64;

/// One tool call of a reply; `arguments` is the JSON text the server sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolCall {
    /// The server's id for the call (empty when it sent none).
    pub id: String,
    pub name: String,
    pub arguments: String,
}

impl ToolCall {
    /// The call as an entry of OpenAI's `tool_calls` (the `n`th of its reply), as a
    /// client of the server sees it.
    pub fn as_openai(&self, n: usize) -> Value {
        let id = if self.id.is_empty() {
            format!("call_{n}")
        } else {
            self.id.clone()
        };
        json!({
            "id": id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        })
    }

    /// The call in the Hermes form the agent reads. Arguments that are not JSON stay a
    /// string, which the tool's schema check then refuses with a message to the model.
    pub fn as_hermes(&self) -> String {
        let arguments = serde_json::from_str::<Value>(&self.arguments)
            .unwrap_or_else(|_| Value::String(self.arguments.clone()));
        format!(
            "<tool_call>\n{}\n</tool_call>",
            json!({"name": self.name, "arguments": arguments})
        )
    }
}

fn finish_reason(value: &Value) -> Option<FinishReason> {
    match value.as_str()? {
        "length" => Some(FinishReason::Length),
        "stop" | "eos" | "tool_calls" | "function_call" | "content_filter" => {
            Some(FinishReason::EndOfText)
        }
        _ => None,
    }
}

/// The server's error message, from `{"error": {"message": ...}}` or `{"error": "..."}`.
pub fn error_message(body: &Value) -> Option<String> {
    let error = body.get("error")?;
    Some(
        error
            .get("message")
            .and_then(Value::as_str)
            .or_else(|| error.as_str())
            .map_or_else(|| error.to_string(), str::to_string),
    )
}

impl Reply {
    /// Adds one `tool_calls` entry: a whole call, or a stream delta that names its call by
    /// `index` and carries a piece of the arguments.
    fn absorb_call(&mut self, position: usize, call: &Value) {
        let index = call
            .get("index")
            .and_then(Value::as_u64)
            .map_or(position, |i| i as usize);
        if index >= MAX_TOOL_CALLS {
            return;
        }
        if self.tool_calls.len() <= index {
            self.tool_calls.resize(index + 1, ToolCall::default());
        }
        let slot = &mut self.tool_calls[index];
        if let Some(id) = call.get("id").and_then(Value::as_str) {
            slot.id.push_str(id);
        }
        let function = &call["function"];
        if let Some(name) = function.get("name").and_then(Value::as_str) {
            slot.name.push_str(name);
        }
        match function.get("arguments") {
            Some(Value::String(piece)) => slot.arguments.push_str(piece),
            // Some servers send the arguments as an object rather than its JSON text.
            Some(object @ Value::Object(_)) => slot.arguments = object.to_string(),
            _ => {}
        }
    }

    /// Folds one JSON object (a whole reply or a stream chunk) into the reply. Returns the
    /// new text it carried, if any.
    pub fn absorb(&mut self, object: &Value) -> Result<Option<String>, WireError> {
        if let Some(message) = error_message(object) {
            return Err(WireError::Server(message));
        }
        let mut new_text = None;
        if let Some(choice) = object.get("choices").and_then(|c| c.get(0)) {
            let content = choice
                .get("delta")
                .or_else(|| choice.get("message"))
                .and_then(|m| m.get("content"))
                .or_else(|| choice.get("text"))
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty());
            if let Some(content) = content {
                self.text.push_str(content);
                self.chunks += 1;
                new_text = Some(content.to_string());
            }
            let calls = choice
                .get("delta")
                .or_else(|| choice.get("message"))
                .and_then(|m| m.get("tool_calls"))
                .and_then(Value::as_array);
            for (position, call) in calls.into_iter().flatten().enumerate() {
                self.absorb_call(position, call);
            }
            if let Some(reason) = choice.get("finish_reason").and_then(finish_reason) {
                self.finish = Some(reason);
            }
            // Chat replies list `{token, logprob}` objects; completions a plain list.
            let logprobs = choice.get("logprobs");
            let found: Vec<f64> = match logprobs.and_then(|l| l.get("content")) {
                Some(Value::Array(tokens)) => tokens
                    .iter()
                    .filter_map(|t| t.get("logprob").and_then(Value::as_f64))
                    .collect(),
                _ => logprobs
                    .and_then(|l| l.get("token_logprobs"))
                    .and_then(Value::as_array)
                    .map(|l| l.iter().filter_map(Value::as_f64).collect())
                    .unwrap_or_default(),
            };
            if !found.is_empty() {
                self.logprobs.get_or_insert_with(Vec::new).extend(found);
            }
        } else if object.get("usage").is_none() && object.get("timings").is_none() {
            return Err(WireError::NoChoices(object.clone()));
        }
        if let Some(usage) = object.get("usage").filter(|u| !u.is_null()) {
            let count = |key: &str| usage.get(key).and_then(Value::as_u64).map(|n| n as u32);
            self.prompt_tokens = count("prompt_tokens").or(self.prompt_tokens);
            self.completion_tokens = count("completion_tokens").or(self.completion_tokens);
            self.cached_tokens = usage
                .pointer("/prompt_tokens_details/cached_tokens")
                .and_then(Value::as_u64)
                .map(|n| n as u32)
                .or(self.cached_tokens);
        }
        if let Some(timings) = object.get("timings") {
            let rate = |key: &str| timings.get(key).and_then(Value::as_f64);
            self.prompt_tokens_per_s = rate("prompt_per_second").or(self.prompt_tokens_per_s);
            self.tokens_per_s = rate("predicted_per_second").or(self.tokens_per_s);
        }
        Ok(new_text)
    }
}

/// The longest line an event stream may send: a chunk of a reply is a few hundred bytes.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// A reply or event stream from the server that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The server's own error message (`{"error": ...}`), as it wrote it.
    #[error("{0}")]
    Server(String),
    #[error("expected `choices` in the reply, got {0}")]
    NoChoices(Value),
    #[error(
        "an event in the stream is over {} MiB; not read further",
        MAX_EVENT_BYTES >> 20
    )]
    EventTooLarge,
    /// `shown` is the start of the payload.
    #[error("malformed JSON in the event stream ({source}): {shown}")]
    MalformedEvent {
        #[source]
        source: serde_json::Error,
        shown: String,
    },
}

/// Splits a server-sent-event byte stream into `data:` payloads, across chunk borders.
#[derive(Debug, Default)]
pub struct SseDecoder {
    pending: Vec<u8>,
}

/// One payload of an event stream.
#[derive(Debug, Clone, PartialEq)]
pub enum SseData {
    Json(Value),
    Done,
}

impl SseDecoder {
    /// Feeds bytes; returns the complete `data:` lines they finish. A payload that is not
    /// JSON is an error naming it.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseData>, WireError> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            if end > MAX_EVENT_BYTES {
                return Err(WireError::EventTooLarge);
            }
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\r', '\n']);
            let Some(data) = line.strip_prefix("data:") else {
                // Comments (`:`), `event:`, `id:` and blank separators carry no payload.
                continue;
            };
            let data = data.trim_start();
            if data == "[DONE]" {
                out.push(SseData::Done);
                continue;
            }
            let value: Value =
                serde_json::from_str(data).map_err(|source| WireError::MalformedEvent {
                    source,
                    shown: data.chars().take(120).collect(),
                })?;
            out.push(SseData::Json(value));
        }
        if self.pending.len() > MAX_EVENT_BYTES {
            return Err(WireError::EventTooLarge);
        }
        Ok(out)
    }

    /// Bytes left without a closing newline when the stream ended.
    pub fn leftover(&self) -> &[u8] {
        &self.pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::SamplingParams;
    use crate::prompt::ChatMessage;

    fn chat_request() -> GenerationRequest {
        GenerationRequest {
            prompt: RenderedPrompt::Chat(vec![ChatMessage {
                role: "user".into(),
                content: "Hi".into(),
            }]),
            params: SamplingParams {
                stop: vec!["END".into()],
                ..SamplingParams::default()
            },
            schema: Some(json!({"type": "object"})),
            grammar: None,
            tools: None,
        }
    }

    #[test]
    fn an_endless_event_line_is_refused_not_buffered() {
        let mut decoder = SseDecoder::default();
        let chunk = vec![b'x'; 64 << 10];
        let mut fed = 0;
        let err = loop {
            match decoder.feed(&chunk) {
                Ok(events) => assert!(events.is_empty()),
                Err(err) => break err,
            }
            fed += chunk.len();
            assert!(fed <= MAX_EVENT_BYTES + chunk.len(), "never refused");
        };
        assert!(err.to_string().contains("over 1 MiB"), "{err}");
        // A long but legal event still decodes.
        let mut decoder = SseDecoder::default();
        let text = "y".repeat(200_000);
        let line = format!("data: {}\n\n", json!({"t": text}));
        let events = decoder.feed(line.as_bytes()).unwrap();
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn body_carries_messages_sampling_and_schema() {
        let body = request_body("m", &chat_request(), true, true);
        assert_eq!(body["model"], "m");
        assert_eq!(body["messages"][0]["content"], "Hi");
        assert_eq!(body["stop"], json!(["END"]));
        assert_eq!(body["top_k"], 40);
        assert_eq!(body["response_format"]["type"], "json_schema");
        assert_eq!(
            body["response_format"]["json_schema"]["schema"],
            json!({"type": "object"})
        );
        assert_eq!(body["stream_options"]["include_usage"], true);

        let plain = request_body("m", &chat_request(), false, false);
        assert!(plain.get("top_k").is_none() && plain.get("stream").is_none());
    }

    /// Log-probabilities are asked for only when wanted, as chat (`true`) or completion
    /// (`1`) servers take them, and read back from streamed chat chunks and from a
    /// completion's `token_logprobs`.
    #[test]
    fn logprobs_are_asked_for_and_read_back() {
        let mut request = chat_request();
        assert!(
            request_body("m", &request, true, true)
                .get("logprobs")
                .is_none()
        );
        request.params.logprobs = true;
        assert_eq!(request_body("m", &request, true, true)["logprobs"], true);
        request.prompt = RenderedPrompt::Completion("Hi".into());
        assert_eq!(request_body("m", &request, true, true)["logprobs"], 1);

        let mut reply = Reply::default();
        for chunk in [
            json!({"choices": [{"delta": {"content": "a"}, "logprobs": {"content": [{"token": "a", "logprob": -0.5}]}}]}),
            json!({"choices": [{"delta": {"content": "b"}, "logprobs": {"content": [{"token": "b", "logprob": -1.25}]}}]}),
            json!({"choices": [{"delta": {}, "finish_reason": "stop"}]}),
        ] {
            reply.absorb(&chunk).unwrap();
        }
        assert_eq!(reply.logprobs, Some(vec![-0.5, -1.25]));
        let mut completion = Reply::default();
        completion
            .absorb(&json!({"choices": [{"text": "ab", "logprobs": {"tokens": ["a", "b"], "token_logprobs": [-0.1, -0.2]}}]}))
            .unwrap();
        assert_eq!(completion.logprobs, Some(vec![-0.1, -0.2]));
        let mut none = Reply::default();
        none.absorb(&json!({"choices": [{"delta": {"content": "a"}}]}))
            .unwrap();
        assert_eq!(none.logprobs, None);
    }

    #[test]
    fn a_tool_offer_sends_the_conversation_tools_and_choice() {
        let mut request = chat_request();
        request.schema = None;
        let conversation = vec![
            json!({"role": "user", "content": "7*6?"}),
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_0", "type": "function", "function": {"name": "calc", "arguments": "{}"}}]}),
            json!({"role": "tool", "tool_call_id": "call_0", "content": "42"}),
        ];
        let tools = vec![json!({"type": "function", "function": {"name": "calc"}})];
        request.tools = Some(crate::engine::ToolOffer {
            conversation: conversation.clone(),
            tools: tools.clone(),
            must_answer: false,
            choice: None,
            calls: crate::engine::CallsAs::Hermes,
        });
        let body = request_body("m", &request, false, false);
        assert_eq!(body["messages"], json!(conversation));
        assert_eq!(body["tools"], json!(tools));
        assert_eq!(body["tool_choice"], "auto");
        request.tools.as_mut().unwrap().must_answer = true;
        assert_eq!(
            request_body("m", &request, false, false)["tool_choice"],
            "none"
        );
    }

    #[test]
    fn tool_calls_are_read_whole_or_from_stream_deltas() {
        let mut whole = Reply::default();
        whole
            .absorb(&json!({"choices": [{"message": {"content": null, "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "calc", "arguments": "{\"x\": 1}"}}
            ]}, "finish_reason": "tool_calls"}]}))
            .unwrap();
        assert_eq!(
            whole.tool_calls,
            vec![ToolCall {
                id: "a".into(),
                name: "calc".into(),
                arguments: "{\"x\": 1}".into()
            }]
        );
        // As an eval cell reports it: OpenAI's own form, the server's id kept.
        assert_eq!(
            whole.tool_calls[0].as_openai(0),
            json!({"id": "a", "type": "function", "function": {"name": "calc", "arguments": "{\"x\": 1}"}})
        );
        assert_eq!(
            whole.tool_calls[0].as_hermes(),
            "<tool_call>\n{\"name\":\"calc\",\"arguments\":{\"x\":1}}\n</tool_call>"
        );

        // OpenAI streams the name first, then the arguments in pieces, by index.
        let mut streamed = Reply::default();
        for chunk in [
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "a", "function": {"name": "calc", "arguments": ""}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"x\""}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}, "finish_reason": "tool_calls"}]}),
        ] {
            assert_eq!(streamed.absorb(&chunk).unwrap(), None);
        }
        assert_eq!(streamed.tool_calls, whole.tool_calls);
        assert_eq!(streamed.finish, Some(FinishReason::EndOfText));

        // Arguments that are not JSON stay a string for the tool's schema check to refuse.
        let broken = ToolCall {
            id: String::new(),
            name: "calc".into(),
            arguments: "{\"x\":".into(),
        };
        assert!(broken.as_hermes().contains("\"arguments\":\"{\\\"x\\\":\""));
        assert_eq!(broken.as_openai(2)["id"], "call_2");
        // A server's absurd index is not allocated.
        let mut absurd = Reply::default();
        absurd
            .absorb(&json!({"choices": [{"delta": {"tool_calls": [{"index": 4000000000u64, "function": {"name": "x"}}]}}]}))
            .unwrap();
        assert!(absurd.tool_calls.is_empty());
    }

    #[test]
    fn completion_prompts_use_the_completions_route() {
        let mut request = chat_request();
        request.prompt = RenderedPrompt::Completion("Once".into());
        assert_eq!(Route::of(&request.prompt).path(), "completions");
        assert_eq!(request_body("m", &request, false, false)["prompt"], "Once");
    }

    #[test]
    fn stream_chunks_split_anywhere_are_reassembled() {
        let stream = "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n: keep-alive\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\r\n\r\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n";
        for cut in [1, 5, 17, 60, stream.len() - 3] {
            let mut decoder = SseDecoder::default();
            let mut reply = Reply::default();
            let mut done = false;
            for part in [&stream.as_bytes()[..cut], &stream.as_bytes()[cut..]] {
                for data in decoder.feed(part).unwrap() {
                    match data {
                        SseData::Json(v) => {
                            reply.absorb(&v).unwrap();
                        }
                        SseData::Done => done = true,
                    }
                }
            }
            assert!(done);
            assert_eq!(reply.text, "Hello");
            assert_eq!(reply.finish, Some(FinishReason::EndOfText));
            assert_eq!(
                (reply.prompt_tokens, reply.completion_tokens),
                (Some(7), Some(2))
            );
        }
    }

    #[test]
    fn errors_and_malformed_payloads_are_reported() {
        let mut decoder = SseDecoder::default();
        let err = decoder.feed(b"data: {\"choices\": [\n").unwrap_err();
        assert!(err.to_string().contains("malformed JSON"), "{err}");

        let mut reply = Reply::default();
        let err = reply
            .absorb(&json!({"error": {"message": "model overloaded", "code": 503}}))
            .unwrap_err();
        assert_eq!(err.to_string(), "model overloaded");
        let err = reply.absorb(&json!({"id": "x"})).unwrap_err();
        assert!(err.to_string().contains("expected `choices`"), "{err}");
    }

    #[test]
    fn whole_replies_and_llama_server_timings_are_read() {
        let mut reply = Reply::default();
        reply
            .absorb(&json!({
                "choices": [{"message": {"role": "assistant", "content": "4"}, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 1,
                          "prompt_tokens_details": {"cached_tokens": 8}},
                "timings": {"prompt_per_second": 800.0, "predicted_per_second": 95.5}
            }))
            .unwrap();
        assert_eq!(reply.text, "4");
        assert_eq!(reply.cached_tokens, Some(8));
        assert_eq!(reply.finish, Some(FinishReason::Length));
        assert_eq!(reply.tokens_per_s, Some(95.5));
    }
}
