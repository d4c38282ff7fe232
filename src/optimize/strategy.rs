//! How new candidates are made. Each strategy is a small module behind [`Strategy`]:
//! `rewrite` (a meta-prompt rewrite from failures and the earlier scores, the idea of
//! promptfoo's `optimize` and OPRO), `reflect` (GEPA's: a diagnosis first, then an edit,
//! parents drawn from the Pareto set over cases) and `few-shot` (demonstrations
//! bootstrapped from passing tuning outputs, DSPy's idea, chosen by seeded random search).

mod few_shot;
mod reflect;
mod rewrite;

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

pub use few_shot::FewShot;
pub use reflect::Reflect;
pub use rewrite::Rewrite;

use super::proposer::Proposer;
use super::version::Version;
use super::{Candidate, StrategyKind};
use crate::engine::CancelToken;
use crate::evalset::Case;
use crate::prompt::{Prompt, PromptBody};

/// What every strategy knows about the task.
pub struct Task {
    /// The eval set's description.
    pub description: String,
    /// Each assertion of the tuning cases, as one line (`json-path $.sentiment = {{ expected }}`).
    pub assertions: Vec<String>,
    /// The tuning cases by id.
    pub cases: BTreeMap<String, Case>,
    /// The held-out cases by id: strategies never read them; candidates are checked to
    /// render for them.
    pub held_out_cases: BTreeMap<String, Case>,
    /// A case's classification label, for classification sets.
    pub labels: BTreeMap<String, String>,
}

pub struct Context<'a> {
    pub base: &'a Prompt,
    /// Every candidate so far, by number; number 0 is the baseline.
    pub candidates: &'a [Candidate],
    /// The best evaluated candidates, best first.
    pub beam: &'a [usize],
    pub task: &'a Task,
    pub round: usize,
    pub seed: u64,
    pub proposer: Option<&'a Proposer>,
    pub cancel: &'a CancelToken,
}

/// A new version, or why the strategy could not make one.
pub struct Proposal {
    pub parent: usize,
    pub version: Result<Version, String>,
    /// The proposer's reply, or how the strategy chose.
    pub text: String,
}

pub trait Strategy {
    fn kind(&self) -> StrategyKind;
    /// Up to `count` proposals for this round.
    fn propose(&self, ctx: &Context<'_>, count: usize) -> Vec<Proposal>;
}

pub fn for_kind(kind: StrategyKind) -> Box<dyn Strategy> {
    match kind {
        StrategyKind::Rewrite => Box::new(Rewrite),
        StrategyKind::Reflect => Box::new(Reflect),
        StrategyKind::FewShot => Box::new(FewShot::default()),
    }
}

impl Context<'_> {
    /// A generator seeded by the run's seed, the round, the strategy and the slot, so the
    /// same seed gives the same candidates.
    pub fn rng(&self, kind: StrategyKind, slot: usize) -> StdRng {
        StdRng::seed_from_u64(self.proposer_seed(kind, slot) as u64)
    }

    pub fn proposer_seed(&self, kind: StrategyKind, slot: usize) -> u32 {
        let mixed = self
            .seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add((self.round as u64) << 20)
            .wrapping_add((kind as u64) << 12)
            .wrapping_add(slot as u64);
        (mixed ^ (mixed >> 29)) as u32
    }

    pub fn candidate(&self, number: usize) -> &Candidate {
        &self.candidates[number]
    }
}

/// The prompt laid out for the proposer, the instruction marked.
pub(crate) fn show_prompt(version: &Version) -> String {
    match &version.body {
        PromptBody::Chat(messages) => {
            let instruction_at = messages
                .iter()
                .position(|m| m.role == "system")
                .unwrap_or(0);
            messages
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let mark = if i == instruction_at {
                        " (the instruction)"
                    } else {
                        ""
                    };
                    format!("[{}{mark}]\n{}", m.role, m.content)
                })
                .collect::<Vec<_>>()
                .join("\n\n")
        }
        PromptBody::Completion(text) | PromptBody::Promptfoo(text) => {
            format!("[completion text (the instruction)]\n{text}")
        }
    }
}

/// Up to `limit` of the candidate's failing tuning cases, in a seeded order, as lines
/// the proposer reads: the variables, the expected value, the output and why it failed.
pub(crate) fn failure_lines(
    ctx: &Context<'_>,
    candidate: &Candidate,
    limit: usize,
    rng: &mut StdRng,
) -> Vec<String> {
    let Some(scored) = &candidate.tuning else {
        return Vec::new();
    };
    let mut failing: Vec<_> = scored.outcomes.iter().filter(|o| !o.passed).collect();
    failing.shuffle(rng);
    failing
        .into_iter()
        .take(limit)
        .enumerate()
        .map(|(i, outcome)| {
            let case = ctx.task.cases.get(&outcome.case_id);
            let vars = case
                .map(|c| {
                    c.vars
                        .iter()
                        .map(|(k, v)| format!("{k} = {}", short(&value_text(v), 400)))
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default();
            let expected = case
                .and_then(|c| c.expected.as_ref())
                .map(|e| format!("\n   Expected: {}", short(&value_text(e), 200)))
                .unwrap_or_default();
            format!(
                "{}. Variables: {vars}{expected}\n   Output: {}\n   Why it failed: {}",
                i + 1,
                short(&outcome.output, 300),
                short(&outcome.reasons.join("; "), 300)
            )
        })
        .collect()
}

/// Earlier versions of the instruction and their tuning scores, worst first (OPRO shows
/// the trajectory in ascending order so the best is nearest the request).
pub(crate) fn trajectory_lines(ctx: &Context<'_>, limit: usize) -> Vec<String> {
    let mut scored: Vec<&Candidate> = ctx
        .candidates
        .iter()
        .filter(|c| c.tuning.is_some())
        .collect();
    scored.sort_by(|a, b| {
        b.objective()
            .total_cmp(&a.objective())
            .then(a.number.cmp(&b.number))
    });
    scored.truncate(limit);
    scored.reverse();
    scored
        .into_iter()
        .map(|c| {
            format!(
                "Score {:.0}%:\n{}",
                c.objective() * 100.0,
                short(c.version.instruction(), 1200)
            )
        })
        .collect()
}

fn value_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// At most `limit` characters, with an ellipsis when cut.
pub(crate) fn short(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(limit).collect();
    cut.push('…');
    cut
}

/// The reply's form, as a llama.cpp grammar: the new instruction between tags. Not JSON:
/// small models copy an instruction's quotes (`{"sentiment": …}`) without escaping them,
/// which would end a JSON string early.
pub(crate) const INSTRUCTION_GRAMMAR: &str = "root ::= \"<instruction>\" [^<]+ \"</instruction>\"";

/// How the proposer is asked to reply.
pub(crate) const REPLY_FORM: &str =
    "Reply with only the new instruction, between <instruction> and </instruction>.";

/// The context every proposer request shares: the task, the prompt and the checks.
pub(crate) fn task_text(ctx: &Context<'_>, version: &Version) -> String {
    let variables = ctx.base.variables();
    let keep = if variables.is_empty() {
        String::new()
    } else {
        format!(
            " Text in double braces ({}) is filled from each case and must be kept exactly as written.",
            variables
                .iter()
                .map(|v| format!("{{{{ {v} }}}}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let mut text = String::new();
    if !ctx.task.description.trim().is_empty() {
        text.push_str(&format!(
            "You are improving the instruction of a prompt for this task: {}\n\n",
            ctx.task.description.trim()
        ));
    }
    text.push_str(&format!(
        "The model receives these messages.{keep}\n\n{}\n\n",
        show_prompt(version)
    ));
    if !ctx.task.assertions.is_empty() {
        text.push_str("Each output is checked by:\n");
        for line in &ctx.task.assertions {
            text.push_str(&format!("- {line}\n"));
        }
        text.push('\n');
    }
    text
}
