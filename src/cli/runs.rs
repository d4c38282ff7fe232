//! `promptlab runs list|show|compare`: the run store from the command line.

use comfy_table::{Cell, Table};
use promptlab::report::{TableStyle, Verdict};
use promptlab::score::stats::{format_rate, significance};
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use promptlab::compare::compare_runs;
use promptlab::project::Project;
use promptlab::store::{RunStore, StoredCell};

use super::Outcome;

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Every recorded run, newest first.
    List(StoreArgs),
    /// One run: per prompt × model pass rate and score, and its failing cases.
    Show {
        /// A run id, `latest` (the default) or `latest~N` (N runs before it).
        #[arg(default_value = "latest")]
        run: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Name a run ("baseline", "terse system prompt"), or clear its name without TEXT.
    Label {
        /// A run id, `latest` or `latest~N`.
        run: String,
        /// The name; none clears it.
        text: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Run B against baseline run A: deltas per column, regressions, fixes and changed
    /// outputs, each with a word diff ([-run A's words-]{+run B's words+}).
    Compare {
        /// The baseline: a run id, `latest` or `latest~N` (N runs before the latest).
        a: String,
        /// The run compared with it (same forms).
        b: String,
        /// Exit 1 when a case that passed in A fails in B.
        #[arg(long)]
        fail_on_regression: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Project folder (default: found from the current folder).
    #[arg(long)]
    project: Option<PathBuf>,
    /// Run store database (default: PROJECT/.promptlab/runs.db).
    #[arg(long, value_name = "FILE")]
    store: Option<PathBuf>,
}

/// A run named on the command line: its id, `latest`, or `latest~N` (the run N before the
/// latest, so `latest~1 latest` compares the last two runs).
pub(super) fn resolve_run(store: &RunStore, which: &str) -> Result<i64> {
    let Some(rest) = which.strip_prefix("latest") else {
        return which
            .parse::<i64>()
            .map_err(|_| anyhow::anyhow!("{which}: expected a run id, `latest` or `latest~N`"));
    };
    let back = match rest.strip_prefix('~') {
        None if rest.is_empty() => 0,
        Some(n) => n
            .parse::<usize>()
            .map_err(|_| anyhow::anyhow!("{which}: expected `latest~N` with N a number"))?,
        None => bail!("{which}: expected a run id, `latest` or `latest~N`"),
    };
    let runs = store.runs()?;
    match runs.get(back) {
        Some(run) => Ok(run.id),
        None if runs.is_empty() => bail!("the run store has no runs yet"),
        None => bail!(
            "{which}: the run store holds {} run{}",
            runs.len(),
            if runs.len() == 1 { "" } else { "s" }
        ),
    }
}

impl StoreArgs {
    pub(super) fn open(&self) -> Result<RunStore> {
        let path = match &self.store {
            Some(path) => path.clone(),
            None => {
                let start = self.project.clone().unwrap_or_else(|| PathBuf::from("."));
                let project = Project::discover(&start).context("cannot open the project")?;
                project.store_path()
            }
        };
        if !path.is_file() {
            bail!(
                "{}: no run store yet (run `promptlab eval` first)",
                path.display()
            );
        }
        Ok(RunStore::open(&path)?)
    }
}

pub fn run(command: RunsCommand) -> Result<Outcome> {
    let mut out = String::new();
    let outcome = match command {
        RunsCommand::List(store) => {
            let store = store.open()?;
            let table = runs_table(&store.runs()?, crate::cli::table_style());
            out.push_str(&format!("{table}\n"));
            Outcome::Passed
        }
        RunsCommand::Show { run, store } => {
            let store = store.open()?;
            let run = resolve_run(&store, &run)?;
            let row = store
                .run(run)?
                .ok_or_else(|| anyhow::anyhow!("no run {run} in {}", store.path().display()))?;
            let cells = store.cells(run)?;
            let label = row
                .label
                .as_deref()
                .map(|l| format!(" \"{l}\""))
                .unwrap_or_default();
            out.push_str(&format!(
                "run {}{label} · {} · {} · {} · {}/{} cells\n",
                row.id,
                row.eval_set,
                row.started_at,
                row.status.as_str(),
                row.cells_done,
                row.cell_count
            ));
            let mut table = crate::cli::table_style().table();
            table.set_header([
                "prompt @ model",
                "pass rate [95% CI]",
                "passed",
                "score",
                "cached",
            ]);
            let style = crate::cli::table_style();
            for (column, mine) in by_column(&cells) {
                let passed = mine.iter().filter(|c| c.passed).count();
                let verdict = Verdict::of_count(passed, mine.len());
                table.add_row([
                    Cell::new(column),
                    style.verdict(format_rate(passed, mine.len()), verdict),
                    style.verdict(format!("{passed}/{}", mine.len()), verdict),
                    Cell::new(format!(
                        "{:.3}",
                        mine.iter().map(|c| c.score).sum::<f64>() / mine.len().max(1) as f64
                    )),
                    Cell::new(mine.iter().filter(|c| c.cached).count()),
                ]);
            }
            out.push_str(&format!("{table}\n"));
            for cell in cells.iter().filter(|c| !c.passed) {
                out.push_str(&format!(
                    "  ✗ {} · case {}: {}\n",
                    cell.column_id,
                    cell.case_id,
                    one_line(cell.error.as_deref().unwrap_or(&cell.output))
                ));
            }
            Outcome::Passed
        }
        RunsCommand::Label { run, text, store } => {
            let store = store.open()?;
            let id = resolve_run(&store, &run)?;
            if store.run(id)?.is_none() {
                bail!("no run {id} in {}", store.path().display());
            }
            let label = text.as_deref().map(str::trim).filter(|l| !l.is_empty());
            store.set_label(id, label)?;
            match label {
                Some(label) => out.push_str(&format!("run {id} is now labelled \"{label}\"\n")),
                None => out.push_str(&format!("run {id} has no label now\n")),
            }
            Outcome::Passed
        }
        RunsCommand::Compare {
            a,
            b,
            fail_on_regression,
            store,
        } => {
            let store = store.open()?;
            let (a, b) = (resolve_run(&store, &a)?, resolve_run(&store, &b)?);
            for id in [a, b] {
                if store.run(id)?.is_none() {
                    bail!("no run {id} in {}", store.path().display());
                }
            }
            let comparison = compare_runs(&store, a, b)?;
            let mut table = crate::cli::table_style().table();
            table.set_header([
                "prompt @ model".to_string(),
                "cases".into(),
                format!("pass rate {a} [95% CI]"),
                format!("pass rate {b} [95% CI]"),
                "Δ pass".into(),
                "McNemar p".into(),
                "Δ score [95% CI]".into(),
            ]);
            for c in &comparison.columns {
                let score = match &c.score_change {
                    Some(s) => format!("{:+.3} [{:+.3}, {:+.3}]", s.mean_difference, s.low, s.high),
                    None => "–".into(),
                };
                let change = c.pass_rate_b - c.pass_rate_a;
                let delta = format!("{:+.1} pts", change * 100.0);
                let style = crate::cli::table_style();
                table.add_row([
                    Cell::new(&c.column),
                    Cell::new(c.shared),
                    Cell::new(format_rate(c.passed_a, c.shared)),
                    Cell::new(format_rate(c.passed_b, c.shared)),
                    match change.partial_cmp(&0.0) {
                        Some(std::cmp::Ordering::Greater) => style.verdict(delta, Verdict::Passed),
                        Some(std::cmp::Ordering::Less) => style.verdict(delta, Verdict::Failed),
                        _ => Cell::new(delta),
                    },
                    Cell::new(format!("{:.3}", c.mcnemar_p)),
                    Cell::new(score),
                ]);
            }
            out.push_str(&format!("{table}\n"));
            for c in &comparison.columns {
                out.push_str(&format!("{}: {}", c.column, c.verdict()));
                if let Some(s) = &c.score_change {
                    out.push_str(&format!(
                        "; score change {} (paired bootstrap p = {:.3})",
                        significance(s.p_value),
                        s.p_value
                    ));
                }
                out.push('\n');
            }
            for (title, changes) in [
                (
                    "Regressions (passed in A, fail in B)",
                    &comparison.regressions,
                ),
                ("Fixes (failed in A, pass in B)", &comparison.fixes),
                ("Outputs changed, same verdict", &comparison.changed_outputs),
            ] {
                out.push_str(&format!("\n{title}: {}\n", changes.len()));
                for change in changes {
                    // The word diff says what changed; `runs show` has the whole outputs.
                    out.push_str(&format!(
                        "  {} · case {} (score {:.2} → {:.2})\n      {}\n",
                        change.column,
                        change.name(),
                        change.score_a,
                        change.score_b,
                        change.inline_diff()
                    ));
                }
            }
            if fail_on_regression && !comparison.regressions.is_empty() {
                Outcome::Failed
            } else {
                Outcome::Passed
            }
        }
    };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(outcome)
}

fn by_column(cells: &[StoredCell]) -> Vec<(String, Vec<&StoredCell>)> {
    let mut columns: Vec<(String, Vec<&StoredCell>)> = Vec::new();
    for cell in cells {
        match columns.iter_mut().find(|(id, _)| *id == cell.column_id) {
            Some((_, mine)) => mine.push(cell),
            None => columns.push((cell.column_id.clone(), vec![cell])),
        }
    }
    columns
}

fn one_line(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 100 {
        format!("{}…", flat.chars().take(99).collect::<String>())
    } else {
        flat
    }
}

/// Below this many columns `runs list` drops its borders and the confidence intervals,
/// and puts the label under the eval set, so that it fits an 80-column terminal.
const NARROW_LIST: u16 = 140;

/// The table of `runs list`.
fn runs_table(runs: &[promptlab::store::RunRow], style: TableStyle) -> Table {
    let narrow = style.width.is_some_and(|width| width < NARROW_LIST);
    let mut table = style.table();
    if narrow {
        table.load_preset(comfy_table::presets::NOTHING);
    }
    let mut header = vec!["run", "eval set", "started", "status", "cells", "passed"];
    header.push(if narrow { "rate" } else { "pass rate [95% CI]" });
    if !narrow {
        header.push("label");
    }
    header.push("prompt @ model");
    table.set_header(header);
    for run in runs {
        // To the minute, as the workbench's History shows it.
        let started: String = run.started_at.replace('T', " ").chars().take(16).collect();
        let cells = format!("{}/{}", run.cells_done, run.cell_count);
        let cached = (run.cached > 0).then(|| format!("{} cached", run.cached));
        if narrow {
            let label = run
                .label
                .as_deref()
                .map(|l| format!("\n“{l}”"))
                .unwrap_or_default();
            let rate = if run.cells_done == 0 {
                "–".to_string()
            } else {
                format!("{:.0}%", run.passed as f64 * 100.0 / run.cells_done as f64)
            };
            table.add_row([
                run.id.to_string(),
                format!("{}{label}", run.eval_set),
                started.replacen(' ', "\n", 1),
                run.status.as_str().to_string(),
                match cached {
                    Some(cached) => format!("{cells}\n{cached}"),
                    None => cells,
                },
                run.passed.to_string(),
                rate,
                run.columns.join("\n"),
            ]);
        } else {
            table.add_row([
                run.id.to_string(),
                run.eval_set.clone(),
                started,
                run.status.as_str().to_string(),
                match cached {
                    Some(cached) => format!("{cells} ({cached})"),
                    None => cells,
                },
                run.passed.to_string(),
                format_rate(run.passed, run.cells_done),
                run.label.clone().unwrap_or_default(),
                run.columns.join("\n"),
            ]);
        }
    }
    if narrow {
        style.wrap_only_at(&mut table, &[1, 7], 10);
    } else {
        style.wrap_only(&mut table, &[1, 7, 8]);
    }
    table
}
