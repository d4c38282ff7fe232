//! `promptlab eval --repeat K`: the whole run K times with seeds offset by 0..K, each
//! repeat stored as its own run, then per column pass@1, pass@K (at least one of the K
//! attempts passes) and pass^K (all K pass), from each case's count of passing repeats.

use std::io::Write;

use anyhow::Result;
use promptlab::evaluation::{Evaluation, Request};
use promptlab::run::{self, RunResult};
use promptlab::score::stats::format_rate;

use super::{EvalArgs, cancel_on_interrupt, execute_with_progress};
use crate::cli::Outcome;

/// Runs the evaluation `base` asks for K times, repeat r with seeds offset by r.
pub(super) fn run(args: &EvalArgs, base: Request) -> Result<Outcome> {
    let k = args.repeat;
    let cancel = cancel_on_interrupt();
    let mut results: Vec<(RunResult, Option<i64>)> = Vec::new();
    for repeat in 0..k {
        let mut evaluation = Evaluation::prepare(Request {
            seed_offset: repeat,
            ..base.clone()
        })?;
        if repeat == 0 {
            for note in evaluation.notes() {
                eprintln!("{note}");
            }
            if evaluation.samples_greedily() {
                eprintln!(
                    "note: every cell decodes greedily (temperature 0), so the {k} repeats give the same outputs; set a temperature to measure pass@k"
                );
            }
        }
        let finished = execute_with_progress(&mut evaluation, &args.execution, &cancel)?;
        let result = finished.result;
        let passed = result.cells.iter().filter(|c| c.passed).count();
        eprintln!(
            "repeat {} of {k}: {passed} of {} cells passed in {:.1} s{}",
            repeat + 1,
            result.cells.len(),
            result.duration_s,
            finished
                .run_id
                .map(|id| format!(" · run {id}"))
                .unwrap_or_default()
        );
        if cancel.is_cancelled() || result.cancelled {
            eprintln!(
                "interrupted; the finished repeats and cells are in the run store{}",
                match finished.run_id {
                    Some(id) => format!(
                        " (`promptlab eval {} --resume {id}` completes this repeat)",
                        args.eval_set.display()
                    ),
                    None => String::new(),
                }
            );
            return Ok(Outcome::Interrupted);
        }
        results.push((result, finished.run_id));
    }
    report(&results, k, &args.outputs, args.min_pass_rate)
}

/// Writes the pass@k summary of `results` (one per repeat, with its stored run) to the
/// report files and prints it; the outcome follows the pass rate over every repeat.
pub(super) fn report(
    results: &[(RunResult, Option<i64>)],
    k: u32,
    outputs: &[std::path::PathBuf],
    min_pass_rate: Option<f64>,
) -> Result<Outcome> {
    let run_ids: Vec<i64> = results.iter().filter_map(|(_, id)| *id).collect();
    let finished: Vec<RunResult> = results.iter().map(|(r, _)| r.clone()).collect();
    let Some(report) = run::repeat_report(&finished, run_ids) else {
        return Ok(Outcome::Failed);
    };
    for path in outputs {
        write_report(&report, path)?;
        eprintln!("wrote {}", path.display());
    }
    let mut table = crate::cli::table_style().table();
    table.set_header([
        "prompt @ model".to_string(),
        "cases".into(),
        "pass@1 [95% CI]".into(),
        format!("pass@{k}"),
        format!("pass^{k}"),
    ]);
    let k = k as usize;
    let mut all_passed = 0;
    let mut all_cells = 0;
    for column in &report.columns {
        all_passed += column.passed;
        all_cells += column.attempts;
        table.add_row([
            column.column.clone(),
            column.cases.to_string(),
            format_rate(column.passed, column.attempts),
            format!("{:.1}%", column.pass_at_k * 100.0),
            format!("{:.1}%", column.pass_all_k * 100.0),
        ]);
    }
    let runs: Vec<String> = results
        .iter()
        .filter_map(|(_, id)| id.map(|i| i.to_string()))
        .collect();
    let mut text = format!("{table}\n");
    text.push_str(&format!(
        "{all_passed} of {all_cells} cells passed over {k} repeats{}\n",
        if runs.is_empty() {
            String::new()
        } else {
            format!(" · runs {}", runs.join(", "))
        }
    ));
    std::io::stdout().lock().write_all(text.as_bytes())?;
    let rate = all_passed as f64 / all_cells.max(1) as f64;
    let passed = match min_pass_rate {
        Some(min) => rate >= min,
        None => all_passed == all_cells,
    };
    let errored = results
        .iter()
        .flat_map(|(r, _)| &r.cells)
        .filter(|c| c.is_error())
        .count();
    Ok(Outcome::of_run(passed, errored))
}

/// Refuses report files the pass@k summary cannot be written as, before any repeat runs.
pub(super) fn check_outputs(outputs: &[std::path::PathBuf]) -> Result<()> {
    match outputs
        .iter()
        .find(|p| !matches!(p.extension().and_then(|e| e.to_str()), Some("json" | "md")))
    {
        Some(bad) => anyhow::bail!(
            "{}: with --repeat, -o writes the pass@k summary as .json or .md (each repeat is a stored run: `promptlab runs show RUN`)",
            bad.display()
        ),
        None => Ok(()),
    }
}

/// `.json` (the pass@k summary and each repeat's stored run) or `.md`; other formats
/// hold one run's cells, so they are written per run with `promptlab runs show`.
fn write_report(report: &run::RepeatReport, path: &std::path::Path) -> Result<()> {
    let text = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => serde_json::to_string_pretty(report)? + "\n",
        Some("md") => report.to_markdown(),
        _ => anyhow::bail!(
            "{}: with --repeat, -o writes the pass@k summary as .json or .md (each repeat is a stored run: `promptlab runs show RUN`)",
            path.display()
        ),
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(text.as_bytes())?;
    file.persist(path)?;
    Ok(())
}
