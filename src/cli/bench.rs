//! `promptlab bench`: single-stream prompt and generation speed of our llama.cpp engine,
//! next to llama.cpp's own speed for the same model, threads, prompt length and generation
//! length, measured in the same run through llama-cpp-python (which builds llama.cpp from
//! source). Runs alternate ours / reference / ours so drift on a shared machine shows.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;
use promptlab::bench::{self, BenchConfig, median};
use promptlab::project::Project;
use serde::Deserialize;

use super::Outcome;

const REFERENCE_SCRIPT: &str = include_str!("../../scripts/bench_reference.py");

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Catalog model to measure.
    #[arg(long, default_value = "smollm2")]
    pub model: String,
    #[arg(long)]
    pub project: Option<PathBuf>,
    #[arg(long, default_value_t = 2)]
    pub threads: u32,
    #[arg(long, default_value_t = 256)]
    pub prompt_tokens: usize,
    #[arg(long, default_value_t = 128)]
    pub gen_tokens: u32,
    /// Measured runs per block (after one warm-up).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub runs: u64,
    /// Python with llama-cpp-python installed (default: ~/.cache/promptlab/bench-venv).
    #[arg(long)]
    pub reference_python: Option<PathBuf>,
    /// Measure only promptlab.
    #[arg(long)]
    pub no_reference: bool,
    /// Layers put on a GPU: all, none or a number (default: the catalog's `gpu_layers`,
    /// else all when llama.cpp finds a GPU). The reference runs on the CPU.
    #[arg(long, value_name = "all|none|N")]
    pub gpu_layers: Option<promptlab::catalog::GpuLayers>,
}

#[derive(Debug, Deserialize)]
struct ReferenceRun {
    prompt_tokens: u32,
    llama_prompt_tokens_per_s: f64,
    llama_gen_tokens_per_s: f64,
    wall_prompt_tokens_per_s: f64,
    wall_gen_tokens_per_s: f64,
    version: String,
}

pub fn run(args: BenchArgs) -> Result<Outcome> {
    let start = args.project.clone().unwrap_or_else(|| PathBuf::from("."));
    let project = Project::discover(&start).context("cannot open the project")?;
    let model = project.catalog.resolve(&args.model)?;
    let Some(entry) = model.entry.clone() else {
        bail!("`echo` has no speed to measure: choose a GGUF model");
    };
    let config = BenchConfig {
        threads: args.threads,
        prompt_tokens: args.prompt_tokens,
        gen_tokens: args.gen_tokens,
        runs: args.runs as usize,
        gpu_layers: args.gpu_layers,
    };
    eprintln!(
        "measuring {} ({}): {} prompt tokens, {} generated, {} threads",
        args.model,
        entry.path.display(),
        args.prompt_tokens,
        args.gen_tokens,
        args.threads
    );
    let measured = bench::run(&model, &config)?;
    if let Some(note) = &measured.offload_note {
        eprintln!("warning: `{}` {note}", args.model);
    }
    let runs_on = measured.runs_on.unwrap_or_else(|| "?".into());
    eprintln!("{} runs on {runs_on}", args.model);
    let (text, mut ours) = (measured.prompt, measured.runs);
    let rss_after_ours = bench::peak_rss_bytes();

    let python = args.reference_python.clone().or_else(default_python);
    let reference = match (&python, args.no_reference) {
        (_, true) => None,
        (None, false) => {
            eprintln!(
                "no reference: install llama-cpp-python into ~/.cache/promptlab/bench-venv (see docs/src/benchmarks.md) or pass --reference-python"
            );
            None
        }
        (Some(python), false) => Some(run_reference(python, &entry.path, &text, &args)?),
    };
    if reference.is_some() {
        ours.extend(bench::run(&model, &config)?.runs);
    }

    let ours_pp = median(
        &ours
            .iter()
            .map(|r| r.prompt_tokens_per_s)
            .collect::<Vec<_>>(),
    );
    let ours_tg = median(&ours.iter().map(|r| r.gen_tokens_per_s).collect::<Vec<_>>());
    println!(
        "prompt: {} tokens, generation: {} tokens, threads: {}, runs: {} (medians), on {runs_on}",
        ours.first().map(|r| r.prompt_tokens).unwrap_or(0),
        args.gen_tokens,
        args.threads,
        ours.len()
    );
    println!("{:<34} {:>14} {:>14}", "", "prompt tok/s", "gen tok/s");
    println!(
        "{:<34} {:>14.1} {:>14.1}",
        "promptlab (end to end)", ours_pp, ours_tg
    );
    if let Some(reference) = reference {
        let pick =
            |f: &dyn Fn(&ReferenceRun) -> f64| median(&reference.iter().map(f).collect::<Vec<_>>());
        let ref_pp = pick(&|r| r.llama_prompt_tokens_per_s);
        let ref_tg = pick(&|r| r.llama_gen_tokens_per_s);
        let version = reference
            .first()
            .map(|r| r.version.clone())
            .unwrap_or_default();
        if let Some(r) = reference.first()
            && r.prompt_tokens != ours.first().map(|o| o.prompt_tokens).unwrap_or(0)
        {
            eprintln!(
                "warning: the reference tokenized the prompt to {} tokens",
                r.prompt_tokens
            );
        }
        println!(
            "{:<34} {:>14.1} {:>14.1}",
            format!("llama.cpp perf (py {version})"),
            ref_pp,
            ref_tg
        );
        println!(
            "{:<34} {:>14.1} {:>14.1}",
            "llama-cpp-python (wall clock)",
            pick(&|r| r.wall_prompt_tokens_per_s),
            pick(&|r| r.wall_gen_tokens_per_s)
        );
        println!(
            "{:<34} {:>14.3} {:>14.3}",
            "ratio promptlab / llama.cpp",
            ours_pp / ref_pp,
            ours_tg / ref_tg
        );
    }
    if let Some(rss) = rss_after_ours {
        println!(
            "peak RSS of promptlab: {:.1} MiB (model file {:.1} MiB)",
            rss as f64 / 1048576.0,
            std::fs::metadata(&entry.path).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0
        );
    }
    Ok(Outcome::Passed)
}

fn config_context(args: &BenchArgs) -> u32 {
    BenchConfig {
        threads: args.threads,
        prompt_tokens: args.prompt_tokens,
        gen_tokens: args.gen_tokens,
        runs: args.runs as usize,
        gpu_layers: args.gpu_layers,
    }
    .context_size()
}

fn default_python() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let python = PathBuf::from(home).join(".cache/promptlab/bench-venv/bin/python");
    python.is_file().then_some(python)
}

fn run_reference(
    python: &PathBuf,
    model: &std::path::Path,
    text: &str,
    args: &BenchArgs,
) -> Result<Vec<ReferenceRun>> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("bench_reference.py");
    let prompt = dir.path().join("prompt.txt");
    std::fs::write(&script, REFERENCE_SCRIPT)?;
    std::fs::write(&prompt, text)?;
    let context = config_context(args);
    let output = Command::new(python)
        .arg(&script)
        .arg(model)
        .arg(&prompt)
        .arg(args.threads.to_string())
        .arg(args.gen_tokens.to_string())
        .arg(args.runs.to_string())
        .arg(context.to_string())
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !output.status.success() {
        bail!(
            "the reference benchmark failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).context("unreadable reference result"))
        .collect()
}
