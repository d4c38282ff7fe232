//! `promptlab optimize EVALSET --prompt P --model M --proposer Q --budget N`: improves a
//! prompt against an eval set (see `promptlab::optimize`), printing each candidate as it
//! is scored, then the held-out verdict, and writes the winner as a new variant of the
//! prompt file (`--dry-run` only prints it).

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use promptlab::compare::{WordChange, word_diff};
use promptlab::optimize::search::Runtime;
use promptlab::optimize::variant::write_variant;
use promptlab::optimize::version::prompt_text;
use promptlab::optimize::{
    Candidate, Objective, Optimization, OptimizeObserver, Progress as Done, Request, StrategyKind,
    Verdict, variant_name,
};
use promptlab::run::RunObserver;
use promptlab::score::stats::format_rate;

use super::Outcome;
use super::eval::progress::Progress;
use super::eval::{Execution, cancel_on_interrupt};

#[derive(Debug, clap::Args)]
pub struct OptimizeArgs {
    /// The eval set to optimize against (a file, or NAME for eval-sets/NAME.yaml).
    pub eval_set: PathBuf,
    /// The prompt to improve: `name` or `name:variant` (one prompt).
    #[arg(long, required_unless_present_any = ["resume", "accept"])]
    pub prompt: Option<String>,
    /// The model the prompt is tuned for.
    #[arg(long, required_unless_present_any = ["resume", "accept"])]
    pub model: Option<String>,
    /// The catalog model that writes new versions (rewrite and reflect need one).
    #[arg(long, value_name = "MODEL")]
    pub proposer: Option<String>,
    /// Cells the whole optimization may evaluate (candidates × cases, the held-out part
    /// included; cached cells count too).
    #[arg(long, value_name = "CELLS")]
    pub budget: Option<usize>,
    /// Rounds of proposals, at most.
    #[arg(long, value_name = "N")]
    pub rounds: Option<usize>,
    /// How candidates are made, comma-separated: rewrite, few-shot, reflect.
    #[arg(long, value_delimiter = ',', default_value = "rewrite,few-shot",
          value_parser = ["rewrite", "few-shot", "reflect"])]
    pub strategy: Vec<String>,
    /// The share of cases to tune on; the rest is held out for the verdict.
    #[arg(long, default_value_t = 0.6)]
    pub split: f64,
    /// Fixes the split and the proposals: the same seed gives the same candidates.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// What candidates are ranked by on the tuning part.
    #[arg(long, default_value = "pass-rate", value_parser = ["pass-rate", "mean-score", "macro-f1"])]
    pub objective: String,
    /// Candidates proposed per round.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub per_round: u64,
    /// Candidates kept as parents for the next round.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub beam: u64,
    /// Rounds without a better candidate before the search stops.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub patience: u64,
    /// Candidates tried on the held-out part.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub finalists: u64,
    /// Significance level of the held-out McNemar test (Holm-adjusted over the finalists).
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Only cases with this tag (repeatable).
    #[arg(long = "filter", value_name = "TAG")]
    pub tags: Vec<String>,
    /// At most N cases.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Continue an interrupted optimization (the newest of this eval set, or ID); its
    /// recorded options replace the ones above.
    #[arg(long, value_name = "ID", num_args = 0..=1, default_missing_value = "latest")]
    pub resume: Option<String>,
    /// Print the winner instead of writing it into the prompt file.
    #[arg(long)]
    pub dry_run: bool,
    /// Write candidate N of optimization ID into its prompt file as the variant
    /// `optID-N`, proven better or not, and do nothing else.
    #[arg(long, value_name = "ID:N", conflicts_with = "resume")]
    pub accept: Option<String>,
    /// Write the optimization (configuration, split, every candidate with its lineage and
    /// scores, the verdict) as JSON to FILE.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Project folder (default: found from the eval set's location).
    #[arg(long)]
    pub project: Option<PathBuf>,
    #[command(flatten)]
    pub execution: Execution,
}

struct Printer {
    progress: Progress,
    quiet: bool,
}

impl OptimizeObserver for Printer {
    fn note(&mut self, text: &str) {
        self.progress.bar.suspend(|| eprintln!("{text}"));
    }

    fn candidate(&mut self, c: &Candidate) {
        let line = candidate_line(c);
        self.progress.bar.suspend(|| eprintln!("{line}"));
    }

    fn evaluation(&mut self, _label: &str, cells: usize) {
        self.progress.bar.finish_and_clear();
        self.progress = Progress::new(cells as u64, self.quiet, None);
    }

    fn run_observer(&mut self) -> &mut dyn RunObserver {
        &mut self.progress
    }
}

fn candidate_line(c: &Candidate) -> String {
    let origin = match c.parent {
        Some(parent) => format!("{} of {parent}", c.strategy),
        None => c.strategy.clone(),
    };
    match (&c.rejected, &c.tuning) {
        (Some(why), _) => format!("  candidate {} ({origin}): refused, {why}", c.number),
        (None, Some(scored)) => format!(
            "  candidate {} ({origin}): tuning {} · objective {:.3}",
            c.number,
            format_rate(scored.passed, scored.cases),
            scored.objective
        ),
        (None, None) => format!("  candidate {} ({origin}): proposed", c.number),
    }
}

pub fn run(mut args: OptimizeArgs) -> Result<Outcome> {
    args.eval_set = super::eval::resolve_eval_set(&args.eval_set, args.project.as_deref())?;
    if let Some(which) = &args.accept {
        return accept(&args, which);
    }
    let runtime = Runtime {
        project: args.project.clone(),
        use_cache: !args.execution.no_cache,
        execute: args.execution.options(),
        gpu_layers: args.execution.gpu_layers,
    };
    let mut optimization = match args.resume.as_deref() {
        Some(which) => {
            let id = match which {
                "latest" => None,
                id => Some(id.parse::<i64>().map_err(|_| {
                    anyhow!("--resume {id}: expected an optimization id or nothing")
                })?),
            };
            Optimization::resume(args.eval_set.clone(), id, runtime)?
        }
        None => Optimization::start(args.eval_set.clone(), request(&args)?, runtime)?,
    };
    let split = &optimization.state.split;
    eprintln!(
        "optimize {}: {} on {}{}; {} cases to tune on, {} held out (stratified by {}), seed {}",
        optimization.id,
        optimization.state.base.id,
        optimization.request.model,
        optimization
            .request
            .proposer
            .as_ref()
            .map(|p| format!(", proposer {p}"))
            .unwrap_or_default(),
        split.tuning.len(),
        split.held_out.len(),
        split.stratified_by,
        optimization.request.seed
    );
    for warning in optimization.warnings() {
        eprintln!("warning: {warning}");
    }
    let cancel = cancel_on_interrupt();
    let mut printer = Printer {
        progress: Progress::new(0, args.execution.quiet, None),
        quiet: args.execution.quiet,
    };
    let started = std::time::Instant::now();
    let done = optimization.run(&mut printer, &cancel)?;
    printer.progress.bar.finish_and_clear();
    if done == Done::Cancelled {
        eprintln!(
            "interrupted; continue with `promptlab optimize {} --resume {}`",
            args.eval_set.display(),
            optimization.id
        );
        return Ok(Outcome::Interrupted);
    }
    let verdict = optimization
        .state
        .verdict
        .clone()
        .context("the optimization finished without a verdict")?;
    if let Some(path) = &args.output {
        write_json(&optimization, path)?;
    }
    print_table(&optimization, &verdict);
    println!("{}", verdict.summary());
    println!(
        "{} cells evaluated in {:.0} s (this session) · optimization {} · held-out run {}",
        optimization.state.spent_cells,
        started.elapsed().as_secs_f64(),
        optimization.id,
        verdict
            .run_id
            .map(|id| id.to_string())
            .unwrap_or_else(|| "-".into())
    );
    let Some(shown) = verdict.best else {
        return Ok(Outcome::Failed);
    };
    let candidate = optimization.prompt_of(shown);
    println!(
        "\ncandidate {shown} against the baseline ([-removed-] {{+added+}}):\n{}",
        plain_word_diff(
            &prompt_text(&optimization.state.base),
            &prompt_text(&candidate)
        )
    );
    let Some(winner) = verdict.winner else {
        println!("\nnothing written: no candidate is proven better on the held-out cases");
        return Ok(Outcome::Failed);
    };
    if args.dry_run {
        println!("\n--dry-run: nothing written");
        return Ok(Outcome::Passed);
    }
    let variant = variant_name(optimization.id, winner);
    let written = write_variant(
        &optimization.state.base,
        &candidate,
        &variant,
        &format!(
            "promptlab optimize {}: {}",
            optimization.id,
            verdict.summary()
        ),
    )?;
    println!(
        "\nwrote `{}` to {}{}",
        written.prompt_id,
        written.path.display(),
        if written.new_file {
            " (a new file: the original has no variants)"
        } else {
            ""
        }
    );
    Ok(Outcome::Passed)
}

/// The optimization as the store holds it, as JSON.
fn write_json(optimization: &Optimization, path: &std::path::Path) -> Result<()> {
    let store = promptlab::store::RunStore::open(&promptlab::project::store_path(
        &optimization.project_root,
    ))?;
    let snapshot = promptlab::optimize::Snapshot::load(&store, optimization.id)?
        .context("the optimization is not in the store")?;
    let json = serde_json::to_string_pretty(&snapshot)?;
    std::fs::write(path, json + "\n").with_context(|| path.display().to_string())?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn accept(args: &OptimizeArgs, which: &str) -> Result<Outcome> {
    let parsed = which
        .split_once(':')
        .and_then(|(id, n)| Some((id.parse::<i64>().ok()?, n.parse::<usize>().ok()?)));
    let Some((id, number)) = parsed else {
        anyhow::bail!(
            "--accept {which}: expected ID:N, e.g. --accept 3:7 for candidate 7 of optimization 3"
        );
    };
    let project = match &args.project {
        Some(dir) => promptlab::project::Project::open(dir),
        None => promptlab::project::Project::discover(&args.eval_set),
    }
    .context("cannot open the project")?;
    let store = promptlab::store::RunStore::open(&project.store_path())?;
    let written = promptlab::optimize::accept(&store, id, number)?;
    println!(
        "wrote `{}` to {}",
        written.prompt_id,
        written.path.display()
    );
    Ok(Outcome::Passed)
}

fn request(args: &OptimizeArgs) -> Result<Request> {
    let strategies = args
        .strategy
        .iter()
        .map(|s| StrategyKind::parse(s).ok_or_else(|| anyhow!("unknown strategy {s}")))
        .collect::<Result<Vec<_>>>()?;
    let objective = Objective::parse(&args.objective)
        .ok_or_else(|| anyhow!("unknown objective {}", args.objective))?;
    Ok(Request {
        prompt: args.prompt.clone().unwrap_or_default(),
        model: args.model.clone().unwrap_or_default(),
        proposer: args.proposer.clone(),
        strategies,
        budget: args.budget,
        rounds: args.rounds,
        split: args.split,
        seed: args.seed,
        per_round: args.per_round as usize,
        beam: args.beam as usize,
        patience: args.patience as usize,
        finalists: args.finalists as usize,
        alpha: args.alpha,
        objective,
        tags: args.tags.clone(),
        limit: args.limit,
    })
}

fn print_table(optimization: &Optimization, verdict: &Verdict) {
    let mut table = crate::cli::table_style().table();
    table.set_header([
        "candidate",
        "strategy",
        "round",
        "parent",
        "tuning pass rate [95% CI]",
        "objective",
        "held-out pass rate [95% CI]",
        "McNemar p (Holm)",
    ]);
    let ranked = optimization.ranking();
    for number in ranked {
        let c = &optimization.candidates[number];
        let Some(tuning) = &c.tuning else { continue };
        let (held_out, p) = if c.is_baseline() {
            (
                format_rate(verdict.baseline.passed, verdict.baseline.cases),
                String::new(),
            )
        } else if let Some(f) = verdict.finalist(number) {
            (
                format_rate(f.held_out.passed, f.held_out.cases),
                format!("{:.4} ({:.4})", f.p_value, f.adjusted_p),
            )
        } else {
            (String::new(), String::new())
        };
        let mark = match verdict.winner {
            Some(w) if w == number => " ★",
            _ => "",
        };
        table.add_row([
            format!("{number}{mark}"),
            c.strategy.clone(),
            c.round.to_string(),
            c.parent.map(|p| p.to_string()).unwrap_or_default(),
            format_rate(tuning.passed, tuning.cases),
            format!("{:.3}", tuning.objective),
            held_out,
            p,
        ]);
    }
    let refused = optimization
        .candidates
        .iter()
        .filter(|c| c.rejected.is_some())
        .count();
    println!("{table}");
    if refused > 0 {
        println!("{refused} candidates were refused before evaluation (see above)");
    }
}

/// `git diff --word-diff=plain` style: `[-removed-]{+added+}`.
fn plain_word_diff(before: &str, after: &str) -> String {
    word_diff(before, after)
        .into_iter()
        .map(|(part, text)| match part {
            WordChange::Same => text,
            WordChange::Removed => format!("[-{text}-]"),
            WordChange::Added => format!("{{+{text}+}}"),
        })
        .collect()
}
