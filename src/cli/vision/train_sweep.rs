//! `promptlab vision digits sweep`: trains once per combination of the swept
//! hyperparameters (learning rate, batch size, architecture preset, dropout, augmentation
//! on or off), each a stored training run tagged with the sweep, then prints the table of
//! runs with the best one and writes the sweep report (parallel coordinates over the
//! hyperparameters and test accuracy).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Result, bail};
use promptlab::store::RunStore;
use promptlab::sweep::{SweepPoint, SweepReport, setting_text, value_text};
use serde_json::{Value, json};

use super::training::train_once;
use super::{TrainArgs, store_path};
use crate::cli::Outcome;

#[derive(Debug, clap::Args)]
pub struct SweepTrainArgs {
    #[command(flatten)]
    base: TrainArgs,
    /// Learning rates to try, comma-separated.
    #[arg(long = "sweep-lr", value_delimiter = ',', value_name = "LR,…")]
    learning_rates: Vec<f64>,
    /// Batch sizes to try.
    #[arg(long = "sweep-batch-size", value_delimiter = ',', value_name = "N,…")]
    batch_sizes: Vec<usize>,
    /// Architecture presets to try.
    #[arg(long = "sweep-preset", value_delimiter = ',', value_name = "NAME,…")]
    presets: Vec<String>,
    /// Dropout rates to try (set on every dropout layer of the architecture).
    #[arg(long = "sweep-dropout", value_delimiter = ',', value_name = "RATE,…")]
    dropouts: Vec<f32>,
    /// Try training with and without augmentation.
    #[arg(long = "sweep-augment")]
    augment: bool,
    /// Write the sweep report: .html (parallel coordinates), .json or .md; `-` writes JSON
    /// to standard output (the table then goes to stderr). Repeatable.
    #[arg(long = "report", value_name = "FILE")]
    reports: Vec<PathBuf>,
}

pub(super) fn sweep_command(args: SweepTrainArgs) -> Result<Outcome> {
    crate::cli::sweep::check_outputs(&args.reports)?;
    if args.base.no_store {
        bail!("a sweep records its runs: drop --no-store");
    }
    // Each axis as (name, values as written).
    let mut axes: Vec<(&str, Vec<Value>)> = Vec::new();
    if !args.learning_rates.is_empty() {
        axes.push((
            "learning_rate",
            args.learning_rates.iter().map(|v| json!(v)).collect(),
        ));
    }
    if !args.batch_sizes.is_empty() {
        axes.push((
            "batch_size",
            args.batch_sizes.iter().map(|v| json!(v)).collect(),
        ));
    }
    if !args.presets.is_empty() {
        axes.push(("preset", args.presets.iter().map(|v| json!(v)).collect()));
    }
    if !args.dropouts.is_empty() {
        axes.push(("dropout", args.dropouts.iter().map(|v| json!(v)).collect()));
    }
    if args.augment {
        axes.push(("augmentation", vec![json!("on"), json!("off")]));
    }
    if axes.is_empty() {
        bail!(
            "nothing to sweep: give at least one of --sweep-lr, --sweep-batch-size, --sweep-preset, --sweep-dropout, --sweep-augment"
        );
    }
    let mut grid: Vec<BTreeMap<String, Value>> = vec![BTreeMap::new()];
    for (name, values) in &axes {
        grid = grid
            .into_iter()
            .flat_map(|partial| {
                values.iter().map(move |v| {
                    let mut next = partial.clone();
                    next.insert(name.to_string(), v.clone());
                    next
                })
            })
            .collect();
    }
    let store = RunStore::open(&store_path(args.base.project.clone()))?;
    let dataset = args.base.data.dataset.clone();
    let sweep_id = store.create_sweep(
        &format!("digit-cnn · {dataset}"),
        "",
        &serde_json::to_string(&json!({"kind": "digit-cnn", "axes": axes.iter().map(|(n, v)| json!({"name": n, "values": v})).collect::<Vec<_>>()}))?,
        &chrono::Local::now().to_rfc3339(),
    )?;
    eprintln!("sweep {sweep_id}: {} trainings", grid.len());
    let stem = args.base.output.with_extension("");
    let mut points = Vec::new();
    for (index, values) in grid.iter().enumerate() {
        let mut run = args.base.clone();
        run.output = PathBuf::from(format!(
            "{}-sweep{sweep_id}-{}.safetensors",
            stem.display(),
            index + 1
        ));
        if let Some(v) = values.get("learning_rate").and_then(Value::as_f64) {
            run.learning_rate = v;
        }
        if let Some(v) = values.get("batch_size").and_then(Value::as_u64) {
            run.batch_size = v as usize;
        }
        if let Some(v) = values.get("preset").and_then(Value::as_str) {
            run.preset = v.to_string();
            run.layers = None;
        }
        if let Some(v) = values.get("augmentation").and_then(Value::as_str) {
            run.no_augment = v == "off";
        }
        let dropout = values
            .get("dropout")
            .and_then(Value::as_f64)
            .map(|d| d as f32);
        eprintln!("[{}/{}] {}", index + 1, grid.len(), setting_text(values));
        let trained = train_once(&run, dropout)?;
        if let Some(id) = trained.run_id {
            store.add_training_sweep_run(sweep_id, id, &serde_json::to_string(values)?)?;
        }
        let (accuracy, samples) = trained
            .card
            .test
            .as_ref()
            .map_or((0.0, 0), |t| (t.accuracy, t.samples));
        points.push(SweepPoint::from_training(
            trained.run_id,
            values.clone(),
            accuracy,
            samples,
            trained.card.train_seconds,
        ));
        if trained.cancelled {
            eprintln!(
                "interrupted; the finished trainings are in the run store (sweep {sweep_id})"
            );
            return Ok(Outcome::Interrupted);
        }
    }
    let report = SweepReport::training(
        Some(sweep_id),
        &dataset,
        axes.iter().map(|(n, _)| n.to_string()).collect(),
        points,
    );
    let to_stdout = crate::cli::sweep::write_outputs(&report, &args.reports)?;
    let mut table = crate::cli::table_style().table();
    let mut header = report.params.clone();
    header.extend([
        "test accuracy [95% CI]".to_string(),
        "training s".into(),
        "run".into(),
    ]);
    table.set_header(header);
    for p in &report.points {
        let mut row: Vec<String> = report
            .params
            .iter()
            .map(|k| p.values.get(k).map(value_text).unwrap_or_default())
            .collect();
        row.extend([
            promptlab::score::stats::format_rate(p.passed, p.cases),
            format!("{:.1}", p.mean_latency_ms / 1000.0),
            p.run_id.map(|r| r.to_string()).unwrap_or_default(),
        ]);
        table.add_row(row);
    }
    let mut text = format!("{table}\n");
    if let Some(best) = report.best_text() {
        text.push_str(&format!("{best} · sweep {sweep_id}\n"));
    }
    crate::cli::sweep::print_table(&text, to_stdout)?;
    Ok(Outcome::Passed)
}
