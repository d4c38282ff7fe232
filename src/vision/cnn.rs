//! The digit CNN's architecture: a list of layers (or a named preset) as written on the
//! command line and stored in the model card. The network built from it, for training and
//! inference, is in `network.rs`.

use serde::{Deserialize, Serialize};

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
    /// The layer as the summary names it.
    pub(super) fn label(&self) -> String {
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

/// A layer of a `--layers` list that does not parse; `item` is the layer as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerError {
    #[error("`{item}`: expected convCkK or convCkKpP, e.g. conv32k3")]
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
        "`{item}`: unknown layer; expected convCkK[pP], bn, relu, poolN, dropN, flatten or denseN"
    )]
    Unknown { item: String },
}

/// Parses a layer list such as `conv32k3,bn,relu,pool2,conv64k3p1,relu,pool2,flatten,
/// drop0.25,dense128,relu` (the final layer to the classes is added automatically).
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
            "flatten" => Ok(Layer::Flatten),
            _ if item.starts_with("conv") => {
                let spec = &item[4..];
                let (channels, rest) =
                    spec.split_once('k').ok_or_else(|| LayerError::ConvShape {
                        item: item.to_string(),
                    })?;
                let (kernel, padding) = match rest.split_once('p') {
                    Some((k, p)) => (
                        k,
                        p.parse::<usize>().map_err(|_| LayerError::Padding {
                            item: item.to_string(),
                        })?,
                    ),
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
        assert_eq!(
            layers[4],
            Layer::Conv {
                channels: 8,
                kernel: 5,
                padding: 2
            }
        );
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
    }
}
