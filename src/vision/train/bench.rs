//! Where a training step's time goes: the hand-written network against candle's autograd
//! on the `mnist` preset (run by hand, ignored in the test suite).

use super::*;

/// A training step of the `mnist` preset, the hand-written network against candle's
/// autograd (`cargo test --release --lib bench_training_step -- --ignored --nocapture`).
#[test]
#[ignore]
fn bench_training_step() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let layers = super::super::cnn::preset("mnist").unwrap();
    let (model, _) = DigitCnn::new(&layers, [1, 28, 28], 10, vb).unwrap();
    let mut network = Network::new(&layers, [1, 28, 28], 10, 1).unwrap();
    for (name, values) in varmap_values(&varmap).unwrap() {
        network.set(&name, &values).unwrap();
    }
    let x = Tensor::randn(0f32, 1.0, (64, 1, 28, 28), &Device::Cpu).unwrap();
    let labels: Vec<u8> = (0..64u8).map(|i| i % 10).collect();
    let y = Tensor::from_vec(
        labels.iter().map(|&l| u32::from(l)).collect::<Vec<_>>(),
        64,
        &Device::Cpu,
    )
    .unwrap();
    let pixels: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    let time = |f: &mut dyn FnMut()| {
        f();
        let t = Instant::now();
        for _ in 0..30 {
            f();
        }
        t.elapsed().as_secs_f64() * 1000.0 / 30.0
    };
    let candle = time(&mut || {
        let logits = model.forward(&x, true).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
        loss.backward().unwrap();
    });
    let native = time(&mut || {
        network.train_step(&pixels, &labels, OptimizerKind::Adam, 1e-3);
    });
    println!(
        "per batch of 64: candle forward+backward {candle:.2} ms, \
         backprop.rs forward+backward+Adam {native:.2} ms ({:.0} images/s)",
        64_000.0 / native
    );
}
