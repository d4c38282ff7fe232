//! `promptlab agent --eval FILE`: an agent evaluation set with the agent's own options
//! (tools, limits, sampling). It runs as `promptlab eval FILE` does, through the
//! library's one way of starting an evaluation; this file adds the tool-use figures per
//! column (valid calls, tool selection, arguments, answers, steps, time) that both print.

use std::path::Path;

use anyhow::Result;
use promptlab::agent::ToolModels;
use promptlab::agent::eval::runner::AgentEvalOptions;
use promptlab::evalset::agent::AgentScores;
use promptlab::evaluation::{Request, StoreChoice};

use super::{AgentArgs, Outcome};
use crate::cli::eval::{EvalArgs, Execution, Selection};

/// `promptlab agent --eval FILE`: `--output` writes every question with its trace as
/// JSON.
pub(super) fn run(args: &AgentArgs, path: &Path) -> Result<Outcome> {
    // Refuses a prompt eval set with the way to run it.
    promptlab::evalset::agent::AgentEvalSet::load(path)?;
    let eval = EvalArgs {
        eval_set: path.to_path_buf(),
        selection: Selection {
            project: args.project.clone(),
            ..Selection::default()
        },
        outputs: Vec::new(),
        min_pass_rate: None,
        execution: Execution {
            parallel: args.parallel,
            gpu_layers: args.gpu_layers,
            ..Execution::default()
        },
        rows: 60,
        no_store: args.no_store,
        label: None,
        store: None,
        resume: None,
        repeat: 1,
        judge: None,
        pairwise: false,
        engine: None,
        skip_unsupported: false,
    };
    let request = Request {
        eval_set: path.to_path_buf(),
        project: args.project.clone(),
        prompts: args.prompt.iter().cloned().collect(),
        models: args.model.clone(),
        tags: args.filter.clone(),
        limit: args.limit,
        store: if args.no_store {
            StoreChoice::Off
        } else {
            StoreChoice::Project
        },
        use_cache: true,
        parallel: args.parallel,
        gpu_layers: args.gpu_layers,
        agent: AgentEvalOptions {
            tools: args.tools.clone(),
            tool_models: ToolModels {
                digits: args.digits_model.clone(),
                detectors: args.detector.clone(),
                clip: args.clip.clone(),
            },
            tool_timeout_s: args.tool_timeout,
            allowed: args.allowed.clone(),
            system: args.system.clone(),
            max_steps: args.max_steps,
            max_tokens: args.max_tokens,
            max_seconds: args.max_seconds,
            temperature: args.temperature,
            seed: args.seed,
            ground_numbers: !args.free_numbers,
            ..AgentEvalOptions::default()
        },
        ..Request::default()
    };
    crate::cli::eval::evaluate(&eval, request, args.output.as_deref())
}

/// `61% (19/31) [44–76]`: the rate, the counts and the 95% Wilson interval.
fn rate((passed, total): (usize, usize)) -> String {
    match promptlab::score::stats::wilson_interval(passed, total) {
        None => "–".into(),
        Some((low, high)) => format!(
            "{:.0}% ({passed}/{total}) [{:.0}–{:.0}]",
            passed as f64 * 100.0 / total as f64,
            low * 100.0,
            high * 100.0
        ),
    }
}

pub(crate) fn scores_table(scores: &[AgentScores]) -> String {
    let mut table = crate::cli::table_style().table();
    table.set_header([
        "model (prompt @ model)",
        "cases passed",
        "valid tool calls",
        "cut-off replies",
        "tool selection",
        "arguments",
        "final answer",
        "mean steps",
        "mean time",
    ]);
    for s in scores {
        let cases = s.cases.max(1) as f64;
        table.add_row([
            s.model.clone(),
            rate((s.passed, s.cases)),
            rate((s.valid_calls, s.calls)),
            s.cut_off.to_string(),
            rate(s.selection),
            rate(s.arguments),
            rate(s.answer),
            format!("{:.2}", s.steps as f64 / cases),
            format!("{:.1} s", s.total_ms / cases / 1000.0),
        ]);
    }
    table.to_string()
}
