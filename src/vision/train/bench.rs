//! Where the digit CNN's time goes: a training step and an inference batch of the `mnist`
//! preset on random images (run by hand, ignored in the test suite). The end-to-end figure
//! against PyTorch is `promptlab vision digits train` beside `benches/digits_torch.py`.

use super::*;

/// `cargo test --release --lib bench_network_step -- --ignored --nocapture`
#[test]
#[ignore]
fn bench_network_step() {
    use rand::Rng;
    let layers = super::super::cnn::preset("mnist").unwrap();
    let (mut network, _) = Network::new(&layers, [1, 28, 28], 10, 1).unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    network.initialise(&mut rng);
    let pixels: Vec<f32> = (0..256 * 784)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let labels: Vec<u8> = (0..256usize).map(|i| (i % 10) as u8).collect();
    let time = |f: &mut dyn FnMut()| {
        f();
        let t = Instant::now();
        for _ in 0..30 {
            f();
        }
        t.elapsed().as_secs_f64() * 1000.0 / 30.0
    };
    let train = time(&mut || {
        network.train_step(
            &pixels[..64 * 784],
            &labels[..64],
            OptimizerKind::Adam,
            1e-3,
        );
    });
    let infer = time(&mut || {
        network.score(&pixels, &labels);
    });
    println!(
        "training step, batch of 64 (forward+backward+Adam): {train:.2} ms ({:.0} images/s); \
         inference, batch of 256: {infer:.2} ms ({:.0} images/s)",
        64_000.0 / train,
        256_000.0 / infer
    );
}
