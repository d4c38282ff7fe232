//! `promptlab eval --repeat K`: the whole run K times with seeds offset by 0..K, each
//! repeat stored as its own run, then per column pass@1, pass@K (at least one of the K
//! attempts passes) and pass^K (all K pass), from each case's count of passing repeats.

use std::io::Write;

use anyhow::Result;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use promptlab::evalset::EvalSet;
use promptlab::project::Project;
use promptlab::run::{self, Recording, RunOptions, RunResult, StoredConfig};
use promptlab::score::stats::{format_rate, pass_all_k, pass_at_k};
use promptlab::store::RunStore;

use super::{EvalArgs, cancel_on_interrupt, execute_with_progress};
use crate::cli::Outcome;

pub(super) fn run(
    args: &EvalArgs,
    project: &Project,
    eval_set: EvalSet,
    base: RunOptions,
    mut store: Option<RunStore>,
    eval_set_key: &str,
) -> Result<Outcome> {
    let k = args.repeat;
    let cancel = cancel_on_interrupt();
    let mut results: Vec<(RunResult, Option<i64>)> = Vec::new();
    for repeat in 0..k {
        let options = RunOptions {
            seed_offset: repeat,
            ..base.clone()
        };
        let plan = run::plan(project, eval_set.clone(), &options)?;
        if repeat == 0
            && plan
                .cells
                .iter()
                .all(|c| c.request.params.temperature <= 0.0)
        {
            eprintln!(
                "note: every cell decodes greedily (temperature 0), so the {k} repeats give the same outputs; set a temperature to measure pass@k"
            );
        }
        let recording = match store.as_mut() {
            None => None,
            Some(store) => {
                let run_id =
                    store.create_run(&StoredConfig::new_run(&plan, eval_set_key, &options))?;
                Some(Recording {
                    store,
                    run_id,
                    use_cache: !args.no_cache,
                })
            }
        };
        let run_id = recording.as_ref().map(|r| r.run_id);
        let result = execute_with_progress(&plan, args, &cancel, recording)?;
        let passed = result.cells.iter().filter(|c| c.passed).count();
        eprintln!(
            "repeat {} of {k}: {passed} of {} cells passed in {:.1} s{}",
            repeat + 1,
            result.cells.len(),
            result.duration_s,
            run_id.map(|id| format!(" · run {id}")).unwrap_or_default()
        );
        if cancel.is_cancelled() {
            eprintln!("interrupted; the finished repeats and cells are in the run store");
            return Ok(Outcome::Interrupted);
        }
        results.push((result, run_id));
    }
    let Some((first, _)) = results.first() else {
        return Ok(Outcome::Failed);
    };
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "prompt @ model".to_string(),
        "cases".into(),
        "pass@1 [95% CI]".into(),
        format!("pass@{k}"),
        format!("pass^{k}"),
    ]);
    let k = k as usize;
    let mut all_passed = 0;
    let mut all_cells = 0;
    for (column_index, column) in first.columns.iter().enumerate() {
        // Each case's passing repeats; repeats plan the same cells in the same order.
        let mut per_case: std::collections::BTreeMap<usize, usize> = Default::default();
        for (result, _) in &results {
            for cell in result.cells.iter().filter(|c| c.column == column_index) {
                *per_case.entry(cell.case).or_default() += usize::from(cell.passed);
            }
        }
        let cases = per_case.len();
        let passed: usize = per_case.values().sum();
        all_passed += passed;
        all_cells += cases * k;
        let mean = |f: &dyn Fn(usize) -> Option<f64>| {
            per_case.values().filter_map(|&c| f(c)).sum::<f64>() / cases.max(1) as f64
        };
        table.add_row([
            column.id.clone(),
            cases.to_string(),
            format_rate(passed, cases * k),
            format!("{:.1}%", mean(&|c| pass_at_k(k, c, k)) * 100.0),
            format!("{:.1}%", mean(&|c| pass_all_k(k, c, k)) * 100.0),
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
    let passed = match args.min_pass_rate {
        Some(min) => rate >= min,
        None => all_passed == all_cells,
    };
    Ok(if passed {
        Outcome::Passed
    } else {
        Outcome::Failed
    })
}
