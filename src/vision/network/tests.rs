//! The network against independent references: PyTorch's logits, loss, gradients,
//! batch-norm statistics and optimizer step on fixed weights and batches (the fixture
//! `scripts/cnn_gradients_fixture.py` writes), finite differences for dropout, and the
//! formulas for SGD with momentum.

use serde_json::Value;

use super::super::cnn::{Layer, parse_layers, preset};
use super::*;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/cnn-gradients.json"
);

fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .expect("an array of numbers")
        .iter()
        .map(|v| v.as_f64().expect("a number") as f32)
        .collect()
}

/// The largest difference between `ours` and `reference`, relative to the reference's
/// largest magnitude (or 1e-2, for gradients that are zero in exact arithmetic: a conv
/// bias before batch norm, whose float32 gradient is rounding noise).
fn relative_error(what: &str, ours: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(ours.len(), reference.len(), "{what}: length");
    let scale = reference.iter().fold(1e-2f32, |m, v| m.max(v.abs()));
    ours.iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs() / scale)
        .fold(0.0, f32::max)
}

/// Runs every fixture case; returns the largest relative error of any gradient.
fn check_against_pytorch(tolerance: f32) -> f32 {
    let text = std::fs::read_to_string(FIXTURE).expect("the fixture is committed");
    let fixture: Value = serde_json::from_str(&text).expect("valid JSON");
    let mut worst_gradient = 0.0f32;
    for case in fixture["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().unwrap_or("?");
        let layers = parse_layers(case["layers"].as_str().expect("layers")).unwrap();
        let input: Vec<usize> = serde_json::from_value(case["input"].clone()).unwrap();
        let classes = case["classes"].as_u64().unwrap() as usize;
        let (mut network, _) =
            Network::new(&layers, [input[0], input[1], input[2]], classes, 0).unwrap();
        let weights = case["weights"].as_object().unwrap();
        assert_eq!(network.params.len(), weights.len(), "{name}: parameters");
        for (param, values) in weights {
            network.set(param, &floats(values)).unwrap();
        }
        let labels: Vec<u8> = serde_json::from_value(case["labels"].clone()).unwrap();
        let step = network.compute_gradients(&floats(&case["images"]), &labels, 0);

        let check = |what: String, ours: &[f32], reference: &[f32]| {
            let error = relative_error(&what, ours, reference);
            assert!(
                error <= tolerance,
                "{name}: {what} differs from PyTorch's by {error:.2e} (relative)"
            );
            error
        };
        check(
            "the logits".into(),
            &network.activations[network.nodes.len()],
            &floats(&case["logits"]),
        );
        let loss = case["loss"].as_f64().unwrap() as f32;
        check("the loss".into(), &[step.loss], &[loss]);
        let gradients = case["gradients"].as_object().unwrap();
        let running = case["running_after_forward"].as_object().unwrap();
        for param in &network.params {
            if let Some(reference) = gradients.get(&param.name) {
                let error = check(
                    format!("the gradient of {}", param.name),
                    &param.grad,
                    &floats(reference),
                );
                worst_gradient = worst_gradient.max(error);
            } else {
                let reference = running.get(&param.name).expect("a running statistic");
                check(
                    format!("{} after the forward pass", param.name),
                    &param.value,
                    &floats(reference),
                );
            }
        }
        assert_eq!(gradients.len() + running.len(), network.params.len());

        // One optimizer step on PyTorch's own gradients: a conv bias before batch norm has
        // a gradient of rounding noise only, whose sign Adam's normalisation turns into a
        // full step, so the step is checked on the same gradients.
        for param in &mut network.params {
            if let Some(reference) = gradients.get(&param.name) {
                param.grad = floats(reference);
            }
        }
        let optimizer = &case["optimizer"];
        let rate = optimizer["lr"].as_f64().unwrap() as f32;
        let kind = match optimizer["name"].as_str() {
            Some("adam") => OptimizerKind::Adam,
            Some("adamw") => OptimizerKind::AdamW {
                weight_decay: optimizer["weight_decay"].as_f64().unwrap(),
            },
            other => panic!("{name}: optimizer {other:?}"),
        };
        network.update(kind, rate);
        let after = case["after_step"].as_object().unwrap();
        for param in &network.params {
            if let Some(reference) = after.get(&param.name) {
                check(
                    format!("{} after one step", param.name),
                    &param.value,
                    &floats(reference),
                );
            }
        }
    }
    worst_gradient
}

#[test]
fn loss_gradients_statistics_and_optimizer_steps_match_pytorch() {
    let worst = check_against_pytorch(1e-4);
    println!("largest relative gradient error against PyTorch: {worst:.2e}");
}

/// Dropout's mask cannot come from PyTorch, so its backward pass is checked against the
/// derivative of our own forward pass with the same mask: finite differences.
#[test]
fn dropout_routes_gradients_through_the_mask_it_applied() {
    let layers = parse_layers("dense6,drop0.5").unwrap();
    let (mut network, _) = Network::new(&layers, [1, 2, 3], 4, 11).unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    network.initialise(&mut rng);
    let images: Vec<f32> = (0..5 * 6)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0)
        .collect();
    let labels = [0u8, 1, 2, 3, 1];
    network.dropout_calls = 0;
    network.compute_gradients(&images, &labels, 0);
    let Node::Dropout { mask, .. } = &network.nodes[1] else {
        panic!("the second node is the dropout");
    };
    assert!(mask.iter().all(|m| *m == 0.0 || *m == 2.0));
    assert!(mask.contains(&0.0) && mask.contains(&2.0), "{mask:?}");
    let analytic = network.params[0].grad.clone();

    let loss = |network: &mut Network| {
        network.dropout_calls = 0;
        let logits = network.forward(&images, true).to_vec();
        softmax_cross_entropy(&logits, &labels, 4, None).loss
    };
    let h = 1e-2;
    for (i, &expected) in analytic.iter().enumerate() {
        let value = network.params[0].value[i];
        network.params[0].value[i] = value + h;
        let up = loss(&mut network);
        network.params[0].value[i] = value - h;
        let down = loss(&mut network);
        network.params[0].value[i] = value;
        let numeric = (up - down) / (2.0 * h);
        assert!(
            (numeric - expected).abs() < 2e-3,
            "l0.weight[{i}]: backward {expected} against finite differences {numeric}"
        );
    }
}

#[test]
fn sgd_with_momentum_follows_its_formula() {
    let (mut network, _) = Network::new(&[], [1, 2, 2], 3, 0).unwrap();
    let weights: Vec<f32> = (0..12).map(|i| i as f32 / 10.0).collect();
    network.set("l0.weight", &weights).unwrap();
    let images = [0.5f32, -1.0, 2.0, 0.0];
    network.compute_gradients(&images, &[1], 0);
    let grad = network.params[0].grad.clone();
    network.update(OptimizerKind::Sgd { momentum: 0.9 }, 0.1);
    network.compute_gradients(&images, &[1], 0);
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
    let (mut network, _) = Network::new(&preset("mnist").unwrap(), [1, 28, 28], 10, 0).unwrap();
    let error = network.set("l0.weight", &[0.0; 3]).unwrap_err().to_string();
    assert!(
        error.contains("l0.weight: 3 values, expected 288"),
        "{error}"
    );
    assert!(network.set("l99.bias", &[0.0]).is_err());
}

#[test]
fn the_mnist_preset_has_the_expected_shapes_and_parameter_count() {
    let (mut network, infos) = Network::new(&preset("mnist").unwrap(), [1, 28, 28], 10, 0).unwrap();
    let shapes: Vec<&[usize]> = infos.iter().map(|i| i.output.as_slice()).collect();
    assert_eq!(shapes[0], [32, 26, 26]);
    assert_eq!(shapes[3], [32, 13, 13]);
    assert_eq!(shapes[7], [64, 5, 5]);
    assert_eq!(shapes[8], [1600]);
    // conv 320 + bn 64 + conv 18,496 + bn 128 + dense 204,928 + head 1,290
    assert_eq!(infos.iter().map(|i| i.params).sum::<usize>(), 225_226);
    let trainable: usize = network
        .params
        .iter()
        .filter(|p| !p.name.contains("running"))
        .map(|p| p.value.len())
        .sum();
    assert_eq!(trainable, 225_226);
    let shape_of = |name: &str| {
        network
            .params
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.shape.clone())
    };
    assert_eq!(shape_of("l4.weight"), Some(vec![64, 32, 3, 3]));
    assert_eq!(shape_of("l10.weight"), Some(vec![128, 1600]));
    assert_eq!(shape_of("l5.running_var"), Some(vec![64]));
    let probabilities = network.probabilities(&vec![0.0; 3 * 784]);
    assert_eq!(probabilities.len(), 3 * 10);
    let total: f32 = probabilities[..10].iter().sum();
    assert!((total - 1.0).abs() < 1e-5);
}

#[test]
fn an_architecture_that_shrinks_the_image_away_is_refused() {
    let layers = parse_layers("pool2,pool2,pool2,conv8k3").unwrap();
    let err = Network::new(&layers, [1, 8, 8], 10, 0)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("layer 4") && err.contains("larger than the 1×1"),
        "{err}"
    );
    let flat = [Layer::Flatten, Layer::MaxPool { size: 2 }];
    let err = Network::new(&flat, [1, 8, 8], 10, 0)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("layer 2") && err.contains("pooling needs an image"));
}

#[test]
fn the_same_seed_draws_the_same_weights_in_pytorchs_ranges() {
    let layers = preset("small").unwrap();
    let draw = |seed| {
        let (mut network, _) = Network::new(&layers, [1, 8, 8], 10, 0).unwrap();
        network.initialise(&mut StdRng::seed_from_u64(seed));
        network.values()
    };
    assert_eq!(draw(5), draw(5));
    assert_ne!(draw(5), draw(6));
    for (name, values) in draw(5) {
        // The conv: fan-in 1·3·3; the dense layers: 16·4·4 and 64.
        let bound = match name.as_str() {
            "l0.weight" | "l0.bias" => 1.0 / 3.0,
            "l4.weight" | "l4.bias" => 1.0 / 16.0,
            "l6.weight" | "l6.bias" => 1.0 / 8.0,
            other => panic!("unexpected parameter {other}"),
        };
        assert!(values.iter().all(|v| v.abs() <= bound), "{name}");
        assert!(values.iter().any(|v| v.abs() > bound / 2.0), "{name}");
    }
}
