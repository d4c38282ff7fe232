//! `promptlab tui`: the terminal workbench. A thin layer over the library, shaped the
//! way the house style asks: `app` is a pure state machine (events in, effects out),
//! each screen is a module with its own keys and drawing, `view` draws the frame from
//! the state alone, and `driver` is the only part that touches the terminal, threads
//! and files.

mod agent;
mod agent_job;
mod app;
mod charts;
mod chat_job;
mod driver;
mod editor;
mod help;
mod history;
mod library;
mod optimize;
mod picture;
mod playground;
mod ranking;
mod results;
mod run_job;
mod run_screen;
mod search;
mod side;
mod view;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// The project folder containing `start`: the nearest one with a `prompts/` folder.
pub fn find_project(start: &Path) -> Option<PathBuf> {
    let start = std::path::absolute(start).ok()?;
    start
        .ancestors()
        .find(|dir| dir.join("prompts").is_dir())
        .map(Path::to_path_buf)
}

pub fn run(project: Option<PathBuf>) -> Result<()> {
    let start = project.unwrap_or_else(|| PathBuf::from("."));
    let Some(root) = find_project(&start) else {
        bail!(
            "{}: not inside a promptlab project (no `prompts/` folder here or in a parent folder); pass the project folder: promptlab tui DIR",
            start.display()
        );
    };
    driver::run(&root)
}
