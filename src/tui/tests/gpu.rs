//! Where models run: the playground's `gpu_layers` row and the status bar's device.

use crossterm::event::KeyCode;
use promptlab::catalog::{GpuLayers, KindSettings};

use super::{app, key, press, screen_text};
use crate::tui::app::{Effect, Event, RunEvent};
use crate::tui::playground::ChatEvent;
use crate::tui::run_screen::short_placement;

fn gpu_layers_sent(app: &mut crate::tui::app::App) -> Option<GpuLayers> {
    press(app, "i");
    press(app, "hi");
    let effects = app.update(key(KeyCode::Enter));
    let [Effect::Chat { model, .. }] = &effects[..] else {
        panic!("expected a chat request, got {effects:?}");
    };
    let KindSettings::Gguf(local) = &model.settings else {
        panic!("the playground's model is a GGUF file");
    };
    local.gpu_layers
}

#[test]
fn the_playground_sets_gpu_layers_for_the_next_load() {
    let mut app = app((120, 40));
    press(&mut app, "6");
    assert!(screen_text(&app).contains("gpu_layers      model's"));
    // The catalog's own setting until the row is changed.
    assert_eq!(gpu_layers_sent(&mut app), None);
    app.update(Event::Chat(ChatEvent::Done(Err("stopped".into()))));

    // Tab to the settings, down to the last row, right: none, then 4 layers.
    app.update(key(KeyCode::Tab));
    for _ in 0..7 {
        app.update(key(KeyCode::Down));
    }
    app.update(key(KeyCode::Right));
    assert_eq!(app.playground.gpu_layers, Some(GpuLayers::None));
    assert!(screen_text(&app).contains("gpu_layers         none"));
    app.update(key(KeyCode::Right));
    assert_eq!(app.playground.gpu_layers, Some(GpuLayers::Count(4)));
    app.update(key(KeyCode::Tab));
    assert_eq!(gpu_layers_sent(&mut app), Some(GpuLayers::Count(4)));
}

#[test]
fn gpu_layers_steps_from_the_models_setting_to_all_and_back() {
    let mut app = app((120, 40));
    press(&mut app, "6");
    app.update(key(KeyCode::Tab));
    for _ in 0..10 {
        app.update(key(KeyCode::Down));
    }
    let mut seen = vec![app.playground.gpu_layers];
    for _ in 0..40 {
        app.update(key(KeyCode::Right));
        seen.push(app.playground.gpu_layers);
    }
    assert_eq!(seen[1], Some(GpuLayers::None));
    assert_eq!(seen[2], Some(GpuLayers::Count(4)));
    assert_eq!(seen[33], Some(GpuLayers::Count(128)));
    assert_eq!(seen[34], Some(GpuLayers::All));
    assert_eq!(seen[40], Some(GpuLayers::All), "all is the end");
    for _ in 0..40 {
        app.update(key(KeyCode::Left));
    }
    assert_eq!(
        app.playground.gpu_layers, None,
        "back to the model's setting"
    );
}

#[test]
fn the_status_bar_says_where_the_model_runs() {
    let mut app = app((140, 40));
    app.update(Event::Run(RunEvent::Started {
        run_id: Some(1),
        cells: vec![("c".into(), "1".into())],
    }));
    app.update(Event::Run(RunEvent::ModelLoaded {
        model: "smollm2".into(),
        load_ms: 120.0,
    }));
    app.update(Event::Run(RunEvent::ModelPlaced {
        runs_on: Some("Vulkan0 (AMD Radeon 780M, 8.0 GiB): all 30 layers".into()),
        note: None,
    }));
    let text = screen_text(&app);
    assert!(text.contains("on Vulkan0: all 30 layers"), "{text}");

    // A model that asked for a GPU and got none says so in the message line.
    app.update(Event::Run(RunEvent::ModelPlaced {
        runs_on: Some("CPU (AVX2)".into()),
        note: Some("`smollm2` asks for `gpu_layers: all`, but this promptlab was built without GPU support".into()),
    }));
    let text = screen_text(&app);
    assert!(text.contains("on CPU (AVX2)"), "{text}");
    assert!(
        text.contains("`smollm2` asks for `gpu_layers: all`"),
        "{text}"
    );
}

#[test]
fn placements_shorten_to_the_device_and_its_layers() {
    assert_eq!(short_placement("CPU (AVX512)"), "CPU (AVX512)");
    assert_eq!(
        short_placement(
            "CUDA0 (NVIDIA GeForce RTX 4060, 8.0 GiB): 20 of 28 layers (the rest on the CPU)"
        ),
        "CUDA0: 20 of 28 layers (the rest on the CPU)"
    );
    assert_eq!(short_placement("GPU (mistral.rs)"), "GPU");
}

#[test]
fn the_playground_says_where_its_model_loaded() {
    let mut app = app((120, 40));
    press(&mut app, "6");
    app.update(Event::Chat(ChatEvent::Loaded {
        model: "smollm2".into(),
        load_ms: 80.0,
        runs_on: Some("Metal (Apple M2, 16.0 GiB): all 30 layers".into()),
        note: None,
    }));
    assert_eq!(
        app.playground.status.as_deref(),
        Some("smollm2 loaded in 80 ms on Metal: all 30 layers")
    );
    assert!(screen_text(&app).contains("chat smollm2 on Metal: all 30 layers"));
}
