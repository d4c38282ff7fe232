//! The way into one served model: its engine behind a [`Batcher`], so a request that
//! arrives while others decode joins their batch at the next step, and the GGUF's chat
//! template for requests with tools.

use axum::http::StatusCode;

use super::{ApiError, error};
use crate::engine::batcher::Batcher;
use crate::engine::chat_template::ChatTemplate;
use crate::engine::{EngineWorker, GenerationRequest, WorkerEvent};

/// The way into one model's engine.
pub(super) struct ModelQueue {
    batcher: Batcher,
    /// The GGUF's chat template, for requests with `tools` (rendered here, not by the engine).
    pub template: Option<ChatTemplate>,
}

impl ModelQueue {
    pub fn start(worker: EngineWorker, template: Option<ChatTemplate>) -> ModelQueue {
        ModelQueue {
            batcher: Batcher::start(worker),
            template,
        }
    }

    /// Sends a request; its events arrive on `events` (a client that goes away closes it,
    /// and its request stops at the next token).
    pub fn submit(
        &self,
        request: GenerationRequest,
        events: tokio::sync::mpsc::UnboundedSender<WorkerEvent>,
    ) -> Result<(), ApiError> {
        self.batcher.submit(request, Box::new(events)).map_err(|e| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                e.to_string(),
            )
        })
    }
}
