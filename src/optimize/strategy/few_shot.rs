//! `few-shot` (DSPy's bootstrap idea): demonstrations are tuning cases with an output that
//! passed their assertions, shown as earlier user/assistant turns. Each slot draws its own
//! seeded set of `k` (one label after another for classification sets, so each label is
//! shown), and the beam keeps the sets that score best: a random search over
//! demonstration sets. The instruction is the parent's, untouched.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;

use super::super::StrategyKind;
use super::super::version::{Demo, can_be_literal};
use super::{Context, Proposal, Strategy};
use crate::prompt::PromptBody;

#[derive(Default)]
pub struct FewShot {
    /// Demonstrations per candidate; None: one per label for classification sets, else 3.
    pub k: Option<usize>,
}

impl Strategy for FewShot {
    fn kind(&self) -> StrategyKind {
        StrategyKind::FewShot
    }

    fn propose(&self, ctx: &Context<'_>, count: usize) -> Vec<Proposal> {
        (0..count)
            .map(|slot| {
                let parent = ctx.beam[slot % ctx.beam.len().max(1)];
                let version = self.draw(ctx, parent, slot);
                let text = match &version {
                    Ok(v) => format!(
                        "demonstrations from cases {}",
                        v.demos
                            .iter()
                            .map(|d| d.case_id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    Err(why) => why.clone(),
                };
                Proposal {
                    parent,
                    version,
                    text,
                }
            })
            .collect()
    }
}

impl FewShot {
    fn draw(
        &self,
        ctx: &Context<'_>,
        parent: usize,
        slot: usize,
    ) -> Result<super::super::version::Version, String> {
        let candidate = ctx.candidate(parent);
        let PromptBody::Chat(messages) = &candidate.version.body else {
            return Err("few-shot needs a chat prompt (`messages:`)".into());
        };
        let Some(last_user) = messages.iter().rev().find(|m| m.role == "user") else {
            return Err("few-shot needs a user message to show examples of".into());
        };
        // A passing output for each case: the parent's first, then any candidate's.
        let mut passing: BTreeMap<&str, &str> = BTreeMap::new();
        let sources = std::iter::once(candidate).chain(ctx.candidates.iter());
        for source in sources {
            for outcome in source.tuning.iter().flat_map(|s| &s.outcomes) {
                if outcome.passed && can_be_literal(&outcome.output) {
                    passing
                        .entry(outcome.case_id.as_str())
                        .or_insert(outcome.output.as_str());
                }
            }
        }
        if passing.is_empty() {
            return Err("no tuning case has a passing output to show as an example".into());
        }
        // Group by label (one group when the set has none), each group in a seeded order.
        let mut rng = ctx.rng(self.kind(), slot);
        let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for case in passing.keys() {
            let label = ctx.task.labels.get(*case).map(String::as_str).unwrap_or("");
            groups.entry(label).or_default().push(case);
        }
        for members in groups.values_mut() {
            members.shuffle(&mut rng);
        }
        let label_count = ctx
            .task
            .labels
            .values()
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let k = self
            .k
            .unwrap_or(if label_count > 1 { label_count } else { 3 })
            .min(passing.len());
        let mut order: Vec<&str> = groups.keys().copied().collect();
        order.shuffle(&mut rng);
        let mut chosen = Vec::new();
        let mut depth = 0;
        while chosen.len() < k {
            let mut took = false;
            for label in &order {
                if let Some(case) = groups[label].get(depth)
                    && chosen.len() < k
                {
                    chosen.push(*case);
                    took = true;
                }
            }
            if !took {
                break;
            }
            depth += 1;
        }
        let env = crate::template::environment(crate::template::Undefined::Strict);
        let mut demos = Vec::new();
        for case_id in chosen {
            let Some(case) = ctx.task.cases.get(case_id) else {
                continue;
            };
            let vars = minijinja::Value::from_serialize(&case.vars);
            let input = crate::template::render_str(env, &last_user.content, &vars)
                .map_err(|e| format!("case {case_id}: {e}"))?;
            if !can_be_literal(&input) {
                continue;
            }
            demos.push(Demo {
                case_id: case_id.to_string(),
                input,
                output: passing[case_id].to_string(),
            });
        }
        Ok(super::super::version::Version {
            body: candidate.version.body.clone(),
            demos,
        })
    }
}
