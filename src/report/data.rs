//! Flat, one-row-per-cell exports for spreadsheets and scripts.

use serde_json::json;

use super::RenderError;
use crate::run::{CellResult, RunResult};

fn cell_record(result: &RunResult, cell: &CellResult) -> serde_json::Value {
    let column = &result.columns[cell.column];
    let case = &result.cases[cell.case];
    json!({
        "column": column.id,
        "prompt": column.prompt_id,
        "model": column.model,
        "case": case.id,
        "description": case.description,
        "tags": case.tags,
        "vars": case.vars,
        "expected": case.expected,
        "output": cell.output,
        "passed": cell.passed,
        "score": cell.score,
        "error": cell.error,
        "reasons": cell.failure_reasons(),
        "assertions": cell.assertions,
        "finish": cell.finish,
        "prompt_tokens": cell.prompt_tokens,
        "completion_tokens": cell.completion_tokens,
        "ttft_ms": cell.ttft_ms,
        "latency_ms": cell.latency_ms,
        "tokens_per_s": cell.tokens_per_s,
    })
}

pub(super) fn jsonl(result: &RunResult) -> Result<Vec<u8>, RenderError> {
    let mut out = Vec::new();
    for cell in &result.cells {
        serde_json::to_writer(&mut out, &cell_record(result, cell))?;
        out.push(b'\n');
    }
    Ok(out)
}

pub(super) fn csv(result: &RunResult) -> Result<Vec<u8>, RenderError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record([
        "column",
        "prompt",
        "model",
        "case",
        "tags",
        "expected",
        "output",
        "passed",
        "score",
        "reasons",
        "prompt_tokens",
        "completion_tokens",
        "ttft_ms",
        "latency_ms",
        "tokens_per_s",
    ])?;
    for cell in &result.cells {
        let column = &result.columns[cell.column];
        let case = &result.cases[cell.case];
        let expected = match &case.expected {
            None => String::new(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        writer.write_record([
            column.id.clone(),
            column.prompt_id.clone(),
            column.model.clone(),
            case.id.clone(),
            case.tags.join(";"),
            expected,
            cell.output.clone(),
            cell.passed.to_string(),
            format!("{:.4}", cell.score),
            cell.failure_reasons().join(" | "),
            cell.prompt_tokens.to_string(),
            cell.completion_tokens.to_string(),
            format!("{:.1}", cell.ttft_ms),
            format!("{:.1}", cell.latency_ms),
            cell.tokens_per_s
                .map(|t| format!("{t:.1}"))
                .unwrap_or_default(),
        ])?;
    }
    writer.into_inner().map_err(|e| e.into_error().into())
}
