//! `promptlab eval EVALSET`: plan, run with a progress bar on stderr, print the matrix and
//! the summary, write reports, and exit 0/1/2.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use promptlab::agent::eval::runner::AgentEvalOptions;
use promptlab::catalog::EngineChoice;
use promptlab::engine::CancelToken;
use promptlab::evaluation::{Evaluation, Finished, Request, StoreChoice};
use promptlab::report;
use promptlab::run::{self, ExecuteOptions, ResumeFrom};

use super::Outcome;

pub(super) mod progress;
pub(crate) mod repeat;

use progress::Progress;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The eval set: a file, or NAME for the project's eval-sets/NAME.yaml.
    pub eval_set: PathBuf,
    #[command(flatten)]
    pub selection: Selection,
    /// Write the results to FILE; the format follows the extension
    /// (.json, .jsonl, .csv, .md, .xml for JUnit, .html). Repeatable. `-o -` writes the JSON
    /// report to standard output (the summary then goes to stderr).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub outputs: Vec<PathBuf>,
    /// Exit 0 when at least this fraction (0–1) of cells pass, instead of requiring all.
    #[arg(long, value_name = "RATE")]
    pub min_pass_rate: Option<f64>,
    #[command(flatten)]
    pub execution: Execution,
    /// Matrix rows to print (0 hides the matrix).
    #[arg(long, default_value_t = 60)]
    pub rows: usize,
    /// Do not record the run (nor use the cache).
    #[arg(long)]
    pub no_store: bool,
    /// A name for the run in the run store ("baseline", "terse system prompt"), shown by
    /// `runs list` and the workbench's History; `runs label` changes it later.
    #[arg(long, value_name = "TEXT", conflicts_with = "no_store")]
    pub label: Option<String>,
    /// Run store database (default: PROJECT/.promptlab/runs.db).
    #[arg(long, value_name = "FILE")]
    pub store: Option<PathBuf>,
    /// Complete an interrupted run: the latest one of this eval set, or RUN_ID.
    #[arg(long, value_name = "RUN_ID", num_args = 0..=1, default_missing_value = "latest")]
    pub resume: Option<String>,
    /// Run every cell K times with seeds seed..seed+K-1 (each repeat is its own stored
    /// run) and report pass@1, pass@K and pass^K per column.
    #[arg(long, default_value_t = 1, value_name = "K",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// The catalog model that judges model-graded assertions (llm-rubric, factuality,
    /// model-graded-closedqa) that do not name their own `provider`; overrides the eval
    /// set's `judge`.
    #[arg(long, value_name = "MODEL")]
    pub judge: Option<String>,
    /// After the run, have the judge compare the columns' outputs two at a time (both
    /// orders) and rank the columns (Bradley–Terry with 95% intervals).
    #[arg(long)]
    pub pairwise: bool,
    /// The engine for the run's GGUF models: `llama` (llama.cpp, default) or `mistralrs`
    /// (only in builds with the `mistralrs` feature); overrides the catalog's `engine`.
    #[arg(long, value_parser = ["llama", "mistralrs"])]
    pub engine: Option<String>,
    /// For a promptfoo config: run it even if it uses assertion types or features
    /// promptlab lacks, listing them as skipped (otherwise the run stops before starting).
    #[arg(long)]
    pub skip_unsupported: bool,
}

/// Which cells of an eval set run: `eval` and `sweep` take the same options.
#[derive(Debug, Clone, Default, Args)]
pub struct Selection {
    /// Project folder (default: found from the eval set's location).
    #[arg(long)]
    pub project: Option<PathBuf>,
    /// Prompts to run instead of the eval set's or its sweep's (`name` or `name:variant`),
    /// comma-separated.
    #[arg(long, value_delimiter = ',', visible_alias = "prompt")]
    pub prompts: Vec<String>,
    /// Models to run instead of the eval set's or its sweep's, comma-separated (`echo` is
    /// built in).
    #[arg(long, value_delimiter = ',', visible_alias = "model")]
    pub models: Vec<String>,
    /// Run only cases with this tag (repeatable).
    #[arg(long = "filter", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Run at most N cases.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
}

impl Selection {
    /// `--limit` as a count of cases.
    pub fn case_limit(&self) -> Option<usize> {
        self.limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }
}

/// How the cells run: `eval` and `sweep` take the same options.
#[derive(Debug, Clone, Default, Args)]
pub struct Execution {
    /// CPU threads per model (default: all cores).
    #[arg(long)]
    pub threads: Option<u32>,
    /// Cells decoded together as parallel sequences of one model (default 8; 1 = one at a time).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub parallel: Option<u32>,
    /// Instances of each GGUF model run by llama.cpp, sharing the threads (default: one per
    /// core for a model under 1 GiB when --parallel is above 1). Outputs are the same at any N.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub workers: Option<u32>,
    /// Layers of each GGUF model put on a GPU: all, none or a number (default: the
    /// catalog's `gpu_layers`, else all when llama.cpp finds a GPU).
    #[arg(long, value_name = "all|none|N")]
    pub gpu_layers: Option<promptlab::catalog::GpuLayers>,
    /// Generate every cell even when an identical generation is in the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Print only the summary, no progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

impl Execution {
    pub fn options(&self) -> ExecuteOptions {
        ExecuteOptions {
            threads: self.threads,
            parallel: self.parallel,
            workers: self.workers,
        }
    }
}

pub fn run(mut args: EvalArgs) -> Result<Outcome> {
    args.eval_set = resolve_eval_set(&args.eval_set, args.selection.project.as_deref())?;
    let request = request(&args)?;
    evaluate(&args, request, None)
}

/// What `eval`'s flags ask for, as the library's request.
fn request(args: &EvalArgs) -> Result<Request> {
    let resume = match args.resume.as_deref() {
        None => None,
        Some("latest") => Some(ResumeFrom::Latest),
        Some(id) => Some(ResumeFrom::Run(id.parse::<i64>().map_err(|_| {
            anyhow::anyhow!("--resume {id}: expected a run id or nothing")
        })?)),
    };
    let store = match (&args.store, args.no_store) {
        (_, true) => StoreChoice::Off,
        (Some(path), false) => StoreChoice::At(path.clone()),
        (None, false) => StoreChoice::Project,
    };
    Ok(Request {
        eval_set: args.eval_set.clone(),
        project: args.selection.project.clone(),
        prompts: args.selection.prompts.clone(),
        models: args.selection.models.clone(),
        tags: args.selection.tags.clone(),
        limit: args.selection.case_limit(),
        seed_offset: 0,
        judge: args.judge.clone(),
        params: Default::default(),
        engine: args.engine.as_deref().map(|engine| match engine {
            "mistralrs" => EngineChoice::Mistralrs,
            _ => EngineChoice::Llama,
        }),
        skip_unsupported: args.skip_unsupported,
        store,
        resume,
        use_cache: !args.execution.no_cache,
        label: args.label.clone(),
        parallel: args.execution.parallel,
        gpu_layers: args.execution.gpu_layers,
        agent: AgentEvalOptions::default(),
        ..Request::default()
    })
}

/// Runs any eval set (`eval`, and `agent --eval` with its agent options in `request`):
/// progress on stderr, then the reports, the summary and the exit outcome. `traces`
/// writes an agent set's questions with their traces as JSON.
pub(crate) fn evaluate(
    args: &EvalArgs,
    request: Request,
    traces: Option<&std::path::Path>,
) -> Result<Outcome> {
    if let Some(rate) = args.min_pass_rate
        && !(0.0..=1.0).contains(&rate)
    {
        bail!("--min-pass-rate {rate}: expected a fraction between 0 and 1 (e.g. 0.9)");
    }
    if args.pairwise && promptlab::evalset::is_agent_set(&args.eval_set) {
        bail!(
            "{}: --pairwise does not apply to an agent eval set (`kind: agent`)",
            args.eval_set.display()
        );
    }
    report::check_paths(&args.outputs)?;
    if args.repeat > 1 {
        if request.resume.is_some() {
            bail!("--repeat cannot be combined with --resume: resume each repeat's run on its own");
        }
        if args.pairwise {
            bail!("--pairwise cannot be combined with --repeat yet: compare one run at a time");
        }
        repeat::check_outputs(&args.outputs)?;
        return repeat::run(args, request);
    }
    let mut evaluation = Evaluation::prepare(request)?;
    for note in evaluation.notes() {
        eprintln!("{note}");
    }
    if let Some(id) = evaluation.resumed() {
        eprintln!("resuming run {id}");
    }
    let pairwise = match (
        args.pairwise,
        evaluation.prompt_plan(),
        evaluation.project(),
    ) {
        (true, Some(plan), Some(project)) => {
            let judge = args
                .judge
                .clone()
                .or_else(|| plan.eval_set.judge.clone())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--pairwise needs a judge model: pass --judge NAME or set `judge:` in {}",
                        args.eval_set.display()
                    )
                })?;
            Some(run::PairwisePlan::new(
                project,
                plan,
                &judge,
                plan.eval_set.pairwise.as_deref(),
            )?)
        }
        _ => None,
    };

    let cancel = cancel_on_interrupt();
    let finished = execute_with_progress(&mut evaluation, &args.execution, &cancel)?;
    let run_id = finished.run_id;
    let mut result = finished.result;
    if let Some(pairwise) = &pairwise
        && !cancel.is_cancelled()
    {
        let mut recording = evaluation.recording();
        let mut progress = Progress::new(0, args.execution.quiet, None);
        let report = run::compare_pairwise(
            pairwise,
            &result,
            &args.execution.options(),
            &mut progress,
            &cancel,
            &mut recording,
        )?;
        progress.bar.finish_and_clear();
        if let (Some(recording), false) = (recording.as_ref(), cancel.is_cancelled()) {
            recording.store.save_pairwise(
                recording.run_id,
                &report.judge,
                &serde_json::to_string(&report)?,
            )?;
        }
        result.pairwise = Some(report);
    }
    if cancel.is_cancelled() || result.cancelled {
        // Reports of a partial run would look complete; the store has every finished cell.
        let what = if evaluation.is_agent() {
            "questions"
        } else {
            "cells"
        };
        eprintln!(
            "interrupted after {} of {} {what}; no report written.{}",
            result.cells.len(),
            evaluation.cell_count(),
            match run_id {
                Some(id) => format!(
                    " Finish it with:\n  promptlab eval {} --resume {id}",
                    args.eval_set.display()
                ),
                None => String::new(),
            }
        );
        return Ok(Outcome::Interrupted);
    }

    if let (Some(path), Some(agent)) = (traces, finished.agent.as_ref()) {
        let report = serde_json::json!({
            "eval_set": result.eval_set,
            "scores": agent.scores,
            "cases": agent.questions,
        });
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
        eprintln!("wrote {}", path.display());
    }
    // Reports first: they must exist even if printing fails (e.g. output piped to `head`).
    for path in &args.outputs {
        super::write_report(&result, path)?;
    }

    let rows = if args.execution.quiet { 0 } else { args.rows };
    let mut text = report::summary_table(&result, rows, &crate::cli::table_style());
    if let Some(agent) = &finished.agent {
        text.push_str(&format!(
            "\nTool use\n{}\n",
            super::agent::eval::scores_table(&agent.scores)
        ));
    }
    for (index, report) in result.classification.iter().enumerate() {
        if let Some(report) = report {
            text.push_str(&format!(
                "\nClassification · {}\n{}\n",
                result.columns[index].id,
                report.to_text()
            ));
        }
    }
    for (index, report) in result.detection.iter().enumerate() {
        if let Some(report) = report {
            text.push_str(&format!(
                "\nDetection · {}\n{}\n",
                result.columns[index].id,
                report.to_text()
            ));
        }
    }
    let judging = report::judging_text(&result);
    if !judging.is_empty() {
        text.push_str(&format!("\n{judging}"));
    }
    if let Some(pairwise) = &result.pairwise {
        text.push_str(&format!("\n{}", pairwise.to_text(&result)));
    }
    let failures = report::failures_text(&result, 20);
    if !failures.is_empty() {
        text.push_str(&format!("\n{failures}\n"));
    }
    let rate = result.pass_rate();
    let cached = result.cells.iter().filter(|c| c.cached).count();
    text.push_str(&format!(
        "{} of {} cells passed ({}) in {:.1} s{}{}\n",
        result.cells.iter().filter(|c| c.passed).count(),
        result.cells.len(),
        promptlab::score::stats::format_rate(
            result.cells.iter().filter(|c| c.passed).count(),
            result.cells.len()
        ),
        result.duration_s,
        if cached > 0 {
            format!(", {cached} from the cache")
        } else {
            String::new()
        },
        run_id.map(|id| format!(" · run {id}")).unwrap_or_default()
    ));
    // With `-o -` standard output is the report's: the summary goes to stderr.
    if args.outputs.iter().any(|path| report::is_stdout(path)) {
        std::io::stderr().lock().write_all(text.as_bytes())?;
    } else {
        std::io::stdout().lock().write_all(text.as_bytes())?;
    }

    let passed = !result.cancelled
        && match args.min_pass_rate {
            Some(min) => rate >= min,
            None => result.failed_cells().next().is_none(),
        };
    let errored = result.cells.iter().filter(|c| c.is_error()).count();
    Ok(Outcome::of_run(passed, errored))
}

/// The first Ctrl-C stops generation between tokens and keeps every finished cell; a
/// second one exits at once (finished cells are already in the store either way).
pub(super) fn cancel_on_interrupt() -> CancelToken {
    let cancel = CancelToken::new();
    let on_interrupt = cancel.clone();
    if let Err(err) = ctrlc::set_handler(move || {
        if on_interrupt.is_cancelled() {
            // `exit` would run C++ destructors under a decoding engine thread; finished
            // cells are committed, so leave without any.
            // SAFETY: _exit only ends the process.
            unsafe { libc::_exit(130) }
        }
        on_interrupt.cancel();
    }) {
        eprintln!("warning: Ctrl-C will end the run abruptly ({err}); finished cells are kept");
    }
    cancel
}

/// Runs an evaluation with the progress bar on stderr (hidden with --quiet); an agent
/// set's questions also get a line each as they are answered.
pub(super) fn execute_with_progress(
    evaluation: &mut Evaluation,
    execution: &Execution,
    cancel: &CancelToken,
) -> Result<Finished> {
    let lines = (evaluation.is_agent() && !execution.quiet)
        .then(|| progress::QuestionLines::new(evaluation.cell_labels()));
    let mut progress = Progress::new(evaluation.cell_count() as u64, execution.quiet, lines);
    let finished = evaluation.execute(&execution.options(), &mut progress, cancel)?;
    progress.bar.finish_and_clear();
    Ok(finished)
}
/// A bare NAME means `eval-sets/NAME.yaml` in the project (`--project`, or the one holding
/// the current folder).
pub(crate) fn resolve_eval_set(
    arg: &std::path::Path,
    project: Option<&std::path::Path>,
) -> Result<PathBuf> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    Ok(promptlab::project::resolve_eval_set(
        arg,
        project.unwrap_or(&cwd),
    )?)
}
