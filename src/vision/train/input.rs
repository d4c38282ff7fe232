//! A data set's images as the network takes them: normalised with the run's statistics,
//! or adapted to a backbone (grey to RGB, resized, per-channel statistics), augmented when
//! asked; and rows of cached features gathered into a batch.

use rand::rngs::StdRng;

use super::{Adaptation, ModelCard};
use crate::vision::augment::Augmentation;
use crate::vision::dataset::Dataset;
use crate::vision::mobilenet;

/// What turns a data set's image (one channel, 0..=1) into the network's input.
#[derive(Clone)]
pub(super) struct Preprocess {
    pub(super) mean: f32,
    pub(super) std: f32,
    pub(super) adapt: Option<Adaptation>,
}

impl Preprocess {
    pub(super) fn of(card: &ModelCard) -> Preprocess {
        Preprocess {
            mean: card.mean,
            std: card.std,
            adapt: card.adapt.clone(),
        }
    }

    pub(super) fn extend(&self, pixels: &mut Vec<f32>, image: &[f32], height: usize, width: usize) {
        match &self.adapt {
            Some(adapt) => {
                let plane = adapt.size * adapt.size;
                let rgb = mobilenet::resize_to_rgb(image, 1, height, width, adapt.size);
                pixels.extend(
                    rgb.iter()
                        .enumerate()
                        .map(|(i, v)| (v - adapt.mean[i / plane]) / adapt.std[i / plane]),
                );
            }
            None => pixels.extend(image.iter().map(|p| (p - self.mean) / self.std)),
        }
    }
}

/// Normalised pixels (`[batch × C·H·W]`) and labels of `indices`, augmented when asked.
pub(super) fn batch_pixels(
    data: &Dataset,
    indices: &[usize],
    preprocess: &Preprocess,
    augmentation: Option<(&Augmentation, &mut StdRng)>,
) -> (Vec<f32>, Vec<u8>) {
    let (h, w) = (data.height, data.width);
    let mut pixels = Vec::with_capacity(indices.len() * h * w);
    match augmentation {
        Some((aug, rng)) if !aug.is_none() => {
            for &i in indices {
                let image = aug.apply(data.image(i), h, w, rng);
                preprocess.extend(&mut pixels, &image, h, w);
            }
        }
        _ => {
            for &i in indices {
                preprocess.extend(&mut pixels, data.image(i), h, w);
            }
        }
    }
    let labels = indices.iter().map(|&i| data.labels[i]).collect();
    (pixels, labels)
}

/// Rows `indices` of `features` (`per` values each).
pub(super) fn gather(features: &[f32], per: usize, indices: &[usize]) -> Vec<f32> {
    let mut rows = Vec::with_capacity(indices.len() * per);
    for &i in indices {
        rows.extend_from_slice(&features[i * per..][..per]);
    }
    rows
}
