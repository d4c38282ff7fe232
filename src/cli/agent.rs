//! `promptlab agent`: ask a question; a local model answers by calling the vision tools.
//! The trace prints as it happens and every step goes to the run store.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use promptlab::agent::eval::runner::find_prompt;
use promptlab::agent::session::{Question, Session, SessionOptions};
use promptlab::agent::{AgentEvent, AgentLimits, DEFAULT_SYSTEM, ToolModels};
use promptlab::engine::Flow;
use promptlab::project::Project;
use promptlab::trace::AgentStop;

use super::Outcome;

pub(crate) mod eval;

#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// The question, in plain words.
    #[arg(required_unless_present = "eval")]
    question: Option<String>,
    /// Catalog name of the language model (a GGUF with a chat template); with --eval, a
    /// comma-separated list (default: the set's `models`).
    #[arg(long, value_delimiter = ',', visible_alias = "models")]
    model: Vec<String>,
    /// Run an agent evaluation set instead of one question.
    #[arg(long, value_name = "FILE", conflicts_with = "question")]
    eval: Option<PathBuf>,
    /// With --eval: only cases with one of these tags.
    #[arg(long, value_delimiter = ',')]
    filter: Vec<String>,
    /// With --eval: only the first N cases.
    #[arg(long)]
    limit: Option<usize>,
    /// With --eval: write every trace and check as JSON.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// With --eval: questions asked together on a local model, their replies decoded in
    /// one batch (default 8; 1 = one after another). The traces are the same either way.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    parallel: Option<u32>,
    /// Layers of the language model put on a GPU: all, none or a number (default: the
    /// catalog's `gpu_layers`, else all when llama.cpp finds a GPU).
    #[arg(long, value_name = "all|none|N")]
    gpu_layers: Option<promptlab::catalog::GpuLayers>,
    /// Offer only these tools (comma-separated; default: every tool whose model is set up).
    #[arg(long, value_delimiter = ',')]
    tools: Vec<String>,
    /// Stop after this many model replies.
    #[arg(long, default_value_t = 6)]
    max_steps: usize,
    /// Stop after this many generated tokens in all.
    #[arg(long, default_value_t = 2048)]
    max_tokens: u32,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 300)]
    max_seconds: u64,
    /// Let optional number arguments (a confidence floor, a per-class limit) take any
    /// value; by default a local model may only pass numbers written in the question.
    #[arg(long)]
    free_numbers: bool,
    /// A tool call taking longer than this many seconds is abandoned.
    #[arg(long, default_value_t = 60)]
    tool_timeout: u64,
    /// Folders the tools may read (default: the project); repeat for several.
    #[arg(long = "allow", value_name = "DIR")]
    allowed: Vec<PathBuf>,
    /// Catalog name of the digit CNN behind `classify_digit` (default: the catalog's
    /// `tools:` section, else the first `kind: digit-cnn` model).
    #[arg(long)]
    digits_model: Option<String>,
    /// Catalog names of the detectors behind `detect_objects`, comma-separated; their
    /// classes are joined (default: the catalog's `tools:` section, else the first
    /// `kind: yolo-detector` model).
    #[arg(long, value_delimiter = ',')]
    detector: Vec<String>,
    /// Catalog name of the CLIP model behind `classify_image` (default: as above).
    #[arg(long)]
    clip: Option<String>,
    /// Replace the default system prompt.
    #[arg(long)]
    system: Option<String>,
    /// An agent prompt template (`name` or `name:variant` from prompts/): its messages,
    /// rendered with `question`, open the conversation; its `tools` are offered.
    #[arg(long)]
    prompt: Option<String>,
    /// Sampling temperature (default: the model's and prompt's, else 0: greedy).
    #[arg(long)]
    temperature: Option<f32>,
    #[arg(long)]
    seed: Option<u32>,
    /// The project (default: found from the current folder).
    #[arg(long)]
    project: Option<PathBuf>,
    /// Do not record the run in the run store.
    #[arg(long)]
    no_store: bool,
    /// Print the trace as JSON at the end (progress still goes to stderr).
    #[arg(long)]
    json: bool,
}

/// The project for these arguments: `--project`, else found from the current folder.
fn open_project(args: &AgentArgs) -> Result<Project> {
    match &args.project {
        Some(dir) => Project::open(dir),
        None => Project::discover(Path::new(".")),
    }
    .context("cannot open the project")
}

pub fn run(args: AgentArgs) -> Result<Outcome> {
    if let Some(path) = args.eval.clone() {
        return eval::run(&args, &path);
    }
    let question = args.question.clone().unwrap_or_default();
    let [model] = args.model.as_slice() else {
        bail!("--model: expected one model name (several only with --eval)");
    };
    let project = open_project(&args)?;
    let prompt = match &args.prompt {
        Some(selector) => Some(find_prompt(&project, selector)?),
        None => None,
    };
    let wanted = match &prompt {
        Some(p) if args.tools.is_empty() => p.tools.clone(),
        _ => args.tools.clone(),
    };
    let tool_models = ToolModels {
        digits: args.digits_model.clone(),
        detectors: args.detector.clone(),
        clip: args.clip.clone(),
    };
    let store_path = project.store_path();
    let mut session = Session::open(
        project,
        &SessionOptions {
            wanted_tools: &wanted,
            models: &tool_models,
            tool_timeout: Duration::from_secs(args.tool_timeout.max(1)),
            allowed: &args.allowed,
            record: (!args.no_store).then_some(store_path.as_path()),
        },
    )?;
    for (name, why) in &session.tools.unavailable {
        eprintln!("note: tool {name} is left out: {why}");
    }
    session.gpu_layers = args.gpu_layers;
    let mut loaded = session.load_model(model)?;
    let capabilities = loaded.engine.capabilities();
    if let Some(line) = crate::cli::eval::progress::placement_line(model, capabilities) {
        eprintln!("{line}");
    }
    eprintln!(
        "agent · {model} · tools: {}",
        session.tools.names().join(", ")
    );
    let asked = Question {
        text: &question,
        system: args.system.clone().unwrap_or_else(|| DEFAULT_SYSTEM.into()),
        prompt: prompt.as_ref(),
        limits: AgentLimits {
            max_steps: args.max_steps.max(1),
            max_tokens: args.max_tokens.max(1),
            max_wall: Duration::from_secs(args.max_seconds.max(1)),
            ..AgentLimits::default()
        },
        temperature: args.temperature,
        seed: args.seed,
        seed_offset: 0,
        ground_numbers: !args.free_numbers,
    };
    let record = session.record_question(&loaded.name, &question)?;
    let mut err = std::io::stderr().lock();
    let mut at_line_start = true;
    let trace = session.ask(&mut loaded, &asked, record, &mut |event| {
        match event {
            AgentEvent::Token(piece) => {
                if at_line_start {
                    let _ = write!(err, "  … ");
                    at_line_start = false;
                }
                let _ = write!(err, "{}", piece.replace('\n', " "));
            }
            AgentEvent::Step(step) => {
                let _ = writeln!(err);
                at_line_start = true;
                let _ = writeln!(err, "{}", describe_step(step));
            }
        }
        let _ = err.flush();
        Flow::Continue
    })?;
    drop(err);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&trace)?);
    }
    let summary = format!(
        "{} step{} · {} tokens · {:.1} s",
        trace.steps.len(),
        if trace.steps.len() == 1 { "" } else { "s" },
        trace.generated_tokens(),
        trace.total_ms / 1000.0
    );
    match (&trace.answer, trace.stop) {
        (Some(answer), _) => {
            if !args.json {
                println!("{answer}");
            }
            eprintln!("{summary}");
            Ok(Outcome::Passed)
        }
        (None, stop) => {
            eprintln!(
                "no answer: stopped at {}{} ({summary})",
                stop.as_str(),
                trace
                    .error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
            Ok(match stop {
                AgentStop::Cancelled => Outcome::Interrupted,
                AgentStop::EngineError => Outcome::Errored,
                _ => Outcome::Failed,
            })
        }
    }
}

pub(super) fn describe_step(step: &promptlab::trace::AgentStep) -> String {
    match step.outcome() {
        Some(Ok(value)) => format!(
            "{}\n    → {}",
            step.headline(),
            clip(&value.to_string(), 300)
        ),
        Some(Err(error)) => format!("{}\n    → error: {error}", step.headline()),
        None => step.headline(),
    }
}

fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}
