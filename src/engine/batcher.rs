//! One engine, many callers: each submits requests from its own thread or task, and the
//! engine decodes them together, admitting each at its next step (continuous batching).
//! Every event goes back to the caller that sent the request. `serve`'s clients and the
//! questions of a batched agent evaluation share a model this way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use super::chat_template::ChatTemplate;
use super::{
    CancelToken, Capabilities, EngineError, EngineWorker, Flow, GenerationEvent, GenerationRequest,
    Generator, RequestFeed, WorkerEvent,
};

/// Where a request's events go. A caller that has gone is not decoded for any longer.
pub trait EventSink: Send {
    fn deliver(&self, event: WorkerEvent);
    fn is_closed(&self) -> bool;
}

impl EventSink for tokio::sync::mpsc::UnboundedSender<WorkerEvent> {
    fn deliver(&self, event: WorkerEvent) {
        let _ = self.send(event);
    }
    fn is_closed(&self) -> bool {
        tokio::sync::mpsc::UnboundedSender::is_closed(self)
    }
}

/// A request on its way to the engine, and where its events go.
struct Submission {
    request: GenerationRequest,
    sink: Box<dyn EventSink>,
}

type Sinks = Arc<Mutex<HashMap<usize, Box<dyn EventSink>>>>;

/// The feed the engine reads: submissions in arrival order, and which callers have left.
struct SubmissionFeed {
    submissions: Arc<Mutex<mpsc::Receiver<Submission>>>,
    sinks: Sinks,
    taken: usize,
    /// Set when every sender is gone: nobody can submit any more.
    closed: Arc<AtomicBool>,
}

impl RequestFeed for SubmissionFeed {
    fn next_request(&mut self, wait: bool) -> Option<GenerationRequest> {
        let submission = {
            let receiver = self.submissions.lock().ok()?;
            if wait {
                match receiver.recv() {
                    Ok(submission) => submission,
                    Err(_) => {
                        self.closed.store(true, Ordering::SeqCst);
                        return None;
                    }
                }
            } else {
                receiver.try_recv().ok()?
            }
        };
        if let Ok(mut sinks) = self.sinks.lock() {
            sinks.insert(self.taken, submission.sink);
        }
        self.taken += 1;
        Some(submission.request)
    }

    fn abandoned(&self, index: usize) -> bool {
        self.sinks
            .lock()
            .map(|sinks| sinks.get(&index).is_none_or(|sink| sink.is_closed()))
            .unwrap_or(true)
    }
}

/// The way into one engine for many callers.
pub struct Batcher {
    submissions: Mutex<mpsc::Sender<Submission>>,
    capabilities: Capabilities,
}

impl Batcher {
    /// Keeps a feed running on `worker` and routes its events, on a thread of its own.
    pub fn start(worker: EngineWorker) -> Batcher {
        let capabilities = worker.capabilities().clone();
        let (tx, rx) = mpsc::channel::<Submission>();
        let submissions = Arc::new(Mutex::new(rx));
        let spawned = std::thread::Builder::new()
            .name("batcher".into())
            .spawn(move || route(worker, submissions));
        if let Err(err) = spawned {
            tracing::error!("cannot start the batcher thread: {err}");
        }
        Batcher {
            submissions: Mutex::new(tx),
            capabilities,
        }
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// Sends `request` to the engine; its events arrive at `sink`, the last one a
    /// [`WorkerEvent::BatchDone`].
    pub fn submit(
        &self,
        request: GenerationRequest,
        sink: Box<dyn EventSink>,
    ) -> Result<(), EngineError> {
        let stopped = || EngineError::Crashed("the model's engine has stopped".into());
        let tx = self.submissions.lock().map_err(|_| stopped())?;
        tx.send(Submission { request, sink }).map_err(|_| stopped())
    }

    /// Sends `request` and returns its events to a thread that waits for them. Dropping
    /// the [`Reply`] abandons the request.
    pub fn ask(&self, request: GenerationRequest) -> Result<Reply, EngineError> {
        let (tx, rx) = mpsc::channel();
        let gone = Arc::new(AtomicBool::new(false));
        self.submit(
            request,
            Box::new(ThreadSink {
                tx,
                gone: gone.clone(),
            }),
        )?;
        Ok(Reply { rx, gone })
    }
}

/// Keeps a feed running on the worker and sends each event to its request's sink. A feed
/// ends when every submitter is gone, or when the engine failed: the requests in flight
/// then get their end, and a new feed takes the next ones.
fn route(worker: EngineWorker, submissions: Arc<Mutex<mpsc::Receiver<Submission>>>) {
    let closed = Arc::new(AtomicBool::new(false));
    while !closed.load(Ordering::SeqCst) {
        let sinks: Sinks = Arc::default();
        let feed = SubmissionFeed {
            submissions: submissions.clone(),
            sinks: sinks.clone(),
            taken: 0,
            closed: closed.clone(),
        };
        let mut heard = false;
        for event in worker.generate_feed(Box::new(feed), CancelToken::new()) {
            let WorkerEvent::Generation(event) = event else {
                break;
            };
            heard = true;
            let index = event.index();
            let finished = matches!(event, GenerationEvent::Finished(..));
            let Ok(mut sinks) = sinks.lock() else {
                break;
            };
            if let Some(sink) = sinks.get(&index) {
                sink.deliver(WorkerEvent::Generation(event));
            }
            if finished && let Some(sink) = sinks.remove(&index) {
                sink.deliver(WorkerEvent::BatchDone);
            }
        }
        if let Ok(mut sinks) = sinks.lock() {
            for (_, sink) in sinks.drain() {
                sink.deliver(WorkerEvent::BatchDone);
            }
        }
        if !heard {
            // The engine thread is gone: dropping the receiver makes later submissions
            // fail at once instead of waiting for nobody.
            break;
        }
    }
}

/// A sink for a caller on a plain thread.
struct ThreadSink {
    tx: mpsc::Sender<WorkerEvent>,
    gone: Arc<AtomicBool>,
}

impl EventSink for ThreadSink {
    fn deliver(&self, event: WorkerEvent) {
        let _ = self.tx.send(event);
    }
    fn is_closed(&self) -> bool {
        self.gone.load(Ordering::SeqCst)
    }
}

/// The events of one request sent with [`Batcher::ask`]; dropping it abandons the request.
pub struct Reply {
    rx: mpsc::Receiver<WorkerEvent>,
    gone: Arc<AtomicBool>,
}

impl Reply {
    /// The next event; `None` once the request is over.
    pub fn next_event(&self) -> Option<GenerationEvent> {
        match self.rx.recv() {
            Ok(WorkerEvent::Generation(event)) => Some(event),
            Ok(WorkerEvent::BatchDone) | Err(_) => None,
        }
    }

    /// Stops the request at its next token.
    pub fn abandon(&self) {
        self.gone.store(true, Ordering::SeqCst);
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        self.abandon();
    }
}

/// A conversation's share of a batched engine: its requests decode together with the
/// other conversations' (each keeps its own slot's cache between its steps).
pub struct SharedModel {
    batcher: Arc<Batcher>,
    template: Option<ChatTemplate>,
}

impl SharedModel {
    pub fn new(batcher: Arc<Batcher>, template: Option<ChatTemplate>) -> SharedModel {
        SharedModel { batcher, template }
    }
}

impl Generator for SharedModel {
    fn chat_template(&self) -> Option<&ChatTemplate> {
        self.template.as_ref()
    }

    fn calls_tools_itself(&self) -> bool {
        false
    }

    fn generate(
        &mut self,
        request: &GenerationRequest,
        on_event: &mut dyn FnMut(GenerationEvent) -> Flow,
    ) {
        let reply = match self.batcher.ask(request.clone()) {
            Ok(reply) => reply,
            Err(err) => {
                on_event(GenerationEvent::Finished(0, Err(err)));
                return;
            }
        };
        let mut finished = false;
        while let Some(event) = reply.next_event() {
            let event = match event {
                GenerationEvent::Started(_) => GenerationEvent::Started(0),
                GenerationEvent::Token(_, text) => GenerationEvent::Token(0, text),
                GenerationEvent::Finished(_, outcome) => {
                    finished = true;
                    GenerationEvent::Finished(0, outcome)
                }
            };
            if on_event(event) == Flow::Stop {
                // It finishes as cancelled at its next token.
                reply.abandon();
            }
        }
        if !finished {
            on_event(GenerationEvent::Finished(
                0,
                Err(EngineError::Crashed("the model's engine stopped".into())),
            ));
        }
    }
}
