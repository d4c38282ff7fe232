//! promptlab: a local workbench for prompt engineering and evaluation on GGUF models.
//!
//! The library holds the concepts (prompts, eval sets, models, engines, scoring, runs,
//! reports) and knows nothing about terminals; the `promptlab` binary is a thin CLI
//! over it.

pub mod agent;
pub mod bench;
pub mod cancel;
pub mod catalog;
pub mod compare;
pub mod dialect;
pub mod engine;
pub mod evalset;
pub mod evaluation;
pub mod failure;
pub mod gguf;
pub mod hub;
pub mod metrics;
pub mod optimize;
pub mod params;
pub mod project;
pub mod prompt;
pub mod promptfoo;
pub mod report;
pub mod results;
pub mod run;
pub mod score;
pub mod script;
pub mod serve;
pub mod store;
pub mod sweep;
pub mod template;
pub mod trace;
pub mod vision;
pub mod yaml;

#[cfg(test)]
mod layers;
