//! A run as promptfoo 0.118's `promptfoo eval -o out.json` writes one (`version: 3`
//! results), so tools that read promptfoo's output read promptlab's: a prompt entry with
//! metrics per column, a result per cell with its grading result and component results.

use serde_json::{Value, json};

use crate::run::{CellResult, RunResult};

/// promptfoo's `ResultFailureReason`.
const NONE: u8 = 0;
const ASSERT: u8 = 1;
const ERROR: u8 = 2;

fn token_usage(prompt: u64, completion: u64, requests: u64) -> Value {
    json!({
        "prompt": prompt,
        "completion": completion,
        "cached": 0,
        "total": prompt + completion,
        "numRequests": requests,
    })
}

fn failure_reason(cell: &CellResult) -> u8 {
    match (cell.is_error(), cell.passed) {
        (true, _) => ERROR,
        (false, true) => NONE,
        (false, false) => ASSERT,
    }
}

fn result(run: &RunResult, index: usize, cell: &CellResult) -> Value {
    let column = &run.columns[cell.column];
    let case = &run.cases[cell.case];
    let components: Vec<Value> = cell
        .assertions
        .iter()
        .map(|a| {
            json!({
                "pass": a.passed,
                "score": a.score,
                "reason": a.reason.clone().unwrap_or_else(|| "Assertion passed".into()),
                "assertion": {"type": a.assertion},
            })
        })
        .collect();
    let reasons: Vec<&str> = cell
        .assertions
        .iter()
        .filter(|a| !a.passed)
        .filter_map(|a| a.reason.as_deref())
        .collect();
    let reason = match (&cell.error, reasons.is_empty()) {
        (Some(error), _) => error.clone(),
        (None, true) => "All assertions passed".into(),
        (None, false) => reasons.join("; "),
    };
    let tokens = token_usage(
        u64::from(cell.prompt_tokens),
        u64::from(cell.completion_tokens),
        1,
    );
    let mut test_case = json!({
        "vars": case.vars,
        "assert": cell.assertions.iter().map(|a| json!({"type": a.assertion})).collect::<Vec<_>>(),
        "options": {},
        "metadata": {},
    });
    if !case.description.is_empty() {
        test_case["description"] = json!(case.description);
    }
    let mut value = json!({
        "id": format!("{}-{index}", run.started_at),
        "promptIdx": cell.column,
        "testIdx": cell.case,
        "testCase": test_case,
        "promptId": column.prompt_id,
        "provider": {"id": column.model, "label": ""},
        "prompt": {"raw": cell.prompt.to_plain_text(), "label": column.prompt_id},
        "vars": case.vars,
        "response": {
            "output": cell.output,
            "cached": cell.cached,
            "tokenUsage": tokens,
        },
        "success": cell.passed,
        "score": cell.score,
        "latencyMs": cell.latency_ms.round() as u64,
        "namedScores": named_scores(cell),
        "cost": 0,
        "metadata": {},
        "failureReason": failure_reason(cell),
        "gradingResult": {
            "pass": cell.passed,
            "score": cell.score,
            "reason": reason,
            "namedScores": named_scores(cell),
            "componentResults": components,
        },
    });
    if let Some(error) = &cell.error {
        value["error"] = json!(error);
    } else if !cell.passed {
        value["error"] = json!(reason);
    }
    value
}

/// A cell's named metrics: each the sum of its assertions' scores that name it.
fn named_scores(cell: &CellResult) -> Value {
    let mut named = crate::score::named::NamedScores::default();
    named.add(&cell.assertions);
    json!(named.sums)
}

/// One entry per column, with promptfoo's per-prompt metrics.
fn prompts(run: &RunResult) -> Vec<Value> {
    run.columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let cells: Vec<&CellResult> = run.cells.iter().filter(|c| c.column == i).collect();
            let count = |reason| cells.iter().filter(|c| failure_reason(c) == reason).count();
            let asserts = cells.iter().flat_map(|c| c.assertions.iter());
            let passed_asserts = asserts.clone().filter(|a| a.passed).count();
            let failed_asserts = asserts.filter(|a| !a.passed).count();
            let prompt_tokens: u64 = cells.iter().map(|c| u64::from(c.prompt_tokens)).sum();
            let completion: u64 = cells.iter().map(|c| u64::from(c.completion_tokens)).sum();
            json!({
                "raw": column.prompt_id,
                "label": column.prompt_id,
                "id": column.prompt_id,
                "provider": column.model,
                "metrics": {
                    "score": cells.iter().map(|c| c.score).sum::<f64>(),
                    "testPassCount": count(NONE),
                    "testFailCount": count(ASSERT),
                    "testErrorCount": count(ERROR),
                    "assertPassCount": passed_asserts,
                    "assertFailCount": failed_asserts,
                    "totalLatencyMs": cells.iter().map(|c| c.latency_ms).sum::<f64>().round() as u64,
                    "tokenUsage": token_usage(prompt_tokens, completion, cells.len() as u64),
                    "namedScores": run.summaries.get(i).map(|s| json!(s.named_scores)).unwrap_or(json!({})),
                    "namedScoresCount": run.summaries.get(i).map(|s| json!(s.named_counts)).unwrap_or(json!({})),
                    "cost": 0,
                },
            })
        })
        .collect()
}

pub(super) fn render(run: &RunResult) -> Result<Vec<u8>, super::RenderError> {
    let results: Vec<Value> = run
        .cells
        .iter()
        .enumerate()
        .map(|(i, cell)| result(run, i, cell))
        .collect();
    let count = |reason| {
        run.cells
            .iter()
            .filter(|c| failure_reason(c) == reason)
            .count()
    };
    let prompt_tokens: u64 = run.cells.iter().map(|c| u64::from(c.prompt_tokens)).sum();
    let completion: u64 = run
        .cells
        .iter()
        .map(|c| u64::from(c.completion_tokens))
        .sum();
    let document = json!({
        "evalId": format!("eval-promptlab-{}", run.started_at),
        "results": {
            "version": 3,
            "timestamp": run.started_at,
            "prompts": prompts(run),
            "results": results,
            "stats": {
                "successes": count(NONE),
                "failures": count(ASSERT),
                "errors": count(ERROR),
                "tokenUsage": token_usage(prompt_tokens, completion, run.cells.len() as u64),
            },
        },
        "config": {
            "description": run.eval_set,
            "prompts": run.columns.iter().map(|c| c.prompt_id.clone()).collect::<Vec<_>>(),
            "providers": run.columns.iter().map(|c| c.model.clone()).collect::<Vec<_>>(),
        },
        "shareableUrl": null,
        "metadata": {"evaluationCreatedAt": run.started_at, "author": "promptlab"},
    });
    Ok(serde_json::to_vec_pretty(&document)?)
}
