//! Loading the catalog: paths, names, kinds and their settings, tool assignments.
use super::*;
use crate::params::GenerationParams;

#[test]
fn resolves_relative_paths_and_suggests_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models.yaml");
    std::fs::write(
        &path,
        "models:\n  smollm2:\n    path: s.gguf\n    context_size: 1024\n",
    )
    .unwrap();
    let catalog = ModelCatalog::load(&path).unwrap();
    let model = catalog.resolve("smollm2").unwrap();
    assert_eq!(model.entry.unwrap().path, dir.path().join("s.gguf"));
    assert!(catalog.resolve("echo").unwrap().is_echo());
    let err = catalog.resolve("smolm2").unwrap_err().to_string();
    assert!(err.contains("did you mean `smollm2`"), "{err}");
}

#[test]
fn settings_of_another_kind_are_refused_with_the_model_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models.yaml");
    for (entry, expected) in [
        (
            "path: p.onnx\n    kind: yolo-detector\n    context_size: 512",
            "model `m` sets `context_size:`, which only `kind: gguf` reads (this entry is `kind: yolo-detector`)",
        ),
        (
            "path: s.gguf\n    detect: {min_confidence: 0.5}",
            "model `m` sets `detect:`, which only `kind: yolo-detector` reads (this entry is `kind: gguf`)",
        ),
        (
            "path: d.safetensors\n    kind: digit-cnn\n    params: {temperature: 0.5}",
            "sets `params:`, which only `kind: gguf` or `kind: openai` reads",
        ),
        (
            "path: s.gguf\n    openai: {model: q, endpoints: [\"http://h/v1\"]}",
            "sets `openai:`, which only `kind: openai` reads",
        ),
        (
            "kind: openai",
            "model `m` has `kind: openai` but no `openai:` section",
        ),
        (
            "kind: clip",
            "model `m` needs a `path:` (or `hub: {repo, file}`)",
        ),
    ] {
        std::fs::write(&path, format!("models:\n  m:\n    {entry}\n")).unwrap();
        let err = ModelCatalog::load(&path).unwrap_err().to_string();
        assert!(err.contains(expected), "{entry}: {err}");
    }
}

#[test]
fn an_entry_keeps_its_kind_settings_through_serialization() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models.yaml");
    std::fs::write(
        &path,
        "models:\n  big:\n    path: b.gguf\n    engine: mistralrs\n    context_size: 1024\n    params: {temperature: 0.2}\n  people:\n    path: p.onnx\n    kind: yolo-detector\n    detect: {min_confidence: 0.5, classes: [person]}\n",
    )
    .unwrap();
    let catalog = ModelCatalog::load(&path).unwrap();
    let big = &catalog.models["big"];
    let local = big.local().unwrap();
    assert_eq!(local.engine, EngineChoice::Mistralrs);
    assert_eq!(local.context_size, Some(1024));
    assert_eq!(big.params().temperature, Some(0.2));
    let people = &catalog.models["people"];
    assert_eq!(people.kind(), ModelKind::YoloDetector);
    assert_eq!(people.params(), &GenerationParams::NONE);
    for entry in [big, people] {
        let json = serde_json::to_value(entry).unwrap();
        assert_eq!(&serde_json::from_value::<ModelEntry>(json).unwrap(), entry);
    }
    let json = serde_json::to_value(people).unwrap();
    assert_eq!(json["kind"], "yolo-detector");
    assert_eq!(json["detect"]["classes"][0], "person");
    assert!(json.get("params").is_none() && json.get("engine").is_none());
}

#[test]
fn tools_section_names_models_of_the_right_kind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models.yaml");
    let models = "models:\n  people:\n    path: p.onnx\n    kind: yolo-detector\n  faces:\n    path: f.onnx\n    kind: yolo-detector\n  llm:\n    path: l.gguf\n";
    std::fs::write(
        &path,
        format!("{models}tools:\n  detect_objects: [people, faces]\n"),
    )
    .unwrap();
    let catalog = ModelCatalog::load(&path).unwrap();
    assert_eq!(catalog.tools.detect_objects, ["people", "faces"]);

    std::fs::write(&path, format!("{models}tools:\n  detect_objects: people\n")).unwrap();
    let catalog = ModelCatalog::load(&path).unwrap();
    assert_eq!(catalog.tools.detect_objects, ["people"]);

    for (tools, expected) in [
        (
            "detect_objects: [people, llm]",
            "`llm` is the wrong kind of model for that tool (expected `kind: yolo-detector`)",
        ),
        (
            "classify_digit: digits",
            "`digits` is not a model of this catalog",
        ),
    ] {
        std::fs::write(&path, format!("{models}tools:\n  {tools}\n")).unwrap();
        let err = ModelCatalog::load(&path).unwrap_err().to_string();
        assert!(err.contains("models.yaml: under `tools:`"), "{err}");
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn gpu_settings_belong_to_gguf_models_and_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models.yaml");
    let load = |entry: &str| {
        std::fs::write(&path, format!("models:\n  m:\n    {entry}\n")).unwrap();
        ModelCatalog::load(&path).map_err(|e| e.to_string())
    };
    let catalog = load("path: s.gguf\n    gpu_layers: 20\n    device: CUDA1").unwrap();
    let local = catalog.models["m"].local().unwrap().clone();
    assert_eq!(local.gpu_layers, Some(GpuLayers::Count(20)));
    assert_eq!(local.device.as_deref(), Some("CUDA1"));
    let catalog = load("path: s.gguf\n    gpu_layers: none").unwrap();
    assert_eq!(
        catalog.models["m"].local().unwrap().gpu_layers,
        Some(GpuLayers::None)
    );
    for (entry, expected) in [
        (
            "path: p.onnx\n    kind: yolo-detector\n    gpu_layers: all",
            "sets `gpu_layers:`, which only `kind: gguf` reads (this entry is `kind: yolo-detector`)",
        ),
        (
            "kind: openai\n    openai: {model: q, endpoints: [\"http://h/v1\"]}\n    device: Vulkan0",
            "sets `device:`, which only `kind: gguf` reads",
        ),
        (
            "path: s.gguf\n    gpu_layers: most",
            "`most` is not a GPU layer count",
        ),
        (
            "path: s.gguf\n    gpu_layers: -1",
            "-1 is not a GPU layer count",
        ),
        ("path: s.gguf\n    device: ' '", "empty `device:`"),
    ] {
        let err = load(entry).unwrap_err();
        assert!(err.contains(expected), "{entry}: {err}");
    }
    // Written back as read.
    let entry = load("path: s.gguf\n    gpu_layers: all\n    device: Metal")
        .unwrap()
        .models["m"]
        .clone();
    let text = serde_norway::to_string(&entry).unwrap();
    assert!(
        text.contains("gpu_layers: all") && text.contains("device: Metal"),
        "{text}"
    );
}
