//! The run screen's worker: plans a run (a new one, or one being resumed), records it in
//! the run store and executes it, prompt and agent eval sets alike, forwarding progress
//! as run events.

use std::path::Path;

use anyhow::Result;
use promptlab::engine::CancelToken;
use promptlab::evaluation::{Evaluation, Request, StoreChoice};
use promptlab::run::{CellResult, ExecuteOptions, ResumeFrom, RunObserver};
use promptlab::trace::AgentStep;
use tokio::sync::mpsc::UnboundedSender;

use super::app::{CellOutcome, Event, RunEvent, RunRequest};

/// Plans, records and executes a run of any eval set (prompt or agent) through the
/// library's one way of starting an evaluation, forwarding progress; returns its last
/// event.
pub fn run_job(
    root: &Path,
    store_path: &Path,
    request: RunRequest,
    tx: UnboundedSender<Event>,
    cancel: &CancelToken,
) -> Result<RunEvent> {
    let mut evaluation = Evaluation::prepare(Request {
        eval_set: request.eval_set,
        project: Some(root.to_path_buf()),
        prompts: request.prompts,
        models: request.models,
        store: StoreChoice::At(store_path.to_path_buf()),
        resume: request.resume.map(ResumeFrom::Run),
        use_cache: true,
        ..Request::default()
    })?;
    let mut observer = Forward { tx };
    // A new agent run gets its id when it finishes (see `Evaluation::begin`).
    let run_id = evaluation.begin()?;
    observer.send(RunEvent::Started {
        run_id,
        cells: evaluation.cell_labels(),
    });
    let finished = evaluation.execute(&ExecuteOptions::default(), &mut observer, cancel)?;
    Ok(RunEvent::Finished {
        run_id: finished.run_id,
        cancelled: finished.result.cancelled || cancel.is_cancelled(),
        duration_s: finished.result.duration_s,
    })
}

struct Forward {
    tx: UnboundedSender<Event>,
}

impl Forward {
    fn send(&self, event: RunEvent) {
        let _ = self.tx.send(Event::Run(event));
    }
}

impl RunObserver for Forward {
    fn model_loading(&mut self, model: &str) {
        self.send(RunEvent::ModelLoading(model.to_string()));
    }
    fn model_loaded(&mut self, model: &str, load_ms: f64) {
        self.send(RunEvent::ModelLoaded {
            model: model.to_string(),
            load_ms,
        });
    }
    fn model_placed(&mut self, model: &str, capabilities: &promptlab::engine::Capabilities) {
        self.send(RunEvent::ModelPlaced {
            runs_on: capabilities.runs_on.clone(),
            note: capabilities
                .offload_note
                .as_ref()
                .map(|note| format!("`{model}` {note}")),
        });
    }
    fn cell_started(&mut self, cell: usize) {
        self.send(RunEvent::CellStarted(cell));
    }
    fn token(&mut self, cell: usize, text: &str) {
        self.send(RunEvent::Token(cell, text.to_string()));
    }
    fn cell_finished(&mut self, cell: usize, result: &CellResult) {
        self.send(RunEvent::CellFinished(
            cell,
            CellOutcome {
                passed: result.passed,
                cached: result.cached,
                error: result.error.clone().or_else(|| {
                    result
                        .assertions
                        .iter()
                        .find_map(|a| a.judge_error.clone())
                        .filter(|e| !e.starts_with("not judged yet"))
                }),
                score: result.score,
                completion_tokens: result.completion_tokens,
            },
        ));
    }
    fn cell_rescored(&mut self, cell: usize, result: &CellResult) {
        self.cell_finished(cell, result);
    }
    // Each agent step's outcome under its reply, so the stream reads as the trace.
    fn agent_step(&mut self, cell: usize, step: &AgentStep) {
        let outcome = match step.outcome() {
            Some(Ok(value)) => format!("\n→ {value}\n\n"),
            Some(Err(error)) => format!("\n→ error: {error}\n\n"),
            None => "\n".to_string(),
        };
        self.send(RunEvent::Token(cell, outcome));
    }
}
