//! The batcher in front of one served model: requests waiting when the model becomes free
//! (up to `parallel`) go to its engine worker as one batch, and each event is routed back
//! to its own client.

use std::sync::Mutex;

use axum::http::StatusCode;

use super::{ApiError, error};
use crate::engine::chat_template::ChatTemplate;
use crate::engine::{CancelToken, EngineWorker, GenerationEvent, GenerationRequest, WorkerEvent};

/// A request waiting for its model, and where its events go.
pub(super) struct Pending {
    pub request: GenerationRequest,
    pub events: tokio::sync::mpsc::UnboundedSender<WorkerEvent>,
}

/// The way into one model's batcher thread.
pub(super) struct ModelQueue {
    pending: Mutex<std::sync::mpsc::Sender<Pending>>,
    /// The GGUF's chat template, for requests with `tools` (rendered here, not by the engine).
    pub template: Option<ChatTemplate>,
}

impl ModelQueue {
    /// Starts the thread that takes every waiting request (up to `parallel`) as one batch
    /// whenever the worker is free, and routes each event to its request's client.
    pub fn start(
        worker: EngineWorker,
        parallel: usize,
        template: Option<ChatTemplate>,
    ) -> ModelQueue {
        let (tx, rx) = std::sync::mpsc::channel::<Pending>();
        std::thread::spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                while batch.len() < parallel {
                    match rx.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let cancel = CancelToken::new();
                let requests = batch.iter().map(|p| p.request.clone()).collect();
                for event in worker.generate(requests, cancel.clone()) {
                    let WorkerEvent::Generation(event) = event else {
                        break;
                    };
                    let index = match &event {
                        GenerationEvent::Started(i)
                        | GenerationEvent::Token(i, _)
                        | GenerationEvent::Finished(i, _) => *i,
                    };
                    if let Some(pending) = batch.get(index) {
                        let _ = pending.events.send(WorkerEvent::Generation(event));
                    }
                    // Nobody left listening: stop generating for this batch.
                    if batch.iter().all(|p| p.events.is_closed()) {
                        cancel.cancel();
                    }
                }
                for pending in &batch {
                    let _ = pending.events.send(WorkerEvent::BatchDone);
                }
            }
        });
        ModelQueue {
            pending: Mutex::new(tx),
            template,
        }
    }

    pub fn submit(&self, pending: Pending) -> Result<(), ApiError> {
        self.pending
            .lock()
            .map_err(|_| "queue poisoned")
            .and_then(|tx| {
                tx.send(pending)
                    .map_err(|_| "the model's queue has stopped")
            })
            .map_err(|why| error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", why))
    }
}
