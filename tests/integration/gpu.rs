//! GPU offload settings in a build without GPU support (the CI build): where each model
//! runs, what a model that asks for a GPU hears, and a device that does not exist.
//! The GPU paths themselves need a GPU build (benches/gpu.sh, docs/src/gpu.md).

use crate::common::{SMOLLM2, TempProject, promptlab, real_model, text};

fn project() -> TempProject {
    let project = TempProject::new();
    let model = real_model(SMOLLM2);
    let model = model.display();
    project.write(
        "models/models.yaml",
        &format!(
            "models:\n  plain:\n    path: {model}\n  wants-gpu:\n    path: {model}\n    gpu_layers: all\n  cpu-only:\n    path: {model}\n    gpu_layers: none\n"
        ),
    );
    project.write(
        "prompts/add.yaml",
        "name: add\ncompletion: \"2 + 2 =\"\nparams: {max_tokens: 2, temperature: 0}\n",
    );
    project.write(
        "eval-sets/add.yaml",
        "name: add\nprompts: [add]\ncases:\n  - vars: {x: 1}\n    assert:\n      - type: contains\n        value: \"4\"\n",
    );
    project
}

#[test]
fn models_list_says_where_each_model_runs() {
    let project = project();
    let out = promptlab(&["models", "list"], project.root());
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("runs on"), "{stdout}");
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.contains(&format!(" {name} ")))
            .unwrap_or_else(|| panic!("no row for {name}: {stdout}"))
            .to_string()
    };
    assert!(row("plain").contains("CPU (AVX"), "{stdout}");
    assert!(!row("plain").contains("no GPU"), "{stdout}");
    assert!(row("wants-gpu").contains("no GPU"), "{stdout}");
    assert!(!row("cpu-only").contains("no GPU"), "{stdout}");
    assert!(
        stdout.contains("GPU backends in this build: none")
            && stdout.contains("GPUs found: none, so models run on the CPU"),
        "{stdout}"
    );
}

#[test]
fn a_device_llama_cpp_does_not_find_is_named_with_the_ones_it_does() {
    let project = project();
    let model = real_model(SMOLLM2);
    project.write(
        "models/models.yaml",
        &format!(
            "models:\n  on-card:\n    path: {}\n    device: Vulkan0\n",
            model.display()
        ),
    );
    let out = promptlab(&["models", "list"], project.root());
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("model `on-card` asks for `device: Vulkan0`, which llama.cpp does not find; it finds: CPU (")
            && all.contains("built without GPU support"),
        "{all}"
    );
    // A run cannot load it either, and says the same.
    let out = promptlab(
        &[
            "eval",
            "eval-sets/add.yaml",
            "--models",
            "on-card",
            "--no-store",
            "--quiet",
        ],
        project.root(),
    );
    let all = text(&out);
    assert!(
        all.contains("asks for `device: Vulkan0`, which llama.cpp does not find"),
        "{all}"
    );
}

#[test]
fn eval_warns_a_model_that_asks_for_a_gpu_it_cannot_have() {
    let project = project();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "eval-sets/add.yaml",
            "--models",
            "wants-gpu,plain",
            "--no-store",
            "--quiet",
        ];
        args.extend_from_slice(extra);
        promptlab(&args, project.root())
    };
    let out = run(&[]);
    let all = text(&out);
    assert!(out.status.code().is_some_and(|c| c <= 1), "{all}");
    assert!(
        all.contains("warning: `wants-gpu` asks for `gpu_layers: all`, but this promptlab was built without GPU support"),
        "{all}"
    );
    assert!(!all.contains("warning: `plain`"), "{all}");
    // --gpu-layers overrides the catalog: none asks for no GPU, so nothing to warn about.
    let out = run(&["--gpu-layers", "none"]);
    let all = text(&out);
    assert!(out.status.code().is_some_and(|c| c <= 1), "{all}");
    assert!(!all.contains("asks for `gpu_layers"), "{all}");
    // ... and `all` asks for one for every model.
    let out = run(&["--gpu-layers", "all"]);
    let all = text(&out);
    assert!(
        all.contains("warning: `plain` asks for `gpu_layers: all`"),
        "{all}"
    );
    let out = run(&["--gpu-layers", "most"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("`most` is not a GPU layer count"), "{all}");
}

#[test]
fn bench_says_where_it_measured() {
    let project = project();
    let out = promptlab(
        &[
            "bench",
            "--model",
            "plain",
            "--no-reference",
            "--runs",
            "1",
            "--prompt-tokens",
            "16",
            "--gen-tokens",
            "4",
            "--gpu-layers",
            "none",
        ],
        project.root(),
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("plain runs on CPU (AVX"), "{all}");
    assert!(all.contains("(medians), on CPU (AVX"), "{all}");
}
