//! `promptlab vision …`: train, evaluate and use the digit CNN; list training runs.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use promptlab::store::RunStore;
use promptlab::vision::dataset::{self, DatasetKind};
use promptlab::vision::image_input;
use promptlab::vision::train::{DigitClassifier, ModelCard};

mod photos;
mod train_sweep;
mod training;

pub use photos::DetectArgs;

use super::Outcome;

#[derive(Debug, Subcommand)]
pub enum VisionCommand {
    /// The digit classifier (a CNN trained here): train, eval, predict.
    Digits {
        #[command(subcommand)]
        command: DigitsCommand,
    },
    /// Objects in a photo, with a YOLOv8/YOLO11-style ONNX detector (ONNX Runtime).
    Detect(Box<DetectArgs>),
    /// Zero-shot classification with CLIP: how well each label describes each image.
    Classify {
        /// Images (PNG or JPEG).
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// Comma-separated labels, e.g. "a cat,a dog,a car".
        #[arg(long, value_delimiter = ',', required = true)]
        labels: Vec<String>,
        /// Sentence each label is put into; {} marks the label.
        #[arg(long, default_value = "a photo of {}")]
        template: String,
        /// A folder with config.json, model.safetensors and tokenizer.json, or a Hugging Face
        /// repo id found in the local hub cache (nothing is downloaded).
        #[arg(long, default_value = "openai/clip-vit-base-patch32")]
        model: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Training runs recorded in the run store, newest first.
    Runs {
        /// Project folder (default: the current folder's project, or the current folder).
        #[arg(long)]
        project: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OptimizerArg {
    Sgd,
    Adam,
    Adamw,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScheduleArg {
    Constant,
    Step,
    Cosine,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// mnist, fashion-mnist or digits (8×8).
    #[arg(long, default_value = "mnist")]
    dataset: String,
    /// Folder with the dataset's files (default: the cache scripts/fetch-datasets.sh fills).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
}

impl DataArgs {
    fn kind(&self) -> Result<DatasetKind> {
        DatasetKind::parse(&self.dataset).ok_or_else(|| {
            anyhow::anyhow!(
                "--dataset {}: expected mnist, fashion-mnist or digits",
                self.dataset
            )
        })
    }

    fn load(&self) -> Result<(DatasetKind, dataset::Dataset, dataset::Dataset)> {
        let kind = self.kind()?;
        let dir = self.data.clone().unwrap_or_else(|| kind.default_dir());
        let (train, test) = dataset::load(kind, &dir)?;
        Ok((kind, train, test))
    }
}

#[derive(Debug, Subcommand)]
pub enum DigitsCommand {
    /// Train a CNN; prints per-epoch curves, saves safetensors weights and a JSON card.
    Train(Box<TrainArgs>),
    /// Train once per combination of the swept hyperparameters (each a stored training
    /// run) and compare them: a table and a parallel-coordinates report.
    Sweep(Box<train_sweep::SweepTrainArgs>),
    /// Accuracy, per-class precision/recall/F1 and the confusion matrix on the test set.
    Eval {
        /// Weights file (its card is the .json beside it).
        #[arg(long, default_value = "models/digits.safetensors")]
        model: PathBuf,
        #[command(flatten)]
        data: DataArgs,
    },
    /// The digit in each image (PNG or JPEG, any size, light or dark background).
    Predict {
        #[arg(long, default_value = "models/digits.safetensors")]
        model: PathBuf,
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Architecture preset: mnist (default), lenet5, small (for 8×8), mlp.
    #[arg(long, default_value = "mnist")]
    preset: String,
    /// Layer list instead of a preset, e.g. conv32k3,bn,relu,pool2,flatten,dense128,relu,drop0.5
    /// (with --backbone: the layers of the new head, before the classes layer).
    #[arg(long)]
    layers: Option<String>,
    /// Start from a network pretrained on ImageNet: mobilenet_v2 (weights fetched by
    /// scripts/fetch-vision.sh). Images are turned grey-to-RGB, resized and normalised as
    /// it expects.
    #[arg(long)]
    backbone: Option<String>,
    /// Which pretrained layers keep their weights: `all` (train only the new head: feature
    /// extraction), `none` (fine-tune everything) or N (the first N blocks frozen, the rest
    /// fine-tuned; MobileNetV2 has 19 blocks, a CNN's blocks are its layers). Default: all
    /// with --backbone or --init.
    #[arg(long)]
    freeze: Option<String>,
    /// The side images are resized to for --backbone.
    #[arg(long)]
    image_size: Option<usize>,
    /// Start from an earlier run's weights (its architecture and input statistics come
    /// along), e.g. a CNN trained on MNIST to fine-tune on Fashion-MNIST.
    #[arg(long)]
    init: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "adam")]
    optimizer: OptimizerArg,
    #[arg(long = "lr", default_value_t = 1e-3)]
    learning_rate: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f64,
    #[arg(long, value_enum, default_value = "constant")]
    schedule: ScheduleArg,
    /// Step schedule: epochs between rate cuts.
    #[arg(long, default_value_t = 2)]
    step_every: usize,
    /// Step schedule: the factor of each cut.
    #[arg(long, default_value_t = 0.5)]
    gamma: f64,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Fraction of the training images held out for validation.
    #[arg(long, default_value_t = 0.1)]
    val_split: f64,
    /// Stop after this many epochs without a lower validation loss.
    #[arg(long)]
    patience: Option<usize>,
    /// Turn augmentation off altogether.
    #[arg(long)]
    no_augment: bool,
    #[arg(long)]
    no_shift: bool,
    #[arg(long)]
    no_rotation: bool,
    #[arg(long)]
    no_scale: bool,
    #[arg(long)]
    no_noise: bool,
    /// Train on the first N training images only.
    #[arg(long)]
    limit: Option<usize>,
    /// Where to write the weights (the card goes beside them as .json).
    #[arg(short, long, default_value = "models/digits.safetensors")]
    output: PathBuf,
    /// Project folder whose run store records the run (default: the current folder's).
    #[arg(long)]
    project: Option<PathBuf>,
    /// Do not record the run in the run store.
    #[arg(long)]
    no_store: bool,
}

pub fn run(command: VisionCommand) -> Result<Outcome> {
    match command {
        VisionCommand::Digits { command } => match command {
            DigitsCommand::Train(args) => training::train_command(*args),
            DigitsCommand::Sweep(args) => train_sweep::sweep_command(*args),
            DigitsCommand::Eval { model, data } => eval_command(&model, &data),
            DigitsCommand::Predict {
                model,
                images,
                json,
            } => predict_command(&model, &images, json),
        },
        VisionCommand::Detect(args) => photos::detect_command(*args),
        VisionCommand::Classify {
            images,
            labels,
            template,
            model,
            json,
        } => photos::classify_command(&images, &labels, &template, &model, json),
        VisionCommand::Runs { project } => runs_command(project),
    }
}

pub(super) fn store_path(project: Option<PathBuf>) -> PathBuf {
    let start = project.unwrap_or_else(|| PathBuf::from("."));
    promptlab::project::store_path(&crate::tui::find_project(&start).unwrap_or(start))
}

fn eval_command(model: &Path, data: &DataArgs) -> Result<Outcome> {
    let mut classifier = DigitClassifier::load(model)?;
    let kind = data.kind()?;
    if kind != classifier.card.config.dataset {
        eprintln!(
            "note: the model was trained on {}, evaluating on {}",
            classifier.card.config.dataset.name(),
            kind.name()
        );
    }
    let (_, _, test) = data.load()?;
    let (report, _) = classifier.evaluate(&test)?;
    let mut out = report.to_text();
    out.push_str("\nConfusion matrix (rows: true class, columns: predicted)\n");
    let mut table = crate::cli::table_style().table();
    let mut header = vec![String::new()];
    header.extend(report.labels.iter().cloned());
    table.set_header(header);
    for (label, row) in report.labels.iter().zip(&report.confusion) {
        let mut cells = vec![label.clone()];
        cells.extend(row.iter().map(|n| n.to_string()));
        table.add_row(cells);
    }
    out.push_str(&format!("{table}\n"));
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(Outcome::Passed)
}

fn predict_command(model: &Path, images: &[PathBuf], json: bool) -> Result<Outcome> {
    let mut classifier = DigitClassifier::load(model)?;
    let card: ModelCard = classifier.card.clone();
    if card.input[1] != card.input[2] {
        bail!("{}: the model's input is not square", model.display());
    }
    let mut results = Vec::new();
    for path in images {
        let pixels = image_input::digit_from_file(path, card.input[1])
            .with_context(|| "cannot use the image".to_string())?;
        let probabilities = classifier.predict(&pixels)?;
        let (best, p) = probabilities
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, p)| (i, *p))
            .unwrap_or((0, 0.0));
        results.push(serde_json::json!({
            "image": path.display().to_string(),
            "label": card.classes[best],
            "probability": p,
            "probabilities": card.classes.iter().zip(&probabilities)
                .map(|(c, p)| (c.clone(), serde_json::json!(p))).collect::<serde_json::Map<_, _>>(),
        }));
        if !json {
            let mut line = format!(
                "{}: {} ({:.1}%)",
                path.display(),
                card.classes[best],
                p * 100.0
            );
            let mut ranked: Vec<(usize, f32)> = probabilities.iter().copied().enumerate().collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
            let others: Vec<String> = ranked[1..ranked.len().min(4)]
                .iter()
                .map(|(i, p)| format!("{} {:.1}%", card.classes[*i], p * 100.0))
                .collect();
            line.push_str(&format!("  · then {}\n", others.join(", ")));
            std::io::stdout().lock().write_all(line.as_bytes())?;
        }
    }
    if json {
        let text = serde_json::to_string_pretty(&serde_json::Value::Array(results))?;
        std::io::stdout()
            .lock()
            .write_all(format!("{text}\n").as_bytes())?;
    }
    Ok(Outcome::Passed)
}

fn runs_command(project: Option<PathBuf>) -> Result<Outcome> {
    let path = store_path(project);
    if !path.is_file() {
        bail!(
            "{}: no run store yet (train with `promptlab vision digits train`)",
            path.display()
        );
    }
    let store = RunStore::open(&path)?;
    let runs = store.training_runs()?;
    let mut table = crate::cli::table_style().table();
    table.set_header([
        "run",
        "started",
        "dataset",
        "arch",
        "params",
        "optimizer",
        "lr",
        "batch",
        "epochs",
        "best val acc",
        "test acc",
        "status",
    ]);
    for run in &runs {
        let card: serde_json::Value = run
            .card_json
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_default();
        // Before its first epoch a run has no card yet; its configuration is known.
        let config: serde_json::Value = match &card["config"] {
            serde_json::Value::Null => serde_json::from_str(&run.config_json).unwrap_or_default(),
            config => config.clone(),
        };
        let epochs = card["epochs"].as_array().map_or(0, Vec::len);
        let best_val = card["epochs"].as_array().and_then(|e| {
            e.iter()
                .filter_map(|s| s["validation_accuracy"].as_f64())
                .reduce(f64::max)
        });
        table.add_row([
            run.id.to_string(),
            run.started_at.replace('T', " ").chars().take(16).collect(),
            run.dataset.clone(),
            run.preset.clone(),
            run.parameters.to_string(),
            config["optimizer"]["name"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            config["learning_rate"]
                .as_f64()
                .map(|v| format!("{v:.0e}"))
                .unwrap_or_default(),
            config["batch_size"]
                .as_u64()
                .map(|v| v.to_string())
                .unwrap_or_default(),
            epochs.to_string(),
            best_val.map(|v| format!("{v:.4}")).unwrap_or_default(),
            run.test_accuracy
                .map(|v| format!("{v:.4}"))
                .unwrap_or_default(),
            run.status.clone(),
        ]);
    }
    let text = if runs.is_empty() {
        "no training runs yet\n".to_string()
    } else {
        format!("{table}\n")
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(Outcome::Passed)
}
