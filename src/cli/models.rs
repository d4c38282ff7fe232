//! `promptlab models list`: the catalog with facts read from each GGUF header.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, Table};
use promptlab::gguf::GgufInfo;
use promptlab::project::Project;

use super::Outcome;

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List catalog models: architecture, parameters, quantization, context, chat template, size.
    List {
        /// Project folder (default: found from the current folder).
        #[arg(long)]
        project: Option<PathBuf>,
    },
}

pub fn run(command: ModelsCommand) -> Result<Outcome> {
    let ModelsCommand::List { project } = command;
    let start = project.unwrap_or_else(|| PathBuf::from("."));
    let project = Project::discover(&start).context("cannot open the project")?;
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "name",
        "architecture",
        "params",
        "quant",
        "context",
        "chat template",
        "size",
        "file",
    ]);
    let mut problems = Vec::new();
    for (name, entry) in &project.catalog.models {
        if entry.kind == promptlab::catalog::ModelKind::DigitCnn {
            let (arch, params) = if !entry.path.is_file() {
                // Not trained yet is a normal state, not a broken file.
                (
                    "digit CNN, not trained yet (promptlab vision digits train)".to_string(),
                    String::new(),
                )
            } else {
                match promptlab::vision::train::DigitClassifier::load(&entry.path) {
                    Ok(model) => (
                        format!("digit CNN ({})", model.card.config.preset),
                        human_count(model.card.parameters as u64),
                    ),
                    Err(err) => {
                        problems.push(format!(
                            "{err} (train it again with `promptlab vision digits train -o {}`)",
                            entry.path.display()
                        ));
                        ("digit CNN, unreadable".to_string(), String::new())
                    }
                }
            };
            table.add_row([
                name.clone(),
                arch,
                params,
                "f32".into(),
                String::new(),
                "no".into(),
                std::fs::metadata(&entry.path)
                    .map(|m| human_bytes(m.len()))
                    .unwrap_or_default(),
                entry.path.display().to_string(),
            ]);
            continue;
        }
        // Folders of weights without a GGUF header to read: named and located only.
        let folder_kind = match entry.kind {
            promptlab::catalog::ModelKind::Embedding => {
                Some("sentence embeddings (`similar` assertion)")
            }
            promptlab::catalog::ModelKind::Clip => Some("CLIP (agent tool classify_image)"),
            _ => None,
        };
        if let Some(kind) = folder_kind {
            table.add_row([
                name.clone(),
                kind.into(),
                String::new(),
                String::new(),
                String::new(),
                "no".into(),
                String::new(),
                entry.path.display().to_string(),
            ]);
            continue;
        }
        if entry.kind == promptlab::catalog::ModelKind::YoloDetector {
            let size = std::fs::metadata(&entry.path).map(|m| human_bytes(m.len()));
            if size.is_err() {
                problems.push(format!(
                    "{}: detector not found (scripts/fetch-vision.sh fetches the sample one)",
                    entry.path.display()
                ));
            }
            table.add_row([
                name.clone(),
                "YOLO detector (ONNX)".into(),
                String::new(),
                String::new(),
                String::new(),
                "no".into(),
                size.unwrap_or_default(),
                entry.path.display().to_string(),
            ]);
            continue;
        }
        match GgufInfo::read(&entry.path) {
            Ok(info) => {
                table.add_row([
                    name.clone(),
                    info.architecture().unwrap_or("?").to_string(),
                    human_count(info.parameter_count),
                    info.quantization(),
                    info.context_length()
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "?".into()),
                    if info.chat_template().is_some() {
                        "yes"
                    } else {
                        "no"
                    }
                    .to_string(),
                    human_bytes(info.file_size),
                    entry.path.display().to_string(),
                ]);
            }
            Err(_) if entry.not_fetched().is_some() => {
                table.add_row([
                    name.clone(),
                    format!("not fetched: {}", entry.not_fetched().unwrap_or_default()),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    entry.path.display().to_string(),
                ]);
            }
            Err(err) => {
                table.add_row([
                    name.clone(),
                    "unreadable".into(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    entry.path.display().to_string(),
                ]);
                problems.push(err.to_string());
            }
        }
    }
    for column in [2, 4, 6] {
        if let Some(c) = table.column_mut(column) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let text = if project.catalog.models.is_empty() {
        format!(
            "No models in {} (only the built-in `echo` engine is available).\n",
            project.root.join("models/models.yaml").display()
        )
    } else {
        format!("{table}\n")
    };
    std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())?;
    if problems.is_empty() {
        Ok(Outcome::Passed)
    } else {
        for problem in &problems {
            eprintln!("error: {problem}");
        }
        anyhow::bail!("{} model file(s) could not be read", problems.len())
    }
}

fn human_count(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2} GiB", n as f64 / (1u64 << 30) as f64),
        n => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
    }
}
