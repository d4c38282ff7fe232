//! `promptlab init [DIR]`: a starter project and what to run next.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use promptlab::project::init::{self, InitModel};

use super::Outcome;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  promptlab init demo                  # uses SmolLM2-135M from scripts/fetch-models.sh
  promptlab init demo --model ~/models/qwen2.5-0.5b-instruct-q4_k_m.gguf")]
pub struct InitArgs {
    /// The folder to create the project in (default: the current folder).
    dir: Option<PathBuf>,
    /// A GGUF chat model to use (default: SmolLM2-135M-Instruct as fetched by promptlab's
    /// scripts/fetch-models.sh into ~/.cache/promptlab/models).
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
}

const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

pub fn run(args: InitArgs) -> Result<Outcome> {
    let root = args.dir.unwrap_or_else(|| PathBuf::from("."));
    let model = match &args.model {
        Some(file) => chosen_model(file)?,
        None => default_model(),
    };
    let scaffold = init::init(&root, &model)?;
    println!(
        "Created a promptlab project in {}:",
        scaffold.root.display()
    );
    for file in &scaffold.written {
        println!("  {}", file.display());
    }
    println!("Model `{}`: {}", model.name, model.path.display());
    if !model.path.exists() {
        match &model.fetch {
            Some(fetch) => println!("  not fetched yet; fetch it with: {fetch}"),
            None => println!("  not there yet: put a GGUF chat model at that path"),
        }
    }
    println!("\nNext:");
    if root != Path::new(".") {
        println!("  cd {}", shell_word(&root.display().to_string()));
    }
    println!(
        "  promptlab eval {}       # run the eval set: prompts × models × cases",
        scaffold.eval_set
    );
    println!("  promptlab                     # open the workbench: edit, run, compare");
    Ok(Outcome::Passed)
}

fn chosen_model(file: &Path) -> Result<InitModel> {
    let path = std::path::absolute(file).with_context(|| file.display().to_string())?;
    if !path.is_file() {
        bail!(
            "--model {}: no such file (expected a GGUF model file)",
            file.display()
        );
    }
    // Refused now rather than at the first run.
    promptlab::gguf::GgufInfo::read(&path)
        .with_context(|| format!("--model {}", file.display()))?;
    Ok(InitModel {
        name: init::model_name_from_file(&path),
        description: format!(
            "{} (added by promptlab init)",
            path.file_name().unwrap_or_default().to_string_lossy()
        ),
        path,
        fetch: None,
    })
}

/// SmolLM2 where scripts/fetch-models.sh keeps it; the script is named when this binary
/// was built from a checkout that still has it.
fn default_model() -> InitModel {
    let cache = std::env::var_os("PROMPTLAB_MODELS_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/promptlab/models"))
        })
        .unwrap_or_else(|| PathBuf::from("models"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fetch-models.sh");
    InitModel {
        name: "smollm2".into(),
        path: cache.join(DEFAULT_MODEL_FILE),
        fetch: script
            .is_file()
            .then(|| format!("bash {}", shell_word(&script.display().to_string()))),
        description: "SmolLM2 135M Instruct, Q4_1: a small, fast chat model".into(),
    }
}

/// `text` quoted for a POSIX shell when it needs to be.
fn shell_word(text: &str) -> String {
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-~+".contains(c))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}
