//! `promptlab report RUN [-o FILE]...`: any stored run as a terminal summary or as a
//! report file (JSON, JSONL, CSV, Markdown, JUnit, self-contained HTML).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Result, anyhow};
use promptlab::report;
use promptlab::run::stored_result;

use super::Outcome;
use super::runs::StoreArgs;

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The run id, `latest` or `latest~N` (N runs before the latest); `sweep:ID` or `sweep:latest` for a sweep;
    /// `training:ID` or `training:latest` for a digit-CNN training run, `training:curve`
    /// for every training run compared as learning curves (HTML only).
    #[arg(default_value = "latest")]
    run: String,
    /// Write the report to FILE; the format follows the extension (.json, .jsonl, .csv,
    /// .md, .xml for JUnit, .html). Repeatable. `-o -` writes a run's JSON report to
    /// standard output. Without it, prints the summary.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    outputs: Vec<PathBuf>,
    /// Compare with this earlier run: the Markdown report (and the terminal summary) gains
    /// per-column changes with McNemar's test and the top regressions and fixes.
    #[arg(long, value_name = "RUN")]
    baseline: Option<i64>,
    /// Matrix rows to print (0 hides the matrix).
    #[arg(long, default_value_t = 20)]
    rows: usize,
    #[command(flatten)]
    store: StoreArgs,
}

pub fn run(args: ReportArgs) -> Result<Outcome> {
    if let Some(which) = args.run.strip_prefix("sweep:") {
        return sweep_report(&args, which);
    }
    if let Some(which) = args.run.strip_prefix("training:") {
        return training_report(&args, which);
    }
    report::check_paths(&args.outputs)?;
    let store = args.store.open()?;
    let id = super::runs::resolve_run(&store, &args.run)?;
    let result = stored_result(&store, id)?
        .ok_or_else(|| anyhow!("no run {id} in {}", store.path().display()))?;
    let against = match args.baseline {
        None => None,
        Some(base) => {
            if store.run(base)?.is_none() {
                return Err(anyhow!(
                    "--baseline {base}: no such run in {}",
                    store.path().display()
                ));
            }
            let comparison = promptlab::compare::compare(&store.cells(base)?, &store.cells(id)?);
            Some(report::baseline_markdown(base, id, &comparison, 10))
        }
    };
    for path in &args.outputs {
        if report::is_stdout(path) {
            super::write_report(&result, path)?;
            continue;
        }
        report::write(&result, path)?;
        if let (Some(section), Some("md")) = (&against, path.extension().and_then(|e| e.to_str())) {
            let mut text = std::fs::read_to_string(path)?;
            text.push_str(section);
            std::fs::write(path, text)?;
        }
        eprintln!("wrote {}", path.display());
    }
    if args.outputs.is_empty() {
        let mut text = format!("Run {id} · {} · {}\n", result.eval_set, result.started_at);
        text.push_str(&report::summary_table(
            &result,
            args.rows,
            &crate::cli::table_style(),
        ));
        let judging = report::judging_text(&result);
        if !judging.is_empty() {
            text.push_str(&format!("\n{judging}"));
        }
        if let Some(pairwise) = &result.pairwise {
            text.push_str(&format!("\n{}", pairwise.to_text(&result)));
        }
        let failures = report::failures_text(&result, 10);
        if !failures.is_empty() {
            text.push_str(&format!("\n{failures}"));
        }
        if let Some(section) = &against {
            text.push_str(section);
        }
        std::io::stdout().lock().write_all(text.as_bytes())?;
    }
    Ok(Outcome::Passed)
}

fn sweep_report(args: &ReportArgs, which: &str) -> Result<Outcome> {
    let store = args.store.open()?;
    let id = if which == "latest" {
        store
            .latest_sweep()?
            .ok_or_else(|| anyhow!("the run store has no sweeps yet"))?
    } else {
        which
            .parse::<i64>()
            .map_err(|_| anyhow!("sweep:{which}: expected a sweep id or `latest`"))?
    };
    let sweep = promptlab::sweep::stored_sweep(&store, id)?
        .ok_or_else(|| anyhow!("no sweep {id} in {}", store.path().display()))?;
    for path in &args.outputs {
        report::write_sweep(&sweep, path)?;
        eprintln!("wrote {}", path.display());
    }
    if args.outputs.is_empty() {
        let best = sweep.best_text();
        println!(
            "sweep {id} · {} · {} points\n{}",
            sweep.eval_set,
            sweep.points.len(),
            best.unwrap_or_default()
        );
    }
    Ok(Outcome::Passed)
}

fn training_report(args: &ReportArgs, which: &str) -> Result<Outcome> {
    let store = args.store.open()?;
    let runs = store.training_runs()?;
    let read_card =
        |run: &promptlab::store::TrainingRunRow| -> Result<promptlab::vision::train::ModelCard> {
            run.card_json
                .as_deref()
                .ok_or_else(|| anyhow!("training run {} has no model card yet", run.id))
                .and_then(|json| {
                    serde_json::from_str(json)
                        .map_err(|e| anyhow!("training run {}: unreadable card: {e}", run.id))
                })
        };
    let html = if which == "curve" {
        // Every finished run, oldest first; runs still going have no test report yet.
        let cards: Vec<_> = runs
            .iter()
            .rev()
            .filter(|run| run.status == "finished")
            .filter_map(|run| read_card(run).ok())
            .collect();
        if cards.is_empty() {
            anyhow::bail!("no finished training run in {}", store.path().display());
        }
        report::learning_curve_html("Learning curves", &cards)
    } else {
        let run = if which == "latest" {
            runs.first()
        } else {
            let id = which.parse::<i64>().map_err(|_| {
                anyhow!("training:{which}: expected a training run id, `latest` or `curve`")
            })?;
            runs.iter().find(|r| r.id == id)
        }
        .ok_or_else(|| anyhow!("no training run {which} in {}", store.path().display()))?;
        let card = read_card(run)?;
        report::training_html(
            &format!("Training run {} · {} · {}", run.id, run.dataset, run.preset),
            &card,
        )
    };
    if args.outputs.is_empty() {
        anyhow::bail!(
            "a training run report is HTML: give -o FILE.html, or -o - for standard output (`promptlab vision runs` lists them in the terminal)"
        );
    }
    for path in &args.outputs {
        if !report::is_stdout(path) && path.extension().and_then(|e| e.to_str()) != Some("html") {
            anyhow::bail!("{}: a training run report is .html", path.display());
        }
    }
    for path in &args.outputs {
        if report::is_stdout(path) {
            std::io::Write::write_all(&mut std::io::stdout().lock(), html.as_bytes())?;
            continue;
        }
        report::write_bytes(path, html.as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    Ok(Outcome::Passed)
}
