//! The digit CNN itself, for training and for inference: forward and backward passes
//! written out by hand over flat NCHW buffers, the matrix products done by `gemm`, the
//! images of a batch split across threads, every buffer kept from one batch to the next.
//! It replaced a candle graph: candle's autograd allocates, walks and zero-fills a fresh
//! tensor for every operation and every gradient, which on two cores made a training step
//! three times slower than PyTorch's.
//!
//! The tests check the loss, every gradient, the batch-norm statistics and the optimizer
//! step against PyTorch's on fixed weights and batches (`tests/fixtures/cnn-gradients.json`,
//! written by `scripts/cnn_gradients_fixture.py`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use super::VisionError;
use super::train::OptimizerKind;

mod build;
mod layers;

use layers::{BatchNorm, Conv, Dense, Depthwise, GlobalAveragePool, MaxPool};

const BATCH_NORM_EPS: f32 = 1e-5;
const BATCH_NORM_MOMENTUM: f32 = 0.1;
const ADAM_BETA1: f32 = 0.9;
const ADAM_BETA2: f32 = 0.999;
const ADAM_EPS: f32 = 1e-8;

/// A trainable tensor with its gradient and optimizer state, named as in the safetensors
/// file (`l0.weight`, …).
pub struct Param {
    pub name: String,
    /// PyTorch's shape: `[out, in, k, k]` for a convolution, `[out, in]` for a dense layer.
    pub shape: Vec<usize>,
    pub value: Vec<f32>,
    grad: Vec<f32>,
    /// Adam's first moment, or SGD's velocity.
    first: Vec<f32>,
    second: Vec<f32>,
    /// Left as it is by training (a frozen layer's).
    pub frozen: bool,
}

impl Param {
    fn new(name: String, shape: Vec<usize>, fill: f32) -> Param {
        let len = shape.iter().product();
        Param {
            name,
            shape,
            value: vec![fill; len],
            grad: vec![0.0; len],
            first: vec![0.0; len],
            second: vec![0.0; len],
            frozen: false,
        }
    }
}

enum Node {
    Conv(Conv),
    Depthwise(Depthwise),
    BatchNorm(BatchNorm),
    Relu,
    Relu6,
    /// Adds `activations[from]` (an earlier node's input) to this node's input.
    Residual {
        from: usize,
    },
    MaxPool(MaxPool),
    GlobalAveragePool(GlobalAveragePool),
    Dropout {
        rate: f32,
        mask: Vec<f32>,
    },
    Dense(Dense),
}

impl Node {
    /// Indexes of the node's parameters.
    fn params(&self) -> Vec<usize> {
        match self {
            Node::Conv(conv) => [Some(conv.weight), conv.bias]
                .into_iter()
                .flatten()
                .collect(),
            Node::Depthwise(conv) => vec![conv.weight],
            Node::BatchNorm(norm) => {
                vec![norm.weight, norm.bias, norm.running_mean, norm.running_var]
            }
            Node::Dense(dense) => vec![dense.weight, dense.bias],
            _ => Vec::new(),
        }
    }
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

/// The digit CNN built from a layer list ([`Network::new`]), with the buffers of its last
/// batch: a training step ([`Network::train_step`]) and inference ([`Network::score`],
/// [`Network::probabilities`]) run the same layers.
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
    /// Nodes before this one are frozen: run in inference mode, their parameters kept.
    frozen: usize,
    /// Each layer's first node (a flatten has none: it is the next layer's).
    layer_nodes: Vec<usize>,
}

impl Network {
    /// Freezes the first `layers` layers: training runs them in inference mode (batch
    /// norm with its running statistics, as Keras does for frozen layers), leaves their
    /// parameters untouched and does not compute their gradients.
    pub fn freeze(&mut self, layers: usize) {
        self.frozen = self.node_of_layer(layers);
        for index in 0..self.nodes.len() {
            let frozen = index < self.frozen;
            for param in self.nodes[index].params() {
                self.params[param].frozen = frozen;
            }
        }
    }

    /// The node that layer `layer`'s input enters (the number of nodes for the end).
    fn node_of_layer(&self, layer: usize) -> usize {
        self.layer_nodes
            .get(layer)
            .copied()
            .unwrap_or(self.nodes.len())
    }

    /// Values per image entering layer `layer` (the frozen part's output when `layer` is
    /// the number of frozen layers).
    pub fn size_at_layer(&self, layer: usize) -> usize {
        self.sizes[self.node_of_layer(layer)]
    }

    /// The input of layer `layer` for `images`, in inference mode: what the frozen layers
    /// before it make of the images, which training can then start from
    /// ([`Network::train_step_from`]).
    pub fn features(&mut self, images: &[f32], layer: usize) -> Vec<f32> {
        let end = self.node_of_layer(layer);
        self.run(images, 0, end, false);
        self.activations[end].clone()
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
        self.run(images, 0, self.nodes.len(), train);
        &self.activations[self.nodes.len()]
    }

    /// Runs nodes `start..end` on `input` (what enters node `start`), frozen nodes in
    /// inference mode whatever `train` says.
    fn run(&mut self, input: &[f32], start: usize, end: usize, train: bool) {
        let batch = input.len() / self.sizes[start].max(1);
        self.activations[start].clear();
        self.activations[start].extend_from_slice(input);
        for index in start..end {
            let train = train && index >= self.frozen;
            let (before, after) = self.activations.split_at_mut(index + 1);
            let x = &before[index];
            let y = &mut after[0];
            y.resize(batch * self.sizes[index + 1], 0.0);
            match &mut self.nodes[index] {
                Node::Conv(conv) => conv.forward(&self.params, x, y, batch),
                Node::Depthwise(conv) => conv.forward(&self.params, x, y),
                Node::BatchNorm(norm) => norm.forward(&mut self.params, x, y, batch, train),
                Node::Relu => y
                    .par_iter_mut()
                    .zip(x.par_iter())
                    .for_each(|(o, v)| *o = v.max(0.0)),
                Node::Relu6 => y
                    .par_iter_mut()
                    .zip(x.par_iter())
                    .for_each(|(o, v)| *o = v.clamp(0.0, 6.0)),
                Node::Residual { from } => y
                    .par_iter_mut()
                    .zip(x.par_iter())
                    .zip(before[*from].par_iter())
                    .for_each(|((o, a), b)| *o = a + b),
                Node::MaxPool(pool) => pool.forward(x, y, batch),
                Node::GlobalAveragePool(pool) => pool.forward(x, y),
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
        let result = self.compute_gradients(images, labels, 0);
        self.update(optimizer, rate);
        result
    }

    /// A training step on `features`, the input of layer `layer` as
    /// [`Network::features`] computed it: the layers before it must be frozen.
    pub fn train_step_from(
        &mut self,
        features: &[f32],
        layer: usize,
        labels: &[u8],
        optimizer: OptimizerKind,
        rate: f32,
    ) -> StepResult {
        let start = self.node_of_layer(layer).min(self.frozen);
        let result = self.compute_gradients(features, labels, start);
        self.update(optimizer, rate);
        result
    }

    /// Loss and predictions from `features` (the input of layer `layer`), in inference
    /// mode.
    pub fn score_from(&mut self, features: &[f32], layer: usize, labels: &[u8]) -> StepResult {
        let start = self.node_of_layer(layer);
        self.run(features, start, self.nodes.len(), false);
        softmax_cross_entropy(
            &self.activations[self.nodes.len()],
            labels,
            self.classes,
            None,
        )
    }

    /// Loss and predictions for a batch in inference mode (running batch-norm statistics,
    /// no dropout).
    pub fn score(&mut self, images: &[f32], labels: &[u8]) -> StepResult {
        let classes = self.classes;
        let logits = self.forward(images, false);
        softmax_cross_entropy(logits, labels, classes, None)
    }

    /// Class probabilities `[batch × classes]` for `images`, in inference mode.
    pub fn probabilities(&mut self, images: &[f32]) -> Vec<f32> {
        let classes = self.classes;
        let mut probabilities = self.forward(images, false).to_vec();
        for row in probabilities.chunks_mut(classes) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for v in row.iter_mut() {
                *v = (*v - max).exp();
                sum += *v;
            }
            for v in row.iter_mut() {
                *v /= sum;
            }
        }
        probabilities
    }

    /// Every parameter's current values, by name (a snapshot of the model).
    pub fn values(&self) -> Weights {
        self.params
            .iter()
            .map(|p| (p.name.clone(), p.value.clone()))
            .collect()
    }

    /// Copies in every parameter of `other` that this network has under the same name
    /// and shape (another run's weights to start from); returns how many.
    pub fn copy_matching(&mut self, other: &Network) -> usize {
        let mut copied = 0;
        for param in &mut self.params {
            if let Some(source) = other
                .params
                .iter()
                .find(|p| p.name == param.name && p.shape == param.shape)
            {
                param.value.copy_from_slice(&source.value);
                copied += 1;
            }
        }
        copied
    }

    /// Puts back a snapshot taken with [`Network::values`].
    pub fn restore(&mut self, weights: &Weights) -> Result<(), VisionError> {
        for (name, values) in weights {
            self.set(name, values)?;
        }
        Ok(())
    }

    /// Forward from node `start` (whose input is `input`) and backward down to the first
    /// unfrozen node: leaves the loss's gradient in every trainable parameter's `grad`.
    fn compute_gradients(&mut self, input: &[f32], labels: &[u8], start: usize) -> StepResult {
        let batch = labels.len();
        self.run(input, start, self.nodes.len(), true);
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
        // Gradients a residual sends to an earlier node's input, added when backward
        // reaches that node.
        let mut skipped: Vec<(usize, Vec<f32>)> = Vec::new();
        let first = self.frozen.max(start);
        for index in (first..self.nodes.len()).rev() {
            next.resize(batch * self.sizes[index], 0.0);
            let x = &self.activations[index];
            let y = &self.activations[index + 1];
            match &mut self.nodes[index] {
                Node::Conv(conv) => conv.backward(&mut self.params, &gradient, &mut next, batch),
                Node::Depthwise(conv) => {
                    conv.backward(&mut self.params, x, &gradient, &mut next, batch)
                }
                Node::Relu6 => next
                    .par_iter_mut()
                    .zip(gradient.par_iter())
                    .zip(x.par_iter())
                    .for_each(|((o, g), v)| *o = if *v > 0.0 && *v < 6.0 { *g } else { 0.0 }),
                Node::Residual { from } => {
                    next.copy_from_slice(&gradient);
                    skipped.push((*from, gradient.clone()));
                }
                Node::GlobalAveragePool(pool) => pool.backward(&gradient, &mut next),
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
            while let Some(at) = skipped.iter().position(|(from, _)| *from == index) {
                let (_, part) = skipped.swap_remove(at);
                layers::add_into(&mut next, &part);
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
            if param.frozen
                || param.name.ends_with("running_mean")
                || param.name.ends_with("running_var")
            {
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
            Node::Depthwise(conv) => conv.output.len(),
            Node::GlobalAveragePool(pool) => pool.input.channels,
            Node::MaxPool(pool) => {
                let s = pool.size;
                pool.input.channels * (pool.input.height / s) * (pool.input.width / s)
            }
            Node::Dense(dense) => dense.units,
            Node::BatchNorm(_)
            | Node::Relu
            | Node::Relu6
            | Node::Residual { .. }
            | Node::Dropout { .. } => previous,
        });
    }
    sizes
}

#[cfg(test)]
mod tests;
