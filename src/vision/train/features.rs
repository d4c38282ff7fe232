//! The frozen layers' output for a data set's images: computed once per run (training
//! then starts from it every epoch) and kept on disk, keyed by everything it depends on
//! (the frozen weights, the input adaptation, the images), so training another head on
//! the same backbone and data starts at once.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::{Preprocess, batch_pixels};
use crate::cancel::CancelToken;
use crate::vision::VisionError;
use crate::vision::dataset::Dataset;
use crate::vision::network::Network;

/// Images per forward pass.
const CHUNK: usize = 32;

/// `$PROMPTLAB_VISION_CACHE/features` (by default `~/.cache/promptlab/vision/features`).
fn cache_dir() -> PathBuf {
    crate::vision::detect::default_cache().join("features")
}

/// The input of layer `layer` for the first `count` images of `data`, `[count × per
/// image]`, from the disk cache when it has them.
pub(super) fn of_images(
    network: &mut Network,
    data: &Dataset,
    count: usize,
    layer: usize,
    preprocess: &Preprocess,
    cancel: &CancelToken,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<f32>, VisionError> {
    let per_image = network.size_at_layer(layer);
    let path = cache_dir().join(format!(
        "{}.f32",
        key(network, data, count, layer, preprocess)
    ));
    let expected = count * per_image * 4;
    if let Ok(bytes) = std::fs::read(&path)
        && bytes.len() == expected
    {
        progress(count);
        return Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect());
    }
    let mut features = Vec::with_capacity(count * per_image);
    let indices: Vec<usize> = (0..count).collect();
    for chunk in indices.chunks(CHUNK) {
        if cancel.is_cancelled() {
            return Err(VisionError::Invalid(
                "interrupted while computing the frozen layers' features".into(),
            ));
        }
        let (pixels, _) = batch_pixels(data, chunk, preprocess, None);
        features.extend(network.features(&pixels, layer));
        progress(chunk[chunk.len() - 1] + 1);
    }
    // A cache that cannot be written only costs the next run the same time again.
    let _ = store(&path, &features);
    Ok(features)
}

fn store(path: &std::path::Path, features: &[f32]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let bytes: Vec<u8> = features.iter().flat_map(|v| v.to_le_bytes()).collect();
    // Written whole, then renamed: an interrupted write never leaves a short file.
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, path)
}

/// A digest of everything the features depend on.
fn key(
    network: &Network,
    data: &Dataset,
    count: usize,
    layer: usize,
    preprocess: &Preprocess,
) -> String {
    let mut hash = Sha256::new();
    hash.update(b"promptlab-features/2");
    for value in [
        layer,
        count,
        data.height,
        data.width,
        network.size_at_layer(layer),
    ] {
        hash.update((value as u64).to_le_bytes());
    }
    hash.update(preprocess.mean.to_le_bytes());
    hash.update(preprocess.std.to_le_bytes());
    if let Some(adapt) = &preprocess.adapt {
        hash.update((adapt.size as u64).to_le_bytes());
        for value in adapt.mean.iter().chain(&adapt.std) {
            hash.update(value.to_le_bytes());
        }
    }
    for param in network.params.iter().filter(|p| p.frozen) {
        hash.update(param.name.as_bytes());
        for dim in &param.shape {
            hash.update((*dim as u64).to_le_bytes());
        }
        for value in &param.value {
            hash.update(value.to_le_bytes());
        }
    }
    for index in 0..count {
        for value in data.image(index) {
            hash.update(value.to_le_bytes());
        }
    }
    format!("{:x}", hash.finalize())
}
