//! The digit CNN: an architecture written as a list of layers (or a named preset), built
//! with candle, with the shape and parameter count of every layer worked out up front so a
//! bad architecture fails before training and a summary can be printed.

use candle_core::{D, Tensor};
use std::sync::atomic::{AtomicU64, Ordering};

use candle_nn::{Linear, Module, VarBuilder};

use super::conv::Conv;
use super::fused::{self, BatchNorm};
use serde::{Deserialize, Serialize};

use super::VisionError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Layer {
    /// Stride 1; `padding` zeros on each side.
    Conv {
        channels: usize,
        kernel: usize,
        #[serde(default)]
        padding: usize,
    },
    BatchNorm,
    Relu,
    /// Non-overlapping max pooling over `size`×`size`.
    MaxPool {
        size: usize,
    },
    Dropout {
        rate: f32,
    },
    Flatten,
    Dense {
        units: usize,
    },
}

impl Layer {
    fn label(&self) -> String {
        match self {
            Layer::Conv {
                channels,
                kernel,
                padding,
            } => {
                if *padding > 0 {
                    format!("conv {kernel}×{kernel}, {channels} channels, padding {padding}")
                } else {
                    format!("conv {kernel}×{kernel}, {channels} channels")
                }
            }
            Layer::BatchNorm => "batch norm".into(),
            Layer::Relu => "relu".into(),
            Layer::MaxPool { size } => format!("max pool {size}×{size}"),
            Layer::Dropout { rate } => format!("dropout {rate}"),
            Layer::Flatten => "flatten".into(),
            Layer::Dense { units } => format!("dense {units}"),
        }
    }
}

/// Named architectures. `mnist` is the default: two conv blocks with batch norm, one
/// hidden dense layer (about 225k parameters).
pub fn preset(name: &str) -> Option<Vec<Layer>> {
    let conv = |channels, kernel| Layer::Conv {
        channels,
        kernel,
        padding: 0,
    };
    let layers = match name {
        "mnist" => vec![
            conv(32, 3),
            Layer::BatchNorm,
            Layer::Relu,
            Layer::MaxPool { size: 2 },
            conv(64, 3),
            Layer::BatchNorm,
            Layer::Relu,
            Layer::MaxPool { size: 2 },
            Layer::Flatten,
            Layer::Dropout { rate: 0.25 },
            Layer::Dense { units: 128 },
            Layer::Relu,
            Layer::Dropout { rate: 0.5 },
        ],
        "lenet5" => vec![
            Layer::Conv {
                channels: 6,
                kernel: 5,
                padding: 2,
            },
            Layer::Relu,
            Layer::MaxPool { size: 2 },
            conv(16, 5),
            Layer::Relu,
            Layer::MaxPool { size: 2 },
            Layer::Flatten,
            Layer::Dense { units: 120 },
            Layer::Relu,
            Layer::Dense { units: 84 },
            Layer::Relu,
        ],
        // For the 8×8 digits: small enough to train in seconds.
        "small" => vec![
            Layer::Conv {
                channels: 16,
                kernel: 3,
                padding: 1,
            },
            Layer::Relu,
            Layer::MaxPool { size: 2 },
            Layer::Flatten,
            Layer::Dense { units: 64 },
            Layer::Relu,
        ],
        "mlp" => vec![Layer::Flatten, Layer::Dense { units: 256 }, Layer::Relu],
        _ => return None,
    };
    Some(layers)
}

pub const PRESETS: [&str; 4] = ["mnist", "lenet5", "small", "mlp"];

/// Parses a layer list such as `conv32k3,bn,relu,pool2,conv64k3p1,relu,pool2,flatten,
/// drop0.25,dense128,relu` (the final layer to the classes is added automatically).
pub fn parse_layers(text: &str) -> Result<Vec<Layer>, String> {
    let number = |s: &str, what: &str, item: &str| -> Result<usize, String> {
        s.parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("`{item}`: expected a positive whole number for {what}"))
    };
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| match item {
            "bn" | "batchnorm" => Ok(Layer::BatchNorm),
            "relu" => Ok(Layer::Relu),
            "flatten" => Ok(Layer::Flatten),
            _ if item.starts_with("conv") => {
                let spec = &item[4..];
                let (channels, rest) = spec
                    .split_once('k')
                    .ok_or_else(|| format!("`{item}`: expected convCkK or convCkKpP, e.g. conv32k3"))?;
                let (kernel, padding) = match rest.split_once('p') {
                    Some((k, p)) => (k, p.parse::<usize>().map_err(|_| format!("`{item}`: bad padding"))?),
                    None => (rest, 0),
                };
                Ok(Layer::Conv {
                    channels: number(channels, "channels", item)?,
                    kernel: number(kernel, "the kernel size", item)?,
                    padding,
                })
            }
            _ if item.starts_with("pool") => Ok(Layer::MaxPool {
                size: number(&item[4..], "the pool size", item)?,
            }),
            _ if item.starts_with("dense") => Ok(Layer::Dense {
                units: number(&item[5..], "units", item)?,
            }),
            _ if item.starts_with("drop") => {
                let rate: f32 = item
                    .trim_start_matches("dropout")
                    .trim_start_matches("drop")
                    .parse()
                    .map_err(|_| format!("`{item}`: expected dropN with N in 0..1, e.g. drop0.25"))?;
                if (0.0..1.0).contains(&rate) {
                    Ok(Layer::Dropout { rate })
                } else {
                    Err(format!("`{item}`: the dropout rate must be in 0..1"))
                }
            }
            _ => Err(format!(
                "`{item}`: unknown layer; expected convCkK[pP], bn, relu, poolN, dropN, flatten or denseN"
            )),
        })
        .collect()
}

/// One layer of a built network, for the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerInfo {
    pub name: String,
    /// Output shape of one image: `[channels, height, width]` or `[features]`.
    pub output: Vec<usize>,
    pub params: usize,
}

enum Built {
    Conv(Conv),
    BatchNorm(BatchNorm),
    Relu,
    MaxPool(usize),
    Dropout(f32),
    Flatten,
    Dense(Linear),
}

pub struct DigitCnn {
    layers: Vec<Built>,
    /// Dropout masks come from this seed and a counter, so a seeded run repeats exactly.
    seed: u64,
    dropout_calls: AtomicU64,
}

impl DigitCnn {
    /// Builds `layers` plus a final dense layer to `classes`, for `[channels, height,
    /// width]` inputs; weights come from (or are created in) `vb`.
    pub fn new(
        layers: &[Layer],
        input: [usize; 3],
        classes: usize,
        vb: VarBuilder,
    ) -> Result<(DigitCnn, Vec<LayerInfo>), VisionError> {
        let mut shape: Vec<usize> = input.to_vec();
        let mut built = Vec::new();
        let mut infos = Vec::new();
        let all: Vec<Layer> = layers
            .iter()
            .cloned()
            .chain([Layer::Dense { units: classes }])
            .collect();
        for (index, layer) in all.iter().enumerate() {
            let vb = vb.pp(format!("l{index}"));
            let bad = |message: String| {
                VisionError::Invalid(format!(
                    "layer {} ({}): {message}",
                    index + 1,
                    layer.label()
                ))
            };
            let (module, params) = match layer {
                Layer::Conv {
                    channels,
                    kernel,
                    padding,
                } => {
                    let [c, h, w] = shape[..] else {
                        return Err(bad(
                            "a convolution needs an image input, not flattened features".into(),
                        ));
                    };
                    let (oh, ow) = (
                        (h + 2 * padding).checked_sub(*kernel),
                        (w + 2 * padding).checked_sub(*kernel),
                    );
                    let (Some(oh), Some(ow)) = (oh, ow) else {
                        return Err(bad(format!("the kernel is larger than the {h}×{w} input")));
                    };
                    let conv = Conv::new(c, *channels, *kernel, *padding, vb)?;
                    shape = vec![*channels, oh + 1, ow + 1];
                    (Built::Conv(conv), c * channels * kernel * kernel + channels)
                }
                Layer::BatchNorm => {
                    let features = shape[0];
                    let norm = BatchNorm::new(features, vb)?;
                    (Built::BatchNorm(norm), 2 * features)
                }
                Layer::Relu => (Built::Relu, 0),
                Layer::MaxPool { size } => {
                    let [c, h, w] = shape[..] else {
                        return Err(bad(
                            "pooling needs an image input, not flattened features".into()
                        ));
                    };
                    if h / size == 0 || w / size == 0 {
                        return Err(bad(format!("the {h}×{w} input is smaller than the pool")));
                    }
                    shape = vec![c, h / size, w / size];
                    (Built::MaxPool(*size), 0)
                }
                Layer::Dropout { rate } => (Built::Dropout(*rate), 0),
                Layer::Flatten => {
                    shape = vec![shape.iter().product()];
                    (Built::Flatten, 0)
                }
                Layer::Dense { units } => {
                    // A dense layer right after an image flattens it.
                    if shape.len() > 1 {
                        built.push(Built::Flatten);
                        shape = vec![shape.iter().product()];
                    }
                    let linear = candle_nn::linear(shape[0], *units, vb)?;
                    let params = shape[0] * units + units;
                    shape = vec![*units];
                    (Built::Dense(linear), params)
                }
            };
            built.push(module);
            let name = if index == all.len() - 1 {
                format!("dense {classes} (classes)")
            } else {
                layer.label()
            };
            infos.push(LayerInfo {
                name,
                output: shape.clone(),
                params,
            });
        }
        let model = DigitCnn {
            layers: built,
            seed: 0,
            dropout_calls: AtomicU64::new(0),
        };
        Ok((model, infos))
    }

    pub fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
    }

    /// Logits for a `[batch, channels, height, width]` input.
    pub fn forward(&self, input: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let mut x = input.clone();
        let mut index = 0;
        while index < self.layers.len() {
            let layer = &self.layers[index];
            index += 1;
            // Batch norm, ReLU and pooling in training run as one node (see fused.rs).
            if train && let Built::BatchNorm(norm) = layer {
                match (self.layers.get(index), self.layers.get(index + 1)) {
                    (Some(Built::Relu), Some(Built::MaxPool(size))) => {
                        x = norm.forward_relu_pool(&x, *size)?;
                        index += 2;
                        continue;
                    }
                    (Some(Built::Relu), _) if x.rank() == 4 => {
                        x = norm.forward_relu_pool(&x, 1)?;
                        index += 1;
                        continue;
                    }
                    _ => {}
                }
            }
            x = match layer {
                Built::Conv(conv) => conv.forward(&x)?,
                Built::BatchNorm(norm) => norm.forward_t(&x, train)?,
                Built::Relu => fused::relu(&x)?,
                Built::MaxPool(size) => fused::max_pool2d(&x, *size)?,
                Built::Dropout(rate) if train && *rate > 0.0 => {
                    let call = self.dropout_calls.fetch_add(1, Ordering::Relaxed);
                    fused::dropout(
                        &x,
                        *rate,
                        self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ call,
                    )?
                }
                Built::Dropout(_) => x,
                Built::Flatten => x.flatten_from(1)?,
                Built::Dense(linear) => linear.forward(&x)?,
            };
        }
        Ok(x)
    }

    /// Class probabilities for a batch.
    pub fn probabilities(&self, input: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::softmax(&self.forward(input, false)?, D::Minus1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn layer_lists_parse_and_bad_ones_say_what_was_expected() {
        let layers =
            parse_layers("conv32k3, bn, relu, pool2, conv8k5p2, drop0.25, flatten, dense64")
                .unwrap();
        assert_eq!(layers.len(), 8);
        assert_eq!(
            layers[4],
            Layer::Conv {
                channels: 8,
                kernel: 5,
                padding: 2
            }
        );
        assert!(parse_layers("conv32").unwrap_err().contains("conv32k3"));
        assert!(parse_layers("drop1.5").unwrap_err().contains("0..1"));
        assert!(
            parse_layers("softmax")
                .unwrap_err()
                .contains("unknown layer")
        );
    }

    #[test]
    fn the_mnist_preset_has_the_expected_shapes_and_parameter_count() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let (model, infos) = DigitCnn::new(&preset("mnist").unwrap(), [1, 28, 28], 10, vb).unwrap();
        let shapes: Vec<&[usize]> = infos.iter().map(|i| i.output.as_slice()).collect();
        assert_eq!(shapes[0], [32, 26, 26]);
        assert_eq!(shapes[3], [32, 13, 13]);
        assert_eq!(shapes[7], [64, 5, 5]);
        assert_eq!(shapes[8], [1600]);
        // conv 320 + bn 64 + conv 18,496 + bn 128 + dense 204,928 + head 1,290
        assert_eq!(infos.iter().map(|i| i.params).sum::<usize>(), 225_226);
        let trainable: usize = varmap
            .all_vars()
            .iter()
            .map(|v| v.elem_count())
            .sum::<usize>()
            - 2 * (32 + 64); // running means and variances are not trained
        assert_eq!(trainable, 225_226);
        let input = Tensor::zeros((3, 1, 28, 28), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(model.forward(&input, false).unwrap().dims(), [3, 10]);
    }

    #[test]
    fn an_architecture_that_shrinks_the_image_away_is_refused() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let layers = parse_layers("pool2,pool2,pool2,conv8k3").unwrap();
        let err = DigitCnn::new(&layers, [1, 8, 8], 10, vb)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("layer 4") && err.contains("larger than the 1×1"),
            "{err}"
        );
    }
}
