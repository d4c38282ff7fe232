//! Building the network from a layer list: each layer's output shape and parameter count
//! worked out up front (so a bad architecture fails, naming the layer, before anything
//! runs, and a summary can be printed), the parameters named and shaped as in the
//! safetensors file, and the seeded initial weights.

use rand::Rng;
use rand::rngs::StdRng;

use super::layers::{BatchNorm, Conv, Dense, Depthwise, GlobalAveragePool, MaxPool, Shape};
use super::{Network, Node, Param, rebuild_sizes};
use crate::vision::VisionError;
use crate::vision::cnn::{Layer, LayerInfo};

impl Network {
    /// The network for `layers` plus a final dense layer to `classes`, for `[channels,
    /// height, width]` inputs, with a summary line per layer. Parameters are named
    /// `l{index}.weight`, `l{index}.bias` (and `running_mean`, `running_var` for batch
    /// norm) with PyTorch's shapes; they start at zero, batch-norm scales and running
    /// variances at one: draw them with [`Network::initialise`] or copy them in with
    /// [`Network::set`].
    pub fn new(
        layers: &[Layer],
        input: [usize; 3],
        classes: usize,
        seed: u64,
    ) -> Result<(Network, Vec<LayerInfo>), VisionError> {
        let mut shape = Shape {
            channels: input[0],
            height: input[1],
            width: input[2],
        };
        // Flattened features are `channels` with a 1×1 plane.
        let mut flat = false;
        let mut nodes = Vec::new();
        let mut params = Vec::new();
        let mut infos = Vec::new();
        let mut layer_nodes = Vec::new();
        let add = |params: &mut Vec<Param>, name: String, shape: Vec<usize>, fill: f32| {
            params.push(Param::new(name, shape, fill));
            params.len() - 1
        };
        let all: Vec<Layer> = layers
            .iter()
            .cloned()
            .chain([Layer::Dense { units: classes }])
            .collect();
        for (index, layer) in all.iter().enumerate() {
            let name = |what: &str| format!("l{index}.{what}");
            let bad = |message: String| {
                VisionError::Invalid(format!(
                    "layer {} ({}): {message}",
                    index + 1,
                    layer.label()
                ))
            };
            layer_nodes.push(nodes.len());
            let mut count = 0;
            // The output plane of a `kernel`×`kernel` window moved by `stride` over the
            // padded input.
            let window = |kernel: usize, padding: usize, stride: usize| {
                if flat {
                    return Err(bad(
                        "a convolution needs an image input, not flattened features".into(),
                    ));
                }
                let (h, w) = (shape.height, shape.width);
                if kernel == 0 || stride == 0 {
                    return Err(bad("the kernel and stride must be at least 1".into()));
                }
                let (Some(oh), Some(ow)) = (
                    (h + 2 * padding).checked_sub(kernel),
                    (w + 2 * padding).checked_sub(kernel),
                ) else {
                    return Err(bad(format!("the kernel is larger than the {h}×{w} input")));
                };
                Ok((oh / stride + 1, ow / stride + 1))
            };
            let node = match *layer {
                Layer::Conv {
                    channels,
                    kernel,
                    padding,
                    stride,
                    bias,
                } => {
                    let (height, width) = window(kernel, padding, stride)?;
                    if channels == 0 {
                        return Err(bad("the channels must be at least 1".into()));
                    }
                    let output = Shape {
                        channels,
                        height,
                        width,
                    };
                    let weight_shape = vec![channels, shape.channels, kernel, kernel];
                    count = shape.channels * kernel * kernel * channels;
                    let weight = add(&mut params, name("weight"), weight_shape, 0.0);
                    let bias = bias.then(|| {
                        count += channels;
                        add(&mut params, name("bias"), vec![channels], 0.0)
                    });
                    let conv = Conv {
                        input: shape,
                        output,
                        kernel,
                        padding,
                        stride,
                        weight,
                        bias,
                        first: nodes.is_empty(),
                        columns: Vec::new(),
                    };
                    shape = output;
                    Some(Node::Conv(conv))
                }
                Layer::Depthwise {
                    kernel,
                    padding,
                    stride,
                } => {
                    let (height, width) = window(kernel, padding, stride)?;
                    let output = Shape {
                        channels: shape.channels,
                        height,
                        width,
                    };
                    count = shape.channels * kernel * kernel;
                    let weight_shape = vec![shape.channels, 1, kernel, kernel];
                    let conv = Depthwise {
                        input: shape,
                        output,
                        kernel,
                        padding,
                        stride,
                        weight: add(&mut params, name("weight"), weight_shape, 0.0),
                        first: nodes.is_empty(),
                    };
                    shape = output;
                    Some(Node::Depthwise(conv))
                }
                Layer::Relu6 => Some(Node::Relu6),
                Layer::Residual { span } => {
                    let from = index
                        .checked_sub(span)
                        .filter(|_| span > 0)
                        .map(|layer| layer_nodes[layer])
                        .ok_or_else(|| {
                            bad(format!("there are no {span} layers before it to skip"))
                        })?;
                    let sizes = rebuild_sizes(&nodes, input);
                    if sizes[from] != shape.len() {
                        return Err(bad(format!(
                            "the input {span} layers back has {} values per image, this one {}",
                            sizes[from],
                            shape.len()
                        )));
                    }
                    Some(Node::Residual { from })
                }
                Layer::GlobalAveragePool => {
                    if flat {
                        return Err(bad(
                            "pooling needs an image input, not flattened features".into()
                        ));
                    }
                    Some(Node::GlobalAveragePool(GlobalAveragePool { input: shape }))
                }
                Layer::BatchNorm => {
                    let features = vec![shape.channels];
                    count = 2 * shape.channels;
                    Some(Node::BatchNorm(BatchNorm {
                        shape,
                        weight: add(&mut params, name("weight"), features.clone(), 1.0),
                        bias: add(&mut params, name("bias"), features.clone(), 0.0),
                        running_mean: add(&mut params, name("running_mean"), features.clone(), 0.0),
                        running_var: add(&mut params, name("running_var"), features, 1.0),
                        normalized: Vec::new(),
                        inv_std: Vec::new(),
                    }))
                }
                Layer::Relu => Some(Node::Relu),
                Layer::MaxPool { size } => {
                    if flat {
                        return Err(bad(
                            "pooling needs an image input, not flattened features".into()
                        ));
                    }
                    let (h, w) = (shape.height, shape.width);
                    if size == 0 || h / size == 0 || w / size == 0 {
                        return Err(bad(format!("the {h}×{w} input is smaller than the pool")));
                    }
                    let pool = MaxPool {
                        input: shape,
                        size,
                        argmax: Vec::new(),
                    };
                    shape = Shape {
                        channels: shape.channels,
                        height: h / size,
                        width: w / size,
                    };
                    Some(Node::MaxPool(pool))
                }
                Layer::Dropout { rate } => Some(Node::Dropout {
                    rate,
                    mask: Vec::new(),
                }),
                // Free in NCHW: no node.
                Layer::Flatten => None,
                Layer::Dense { units } => {
                    // A dense layer right after an image flattens it.
                    let inputs = shape.len();
                    count = inputs * units + units;
                    Some(Node::Dense(Dense {
                        inputs,
                        units,
                        weight: add(&mut params, name("weight"), vec![units, inputs], 0.0),
                        bias: add(&mut params, name("bias"), vec![units], 0.0),
                    }))
                }
            };
            if matches!(
                layer,
                Layer::Flatten | Layer::Dense { .. } | Layer::GlobalAveragePool
            ) {
                flat = true;
                shape = Shape {
                    channels: match layer {
                        Layer::Dense { units } => *units,
                        Layer::GlobalAveragePool => shape.channels,
                        _ => shape.len(),
                    },
                    height: 1,
                    width: 1,
                };
            }
            nodes.extend(node);
            infos.push(LayerInfo {
                name: if index == all.len() - 1 {
                    format!("dense {classes} (classes)")
                } else {
                    layer.label()
                },
                output: if flat {
                    vec![shape.channels]
                } else {
                    vec![shape.channels, shape.height, shape.width]
                },
                params: count,
            });
        }
        let sizes = rebuild_sizes(&nodes, input);
        let network = Network {
            activations: vec![Vec::new(); nodes.len() + 1],
            nodes,
            params,
            sizes,
            gradient: Vec::new(),
            gradient_next: Vec::new(),
            classes,
            seed,
            dropout_calls: 0,
            steps: 0,
            frozen: 0,
            layer_nodes,
        };
        Ok((network, infos))
    }

    /// Draws the initial weights from the run's seeded generator, as PyTorch initialises
    /// its layers: the weights and biases of convolutions and dense layers uniform in
    /// ±1/√fan-in, batch-norm parameters left at 1 and 0. Parameters are drawn in the
    /// order of their names (`l0.bias`, `l0.weight`, `l10.bias`, …), so a seed gives the
    /// same weights it gave when the candle model held them.
    pub fn initialise(&mut self, rng: &mut StdRng) {
        let mut order: Vec<usize> = (0..self.params.len()).collect();
        order.sort_by(|a, b| self.params[*a].name.cmp(&self.params[*b].name));
        for index in order {
            let layer = self.params[index]
                .name
                .rsplit_once('.')
                .map_or("", |(layer, _)| layer);
            let weight = format!("{layer}.weight");
            let fan_in = self
                .params
                .iter()
                .find(|p| p.name == weight && p.shape.len() >= 2)
                .map(|p| p.shape[1..].iter().product::<usize>());
            let Some(fan_in) = fan_in else { continue };
            let bound = 1.0 / (fan_in as f32).sqrt();
            for value in &mut self.params[index].value {
                *value = rng.random_range(-bound..=bound);
            }
        }
    }
}
