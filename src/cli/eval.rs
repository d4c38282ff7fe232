//! `promptlab eval EVALSET`: plan, run with a progress bar on stderr, print the matrix and
//! the summary, write reports, and exit 0/1/2.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use promptlab::engine::CancelToken;
use promptlab::evalset::EvalSet;
use promptlab::project::Project;
use promptlab::report;
use promptlab::run::{
    self, ExecuteOptions, Recording, ResumeFrom, RunOptions, ScheduleDependence, StoredConfig,
};
use promptlab::store::RunStore;

use super::Outcome;

mod progress;
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
    if let Some(rate) = args.min_pass_rate
        && !(0.0..=1.0).contains(&rate)
    {
        bail!("--min-pass-rate {rate}: expected a fraction between 0 and 1 (e.g. 0.9)");
    }
    if promptlab::evalset::is_agent_set(&args.eval_set) {
        return super::agent::run_from_eval(&args);
    }
    report::check_paths(&args.outputs)?;
    let (eval_set, project) = if promptlab::promptfoo::is_config(&args.eval_set) {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let (project, imported) = promptlab::promptfoo::open_project(
            &args.eval_set,
            args.selection.project.as_deref(),
            &cwd,
            args.skip_unsupported,
        )?;
        for warning in &imported.warnings {
            eprintln!("warning: {warning}");
        }
        for skipped in &imported.skipped {
            eprintln!("skipped (promptlab lacks it): {skipped}");
        }
        (imported.eval_set, project)
    } else {
        let eval_set = EvalSet::load(&args.eval_set)?;
        let project = match &args.selection.project {
            Some(dir) => Project::open(dir),
            None => Project::discover(&args.eval_set),
        }
        .context("cannot open the project")?;
        (eval_set, project)
    };
    let mut project = project;
    if let Some(engine) = args.engine.as_deref() {
        let choice = match engine {
            "mistralrs" => promptlab::catalog::EngineChoice::Mistralrs,
            _ => promptlab::catalog::EngineChoice::Llama,
        };
        for entry in project.catalog.models.values_mut() {
            if let promptlab::catalog::KindSettings::Gguf(local) = &mut entry.settings {
                local.engine = choice;
            }
        }
    }
    let mut options = RunOptions {
        prompts: args.selection.prompts.clone(),
        models: args.selection.models.clone(),
        tags: args.selection.tags.clone(),
        limit: args.selection.case_limit(),
        seed_offset: 0,
        judge: args.judge.clone(),
        params: Default::default(),
    };
    let mut store = if args.no_store {
        None
    } else {
        let path = args.store.clone().unwrap_or_else(|| project.store_path());
        Some(RunStore::open(&path)?)
    };
    // Resuming re-selects exactly what the interrupted run selected.
    let resume_id = match (&args.resume, store.as_ref()) {
        (None, _) => None,
        (Some(_), None) => bail!("--resume needs the run store; drop --no-store"),
        (Some(which), Some(store)) => {
            let which = if which == "latest" {
                ResumeFrom::Latest
            } else {
                ResumeFrom::Run(which.parse::<i64>().map_err(|_| {
                    anyhow::anyhow!("--resume {which}: expected a run id or nothing")
                })?)
            };
            let (id, stored_options) = StoredConfig::to_resume(store, &args.eval_set, which)?;
            options = stored_options;
            Some(id)
        }
    };
    if args.repeat > 1 {
        if resume_id.is_some() {
            bail!("--repeat cannot be combined with --resume: resume each repeat's run on its own");
        }
        if args.pairwise {
            bail!("--pairwise cannot be combined with --repeat yet: compare one run at a time");
        }
        repeat::check_outputs(&args.outputs)?;
        return repeat::run(&args, &project, eval_set, options, store);
    }
    let plan = run::plan(&project, eval_set, &options)?;
    // The plan refused any broken file the set uses; the others only get a word.
    for broken in &project.prompts.broken {
        eprintln!(
            "warning: a prompt file does not load (this eval set does not use it): {}",
            broken.error
        );
    }
    let pairwise = if args.pairwise {
        let judge = options
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
            &project,
            &plan,
            &judge,
            plan.eval_set.pairwise.as_deref(),
        )?)
    } else {
        None
    };

    let recording = match store.as_mut() {
        None => None,
        Some(store) => {
            if let Some(id) = resume_id {
                eprintln!("resuming run {id}");
            }
            Some(Recording::begin(
                store,
                &plan,
                &args.eval_set,
                &options,
                resume_id,
                !args.execution.no_cache,
            )?)
        }
    };
    let run_id = recording.as_ref().map(|r| r.run_id);
    if let (Some(recording), Some(label)) = (recording.as_ref(), args.label.as_deref()) {
        recording.store.set_label(
            recording.run_id,
            Some(label).filter(|l| !l.trim().is_empty()),
        )?;
    }

    let cancel = cancel_on_interrupt();
    let mut result = execute_with_progress(&plan, &args.execution, &cancel, recording)?;
    if let Some(pairwise) = &pairwise
        && !cancel.is_cancelled()
    {
        let mut recording = match (store.as_mut(), run_id) {
            (Some(store), Some(run_id)) => Some(Recording {
                store,
                run_id,
                use_cache: !args.execution.no_cache,
            }),
            _ => None,
        };
        let mut progress = Progress::new(0, args.execution.quiet);
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
    if cancel.is_cancelled() {
        // Reports of a partial run would look complete; the store has every finished cell.
        eprintln!(
            "interrupted after {} of {} cells; no report written. Finish it with:\n  promptlab eval {} --resume{}",
            result.cells.len(),
            plan.cells.len(),
            args.eval_set.display(),
            run_id.map(|id| format!(" {id}")).unwrap_or_default()
        );
        return Ok(Outcome::Interrupted);
    }

    let parallel = args
        .execution
        .parallel
        .unwrap_or(promptlab::engine::llama::DEFAULT_PARALLEL);
    for (model, why) in plan.schedule_dependent_models(parallel) {
        match why {
            ScheduleDependence::RemoteConcurrency => eprintln!(
                "note: `{model}` is a remote model sent several requests at once; its server may decode them in one batch, and then its replies can depend on what else it was decoding (promptlab's own engines give the same output at any --parallel for the architectures it has verified)"
            ),
            ScheduleDependence::Architecture(architecture) => eprintln!(
                "note: `{model}` ({architecture}) is not batch-invariant yet: at --parallel {parallel} some outputs can differ from a --parallel 1 run; use --parallel 1 for outputs that do not depend on the schedule"
            ),
        }
    }
    // Reports first: they must exist even if printing fails (e.g. output piped to `head`).
    for path in &args.outputs {
        super::write_report(&result, path)?;
    }

    let rows = if args.execution.quiet { 0 } else { args.rows };
    let mut text = report::summary_table(&result, rows, &crate::cli::table_style());
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

/// Runs a plan with the progress bar on stderr (hidden with --quiet).
pub(super) fn execute_with_progress(
    plan: &run::RunPlan,
    execution: &Execution,
    cancel: &CancelToken,
    recording: Option<Recording>,
) -> Result<run::RunResult> {
    let mut progress = Progress::new(plan.cells.len() as u64, execution.quiet);
    let result = run::execute(plan, &execution.options(), &mut progress, cancel, recording)?;
    progress.bar.finish_and_clear();
    Ok(result)
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
