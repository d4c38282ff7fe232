//! Executes a [`RunPlan`]: each model loaded once (a small local model as one instance
//! per core, see `workers`), fed every cell of that model; each result is scored as it
//! arrives.

use std::time::Instant;

mod chain;
pub(super) mod judging;
mod scripts;
mod workers;

use super::record::Recording;
use super::summary::{classification_reports, detection_reports, summarize};
use super::{CellResult, RunPlan, RunResult};
use crate::catalog::ModelRef;
use crate::engine::{
    CancelToken, EngineError, EngineWorker, FinishReason, Generation, GenerationEvent, OpenOptions,
    WorkerEvent,
};
use crate::score::assertion::{CheckInput, combine};
use crate::store::{RunStatus, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("judge: {0}")]
    Judge(String),
    /// The run asked for with `--resume` cannot be picked up again.
    #[error("{}{message}", run.map(|id| format!("--resume {id}: ")).unwrap_or_default())]
    Resume { run: Option<i64>, message: String },
}

#[derive(Debug, Clone, Default)]
pub struct ExecuteOptions {
    pub threads: Option<u32>,
    /// Cells decoded together per model (continuous batching).
    pub parallel: Option<u32>,
    /// Instances of each local model, sharing the threads; None: one per core for a
    /// small GGUF model (see `workers::count`).
    pub workers: Option<u32>,
}

/// Progress callbacks, so a terminal, a TUI or a test can watch a run. All default to
/// doing nothing.
pub trait RunObserver {
    fn model_loading(&mut self, _model: &str) {}
    fn model_loaded(&mut self, _model: &str, _load_ms: f64) {}
    /// Where a loaded model runs (`Capabilities::runs_on`), and why not on the GPU it
    /// asked for (`Capabilities::offload_note`).
    fn model_placed(&mut self, _model: &str, _capabilities: &crate::engine::Capabilities) {}
    fn cell_started(&mut self, _cell: usize) {}
    fn token(&mut self, _cell: usize, _text: &str) {}
    fn cell_finished(&mut self, _cell: usize, _result: &CellResult) {}
    /// Model-graded assertions are about to be judged: `_assertions` of them.
    fn judging(&mut self, _assertions: usize) {}
    /// `_count` more assertions were judged.
    fn judged(&mut self, _count: usize) {}
    /// A finished cell was scored again with its judges' verdicts.
    fn cell_rescored(&mut self, _cell: usize, _result: &CellResult) {}
    /// An agent question's step is done (a tool called, an answer given); agent sets
    /// only, between its tokens and its `cell_finished`.
    fn agent_step(&mut self, _cell: usize, _step: &crate::trace::AgentStep) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl RunObserver for Quiet {}

pub fn execute(
    plan: &RunPlan,
    options: &ExecuteOptions,
    observer: &mut dyn RunObserver,
    cancel: &CancelToken,
    mut recording: Option<Recording<'_>>,
) -> Result<RunResult, RunError> {
    let started_at = chrono::Local::now().to_rfc3339();
    let clock = Instant::now();
    let mut results: Vec<Option<CellResult>> = vec![None; plan.cells.len()];

    // Cases that read earlier outputs run in order, rendered again as outputs arrive.
    let chained;
    let plan = if plan.builder.is_chained() {
        chained = chain::execute_in_order(
            plan.clone(),
            options,
            observer,
            cancel,
            &mut recording,
            &mut results,
        )?;
        &chained
    } else {
        let all: Vec<usize> = (0..plan.cells.len()).collect();
        restore(plan, &all, observer, &mut recording, &mut results)?;
        // Columns of the same model share one loaded model.
        for model in models_in_order(plan) {
            if cancel.is_cancelled() {
                break;
            }
            let cell_ids: Vec<usize> = plan
                .cells
                .iter()
                .enumerate()
                .filter(|(i, cell)| {
                    results[*i].is_none() && plan.columns[cell.column].model == model.name
                })
                .map(|(i, _)| i)
                .collect();
            if cell_ids.is_empty() {
                continue;
            }
            observer.model_loading(&model.name);
            let load_start = Instant::now();
            let instances = workers::count(model, options, cell_ids.len());
            match workers::spawn(model, options, instances) {
                Ok(workers) => {
                    observer.model_loaded(&model.name, load_start.elapsed().as_secs_f64() * 1000.0);
                    if let Some(worker) = workers.first() {
                        observer.model_placed(&model.name, worker.capabilities());
                    }
                    generate(
                        plan,
                        &workers,
                        &cell_ids,
                        observer,
                        cancel,
                        &mut recording,
                        &mut results,
                    )?;
                }
                // The other models' results stay valid; this model's cells carry the error.
                Err(err) => fail(
                    plan,
                    &cell_ids,
                    &err,
                    observer,
                    &mut recording,
                    &mut results,
                )?,
            }
        }
        plan
    };

    let judge_time = judging::judge_cells(
        plan,
        options,
        &mut results,
        observer,
        cancel,
        &mut recording,
    )?;

    let cancelled = cancel.is_cancelled() || results.iter().any(Option::is_none);
    if let Some(recording) = recording.as_ref() {
        let status = if cancelled {
            RunStatus::Cancelled
        } else {
            RunStatus::Finished
        };
        recording
            .store
            .finish_run(recording.run_id, &chrono::Local::now().to_rfc3339(), status)?;
    }
    let cells: Vec<CellResult> = results.into_iter().flatten().collect();
    let summaries = summarize(plan, &cells);
    let classification = classification_reports(plan, &cells);
    let detection = detection_reports(plan, &cells);
    let judge_agreement = judging::agreements(plan.columns.len(), &plan.cases, &cells);
    Ok(RunResult {
        eval_set: plan.eval_set.name.clone(),
        eval_set_path: plan.eval_set.source.display().to_string(),
        started_at,
        duration_s: clock.elapsed().as_secs_f64(),
        cancelled,
        columns: plan.columns.clone(),
        cases: plan.cases.clone(),
        cells,
        summaries,
        classification,
        detection,
        judge_time,
        judge_agreement,
        pairwise: None,
    })
}

/// The run's models, each once, in column order.
fn models_in_order(plan: &RunPlan) -> Vec<&ModelRef> {
    let mut order: Vec<&ModelRef> = Vec::new();
    for model in &plan.models {
        if !order.iter().any(|m| m.name == model.name) {
            order.push(model);
        }
    }
    order
}

/// Fills in the cells among `ids` that need no model: recorded before an interruption
/// (when resuming), then cached generations.
fn restore(
    plan: &RunPlan,
    ids: &[usize],
    observer: &mut dyn RunObserver,
    recording: &mut Option<Recording<'_>>,
    results: &mut [Option<CellResult>],
) -> Result<(), RunError> {
    let Some(recording) = recording.as_mut() else {
        return Ok(());
    };
    let mut recorded: Vec<_> = recording
        .recorded(plan)?
        .into_iter()
        .filter(|(id, _)| ids.contains(id) && results[*id].is_none())
        .collect();
    recorded.sort_unstable_by_key(|(id, _)| *id);
    for (id, (generation, cached)) in recorded {
        // Scored again: assertions or expected values may have changed since.
        let mut cell = score_cell(plan, id, Ok(generation));
        cell.cached = cached;
        recording.record(plan, id, &cell)?;
        observer.cell_finished(id, &cell);
        results[id] = Some(cell);
    }
    let missing: Vec<usize> = ids
        .iter()
        .copied()
        .filter(|&i| results[i].is_none())
        .collect();
    let mut hits = recording.cached(plan, &missing)?;
    for id in missing {
        if let Some(generation) = hits.remove(&id) {
            let mut cell = score_cell(plan, id, Ok(generation));
            cell.cached = true;
            recording.record(plan, id, &cell)?;
            observer.cell_finished(id, &cell);
            results[id] = Some(cell);
        }
    }
    Ok(())
}

/// Generates the cells `cell_ids` on a model's loaded `workers`, scoring and recording
/// each as it finishes.
fn generate(
    plan: &RunPlan,
    workers: &[EngineWorker],
    cell_ids: &[usize],
    observer: &mut dyn RunObserver,
    cancel: &CancelToken,
    recording: &mut Option<Recording<'_>>,
    results: &mut [Option<CellResult>],
) -> Result<(), RunError> {
    let requests = cell_ids
        .iter()
        .map(|&i| plan.cells[i].request.clone())
        .collect();
    let events = workers::generate(workers, requests, cancel);
    for (i, event) in events {
        match event {
            WorkerEvent::BatchDone => break,
            WorkerEvent::Generation(GenerationEvent::Started(_)) => {
                observer.cell_started(cell_ids[i])
            }
            WorkerEvent::Generation(GenerationEvent::Token(_, text)) => {
                observer.token(cell_ids[i], &text)
            }
            WorkerEvent::Generation(GenerationEvent::Finished(_, outcome)) => {
                // A cancelled generation is unfinished work, not a result: leave the cell
                // missing so a resumed run generates it.
                if matches!(&outcome, Ok(g) if g.finish == FinishReason::Cancelled) {
                    continue;
                }
                let id = cell_ids[i];
                let result = score_cell(plan, id, outcome);
                if let Some(recording) = recording.as_mut() {
                    // Stop generating when the store cannot keep results.
                    if let Err(err) = recording.record(plan, id, &result) {
                        cancel.cancel();
                        return Err(err.into());
                    }
                }
                observer.cell_finished(id, &result);
                results[id] = Some(result);
            }
        }
    }
    Ok(())
}

/// Records `error` as the outcome of each of `cell_ids`.
fn fail(
    plan: &RunPlan,
    cell_ids: &[usize],
    error: &EngineError,
    observer: &mut dyn RunObserver,
    recording: &mut Option<Recording<'_>>,
    results: &mut [Option<CellResult>],
) -> Result<(), RunError> {
    for &id in cell_ids {
        let result = score_cell(plan, id, Err(error.clone()));
        if let Some(recording) = recording.as_mut() {
            recording.record(plan, id, &result)?;
        }
        observer.cell_finished(id, &result);
        results[id] = Some(result);
    }
    Ok(())
}

/// A worker for one chat conversation with a catalog language model (the TUI's
/// playground): a remote model, mistral.rs, or llama.cpp keeping the conversation's KV
/// cache from one message to the next.
pub fn chat_worker(model: &ModelRef) -> Result<EngineWorker, EngineError> {
    if !model
        .entry
        .as_ref()
        .is_some_and(|e| e.kind().is_language_model())
    {
        return Err(EngineError::Load(format!(
            "`{}` is not a chat model: a GGUF with a chat template or a `kind: openai` model is",
            model.name
        )));
    }
    crate::engine::open(model, &OpenOptions::conversations(1))
}

pub(super) fn spawn_worker(
    model: &ModelRef,
    options: &ExecuteOptions,
) -> Result<EngineWorker, EngineError> {
    crate::engine::open(
        model,
        &OpenOptions::batch(options.threads, options.parallel),
    )
}

fn score_cell(plan: &RunPlan, id: usize, outcome: Result<Generation, EngineError>) -> CellResult {
    let cell = &plan.cells[id];
    match outcome {
        Ok(generation) => {
            let context =
                scripts::needs_context(cell).then(|| scripts::context(plan, cell, &generation));
            let transformed = match &cell.transform {
                Some(transform) => match scripts::transform(transform, plan, cell, &generation) {
                    Ok(value) => Some(value),
                    Err(error) => return scripts::transform_failed(cell, generation, error),
                },
                None => None,
            };
            let text = transformed
                .as_ref()
                .map(crate::score::assertion::output_text);
            let input = CheckInput {
                output: text.as_deref().unwrap_or(&generation.text),
                latency_ms: Some(generation.total_ms),
                value: transformed.as_ref(),
                context: context.as_ref(),
                // promptfoo's echo provider reports no finish reason.
                finish: (!scripts::is_echo(plan, cell)).then_some(generation.finish),
                cost: scripts::cost(plan, cell, &generation),
                logprobs: generation.logprobs.as_deref(),
                tools: cell
                    .request
                    .tools
                    .as_ref()
                    .map(|offer| offer.tools.as_slice()),
            };
            let assertions: Vec<_> = cell.assertions.iter().map(|a| a.check(&input)).collect();
            let (passed, score) = combine(&assertions, cell.threshold);
            let judged_later = assertions.iter().any(|a| a.judge_error.is_some());
            generated_cell(
                cell,
                generation,
                None,
                passed && !judged_later,
                score,
                assertions,
            )
        }
        Err(err) => CellResult {
            column: cell.column,
            case: cell.case,
            prompt: cell.request.prompt.clone(),
            output: String::new(),
            error: Some(err.to_string()),
            passed: false,
            score: 0.0,
            assertions: Vec::new(),
            finish: None,
            prompt_tokens: 0,
            completion_tokens: 0,
            ttft_ms: 0.0,
            latency_ms: 0.0,
            tokens_per_s: None,
            cached: false,
            logprobs: None,
        },
    }
}

/// The result of a cell the engine generated, with its timings and token counts.
pub(super) fn generated_cell(
    cell: &crate::run::PlannedCell,
    generation: Generation,
    error: Option<String>,
    passed: bool,
    score: f64,
    assertions: Vec<crate::score::assertion::AssertionOutcome>,
) -> CellResult {
    CellResult {
        column: cell.column,
        case: cell.case,
        prompt: cell.request.prompt.clone(),
        output: generation.text,
        error,
        passed,
        score,
        assertions,
        finish: Some(generation.finish),
        prompt_tokens: generation.prompt_tokens,
        completion_tokens: generation.completion_tokens,
        ttft_ms: generation.ttft_ms,
        latency_ms: generation.total_ms,
        tokens_per_s: generation.tokens_per_s,
        cached: false,
        logprobs: generation.logprobs,
    }
}
