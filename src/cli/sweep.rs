//! `promptlab sweep EVALSET`: runs every setting of the eval set's `sweep:` section (each
//! one a stored run, tagged with the sweep), prints a table of the points with the best
//! one, and writes the sweep report (`.html` with the parallel-coordinates plot, `.json`,
//! `.md`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use promptlab::evalset::EvalSet;
use promptlab::evaluation::{Evaluation, Request};
use promptlab::project::Project;
use promptlab::store::RunStore;
use promptlab::sweep::{SweepReport, setting_text, value_text};

use super::Outcome;
use super::eval::{Execution, Selection, cancel_on_interrupt, execute_with_progress};

#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    /// An eval set with a `sweep:` section (a file, or NAME for eval-sets/NAME.yaml).
    pub eval_set: PathBuf,
    // Prompts and models replace the sweep's own (and are stored as part of it); `--limit`
    // applies to each setting.
    #[command(flatten)]
    pub selection: Selection,
    /// Write the sweep report: .html (parallel coordinates), .json or .md; `-` writes JSON to
    /// standard output (the table then goes to stderr). Repeatable.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub outputs: Vec<PathBuf>,
    #[command(flatten)]
    pub execution: Execution,
}

pub fn run(mut args: SweepArgs) -> Result<Outcome> {
    args.eval_set =
        super::eval::resolve_eval_set(&args.eval_set, args.selection.project.as_deref())?;
    check_outputs(&args.outputs)?;
    let eval_set = EvalSet::load(&args.eval_set)?;
    let mut spec = eval_set.sweep.clone().ok_or_else(|| {
        anyhow!(
            "{}: no `sweep:` section (expected e.g. `sweep: {{params: {{temperature: [0, 0.7]}}}}`)",
            args.eval_set.display()
        )
    })?;
    // `--prompts`/`--models` replace the sweep's own, and are stored as part of it.
    if !args.selection.prompts.is_empty() {
        spec.prompts = args.selection.prompts.clone();
    }
    if !args.selection.models.is_empty() {
        spec.models = args.selection.models.clone();
    }
    let settings = spec
        .settings()
        .with_context(|| args.eval_set.display().to_string())?;
    let project = match &args.selection.project {
        Some(dir) => Project::open(dir),
        None => Project::discover(&args.eval_set),
    }
    .context("cannot open the project")?;
    let key = promptlab::store::eval_set_key(&args.eval_set);
    // Every setting is planned first, so bad input fails before the first model loads.
    let mut evaluations = settings
        .iter()
        .map(|setting| {
            Evaluation::prepare(Request {
                eval_set: args.eval_set.clone(),
                project: Some(project.root.clone()),
                prompts: spec.prompts.clone(),
                models: spec.models.clone(),
                tags: args.selection.tags.clone(),
                limit: args.selection.case_limit(),
                params: setting.params.clone(),
                use_cache: !args.execution.no_cache,
                parallel: args.execution.parallel,
                gpu_layers: args.execution.gpu_layers,
                ..Request::default()
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let store = RunStore::open(&project.store_path())?;
    let sweep_id = store.create_sweep(
        &eval_set.name,
        &key,
        &serde_json::to_string(&spec)?,
        &chrono::Local::now().to_rfc3339(),
    )?;
    if let Some(plan) = evaluations.first().and_then(|e| e.prompt_plan()) {
        eprintln!(
            "sweep {sweep_id}: {} settings × {} columns × {} cases",
            settings.len(),
            plan.columns.len(),
            plan.cases.len()
        );
    }
    let cancel = cancel_on_interrupt();
    let mut runs = Vec::new();
    for (setting, evaluation) in settings.into_iter().zip(evaluations.iter_mut()) {
        // History and `runs list` then say which setting a run was.
        evaluation.set_label(format!(
            "sweep {sweep_id}: {}",
            setting_text(&setting.values)
        ));
        let run_id = evaluation.begin()?;
        if let Some(run_id) = run_id {
            store.add_sweep_run(sweep_id, run_id, &serde_json::to_string(&setting)?)?;
        }
        let finished = execute_with_progress(evaluation, &args.execution, &cancel)?;
        let result = finished.result;
        eprintln!(
            "{}: {} of {} cells passed in {:.1} s{}",
            setting_text(&setting.values),
            result.cells.iter().filter(|c| c.passed).count(),
            result.cells.len(),
            result.duration_s,
            run_id.map(|id| format!(" · run {id}")).unwrap_or_default()
        );
        if cancel.is_cancelled() {
            eprintln!("interrupted; the finished settings are in the run store (sweep {sweep_id})");
            return Ok(Outcome::Interrupted);
        }
        runs.push((setting, result, run_id));
    }
    let report = SweepReport::new(Some(sweep_id), &eval_set.name, &runs);
    let to_stdout = write_outputs(&report, &args.outputs)?;
    let mut table = crate::cli::table_style().table();
    let mut header: Vec<String> = report.params.clone();
    header.extend([
        "prompt".into(),
        "model".into(),
        "pass rate [95% CI]".into(),
        "score".into(),
        "run".into(),
    ]);
    table.set_header(header);
    for point in &report.points {
        let mut row: Vec<String> = report
            .params
            .iter()
            .map(|p| point.values.get(p).map(value_text).unwrap_or_default())
            .collect();
        row.extend([
            point.prompt.clone(),
            point.model.clone(),
            promptlab::score::stats::format_rate(point.passed, point.cases),
            format!("{:.3}", point.mean_score),
            point.run_id.map(|r| r.to_string()).unwrap_or_default(),
        ]);
        table.add_row(row);
    }
    let mut text = format!("{table}\n");
    if let Some(best) = report.best_text() {
        text.push_str(&format!("{best} · sweep {sweep_id}\n"));
    }
    print_table(&text, to_stdout)?;
    Ok(Outcome::Passed)
}

/// Refuses sweep report paths that are not `.html`, `.json`, `.md` or one `-`, before
/// anything runs.
pub(super) fn check_outputs(paths: &[PathBuf]) -> Result<()> {
    for path in paths {
        if !promptlab::report::is_stdout(path)
            && !matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("html" | "json" | "md")
            )
        {
            bail!(
                "{}: a sweep report is .html, .json or .md (or - for JSON on standard output)",
                path.display()
            );
        }
    }
    if paths
        .iter()
        .filter(|path| promptlab::report::is_stdout(path))
        .count()
        > 1
    {
        bail!(promptlab::report::ReportError::StdoutTwice);
    }
    Ok(())
}

/// Writes the sweep report to each path (`-`: JSON on standard output); whether standard
/// output took one.
pub(super) fn write_outputs(report: &SweepReport, paths: &[PathBuf]) -> Result<bool> {
    let mut to_stdout = false;
    for path in paths {
        if promptlab::report::is_stdout(path) {
            let mut bytes = promptlab::report::sweep_bytes(report, path)?;
            bytes.push(b'\n');
            std::io::stdout().lock().write_all(&bytes)?;
            to_stdout = true;
            continue;
        }
        promptlab::report::write_sweep(report, path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(to_stdout)
}

/// The sweep's table: on standard output, or on stderr when the report took it (`-o -`).
pub(super) fn print_table(text: &str, report_on_stdout: bool) -> Result<()> {
    if report_on_stdout {
        std::io::stderr().lock().write_all(text.as_bytes())?;
    } else {
        std::io::stdout().lock().write_all(text.as_bytes())?;
    }
    Ok(())
}
