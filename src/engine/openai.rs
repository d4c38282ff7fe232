//! An engine that sends generations to OpenAI-compatible servers (llama.cpp's
//! llama-server, vLLM, Ollama, LM Studio, `promptlab serve`). One catalog model can list
//! several endpoints serving the same model: requests fan out over them, each endpoint
//! with its own concurrency limit, so an evaluation scales past one laptop.
//!
//! Failures are contained per request: connection errors, timeouts, 429 and 5xx are
//! retried (on another endpoint when there is one) after a backoff; anything else, or the
//! last failed attempt, becomes that cell's error. Only the attempt that succeeded is
//! counted, so a retried request is never recorded twice.

mod body;
mod pool;
pub mod wire;

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::time::Instant;

use super::{
    CallsAs, Capabilities, Engine, EngineError, FinishReason, Flow, Generation, GenerationEvent,
    GenerationRequest, cut_at_stop,
};
use crate::prompt::RenderedPrompt;
use body::{MAX_ERROR_BODY_BYTES, MAX_REPLY_BYTES, ReadFault, read_capped, too_large};
use pool::{Endpoint, Pool, Slot};
use wire::{Reply, Route, SseData, SseDecoder};

use crate::catalog::remote::{EndpointSpec, RemoteSettings};

/// A duration from seconds written in a file or sent by a server: `NaN`, infinities and
/// negatives fall back to the bounds instead of panicking.
fn seconds_between(seconds: f64, min: f64, max: f64) -> Duration {
    let seconds = if seconds.is_nan() { min } else { seconds };
    Duration::from_secs_f64(seconds.clamp(min, max))
}

pub struct OpenAiEngine {
    settings: RemoteSettings,
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    pool: Pool,
}

/// How one attempt failed.
enum AttemptError {
    /// Worth another try: connection, timeout, 429/5xx, a broken or malformed reply.
    Retry {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The request itself is wrong (400, 401, 404...): retrying cannot help.
    Fatal(String),
}

fn retry(message: impl Into<String>) -> AttemptError {
    AttemptError::Retry {
        message: message.into(),
        retry_after: None,
    }
}

/// What a running request tells the batch loop.
enum Progress {
    Started,
    Token(String),
    /// A failed attempt had streamed text; the next attempt starts over.
    Restarted,
}

fn api_key(variable: &Option<String>) -> Result<Option<String>, EngineError> {
    let Some(variable) = variable else {
        return Ok(None);
    };
    match std::env::var(variable) {
        Ok(key) if !key.is_empty() => Ok(Some(key)),
        _ => Err(EngineError::Load(format!(
            "the API key variable `{variable}` is not set (export {variable}=...)"
        ))),
    }
}

impl OpenAiEngine {
    pub fn new(settings: RemoteSettings) -> Result<OpenAiEngine, EngineError> {
        if settings.endpoints.is_empty() {
            return Err(EngineError::Load(format!(
                "remote model `{}` lists no endpoints",
                settings.model
            )));
        }
        let mut endpoints = Vec::new();
        for spec in &settings.endpoints {
            let url = spec.url().trim_end_matches('/').to_string();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(EngineError::Load(format!(
                    "endpoint `{url}`: expected an http:// or https:// base URL such as http://localhost:8080/v1"
                )));
            }
            let (limit, key_env) = match spec {
                EndpointSpec::Url(_) => (settings.concurrency, &settings.api_key_env),
                EndpointSpec::Detailed {
                    concurrency,
                    api_key_env,
                    ..
                } => (
                    concurrency.unwrap_or(settings.concurrency),
                    if api_key_env.is_some() {
                        api_key_env
                    } else {
                        &settings.api_key_env
                    },
                ),
            };
            endpoints.push(Endpoint::new(url, api_key(key_env)?, limit));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(seconds_between(settings.connect_timeout_s, 0.001, 86_400.0))
            .user_agent(concat!("promptlab/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EngineError::Load(format!("cannot build the HTTP client: {e}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| EngineError::Load(format!("cannot start the network runtime: {e}")))?;
        Ok(OpenAiEngine {
            settings,
            runtime,
            client,
            pool: Pool::new(endpoints),
        })
    }

    /// One request, with its retries; returns its index with the outcome.
    async fn run_one(
        &self,
        index: usize,
        request: &GenerationRequest,
        progress: UnboundedSender<(usize, Progress)>,
    ) -> (usize, Result<Generation, EngineError>) {
        let body = wire::request_body(
            &self.settings.model,
            request,
            self.settings.stream,
            self.settings.sampling_extensions,
        );
        let route = Route::of(&request.prompt);
        let attempts = self.settings.retries + 1;
        let mut avoid = None;
        let mut last_error = String::new();
        for attempt in 0..attempts {
            let slot = self.pool.acquire(avoid).await;
            if attempt == 0 {
                let _ = progress.send((index, Progress::Started));
            }
            let url = slot.endpoint().url.clone();
            let mut streamed = false;
            let outcome = self
                .attempt(&slot, route, &body, request, &mut |text| {
                    streamed = true;
                    let _ = progress.send((index, Progress::Token(text)));
                })
                .await;
            match outcome {
                Ok(generation) => {
                    self.pool.succeeded(slot.index);
                    return (index, Ok(generation));
                }
                Err(AttemptError::Fatal(message)) => {
                    return (
                        index,
                        Err(EngineError::Generation(format!("{url}: {message}"))),
                    );
                }
                Err(AttemptError::Retry {
                    message,
                    retry_after,
                }) => {
                    self.pool.failed(slot.index, retry_after);
                    if streamed {
                        let _ = progress.send((index, Progress::Restarted));
                    }
                    tracing::warn!("{url}: attempt {} failed: {message}", attempt + 1);
                    last_error = format!("{url}: {message}");
                    avoid = Some(slot.index);
                }
            }
        }
        let tries = if attempts == 1 {
            "1 attempt".to_string()
        } else {
            format!("{attempts} attempts")
        };
        (
            index,
            Err(EngineError::Generation(format!(
                "gave up after {tries}; last error: {last_error}"
            ))),
        )
    }

    async fn attempt(
        &self,
        slot: &Slot<'_>,
        route: Route,
        body: &serde_json::Value,
        request: &GenerationRequest,
        on_text: &mut dyn FnMut(String),
    ) -> Result<Generation, AttemptError> {
        let endpoint = slot.endpoint();
        let mut builder = self
            .client
            .post(format!("{}/{}", endpoint.url, route.path()))
            .timeout(seconds_between(self.settings.timeout_s, 0.001, 86_400.0))
            .json(body);
        if let Some(key) = &endpoint.api_key {
            builder = builder.bearer_auth(key);
        }
        let start = Instant::now();
        let response = builder.send().await.map_err(|e| retry(describe(&e)))?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                // `Retry-After: NaN` from a broken server is no reason to wait, or to panic.
                .filter(|s| s.is_finite())
                .map(|s| seconds_between(s, 0.0, 3600.0));
            // Only the start of an error body is shown; the rest is not worth reading.
            let body = match read_capped(response, MAX_ERROR_BODY_BYTES).await {
                Ok(body) | Err(ReadFault::TooLarge(body)) => body,
                Err(ReadFault::Broken(_)) => Vec::new(),
            };
            let text = String::from_utf8_lossy(&body);
            let detail = serde_json::from_str(&text)
                .ok()
                .and_then(|v| wire::error_message(&v))
                .unwrap_or_else(|| text.chars().take(300).collect());
            let message = format!("HTTP {status}: {detail}");
            let retryable = status.as_u16() == 429 || status.as_u16() == 408;
            return Err(if retryable || status.is_server_error() {
                AttemptError::Retry {
                    message,
                    retry_after,
                }
            } else {
                AttemptError::Fatal(message)
            });
        }
        let mut reply = Reply::default();
        let mut first_token = None;
        if self.settings.stream {
            let mut decoder = SseDecoder::default();
            let mut bytes = response.bytes_stream();
            let mut done = false;
            let mut received = 0usize;
            while let Some(chunk) = bytes.next().await {
                let chunk = chunk.map_err(|e| {
                    retry(format!("the connection broke mid-reply: {}", describe(&e)))
                })?;
                received += chunk.len();
                if received > MAX_REPLY_BYTES {
                    return Err(too_large());
                }
                for data in decoder.feed(&chunk).map_err(|e| retry(e.to_string()))? {
                    match data {
                        SseData::Done => done = true,
                        SseData::Json(value) => {
                            if let Some(text) =
                                reply.absorb(&value).map_err(|e| retry(e.to_string()))?
                            {
                                first_token.get_or_insert_with(Instant::now);
                                on_text(text);
                            }
                        }
                    }
                }
            }
            if !done && reply.finish.is_none() {
                return Err(retry(
                    "the event stream ended before the reply was complete",
                ));
            }
        } else {
            let bytes = match read_capped(response, MAX_REPLY_BYTES).await {
                Ok(bytes) => bytes,
                Err(ReadFault::TooLarge(_)) => return Err(too_large()),
                Err(ReadFault::Broken(e)) => {
                    return Err(retry(format!("the connection broke mid-reply: {e}")));
                }
            };
            let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
                let shown: String = String::from_utf8_lossy(&bytes).chars().take(120).collect();
                retry(format!("malformed JSON reply ({e}): {shown}"))
            })?;
            if let Some(text) = reply.absorb(&value).map_err(|e| retry(e.to_string()))? {
                first_token = Some(Instant::now());
                on_text(text);
            }
        }
        Ok(finish(reply, request, start, first_token))
    }
}

/// A reqwest error in words, with its cause (reqwest's own text omits it).
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut text = format!("{kind}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn finish(
    reply: Reply,
    request: &GenerationRequest,
    start: Instant,
    first_token: Option<Instant>,
) -> Generation {
    let total = start.elapsed();
    let mut finish = reply.finish.unwrap_or(FinishReason::EndOfText);
    // The agent makes one call per step; a server's further calls in the same reply are
    // left for the model to make again once it has the first result.
    let calls_as = request
        .tools
        .as_ref()
        .map_or(CallsAs::Hermes, |offer| offer.calls);
    let mut text = match (reply.tool_calls.first(), calls_as) {
        (None, _) => reply.text,
        (Some(call), CallsAs::Hermes) => {
            finish = FinishReason::EndOfText;
            call.as_hermes()
        }
        // What promptfoo's OpenAI provider returns: the calls, or the whole message when
        // the model also wrote text.
        (Some(_), CallsAs::OpenAi) => {
            finish = FinishReason::EndOfText;
            let calls: Vec<serde_json::Value> = reply
                .tool_calls
                .iter()
                .enumerate()
                .map(|(n, call)| call.as_openai(n))
                .collect();
            if reply.text.is_empty() {
                serde_json::Value::from(calls).to_string()
            } else {
                serde_json::json!({"role": "assistant", "content": reply.text, "tool_calls": calls})
                    .to_string()
            }
        }
    };
    // Servers differ in how many stop sequences they honour; cut locally as well.
    if reply.tool_calls.is_empty()
        && let Some(cut) = cut_at_stop(&text, &request.params.stop)
    {
        text.truncate(cut);
        finish = FinishReason::StopSequence;
    }
    let completion_tokens = reply.completion_tokens.unwrap_or(reply.chunks);
    let ttft = first_token.map_or(total, |t| t.duration_since(start));
    let decoding = total.saturating_sub(ttft).as_secs_f64();
    let measured_rate = (completion_tokens > 1 && decoding > 0.0)
        .then(|| f64::from(completion_tokens - 1) / decoding);
    Generation {
        text,
        finish,
        prompt_tokens: reply.prompt_tokens.unwrap_or(0),
        completion_tokens,
        ttft_ms: ttft.as_secs_f64() * 1000.0,
        total_ms: total.as_secs_f64() * 1000.0,
        prompt_tokens_per_s: reply.prompt_tokens_per_s,
        tokens_per_s: reply.tokens_per_s.or(measured_rate),
        cached_prompt_tokens: reply.cached_tokens.unwrap_or(0),
        logprobs: reply.logprobs,
    }
}

/// Passes a running request's progress to the caller, keeping its streamed text.
fn forward(
    on_event: &mut dyn FnMut(GenerationEvent) -> Flow,
    index: usize,
    update: Progress,
    partial: &mut [Option<String>],
) -> Flow {
    match update {
        Progress::Started => {
            partial[index] = Some(String::new());
            on_event(GenerationEvent::Started(index))
        }
        Progress::Token(text) => {
            if let Some(so_far) = partial[index].as_mut() {
                so_far.push_str(&text);
            }
            on_event(GenerationEvent::Token(index, text))
        }
        Progress::Restarted => {
            partial[index] = Some(String::new());
            Flow::Continue
        }
    }
}

impl Engine for OpenAiEngine {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // The server applies its model's template; a model without one fails there.
            chat_template: true,
            grammar: true,
            parallel_sequences: u32::try_from(self.pool.capacity()).unwrap_or(u32::MAX),
            context_size: 0,
            tool_calls: true,
            image_input: false,
            embeddings: false,
            runs_on: None,
            offload_note: None,
        }
    }

    fn render_prompt(&self, prompt: &RenderedPrompt) -> Result<String, EngineError> {
        // The chat template lives on the server; show the messages as sent.
        Ok(prompt.to_plain_text())
    }

    fn count_tokens(&self, _text: &str) -> Result<usize, EngineError> {
        Err(EngineError::Generation(
            "a remote model's tokenizer is on its server: token counts are not available".into(),
        ))
    }

    fn generate_batch(
        &mut self,
        requests: &[GenerationRequest],
        on_event: &mut dyn FnMut(GenerationEvent) -> Flow,
    ) {
        let this = &*self;
        this.runtime.block_on(async {
            let (progress, mut updates) = unbounded_channel();
            let mut running: FuturesUnordered<_> = requests
                .iter()
                .enumerate()
                .map(|(i, request)| this.run_one(i, request, progress.clone()))
                .collect();
            drop(progress);
            // Text streamed so far per request, reported if the caller cancels.
            let mut partial: Vec<Option<String>> = vec![None; requests.len()];
            let mut flow = Flow::Continue;
            while flow == Flow::Continue {
                tokio::select! {
                    biased;
                    Some((index, update)) = updates.recv() => {
                        flow = forward(on_event, index, update, &mut partial);
                    }
                    Some((index, outcome)) = running.next(), if !running.is_empty() => {
                        // Tokens sent just before the request ended come first.
                        while let Ok((i, update)) = updates.try_recv() {
                            if forward(on_event, i, update, &mut partial) == Flow::Stop {
                                flow = Flow::Stop;
                            }
                        }
                        partial[index] = None;
                        if on_event(GenerationEvent::Finished(index, outcome)) == Flow::Stop {
                            flow = Flow::Stop;
                        }
                    }
                    else => break,
                }
            }
            if flow == Flow::Stop {
                // Requests in flight end as cancelled with what they had; dropping their
                // futures closes their connections.
                drop(running);
                for (index, text) in partial.into_iter().enumerate() {
                    if let Some(text) = text {
                        let generation = Generation::cancelled(text);
                        on_event(GenerationEvent::Finished(index, Ok(generation)));
                    }
                }
            }
        });
    }
}
