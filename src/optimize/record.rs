//! Optimizations as the run store holds them, for whoever watches or acts on one that
//! may still be running elsewhere (the workbench's Optimize screen, `optimize --accept`):
//! a read-only snapshot, the lineage as a tree, and accepting a candidate as a variant.

use serde::Serialize;

use super::search::{Request, State};
use super::variant::{Written, write_variant};
use super::{Candidate, OptimizeError, variant_name};
use crate::prompt::Prompt;
use crate::store::{RunStatus, RunStore};

/// An optimization as stored right now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub id: i64,
    pub eval_set: String,
    pub status: RunStatus,
    pub started_at: String,
    pub request: Request,
    pub state: State,
    pub candidates: Vec<Candidate>,
    /// The evaluation run in flight: (its id, cells done, cells planned).
    pub in_flight: Option<(i64, usize, usize)>,
}

impl Snapshot {
    pub fn load(store: &RunStore, id: i64) -> Result<Option<Snapshot>, OptimizeError> {
        let Some(row) = store.optimization(id)? else {
            return Ok(None);
        };
        let unreadable = |what: &str, e: serde_json::Error| OptimizeError::Resume {
            id: Some(id),
            message: format!("unreadable {what} ({e})"),
        };
        let request: Request =
            serde_json::from_str(&row.config_json).map_err(|e| unreadable("configuration", e))?;
        let state: State =
            serde_json::from_str(&row.state_json).map_err(|e| unreadable("state", e))?;
        let candidates = store
            .candidates(id)?
            .iter()
            .map(super::setup::candidate_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| unreadable("candidate", e))?;
        let mut in_flight = None;
        if row.status == RunStatus::Running
            && let Some(run_id) = candidates
                .iter()
                .filter(|c| c.is_pending())
                .find_map(|c| c.run_id)
            && let Some(run) = store.run(run_id)?
        {
            in_flight = Some((run_id, run.cells_done, run.cell_count));
        }
        Ok(Some(Snapshot {
            id,
            eval_set: row.eval_set,
            status: row.status,
            started_at: row.started_at,
            request,
            state,
            candidates,
            in_flight,
        }))
    }

    /// Every optimization in the store, newest first.
    pub fn load_all(store: &RunStore) -> Result<Vec<Snapshot>, OptimizeError> {
        let mut all = Vec::new();
        for row in store.optimizations()? {
            all.extend(Snapshot::load(store, row.id)?);
        }
        Ok(all)
    }

    /// Candidate `number` as the prompt it was evaluated as.
    pub fn prompt_of(&self, number: usize) -> Option<Prompt> {
        let candidate = self.candidates.get(number)?;
        if candidate.is_baseline() {
            return Some(self.state.base.clone());
        }
        Some(candidate.version.to_prompt(
            &self.state.base,
            &variant_name(self.id, number),
            &description(self.id, candidate),
        ))
    }

    /// The candidates in lineage order (depth first from the baseline, children by
    /// number), each with its depth in the tree.
    pub fn tree(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut stack = vec![(0usize, 0usize)];
        while let Some((number, depth)) = stack.pop() {
            if number >= self.candidates.len() {
                continue;
            }
            out.push((number, depth));
            let children: Vec<usize> = self
                .candidates
                .iter()
                .filter(|c| c.parent == Some(number))
                .map(|c| c.number)
                .collect();
            stack.extend(children.into_iter().rev().map(|c| (c, depth + 1)));
        }
        out
    }

    /// A line on what is going on: the round and the run in flight, or how it ended.
    pub fn activity(&self) -> String {
        match (self.status, &self.state.verdict) {
            (_, Some(verdict)) => verdict.summary(),
            (RunStatus::Running, None) => match self.in_flight {
                Some((run, done, total)) => format!(
                    "round {}: evaluating on the {} part, {done}/{total} cells (run {run})",
                    self.state.round,
                    if self
                        .candidates
                        .iter()
                        .any(|c| c.is_pending() && c.number > 0)
                    {
                        "tuning"
                    } else {
                        "baseline's tuning"
                    }
                ),
                None if self.state.stop_reason.is_some() => {
                    "the finalists are being evaluated on the held-out part".into()
                }
                None => format!(
                    "round {}: the proposer is writing candidates",
                    self.state.round + 1
                ),
            },
            (RunStatus::Cancelled, None) => format!(
                "interrupted after round {}; `promptlab optimize --resume {}` continues it",
                self.state.round, self.id
            ),
            (RunStatus::Finished, None) => "finished".into(),
        }
    }
}

fn description(id: i64, candidate: &Candidate) -> String {
    format!(
        "promptlab optimize {id}: candidate {} ({}, round {})",
        candidate.number, candidate.strategy, candidate.round
    )
}

/// Writes candidate `number` of optimization `id` into its prompt file as the variant
/// `opt{id}-{number}` (see [`write_variant`]).
pub fn accept(store: &RunStore, id: i64, number: usize) -> Result<Written, OptimizeError> {
    let snapshot = Snapshot::load(store, id)?.ok_or_else(|| OptimizeError::Resume {
        id: Some(id),
        message: format!("not in {}", store.path().display()),
    })?;
    let invalid = |message: String| OptimizeError::Resume {
        id: Some(id),
        message,
    };
    let candidate = snapshot
        .candidates
        .get(number)
        .ok_or_else(|| invalid(format!("it has no candidate {number}")))?;
    if candidate.is_baseline() {
        return Err(invalid(
            "candidate 0 is the baseline, already in its file".into(),
        ));
    }
    if let Some(why) = &candidate.rejected {
        return Err(invalid(format!("candidate {number} was refused: {why}")));
    }
    let prompt = snapshot
        .prompt_of(number)
        .ok_or_else(|| invalid(format!("it has no candidate {number}")))?;
    let evidence = match &snapshot.state.verdict {
        Some(v) if v.winner == Some(number) => v.summary(),
        Some(v) => match v.finalist(number) {
            Some(f) => format!(
                "accepted by hand; held-out {}/{} vs baseline {}/{}, McNemar p = {:.4}",
                f.held_out.passed, f.held_out.cases, v.baseline.passed, v.baseline.cases, f.p_value
            ),
            None => "accepted by hand; not tried on the held-out part".into(),
        },
        None => "accepted by hand while the optimization ran".into(),
    };
    write_variant(
        &snapshot.state.base,
        &prompt,
        &variant_name(id, number),
        &format!("{}: {evidence}", description(id, candidate)),
    )
    .map_err(|e| OptimizeError::Invalid {
        path: e.path.clone(),
        message: e.message,
    })
}
