//! The run screen's worker: plans a run (a new one, or one being resumed), records it in
//! the run store and executes it, prompt and agent eval sets alike, forwarding progress
//! as run events.

use std::path::Path;

use anyhow::{Context, Result};
use promptlab::agent::eval::runner::{
    AgentEvalEvent, AgentEvalOptions, AgentEvalPlan, Recording as AgentRecording, resume_options,
};
use promptlab::engine::{CancelToken, Flow};
use promptlab::evalset::EvalSet;
use promptlab::project::Project;
use promptlab::run::{
    self, CellResult, ExecuteOptions, Recording, ResumeFrom, RunObserver, RunOptions, StoredConfig,
};
use promptlab::store::RunStore;
use tokio::sync::mpsc::UnboundedSender;

use super::app::{CellOutcome, Event, RunEvent, RunRequest};

/// Plans, records and executes a run, forwarding progress; returns its last event.
pub fn run_job(
    root: &Path,
    store_path: &Path,
    request: RunRequest,
    tx: UnboundedSender<Event>,
    cancel: &CancelToken,
) -> Result<RunEvent> {
    if request.agent {
        return run_agent_job(root, request, tx, cancel);
    }
    let eval_set = EvalSet::load(&request.eval_set)?;
    let project = Project::open(root).context("cannot open the project")?;
    let mut store = RunStore::open(store_path)?;
    let options = match request.resume {
        // A resume selects exactly what the interrupted run selected.
        Some(id) => StoredConfig::to_resume(&store, &request.eval_set, ResumeFrom::Run(id))?.1,
        None => RunOptions {
            seed_offset: 0,
            prompts: request.prompts,
            models: request.models,
            tags: Vec::new(),
            limit: None,
            judge: None,
            params: Default::default(),
        },
    };
    let plan = run::plan(&project, eval_set, &options)?;
    let recording = Recording::begin(
        &mut store,
        &plan,
        &request.eval_set,
        &options,
        request.resume,
        true,
    )?;
    let run_id = recording.run_id;
    let _ = tx.send(Event::Run(RunEvent::Started {
        run_id: Some(run_id),
        cells: plan
            .cells
            .iter()
            .map(|c| {
                (
                    plan.columns[c.column].id.clone(),
                    plan.cases[c.case].id.clone(),
                )
            })
            .collect(),
    }));
    let mut observer = Forward { tx };
    let result = run::execute(
        &plan,
        &ExecuteOptions::default(),
        &mut observer,
        cancel,
        Some(recording),
    )?;
    Ok(RunEvent::Finished {
        run_id: Some(run_id),
        cancelled: result.cancelled || cancel.is_cancelled(),
        duration_s: result.duration_s,
    })
}

/// An agent eval set through the library's runner: each question is a cell, its reply
/// tokens stream, and the run and every trace go to the store.
fn run_agent_job(
    root: &Path,
    request: RunRequest,
    tx: UnboundedSender<Event>,
    cancel: &CancelToken,
) -> Result<RunEvent> {
    let (options, recording) = match request.resume {
        Some(id) => {
            let store = RunStore::open(&promptlab::project::store_path(root))?;
            let (id, options) = resume_options(&store, &request.eval_set, Some(id))?;
            (options, AgentRecording::Resume(id))
        }
        None => (
            AgentEvalOptions {
                models: request.models,
                prompts: request.prompts,
                ..AgentEvalOptions::default()
            },
            AgentRecording::New,
        ),
    };
    let plan = AgentEvalPlan::new(root, &request.eval_set, options, true)?;
    let forward = Forward { tx };
    // The runner creates the run; its id comes with `Finished`.
    forward.send(RunEvent::Started {
        run_id: request.resume,
        cells: plan.cell_labels(),
    });
    let outcome = plan.run(recording, cancel, &mut |event| {
        match event {
            AgentEvalEvent::Loading { model } => {
                forward.send(RunEvent::ModelLoading(model.to_string()))
            }
            AgentEvalEvent::Loaded { model, load_ms } => forward.send(RunEvent::ModelLoaded {
                model: model.to_string(),
                load_ms,
            }),
            AgentEvalEvent::Asking { index } => forward.send(RunEvent::CellStarted(index)),
            AgentEvalEvent::Token { index, text } => {
                forward.send(RunEvent::Token(index, text.to_string()))
            }
            // Each step's outcome under its reply, so the stream reads as the trace.
            AgentEvalEvent::Step { index, step } => {
                let outcome = match step.outcome() {
                    Some(Ok(value)) => format!("\n→ {value}\n\n"),
                    Some(Err(error)) => format!("\n→ error: {error}\n\n"),
                    None => "\n".to_string(),
                };
                forward.send(RunEvent::Token(index, outcome))
            }
            AgentEvalEvent::Question(answered) => {
                forward.send(RunEvent::CellFinished(
                    answered.index,
                    CellOutcome {
                        passed: answered.passed,
                        cached: answered.resumed,
                        error: answered.trace.error.clone(),
                        score: answered.score,
                        completion_tokens: answered.trace.generated_tokens(),
                    },
                ));
            }
        }
        Flow::Continue
    })?;
    Ok(RunEvent::Finished {
        run_id: outcome.run_id,
        cancelled: outcome.cancelled,
        duration_s: outcome.result.duration_s,
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
}
