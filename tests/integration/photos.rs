//! Photos end to end: `promptlab vision detect` against onnxruntime's boxes, its filters
//! and bad input; `vision classify` against the reference CLIP; and the shipped
//! people-detection eval set through `promptlab eval` (assets from scripts/fetch-vision.sh).

use std::path::Path;
use std::process::Output;

use crate::common::{TempProject, promptlab, text, vision_asset};

fn iou(a: &[f64], b: &[f64]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}

fn boxes(value: &serde_json::Value) -> Vec<Vec<f64>> {
    value["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d["bbox"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn detection_on_bus_jpg_matches_onnxruntime_and_honours_the_filters() {
    let project = TempProject::new();
    let model = vision_asset("models/person-fall-yolov8.onnx");
    let bus = vision_asset("photos/bus.jpg");
    let detect = |extra: &[&str]| {
        let mut args = vec![
            "vision",
            "detect",
            &bus,
            "--model",
            &model,
            "--threads",
            "2",
        ];
        args.extend_from_slice(extra);
        promptlab(&args, project.root())
    };
    let out = detect(&["-o", "boxes.json", "--annotate", "bus.png"]);
    assert!(out.status.success(), "{}", text(&out));
    let ours: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.root().join("boxes.json")).unwrap())
            .unwrap();
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/detect/bus-reference.json")).unwrap();
    let (ours_boxes, reference_boxes) = (boxes(&ours), boxes(&reference));
    assert_eq!(ours_boxes.len(), reference_boxes.len(), "{}", text(&out));
    for r in &reference_boxes {
        let best = ours_boxes.iter().map(|o| iou(o, r)).fold(0.0, f64::max);
        assert!(best >= 0.95, "reference box {r:?} matched at IoU {best:.3}");
    }
    assert_eq!(ours["detections"][0]["label"], "Normal");
    let annotated = image::open(project.root().join("bus.png")).unwrap();
    assert_eq!((annotated.width(), annotated.height()), (810, 1080));

    // The user's filters.
    let count = |out: &Output| {
        text(out)
            .lines()
            .filter(|l| l.starts_with("Normal") || l.starts_with("Fall"))
            .count()
    };
    assert_eq!(count(&detect(&["--max-per-class", "2"])), 2);
    assert_eq!(count(&detect(&["--min-conf", "0.65"])), 1);
    let falls = detect(&["--classes", "Fall"]);
    assert!(
        falls.status.success() && count(&falls) == 0,
        "{}",
        text(&falls)
    );
    let unknown = detect(&["--classes", "person"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        text(&unknown).contains("unknown class `person`")
            && text(&unknown).contains("Normal, Fall"),
        "{}",
        text(&unknown)
    );
}

#[test]
fn detection_bad_input_is_named_and_exits_2() {
    let project = TempProject::new();
    let model = vision_asset("models/person-fall-yolov8.onnx");
    let bus = vision_asset("photos/bus.jpg");
    let fake = project.write("fake.onnx", "not a model");
    let out = promptlab(
        &["vision", "detect", &bus, "--model", fake.to_str().unwrap()],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("fake.onnx") && text(&out).contains("not a usable ONNX model"),
        "{}",
        text(&out)
    );

    let photo = project.write("photo.jpg", "not a jpeg");
    let out = promptlab(
        &[
            "vision",
            "detect",
            photo.to_str().unwrap(),
            "--model",
            &model,
        ],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("photo.jpg") && text(&out).contains("not a readable image"),
        "{}",
        text(&out)
    );

    // Without ONNX Runtime: a clear error with how to install it, no panic.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_promptlab"))
        .args(["vision", "detect", &bus, "--model", &model])
        .env("ORT_DYLIB_PATH", project.root().join("missing.so"))
        .env("PROMPTLAB_VISION_CACHE", project.root())
        .current_dir(project.root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("ONNX Runtime not found") && text(&out).contains("fetch-vision.sh"),
        "{}",
        text(&out)
    );
}

#[test]
fn clip_classify_prints_the_reference_probabilities() {
    let project = TempProject::new();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("expected.json")).unwrap())
            .unwrap();
    let images: Vec<String> = (0..2)
        .map(|i| fixture.join(format!("image{i}.png")).display().to_string())
        .collect();
    let model = fixture.display().to_string();
    let mut args = vec![
        "vision",
        "classify",
        "--labels",
        "cat,bus,person",
        "--template",
        "a photo of a {}",
        "--model",
        &model,
        "--json",
    ];
    args.extend(images.iter().map(String::as_str));
    let out = promptlab(&args, project.root());
    assert!(out.status.success(), "{}", text(&out));
    let results: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    for (i, result) in results.iter().enumerate() {
        for (j, label) in ["cat", "bus", "person"].iter().enumerate() {
            let ours = result["probabilities"][label].as_f64().unwrap();
            let theirs = expected["probabilities"][i][j].as_f64().unwrap();
            assert!(
                (ours - theirs).abs() < 1e-4,
                "image {i} {label}: {ours} vs {theirs}"
            );
        }
    }
    let out = promptlab(
        &[
            "vision", "classify", &images[0], "--labels", " , ", "--model", &model,
        ],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("at least one label"), "{}", text(&out));
}

/// Copies the shipped detection eval set, its prompt and catalog entries into a project,
/// with the photos linked from the vision cache.
fn people_detection_project() -> TempProject {
    let project = TempProject::new();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["prompts/photo.yaml", "eval-sets/people-detection.yaml"] {
        std::fs::copy(repo.join(file), project.root().join(file)).unwrap();
    }
    let photos = project.root().join("eval-sets/data/photos");
    std::fs::create_dir_all(&photos).unwrap();
    for name in [
        "bus", "zidane", "person", "kite", "dog", "horses", "giraffe", "eagle",
    ] {
        let photo = vision_asset(&format!("photos/{name}.jpg"));
        std::os::unix::fs::symlink(photo, photos.join(format!("{name}.jpg"))).unwrap();
    }
    let model = vision_asset("models/person-fall-yolov8.onnx");
    project.write(
        "models/models.yaml",
        &format!(
            "models:\n  people:\n    path: {model}\n    kind: yolo-detector\n    detect:\n      rename: {{Normal: person, Fall: person}}\n  people-strict:\n    path: {model}\n    kind: yolo-detector\n    detect:\n      min_confidence: 0.5\n      rename: {{Normal: person, Fall: person}}\n"
        ),
    );
    project
}

#[test]
fn people_detection_eval_set_scores_boxes_and_coco_ap() {
    let project = people_detection_project();
    let eval = promptlab(
        &[
            "eval",
            "eval-sets/people-detection.yaml",
            "-o",
            "people.json",
        ],
        project.root(),
    );
    assert_eq!(eval.status.code(), Some(1), "{}", text(&eval));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.root().join("people.json")).unwrap())
            .unwrap();
    let passed = |column: u64, case: &str| {
        let index = report["cases"]
            .as_array()
            .unwrap()
            .iter()
            .position(|c| c["id"] == case)
            .unwrap() as u64;
        let cell = report["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["column"] == column && c["case"] == index)
            .unwrap();
        cell["passed"].as_bool().unwrap()
    };
    // Three of bus.jpg's four people are found (F1 0.86 ≥ 0.8) by both detectors; the
    // dog is taken for a person at 0.54 by both; the horses' 0.26 false alarm only by
    // the lenient one.
    for column in [0, 1] {
        assert!(
            passed(column, "bus") && passed(column, "zidane"),
            "{}",
            text(&eval)
        );
        assert!(
            !passed(column, "dog") && !passed(column, "kite"),
            "{}",
            text(&eval)
        );
    }
    assert!(
        !passed(0, "horses") && passed(1, "horses"),
        "{}",
        text(&eval)
    );
    // COCO AP as pycocotools computes it for these boxes (checked by hand once:
    // AP@0.5 0.4752, mAP 0.1972); ONNX Runtime's threading may move scores slightly.
    let detection = &report["detection"][0];
    assert_eq!(detection["expected_boxes"], 17, "{detection}");
    let ap = detection["ap_50"].as_f64().unwrap();
    assert!((ap - 0.4752).abs() < 0.02, "{detection}");
    let map = detection["map_50_95"].as_f64().unwrap();
    assert!((map - 0.1972).abs() < 0.02, "{detection}");
    let printed = text(&eval);
    assert!(
        printed.contains("AP@0.5") && printed.contains("Detection · photo @ people-strict"),
        "{printed}"
    );
    assert!(
        printed.contains("no boxes expected; 1 extra: person"),
        "{printed}"
    );

    // A case without expected boxes is a configuration error naming the case.
    let set = project.root().join("eval-sets/people-detection.yaml");
    let broken = std::fs::read_to_string(&set)
        .unwrap()
        .replace("    expected: []\n  - id: horses", "  - id: horses");
    std::fs::write(&set, broken).unwrap();
    let out = promptlab(&["eval", "eval-sets/people-detection.yaml"], project.root());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("metrics.detection needs `expected`"),
        "{}",
        text(&out)
    );
}

#[test]
fn clip_as_an_eval_set_model_answers_with_the_best_label() {
    let project = TempProject::new();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip");
    project.write(
        "models/models.yaml",
        &format!(
            "models:\n  tiny-clip:\n    path: {}\n    kind: clip\n    label_template: a photo of a {{}}\n",
            fixture.display()
        ),
    );
    // The prompt is the image, then the candidate labels, one per line.
    project.write(
        "prompts/clip-labels.yaml",
        "name: clip-labels\ncompletion: |\n  {{ image }}\n  {% for label in labels %}{{ label }}\n  {% endfor %}\n",
    );
    project.write(
        "eval-sets/clip.yaml",
        &format!(
            "prompts: [clip-labels]\nmodels: [tiny-clip]\ndefaults:\n  vars: {{labels: [cat, bus, person]}}\n  assert: [{{type: equals, value: \"{{{{ expected }}}}\"}}]\nmetrics:\n  classification: {{}}\ncases:\n  - {{id: image0, vars: {{image: {0}/image0.png}}, expected: cat}}\n  - {{id: image1, vars: {{image: {0}/image1.png}}, expected: bus}}\n",
            fixture.display()
        ),
    );
    let out = promptlab(
        &["eval", "eval-sets/clip.yaml", "-o", "clip.json"],
        project.root(),
    );
    // The reference logits make `cat` the best label of both images (expected.json).
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.root().join("clip.json")).unwrap())
            .unwrap();
    let outputs: Vec<&str> = report["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["output"].as_str().unwrap())
        .collect();
    assert_eq!(outputs, ["cat", "cat"], "{}", text(&out));
    assert!(text(&out).contains("accuracy"), "{}", text(&out));

    // Fewer than two labels is an error on the cell, named.
    project.write(
        "prompts/clip-labels.yaml",
        "name: clip-labels\ncompletion: \"{{ image }}\"\n",
    );
    let out = promptlab(&["eval", "eval-sets/clip.yaml"], project.root());
    assert!(
        text(&out).contains("at least two candidate labels"),
        "{}",
        text(&out)
    );
}

/// `detect_objects` over two detectors (people and NudeNet's faces), as the shipped
/// catalog configures it: one call counts both, requests go only to the detector that
/// knows the class, and `max_per_class` shortens the list of boxes but not the counts.
#[test]
fn detect_objects_merges_people_and_faces_detectors() {
    use promptlab::agent::tools::{DetectObjects, Tool, ToolContext};
    use promptlab::catalog::DetectSettings;
    use serde_json::json;

    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let people = DetectSettings {
        rename: [("Normal", "person"), ("Fall", "person")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        ..DetectSettings::default()
    };
    let faces = DetectSettings {
        names: Some(repo.join("models/nudenet-classes.yaml")),
        classes: Some(vec!["face".into()]),
        rename: [("FACE_FEMALE", "face"), ("FACE_MALE", "face")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        ..DetectSettings::default()
    };
    let mut tool = DetectObjects::load(&[
        (
            "people".into(),
            vision_asset("models/person-fall-yolov8.onnx").into(),
            people,
        ),
        (
            "faces".into(),
            vision_asset("models/nudenet-320n.onnx").into(),
            faces,
        ),
    ])
    .unwrap();
    let enum_ = &tool.parameters()["properties"]["classes"]["items"]["enum"];
    assert_eq!(enum_, &json!(["person", "face"]));
    let photos = Path::new(&vision_asset("photos/bus.jpg"))
        .parent()
        .unwrap()
        .to_path_buf();
    let context = ToolContext::new(vec![photos.clone()], photos);

    let both = tool.call(&json!({"image": "bus.jpg"}), &context).unwrap();
    assert_eq!(both["counts"], json!({"face": 2, "person": 3}), "{both}");

    let faces_only = tool
        .call(&json!({"image": "bus.jpg", "classes": ["face"]}), &context)
        .unwrap();
    assert_eq!(faces_only["counts"], json!({"face": 2}), "{faces_only}");

    // A raised floor hides both faces (0.43 and 0.31): the count says 0, and the
    // result says what the floor hid.
    let strict = tool
        .call(
            &json!({"image": "bus.jpg", "classes": ["person", "face"], "min_confidence": 0.5}),
            &context,
        )
        .unwrap();
    assert_eq!(
        strict["counts"],
        json!({"face": 0, "person": 3}),
        "{strict}"
    );
    assert_eq!(
        strict["below_min_confidence"],
        json!({"face": 2}),
        "{strict}"
    );
    assert!(strict["note"].as_str().unwrap().contains("under 0.5"));

    let capped = tool
        .call(
            &json!({"image": "bus.jpg", "classes": ["person"], "max_per_class": 1}),
            &context,
        )
        .unwrap();
    assert_eq!(capped["count"], 3, "{capped}");
    assert_eq!(capped["objects"].as_array().unwrap().len(), 1, "{capped}");
    assert!(capped["note"].as_str().unwrap().contains("at most 1"));

    let error = tool
        .call(&json!({"image": "bus.jpg", "classes": ["dog"]}), &context)
        .unwrap_err();
    assert!(error.to_string().contains("unknown class `dog`"), "{error}");
}
