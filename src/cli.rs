//! Command-line interface: argument parsing, logging set-up and the mapping from errors
//! to exit codes (see [`EXIT_CODES`]).

mod agent;
mod bench;
mod eval;
mod init;
mod models;
mod optimize;
mod report;
mod runs;
mod serve;
mod sweep;
mod vision;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "promptlab",
    version,
    about = "Prompt engineering and evaluation on local models",
    after_help = EXIT_CODES
)]
struct Cli {
    /// Without a command, opens the terminal workbench when run inside a project.
    #[command(subcommand)]
    command: Option<Command>,
    /// Colour the tables' verdicts: `auto` does on a terminal unless NO_COLOR is set.
    /// Tables fit the terminal's width (or COLUMNS when set).
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto)]
    color: ColorWhen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ColorWhen {
    Auto,
    Always,
    Never,
}

static TABLE_STYLE: std::sync::OnceLock<promptlab::report::TableStyle> = std::sync::OnceLock::new();

/// How this invocation's tables look (set once from `--color`, NO_COLOR and the terminal).
pub(crate) fn table_style() -> promptlab::report::TableStyle {
    TABLE_STYLE.get().copied().unwrap_or_default()
}

/// The table style for `--color when`: colour on a terminal unless NO_COLOR is set and
/// not empty (no-color.org) or TERM is `dumb`; the width of the terminal, or COLUMNS.
fn table_style_for(when: ColorWhen) -> promptlab::report::TableStyle {
    use std::io::IsTerminal;
    let terminal = std::io::stdout().is_terminal();
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    let color = match when {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto => {
            terminal && !set("NO_COLOR") && std::env::var("TERM").map_or(true, |t| t != "dumb")
        }
    };
    let columns = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<u16>().ok())
        .filter(|&c| c >= 20);
    let width = columns.or_else(|| {
        terminal
            .then(|| crossterm::terminal::size().ok().map(|(w, _)| w))
            .flatten()
            .filter(|&w| w >= 20)
    });
    promptlab::report::TableStyle { width, color }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a starter project (a model entry, a prompt, an eval set) and say what to run.
    Init(init::InitArgs),
    /// Run an evaluation set: prompts × models × cases, scored.
    Eval(eval::EvalArgs),
    /// Ask a question; a local model answers by calling the vision tools.
    Agent(agent::AgentArgs),
    /// Inspect the model catalog (models/models.yaml).
    Models {
        #[command(subcommand)]
        command: models::ModelsCommand,
    },
    /// Recorded runs: list, show, compare.
    Runs {
        #[command(subcommand)]
        command: runs::RunsCommand,
    },
    /// Serve the catalog's chat models over an OpenAI-compatible HTTP API.
    Serve(serve::ServeArgs),
    /// Run every setting of an eval set's `sweep:` section and compare them.
    Sweep(sweep::SweepArgs),
    /// Improve a prompt against an eval set: a proposer model writes candidates, the best
    /// are proven on held-out cases, the winner becomes a new variant.
    Optimize(optimize::OptimizeArgs),
    /// Write any stored run as a report: summary in the terminal, or -o FILE (.json,
    /// .jsonl, .csv, .md, .xml, .html).
    Report(report::ReportArgs),
    /// Measure single-stream speed against llama.cpp's own, in the same run.
    Bench(bench::BenchArgs),
    /// Vision models: train, evaluate and use the digit CNN.
    Vision {
        #[command(subcommand)]
        command: vision::VisionCommand,
    },
    /// Print a shell completion script: `promptlab completions bash >
    /// ~/.local/share/bash-completion/completions/promptlab` (zsh, fish, elvish, powershell
    /// too).
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (`promptlab man | man -l -`), or write one page per command
    /// into a folder with --dir.
    Man {
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// The terminal workbench: browse, edit, run, compare (what a bare `promptlab` opens).
    Tui {
        /// Project folder (default: the one containing the current folder).
        project: Option<PathBuf>,
    },
    /// Loads one GGUF file with llama.cpp and exits: promptlab runs itself this way before
    /// loading a file, so a file that crashes llama.cpp ends only this child.
    #[command(name = "probe-model", hide = true)]
    ProbeModel { path: PathBuf },
}

/// How a command ended, mapped to the process exit code in one place.
pub enum Outcome {
    Passed,
    Failed,
    /// Some cells (or the agent's question) could not be generated or judged: their
    /// engine or judge failed, so the figures are incomplete.
    Errored,
    /// Stopped by Ctrl-C; exits 130 like other interrupted programs.
    Interrupted,
}

impl Outcome {
    /// A finished run's outcome: errored cells outrank failed ones.
    pub fn of_run(passed: bool, errored_cells: usize) -> Outcome {
        match (errored_cells, passed) {
            (1.., _) => Outcome::Errored,
            (0, true) => Outcome::Passed,
            (0, false) => Outcome::Failed,
        }
    }
}

/// The exit codes, as `--help` shows them.
const EXIT_CODES: &str = "Exit codes:
  0    everything passed
  1    some cells failed their assertions (or the pass rate is below --min-pass-rate)
  2    bad input: a file, flag or configuration is wrong or missing (the message names it)
  3    a runtime failure: an engine crashed or failed, a cell could not be generated or
       judged, memory or disk ran out, or a file that is there could not be read or written
  130  interrupted (Ctrl-C); finished work is kept";

const EXIT_BAD_INPUT: u8 = 2;
const EXIT_RUNTIME: u8 = 3;

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(EXIT_BAD_INPUT)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let _ = TABLE_STYLE.set(table_style_for(cli.color));
    let command = match cli.command {
        Some(command) => command,
        None if crate::tui::find_project(std::path::Path::new(".")).is_some() => {
            Command::Tui { project: None }
        }
        None => {
            let _ = <Cli as clap::CommandFactory>::command().print_help();
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    // The TUI owns the screen: its logs go to a file.
    let tui_log = match &command {
        Command::Tui { project } => {
            crate::tui::find_project(project.as_deref().unwrap_or(std::path::Path::new(".")))
                .map(|root| root.join(".promptlab").join("tui.log"))
        }
        _ => None,
    };
    init_logging(tui_log);
    // The probing child itself loads in-process.
    if !matches!(command, Command::ProbeModel { .. })
        && let Ok(program) = std::env::current_exe()
    {
        promptlab::engine::llama::probe::isolate_loads(program);
    }
    let result = match command {
        Command::Tui { project } => crate::tui::run(project).map(|()| Outcome::Passed),
        Command::Init(args) => init::run(args),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "promptlab", &mut std::io::stdout());
            Ok(Outcome::Passed)
        }
        Command::Man { dir } => write_man(dir),
        Command::Eval(args) => eval::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Models { command } => models::run(command),
        Command::Bench(args) => bench::run(args),
        Command::Runs { command } => runs::run(command),
        Command::Report(args) => report::run(args),
        Command::Sweep(args) => sweep::run(args),
        Command::Optimize(args) => optimize::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Vision { command } => vision::run(command),
        Command::ProbeModel { path } => promptlab::engine::llama::probe::load_here(&path)
            .map(|()| Outcome::Passed)
            .map_err(anyhow::Error::from),
    };
    match result {
        Ok(Outcome::Passed) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(1),
        Ok(Outcome::Errored) => ExitCode::from(EXIT_RUNTIME),
        Ok(Outcome::Interrupted) => ExitCode::from(130),
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {}", error_text(&err));
            ExitCode::from(exit_code_of(&err))
        }
    }
}

/// Writes a report file, or with `-` the JSON report to standard output.
fn write_report(result: &promptlab::run::RunResult, path: &std::path::Path) -> anyhow::Result<()> {
    use promptlab::report;
    use std::io::Write;
    if report::is_stdout(path) {
        let bytes = report::to_bytes(result, report::Format::Json)?;
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&bytes)?;
        stdout.write_all(b"\n")?;
        stdout.flush()?;
    } else {
        report::write(result, path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The manual page on stdout, or a page per command in `dir`.
fn write_man(dir: Option<PathBuf>) -> anyhow::Result<Outcome> {
    use anyhow::Context;
    let command = <Cli as clap::CommandFactory>::command();
    match dir {
        None => clap_mangen::Man::new(command).render(&mut std::io::stdout())?,
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
            clap_mangen::generate_to(command, &dir).with_context(|| dir.display().to_string())?;
            println!("manual pages written to {}", dir.display());
        }
    }
    Ok(Outcome::Passed)
}

/// 3 for a runtime failure anywhere in the error's chain, else 2 (bad input).
fn exit_code_of(err: &anyhow::Error) -> u8 {
    let kind = err.chain().find_map(promptlab::failure::classify);
    match kind {
        Some(promptlab::failure::Failure::Runtime) => EXIT_RUNTIME,
        Some(promptlab::failure::Failure::BadInput) | None => EXIT_BAD_INPUT,
    }
}

/// The error and its causes on one line. Library errors already include their cause in
/// their message, so a cause whose text is already shown is not repeated.
pub(crate) fn error_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Logs (including llama.cpp's own, routed through `tracing`) are off unless
/// PROMPTLAB_LOG asks for them, and go to PROMPTLAB_LOG_FILE when set, so they never
/// scribble over the progress bar. The TUI always logs warnings and errors to
/// `tui_log` (the screen is its own).
fn init_logging(tui_log: Option<PathBuf>) {
    use tracing_subscriber::EnvFilter;
    let default = if tui_log.is_some() { "warn" } else { "off" };
    let filter =
        EnvFilter::try_from_env("PROMPTLAB_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let file = std::env::var_os("PROMPTLAB_LOG_FILE")
        .map(PathBuf::from)
        .or(tui_log);
    if let Some(dir) = file.as_deref().and_then(std::path::Path::parent) {
        let _ = std::fs::create_dir_all(dir);
    }
    match file {
        Some(path) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            Ok(file) => builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init(),
            Err(err) => {
                eprintln!("warning: cannot open log file {}: {err}", path.display());
                builder.with_writer(std::io::stderr).init();
            }
        },
        None => builder.with_writer(std::io::stderr).init(),
    }
}
