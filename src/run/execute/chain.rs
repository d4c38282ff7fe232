//! Runs whose cases store their output as a variable of later cases (`store_output_as`,
//! promptfoo's `storeOutputAs`): cells run in promptfoo's order (case by case, and within
//! a case column by column), each rendered with the outputs stored before it. Cells
//! between two stores do not change what the next ones see, so they are decoded together.

use std::time::Instant;

use serde_json::{Map, Value};

use super::{RunError, RunObserver, fail, generate, models_in_order, restore, scripts, workers};
use crate::engine::{CancelToken, EngineError, EngineWorker, Generation};
use crate::run::record::Recording;
use crate::run::{CellResult, ExecuteOptions, RunPlan};

/// Executes `plan` in order; returns it with each cell's request as it was rendered and
/// each case's variables as its cells saw them.
pub(super) fn execute_in_order(
    mut plan: RunPlan,
    options: &ExecuteOptions,
    observer: &mut dyn RunObserver,
    cancel: &CancelToken,
    recording: &mut Option<Recording<'_>>,
    results: &mut [Option<CellResult>],
) -> Result<RunPlan, RunError> {
    let mut order: Vec<usize> = (0..plan.cells.len()).collect();
    order.sort_by_key(|&i| (plan.cells[i].case, plan.cells[i].column));
    // Each model is loaded when first needed and kept until the run ends.
    let mut loaded: Vec<(String, Result<Vec<EngineWorker>, EngineError>)> = Vec::new();
    let mut stored = Map::new();
    let mut stage = Vec::new();
    for (position, &id) in order.iter().enumerate() {
        stage.push(id);
        let last = position + 1 == order.len();
        if plan.builder.stores(plan.cells[id].case).is_none() && !last {
            continue;
        }
        if cancel.is_cancelled() {
            break;
        }
        render_again(&mut plan, &stage, &stored, observer, recording, results)?;
        restore(&plan, &stage, observer, recording, results)?;
        for model in models_in_order(&plan) {
            let cell_ids: Vec<usize> = stage
                .iter()
                .copied()
                .filter(|&i| {
                    results[i].is_none() && plan.columns[plan.cells[i].column].model == model.name
                })
                .collect();
            if cell_ids.is_empty() || cancel.is_cancelled() {
                continue;
            }
            if !loaded.iter().any(|(name, _)| *name == model.name) {
                observer.model_loading(&model.name);
                let started = Instant::now();
                let workers = workers::spawn(model, options, 1);
                if workers.is_ok() {
                    observer.model_loaded(&model.name, started.elapsed().as_secs_f64() * 1000.0);
                }
                loaded.push((model.name.clone(), workers));
            }
            let Some((_, workers)) = loaded.iter().find(|(name, _)| *name == model.name) else {
                continue;
            };
            match workers {
                Ok(workers) => generate(
                    &plan, workers, &cell_ids, observer, cancel, recording, results,
                )?,
                Err(err) => fail(&plan, &cell_ids, err, observer, recording, results)?,
            }
        }
        for &id in &stage {
            let case = plan.cells[id].case;
            if let (Some(name), Some(result)) = (plan.builder.stores(case), &results[id])
                && let Some(value) = stored_value(&plan, id, result)
            {
                stored.insert(name.to_string(), value);
            }
        }
        stage.clear();
    }
    Ok(plan)
}

/// Renders the stage's cells with the outputs stored so far. A cell that no longer
/// renders (a strict template missing a variable no output filled) fails with the reason.
fn render_again(
    plan: &mut RunPlan,
    stage: &[usize],
    stored: &Map<String, Value>,
    observer: &mut dyn RunObserver,
    recording: &mut Option<Recording<'_>>,
    results: &mut [Option<CellResult>],
) -> Result<(), RunError> {
    for &id in stage {
        let (column, case) = (plan.cells[id].column, plan.cells[id].case);
        plan.cases[case].vars = plan.builder.vars_with(case, stored, false);
        match plan.builder.cell(column, case, stored, false) {
            Ok(cell) => plan.cells[id] = cell,
            Err(err) => {
                let error = EngineError::Generation(format!("the prompt does not render: {err}"));
                fail(plan, &[id], &error, observer, recording, results)?;
            }
        }
    }
    Ok(())
}

/// What a finished cell stores: its output after the case's transform, unless it failed
/// or is empty (promptfoo stores only a truthy output).
fn stored_value(plan: &RunPlan, id: usize, result: &CellResult) -> Option<Value> {
    if result.error.is_some() {
        return None;
    }
    let cell = &plan.cells[id];
    let value = match &cell.transform {
        Some(transform) => {
            let generation = Generation {
                text: result.output.clone(),
                finish: result
                    .finish
                    .unwrap_or(crate::engine::FinishReason::EndOfText),
                prompt_tokens: result.prompt_tokens,
                completion_tokens: result.completion_tokens,
                ttft_ms: result.ttft_ms,
                total_ms: result.latency_ms,
                prompt_tokens_per_s: None,
                tokens_per_s: result.tokens_per_s,
                cached_prompt_tokens: 0,
                logprobs: None,
            };
            scripts::transform(transform, plan, cell, &generation).ok()?
        }
        None => Value::String(result.output.clone()),
    };
    let truthy = match &value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0 && !n.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    };
    truthy.then_some(value)
}
