//! `promptlab vision …`: train, evaluate and use the digit CNN; list training runs.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use comfy_table::Table;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use promptlab::engine::CancelToken;
use promptlab::store::RunStore;
use promptlab::vision::augment::Augmentation;
use promptlab::vision::cnn::{self, LayerInfo};
use promptlab::vision::dataset::{self, DatasetKind};
use promptlab::vision::image_input;
use promptlab::vision::train::{
    self, DigitClassifier, EpochStats, ModelCard, OptimizerKind, Schedule, TrainConfig,
    TrainObserver,
};

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

#[derive(Debug, clap::Args)]
pub struct DetectArgs {
    /// The photo (PNG or JPEG).
    image: PathBuf,
    /// An Ultralytics ONNX export (YOLOv8/YOLO11 detection head).
    #[arg(long)]
    model: PathBuf,
    /// Keep only these classes (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    classes: Vec<String>,
    /// At most this many objects per class (the most confident).
    #[arg(long)]
    max_per_class: Option<usize>,
    /// Minimum confidence, 0–1.
    #[arg(long, default_value_t = 0.25)]
    min_conf: f32,
    /// Boxes of one class overlapping more than this IoU are one object.
    #[arg(long, default_value_t = 0.45)]
    iou: f32,
    /// Class names: one per line, or a YAML file with `names:` (default: the model's metadata).
    #[arg(long)]
    names: Option<PathBuf>,
    /// libonnxruntime.so (default: ORT_DYLIB_PATH, then the cache scripts/fetch-vision.sh fills).
    #[arg(long)]
    onnxruntime: Option<PathBuf>,
    /// CPU threads for inference (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Write the boxes as JSON.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Write a copy of the photo with the boxes and labels drawn.
    #[arg(long, value_name = "PNG_OR_JPEG")]
    annotate: Option<PathBuf>,
    /// Run N times and report the median timings (a benchmark).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
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

#[derive(Debug, clap::Args)]
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

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Architecture preset: mnist (default), lenet5, small (for 8×8), mlp.
    #[arg(long, default_value = "mnist")]
    preset: String,
    /// Layer list instead of a preset, e.g. conv32k3,bn,relu,pool2,flatten,dense128,relu,drop0.5
    #[arg(long)]
    layers: Option<String>,
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
            DigitsCommand::Train(args) => train_command(*args),
            DigitsCommand::Eval { model, data } => eval_command(&model, &data),
            DigitsCommand::Predict {
                model,
                images,
                json,
            } => predict_command(&model, &images, json),
        },
        VisionCommand::Detect(args) => detect_command(*args),
        VisionCommand::Classify {
            images,
            labels,
            template,
            model,
            json,
        } => classify_command(&images, &labels, &template, &model, json),
        VisionCommand::Runs { project } => runs_command(project),
    }
}

fn classify_command(
    images: &[PathBuf],
    labels: &[String],
    template: &str,
    model: &str,
    json: bool,
) -> Result<Outcome> {
    use promptlab::vision::clip::{ZeroShot, resolve_model};
    let labels: Vec<String> = labels
        .iter()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if labels.is_empty() {
        bail!("--labels: expected at least one label, e.g. --labels \"a cat,a dog\"");
    }
    let clip = ZeroShot::load(&resolve_model(model)?)?;
    let mut loaded = Vec::new();
    for path in images {
        let image = image::ImageReader::open(path)
            .with_context(|| format!("{}: cannot open", path.display()))?
            .with_guessed_format()?
            .decode()
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: not a readable image (PNG or JPEG expected): {e}",
                    path.display()
                )
            })?;
        loaded.push(image);
    }
    let probabilities = clip.classify(&loaded, &labels, template)?;
    let mut out = String::new();
    let mut results = Vec::new();
    for (path, row) in images.iter().zip(&probabilities) {
        let mut ranked: Vec<(&String, f32)> = labels.iter().zip(row.iter().copied()).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        out.push_str(&format!("{}\n", path.display()));
        for (label, p) in &ranked {
            out.push_str(&format!("  {:>6.2}%  {label}\n", p * 100.0));
        }
        results.push(serde_json::json!({
            "image": path.display().to_string(),
            "probabilities": labels.iter().zip(row).map(|(l, p)| (l.clone(), serde_json::json!(p))).collect::<serde_json::Map<_, _>>(),
        }));
    }
    if json {
        out = serde_json::to_string_pretty(&results)? + "\n";
    }
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(Outcome::Passed)
}

fn detect_command(args: DetectArgs) -> Result<Outcome> {
    use promptlab::vision::detect::{self, DetectOptions, Detector};
    if !(0.0..=1.0).contains(&args.min_conf) || !(0.0..=1.0).contains(&args.iou) {
        bail!("--min-conf and --iou are fractions between 0 and 1");
    }
    let image = image::ImageReader::open(&args.image)
        .with_context(|| format!("{}: cannot open", args.image.display()))?
        .with_guessed_format()?
        .decode()
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: not a readable image (PNG or JPEG expected): {e}",
                args.image.display()
            )
        })?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut detector = Detector::load(
        &args.model,
        args.names.as_deref(),
        args.onnxruntime.as_deref(),
        threads,
    )?;
    let options = DetectOptions {
        classes: (!args.classes.is_empty()).then(|| args.classes.clone()),
        max_per_class: args.max_per_class,
        min_confidence: args.min_conf,
        iou_threshold: args.iou,
    };
    let mut runs = Vec::new();
    for _ in 0..args.repeat {
        runs.push(detector.detect(&image, &options)?);
    }
    let median = |f: fn(&detect::DetectTiming) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(|(_, t)| f(t)).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let timing = detect::DetectTiming {
        preprocess_ms: median(|t| t.preprocess_ms),
        inference_ms: median(|t| t.inference_ms),
        postprocess_ms: median(|t| t.postprocess_ms),
    };
    let detections = runs.swap_remove(0).0;
    let mut out = String::new();
    for d in &detections {
        out.push_str(&format!(
            "{:<12} {:.3}  [{:.0}, {:.0}, {:.0}, {:.0}]\n",
            d.label, d.confidence, d.bbox[0], d.bbox[1], d.bbox[2], d.bbox[3]
        ));
    }
    out.push_str(&format!(
        "{} objects · {}×{} input · {}preprocess {:.1} ms, inference {:.1} ms, postprocess {:.1} ms\n",
        detections.len(),
        detector.input.1,
        detector.input.0,
        if args.repeat > 1 {
            format!("median of {} runs: ", args.repeat)
        } else {
            String::new()
        },
        timing.preprocess_ms,
        timing.inference_ms,
        timing.postprocess_ms
    ));
    if let Some(path) = &args.output {
        let json = serde_json::json!({
            "image": args.image.display().to_string(),
            "model": args.model.display().to_string(),
            "width": image.width(),
            "height": image.height(),
            "detections": detections,
            "timing_ms": timing,
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)? + "\n")
            .with_context(|| format!("{}: cannot write", path.display()))?;
        out.push_str(&format!("wrote {}\n", path.display()));
    }
    if let Some(path) = &args.annotate {
        detect::annotate(&image, &detections)
            .save(path)
            .with_context(|| format!("{}: cannot write the annotated image", path.display()))?;
        out.push_str(&format!("wrote {}\n", path.display()));
    }
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(Outcome::Passed)
}

fn store_path(project: Option<PathBuf>) -> PathBuf {
    let start = project.unwrap_or_else(|| PathBuf::from("."));
    crate::tui::find_project(&start)
        .unwrap_or(start)
        .join(".promptlab")
        .join("runs.db")
}

fn train_command(args: TrainArgs) -> Result<Outcome> {
    let (kind, train_set, test_set) = args.data.load()?;
    let (preset, layers) = match &args.layers {
        Some(text) => (
            "custom".to_string(),
            cnn::parse_layers(text).map_err(|e| anyhow::anyhow!("--layers: {e}"))?,
        ),
        None => (
            args.preset.clone(),
            cnn::preset(&args.preset).ok_or_else(|| {
                anyhow::anyhow!(
                    "--preset {}: expected one of {}",
                    args.preset,
                    cnn::PRESETS.join(", ")
                )
            })?,
        ),
    };
    let augmentation = if args.no_augment {
        Augmentation::NONE
    } else {
        // The mild defaults are sized for 28×28; an 8×8 digit gets proportionally less shift.
        let base = Augmentation::MILD;
        let shift = base.shift * train_set.width as f32 / 28.0;
        Augmentation {
            shift: if args.no_shift { 0.0 } else { shift },
            rotation: if args.no_rotation { 0.0 } else { base.rotation },
            scale: if args.no_scale { 0.0 } else { base.scale },
            noise: if args.no_noise { 0.0 } else { base.noise },
        }
    };
    let config = TrainConfig {
        dataset: kind,
        preset,
        layers,
        optimizer: match args.optimizer {
            OptimizerArg::Sgd => OptimizerKind::Sgd {
                momentum: args.momentum,
            },
            OptimizerArg::Adam => OptimizerKind::Adam,
            OptimizerArg::Adamw => OptimizerKind::AdamW {
                weight_decay: args.weight_decay,
            },
        },
        learning_rate: args.learning_rate,
        schedule: match args.schedule {
            ScheduleArg::Constant => Schedule::Constant,
            ScheduleArg::Step => Schedule::Step {
                every: args.step_every,
                gamma: args.gamma,
            },
            ScheduleArg::Cosine => Schedule::Cosine,
        },
        batch_size: args.batch_size,
        epochs: args.epochs,
        seed: args.seed,
        validation_split: args.val_split,
        patience: args.patience,
        augmentation,
        train_limit: args.limit,
    };

    let store = if args.no_store {
        None
    } else {
        Some(RunStore::open(&store_path(args.project.clone()))?)
    };
    let run_id = match &store {
        Some(store) => Some(store.create_training_run(
            "digit-cnn",
            kind.name(),
            &config.preset,
            &chrono::Local::now().to_rfc3339(),
            &serde_json::to_string(&config)?,
        )?),
        None => None,
    };

    let cancel = CancelToken::new();
    let on_interrupt = cancel.clone();
    let _ = ctrlc::set_handler(move || {
        if on_interrupt.is_cancelled() {
            // SAFETY: _exit only ends the process.
            unsafe { libc::_exit(130) }
        }
        on_interrupt.cancel();
    });
    eprintln!(
        "training on {} {} images ({}×{}), testing on {}",
        train_set.len().min(args.limit.unwrap_or(usize::MAX)),
        kind.name(),
        train_set.height,
        train_set.width,
        test_set.len()
    );
    let mut progress = Progress {
        store: store.as_ref(),
        run_id,
        config: &config,
        epochs: Vec::new(),
        layers: Vec::new(),
    };
    let result = train::train(&config, &train_set, &test_set, &mut progress, &cancel);
    let classifier = match result {
        Ok(classifier) => classifier,
        Err(err) => {
            if let (Some(store), Some(id)) = (&store, run_id) {
                let _ = store.update_training_run(
                    id,
                    "failed",
                    0,
                    "{}",
                    Some(&chrono::Local::now().to_rfc3339()),
                    None,
                    None,
                );
            }
            return Err(err.into());
        }
    };
    let cancelled = cancel.is_cancelled();
    classifier.save(&args.output)?;
    let card = &classifier.card;
    if let (Some(store), Some(id)) = (&store, run_id) {
        store.update_training_run(
            id,
            if cancelled { "cancelled" } else { "finished" },
            card.parameters,
            &serde_json::to_string(card)?,
            Some(&chrono::Local::now().to_rfc3339()),
            Some(&std::path::absolute(&args.output)?.display().to_string()),
            card.test.as_ref().map(|t| t.accuracy),
        )?;
    }
    let mut out = String::new();
    out.push_str(&format!(
        "\nkept epoch {} of {}{} · {:.1} s · weights {} (card {})\n",
        card.best_epoch,
        card.epochs.len(),
        if card.stopped_early {
            " (stopped early)"
        } else if cancelled {
            " (interrupted)"
        } else {
            ""
        },
        card.train_seconds,
        args.output.display(),
        train::card_path(&args.output).display()
    ));
    if let Some(test) = &card.test {
        out.push_str(&format!(
            "test accuracy {:.4} on {} images · macro F1 {:.4}\n",
            test.accuracy, test.samples, test.macro_avg.f1
        ));
    }
    if let Some(id) = run_id {
        out.push_str(&format!(
            "recorded as training run {id} (promptlab vision runs)\n"
        ));
    }
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(if cancelled {
        Outcome::Interrupted
    } else {
        Outcome::Passed
    })
}

struct Progress<'a> {
    store: Option<&'a RunStore>,
    run_id: Option<i64>,
    config: &'a TrainConfig,
    epochs: Vec<EpochStats>,
    layers: Vec<LayerInfo>,
}

impl TrainObserver for Progress<'_> {
    fn started(&mut self, layers: &[LayerInfo], train: usize, validation: usize) {
        self.layers = layers.to_vec();
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED);
        table.set_header(["#", "layer", "output", "parameters"]);
        for (i, layer) in layers.iter().enumerate() {
            let shape: Vec<String> = layer.output.iter().map(|n| n.to_string()).collect();
            table.add_row([
                (i + 1).to_string(),
                layer.name.clone(),
                shape.join("×"),
                layer.params.to_string(),
            ]);
        }
        let total: usize = layers.iter().map(|l| l.params).sum();
        table.add_row(["", "total", "", &total.to_string()]);
        eprintln!("{table}");
        eprintln!("{train} training images, {validation} for validation");
        eprintln!(
            "{:>5} {:>9} {:>10} {:>9} {:>10} {:>9} {:>10} {:>7}",
            "epoch", "lr", "train loss", "train acc", "val loss", "val acc", "images/s", "seconds"
        );
    }

    fn epoch(&mut self, stats: &EpochStats) {
        eprintln!(
            "{:>5} {:>9.2e} {:>10.4} {:>9.4} {:>10.4} {:>9.4} {:>10.0} {:>7.1}",
            stats.epoch,
            stats.learning_rate,
            stats.train_loss,
            stats.train_accuracy,
            stats.validation_loss,
            stats.validation_accuracy,
            stats.images_per_s,
            stats.seconds
        );
        self.epochs.push(stats.clone());
        // The curves so far, so an interrupted run still shows them.
        if let (Some(store), Some(id)) = (self.store, self.run_id) {
            let partial = serde_json::json!({
                "config": self.config,
                "layers": self.layers,
                "epochs": self.epochs,
            });
            let parameters = self.layers.iter().map(|l| l.params).sum();
            if let Err(err) = store.update_training_run(
                id,
                "running",
                parameters,
                &partial.to_string(),
                None,
                None,
                None,
            ) {
                eprintln!("warning: cannot record epoch {}: {err}", stats.epoch);
            }
        }
    }
}

fn eval_command(model: &Path, data: &DataArgs) -> Result<Outcome> {
    let classifier = DigitClassifier::load(model)?;
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
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
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
    let classifier = DigitClassifier::load(model)?;
    let card: &ModelCard = &classifier.card;
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
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
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
