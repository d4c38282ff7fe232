//! Agent evaluation sets: `promptlab agent --eval FILE` and `promptlab eval FILE` on a
//! set with `kind: agent`. Every question runs for each prompt and model; the tool-use
//! figures per column (valid calls, tool selection, arguments, answers, steps, time) are
//! printed, and the results matrix goes to the run store and the report formats.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, bail};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use promptlab::agent::eval::{AgentEvalSet, AgentScores, check_trace, matrix};
use promptlab::prompt::{ChatMessage, RenderedPrompt};
use promptlab::run::{Timing, stored_cell};
use promptlab::store::{NewRun, RunStatus, RunStore};

use super::{AgentArgs, AskOptions, Outcome, ask, open_session, system_prompt};
use crate::cli::eval::EvalArgs;

/// What `promptlab eval` adds to an agent evaluation.
#[derive(Default)]
pub(super) struct Reporting {
    /// Prompt selectors, one column each (default: the set's `prompts`).
    pub prompts: Vec<String>,
    /// Report files; the format follows the extension.
    pub outputs: Vec<PathBuf>,
    pub min_pass_rate: Option<f64>,
}

/// `promptlab agent`'s options with their defaults, parsed from a command line built for
/// an eval run.
#[derive(clap::Parser)]
struct AgentCommand {
    #[command(flatten)]
    args: AgentArgs,
}

/// `promptlab eval FILE` for an agent evaluation set: the options that apply are passed
/// on; the ones that only make sense for generated cells are refused.
pub fn run_from_eval(eval: &EvalArgs) -> Result<Outcome> {
    let unsupported = [
        (eval.repeat > 1, "--repeat"),
        (eval.pairwise, "--pairwise"),
        (eval.resume.is_some(), "--resume"),
        (eval.judge.is_some(), "--judge"),
        (eval.engine.is_some(), "--engine"),
        (eval.parallel.is_some(), "--parallel"),
        (eval.store.is_some(), "--store"),
    ];
    if let Some((_, flag)) = unsupported.iter().find(|(used, _)| *used) {
        bail!(
            "{}: {flag} does not apply to an agent eval set (`kind: agent`); see `promptlab agent --help` for its options",
            eval.eval_set.display()
        );
    }
    promptlab::report::check_paths(&eval.outputs)?;
    let mut argv: Vec<String> = vec!["agent".into(), "--eval".into()];
    argv.push(eval.eval_set.display().to_string());
    let project = match &eval.project {
        Some(dir) => Some(dir.clone()),
        None => promptlab::project::Project::discover(&eval.eval_set)
            .ok()
            .map(|p| p.root),
    };
    if let Some(dir) = project {
        argv.extend(["--project".into(), dir.display().to_string()]);
    }
    if !eval.models.is_empty() {
        argv.extend(["--model".into(), eval.models.join(",")]);
    }
    if !eval.tags.is_empty() {
        argv.extend(["--filter".into(), eval.tags.join(",")]);
    }
    if let Some(limit) = eval.limit {
        argv.extend(["--limit".into(), limit.to_string()]);
    }
    if eval.no_store {
        argv.push("--no-store".into());
    }
    let args = <AgentCommand as clap::Parser>::try_parse_from(&argv)?.args;
    let reporting = Reporting {
        prompts: eval.prompts.clone(),
        outputs: eval.outputs.clone(),
        min_pass_rate: eval.min_pass_rate,
    };
    run(&args, &eval.eval_set, &reporting)
}

pub(super) fn run(args: &AgentArgs, path: &Path, reporting: &Reporting) -> Result<Outcome> {
    let set = AgentEvalSet::load(path)?;
    let models = if args.model.is_empty() {
        set.models.clone()
    } else {
        args.model.clone()
    };
    if models.is_empty() {
        bail!(
            "{}: no models: add `models:` to the set or pass --model",
            path.display()
        );
    }
    let mut cases: Vec<_> = set
        .cases
        .iter()
        .filter(|c| args.filter.is_empty() || c.tags.iter().any(|t| args.filter.contains(t)))
        .collect();
    if let Some(limit) = args.limit {
        cases.truncate(limit);
    }
    if cases.is_empty() {
        bail!("{}: no cases left after --filter/--limit", path.display());
    }
    // One column per prompt (or the built-in system prompt), each with its tools.
    let selectors: Vec<Option<String>> =
        match (reporting.prompts.is_empty(), set.prompts.is_empty()) {
            (false, _) => reporting.prompts.iter().cloned().map(Some).collect(),
            (true, true) => vec![None],
            (true, false) => set.prompts.iter().cloned().map(Some).collect(),
        };
    let mut columns = Vec::new();
    for selector in &selectors {
        let prompt = match selector {
            Some(s) => Some(super::find_prompt(args, s)?),
            None => None,
        };
        let wanted = if !args.tools.is_empty() {
            args.tools.clone()
        } else if let Some(p) = prompt.as_ref().filter(|p| !p.tools.is_empty()) {
            p.tools.clone()
        } else {
            set.tools.clone()
        };
        columns.push((prompt, open_session(args, &wanted)?));
    }
    let max_steps = set.max_steps.unwrap_or(args.max_steps);
    let started = Instant::now();
    let started_at = chrono::Local::now().to_rfc3339();
    let mut matrix_columns = Vec::new();
    let mut cells = Vec::new();
    let case_infos: Vec<_> = cases.iter().map(|c| matrix::case_info(c)).collect();
    // The run's matrix, recorded cell by cell beside each question's trace.
    let mut recording = if args.no_store {
        None
    } else {
        let project = &columns[0].1.project;
        let store = RunStore::open(&project.root.join(".promptlab").join("runs.db"))?;
        let eval_set_path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let run_id = store.create_run(&NewRun {
            eval_set: set.name.clone(),
            eval_set_path: eval_set_path.display().to_string(),
            config_json: serde_json::json!({
                "kind": "agent",
                "models": models,
                "prompts": selectors,
                "filter": args.filter,
                "limit": args.limit,
            })
            .to_string(),
            started_at: started_at.clone(),
            cell_count: models.len() * columns.len() * cases.len(),
        })?;
        Some((store, run_id))
    };
    let mut all_scores = Vec::new();
    let mut records = Vec::new();
    let mut failures = Vec::new();
    for model in &models {
        let mut loaded = columns[0].1.load_model(model)?;
        for (prompt, session) in &columns {
            let specs = session.tools.specs();
            let matrix_column = matrix::column(prompt.as_ref().map(|p| p.id.as_str()), model);
            let column = matrix_column.id.clone();
            let column_index = matrix_columns.len();
            matrix_columns.push(matrix_column);
            let mut scores = AgentScores {
                model: column.clone(),
                ..AgentScores::default()
            };
            for (n, case) in cases.iter().enumerate() {
                let options = AskOptions {
                    system: set.system.as_deref(),
                    prompt: prompt.as_ref(),
                    max_steps,
                    verbose: false,
                };
                let trace = ask(session, &mut loaded, &case.question, args, options)?;
                let outcomes = check_trace(&case.checks, &trace);
                let passed = outcomes.iter().all(|o| o.passed);
                eprintln!(
                    "{column} · {}/{} {} {} ({} steps, {:.1} s)",
                    n + 1,
                    cases.len(),
                    if passed { "✓" } else { "✗" },
                    case.id,
                    trace.steps.len(),
                    trace.total_ms / 1000.0
                );
                for outcome in outcomes.iter().filter(|o| !o.passed) {
                    failures.push(format!(
                        "  ✗ {column} · {} · {}: {}",
                        case.id,
                        outcome.check,
                        outcome.reason.as_deref().unwrap_or("failed")
                    ));
                }
                scores.add(&trace, &outcomes, &specs);
                let opening = match prompt {
                    Some(p) => promptlab::agent::opening_messages(Some(p), &case.question)?,
                    None => vec![
                        ChatMessage {
                            role: "system".into(),
                            content: system_prompt(set.system.as_deref(), args),
                        },
                        ChatMessage {
                            role: "user".into(),
                            content: case.question.clone(),
                        },
                    ],
                };
                let cell = matrix::cell(
                    (column_index, n),
                    RenderedPrompt::Chat(opening),
                    &trace,
                    &outcomes,
                );
                if let Some((store, run_id)) = recording.as_mut() {
                    // Agent cells are not generated from a cache key: this one names the
                    // column and case, so it never matches a generation's.
                    let key = format!("agent:{column}:{}", case.id);
                    store.record_cell(*run_id, &stored_cell(&cell, &column, &case.id, &key))?;
                }
                cells.push(cell);
                records.push(serde_json::json!({
                    "model": model,
                    "prompt": prompt.as_ref().map(|p| p.id.clone()),
                    "case": case.id,
                    "question": case.question,
                    "passed": passed,
                    "checks": outcomes,
                    "trace": trace,
                }));
            }
            all_scores.push(scores);
        }
    }
    if let Some(output) = &args.output {
        let report = serde_json::json!({
            "eval_set": set.name,
            "scores": all_scores,
            "cases": records,
        });
        std::fs::write(output, serde_json::to_string_pretty(&report)? + "\n")?;
        eprintln!("wrote {}", output.display());
    }
    let run_id = match recording {
        Some((store, run_id)) => {
            store.finish_run(
                run_id,
                &chrono::Local::now().to_rfc3339(),
                RunStatus::Finished,
            )?;
            Some(run_id)
        }
        None => None,
    };
    let result = matrix::run_result(
        &set,
        Timing {
            started_at,
            duration_s: started.elapsed().as_secs_f64(),
            cancelled: false,
        },
        matrix_columns,
        case_infos,
        cells,
    );
    for output in &reporting.outputs {
        promptlab::report::write(&result, output)?;
        eprintln!("wrote {}", output.display());
    }
    println!("{}", scores_table(&all_scores));
    if !failures.is_empty() {
        println!("Failures ({}):\n{}", failures.len(), failures.join("\n"));
    }
    let passed = result.cells.iter().filter(|c| c.passed).count();
    println!(
        "{passed} of {} cells passed ({}) in {:.1} s{}",
        result.cells.len(),
        promptlab::score::stats::format_rate(passed, result.cells.len()),
        result.duration_s,
        run_id.map(|id| format!(" · run {id}")).unwrap_or_default()
    );
    let all_passed = match reporting.min_pass_rate {
        Some(min) => result.pass_rate() >= min,
        None => passed == result.cells.len(),
    };
    Ok(if all_passed {
        Outcome::Passed
    } else {
        Outcome::Failed
    })
}

/// `61% (19/31) [44–76]`: the rate, the counts and the 95% Wilson interval.
fn rate((passed, total): (usize, usize)) -> String {
    match promptlab::score::stats::wilson_interval(passed, total) {
        None => "–".into(),
        Some((low, high)) => format!(
            "{:.0}% ({passed}/{total}) [{:.0}–{:.0}]",
            passed as f64 * 100.0 / total as f64,
            low * 100.0,
            high * 100.0
        ),
    }
}

fn scores_table(scores: &[AgentScores]) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header([
        "model (prompt @ model)",
        "cases passed",
        "valid tool calls",
        "cut-off replies",
        "tool selection",
        "arguments",
        "final answer",
        "mean steps",
        "mean time",
    ]);
    for s in scores {
        let cases = s.cases.max(1) as f64;
        table.add_row([
            s.model.clone(),
            rate((s.passed, s.cases)),
            rate((s.valid_calls, s.calls)),
            s.cut_off.to_string(),
            rate(s.selection),
            rate(s.arguments),
            rate(s.answer),
            format!("{:.2}", s.steps as f64 / cases),
            format!("{:.1} s", s.total_ms / cases / 1000.0),
        ]);
    }
    table.to_string()
}
