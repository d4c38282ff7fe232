//! The hand-written network against candle's model and autograd: same weights, same batch,
//! same dropout masks, so outputs, gradients and the optimizer's update must agree.

use candle_core::{DType, Device, Tensor};
use candle_nn::{Optimizer, VarBuilder, VarMap};

use super::super::cnn::{DigitCnn, Layer, parse_layers, preset};
use super::*;

fn close(what: &str, ours: &[f32], reference: &[f32], tolerance: f32) {
    assert_eq!(ours.len(), reference.len(), "{what}: length");
    let scale = reference.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    let worst = ours
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= tolerance * scale,
        "{what}: differs by {worst} (largest value {scale})"
    );
}

fn values(tensor: &Tensor) -> Vec<f32> {
    tensor.flatten_all().unwrap().to_vec1().unwrap()
}

/// One training step of `layers` through both implementations, then an Adam step.
fn agrees_with_candle(layers: &[Layer], input: [usize; 3], batch: usize) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let (mut model, _) = DigitCnn::new(layers, input, 10, vb).unwrap();
    model.set_seed(7);
    let mut network = Network::new(layers, input, 10, 7).unwrap();
    let vars: Vec<(String, candle_core::Var)> = {
        let data = varmap.data().lock().unwrap();
        data.iter().map(|(n, v)| (n.clone(), v.clone())).collect()
    };
    // Batch-norm scales away from 1 so their gradients matter.
    for (name, var) in &vars {
        if name.ends_with("weight") && var.rank() == 1 {
            let shape = var.shape().clone();
            var.set(&Tensor::rand(0.5f32, 1.5, shape, &Device::Cpu).unwrap())
                .unwrap();
        }
        network.set(name, &values(var.as_tensor())).unwrap();
    }
    assert_eq!(network.params.len(), vars.len(), "the same parameters");

    let [c, h, w] = input;
    let x = Tensor::randn(0f32, 1.0, (batch, c, h, w), &Device::Cpu).unwrap();
    let labels: Vec<u8> = (0..batch).map(|i| (i * 7 % 10) as u8).collect();
    let y = Tensor::from_vec(
        labels.iter().map(|&l| u32::from(l)).collect::<Vec<_>>(),
        batch,
        &Device::Cpu,
    )
    .unwrap();

    let logits = model.forward(&x, true).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
    let grads = loss.backward().unwrap();
    let step = network.compute_gradients(&values(&x), &labels);
    close(
        "logits",
        &network.activations[network.nodes.len()],
        &values(&logits),
        1e-4,
    );
    close(
        "loss",
        &[step.loss],
        &[loss.to_scalar::<f32>().unwrap()],
        1e-5,
    );
    for param in &network.params {
        let (_, var) = vars.iter().find(|(n, _)| *n == param.name).unwrap();
        match grads.get(var.as_tensor()) {
            Some(grad) => close(&param.name, &param.grad, &values(grad), 1e-3),
            // Running statistics: updated by the forward pass, not trained.
            None => close(&param.name, &param.value, &values(var.as_tensor()), 1e-5),
        }
    }

    let mut adam = candle_nn::AdamW::new(
        vars.iter().map(|(_, v)| v.clone()).collect(),
        candle_nn::ParamsAdamW {
            lr: 1e-2,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    adam.step(&grads).unwrap();
    // The same gradients on both sides: a conv bias before batch norm has a gradient of
    // rounding noise only, whose sign Adam's normalisation turns into a full step.
    for param in &mut network.params {
        let (_, var) = vars.iter().find(|(n, _)| *n == param.name).unwrap();
        if let Some(grad) = grads.get(var.as_tensor()) {
            param.grad = values(grad);
        }
    }
    network.update(OptimizerKind::Adam, 1e-2);
    for param in &network.params {
        let (_, var) = vars.iter().find(|(n, _)| *n == param.name).unwrap();
        close(
            &format!("{} after Adam", param.name),
            &param.value,
            &values(var.as_tensor()),
            1e-4,
        );
    }
}

#[test]
fn the_mnist_preset_computes_what_candle_computes() {
    agrees_with_candle(&preset("mnist").unwrap(), [1, 28, 28], 16);
}

#[test]
fn padded_convolutions_and_plain_relu_compute_what_candle_computes() {
    agrees_with_candle(&preset("lenet5").unwrap(), [1, 28, 28], 8);
    agrees_with_candle(&preset("small").unwrap(), [1, 8, 8], 8);
}

#[test]
fn batch_norm_on_dense_features_and_odd_pools_compute_what_candle_computes() {
    let layers =
        parse_layers("conv8k3p1,relu,pool3,conv4k2,bn,flatten,dense16,bn,relu,drop0.3").unwrap();
    agrees_with_candle(&layers, [1, 13, 11], 5);
}

#[test]
fn sgd_with_momentum_follows_its_formula() {
    let mut network = Network::new(&[], [1, 2, 2], 3, 0).unwrap();
    let weights: Vec<f32> = (0..12).map(|i| i as f32 / 10.0).collect();
    network.set("l0.weight", &weights).unwrap();
    let images = [0.5f32, -1.0, 2.0, 0.0];
    network.compute_gradients(&images, &[1]);
    let grad = network.params[0].grad.clone();
    network.update(OptimizerKind::Sgd { momentum: 0.9 }, 0.1);
    network.compute_gradients(&images, &[1]);
    let grad2 = network.params[0].grad.clone();
    let before: Vec<f32> = network.params[0].value.clone();
    network.update(OptimizerKind::Sgd { momentum: 0.9 }, 0.1);
    for i in 0..12 {
        let velocity = 0.9 * grad[i] + grad2[i];
        let expected = before[i] - 0.1 * velocity;
        assert!((network.params[0].value[i] - expected).abs() < 1e-6);
    }
}

#[test]
fn a_parameter_of_the_wrong_size_or_name_is_refused() {
    let mut network = Network::new(&preset("mnist").unwrap(), [1, 28, 28], 10, 0).unwrap();
    let error = network.set("l0.weight", &[0.0; 3]).unwrap_err().to_string();
    assert!(
        error.contains("l0.weight: 3 values, expected 288"),
        "{error}"
    );
    assert!(network.set("l99.bias", &[0.0]).is_err());
}
