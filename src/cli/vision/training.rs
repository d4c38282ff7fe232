//! `promptlab vision digits train`: the training command, its per-epoch output and its
//! records in the run store.

use std::io::Write;

use anyhow::Result;
use promptlab::engine::CancelToken;
use promptlab::store::RunStore;
use promptlab::vision::augment::Augmentation;
use promptlab::vision::cnn::{self, LayerInfo};
use promptlab::vision::mobilenet;
use promptlab::vision::train::{
    self, EpochStats, OptimizerKind, Schedule, TrainConfig, TrainObserver,
};

use super::{OptimizerArg, ScheduleArg, TrainArgs, store_path};
use crate::cli::Outcome;

/// What one training run left behind.
pub(super) struct Trained {
    pub run_id: Option<i64>,
    pub card: train::ModelCard,
    pub cancelled: bool,
}

pub(super) fn train_command(args: TrainArgs) -> Result<Outcome> {
    let trained = train_once(&args, None)?;
    let card = &trained.card;
    let cancelled = trained.cancelled;
    let run_id = trained.run_id;
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

/// Trains with `args` (and, from a sweep, a dropout rate for every dropout layer),
/// recording the run in the store.
pub(super) fn train_once(args: &TrainArgs, dropout: Option<f32>) -> Result<Trained> {
    let (kind, train_set, test_set) = args.data.load()?;
    let pretrained = pretrained(args)?;
    let parse = |text: &str| cnn::parse_layers(text).map_err(|e| anyhow::anyhow!("--layers: {e}"));
    let (preset, layers) = match (&pretrained, &args.layers) {
        (Some(start), None) => (start.preset.clone(), start.layers.clone()),
        // The head's layers after the pretrained ones.
        (Some(start), Some(text)) => (
            format!("{}+custom", start.preset),
            start.layers.iter().cloned().chain(parse(text)?).collect(),
        ),
        (None, Some(text)) => ("custom".to_string(), parse(text)?),
        (None, None) => (
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
    let mut layers = layers;
    if let Some(rate) = dropout {
        let mut found = false;
        for layer in &mut layers {
            if let cnn::Layer::Dropout { rate: r } = layer {
                *r = rate;
                found = true;
            }
        }
        if !found {
            anyhow::bail!(
                "dropout {rate}: the architecture `{preset}` has no dropout layer (add one with --layers …,drop0.5,…)"
            );
        }
    }
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
        backbone: pretrained.as_ref().and_then(|p| p.backbone.clone()),
        image_size: args.image_size,
        init: args.init.clone(),
        frozen_layers: pretrained.as_ref().map_or(0, |p| p.frozen_layers),
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
        blocks: pretrained.as_ref().map(|p| p.blocks.clone()),
        features_shown: 0,
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
    let card = classifier.card.clone();
    if let (Some(store), Some(id)) = (&store, run_id) {
        store.update_training_run(
            id,
            if cancelled { "cancelled" } else { "finished" },
            card.parameters,
            &serde_json::to_string(&card)?,
            Some(&chrono::Local::now().to_rfc3339()),
            Some(&std::path::absolute(&args.output)?.display().to_string()),
            card.test.as_ref().map(|t| t.accuracy),
        )?;
    }
    Ok(Trained {
        run_id,
        card,
        cancelled,
    })
}

/// What a run starts from when it does not start from scratch.
struct Pretrained {
    preset: String,
    /// The pretrained layers (the backbone's, or the --init model's).
    layers: Vec<cnn::Layer>,
    backbone: Option<String>,
    frozen_layers: usize,
    /// Where each block starts (a backbone's blocks), for the summary.
    blocks: Vec<usize>,
}

/// The run's starting point from --backbone, --init and --freeze.
fn pretrained(args: &TrainArgs) -> Result<Option<Pretrained>> {
    let freeze = args.freeze.as_deref();
    let start = match (&args.backbone, &args.init) {
        (None, None) => {
            if let Some(freeze) = freeze.filter(|f| *f != "none") {
                anyhow::bail!(
                    "--freeze {freeze}: nothing pretrained to freeze (add --backbone mobilenet_v2 or --init WEIGHTS)"
                );
            }
            if args.image_size.is_some() {
                anyhow::bail!(
                    "--image-size resizes images for --backbone; add --backbone mobilenet_v2"
                );
            }
            return Ok(None);
        }
        (Some(name), None) => {
            if name != mobilenet::NAME {
                anyhow::bail!("--backbone {name}: expected {}", mobilenet::NAME);
            }
            let backbone = mobilenet::mobilenet_v2();
            // The pretrained part ends at the global average pool; the dropout after it
            // belongs to the head.
            let end = backbone.blocks[backbone.block_count()];
            Pretrained {
                preset: mobilenet::NAME.into(),
                layers: backbone.layers.clone(),
                backbone: Some(name.clone()),
                frozen_layers: end,
                blocks: backbone.blocks.clone(),
            }
        }
        (None, Some(init)) => {
            if args.image_size.is_some() {
                anyhow::bail!("--image-size: the --init model's input size is kept");
            }
            let card = train::DigitClassifier::load(init)?.card;
            let backbone = card.config.backbone.clone();
            let blocks = match backbone.as_deref() {
                Some(mobilenet::NAME) => mobilenet::mobilenet_v2().blocks,
                _ => (0..=card.config.layers.len()).collect(),
            };
            let frozen_layers = card.config.layers.len();
            Pretrained {
                preset: format!("init:{}", card.config.preset),
                layers: card.config.layers,
                backbone,
                frozen_layers,
                blocks,
            }
        }
        (Some(_), Some(_)) => {
            anyhow::bail!("--backbone and --init: choose one (an --init model keeps its backbone)")
        }
    };
    let block_count = start.blocks.len() - 1;
    let frozen_layers = match freeze {
        None | Some("all") => start.frozen_layers,
        Some("none") => 0,
        Some(text) => {
            let blocks: usize = text.parse().map_err(|_| {
                anyhow::anyhow!("--freeze {text}: expected all, none or a number of blocks")
            })?;
            if blocks > block_count {
                anyhow::bail!("--freeze {blocks}: the network has {block_count} blocks");
            }
            start.blocks[blocks]
        }
    };
    Ok(Some(Pretrained {
        frozen_layers,
        ..start
    }))
}

struct Progress<'a> {
    store: Option<&'a RunStore>,
    run_id: Option<i64>,
    config: &'a TrainConfig,
    epochs: Vec<EpochStats>,
    layers: Vec<LayerInfo>,
    /// Where each pretrained block starts, to summarise the network by block.
    blocks: Option<Vec<usize>>,
    /// The last tenth of the feature computation reported.
    features_shown: usize,
}

impl TrainObserver for Progress<'_> {
    fn started(&mut self, layers: &[LayerInfo], train: usize, validation: usize) {
        self.layers = layers.to_vec();
        let frozen = self.config.frozen_layers;
        let blocks = train::summary_blocks(layers, self.blocks.as_deref());
        let mut table = crate::cli::table_style().table();
        if self.blocks.is_some() {
            table.set_header(["#", "block", "output", "parameters", "training"]);
        } else {
            table.set_header(["#", "layer", "output", "parameters"]);
        }
        for (i, block) in blocks.iter().enumerate() {
            let shape: Vec<String> = block.output.iter().map(|n| n.to_string()).collect();
            let mut row = vec![
                (i + 1).to_string(),
                block.name.clone(),
                shape.join("×"),
                block.params.to_string(),
            ];
            if self.blocks.is_some() {
                row.push(
                    if block.layers.end <= frozen {
                        "frozen"
                    } else {
                        "trained"
                    }
                    .into(),
                );
            }
            table.add_row(row);
        }
        let total: usize = layers.iter().map(|l| l.params).sum();
        table.add_row(["", "total", "", &total.to_string()]);
        eprintln!("{table}");
        if frozen > 0 {
            let kept: usize = layers.iter().take(frozen).map(|l| l.params).sum();
            eprintln!(
                "{kept} of {total} parameters frozen; their features are computed once (no augmentation)"
            );
        }
        eprintln!("{train} training images, {validation} for validation");
    }

    fn features(&mut self, done: usize, total: usize) {
        let tenth = done * 10 / total.max(1);
        if tenth > self.features_shown || done == total {
            self.features_shown = tenth;
            eprintln!("features of the frozen layers: {done}/{total} images");
        }
    }

    fn epoch(&mut self, stats: &EpochStats) {
        // After the features of frozen layers, which are reported as they are computed.
        if self.epochs.is_empty() {
            eprintln!(
                "{:>5} {:>9} {:>10} {:>9} {:>10} {:>9} {:>10} {:>7}",
                "epoch",
                "lr",
                "train loss",
                "train acc",
                "val loss",
                "val acc",
                "images/s",
                "seconds"
            );
        }
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
