//! A stored run read back as a [`RunResult`], so every report format can be written for
//! any run in the store (`promptlab report RUN`), not only right after `eval`. Case
//! details (description, variables, expected values, human labels) and the metrics spec
//! come from the eval set file when it still loads; the cells are as recorded.

use std::path::Path;

use super::execute::judging::{JudgeTime, agreements};
use super::summary::{classification_reports, detection_reports, summarize};
use super::{CaseInfo, CellResult, Column, RunPlan, RunResult};
use crate::engine::FinishReason;
use crate::evalset::EvalSet;
use crate::prompt::RenderedPrompt;
use crate::store::{RunStatus, RunStore, StoreError};

/// The run `run_id` as a result, or None when the store has no such run.
pub fn stored_result(store: &RunStore, run_id: i64) -> Result<Option<RunResult>, StoreError> {
    let Some(run) = store.run(run_id)? else {
        return Ok(None);
    };
    let stored = store.cells(run_id)?;
    let column_count = stored.iter().map(|c| c.column_index + 1).max().unwrap_or(0);
    let case_count = stored.iter().map(|c| c.case_index + 1).max().unwrap_or(0);
    let mut columns: Vec<Column> = (0..column_count)
        .map(|_| Column {
            id: String::new(),
            prompt_id: String::new(),
            model: String::new(),
        })
        .collect();
    let mut case_ids = vec![String::new(); case_count];
    for cell in &stored {
        let column = &mut columns[cell.column_index];
        if column.id.is_empty() {
            let (prompt, model) = cell
                .column_id
                .split_once(" @ ")
                .unwrap_or((cell.column_id.as_str(), ""));
            *column = Column {
                id: cell.column_id.clone(),
                prompt_id: prompt.to_string(),
                model: model.to_string(),
            };
        }
        case_ids[cell.case_index].clone_from(&cell.case_id);
    }

    let eval_set_path = Path::new(&run.eval_set_path);
    let eval_set = EvalSet::load(eval_set_path)
        .unwrap_or_else(|_| EvalSet::named(&run.eval_set, eval_set_path));
    // An agent evaluation's questions come from its own kind of file.
    let agent_set = crate::evalset::is_agent_set(eval_set_path)
        .then(|| crate::evalset::agent::AgentEvalSet::load(eval_set_path).ok())
        .flatten();
    let agent_case = |id: &str| {
        let set = agent_set.as_ref()?;
        let case = set.cases.iter().find(|c| c.id == id)?;
        Some(CaseInfo::from(case))
    };
    let cases: Vec<CaseInfo> = case_ids
        .iter()
        .map(|id| match eval_set.cases.iter().find(|c| &c.id == id) {
            Some(case) => CaseInfo {
                id: id.clone(),
                description: case.description.clone(),
                tags: case.tags.clone(),
                vars: case.vars.clone(),
                expected: case.expected.clone(),
                human: case.human,
            },
            None => agent_case(id).unwrap_or_else(|| CaseInfo {
                id: id.clone(),
                description: String::new(),
                tags: Vec::new(),
                vars: Default::default(),
                expected: None,
                human: None,
            }),
        })
        .collect();

    let cells: Vec<CellResult> = stored
        .iter()
        .map(|s| CellResult {
            column: s.column_index,
            case: s.case_index,
            prompt: serde_json::from_str(&s.prompt_json)
                .unwrap_or_else(|_| RenderedPrompt::Completion(String::new())),
            output: s.output.clone(),
            error: s.error.clone(),
            passed: s.passed,
            score: s.score,
            assertions: serde_json::from_str(&s.assertions_json).unwrap_or_default(),
            finish: s.finish.as_deref().and_then(|f| {
                serde_json::from_value::<FinishReason>(serde_json::Value::String(f.into())).ok()
            }),
            prompt_tokens: s.prompt_tokens,
            completion_tokens: s.completion_tokens,
            ttft_ms: s.ttft_ms,
            latency_ms: s.latency_ms,
            tokens_per_s: s.tokens_per_s,
            cached: s.cached,
            logprobs: s
                .logprobs_json
                .as_deref()
                .and_then(|j| serde_json::from_str(j).ok()),
        })
        .collect();

    let duration_s = run
        .finished_at
        .as_deref()
        .and_then(|end| {
            let start = chrono::DateTime::parse_from_rfc3339(&run.started_at).ok()?;
            let end = chrono::DateTime::parse_from_rfc3339(end).ok()?;
            Some((end - start).num_milliseconds() as f64 / 1000.0)
        })
        .unwrap_or(0.0);
    let mut result = assemble(
        eval_set,
        Timing {
            started_at: run.started_at.clone(),
            duration_s,
            cancelled: run.status != RunStatus::Finished,
        },
        columns,
        cases,
        cells,
    );
    // As recorded, even if the file has changed since.
    result.eval_set.clone_from(&run.eval_set);
    result.eval_set_path.clone_from(&run.eval_set_path);
    result.pairwise = store
        .pairwise_json(run_id)?
        .and_then(|json| serde_json::from_str(&json).ok());
    Ok(Some(result))
}

/// When a run started, how long it took, and whether it was cut short.
pub struct Timing {
    pub started_at: String,
    pub duration_s: f64,
    pub cancelled: bool,
}

/// A result from finished cells, with the per-column summaries and metric reports worked
/// out: for runs that were not planned and executed here (stored runs, agent evaluations).
pub fn assemble(
    eval_set: EvalSet,
    timing: Timing,
    columns: Vec<Column>,
    cases: Vec<CaseInfo>,
    cells: Vec<CellResult>,
) -> RunResult {
    let plan = RunPlan {
        eval_set,
        columns: columns.clone(),
        models: Vec::new(),
        cases: cases.clone(),
        cells: Vec::new(),
        judging: Default::default(),
        builder: Default::default(),
    };
    RunResult {
        eval_set: plan.eval_set.name.clone(),
        eval_set_path: plan.eval_set.source.display().to_string(),
        started_at: timing.started_at,
        duration_s: timing.duration_s,
        cancelled: timing.cancelled,
        summaries: summarize(&plan, &cells),
        classification: classification_reports(&plan, &cells),
        detection: detection_reports(&plan, &cells),
        judge_time: JudgeTime::default(),
        judge_agreement: agreements(columns.len(), &cases, &cells),
        pairwise: None,
        columns,
        cases,
        cells,
    }
}
