//! A network summarised for people: block by block for a pretrained backbone (the CLI's
//! table, the training report's diagram, the TUI's Network panel), and what a run
//! started from (the learning-curve report's lines).

use serde::{Deserialize, Serialize};

use super::{ModelCard, Network};
use crate::vision::VisionError;
use crate::vision::cnn::{Layer, LayerInfo};
use crate::vision::mobilenet;

/// A row of a network's summary: one layer, or a pretrained network's block of layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockInfo {
    pub name: String,
    /// The layers it holds.
    pub layers: std::ops::Range<usize>,
    pub output: Vec<usize>,
    pub params: usize,
}

/// The summary rows of `layers`: each of `blocks` (where each pretrained block starts; the
/// last entry is where they end) as one row, named after what it does, then every later
/// layer on its own.
pub fn summary_blocks(layers: &[LayerInfo], blocks: Option<&[usize]>) -> Vec<BlockInfo> {
    let bounds: Vec<usize> = match blocks {
        Some(starts) => {
            let end = starts.last().copied().unwrap_or(0).min(layers.len());
            starts
                .iter()
                .copied()
                .filter(|&s| s < end)
                .chain(end..=layers.len())
                .collect()
        }
        None => (0..=layers.len()).collect(),
    };
    bounds
        .windows(2)
        .filter(|w| w[0] < w[1])
        .map(|w| {
            let part = &layers[w[0]..w[1]];
            let names: Vec<&str> = part.iter().map(|l| l.name.as_str()).collect();
            let name = if part.len() == 1 {
                names[0].to_string()
            } else if let Some(depthwise) = names.iter().find(|n| n.starts_with("depthwise")) {
                let stride = depthwise.split_once(", ").map_or("", |(_, s)| s);
                let skip = names.iter().any(|n| n.starts_with("add the input"));
                let expansion = part
                    .first()
                    .zip(part.last())
                    .filter(|_| names[0].starts_with("conv 1×1"))
                    .map(|(first, _)| first.output[0]);
                let mut name = "inverted residual".to_string();
                if let Some(channels) = expansion {
                    name += &format!(" (expand to {channels})");
                }
                if !stride.is_empty() {
                    name += &format!(", {stride}");
                }
                if skip {
                    name += " + skip";
                }
                name
            } else {
                names.join(", ")
            };
            BlockInfo {
                name,
                layers: w[0]..w[1],
                output: part.last().map(|l| l.output.clone()).unwrap_or_default(),
                params: part.iter().map(|l| l.params).sum(),
            }
        })
        .collect()
}

impl ModelCard {
    /// The network summarised by block: a backbone's blocks as one row each (with the
    /// layers after them on their own), every layer on its own otherwise.
    pub fn blocks(&self) -> Vec<BlockInfo> {
        let starts = match self.config.backbone.as_deref() {
            Some(mobilenet::NAME) => Some(mobilenet::mobilenet_v2().blocks),
            _ => None,
        };
        summary_blocks(&self.layers, starts.as_deref())
    }

    /// What the run started from, for comparing runs: `mnist from scratch`,
    /// `mobilenet_v2 features`, `mobilenet_v2, 16 of 19 blocks frozen`, `init from
    /// mnist.safetensors, 8 layers frozen`.
    pub fn start(&self) -> String {
        let config = &self.config;
        if let Some(init) = &config.init {
            let name = init.file_name().map_or_else(
                || init.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            return format!("init from {name}, {} layers frozen", config.frozen_layers);
        }
        match config.backbone.as_deref() {
            Some(mobilenet::NAME) => {
                let blocks = mobilenet::mobilenet_v2().blocks;
                let count = blocks.len() - 1;
                match blocks.iter().position(|&b| b == config.frozen_layers) {
                    Some(n) if n == count => format!("{} features", mobilenet::NAME),
                    Some(0) => format!("{} fine-tuned whole", mobilenet::NAME),
                    Some(n) => format!("{}, {n} of {count} blocks frozen", mobilenet::NAME),
                    None => format!(
                        "{}, {} layers frozen",
                        mobilenet::NAME,
                        config.frozen_layers
                    ),
                }
            }
            Some(other) => other.to_string(),
            None => format!("{} from scratch", config.preset),
        }
    }

    /// Whether training left every layer of `block` as loaded.
    pub fn frozen(&self, block: &BlockInfo) -> bool {
        block.layers.end <= self.config.frozen_layers
    }
}

/// Each layer's output shape and parameter count for `layers` on `input` images with
/// `classes` classes (the summary a card holds), without training anything.
pub fn layer_summary(
    layers: &[Layer],
    input: [usize; 3],
    classes: usize,
) -> Result<Vec<LayerInfo>, VisionError> {
    Ok(Network::new(layers, input, classes, 0)?.1)
}
