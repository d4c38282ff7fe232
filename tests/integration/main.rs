//! The integration tests, in one test binary: each of them links the whole crate
//! (llama.cpp, mistral.rs, candle…), so one binary instead of one per file
//! saves most of the link time and disk. `cargo test --test integration serve::` runs one
//! module; `cargo test --test integration` runs them all.

mod common;

mod agent;
mod batch_invariance;
mod cli;
mod cli_tables;
mod crashing_models;
mod echo_assertions;
// A GPU build answers these differently (benches/gpu.sh checks those).
#[cfg(not(any(
    feature = "metal",
    feature = "cuda",
    feature = "vulkan",
    feature = "dynamic-backends",
    all(target_os = "macos", target_arch = "aarch64")
)))]
mod gpu;
mod html_report;
mod hub;
mod judge;
#[cfg(feature = "mistralrs")]
mod mistralrs;
mod openai_faults;
mod optimize;
mod photos;
mod promptfoo;
mod promptfoo_dialect;
mod property;
mod real_models;
mod resume;
mod run_labels;
mod serve;
mod similarity;
mod tools_call;
mod tui_tmux;
mod vision;
