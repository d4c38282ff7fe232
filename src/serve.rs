//! `promptlab serve`: the catalog's local chat models behind an OpenAI-compatible API
//! (`GET /v1/models`, `POST /v1/chat/completions`, streaming as server-sent events, JSON
//! schema `response_format`), so other tools can use promptlab's engine. Loopback by
//! default; an optional API key; request bodies over a size limit are refused.
//!
//! Each model loads on first use into an engine worker and stays loaded. Requests to one
//! model share its decode steps (up to `parallel` at once): one that arrives while others
//! generate joins them at the next step, and its reply is the same as if it were alone.

mod listen;
mod queue;
mod tools;

pub use listen::{ConnectionLimits, serve_connections};
use queue::ModelQueue;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalog::{ModelCatalog, ModelKind};
use crate::engine::chat_template::ChatTemplate;
use crate::engine::{FinishReason, GenerationEvent, GenerationRequest, WorkerEvent};
use crate::params::GenerationParams;
use crate::prompt::{ChatMessage, RenderedPrompt};
use crate::trace::Convention;

/// Request bodies above this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub struct ServeConfig {
    pub catalog: ModelCatalog,
    /// Required as `Authorization: Bearer KEY` when set.
    pub api_key: Option<String>,
    pub threads: Option<u32>,
    /// Requests of one model decoded together (default 8).
    pub parallel: Option<u32>,
    /// `--gpu-layers`, over each GGUF model's `gpu_layers`.
    pub gpu_layers: Option<crate::catalog::GpuLayers>,
}

struct AppState {
    config: ServeConfig,
    workers: Mutex<HashMap<String, Arc<ModelQueue>>>,
    /// Models whose file crashed llama.cpp in the child that loads it first, with the
    /// message: no longer listed, and not tried again (each try would load the file).
    crashed: Mutex<HashMap<String, String>>,
}

/// The router; `serve` binds it, tests can too.
pub fn router(config: ServeConfig) -> Router {
    let state = Arc::new(AppState {
        config,
        workers: Mutex::new(HashMap::new()),
        crashed: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Outermost, so a request without the key is refused before its body is read.
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            require_key,
        ))
        .with_state(state)
}

/// An OpenAI-style error body with its HTTP status.
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": {"message": self.message, "type": self.kind}})),
        )
            .into_response()
    }
}

fn error(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        kind,
        message: message.into(),
    }
}

/// A 400 for a request the client must change.
fn invalid_request(message: impl Into<String>) -> ApiError {
    error(StatusCode::BAD_REQUEST, "invalid_request_error", message)
}

async fn require_key(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match authorized(&state, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(denied) => denied.into_response(),
    }
}

fn authorized(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = &state.config.api_key else {
        return Ok(());
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given == Some(key.as_str()) {
        Ok(())
    } else {
        Err(error(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "missing or wrong API key (Authorization: Bearer KEY)",
        ))
    }
}

/// GGUF models with a chat template (base models cannot take chat messages).
fn chat_models(catalog: &ModelCatalog) -> Vec<String> {
    catalog
        .models
        .iter()
        // Served by the local engine: remote models are other servers' to serve.
        .filter(|(_, e)| e.kind() == ModelKind::Gguf && e.not_fetched().is_none())
        .filter(|(_, e)| e.is_chat_model())
        .map(|(name, _)| name.clone())
        .collect()
}

async fn models(State(state): State<Arc<AppState>>) -> Response {
    let crashed = state.crashed.lock().map(|c| c.clone()).unwrap_or_default();
    let data: Vec<Value> = chat_models(&state.config.catalog)
        .into_iter()
        .filter(|id| !crashed.contains_key(id))
        .map(|id| json!({"id": id, "object": "model", "owned_by": "promptlab"}))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    /// Raw, because tool conversations carry `tool_calls` and null contents.
    messages: Vec<Value>,
    #[serde(default)]
    tools: Vec<Value>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    stream: bool,
    temperature: Option<f32>,
    top_p: Option<f32>,
    // llama.cpp's samplers, as llama-server accepts them.
    top_k: Option<i32>,
    min_p: Option<f32>,
    repeat_penalty: Option<f32>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    seed: Option<u32>,
    stop: Option<StopField>,
    response_format: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StopField {
    One(String),
    Many(Vec<String>),
}

/// A completion id unique within this server's life.
fn completion_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("chatcmpl-{}-{n}", unix_now())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn worker_for(state: &AppState, model: &str) -> Result<Arc<ModelQueue>, ApiError> {
    let mut workers = state.workers.lock().map_err(|_| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "worker table poisoned",
        )
    })?;
    if let Some(worker) = workers.get(model) {
        return Ok(worker.clone());
    }
    if let Some(message) = state
        .crashed
        .lock()
        .ok()
        .and_then(|c| c.get(model).cloned())
    {
        return Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            message,
        ));
    }
    let entry = state
        .config
        .catalog
        .models
        .get(model)
        .filter(|_| {
            chat_models(&state.config.catalog)
                .iter()
                .any(|m| m == model)
        })
        .ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                "model_not_found",
                format!(
                    "no chat model `{model}`: expected one of {}",
                    chat_models(&state.config.catalog).join(", ")
                ),
            )
        })?;
    let options = crate::engine::OpenOptions {
        threads: state.config.threads,
        parallel: Some(state.config.parallel.unwrap_or(8).max(1)),
        // Each slot keeps its last conversation: a client's next turn decodes only its
        // new messages.
        keep_conversation: true,
        gpu_layers: state.config.gpu_layers,
    };
    let model_ref = crate::catalog::ModelRef {
        name: model.to_string(),
        entry: Some(entry.clone()),
    };
    let worker = crate::engine::open(&model_ref, &options).map_err(|e| {
        if let crate::engine::EngineError::LoadCrashed(message) = &e
            && let Ok(mut crashed) = state.crashed.lock()
        {
            crashed.insert(model.to_string(), message.clone());
        }
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            e.to_string(),
        )
    })?;
    let template = worker.chat_template().cloned();
    let worker = Arc::new(ModelQueue::start(worker, template));
    workers.insert(model.to_string(), worker.clone());
    Ok(worker)
}

/// The generation for a request, and the tool convention when it offers tools.
fn generation_request(
    request: &ChatRequest,
    catalog: &ModelCatalog,
    template: Option<&ChatTemplate>,
) -> Result<(GenerationRequest, Option<Convention>), ApiError> {
    let schema = match &request.response_format {
        None => None,
        Some(format) => match format.get("type").and_then(Value::as_str) {
            Some("text") => None,
            Some("json_schema") => Some(
                format
                    .pointer("/json_schema/schema")
                    .cloned()
                    .ok_or_else(|| {
                        invalid_request("response_format json_schema needs json_schema.schema")
                    })?,
            ),
            Some("json_object") => Some(json!({"type": "object"})),
            other => {
                return Err(invalid_request(format!(
                    "unsupported response_format type {other:?}"
                )));
            }
        },
    };
    if let Some(schema) = &schema {
        crate::engine::llama::schema_to_grammar(schema)
            .map_err(|e| invalid_request(e.to_string()))?;
    }
    let defaults = catalog
        .models
        .get(&request.model)
        .map(|e| e.params().clone())
        .unwrap_or_default();
    let asked = GenerationParams {
        temperature: request.temperature,
        top_p: request.top_p,
        top_k: request.top_k,
        min_p: request.min_p,
        repeat_penalty: request.repeat_penalty,
        max_tokens: request.max_completion_tokens.or(request.max_tokens),
        seed: request.seed,
        stop: match &request.stop {
            None => None,
            Some(StopField::One(s)) => Some(vec![s.clone()]),
            Some(StopField::Many(v)) => Some(v.clone()),
        },
    };
    if let Some(problem) = asked.problem() {
        return Err(invalid_request(problem));
    }
    let params = defaults.overlay(&asked).resolve();
    if !request.tools.is_empty() {
        let choice = tools::ToolChoice::parse(request.tool_choice.as_ref(), &request.tools)
            .map_err(|e| invalid_request(e.to_string()))?;
        if schema.is_some() {
            return Err(invalid_request(
                "`tools` and a JSON `response_format` cannot be combined",
            ));
        }
        let template = template
            .ok_or_else(|| invalid_request("the model has no chat template to list tools in"))?;
        let prompt = tools::tool_prompt(template, &request.messages, &request.tools, &choice)
            .map_err(|e| invalid_request(e.to_string()))?;
        return Ok((
            GenerationRequest {
                prompt: RenderedPrompt::Completion(prompt.text),
                params,
                schema: None,
                grammar: Some(prompt.grammar),
                tools: None,
            },
            Some(prompt.convention),
        ));
    }
    let messages = request
        .messages
        .iter()
        .map(|m| ChatMessage {
            role: m["role"].as_str().unwrap_or("user").to_string(),
            content: tools::content_text(m),
        })
        .collect();
    Ok((
        GenerationRequest {
            prompt: RenderedPrompt::Chat(messages),
            params,
            schema,
            grammar: None,
            tools: None,
        },
        None,
    ))
}

fn finish_reason(finish: FinishReason) -> &'static str {
    match finish {
        FinishReason::Length => "length",
        _ => "stop",
    }
}

async fn chat(
    State(state): State<Arc<AppState>>,
    body: Result<Json<ChatRequest>, JsonRejection>,
) -> Response {
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            return error(status, "invalid_request_error", rejection.body_text()).into_response();
        }
    };
    if request.messages.is_empty() {
        return invalid_request("`messages` is empty").into_response();
    }
    let worker = match worker_for(&state, &request.model) {
        Ok(w) => w,
        Err(err) => return err.into_response(),
    };
    let (generation, convention) =
        match generation_request(&request, &state.config.catalog, worker.template.as_ref()) {
            Ok(g) => g,
            Err(err) => return err.into_response(),
        };
    let id = completion_id();
    let model = request.model.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<WorkerEvent>();
    if let Err(err) = worker.submit(generation, tx) {
        return err.into_response();
    }
    if request.stream {
        let created = unix_now();
        // Dropping the stream (client gone) closes `rx`; a batch whose clients are all
        // gone stops generating.
        let stream = futures_util::stream::unfold((rx, false), move |(mut rx, finished)| {
            let (id, model) = (id.clone(), model.clone());
            async move {
                if finished {
                    return None;
                }
                {
                    let event = rx.recv().await;
                    let chunk = |delta: Value, finish: Option<&str>| {
                        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
                    };
                    let event = match event {
                            Some(WorkerEvent::Generation(GenerationEvent::Started(_))) => {
                                Event::default().data(chunk(json!({"role": "assistant"}), None).to_string())
                            }
                            // A tool reply is only known whole: keep the stream alive meanwhile.
                            Some(WorkerEvent::Generation(GenerationEvent::Token(_, _)))
                                if convention.is_some() =>
                            {
                                Event::default().comment("")
                            }
                            Some(WorkerEvent::Generation(GenerationEvent::Token(_, text))) => {
                                Event::default().data(chunk(json!({"content": text}), None).to_string())
                            }
                            Some(WorkerEvent::Generation(GenerationEvent::Finished(_, outcome))) => {
                                match outcome {
                                    Ok(g) if convention.is_some() => {
                                        let (message, finish) = tool_reply(convention, &g, &id);
                                        let delta = match message.get("tool_calls").and_then(Value::as_array) {
                                            Some(calls) => {
                                                let calls: Vec<Value> = calls
                                                    .iter()
                                                    .enumerate()
                                                    .map(|(i, c)| {
                                                        let mut c = c.clone();
                                                        c["index"] = json!(i);
                                                        c
                                                    })
                                                    .collect();
                                                json!({"tool_calls": calls})
                                            }
                                            None => json!({"content": message["content"]}),
                                        };
                                        let mut last = chunk(delta, Some(finish));
                                        last["usage"] = usage(&g);
                                        Event::default().data(last.to_string())
                                    }
                                    Ok(g) => {
                                        let mut last = chunk(json!({}), Some(finish_reason(g.finish)));
                                        last["usage"] = usage(&g);
                                        Event::default().data(last.to_string())
                                    }
                                    Err(e) => Event::default().data(
                                        json!({"error": {"message": e.to_string(), "type": "server_error"}}).to_string(),
                                    ),
                                }
                            }
                            Some(WorkerEvent::BatchDone) | None => {
                                return Some((
                                    Ok::<Event, Infallible>(Event::default().data("[DONE]")),
                                    (rx, true),
                                ));
                            }
                        };
                    Some((Ok(event), (rx, false)))
                }
            }
        });
        return Sse::new(stream).into_response();
    }
    while let Some(event) = rx.recv().await {
        if let WorkerEvent::Generation(GenerationEvent::Finished(_, outcome)) = event {
            return match outcome {
                Ok(g) if convention.is_some() => {
                    let (message, finish) = tool_reply(convention, &g, &id);
                    Json(json!({
                        "id": id,
                        "object": "chat.completion",
                        "created": unix_now(),
                        "model": model,
                        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                        "usage": usage(&g),
                    }))
                    .into_response()
                }
                Ok(g) => Json(json!({
                    "id": id,
                    "object": "chat.completion",
                    "created": unix_now(),
                    "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": g.text},
                                 "finish_reason": finish_reason(g.finish)}],
                    "usage": usage(&g),
                }))
                .into_response(),
                // The request's own schema cannot become a grammar or be satisfied, or its
                // conversation does not fit the context: the client's to fix.
                Err(
                    e @ (crate::engine::EngineError::Schema(_)
                    | crate::engine::EngineError::PromptTooLong { .. }),
                ) => invalid_request(e.to_string()).into_response(),
                Err(e) => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    e.to_string(),
                )
                .into_response(),
            };
        }
    }
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "the engine stopped without a result",
    )
    .into_response()
}

/// The assistant message for a reply to a request with tools: a tool call or an answer.
fn tool_reply(
    convention: Option<Convention>,
    g: &crate::engine::Generation,
    completion: &str,
) -> (Value, &'static str) {
    let call_id = format!("call_{}", completion.trim_start_matches("chatcmpl-"));
    match convention {
        Some(convention) => {
            let (message, finish) = tools::reply_message(convention, &g.text, &call_id);
            let finish = if g.finish == FinishReason::Length && finish != "tool_calls" {
                "length"
            } else {
                finish
            };
            (message, finish)
        }
        None => (
            json!({"role": "assistant", "content": g.text}),
            finish_reason(g.finish),
        ),
    }
}

fn usage(g: &crate::engine::Generation) -> Value {
    json!({"prompt_tokens": g.prompt_tokens, "completion_tokens": g.completion_tokens,
           "total_tokens": g.prompt_tokens + g.completion_tokens})
}
