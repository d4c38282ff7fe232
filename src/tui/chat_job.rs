//! The playground's worker thread: keeps the last model loaded between messages, lets it
//! go after it sits idle, and streams each reply's tokens.

use std::time::{Duration, Instant};

use promptlab::engine::{
    CancelToken, EngineWorker, GenerationEvent, GenerationRequest, WorkerEvent,
};
use promptlab::run;
use tokio::sync::mpsc::UnboundedSender;

use super::app::Event;
use super::playground::{ChatEvent, ChatReply};

pub struct ChatJob {
    pub model_name: String,
    pub model: promptlab::catalog::ModelEntry,
    pub request: GenerationRequest,
    pub cancel: CancelToken,
}

/// The playground's engine thread: keeps the last model loaded between messages (until
/// it has been idle for `idle`) and streams each reply's tokens.
pub fn spawn(tx: UnboundedSender<Event>, idle: Duration) -> std::sync::mpsc::Sender<ChatJob> {
    let (jobs, incoming) = std::sync::mpsc::channel::<ChatJob>();
    std::thread::spawn(move || {
        let send = |event: ChatEvent| tx.send(Event::Chat(event)).is_ok();
        let mut loaded: Option<(String, promptlab::catalog::ModelEntry, EngineWorker)> = None;
        loop {
            let job = match incoming.recv_timeout(idle) {
                Ok(job) => job,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if let Some((model, _, _)) = loaded.take()
                        && !send(ChatEvent::Unloaded { model, idle })
                    {
                        break;
                    }
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            };
            if loaded
                .as_ref()
                .is_none_or(|(_, entry, _)| *entry != job.model)
            {
                loaded = None;
                send(ChatEvent::Loading(job.model_name.clone()));
                let started = Instant::now();
                let model = promptlab::catalog::ModelRef {
                    name: job.model_name.clone(),
                    entry: Some(job.model.clone()),
                };
                match run::chat_worker(&model) {
                    Ok(worker) => {
                        send(ChatEvent::Loaded {
                            model: job.model_name.clone(),
                            load_ms: started.elapsed().as_secs_f64() * 1000.0,
                            runs_on: worker.capabilities().runs_on.clone(),
                            note: worker.capabilities().offload_note.clone(),
                        });
                        loaded = Some((job.model_name.clone(), job.model.clone(), worker));
                    }
                    Err(err) => {
                        send(ChatEvent::Done(Err(format!(
                            "cannot load {}: {err}",
                            job.model_name
                        ))));
                        continue;
                    }
                }
            }
            let Some((_, _, worker)) = &loaded else {
                continue;
            };
            let events = worker.generate(vec![job.request], job.cancel);
            let mut done = false;
            for event in events {
                match event {
                    WorkerEvent::Generation(GenerationEvent::Token(_, text)) => {
                        send(ChatEvent::Token(text));
                    }
                    WorkerEvent::Generation(GenerationEvent::Finished(_, result)) => {
                        done = true;
                        send(ChatEvent::Done(
                            result
                                .map(|g| ChatReply {
                                    text: g.text,
                                    completion_tokens: g.completion_tokens,
                                    tokens_per_s: g.tokens_per_s,
                                })
                                .map_err(|e| e.to_string()),
                        ));
                    }
                    WorkerEvent::Generation(GenerationEvent::Started(_)) => {}
                    WorkerEvent::BatchDone => break,
                }
            }
            if !done {
                send(ChatEvent::Done(Err(
                    "the engine stopped without a reply".into()
                )));
            }
        }
    });
    jobs
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use promptlab::prompt::RenderedPrompt;

    use super::*;

    fn smollm2() -> promptlab::catalog::ModelEntry {
        let cache = std::env::var_os("PROMPTLAB_MODELS_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/promptlab/models")
            });
        let path = cache.join("SmolLM2-135M-Instruct.Q4_1.gguf");
        assert!(path.is_file(), "run scripts/fetch-models.sh first");
        serde_json::from_value(serde_json::json!({ "path": path })).unwrap()
    }

    fn ask(jobs: &std::sync::mpsc::Sender<ChatJob>) {
        let job = ChatJob {
            model_name: "smollm2".into(),
            model: smollm2(),
            request: GenerationRequest {
                prompt: RenderedPrompt::Chat(vec![promptlab::prompt::ChatMessage {
                    role: "user".into(),
                    content: "Hi".into(),
                }]),
                params: promptlab::params::SamplingParams {
                    max_tokens: 4,
                    ..Default::default()
                },
                schema: None,
                grammar: None,
                tools: None,
            },
            cancel: CancelToken::new(),
        };
        jobs.send(job).unwrap();
    }

    fn next_chat(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Event>) -> ChatEvent {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match rx.try_recv() {
                Ok(Event::Chat(event)) => return event,
                Ok(_) => {}
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(_) => panic!("no chat event within 120 s"),
            }
        }
    }

    /// A playground model is kept between messages, let go after sitting idle (its
    /// memory back to the machine), and loaded again by the next message.
    #[test]
    fn an_idle_playground_model_is_unloaded_then_loads_again() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let jobs = spawn(tx, Duration::from_millis(1500));
        let mut replies = 0;
        let mut loads = 0;
        ask(&jobs);
        ask(&jobs);
        // Two messages in a row: one load.
        while replies < 2 {
            match next_chat(&mut rx) {
                ChatEvent::Loading(_) => loads += 1,
                ChatEvent::Done(result) => {
                    result.unwrap();
                    replies += 1;
                }
                ChatEvent::Unloaded { .. } => panic!("unloaded while busy"),
                _ => {}
            }
        }
        assert_eq!(loads, 1);
        let ChatEvent::Unloaded { model, idle } = next_chat(&mut rx) else {
            panic!("expected the idle model to be unloaded");
        };
        assert_eq!(
            (model.as_str(), idle),
            ("smollm2", Duration::from_millis(1500))
        );
        ask(&jobs);
        assert!(matches!(next_chat(&mut rx), ChatEvent::Loading(_)));
        loop {
            if let ChatEvent::Done(result) = next_chat(&mut rx) {
                result.unwrap();
                break;
            }
        }
    }
}
