//! The outbound OpenAI-compatible engine against a server on loopback that misbehaves on
//! purpose: 503s with Retry-After, connections cut mid-stream, malformed JSON, error
//! bodies, slow replies, a wrong API key, an endpoint that is down; and two healthy
//! endpoints sharing a batch within their concurrency limits. Every failure must land in
//! its own request's result, and a retried request must be counted once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use promptlab::catalog::remote::{EndpointSpec, RemoteSettings};
use promptlab::engine::openai::OpenAiEngine;
use promptlab::engine::{
    Engine, FinishReason, Flow, Generation, GenerationEvent, GenerationRequest,
};
use promptlab::params::SamplingParams;
use promptlab::prompt::{ChatMessage, RenderedPrompt};
use serde_json::{Value, json};

#[derive(Default)]
struct Counters {
    /// Requests seen per (mode, message).
    hits: HashMap<(String, String), usize>,
    /// Requests in flight per mode, and the most seen at once.
    in_flight: HashMap<String, usize>,
    peak: HashMap<String, usize>,
}

type Shared = Arc<Mutex<Counters>>;

fn reply_chunks(text: &str) -> Vec<String> {
    let words: Vec<String> = text.split_inclusive(' ').map(str::to_string).collect();
    let mut events: Vec<String> = words
        .iter()
        .map(|w| {
            json!({"choices": [{"index": 0, "delta": {"content": w}, "finish_reason": null}]})
                .to_string()
        })
        .collect();
    events.push(
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 5, "completion_tokens": words.len()}})
        .to_string(),
    );
    events.push("[DONE]".into());
    events
}

fn sse(events: Vec<String>) -> Vec<Result<Bytes, std::io::Error>> {
    events
        .into_iter()
        .map(|e| Ok(Bytes::from(format!("data: {e}\n\n"))))
        .collect()
}

fn good_reply(text: &str, stream: bool) -> Response {
    if stream {
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(futures_util::stream::iter(sse(
                reply_chunks(text),
            ))))
            .unwrap()
    } else {
        Json(json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2}
        }))
        .into_response()
    }
}

async fn completions(
    State(counters): State<Shared>,
    Path(mode): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let message = body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let stream = body["stream"] == true;
    let hit = {
        let mut c = counters.lock().unwrap();
        let hit = c.hits.entry((mode.clone(), message.clone())).or_default();
        *hit += 1;
        let hit = *hit;
        let now = {
            let n = c.in_flight.entry(mode.clone()).or_default();
            *n += 1;
            *n
        };
        let peak = c.peak.entry(mode.clone()).or_default();
        *peak = (*peak).max(now);
        hit
    };
    let answer = format!("echo: {message}");
    let response = match mode.as_str() {
        m if m.starts_with("ok") => {
            tokio::time::sleep(Duration::from_millis(40)).await;
            good_reply(&answer, stream)
        }
        "flaky" if hit <= 2 => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "0")],
            Json(json!({"error": {"message": "loading model"}})),
        )
            .into_response(),
        // Issue 20: a broken server's `Retry-After: NaN` once panicked the client.
        "nan-retry" if hit == 1 => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "NaN")],
            Json(json!({"error": {"message": "busy"}})),
        )
            .into_response(),
        "inf-retry" if hit == 1 => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "inf")],
            Json(json!({"error": {"message": "slow down"}})),
        )
            .into_response(),
        "nan-retry" | "inf-retry" => good_reply(&answer, stream),
        // Issue 20: a server that never stops sending, in each of the three bodies read.
        "huge" => {
            let chunk = Bytes::from(vec![b' '; 1 << 20]);
            let endless = futures_util::stream::iter(
                std::iter::repeat_n(chunk, 64).map(Ok::<_, std::io::Error>),
            );
            let builder = Response::builder();
            let builder = if stream {
                builder.header("content-type", "text/event-stream")
            } else {
                builder.header("content-type", "application/json")
            };
            builder.body(Body::from_stream(endless)).unwrap()
        }
        "huge-error" => Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(Body::from(format!(
                "{{\"error\": {{\"message\": \"{}\"}}}}",
                "no ".repeat(8 << 20)
            )))
            .unwrap(),
        "reset" if hit == 1 => {
            // One chunk of text, then the connection dies without finishing the body.
            let mut parts = sse(vec![
                json!({"choices": [{"index": 0, "delta": {"content": "partial "}}]}).to_string(),
            ]);
            parts.push(Err(std::io::Error::other("reset")));
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(futures_util::stream::iter(parts)))
                .unwrap()
        }
        "malformed" => {
            if stream {
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::from("data: {\"choices\": [oops\n\n"))
                    .unwrap()
            } else {
                "{\"choices\": [oops".into_response()
            }
        }
        "truncated" => Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from(format!("data: {}\n\n", reply_chunks("cut")[0])))
            .unwrap(),
        "bad" => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": "unknown model `nope`"}})),
        )
            .into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            good_reply(&answer, stream)
        }
        "key" => {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if auth == "Bearer sekret" {
                good_reply(&answer, stream)
            } else {
                (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({"error": {"message": "bad key"}})),
                )
                    .into_response()
            }
        }
        _ => good_reply(&answer, stream),
    };
    *counters.lock().unwrap().in_flight.get_mut(&mode).unwrap() -= 1;
    response
}

struct FaultServer {
    port: u16,
    counters: Shared,
}

impl FaultServer {
    fn start() -> FaultServer {
        let counters: Shared = Arc::default();
        let app = Router::new()
            .route("/{mode}/v1/chat/completions", post(completions))
            .with_state(counters.clone());
        let port = crate::common::serve_on_loopback(app);
        FaultServer { port, counters }
    }

    fn url(&self, mode: &str) -> String {
        format!("http://127.0.0.1:{}/{mode}/v1", self.port)
    }

    fn hits(&self, mode: &str, message: &str) -> usize {
        let counters = self.counters.lock().unwrap();
        counters
            .hits
            .get(&(mode.to_string(), message.to_string()))
            .copied()
            .unwrap_or(0)
    }

    fn total_hits(&self, mode: &str) -> usize {
        let counters = self.counters.lock().unwrap();
        counters
            .hits
            .iter()
            .filter(|((m, _), _)| m == mode)
            .map(|(_, n)| n)
            .sum()
    }

    fn peak(&self, mode: &str) -> usize {
        self.counters
            .lock()
            .unwrap()
            .peak
            .get(mode)
            .copied()
            .unwrap_or(0)
    }
}

fn settings(urls: &[String]) -> RemoteSettings {
    let mut settings = RemoteSettings::single("test-model", &urls[0]);
    settings.endpoints = urls.iter().cloned().map(EndpointSpec::Url).collect();
    settings.retries = 2;
    settings.timeout_s = 2.0;
    settings
}

fn request(message: &str) -> GenerationRequest {
    GenerationRequest {
        prompt: RenderedPrompt::Chat(vec![ChatMessage {
            role: "user".into(),
            content: message.into(),
        }]),
        params: SamplingParams::default(),
        schema: None,
        grammar: None,
        tools: None,
    }
}

/// Runs a batch and returns each request's outcome, or None if it was not reported.
fn run(settings: RemoteSettings, messages: &[&str]) -> Vec<Option<Result<Generation, String>>> {
    let mut engine = OpenAiEngine::new(settings).unwrap();
    let requests: Vec<_> = messages.iter().map(|m| request(m)).collect();
    let mut results = vec![None; requests.len()];
    engine.generate_batch(&requests, &mut |event| {
        if let GenerationEvent::Finished(i, outcome) = event {
            assert!(results[i].is_none(), "request {i} finished twice");
            results[i] = Some(outcome.map_err(|e| e.to_string()));
        }
        Flow::Continue
    });
    results
}

fn text(result: &Option<Result<Generation, String>>) -> String {
    match result {
        Some(Ok(g)) => g.text.clone(),
        other => panic!("expected a generation, got {other:?}"),
    }
}

fn error(result: &Option<Result<Generation, String>>) -> String {
    match result {
        Some(Err(e)) => e.clone(),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn retries_after_503_and_counts_each_request_once() {
    let server = FaultServer::start();
    let results = run(settings(&[server.url("flaky")]), &["a", "b", "c"]);
    for (result, message) in results.iter().zip(["a", "b", "c"]) {
        assert_eq!(text(result), format!("echo: {message}"));
        assert_eq!(server.hits("flaky", message), 3);
        if let Some(Ok(g)) = result {
            assert_eq!(g.completion_tokens, 2);
            assert_eq!(g.prompt_tokens, 5);
        }
    }

    let server = FaultServer::start();
    let mut once = settings(&[server.url("flaky")]);
    once.retries = 1;
    let err = error(&run(once, &["a"])[0]);
    assert!(err.contains("gave up after 2 attempts"), "{err}");
    assert!(
        err.contains("HTTP 503") && err.contains("loading model"),
        "{err}"
    );
}

#[test]
fn issue_20_a_nonsense_retry_after_is_retried_not_a_panic() {
    let server = FaultServer::start();
    for mode in ["nan-retry", "inf-retry"] {
        let results = run(settings(&[server.url(mode)]), &["a"]);
        assert_eq!(text(&results[0]), "echo: a", "{mode}");
        assert_eq!(server.hits(mode, "a"), 2, "{mode}");
    }
}

#[test]
fn issue_20_an_endless_reply_is_cut_off_not_read_into_memory() {
    let server = FaultServer::start();
    for stream in [false, true] {
        let mut settings = settings(&[server.url("huge")]);
        settings.stream = stream;
        settings.timeout_s = 30.0;
        let err = error(&run(settings, &["a"])[0]);
        assert!(
            err.contains("MiB; not read further"),
            "stream {stream}: {err}"
        );
    }
    let err = error(&run(settings(&[server.url("huge-error")]), &["a"])[0]);
    assert!(err.contains("HTTP 400"), "{err}");
    assert!(err.len() < 1000, "{} bytes of error", err.len());
}

#[test]
fn issue_20_unusable_remote_settings_are_refused_when_the_catalog_loads() {
    for (settings, needle) in [
        (
            "endpoints: ['http://127.0.0.1:9/v1']
      timeout_s: .nan",
            "timeout_s",
        ),
        (
            "endpoints: ['http://127.0.0.1:9/v1']
      connect_timeout_s: -1",
            "connect_timeout_s",
        ),
        ("endpoints: ['not a url']", "not an http(s) URL"),
        ("endpoints: []", "empty"),
        (
            "endpoints: ['http://127.0.0.1:9/v1']
      concurrency: 0",
            "concurrency",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let catalog = dir.path().join("models.yaml");
        std::fs::write(
            &catalog,
            format!("models:\n  remote:\n    kind: openai\n    openai:\n      model: m\n      {settings}\n"),
        )
        .unwrap();
        let err = promptlab::catalog::ModelCatalog::load(&catalog)
            .expect_err(settings)
            .to_string();
        assert!(
            err.contains(needle) && err.contains("remote"),
            "{settings}: {err}"
        );
    }
}

#[test]
fn a_connection_cut_mid_stream_is_retried_from_scratch() {
    let server = FaultServer::start();
    let results = run(settings(&[server.url("reset")]), &["hello world"]);
    // Only the successful attempt's text: no "partial " left from the first one.
    assert_eq!(text(&results[0]), "echo: hello world");
    assert_eq!(server.hits("reset", "hello world"), 2);
}

#[test]
fn malformed_truncated_and_refused_replies_become_cell_errors() {
    let server = FaultServer::start();
    for stream in [true, false] {
        let mut s = settings(&[server.url("malformed")]);
        s.stream = stream;
        let err = error(&run(s, &[if stream { "s" } else { "n" }])[0]);
        assert!(err.contains("malformed JSON"), "{err}");
    }
    assert_eq!(server.hits("malformed", "s"), 3);

    let err = error(&run(settings(&[server.url("truncated")]), &["t"])[0]);
    assert!(err.contains("ended before the reply was complete"), "{err}");

    // A 400 is the request's fault: no retry.
    let err = error(&run(settings(&[server.url("bad")]), &["x"])[0]);
    assert!(
        err.contains("HTTP 400") && err.contains("unknown model `nope`"),
        "{err}"
    );
    assert_eq!(server.hits("bad", "x"), 1);
}

#[test]
fn timeouts_and_unreachable_servers_are_reported() {
    let server = FaultServer::start();
    let mut s = settings(&[server.url("slow")]);
    s.timeout_s = 0.3;
    s.retries = 0;
    let err = error(&run(s, &["z"])[0]);
    assert!(err.contains("timed out"), "{err}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut s = settings(&[format!("http://127.0.0.1:{closed}/v1")]);
    s.retries = 1;
    let err = error(&run(s, &["z"])[0]);
    assert!(err.contains("cannot connect"), "{err}");
}

#[test]
fn load_is_spread_within_each_endpoints_limit_and_a_dead_one_is_skipped() {
    let server = FaultServer::start();
    let mut s = settings(&[server.url("ok-a"), server.url("ok-b")]);
    s.endpoints = vec![
        EndpointSpec::Detailed {
            url: server.url("ok-a"),
            concurrency: Some(2),
            api_key_env: None,
        },
        EndpointSpec::Detailed {
            url: server.url("ok-b"),
            concurrency: Some(3),
            api_key_env: None,
        },
    ];
    let messages: Vec<String> = (0..30).map(|i| format!("q{i}")).collect();
    let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
    let results = run(s, &refs);
    for (result, message) in results.iter().zip(&messages) {
        assert_eq!(text(result), format!("echo: {message}"));
    }
    let (a, b) = (server.total_hits("ok-a"), server.total_hits("ok-b"));
    assert_eq!(a + b, 30);
    assert!(a >= 6 && b >= 6, "uneven spread: {a} and {b}");
    assert!(server.peak("ok-a") <= 2, "ok-a: {}", server.peak("ok-a"));
    assert!(server.peak("ok-b") <= 3, "ok-b: {}", server.peak("ok-b"));
    assert!(server.peak("ok-b") >= 2, "no concurrency reached ok-b");

    // One endpoint down: every request still succeeds through the other.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = settings(&[format!("http://127.0.0.1:{closed}/v1"), server.url("ok-c")]);
    let results = run(s, &refs[..10]);
    assert!(results.iter().all(|r| matches!(r, Some(Ok(_)))));
    assert_eq!(server.total_hits("ok-c"), 10);
}

#[test]
fn the_api_key_comes_from_the_named_variable() {
    let server = FaultServer::start();
    let mut s = settings(&[server.url("key")]);
    s.api_key_env = Some("PROMPTLAB_TEST_FAULT_KEY".into());
    let err = OpenAiEngine::new(s.clone()).err().unwrap().to_string();
    assert!(
        err.contains("`PROMPTLAB_TEST_FAULT_KEY` is not set"),
        "{err}"
    );
    // SAFETY: no other test of this binary reads or writes this variable.
    unsafe { std::env::set_var("PROMPTLAB_TEST_FAULT_KEY", "sekret") };
    assert_eq!(text(&run(s, &["k"])[0]), "echo: k");
    let err = error(&run(settings(&[server.url("key")]), &["k"])[0]);
    assert!(err.contains("HTTP 401"), "{err}");
}

#[test]
fn stopping_ends_started_requests_as_cancelled_and_skips_the_rest() {
    let server = FaultServer::start();
    let mut s = settings(&[server.url("ok-cancel")]);
    s.concurrency = 1;
    let mut engine = OpenAiEngine::new(s).unwrap();
    let requests: Vec<_> = ["one two three", "b", "c"]
        .iter()
        .map(|m| request(m))
        .collect();
    let mut finished = Vec::new();
    engine.generate_batch(&requests, &mut |event| match event {
        GenerationEvent::Token(..) => Flow::Stop,
        GenerationEvent::Finished(i, outcome) => {
            finished.push((i, outcome.unwrap().finish));
            Flow::Continue
        }
        GenerationEvent::Started(_) => Flow::Continue,
    });
    assert_eq!(finished, [(0, FinishReason::Cancelled)]);
}
