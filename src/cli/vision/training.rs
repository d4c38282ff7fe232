//! `promptlab vision digits train`: the training command, its per-epoch output and its
//! records in the run store.

use std::io::Write;

use anyhow::Result;
use promptlab::engine::CancelToken;
use promptlab::store::RunStore;
use promptlab::vision::augment::Augmentation;
use promptlab::vision::cnn::{self, LayerInfo};
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
        let mut table = crate::cli::table_style().table();
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
