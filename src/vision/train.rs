//! Training and evaluating the digit CNN: seeded shuffling, a validation split, SGD with
//! momentum or Adam/AdamW, a learning-rate schedule, early stopping on validation loss
//! (the best epoch's weights are kept), augmentation, and a JSON card saved beside the
//! safetensors weights with everything needed to load, compare and reproduce the run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::VisionError;
use super::augment::Augmentation;
use super::cnn::LayerInfo;
use super::dataset::Dataset;
use super::mobilenet;
use super::network::{Network, Weights};
use crate::cancel::CancelToken;
use crate::metrics::classification::{ClassificationReport, classification_report};

/// A trained (or loaded) classifier with its card.
pub struct DigitClassifier {
    pub card: ModelCard,
    network: Network,
}

/// Mean loss and accuracy of the training network, in inference mode, over `indices`:
/// from the frozen layers' cached features when there are some.
fn validate(
    network: &mut Network,
    data: &Dataset,
    indices: &[usize],
    preprocess: &Preprocess,
    cached: Option<&Cached>,
) -> (f64, f64) {
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    for chunk in indices.chunks(256) {
        let scored = match cached {
            Some(cached) => {
                let labels: Vec<u8> = chunk.iter().map(|&i| data.labels[i]).collect();
                let rows = gather(&cached.train, cached.per_image, chunk);
                let scored = network.score_from(&rows, cached.layer, &labels);
                (scored, labels)
            }
            None => {
                let (pixels, labels) = batch_pixels(data, chunk, preprocess, None);
                (network.score(&pixels, &labels), labels)
            }
        };
        let (scored, labels) = scored;
        loss_sum += f64::from(scored.loss) * chunk.len() as f64;
        correct += scored.correct(&labels);
    }
    let n = indices.len().max(1) as f64;
    (loss_sum / n, correct as f64 / n)
}

/// The frozen layers' output for every training image (the first `train_limit`, in
/// order) and every test image, computed once: training and validation start from it.
struct Cached {
    /// The first trainable layer, whose input the features are.
    layer: usize,
    per_image: usize,
    train: Vec<f32>,
    test: Vec<f32>,
}

/// Trains on `train` (minus the validation split), keeps the weights of the epoch with
/// the lowest validation loss, and scores them on `test`.
pub fn train(
    config: &TrainConfig,
    train_set: &Dataset,
    test_set: &Dataset,
    observer: &mut dyn TrainObserver,
    cancel: &CancelToken,
) -> Result<DigitClassifier, VisionError> {
    if config.batch_size == 0 || config.epochs == 0 {
        return Err(VisionError::Invalid(
            "batch size and epochs must be at least 1".into(),
        ));
    }
    if !(0.0..1.0).contains(&config.validation_split) {
        return Err(VisionError::Invalid(
            "the validation split must be in 0..1".into(),
        ));
    }
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = (0..train_set.len()).collect();
    if let Some(limit) = config.train_limit {
        order.truncate(limit);
    }
    let used = order.len();
    order.shuffle(&mut rng);
    let held_out = ((order.len() as f64) * config.validation_split).round() as usize;
    let validation: Vec<usize> = order[..held_out].to_vec();
    let mut training: Vec<usize> = order[held_out..].to_vec();
    if training.is_empty() {
        return Err(VisionError::Invalid(
            "no training images left after the validation split".into(),
        ));
    }

    let input = [1, train_set.height, train_set.width];
    let init = config
        .init
        .as_deref()
        .map(DigitClassifier::load)
        .transpose()?;
    let preprocess = match (&init, &config.backbone) {
        // Starting from a run: its input statistics, which its layers learned with.
        (Some(init), _) => {
            if init.card.input != input {
                return Err(VisionError::Invalid(format!(
                    "--init: the model takes {}×{} images, the data set has {}×{}",
                    init.card.input[1], init.card.input[2], input[1], input[2]
                )));
            }
            Preprocess::of(&init.card)
        }
        (None, Some(_)) => Preprocess {
            mean: 0.0,
            std: 1.0,
            adapt: Some(Adaptation::imagenet(
                config.image_size.unwrap_or(DEFAULT_IMAGE_SIZE),
            )),
        },
        (None, None) => {
            // Normalisation statistics of the training images.
            let count = (training.len() * train_set.height * train_set.width) as f64;
            let (mut sum, mut sum_sq) = (0.0f64, 0.0f64);
            for &i in &training {
                for &p in train_set.image(i) {
                    sum += f64::from(p);
                    sum_sq += f64::from(p) * f64::from(p);
                }
            }
            let mean = (sum / count) as f32;
            let std = ((sum_sq / count - (sum / count).powi(2)).max(1e-12).sqrt()) as f32;
            Preprocess {
                mean,
                std,
                adapt: None,
            }
        }
    };
    let network_input = match &preprocess.adapt {
        Some(adapt) => [3, adapt.size, adapt.size],
        None => input,
    };

    let classes = train_set.classes.clone();
    let (mut network, layers) =
        Network::new(&config.layers, network_input, classes.len(), config.seed)?;
    network.initialise(&mut rng);
    match config.backbone.as_deref() {
        Some(mobilenet::NAME) => {
            let backbone = mobilenet::mobilenet_v2();
            if config.layers.get(..backbone.layers.len()) != Some(&backbone.layers[..]) {
                return Err(VisionError::Invalid(
                    "the layers do not start with MobileNetV2's".into(),
                ));
            }
            backbone.load_weights(&mut network, &mobilenet::default_weights(), false)?;
        }
        Some(other) => {
            return Err(VisionError::Invalid(format!(
                "unknown backbone `{other}`: expected {}",
                mobilenet::NAME
            )));
        }
        None => {}
    }
    if let Some(init) = &init {
        let copied = network.copy_matching(&init.network);
        if copied == 0 {
            return Err(VisionError::Invalid(
                "--init: no layer of that model fits this architecture".into(),
            ));
        }
    }
    if config.frozen_layers > config.layers.len() {
        return Err(VisionError::Invalid(format!(
            "cannot freeze {} layers: the network has {}",
            config.frozen_layers,
            config.layers.len()
        )));
    }
    network.freeze(config.frozen_layers);
    let frozen_parameters = frozen_count(&layers, config.frozen_layers);
    observer.started(&layers, training.len(), validation.len());

    let started = Instant::now();
    let cached = if config.frozen_layers > 0 {
        let layer = config.frozen_layers;
        let mut compute = |data: &Dataset, count: usize, done: usize, total: usize| {
            features::of_images(
                &mut network,
                data,
                count,
                layer,
                &preprocess,
                cancel,
                &mut |n| observer.features(done + n, total),
            )
        };
        let total = used + test_set.len();
        let train = compute(train_set, used, 0, total)?;
        let test = compute(test_set, test_set.len(), used, total)?;
        Some(Cached {
            layer,
            per_image: network.size_at_layer(layer),
            train,
            test,
        })
    } else {
        None
    };
    let feature_seconds = if cached.is_some() {
        started.elapsed().as_secs_f64()
    } else {
        0.0
    };
    // Augmented images would need their features computed every epoch.
    let augmentation = if cached.is_some() {
        Augmentation::NONE
    } else {
        config.augmentation
    };

    let mut epochs = Vec::new();
    // (score, epoch, weights) of the best epoch so far.
    let mut best: Option<(f64, usize, Weights)> = None;
    let mut since_best = 0;
    let mut stopped_early = false;
    for epoch in 0..config.epochs {
        if cancel.is_cancelled() {
            break;
        }
        let rate = config
            .schedule
            .rate(config.learning_rate, epoch, config.epochs);
        training.shuffle(&mut rng);
        let epoch_start = Instant::now();
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        let batches = training.len().div_ceil(config.batch_size);
        for (b, chunk) in training.chunks(config.batch_size).enumerate() {
            if cancel.is_cancelled() {
                break;
            }
            let (step, labels) = match &cached {
                Some(cached) => {
                    let labels: Vec<u8> = chunk.iter().map(|&i| train_set.labels[i]).collect();
                    let rows = gather(&cached.train, cached.per_image, chunk);
                    let step = network.train_step_from(
                        &rows,
                        cached.layer,
                        &labels,
                        config.optimizer,
                        rate as f32,
                    );
                    (step, labels)
                }
                None => {
                    let (pixels, labels) = batch_pixels(
                        train_set,
                        chunk,
                        &preprocess,
                        Some((&augmentation, &mut rng)),
                    );
                    let step = network.train_step(&pixels, &labels, config.optimizer, rate as f32);
                    (step, labels)
                }
            };
            loss_sum += f64::from(step.loss) * chunk.len() as f64;
            correct += step.correct(&labels);
            observer.batch(epoch + 1, b + 1, batches);
        }
        let train_seconds = epoch_start.elapsed().as_secs_f64();
        let (validation_loss, validation_accuracy) = if validation.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            validate(
                &mut network,
                train_set,
                &validation,
                &preprocess,
                cached.as_ref(),
            )
        };
        let stats = EpochStats {
            epoch: epoch + 1,
            learning_rate: rate,
            train_loss: loss_sum / training.len() as f64,
            train_accuracy: correct as f64 / training.len() as f64,
            validation_loss,
            validation_accuracy,
            images_per_s: training.len() as f64 / train_seconds.max(1e-9),
            seconds: epoch_start.elapsed().as_secs_f64(),
        };
        observer.epoch(&stats);
        epochs.push(stats);
        // Without a validation split, the last epoch is the best one.
        let score = if validation_loss.is_nan() {
            -(epoch as f64)
        } else {
            validation_loss
        };
        if best.as_ref().is_none_or(|(b, _, _)| score < *b) {
            best = Some((score, epoch + 1, network.values()));
            since_best = 0;
        } else {
            since_best += 1;
            if config.patience.is_some_and(|p| since_best >= p) {
                stopped_early = true;
                break;
            }
        }
    }
    let (best_epoch, weights) = match best {
        Some((_, epoch, weights)) => (epoch, weights),
        // Cancelled before the first epoch ended: what was learned so far.
        None => (0, network.values()),
    };
    network.restore(&weights)?;
    let train_seconds = started.elapsed().as_secs_f64();
    let parameters = layers.iter().map(|l| l.params).sum();
    let mut config = config.clone();
    config.augmentation = augmentation;
    let card = ModelCard {
        format: CARD_FORMAT.into(),
        config,
        classes,
        input,
        mean: preprocess.mean,
        std: preprocess.std,
        adapt: preprocess.adapt.clone(),
        layers,
        parameters,
        frozen_parameters,
        epochs,
        best_epoch,
        stopped_early,
        test: None,
        train_seconds,
        feature_seconds,
        labelled_images: used,
    };
    let mut classifier = DigitClassifier { card, network };
    if !test_set.is_empty() && !cancel.is_cancelled() {
        let report = match &cached {
            Some(cached) => {
                let mut predicted = Vec::with_capacity(test_set.len());
                let indices: Vec<usize> = (0..test_set.len()).collect();
                for chunk in indices.chunks(256) {
                    let labels: Vec<u8> = chunk.iter().map(|&i| test_set.labels[i]).collect();
                    let rows = gather(&cached.test, cached.per_image, chunk);
                    predicted.extend(
                        classifier
                            .network
                            .score_from(&rows, cached.layer, &labels)
                            .predictions,
                    );
                }
                classifier.report(test_set, &predicted)
            }
            None => classifier.evaluate(test_set)?.0,
        };
        classifier.card.test = Some(report);
    }
    Ok(classifier)
}

/// The side images are resized to for a backbone unless the run says otherwise.
pub const DEFAULT_IMAGE_SIZE: usize = 96;

/// Parameters of the first `frozen` layers.
fn frozen_count(layers: &[LayerInfo], frozen: usize) -> usize {
    layers.iter().take(frozen).map(|l| l.params).sum()
}

/// `NAME.json` for `NAME.safetensors`.
pub fn card_path(weights: &Path) -> PathBuf {
    weights.with_extension("json")
}

impl DigitClassifier {
    /// Writes the weights and the card beside them.
    pub fn save(&self, weights: &Path) -> Result<(), VisionError> {
        if let Some(dir) = weights.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| VisionError::file(dir, e.to_string()))?;
        }
        // Every parameter under its name with PyTorch's shape, as float32 safetensors.
        let tensors = self
            .network
            .params
            .iter()
            .map(|p| {
                let tensor = Tensor::from_slice(&p.value, p.shape.as_slice(), &Device::Cpu)?;
                Ok((p.name.clone(), tensor))
            })
            .collect::<candle_core::Result<HashMap<String, Tensor>>>()?;
        candle_core::safetensors::save(&tensors, weights)
            .map_err(|e| VisionError::file(weights, format!("cannot write the weights: {e}")))?;
        let card = card_path(weights);
        let json = serde_json::to_string_pretty(&self.card)
            .map_err(|e| VisionError::file(&card, e.to_string()))?;
        std::fs::write(&card, json).map_err(|e| VisionError::file(&card, e.to_string()))
    }

    /// Loads weights and their card; weights that do not fit the card's architecture are
    /// refused with the tensor that differs.
    pub fn load(weights: &Path) -> Result<DigitClassifier, VisionError> {
        if !weights.is_file() {
            return Err(VisionError::file(
                weights,
                "not found (train a model with `promptlab vision digits train`)",
            ));
        }
        let card_file = card_path(weights);
        let text = std::fs::read_to_string(&card_file).map_err(|e| {
            VisionError::file(
                &card_file,
                format!(
                    "cannot read the model card that belongs to {}: {e}",
                    weights.display()
                ),
            )
        })?;
        let card: ModelCard = serde_json::from_str(&text).map_err(|e| {
            VisionError::file(&card_file, format!("not a promptlab model card: {e}"))
        })?;
        if card.format != CARD_FORMAT {
            return Err(VisionError::file(
                &card_file,
                format!("card format `{}`, expected `{CARD_FORMAT}`", card.format),
            ));
        }
        let (mut network, _) = Network::new(
            &card.config.layers,
            card.network_input(),
            card.classes.len(),
            card.config.seed,
        )?;
        let tensors = candle_core::safetensors::load(weights, &Device::Cpu).map_err(|e| {
            VisionError::file(weights, format!("not a safetensors weights file: {e}"))
        })?;
        let mismatch = |detail: String| {
            VisionError::file(
                weights,
                format!(
                    "the weights do not match the architecture in {}: {detail}",
                    card_file.display()
                ),
            )
        };
        // Every parameter the architecture has, with its shape; other tensors are ignored.
        for param in &mut network.params {
            let tensor = tensors
                .get(&param.name)
                .ok_or_else(|| mismatch(format!("no tensor `{}`", param.name)))?;
            if tensor.dims() != param.shape.as_slice() {
                return Err(mismatch(format!(
                    "`{}` has shape {:?}, expected {:?}",
                    param.name,
                    tensor.dims(),
                    param.shape
                )));
            }
            param.value = tensor.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        }
        Ok(DigitClassifier { card, network })
    }

    /// Test-set report (sklearn-style) and the predicted class of every image.
    pub fn evaluate(
        &mut self,
        test: &Dataset,
    ) -> Result<(ClassificationReport, Vec<u8>), VisionError> {
        if [1, test.height, test.width] != self.card.input {
            return Err(VisionError::Invalid(format!(
                "the model takes {}×{} images, the test set has {}×{}",
                self.card.input[1], self.card.input[2], test.height, test.width
            )));
        }
        let indices: Vec<usize> = (0..test.len()).collect();
        let mut predicted = Vec::with_capacity(test.len());
        let preprocess = Preprocess::of(&self.card);
        // Batches of the size validation uses, so the buffers do not grow past training's.
        for chunk in indices.chunks(256) {
            let (pixels, labels) = batch_pixels(test, chunk, &preprocess, None);
            predicted.extend(self.network.score(&pixels, &labels).predictions);
        }
        let report = self.report(test, &predicted);
        Ok((report, predicted))
    }

    /// The sklearn-style report of `predicted` against `test`'s labels.
    fn report(&self, test: &Dataset, predicted: &[u8]) -> ClassificationReport {
        let names = |labels: &[u8]| -> Vec<String> {
            labels
                .iter()
                .map(|&l| self.card.classes[usize::from(l)].clone())
                .collect()
        };
        classification_report(
            &names(&test.labels),
            &names(predicted),
            Some(&self.card.classes),
        )
    }

    /// Class probabilities for one image already at the model's size, pixels in 0..=1.
    pub fn predict(&mut self, pixels: &[f32]) -> Result<Vec<f32>, VisionError> {
        let [c, h, w] = self.card.input;
        if pixels.len() != c * h * w {
            return Err(VisionError::Invalid(format!(
                "expected {h}×{w} pixels, got {}",
                pixels.len()
            )));
        }
        let mut normalised = Vec::new();
        Preprocess::of(&self.card).extend(&mut normalised, pixels, h, w);
        Ok(self.network.probabilities(&normalised))
    }
}

mod config;
mod features;
mod input;
mod summary;

use input::{Preprocess, batch_pixels, gather};

pub use config::{
    Adaptation, CARD_FORMAT, EpochStats, ModelCard, OptimizerKind, QuietTraining, Schedule,
    TrainConfig, TrainObserver,
};
pub use summary::{BlockInfo, layer_summary, summary_blocks};

#[cfg(test)]
mod bench;
