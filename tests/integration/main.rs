//! The integration tests, in one test binary: each of them links the whole crate
//! (llama.cpp, mistral.rs, candle…), so one binary instead of one per file
//! saves most of the link time and disk. `cargo test --test integration serve::` runs one
//! module; `cargo test --test integration` runs them all.

mod common;

mod agent;
mod batch_invariance;
mod cli;
mod cli_tables;
mod echo_assertions;
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
