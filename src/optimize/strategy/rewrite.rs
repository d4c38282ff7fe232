//! `rewrite`: the proposer reads the current instruction, the checks, a sample of failing
//! tuning cases (output and reason) and the earlier instructions with their scores, and
//! writes a new instruction. Each slot takes its parent from the beam in turn and sees
//! its own sample of failures, so one round's candidates differ.

use super::super::StrategyKind;
use super::super::proposer::{Ask, instruction_from};
use super::{
    Context, INSTRUCTION_GRAMMAR, Proposal, REPLY_FORM, Strategy, failure_lines, task_text,
    trajectory_lines,
};
use crate::prompt::ChatMessage;

pub struct Rewrite;

pub(crate) const SYSTEM: &str = "You are an expert prompt engineer. You improve the instruction of a prompt so that a language model gets more test cases right.";

impl Strategy for Rewrite {
    fn kind(&self) -> StrategyKind {
        StrategyKind::Rewrite
    }

    fn propose(&self, ctx: &Context<'_>, count: usize) -> Vec<Proposal> {
        let Some(proposer) = ctx.proposer else {
            return Vec::new();
        };
        let mut parents = Vec::new();
        let mut asks = Vec::new();
        for slot in 0..count {
            let parent = ctx.beam[slot % ctx.beam.len().max(1)];
            let candidate = ctx.candidate(parent);
            let mut rng = ctx.rng(self.kind(), slot);
            let failures = failure_lines(ctx, candidate, 6, &mut rng);
            let mut text = task_text(ctx, &candidate.version);
            let trajectory = trajectory_lines(ctx, 5);
            if trajectory.len() > 1 {
                text.push_str(
                    "Earlier instructions and their scores on the tuning cases (higher is better):\n\n",
                );
                text.push_str(&trajectory.join("\n\n"));
                text.push_str("\n\n");
            }
            if failures.is_empty() {
                text.push_str("The current instruction passes every tuning case shown; make it clearer and more robust.\n\n");
            } else {
                text.push_str("Cases the current instruction gets wrong:\n");
                text.push_str(&failures.join("\n"));
                text.push_str("\n\n");
            }
            text.push_str(&format!(
                "Write a new, improved instruction that fixes these mistakes without breaking the cases it gets right. Keep every variable in double braces exactly as it is written. {REPLY_FORM}"
            ));
            parents.push(parent);
            asks.push(Ask {
                messages: vec![
                    ChatMessage {
                        role: "system".into(),
                        content: SYSTEM.into(),
                    },
                    ChatMessage {
                        role: "user".into(),
                        content: text,
                    },
                ],
                seed: ctx.proposer_seed(self.kind(), slot),
                temperature: 0.8,
                max_tokens: 400,
                grammar: Some(INSTRUCTION_GRAMMAR.into()),
            });
        }
        let replies = proposer.ask(&asks, ctx.cancel);
        parents
            .into_iter()
            .zip(replies)
            .map(|(parent, reply)| match reply {
                Ok(text) => Proposal {
                    parent,
                    version: instruction_from(&text).map(|instruction| {
                        ctx.candidate(parent).version.with_instruction(&instruction)
                    }),
                    text,
                },
                Err(err) => Proposal {
                    parent,
                    version: Err(format!("the proposer failed: {err}")),
                    text: String::new(),
                },
            })
            .collect()
    }
}
