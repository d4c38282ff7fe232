//! `reflect` (GEPA's idea): the proposer first writes a diagnosis of the parent's
//! failures, then edits the instruction with that diagnosis in hand. Parents come from
//! the Pareto set over tuning cases (a candidate stays a possible parent while it is
//! best on some case), drawn in proportion to the cases it leads, so an instruction
//! that is worse on average but right where the others fail is not lost.

use std::collections::BTreeMap;

use rand::Rng;

use super::super::StrategyKind;
use super::super::proposer::{Ask, instruction_from};
use super::rewrite::SYSTEM;
use super::{
    Context, INSTRUCTION_GRAMMAR, Proposal, REPLY_FORM, Strategy, failure_lines, task_text,
};
use crate::prompt::ChatMessage;

pub struct Reflect;

impl Strategy for Reflect {
    fn kind(&self) -> StrategyKind {
        StrategyKind::Reflect
    }

    fn propose(&self, ctx: &Context<'_>, count: usize) -> Vec<Proposal> {
        let Some(proposer) = ctx.proposer else {
            return Vec::new();
        };
        let front = pareto_front(ctx);
        let mut parents = Vec::new();
        let mut contexts = Vec::new();
        let mut diagnose = Vec::new();
        for slot in 0..count {
            let mut rng = ctx.rng(self.kind(), slot);
            let total: usize = front.iter().map(|(_, w)| w).sum();
            let mut pick = rng.random_range(0..total.max(1));
            let mut parent = ctx.beam.first().copied().unwrap_or(0);
            for (number, weight) in &front {
                if pick < *weight {
                    parent = *number;
                    break;
                }
                pick -= weight;
            }
            let candidate = ctx.candidate(parent);
            let failures = failure_lines(ctx, candidate, 6, &mut rng);
            let mut text = task_text(ctx, &candidate.version);
            if failures.is_empty() {
                text.push_str("The instruction passes every tuning case shown.\n\n");
            } else {
                text.push_str("Cases the instruction gets wrong:\n");
                text.push_str(&failures.join("\n"));
                text.push_str("\n\n");
            }
            parents.push(parent);
            diagnose.push(ask(
                format!(
                    "{text}In two to four sentences, say what these failures have in common and what in the instruction leads the model to them. Do not write a new instruction yet."
                ),
                ctx.proposer_seed(self.kind(), slot),
                200,
                None,
            ));
            contexts.push(text);
        }
        let diagnoses = proposer.ask(&diagnose, ctx.cancel);
        let edits: Vec<Ask> = contexts
            .iter()
            .zip(&diagnoses)
            .enumerate()
            .map(|(slot, (text, diagnosis))| {
                let diagnosis = diagnosis.as_deref().unwrap_or("(no diagnosis)");
                ask(
                    format!(
                        "{text}Diagnosis of the failures:\n{}\n\nNow write the improved instruction that follows from this diagnosis. Keep every variable in double braces exactly as it is written. {REPLY_FORM}",
                        diagnosis.trim()
                    ),
                    ctx.proposer_seed(self.kind(), slot).wrapping_add(1),
                    400,
                    Some(INSTRUCTION_GRAMMAR.into()),
                )
            })
            .collect();
        let replies = proposer.ask(&edits, ctx.cancel);
        parents
            .into_iter()
            .zip(diagnoses.into_iter().zip(replies))
            .map(|(parent, (diagnosis, reply))| {
                let diagnosis = diagnosis.unwrap_or_default();
                match reply {
                    Ok(text) => Proposal {
                        parent,
                        version: instruction_from(&text)
                            .map(|i| ctx.candidate(parent).version.with_instruction(&i)),
                        text: format!("Diagnosis: {}\n\n{text}", diagnosis.trim()),
                    },
                    Err(err) => Proposal {
                        parent,
                        version: Err(format!("the proposer failed: {err}")),
                        text: diagnosis,
                    },
                }
            })
            .collect()
    }
}

fn ask(content: String, seed: u32, max_tokens: u32, grammar: Option<String>) -> Ask {
    Ask {
        messages: vec![
            ChatMessage {
                role: "system".into(),
                content: SYSTEM.into(),
            },
            ChatMessage {
                role: "user".into(),
                content,
            },
        ],
        seed,
        temperature: 0.8,
        max_tokens,
        grammar,
    }
}

/// The evaluated candidates that are best on at least one tuning case and not dominated
/// by another, each with the number of cases it leads (its weight as a parent).
pub(crate) fn pareto_front(ctx: &Context<'_>) -> Vec<(usize, usize)> {
    let scored: Vec<(usize, BTreeMap<&str, f64>)> = ctx
        .candidates
        .iter()
        .filter_map(|c| {
            c.tuning.as_ref().map(|s| {
                (
                    c.number,
                    s.outcomes
                        .iter()
                        .map(|o| {
                            (
                                o.case_id.as_str(),
                                if o.passed { 1.0 + o.score } else { o.score },
                            )
                        })
                        .collect(),
                )
            })
        })
        .collect();
    let cases: Vec<&str> = scored
        .first()
        .map(|(_, s)| s.keys().copied().collect())
        .unwrap_or_default();
    let mut leads: BTreeMap<usize, usize> = BTreeMap::new();
    for case in &cases {
        let best = scored
            .iter()
            .map(|(_, s)| s.get(case).copied().unwrap_or(0.0))
            .fold(f64::NEG_INFINITY, f64::max);
        for (number, s) in &scored {
            if s.get(case).copied().unwrap_or(0.0) >= best {
                *leads.entry(*number).or_default() += 1;
            }
        }
    }
    let dominated = |a: &BTreeMap<&str, f64>| {
        scored.iter().any(|(_, b)| {
            cases.iter().all(|c| b.get(c) >= a.get(c)) && cases.iter().any(|c| b.get(c) > a.get(c))
        })
    };
    let mut front: Vec<(usize, usize)> = scored
        .iter()
        .filter(|(number, s)| leads.contains_key(number) && !dominated(s))
        .map(|(number, _)| (*number, leads[number]))
        .collect();
    if front.is_empty() {
        front.extend(ctx.beam.first().map(|n| (*n, 1)));
    }
    front
}
