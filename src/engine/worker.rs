//! Runs an engine on its own OS thread and talks to it over channels, so a caller (the
//! CLI's progress loop, the TUI) never blocks on a decode loop. Cancellation is a token
//! the engine checks between tokens: dropping a channel does not stop llama.cpp.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use super::chat_template::ChatTemplate;
use super::{
    Capabilities, Engine, EngineError, Flow, GenerationEvent, GenerationRequest, Generator,
    RequestFeed,
};
use crate::cancel::CancelToken;
use crate::prompt::RenderedPrompt;

/// What a worker reports while it runs a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerEvent {
    Generation(GenerationEvent),
    /// The batch is over (finished, cancelled or failed); no more events follow for it.
    BatchDone,
}

enum Job {
    Generate {
        requests: Vec<GenerationRequest>,
        events: Sender<WorkerEvent>,
        cancel: CancelToken,
    },
    Feed {
        feed: Box<dyn RequestFeed>,
        events: Sender<WorkerEvent>,
        cancel: CancelToken,
    },
    Render {
        prompt: RenderedPrompt,
        reply: Sender<Result<String, EngineError>>,
    },
    CountTokens {
        text: String,
        reply: Sender<Result<usize, EngineError>>,
    },
    Embed {
        text: String,
        reply: Sender<Result<Vec<f32>, EngineError>>,
    },
}

/// A handle to an engine running on its own thread. Dropping it stops the thread after
/// the current job.
pub struct EngineWorker {
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    capabilities: Capabilities,
    /// The model's own chat template, for callers that render conversations themselves
    /// (the agent, `serve`'s tool calls).
    chat_template: Option<ChatTemplate>,
}

impl EngineWorker {
    /// Starts a thread, builds the engine on it with `load` (engines need not be `Send`)
    /// and waits until it is ready or failed to load.
    pub fn spawn<F>(label: &str, load: F) -> Result<EngineWorker, EngineError>
    where
        F: FnOnce() -> Result<Box<dyn Engine>, EngineError> + Send + 'static,
    {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name(format!("engine {label}"))
            .spawn(move || {
                let engine = match catch_unwind(AssertUnwindSafe(load)) {
                    Ok(Ok(engine)) => engine,
                    Ok(Err(err)) => {
                        let _ = ready_tx.send(Err(err));
                        return;
                    }
                    Err(panic) => {
                        let _ = ready_tx.send(Err(EngineError::Crashed(panic_text(&panic))));
                        return;
                    }
                };
                let ready = (engine.capabilities(), engine.chat_template().cloned());
                let _ = ready_tx.send(Ok(ready));
                serve(engine, jobs_rx);
            })
            .map_err(|e| EngineError::Load(format!("cannot start engine thread: {e}")))?;
        let (capabilities, chat_template) = ready_rx
            .recv()
            .map_err(|_| EngineError::Crashed("engine thread ended while loading".into()))??;
        Ok(EngineWorker {
            jobs: Some(jobs_tx),
            thread: Some(thread),
            capabilities,
            chat_template,
        })
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }

    /// Starts generating `requests`; events arrive on the returned receiver, ending with
    /// [`WorkerEvent::BatchDone`].
    pub fn generate(
        &self,
        requests: Vec<GenerationRequest>,
        cancel: CancelToken,
    ) -> Receiver<WorkerEvent> {
        let (events, rx) = mpsc::channel();
        let job = Job::Generate {
            requests,
            events: events.clone(),
            cancel,
        };
        if self.send(job).is_err() {
            let _ = events.send(WorkerEvent::BatchDone);
        }
        rx
    }

    /// Generates every request `feed` yields, admitting each as soon as the engine can
    /// (continuous batching), until the feed closes or `cancel` is set. Events name a
    /// request by the order it was taken from the feed; [`WorkerEvent::BatchDone`] ends.
    pub fn generate_feed(
        &self,
        feed: Box<dyn RequestFeed>,
        cancel: CancelToken,
    ) -> Receiver<WorkerEvent> {
        let (events, rx) = mpsc::channel();
        let job = Job::Feed {
            feed,
            events: events.clone(),
            cancel,
        };
        if self.send(job).is_err() {
            let _ = events.send(WorkerEvent::BatchDone);
        }
        rx
    }

    pub fn render_prompt(&self, prompt: RenderedPrompt) -> Result<String, EngineError> {
        let (reply, rx) = mpsc::channel();
        self.send(Job::Render { prompt, reply })?;
        rx.recv().map_err(|_| stopped())?
    }

    pub fn count_tokens(&self, text: String) -> Result<usize, EngineError> {
        let (reply, rx) = mpsc::channel();
        self.send(Job::CountTokens { text, reply })?;
        rx.recv().map_err(|_| stopped())?
    }

    /// The sentence embedding of `text` (an engine with [`Capabilities::embeddings`]).
    pub fn embed(&self, text: String) -> Result<Vec<f32>, EngineError> {
        let (reply, rx) = mpsc::channel();
        self.send(Job::Embed { text, reply })?;
        rx.recv().map_err(|_| stopped())?
    }

    fn send(&self, job: Job) -> Result<(), EngineError> {
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())
    }
}

/// A conversation with a model of its own (the agent, the playground): one request at a
/// time, each stopped at its next token when the caller says so.
impl Generator for EngineWorker {
    fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }

    fn calls_tools_itself(&self) -> bool {
        self.capabilities.tool_calls
    }

    fn generate(
        &mut self,
        request: &GenerationRequest,
        on_event: &mut dyn FnMut(GenerationEvent) -> Flow,
    ) {
        let cancel = CancelToken::new();
        let events = EngineWorker::generate(self, vec![request.clone()], cancel.clone());
        let mut finished = false;
        while let Ok(WorkerEvent::Generation(event)) = events.recv() {
            finished |= matches!(event, GenerationEvent::Finished(..));
            if on_event(event) == Flow::Stop {
                cancel.cancel();
            }
        }
        if !finished {
            on_event(GenerationEvent::Finished(0, Err(stopped())));
        }
    }
}

impl Drop for EngineWorker {
    fn drop(&mut self) {
        // Closing the channel ends the serve loop; joining releases the model's memory
        // before the next model is loaded.
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(mut engine: Box<dyn Engine>, jobs: Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Generate {
                requests,
                events,
                cancel,
            } => {
                // A batch's requests not yet started fail too; a feed's are its owner's.
                let mut tracker = Unfinished((0..requests.len()).collect());
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    engine.generate_batch(&requests, &mut |event| {
                        tracker.forward(event, &events, &cancel)
                    })
                }));
                if let Err(panic) = outcome {
                    tracker.fail_all(&events, &panic);
                }
                let _ = events.send(WorkerEvent::BatchDone);
            }
            Job::Feed {
                mut feed,
                events,
                cancel,
            } => {
                let mut tracker = Unfinished::default();
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    engine.generate_feed(feed.as_mut(), &mut |event| {
                        tracker.forward(event, &events, &cancel)
                    })
                }));
                if let Err(panic) = outcome {
                    tracker.fail_all(&events, &panic);
                }
                let _ = events.send(WorkerEvent::BatchDone);
            }
            Job::Render { prompt, reply } => {
                let _ = reply.send(engine.render_prompt(&prompt));
            }
            Job::CountTokens { text, reply } => {
                let _ = reply.send(engine.count_tokens(&text));
            }
            Job::Embed { text, reply } => {
                // A panic in a kernel fails this text, not the worker's caller.
                let outcome = catch_unwind(AssertUnwindSafe(|| engine.embed(&text)))
                    .unwrap_or_else(|panic| Err(EngineError::Crashed(panic_text(&panic))));
                let _ = reply.send(outcome);
            }
        }
    }
}

/// The requests not yet finished, so that a panic inside the engine fails them rather
/// than leaving their callers waiting.
#[derive(Default)]
struct Unfinished(std::collections::BTreeSet<usize>);

impl Unfinished {
    fn forward(
        &mut self,
        event: GenerationEvent,
        events: &Sender<WorkerEvent>,
        cancel: &CancelToken,
    ) -> Flow {
        match &event {
            GenerationEvent::Started(i) => {
                self.0.insert(*i);
            }
            GenerationEvent::Finished(i, _) => {
                self.0.remove(i);
            }
            GenerationEvent::Token(..) => {}
        }
        // A caller that stopped listening has no use for more tokens.
        let listening = events.send(WorkerEvent::Generation(event)).is_ok();
        if !listening || cancel.is_cancelled() {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }

    fn fail_all(&self, events: &Sender<WorkerEvent>, panic: &Box<dyn std::any::Any + Send>) {
        let error = EngineError::Crashed(panic_text(panic));
        for &i in &self.0 {
            let event = GenerationEvent::Finished(i, Err(error.clone()));
            let _ = events.send(WorkerEvent::Generation(event));
        }
    }
}

fn stopped() -> EngineError {
    EngineError::Crashed("the engine thread has stopped".into())
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}
