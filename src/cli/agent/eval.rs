//! Agent evaluation sets: `promptlab agent --eval FILE` and `promptlab eval FILE` on a
//! set with `kind: agent`. The library runs the questions (`agent::eval::runner`); this
//! prints progress and the tool-use figures per column (valid calls, tool selection,
//! arguments, answers, steps, time) and writes the report formats.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use promptlab::agent::ToolModels;
use promptlab::agent::eval::runner::{
    AgentEvalEvent, AgentEvalOptions, AgentEvalPlan, Recording, resume_options,
};
use promptlab::engine::Flow;
use promptlab::evalset::agent::AgentScores;
use promptlab::project::Project;

use super::{AgentArgs, Outcome};
use crate::cli::eval::{EvalArgs, cancel_on_interrupt};

/// What `promptlab eval` adds to an agent evaluation.
#[derive(Default)]
pub(super) struct Reporting {
    /// Report files; the format follows the extension.
    pub outputs: Vec<PathBuf>,
    pub min_pass_rate: Option<f64>,
    /// Complete an interrupted run: `Some(None)` for the latest one of the set.
    pub resume: Option<Option<i64>>,
}

/// `promptlab eval FILE` for an agent evaluation set: the options that apply are passed
/// on; the ones that only make sense for generated cells are refused.
pub fn run_from_eval(eval: &EvalArgs) -> Result<Outcome> {
    let unsupported = [
        (eval.pairwise, "--pairwise"),
        (eval.judge.is_some(), "--judge"),
        (eval.engine.is_some(), "--engine"),
        (eval.store.is_some(), "--store"),
    ];
    if let Some((_, flag)) = unsupported.iter().find(|(used, _)| *used) {
        bail!(
            "{}: {flag} does not apply to an agent eval set (`kind: agent`); see `promptlab agent --help` for its options",
            eval.eval_set.display()
        );
    }
    promptlab::report::check_paths(&eval.outputs)?;
    let resume = match eval.resume.as_deref() {
        None => None,
        Some(_) if eval.no_store => bail!("--resume needs the run store; drop --no-store"),
        Some("latest") => Some(None),
        Some(id) => Some(Some(id.parse::<i64>().map_err(|_| {
            anyhow::anyhow!("--resume {id}: expected a run id or nothing")
        })?)),
    };
    let root = match &eval.selection.project {
        Some(dir) => dir.clone(),
        None => {
            Project::discover(&eval.eval_set)
                .context("cannot open the project")?
                .root
        }
    };
    let options = AgentEvalOptions {
        models: eval.selection.models.clone(),
        prompts: eval.selection.prompts.clone(),
        tags: eval.selection.tags.clone(),
        limit: eval.selection.case_limit(),
        parallel: eval.execution.parallel,
        ..AgentEvalOptions::default()
    };
    let reporting = Reporting {
        outputs: eval.outputs.clone(),
        min_pass_rate: eval.min_pass_rate,
        resume,
    };
    if eval.repeat > 1 {
        if reporting.resume.is_some() {
            bail!("--repeat cannot be combined with --resume: resume each repeat's run on its own");
        }
        crate::cli::eval::repeat::check_outputs(&eval.outputs)?;
        return execute_repeats(
            &root,
            &eval.eval_set,
            options,
            !eval.no_store,
            &reporting,
            eval.repeat,
        );
    }
    execute(
        &root,
        &eval.eval_set,
        options,
        !eval.no_store,
        &reporting,
        None,
    )
}

/// `promptlab agent --eval FILE`.
pub(super) fn run(args: &AgentArgs, path: &Path) -> Result<Outcome> {
    let root = match &args.project {
        Some(dir) => dir.clone(),
        None => {
            Project::discover(Path::new("."))
                .context("cannot open the project")?
                .root
        }
    };
    let options = AgentEvalOptions {
        models: args.model.clone(),
        prompts: args.prompt.iter().cloned().collect(),
        tags: args.filter.clone(),
        limit: args.limit,
        tools: args.tools.clone(),
        tool_models: ToolModels {
            digits: args.digits_model.clone(),
            detectors: args.detector.clone(),
            clip: args.clip.clone(),
        },
        tool_timeout_s: args.tool_timeout,
        allowed: args.allowed.clone(),
        system: args.system.clone(),
        max_steps: args.max_steps,
        max_tokens: args.max_tokens,
        max_seconds: args.max_seconds,
        temperature: args.temperature,
        seed: args.seed,
        seed_offset: 0,
        ground_numbers: !args.free_numbers,
        parallel: args.parallel,
    };
    execute(
        &root,
        path,
        options,
        !args.no_store,
        &Reporting::default(),
        args.output.as_deref(),
    )
}

/// Prints a question's line as it is answered and collects its failed checks.
fn print_progress(event: AgentEvalEvent, failures: &mut Vec<String>) {
    match event {
        AgentEvalEvent::Loading { model } => eprintln!("loading {model}"),
        AgentEvalEvent::Loaded { .. }
        | AgentEvalEvent::Asking { .. }
        | AgentEvalEvent::Token { .. }
        | AgentEvalEvent::Step { .. } => {}
        AgentEvalEvent::Question(q) => {
            eprintln!(
                "{} · {}/{} {} {} ({} step{}, {:.1} s{})",
                q.column,
                q.index + 1,
                q.total,
                if q.passed { "✓" } else { "✗" },
                q.case,
                q.trace.steps.len(),
                if q.trace.steps.len() == 1 { "" } else { "s" },
                q.trace.total_ms / 1000.0,
                if q.resumed { ", recorded earlier" } else { "" }
            );
            for check in q.checks.iter().filter(|o| !o.passed) {
                failures.push(format!(
                    "  ✗ {} · {} · {}: {}",
                    q.column,
                    q.case,
                    check.check,
                    check.reason.as_deref().unwrap_or("failed")
                ));
            }
        }
    }
}

/// `--repeat K`: the whole set K times, repeat r sampling with seed + r, each repeat its
/// own stored run; then pass@1, pass@K and pass^K per column.
fn execute_repeats(
    root: &Path,
    path: &Path,
    base: AgentEvalOptions,
    store: bool,
    reporting: &Reporting,
    k: u32,
) -> Result<Outcome> {
    let cancel = cancel_on_interrupt();
    let mut results = Vec::new();
    for repeat in 0..k {
        let options = AgentEvalOptions {
            seed_offset: repeat,
            ..base.clone()
        };
        let plan = AgentEvalPlan::new(root, path, options, store)?;
        if repeat == 0 {
            for (name, why) in plan.left_out_tools() {
                eprintln!("note: tool {name} is left out: {why}");
            }
            if plan.samples_greedily() {
                eprintln!(
                    "note: every reply decodes greedily (temperature 0), so the {k} repeats give the same answers; set a temperature in the model or prompt to measure pass@k"
                );
            }
        }
        let recording = if store {
            Recording::New
        } else {
            Recording::Off
        };
        // Each failed question prints its ✗ line as it comes; repeats list no failures.
        let mut failures = Vec::new();
        let outcome = plan.run(recording, &cancel, &mut |event| {
            print_progress(event, &mut failures);
            Flow::Continue
        })?;
        let passed = outcome.result.cells.iter().filter(|c| c.passed).count();
        eprintln!(
            "repeat {} of {k}: {passed} of {} cells passed in {:.1} s{}",
            repeat + 1,
            outcome.result.cells.len(),
            outcome.result.duration_s,
            outcome
                .run_id
                .map(|id| format!(" · run {id}"))
                .unwrap_or_default()
        );
        if outcome.cancelled {
            eprintln!(
                "interrupted; the finished repeats and questions are in the run store{}",
                match outcome.run_id {
                    Some(id) => format!(
                        " (`promptlab eval {} --resume {id}` completes this repeat)",
                        path.display()
                    ),
                    None => String::new(),
                }
            );
            return Ok(Outcome::Interrupted);
        }
        results.push((outcome.result, outcome.run_id));
    }
    crate::cli::eval::repeat::report(&results, k, &reporting.outputs, reporting.min_pass_rate)
}

fn execute(
    root: &Path,
    path: &Path,
    mut options: AgentEvalOptions,
    store: bool,
    reporting: &Reporting,
    traces_output: Option<&Path>,
) -> Result<Outcome> {
    let recording = match reporting.resume {
        None if store => Recording::New,
        None => Recording::Off,
        Some(which) => {
            let store = promptlab::store::RunStore::open(&promptlab::project::store_path(root))?;
            // A resume asks the remaining questions as the interrupted run would have.
            let (run_id, stored) = resume_options(&store, path, which)?;
            options = stored;
            eprintln!("resuming run {run_id}");
            Recording::Resume(run_id)
        }
    };
    let plan = AgentEvalPlan::new(root, path, options, store)?;
    for (name, why) in plan.left_out_tools() {
        eprintln!("note: tool {name} is left out: {why}");
    }
    for (model, architecture) in plan.schedule_dependent_models() {
        eprintln!(
            "note: `{model}` ({architecture}) is not batch-invariant yet: with questions asked together some traces can differ from asking them one at a time; use --parallel 1 for traces that do not depend on the schedule"
        );
    }
    let cancel = cancel_on_interrupt();
    let mut failures = Vec::new();
    let outcome = plan.run(recording, &cancel, &mut |event| {
        print_progress(event, &mut failures);
        Flow::Continue
    })?;
    if outcome.cancelled {
        // Reports of a partial run would look complete; the store has every finished cell.
        eprintln!(
            "interrupted after {} of {} questions; no report written.{}",
            outcome.result.cells.len(),
            plan.cell_count(),
            match outcome.run_id {
                Some(id) => format!(
                    " Finish it with:\n  promptlab eval {} --resume {id}",
                    path.display()
                ),
                None => String::new(),
            }
        );
        return Ok(Outcome::Interrupted);
    }
    if let Some(output) = traces_output {
        let report = serde_json::json!({
            "eval_set": plan.set.name,
            "scores": outcome.scores,
            "cases": outcome.questions,
        });
        std::fs::write(output, serde_json::to_string_pretty(&report)? + "\n")?;
        eprintln!("wrote {}", output.display());
    }
    let result = &outcome.result;
    for output in &reporting.outputs {
        promptlab::report::write(result, output)?;
        eprintln!("wrote {}", output.display());
    }
    println!("{}", scores_table(&outcome.scores));
    if !failures.is_empty() {
        println!("Failures ({}):\n{}", failures.len(), failures.join("\n"));
    }
    let passed = result.cells.iter().filter(|c| c.passed).count();
    println!(
        "{passed} of {} cells passed ({}) in {:.1} s{}",
        result.cells.len(),
        promptlab::score::stats::format_rate(passed, result.cells.len()),
        result.duration_s,
        outcome
            .run_id
            .map(|id| format!(" · run {id}"))
            .unwrap_or_default()
    );
    let all_passed = match reporting.min_pass_rate {
        Some(min) => result.pass_rate() >= min,
        None => passed == result.cells.len(),
    };
    let errored = result.cells.iter().filter(|c| c.is_error()).count();
    Ok(Outcome::of_run(all_passed, errored))
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
    let mut table = crate::cli::table_style().table();
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
