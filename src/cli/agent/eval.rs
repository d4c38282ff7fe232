//! `promptlab agent --eval FILE`: every question of an agent evaluation set, for each model,
//! with the tool-use figures per model: valid calls, tool selection, arguments, answers,
//! steps and time.

use std::path::Path;

use anyhow::{Result, bail};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use promptlab::agent::eval::{AgentEvalSet, AgentScores, check_trace};

use super::{AgentArgs, AskOptions, Outcome, Session};

pub(super) fn run(args: &AgentArgs, path: &Path) -> Result<Outcome> {
    let set = AgentEvalSet::load(path)?;
    let models = if args.model.is_empty() {
        set.models.clone()
    } else {
        args.model.clone()
    };
    if models.is_empty() {
        bail!(
            "{}: no models: add `models:` to the set or pass --model",
            path.display()
        );
    }
    let mut cases: Vec<_> = set
        .cases
        .iter()
        .filter(|c| args.filter.is_empty() || c.tags.iter().any(|t| args.filter.contains(t)))
        .collect();
    if let Some(limit) = args.limit {
        cases.truncate(limit);
    }
    if cases.is_empty() {
        bail!("{}: no cases left after --filter/--limit", path.display());
    }
    // One column per prompt (or the built-in system prompt), each with its tools.
    let selectors: Vec<Option<String>> = match (&args.prompt, set.prompts.is_empty()) {
        (Some(p), _) => vec![Some(p.clone())],
        (None, true) => vec![None],
        (None, false) => set.prompts.iter().cloned().map(Some).collect(),
    };
    let mut columns = Vec::new();
    for selector in &selectors {
        let prompt = match selector {
            Some(s) => Some(super::find_prompt(args, s)?),
            None => None,
        };
        let wanted = if !args.tools.is_empty() {
            args.tools.clone()
        } else if let Some(p) = prompt.as_ref().filter(|p| !p.tools.is_empty()) {
            p.tools.clone()
        } else {
            set.tools.clone()
        };
        columns.push((prompt, Session::open(args, &wanted)?));
    }
    let max_steps = set.max_steps.unwrap_or(args.max_steps);
    let mut all_scores = Vec::new();
    let mut records = Vec::new();
    let mut failures = Vec::new();
    for model in &models {
        let mut loaded = columns[0].1.load_model(model)?;
        for (prompt, session) in &columns {
            let specs = session.tools.specs();
            let column = match prompt {
                Some(p) => format!("{} @ {model}", p.id),
                None => model.clone(),
            };
            let mut scores = AgentScores {
                model: column.clone(),
                ..AgentScores::default()
            };
            for (n, case) in cases.iter().enumerate() {
                let options = AskOptions {
                    system: set.system.as_deref(),
                    prompt: prompt.as_ref(),
                    max_steps,
                    verbose: false,
                };
                let trace = session.ask(&mut loaded, &case.question, args, options)?;
                let outcomes = check_trace(&case.checks, &trace);
                let passed = outcomes.iter().all(|o| o.passed);
                eprintln!(
                    "{column} · {}/{} {} {} ({} steps, {:.1} s)",
                    n + 1,
                    cases.len(),
                    if passed { "✓" } else { "✗" },
                    case.id,
                    trace.steps.len(),
                    trace.total_ms / 1000.0
                );
                for outcome in outcomes.iter().filter(|o| !o.passed) {
                    failures.push(format!(
                        "  ✗ {column} · {} · {}: {}",
                        case.id,
                        outcome.check,
                        outcome.reason.as_deref().unwrap_or("failed")
                    ));
                }
                scores.add(&trace, &outcomes, &specs);
                records.push(serde_json::json!({
                    "model": model,
                    "prompt": prompt.as_ref().map(|p| p.id.clone()),
                    "case": case.id,
                    "question": case.question,
                    "passed": passed,
                    "checks": outcomes,
                    "trace": trace,
                }));
            }
            all_scores.push(scores);
        }
    }
    if let Some(output) = &args.output {
        let report = serde_json::json!({
            "eval_set": set.name,
            "scores": all_scores,
            "cases": records,
        });
        std::fs::write(output, serde_json::to_string_pretty(&report)? + "\n")?;
        eprintln!("wrote {}", output.display());
    }
    println!("{}", scores_table(&all_scores));
    if !failures.is_empty() {
        println!("Failures ({}):\n{}", failures.len(), failures.join("\n"));
    }
    let all_passed = all_scores.iter().all(|s| s.passed == s.cases);
    Ok(if all_passed {
        Outcome::Passed
    } else {
        Outcome::Failed
    })
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

fn scores_table(scores: &[AgentScores]) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
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
