//! The digit CNN's training engine: forward and backward passes written out by hand over
//! flat NCHW buffers, the matrix products done by `gemm`, the images of a batch split
//! across threads. candle's autograd allocates, walks and zero-fills a fresh tensor for
//! every operation and every gradient, which on two cores made a training step three times
//! slower than PyTorch's; here every buffer is kept from one batch to the next.
//!
//! The candle model (`cnn.rs`) stays the reference and the inference path: the network is
//! built from the same layer list, reads and writes the same named weights, and the tests
//! check that both compute the same outputs and gradients.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use super::VisionError;
use super::cnn::Layer;
use super::train::OptimizerKind;

mod layers;

use layers::{BatchNorm, Conv, Dense, MaxPool, Shape};

const BATCH_NORM_EPS: f32 = 1e-5;
const BATCH_NORM_MOMENTUM: f32 = 0.1;
const ADAM_BETA1: f32 = 0.9;
const ADAM_BETA2: f32 = 0.999;
const ADAM_EPS: f32 = 1e-8;

/// A trainable tensor with its gradient and optimizer state, named as in the safetensors
/// file (`l0.weight`, …).
pub struct Param {
    pub name: String,
    pub value: Vec<f32>,
    grad: Vec<f32>,
    /// Adam's first moment, or SGD's velocity.
    first: Vec<f32>,
    second: Vec<f32>,
}

impl Param {
    fn new(name: String, value: Vec<f32>) -> Param {
        let len = value.len();
        Param {
            name,
            value,
            grad: vec![0.0; len],
            first: vec![0.0; len],
            second: vec![0.0; len],
        }
    }
}

enum Node {
    Conv(Conv),
    BatchNorm(BatchNorm),
    Relu,
    MaxPool(MaxPool),
    Dropout { rate: f32, mask: Vec<f32> },
    Dense(Dense),
}

/// Every parameter's values by name, as in the safetensors file.
pub type Weights = Vec<(String, Vec<f32>)>;

/// The loss and predictions of one training batch.
pub struct StepResult {
    pub loss: f32,
    pub predictions: Vec<u8>,
}

impl StepResult {
    /// How many predictions equal `labels`.
    pub fn correct(&self, labels: &[u8]) -> usize {
        self.predictions
            .iter()
            .zip(labels)
            .filter(|(p, l)| p == l)
            .count()
    }
}

pub struct Network {
    nodes: Vec<Node>,
    pub params: Vec<Param>,
    /// Per-image length of each node's output; `sizes[0]` is the input's.
    sizes: Vec<usize>,
    /// Each node's output for the last batch; `activations[0]` is the input.
    activations: Vec<Vec<f32>>,
    gradient: Vec<f32>,
    gradient_next: Vec<f32>,
    classes: usize,
    seed: u64,
    dropout_calls: u64,
    steps: i32,
}

impl Network {
    /// The network for `layers` plus a final dense layer to `classes`, with the parameter
    /// names candle's `DigitCnn` uses. Values start at zero (batch-norm scale and running
    /// variance at one): copy them in with [`Network::set`].
    pub fn new(
        layers: &[Layer],
        input: [usize; 3],
        classes: usize,
        seed: u64,
    ) -> Result<Network, VisionError> {
        let mut shape = Shape {
            channels: input[0],
            height: input[1],
            width: input[2],
        };
        let mut flat = false;
        let mut nodes = Vec::new();
        let mut params = Vec::new();
        let add = |params: &mut Vec<Param>, name: String, len: usize, fill: f32| {
            params.push(Param::new(name, vec![fill; len]));
            params.len() - 1
        };
        let all = layers
            .iter()
            .cloned()
            .chain([Layer::Dense { units: classes }]);
        for (index, layer) in all.enumerate() {
            let name = |what: &str| format!("l{index}.{what}");
            let node = match layer {
                Layer::Conv {
                    channels,
                    kernel,
                    padding,
                } => {
                    let output = Shape {
                        channels,
                        height: (shape.height + 2 * padding + 1).saturating_sub(kernel),
                        width: (shape.width + 2 * padding + 1).saturating_sub(kernel),
                    };
                    if flat || output.height == 0 || output.width == 0 {
                        return Err(VisionError::Invalid(format!(
                            "layer {}: the convolution does not fit its input",
                            index + 1
                        )));
                    }
                    let patch = shape.channels * kernel * kernel;
                    let conv = Conv {
                        input: shape,
                        output,
                        kernel,
                        padding,
                        weight: add(&mut params, name("weight"), channels * patch, 0.0),
                        bias: add(&mut params, name("bias"), channels, 0.0),
                        first: nodes.is_empty(),
                        columns: Vec::new(),
                    };
                    shape = output;
                    Node::Conv(conv)
                }
                Layer::BatchNorm => Node::BatchNorm(BatchNorm {
                    shape,
                    weight: add(&mut params, name("weight"), shape.channels, 1.0),
                    bias: add(&mut params, name("bias"), shape.channels, 0.0),
                    running_mean: add(&mut params, name("running_mean"), shape.channels, 0.0),
                    running_var: add(&mut params, name("running_var"), shape.channels, 1.0),
                    normalized: Vec::new(),
                    inv_std: Vec::new(),
                }),
                Layer::Relu => Node::Relu,
                Layer::MaxPool { size } => {
                    if flat || size == 0 || shape.height / size == 0 || shape.width / size == 0 {
                        return Err(VisionError::Invalid(format!(
                            "layer {}: the pool does not fit its input",
                            index + 1
                        )));
                    }
                    let pool = MaxPool {
                        input: shape,
                        size,
                        argmax: Vec::new(),
                    };
                    shape = Shape {
                        channels: shape.channels,
                        height: shape.height / size,
                        width: shape.width / size,
                    };
                    Node::MaxPool(pool)
                }
                Layer::Dropout { rate } => Node::Dropout {
                    rate,
                    mask: Vec::new(),
                },
                Layer::Flatten => {
                    flat = true;
                    shape = Shape {
                        channels: shape.len(),
                        height: 1,
                        width: 1,
                    };
                    continue;
                }
                Layer::Dense { units } => {
                    let inputs = shape.len();
                    flat = true;
                    let dense = Dense {
                        inputs,
                        units,
                        weight: add(&mut params, name("weight"), units * inputs, 0.0),
                        bias: add(&mut params, name("bias"), units, 0.0),
                    };
                    shape = Shape {
                        channels: units,
                        height: 1,
                        width: 1,
                    };
                    Node::Dense(dense)
                }
            };
            nodes.push(node);
        }
        // Flatten is free in NCHW: it has no node.
        let sizes = rebuild_sizes(&nodes, input);
        Ok(Network {
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
        })
    }

    /// Copies a named tensor's values in.
    pub fn set(&mut self, name: &str, values: &[f32]) -> Result<(), VisionError> {
        let param = self
            .params
            .iter_mut()
            .find(|p| p.name == name)
            .ok_or_else(|| VisionError::Invalid(format!("no parameter named {name}")))?;
        if param.value.len() != values.len() {
            return Err(VisionError::Invalid(format!(
                "{name}: {} values, expected {}",
                values.len(),
                param.value.len()
            )));
        }
        param.value.copy_from_slice(values);
        Ok(())
    }

    /// Logits `[batch × classes]` for `images` (`[batch × C·H·W]`, normalised).
    pub fn forward(&mut self, images: &[f32], train: bool) -> &[f32] {
        let batch = images.len() / self.sizes[0].max(1);
        self.activations[0].clear();
        self.activations[0].extend_from_slice(images);
        for index in 0..self.nodes.len() {
            let (before, after) = self.activations.split_at_mut(index + 1);
            let x = &before[index];
            let y = &mut after[0];
            y.resize(batch * self.sizes[index + 1], 0.0);
            match &mut self.nodes[index] {
                Node::Conv(conv) => conv.forward(&self.params, x, y, batch),
                Node::BatchNorm(norm) => norm.forward(&mut self.params, x, y, batch, train),
                Node::Relu => y
                    .par_iter_mut()
                    .zip(x.par_iter())
                    .for_each(|(o, v)| *o = v.max(0.0)),
                Node::MaxPool(pool) => pool.forward(x, y, batch),
                Node::Dropout { rate, mask } => {
                    if train && *rate > 0.0 {
                        let seed =
                            self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.dropout_calls;
                        self.dropout_calls += 1;
                        let mut rng = StdRng::seed_from_u64(seed);
                        let scale = 1.0 / (1.0 - *rate);
                        mask.clear();
                        mask.extend((0..x.len()).map(|_| {
                            if rng.random::<f32>() < *rate {
                                0.0
                            } else {
                                scale
                            }
                        }));
                        for ((o, v), m) in y.iter_mut().zip(x).zip(mask.iter()) {
                            *o = v * m;
                        }
                    } else {
                        mask.clear();
                        y.copy_from_slice(x);
                    }
                }
                Node::Dense(dense) => dense.forward(&self.params, x, y, batch),
            }
        }
        &self.activations[self.nodes.len()]
    }

    /// One step of training on a batch: forward, softmax cross-entropy, backward, and the
    /// optimizer's update with learning rate `rate`.
    pub fn train_step(
        &mut self,
        images: &[f32],
        labels: &[u8],
        optimizer: OptimizerKind,
        rate: f32,
    ) -> StepResult {
        let result = self.compute_gradients(images, labels);
        self.update(optimizer, rate);
        result
    }

    /// Loss and predictions for a batch in inference mode (running batch-norm statistics,
    /// no dropout).
    pub fn score(&mut self, images: &[f32], labels: &[u8]) -> StepResult {
        let classes = self.classes;
        let logits = self.forward(images, false);
        softmax_cross_entropy(logits, labels, classes, None)
    }

    /// Every parameter's current values, by name (a snapshot of the model).
    pub fn values(&self) -> Weights {
        self.params
            .iter()
            .map(|p| (p.name.clone(), p.value.clone()))
            .collect()
    }

    /// Forward and backward: leaves the loss's gradient in every parameter's `grad`.
    fn compute_gradients(&mut self, images: &[f32], labels: &[u8]) -> StepResult {
        let batch = labels.len();
        self.forward(images, true);
        let mut gradient = std::mem::take(&mut self.gradient);
        gradient.resize(batch * self.classes, 0.0);
        let result = softmax_cross_entropy(
            &self.activations[self.nodes.len()],
            labels,
            self.classes,
            Some(&mut gradient),
        );
        for param in &mut self.params {
            param.grad.fill(0.0);
        }
        let mut next = std::mem::take(&mut self.gradient_next);
        for index in (0..self.nodes.len()).rev() {
            next.resize(batch * self.sizes[index], 0.0);
            let x = &self.activations[index];
            let y = &self.activations[index + 1];
            match &mut self.nodes[index] {
                Node::Conv(conv) => conv.backward(&mut self.params, &gradient, &mut next, batch),
                Node::BatchNorm(norm) => {
                    norm.backward(&mut self.params, &gradient, &mut next, batch)
                }
                Node::Relu => next
                    .par_iter_mut()
                    .zip(gradient.par_iter())
                    .zip(y.par_iter())
                    .for_each(|((o, g), v)| *o = if *v > 0.0 { *g } else { 0.0 }),
                Node::MaxPool(pool) => pool.backward(&gradient, &mut next),
                Node::Dropout { mask, .. } => {
                    if mask.is_empty() {
                        next.copy_from_slice(&gradient);
                    } else {
                        for ((o, g), m) in next.iter_mut().zip(&gradient).zip(mask.iter()) {
                            *o = g * m;
                        }
                    }
                }
                Node::Dense(dense) => {
                    dense.backward(&mut self.params, x, &gradient, &mut next, batch)
                }
            }
            std::mem::swap(&mut gradient, &mut next);
        }
        self.gradient = gradient;
        self.gradient_next = next;
        result
    }

    /// candle-nn's AdamW (decoupled weight decay, bias-corrected moments), or SGD with
    /// momentum as `train.rs` did it: `v = μ·v + g; w -= lr·v`.
    fn update(&mut self, optimizer: OptimizerKind, rate: f32) {
        self.steps += 1;
        let (bias1, bias2) = (
            1.0 - ADAM_BETA1.powi(self.steps),
            1.0 - ADAM_BETA2.powi(self.steps),
        );
        for param in &mut self.params {
            if param.name.ends_with("running_mean") || param.name.ends_with("running_var") {
                continue;
            }
            let values = param
                .value
                .par_iter_mut()
                .zip(param.grad.par_iter())
                .zip(param.first.par_iter_mut())
                .zip(param.second.par_iter_mut());
            match optimizer {
                OptimizerKind::Sgd { momentum } => {
                    let momentum = momentum as f32;
                    values.for_each(|(((w, g), v), _)| {
                        *v = *v * momentum + g;
                        *w -= rate * *v;
                    });
                }
                OptimizerKind::Adam | OptimizerKind::AdamW { .. } => {
                    let decay = match optimizer {
                        OptimizerKind::AdamW { weight_decay } => weight_decay as f32,
                        _ => 0.0,
                    };
                    values.for_each(|(((w, g), m), v)| {
                        *m = *m * ADAM_BETA1 + (1.0 - ADAM_BETA1) * g;
                        *v = *v * ADAM_BETA2 + (1.0 - ADAM_BETA2) * g * g;
                        let (m_hat, v_hat) = (*m / bias1, *v / bias2);
                        *w = *w * (1.0 - rate * decay) - rate * m_hat / (v_hat.sqrt() + ADAM_EPS);
                    });
                }
            }
        }
    }
}

/// Mean softmax cross-entropy of `logits` (`[batch × classes]`) against `labels`, the
/// predicted classes, and when asked the loss's gradient with respect to the logits.
fn softmax_cross_entropy(
    logits: &[f32],
    labels: &[u8],
    classes: usize,
    mut gradient: Option<&mut [f32]>,
) -> StepResult {
    let batch = labels.len().max(1);
    let mut loss = 0.0f64;
    let mut predictions = Vec::with_capacity(labels.len());
    for (index, (row, label)) in logits.chunks(classes).zip(labels).enumerate() {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
        let label = usize::from(*label);
        loss += f64::from(sum.ln() + max - row[label]);
        let best = (0..classes).fold(0, |best, c| if row[c] > row[best] { c } else { best });
        predictions.push(best as u8);
        if let Some(gradient) = gradient.as_deref_mut() {
            let grad = &mut gradient[index * classes..][..classes];
            for (g, v) in grad.iter_mut().zip(row) {
                *g = (v - max).exp() / sum / batch as f32;
            }
            grad[label] -= 1.0 / batch as f32;
        }
    }
    StepResult {
        loss: (loss / batch as f64) as f32,
        predictions,
    }
}

/// Per-image output sizes of `nodes`, `[input, node 0, node 1, …]`.
fn rebuild_sizes(nodes: &[Node], input: [usize; 3]) -> Vec<usize> {
    let mut sizes = vec![input.iter().product::<usize>()];
    for node in nodes {
        let previous = *sizes.last().unwrap_or(&0);
        sizes.push(match node {
            Node::Conv(conv) => conv.output.len(),
            Node::MaxPool(pool) => {
                let s = pool.size;
                pool.input.channels * (pool.input.height / s) * (pool.input.width / s)
            }
            Node::Dense(dense) => dense.units,
            Node::BatchNorm(_) | Node::Relu | Node::Dropout { .. } => previous,
        });
    }
    sizes
}

#[cfg(test)]
mod tests;
