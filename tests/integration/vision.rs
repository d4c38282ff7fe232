//! `promptlab vision …` end to end on the real datasets (fetched by
//! scripts/fetch-datasets.sh): training on the 8×8 digits and a slice of MNIST,
//! evaluation, prediction on drawn images, the run store, and bad input.

use std::path::{Path, PathBuf};

use crate::common::{TempProject, promptlab, text};

fn datasets() -> PathBuf {
    std::env::var_os("PROMPTLAB_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/promptlab/datasets")
        })
}

fn dataset_dir(name: &str) -> String {
    let dir = datasets().join(name);
    assert!(
        dir.is_dir(),
        "{} is missing: run scripts/fetch-datasets.sh",
        dir.display()
    );
    dir.display().to_string()
}

fn card(weights: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(weights.with_extension("json")).unwrap()).unwrap()
}

#[test]
fn digits_8x8_train_eval_and_runs() {
    let project = TempProject::new();
    let digits = dataset_dir("digits");
    let out = promptlab(
        &[
            "vision",
            "digits",
            "train",
            "--dataset",
            "digits",
            "--data",
            &digits,
            "--preset",
            "small",
            "--epochs",
            "8",
            "--batch-size",
            "32",
            "--seed",
            "7",
            "-o",
            "models/d8.safetensors",
        ],
        project.root(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let output = text(&out);
    // The per-layer summary and the curves are printed.
    assert!(
        output.contains("dense 10 (classes)") && output.contains("17258"),
        "{output}"
    );
    assert!(
        output.contains("images/s") && output.contains("test accuracy"),
        "{output}"
    );
    let weights = project.root().join("models/d8.safetensors");
    assert!(weights.is_file());
    let card = card(&weights);
    assert_eq!(card["parameters"], 17258);
    assert_eq!(card["epochs"].as_array().unwrap().len(), 8);
    let accuracy = card["test"]["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.85, "test accuracy {accuracy}");

    // The same seed gives the same model.
    let again = promptlab(
        &[
            "vision",
            "digits",
            "train",
            "--dataset",
            "digits",
            "--data",
            &digits,
            "--preset",
            "small",
            "--epochs",
            "8",
            "--batch-size",
            "32",
            "--seed",
            "7",
            "-o",
            "models/again.safetensors",
            "--no-store",
        ],
        project.root(),
    );
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(
        std::fs::read(&weights).unwrap(),
        std::fs::read(project.root().join("models/again.safetensors")).unwrap(),
        "a seeded run is reproducible"
    );

    let eval = promptlab(
        &[
            "vision",
            "digits",
            "eval",
            "--model",
            "models/d8.safetensors",
            "--dataset",
            "digits",
            "--data",
            &digits,
        ],
        project.root(),
    );
    assert!(eval.status.success(), "{}", text(&eval));
    let report = text(&eval);
    assert!(
        report.contains("precision") && report.contains("Confusion matrix"),
        "{report}"
    );
    assert!(report.contains(&format!("{accuracy:.2}")), "{report}");

    let runs = promptlab(&["vision", "runs"], project.root());
    assert!(runs.status.success(), "{}", text(&runs));
    let listing = text(&runs);
    assert!(
        listing.contains("digits") && listing.contains("small") && listing.contains("finished"),
        "{listing}"
    );
}

/// Reads a safetensors file's tensors as raw bytes by name.
fn tensors(path: &Path) -> std::collections::HashMap<String, Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let data = &bytes[8 + header_len..];
    header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| *name != "__metadata__")
        .map(|(name, info)| {
            let offsets = info["data_offsets"].as_array().unwrap();
            let (start, end) = (
                offsets[0].as_u64().unwrap() as usize,
                offsets[1].as_u64().unwrap() as usize,
            );
            (name.clone(), data[start..end].to_vec())
        })
        .collect()
}

fn train_digits(project: &TempProject, digits: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "vision",
        "digits",
        "train",
        "--dataset",
        "digits",
        "--data",
        digits,
        "--batch-size",
        "32",
        "--seed",
        "7",
        "--no-store",
    ];
    args.extend_from_slice(extra);
    let out = promptlab(&args, project.root());
    assert!(out.status.success(), "{}", text(&out));
    text(&out)
}

/// Transfer learning on the 8×8 digits: a run started from another (`--init`) with every
/// layer but the classes frozen keeps those layers byte for byte and, untrained, has the
/// same accuracy; MobileNetV2's ImageNet features (`--backbone`, frozen) train a new head,
/// are computed once and cached, and the saved model scores the same from raw images.
#[test]
fn transfer_learning_from_a_run_and_from_mobilenet() {
    let project = TempProject::new();
    let digits = dataset_dir("digits");
    train_digits(
        &project,
        &digits,
        &[
            "--preset",
            "small",
            "--epochs",
            "4",
            "-o",
            "models/base.safetensors",
        ],
    );
    let base_weights = project.root().join("models/base.safetensors");
    let base_accuracy = card(&base_weights)["test"]["accuracy"].as_f64().unwrap();

    // Learning rate 0: nothing may change, so the accuracy is the base run's.
    train_digits(
        &project,
        &digits,
        &[
            "--init",
            "models/base.safetensors",
            "--epochs",
            "1",
            "--lr",
            "0",
            "-o",
            "models/same.safetensors",
        ],
    );
    let same = card(&project.root().join("models/same.safetensors"));
    assert_eq!(same["test"]["accuracy"].as_f64().unwrap(), base_accuracy);

    // Frozen layers stay byte-identical; the classes layer (l5) trains.
    let output = train_digits(
        &project,
        &digits,
        &[
            "--init",
            "models/base.safetensors",
            "--epochs",
            "2",
            "--lr",
            "0.01",
            "-o",
            "models/head.safetensors",
        ],
    );
    assert!(output.contains("frozen"), "{output}");
    let before = tensors(&base_weights);
    let after = tensors(&project.root().join("models/head.safetensors"));
    for name in ["l0.weight", "l0.bias", "l4.weight", "l4.bias"] {
        assert_eq!(before[name], after[name], "{name} is frozen");
    }
    assert_ne!(
        before["l6.weight"], after["l6.weight"],
        "the classes layer trains"
    );
    let head = card(&project.root().join("models/head.safetensors"));
    assert_eq!(head["config"]["frozen_layers"], 6);

    // MobileNetV2's ImageNet features with a new head.
    let mobilenet = [
        "--backbone",
        "mobilenet_v2",
        "--image-size",
        "32",
        "--epochs",
        "6",
        "--lr",
        "0.003",
        "-o",
        "models/mobile.safetensors",
    ];
    let output = train_digits(&project, &digits, &mobilenet);
    assert!(
        output.contains("inverted residual") && output.contains("frozen"),
        "{output}"
    );
    let weights = project.root().join("models/mobile.safetensors");
    let mobile = card(&weights);
    assert_eq!(mobile["adapt"]["size"], 32);
    assert_eq!(mobile["frozen_parameters"], 2_223_872);
    let accuracy = mobile["test"]["accuracy"].as_f64().unwrap();
    assert!(
        accuracy > 0.6,
        "MobileNetV2 features: test accuracy {accuracy}"
    );

    // Fine-tuning the last two blocks: the first 17 keep ImageNet's weights (as the
    // feature-extraction run has them), the last two train.
    let output = train_digits(
        &project,
        &digits,
        &[
            "--backbone",
            "mobilenet_v2",
            "--image-size",
            "32",
            "--freeze",
            "17",
            "--epochs",
            "2",
            "--lr",
            "0.001",
            "-o",
            "models/tuned.safetensors",
        ],
    );
    assert!(output.contains("trained"), "{output}");
    let blocks = promptlab::vision::mobilenet::mobilenet_v2().blocks;
    let extracted = tensors(&weights);
    let tuned = tensors(&project.root().join("models/tuned.safetensors"));
    let frozen = format!("l{}.weight", blocks[16]);
    let trained = format!("l{}.weight", blocks[17]);
    assert_eq!(
        extracted[&frozen], tuned[&frozen],
        "{frozen} is in a frozen block"
    );
    assert_ne!(
        extracted[&trained], tuned[&trained],
        "{trained} is fine-tuned"
    );
    let tuned_card = card(&project.root().join("models/tuned.safetensors"));
    assert_eq!(tuned_card["config"]["frozen_layers"], blocks[17]);

    // The saved network, run whole on the raw test images, agrees with the accuracy
    // measured from the cached features.
    let eval = promptlab(
        &[
            "vision",
            "digits",
            "eval",
            "--model",
            "models/mobile.safetensors",
            "--dataset",
            "digits",
            "--data",
            &digits,
        ],
        project.root(),
    );
    assert!(eval.status.success(), "{}", text(&eval));
    assert!(
        text(&eval).contains(&format!("{accuracy:.2}")),
        "{}\nexpected accuracy {accuracy:.2}",
        text(&eval)
    );
}

/// A 28×28 MNIST test image drawn 3× larger, dark on white, off-centre: what a user's
/// scan looks like.
fn draw_scan(pixels: &[u8], path: &Path) {
    let mut image = image::GrayImage::from_pixel(120, 100, image::Luma([255]));
    for y in 0..84u32 {
        for x in 0..84u32 {
            let v = pixels[(y / 3 * 28 + x / 3) as usize];
            image.put_pixel(x + 30, y + 8, image::Luma([255 - v]));
        }
    }
    image.save(path).unwrap();
}

#[test]
fn mnist_slice_trains_and_reads_drawn_digits() {
    let project = TempProject::new();
    let mnist = dataset_dir("mnist");
    let out = promptlab(
        &[
            "vision",
            "digits",
            "train",
            "--data",
            &mnist,
            "--limit",
            "3000",
            "--epochs",
            "2",
            "--patience",
            "1",
            "-o",
            "models/digits.safetensors",
        ],
        project.root(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let accuracy = card(&project.root().join("models/digits.safetensors"))["test"]["accuracy"]
        .as_f64()
        .unwrap();
    assert!(
        accuracy > 0.85,
        "test accuracy {accuracy} after 2 epochs on 3,000 images"
    );

    // Ten test images, drawn as scans.
    let images = std::fs::read(Path::new(&mnist).join("t10k-images-idx3-ubyte")).unwrap();
    let labels = std::fs::read(Path::new(&mnist).join("t10k-labels-idx1-ubyte")).unwrap();
    let mut args: Vec<String> = vec![
        "vision".into(),
        "digits".into(),
        "predict".into(),
        "--json".into(),
    ];
    for i in 0..10 {
        let path = project.root().join(format!("scan{i}.png"));
        draw_scan(&images[16 + i * 784..16 + (i + 1) * 784], &path);
        args.push(path.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = promptlab(&args, project.root());
    assert!(out.status.success(), "{}", text(&out));
    let predictions: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let correct = predictions
        .iter()
        .enumerate()
        .filter(|(i, p)| p["label"].as_str() == Some(labels[8 + i].to_string().as_str()))
        .count();
    assert!(
        correct >= 8,
        "{correct}/10 drawn digits read correctly: {predictions:?}"
    );
    let probabilities = predictions[0]["probabilities"].as_object().unwrap();
    let total: f64 = probabilities.values().map(|p| p.as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-3);

    // The shipped vision eval set runs through `promptlab eval` like any other.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        repo.join("prompts/digit-image.yaml"),
        project.root().join("prompts/digit-image.yaml"),
    )
    .unwrap();
    std::fs::copy(
        repo.join("eval-sets/digits-sample.yaml"),
        project.root().join("eval-sets/digits-sample.yaml"),
    )
    .unwrap();
    std::fs::create_dir_all(project.root().join("eval-sets/data/digits")).unwrap();
    std::fs::copy(
        repo.join("eval-sets/data/digits-sample.csv"),
        project.root().join("eval-sets/data/digits-sample.csv"),
    )
    .unwrap();
    for entry in std::fs::read_dir(repo.join("eval-sets/data/digits")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            project
                .root()
                .join("eval-sets/data/digits")
                .join(entry.file_name()),
        )
        .unwrap();
    }
    project.write(
        "models/models.yaml",
        "models:\n  digits:\n    path: digits.safetensors\n    kind: digit-cnn\n",
    );
    let eval = promptlab(
        &["eval", "eval-sets/digits-sample.yaml", "-o", "digits.json"],
        project.root(),
    );
    assert!(matches!(eval.status.code(), Some(0 | 1)), "{}", text(&eval));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.root().join("digits.json")).unwrap())
            .unwrap();
    let cells = report["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 40);
    let passed = cells.iter().filter(|c| c["passed"] == true).count();
    assert!(
        passed >= 32,
        "{passed}/40 held-out digits read correctly:\n{}",
        text(&eval)
    );
    assert!(text(&eval).contains("accuracy"), "{}", text(&eval));
    // Unchanged images and model: every cell from the cache.
    let again = promptlab(&["eval", "eval-sets/digits-sample.yaml"], project.root());
    assert!(
        text(&again).contains("40 from the cache"),
        "{}",
        text(&again)
    );
    // A missing image is named before anything runs.
    std::fs::remove_file(project.root().join("eval-sets/data/digits/t10k-09961.png")).unwrap();
    let missing = promptlab(&["eval", "eval-sets/digits-sample.yaml"], project.root());
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing).contains("t10k-09961.png"),
        "{}",
        text(&missing)
    );
}

#[test]
fn bad_vision_input_is_named_and_exits_2() {
    let project = TempProject::new();
    let digits = dataset_dir("digits");
    // A model to point the other commands at.
    let out = promptlab(
        &[
            "vision",
            "digits",
            "train",
            "--dataset",
            "digits",
            "--data",
            &digits,
            "--preset",
            "mlp",
            "--epochs",
            "1",
            "--no-store",
            "-o",
            "m.safetensors",
        ],
        project.root(),
    );
    assert!(out.status.success(), "{}", text(&out));

    let not_image = project.write("notes.png", "hello");
    let out = promptlab(
        &[
            "vision",
            "digits",
            "predict",
            "--model",
            "m.safetensors",
            not_image.to_str().unwrap(),
        ],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("notes.png") && text(&out).contains("not a readable image"),
        "{}",
        text(&out)
    );

    // Weights from another architecture under this card.
    let other = promptlab(
        &[
            "vision",
            "digits",
            "train",
            "--dataset",
            "digits",
            "--data",
            &digits,
            "--preset",
            "small",
            "--epochs",
            "1",
            "--no-store",
            "-o",
            "other.safetensors",
        ],
        project.root(),
    );
    assert!(other.status.success(), "{}", text(&other));
    std::fs::copy(
        project.root().join("other.safetensors"),
        project.root().join("m.safetensors"),
    )
    .unwrap();
    let out = promptlab(
        &[
            "vision",
            "digits",
            "eval",
            "--model",
            "m.safetensors",
            "--dataset",
            "digits",
            "--data",
            &digits,
        ],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("do not match the architecture"),
        "{}",
        text(&out)
    );

    // A truncated dataset file.
    let broken = project.root().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    for name in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        std::fs::write(broken.join(name), [0u8, 0, 8, 3, 0, 0, 0, 9]).unwrap();
    }
    let out = promptlab(
        &[
            "vision",
            "digits",
            "train",
            "--data",
            broken.to_str().unwrap(),
            "--no-store",
        ],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("train-images-idx3-ubyte") && text(&out).contains("IDX"),
        "{}",
        text(&out)
    );

    let out = promptlab(
        &[
            "vision",
            "digits",
            "train",
            "--dataset",
            "digits",
            "--data",
            &digits,
            "--layers",
            "conv8,relu",
        ],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("--layers") && text(&out).contains("conv32k3"),
        "{}",
        text(&out)
    );
}
