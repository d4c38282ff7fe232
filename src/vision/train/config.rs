//! What a training run is asked for (the configuration), what it reports as it goes
//! (each epoch's figures, to an observer) and what it leaves beside the weights (the
//! model card).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::metrics::classification::ClassificationReport;
use crate::vision::augment::Augmentation;
use crate::vision::cnn::{Layer, LayerInfo};
use crate::vision::dataset::DatasetKind;
use crate::vision::mobilenet;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum OptimizerKind {
    Sgd { momentum: f64 },
    Adam,
    AdamW { weight_decay: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Schedule {
    Constant,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        every: usize,
        gamma: f64,
    },
    /// Cosine decay from the initial rate to zero over the epochs.
    Cosine,
}

impl Schedule {
    pub fn rate(&self, initial: f64, epoch: usize, epochs: usize) -> f64 {
        match self {
            Schedule::Constant => initial,
            Schedule::Step { every, gamma } => {
                initial * gamma.powi((epoch / (*every).max(1)) as i32)
            }
            Schedule::Cosine => {
                let progress = epoch as f64 / epochs.max(1) as f64;
                initial * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub dataset: DatasetKind,
    /// The architecture preset's name, or `custom`.
    pub preset: String,
    pub layers: Vec<Layer>,
    pub optimizer: OptimizerKind,
    pub learning_rate: f64,
    pub schedule: Schedule,
    pub batch_size: usize,
    pub epochs: usize,
    pub seed: u64,
    /// Fraction of the training images held out for validation.
    pub validation_split: f64,
    /// Stop when validation loss has not improved for this many epochs.
    pub patience: Option<usize>,
    pub augmentation: Augmentation,
    /// Train on the first N training images only (quick runs, CI).
    pub train_limit: Option<usize>,
    /// The pretrained network the layers start with ([`mobilenet::NAME`]); its ImageNet
    /// weights are loaded before training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backbone: Option<String>,
    /// The side images are resized to for a backbone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<usize>,
    /// An earlier run's weights file that training starts from (its architecture and
    /// input statistics come along).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<PathBuf>,
    /// How many of the first layers keep the weights they were loaded with.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub frozen_layers: usize,
}

fn is_zero(value: &usize) -> bool {
    *value == 0
}

/// How images become a backbone's input: grey repeated over three channels, resized to
/// `size`×`size` and normalised per channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adaptation {
    pub size: usize,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Adaptation {
    pub fn imagenet(size: usize) -> Adaptation {
        Adaptation {
            size,
            mean: mobilenet::IMAGENET_MEAN,
            std: mobilenet::IMAGENET_STD,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    pub epoch: usize,
    pub learning_rate: f64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub validation_loss: f64,
    pub validation_accuracy: f64,
    pub images_per_s: f64,
    pub seconds: f64,
}

/// Everything about a trained model: written as `NAME.json` beside `NAME.safetensors`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub format: String,
    pub config: TrainConfig,
    pub classes: Vec<String>,
    /// `[channels, height, width]`.
    pub input: [usize; 3],
    /// Pixel normalisation learned from the training images: `(x - mean) / std`.
    pub mean: f32,
    pub std: f32,
    /// How images are adapted to the network's input (a backbone's); `mean` and `std`
    /// are then unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapt: Option<Adaptation>,
    pub layers: Vec<LayerInfo>,
    pub parameters: usize,
    /// Parameters training left as they were loaded (frozen layers').
    #[serde(default, skip_serializing_if = "is_zero")]
    pub frozen_parameters: usize,
    pub epochs: Vec<EpochStats>,
    /// The epoch whose weights were kept (lowest validation loss).
    pub best_epoch: usize,
    pub stopped_early: bool,
    pub test: Option<ClassificationReport>,
    pub train_seconds: f64,
    /// Of `train_seconds`, the time spent computing the frozen layers' features (0 when
    /// they all came from the cache).
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub feature_seconds: f64,
    /// Labelled images the run learned from (training and validation); 0 in cards written
    /// before it was kept.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub labelled_images: usize,
}

fn is_zero_f64(value: &f64) -> bool {
    *value == 0.0
}

pub const CARD_FORMAT: &str = "promptlab-digit-cnn/1";

impl ModelCard {
    /// `[channels, height, width]` of what the network itself takes.
    pub fn network_input(&self) -> [usize; 3] {
        match &self.adapt {
            Some(adapt) => [3, adapt.size, adapt.size],
            None => self.input,
        }
    }
}

/// Progress callbacks.
pub trait TrainObserver {
    fn started(&mut self, _layers: &[LayerInfo], _train: usize, _validation: usize) {}
    fn batch(&mut self, _epoch: usize, _done: usize, _total: usize) {}
    /// Features of the frozen layers computed for `done` of `total` images.
    fn features(&mut self, _done: usize, _total: usize) {}
    fn epoch(&mut self, _stats: &EpochStats) {}
}

pub struct QuietTraining;
impl TrainObserver for QuietTraining {}
