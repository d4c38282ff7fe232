//! The digit CNN's architecture: a list of layers (or a named preset) as written on the
//! command line and stored in the model card. The network built from it, for training and
//! inference, is in `network.rs`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Layer {
    /// `padding` zeros on each side.
    Conv {
        channels: usize,
        kernel: usize,
        #[serde(default)]
        padding: usize,
        #[serde(default = "one", skip_serializing_if = "is_one")]
        stride: usize,
        /// False for a convolution followed by batch norm, whose shift makes a bias moot.
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        bias: bool,
    },
    /// Each channel convolved with its own filter (PyTorch's `groups = channels`), no bias.
    Depthwise {
        kernel: usize,
        padding: usize,
        stride: usize,
    },
    BatchNorm,
    Relu,
    /// `min(max(x, 0), 6)`, MobileNet's activation.
    Relu6,
    /// Adds this layer's input to the input of the layer `span` layers back: a residual
    /// (skip) connection around those layers.
    Residual {
        span: usize,
    },
    /// The mean of each channel: an image to one feature per channel.
    GlobalAveragePool,
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
    /// The layer as the summary names it.
    pub(super) fn label(&self) -> String {
        match self {
            Layer::Conv {
                channels,
                kernel,
                padding,
                stride,
                bias,
            } => {
                let mut label = format!("conv {kernel}×{kernel}, {channels} channels");
                if *padding > 0 {
                    label += &format!(", padding {padding}");
                }
                if *stride > 1 {
                    label += &format!(", stride {stride}");
                }
                if !bias {
                    label += ", no bias";
                }
                label
            }
            Layer::Depthwise { kernel, stride, .. } => {
                if *stride > 1 {
                    format!("depthwise conv {kernel}×{kernel}, stride {stride}")
                } else {
                    format!("depthwise conv {kernel}×{kernel}")
                }
            }
            Layer::BatchNorm => "batch norm".into(),
            Layer::Relu => "relu".into(),
            Layer::Relu6 => "relu6".into(),
            Layer::Residual { span } => format!("add the input of {span} layers back"),
            Layer::GlobalAveragePool => "global average pool".into(),
            Layer::MaxPool { size } => format!("max pool {size}×{size}"),
            Layer::Dropout { rate } => format!("dropout {rate}"),
            Layer::Flatten => "flatten".into(),
            Layer::Dense { units } => format!("dense {units}"),
        }
    }
}

fn one() -> usize {
    1
}
fn is_one(value: &usize) -> bool {
    *value == 1
}
fn yes() -> bool {
    true
}
fn is_true(value: &bool) -> bool {
    *value
}

/// A plain convolution: stride 1, with bias.
pub fn conv(channels: usize, kernel: usize, padding: usize) -> Layer {
    Layer::Conv {
        channels,
        kernel,
        padding,
        stride: 1,
        bias: true,
    }
}

/// Named architectures. `mnist` is the default: two conv blocks with batch norm, one
/// hidden dense layer (about 225k parameters).
pub fn preset(name: &str) -> Option<Vec<Layer>> {
    let conv = |channels, kernel| conv(channels, kernel, 0);
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
            super::cnn::conv(6, 5, 2),
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
            super::cnn::conv(16, 3, 1),
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

/// A layer of a `--layers` list that does not parse; `item` is the layer as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerError {
    #[error("`{item}`: expected convCkK[pP][sS], e.g. conv32k3 or conv32k3p1s2")]
    ConvShape { item: String },
    #[error("`{item}`: bad padding")]
    Padding { item: String },
    #[error("`{item}`: expected a positive whole number for {what}")]
    NotPositive { item: String, what: &'static str },
    #[error("`{item}`: expected dropN with N in 0..1, e.g. drop0.25")]
    DropoutSyntax { item: String },
    #[error("`{item}`: the dropout rate must be in 0..1")]
    DropoutRange { item: String },
    #[error(
        "`{item}`: unknown layer; expected convCkK[pP][sS], dwK[pP][sS], bn, relu, relu6, poolN, avgpool, resN, dropN, flatten or denseN"
    )]
    Unknown { item: String },
}

/// A kernel with optional padding and stride: `K`, `KpP`, `KsS` or `KpPsS`; returns the
/// kernel as written, the padding and the stride.
fn window<'a>(text: &'a str, item: &str) -> Result<(&'a str, usize, usize), LayerError> {
    let bad = || LayerError::Padding {
        item: item.to_string(),
    };
    let (rest, stride) = match text.split_once('s') {
        Some((rest, s)) => (
            rest,
            s.parse::<usize>()
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| LayerError::NotPositive {
                    item: item.to_string(),
                    what: "the stride",
                })?,
        ),
        None => (text, 1),
    };
    let (kernel, padding) = match rest.split_once('p') {
        Some((k, p)) => (k, p.parse::<usize>().map_err(|_| bad())?),
        None => (rest, 0),
    };
    Ok((kernel, padding, stride))
}

/// Parses a layer list such as `conv32k3,bn,relu,pool2,conv64k3p1,relu,pool2,flatten,
/// drop0.25,dense128,relu` (the final layer to the classes is added automatically).
/// `sS` sets a stride, `dwK` is a depthwise convolution and `resN` adds the input of the
/// layer N layers back (a skip connection).
pub fn parse_layers(text: &str) -> Result<Vec<Layer>, LayerError> {
    let number = |s: &str, what: &'static str, item: &str| -> Result<usize, LayerError> {
        s.parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| LayerError::NotPositive {
                item: item.to_string(),
                what,
            })
    };
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| match item {
            "bn" | "batchnorm" => Ok(Layer::BatchNorm),
            "relu" => Ok(Layer::Relu),
            "relu6" => Ok(Layer::Relu6),
            "avgpool" => Ok(Layer::GlobalAveragePool),
            "flatten" => Ok(Layer::Flatten),
            _ if item.starts_with("conv") => {
                let (channels, rest) =
                    item[4..]
                        .split_once('k')
                        .ok_or_else(|| LayerError::ConvShape {
                            item: item.to_string(),
                        })?;
                let (kernel, padding, stride) = window(rest, item)?;
                Ok(Layer::Conv {
                    channels: number(channels, "channels", item)?,
                    kernel: number(kernel, "the kernel size", item)?,
                    padding,
                    stride,
                    bias: true,
                })
            }
            _ if item.starts_with("dw") => {
                let (kernel, padding, stride) = window(&item[2..], item)?;
                Ok(Layer::Depthwise {
                    kernel: number(kernel, "the kernel size", item)?,
                    padding,
                    stride,
                })
            }
            _ if item.starts_with("res") => Ok(Layer::Residual {
                span: number(&item[3..], "the layers to skip", item)?,
            }),
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
                    .map_err(|_| LayerError::DropoutSyntax {
                        item: item.to_string(),
                    })?;
                if (0.0..1.0).contains(&rate) {
                    Ok(Layer::Dropout { rate })
                } else {
                    Err(LayerError::DropoutRange {
                        item: item.to_string(),
                    })
                }
            }
            _ => Err(LayerError::Unknown {
                item: item.to_string(),
            }),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_lists_parse_and_bad_ones_say_what_was_expected() {
        let layers =
            parse_layers("conv32k3, bn, relu, pool2, conv8k5p2, drop0.25, flatten, dense64")
                .unwrap();
        assert_eq!(layers.len(), 8);
        assert_eq!(layers[4], conv(8, 5, 2));
        let mobile = parse_layers("conv8k3p1s2,dw3p1,dw5s2,res2,relu6,avgpool").unwrap();
        assert_eq!(
            mobile[0],
            Layer::Conv {
                channels: 8,
                kernel: 3,
                padding: 1,
                stride: 2,
                bias: true
            }
        );
        assert_eq!(
            mobile[2],
            Layer::Depthwise {
                kernel: 5,
                padding: 0,
                stride: 2
            }
        );
        assert_eq!(mobile[3], Layer::Residual { span: 2 });
        let message = |text: &str| parse_layers(text).unwrap_err().to_string();
        assert!(message("conv32").contains("conv32k3"));
        assert!(message("drop1.5").contains("0..1"));
        assert_eq!(
            parse_layers("softmax").unwrap_err(),
            LayerError::Unknown {
                item: "softmax".into()
            }
        );
        assert!(message("softmax").contains("unknown layer"));
        assert!(message("conv8k3s0").contains("stride"));
    }
}
