//! Starting and resuming an optimization: the eval set and prompt checked, the cases
//! selected and split, the task the strategies read, and candidates to and from their
//! store rows.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::search::{Optimization, Request, Runtime, State};
use super::split::{Split, split_cases};
use super::strategy::{self, Task};
use super::version::Version;
use super::{Candidate, Objective, OptimizeError};
use crate::evalset::EvalSet;
use crate::project::Project;
use crate::store::{CandidateRow, RunStatus, RunStore};

impl Optimization {
    /// Validates the request, splits the cases and records a new optimization.
    pub fn start(
        eval_set: PathBuf,
        request: Request,
        runtime: Runtime,
    ) -> Result<Optimization, OptimizeError> {
        let invalid = |message: String| OptimizeError::Invalid {
            path: eval_set.clone(),
            message,
        };
        if !(0.05..=0.95).contains(&request.split) {
            return Err(invalid(format!(
                "--split {} is not a share between 0.05 and 0.95 of the cases used for tuning",
                request.split
            )));
        }
        if request.strategies.is_empty() {
            return Err(invalid("no --strategy to propose candidates with".into()));
        }
        if request.strategies.iter().any(|s| s.needs_proposer()) && request.proposer.is_none() {
            return Err(invalid(
                "the rewrite and reflect strategies need --proposer MODEL (a catalog model that writes the new versions)".into(),
            ));
        }
        if request.budget.is_none() && request.rounds.is_none() {
            return Err(invalid("give --budget CELLS or --rounds N".into()));
        }
        let (project, set) = open(&eval_set, runtime.project.as_deref())?;
        if set.metrics.classification.is_none() && request.objective == Objective::MacroF1 {
            return Err(invalid(
                "--objective macro-f1 needs `metrics.classification` in the eval set".into(),
            ));
        }
        let found = project.prompts.select(&request.prompt);
        let base = match found.as_slice() {
            [one] => (*one).clone(),
            [] => {
                return Err(invalid(format!(
                    "unknown prompt `{}`: expected one of {}",
                    request.prompt,
                    project.prompts.names().join(", ")
                )));
            }
            many => {
                return Err(invalid(format!(
                    "`{}` names {} prompts; choose one: {}",
                    request.prompt,
                    many.len(),
                    many.iter()
                        .map(|p| p.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        };
        if matches!(base.body, crate::prompt::PromptBody::Promptfoo(_)) || !base.tools.is_empty() {
            return Err(invalid(format!(
                "prompt `{}`: optimize improves promptlab prompt files without tools",
                base.id
            )));
        }
        let cases = selected_cases(&set, &request);
        if cases.len() < 4 {
            return Err(invalid(format!(
                "{} cases selected: an optimization needs at least 4 (some to tune on, some held out)",
                cases.len()
            )));
        }
        let labels = labels_of(&set);
        let split = split_cases(&cases, request.split, request.seed, &|case| {
            labels.get(&case.id).cloned()
        });
        let store = RunStore::open(&project.store_path())?;
        let state = State {
            base: base.clone(),
            split,
            round: 0,
            stale: 0,
            spent_cells: 0,
            stop_reason: None,
            verdict: None,
        };
        let id = store.create_optimization(
            &set.name,
            &crate::store::eval_set_key(&eval_set),
            &json(&request),
            &json(&state),
            &chrono::Local::now().to_rfc3339(),
        )?;
        let baseline = Candidate {
            number: 0,
            round: 0,
            parent: None,
            strategy: "baseline".into(),
            version: Version::of(&base),
            proposal: String::new(),
            rejected: None,
            run_id: None,
            tuning: None,
        };
        store.save_candidate(id, &row(&baseline))?;
        let task = task_of(&set, &state.split, &labels);
        Ok(Optimization {
            id,
            request,
            eval_set,
            state,
            candidates: vec![baseline],
            runtime,
            project_root: project.root,
            store,
            task,
        })
    }

    /// Opens optimization `id` (or the newest unfinished one of the eval set) to go on.
    pub fn resume(
        eval_set: PathBuf,
        id: Option<i64>,
        runtime: Runtime,
    ) -> Result<Optimization, OptimizeError> {
        let (project, set) = open(&eval_set, runtime.project.as_deref())?;
        let store = RunStore::open(&project.store_path())?;
        let key = crate::store::eval_set_key(&eval_set);
        let id = match id {
            Some(id) => id,
            None => store.latest_unfinished_optimization(&key)?.ok_or_else(|| {
                OptimizeError::Resume {
                    id: None,
                    message: format!(
                        "{}: no unfinished optimization of this eval set",
                        eval_set.display()
                    ),
                }
            })?,
        };
        let resume_error = |message: String| OptimizeError::Resume {
            id: Some(id),
            message,
        };
        let row = store
            .optimization(id)?
            .ok_or_else(|| resume_error(format!("not in {}", store.path().display())))?;
        if row.eval_set_path != key {
            return Err(resume_error(format!(
                "optimized {}, not {key}",
                row.eval_set_path
            )));
        }
        if row.status == RunStatus::Finished {
            return Err(resume_error("it finished; nothing to resume".into()));
        }
        let request: Request = serde_json::from_str(&row.config_json)
            .map_err(|e| resume_error(format!("unreadable configuration ({e})")))?;
        let mut state: State = serde_json::from_str(&row.state_json)
            .map_err(|e| resume_error(format!("unreadable state ({e})")))?;
        let candidates = store
            .candidates(id)?
            .into_iter()
            .map(|r| candidate_from(&r))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| resume_error(format!("unreadable candidate ({e})")))?;
        // Killed after a round's candidates were stored but before the state was: the
        // round is the candidates' (their evaluation is still pending).
        state.round = candidates
            .iter()
            .map(|c| c.round)
            .fold(state.round, usize::max);
        let labels = labels_of(&set);
        let task = task_of(&set, &state.split, &labels);
        Ok(Optimization {
            id,
            request,
            eval_set,
            state,
            candidates,
            runtime,
            project_root: project.root,
            store,
            task,
        })
    }
}

fn open(
    eval_set: &std::path::Path,
    project: Option<&std::path::Path>,
) -> Result<(Project, EvalSet), OptimizeError> {
    if crate::evalset::is_agent_set(eval_set) || crate::promptfoo::is_config(eval_set) {
        return Err(OptimizeError::Invalid {
            path: eval_set.to_path_buf(),
            message:
                "optimize works on promptlab prompt eval sets (not agent sets or promptfoo configs)"
                    .into(),
        });
    }
    let set = EvalSet::load(eval_set)?;
    let project = match project {
        Some(dir) => Project::open(dir)?,
        None => Project::discover(eval_set)?,
    };
    Ok((project, set))
}

fn selected_cases<'a>(set: &'a EvalSet, request: &Request) -> Vec<&'a crate::evalset::Case> {
    set.cases
        .iter()
        .filter(|c| request.tags.is_empty() || c.tags.iter().any(|t| request.tags.contains(t)))
        .take(request.limit.unwrap_or(usize::MAX))
        .collect()
}

/// Each case's classification label, for classification sets.
fn labels_of(set: &EvalSet) -> BTreeMap<String, String> {
    let Some(spec) = &set.metrics.classification else {
        return BTreeMap::new();
    };
    set.cases
        .iter()
        .filter_map(|c| {
            let label = crate::score::expected_label(spec, c.expected.as_ref()?)?;
            Some((c.id.clone(), label))
        })
        .collect()
}

fn task_of(set: &EvalSet, split: &Split, labels: &BTreeMap<String, String>) -> Task {
    let by_id = |ids: &[String]| -> BTreeMap<String, crate::evalset::Case> {
        set.cases
            .iter()
            .filter(|c| ids.contains(&c.id))
            .map(|c| (c.id.clone(), c.clone()))
            .collect()
    };
    let cases = by_id(&split.tuning);
    let mut assertions: Vec<String> = Vec::new();
    for case in cases.values() {
        for spec in &case.assertions {
            let line = assertion_line(spec);
            if !assertions.contains(&line) {
                assertions.push(line);
            }
        }
    }
    // Per-case values (an expected city) would list every case; keep the first few.
    assertions.truncate(6);
    Task {
        description: set.description.clone(),
        assertions,
        labels: labels
            .iter()
            .filter(|(id, _)| cases.contains_key(*id))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        held_out_cases: by_id(&split.held_out),
        cases,
    }
}

/// An assertion as the proposer reads it. A value's `{{ expected }}` becomes "<the case's
/// expected>": shown as template syntax, proposers copied it into their instructions.
fn assertion_line(spec: &crate::score::assertion::AssertionSpec) -> String {
    let mut line = spec.kind.clone();
    if let Some(path) = &spec.path {
        line.push_str(&format!(" {path}"));
    }
    if let Some(value) = &spec.value {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let described = regex::Regex::new(r"\{\{\s*([^}]*?)\s*\}\}")
            .map(|re| re.replace_all(&text, "<the case's $1>").into_owned())
            .unwrap_or(text);
        line.push_str(&format!(" {}", strategy::short(&described, 200)));
    }
    line
}

pub(super) fn json<T: Serialize>(value: &T) -> String {
    // Plain data (strings, numbers, maps) always serializes.
    serde_json::to_string(value).unwrap_or_default()
}

pub(super) fn row(c: &Candidate) -> CandidateRow {
    CandidateRow {
        number: c.number as i64,
        round: c.round as i64,
        parent: c.parent.map(|p| p as i64),
        strategy: c.strategy.clone(),
        prompt_json: json(&c.version),
        proposal: c.proposal.clone(),
        rejected: c.rejected.clone(),
        run_id: c.run_id,
        evaluation_json: c.tuning.as_ref().map(json),
    }
}

pub(super) fn candidate_from(r: &CandidateRow) -> Result<Candidate, serde_json::Error> {
    Ok(Candidate {
        number: r.number as usize,
        round: r.round as usize,
        parent: r.parent.map(|p| p as usize),
        strategy: r.strategy.clone(),
        version: serde_json::from_str(&r.prompt_json)?,
        proposal: r.proposal.clone(),
        rejected: r.rejected.clone(),
        run_id: r.run_id,
        tuning: r
            .evaluation_json
            .as_deref()
            .map(serde_json::from_str)
            .transpose()?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn assertion_values_are_described_not_shown_as_templates() {
        let spec: crate::score::assertion::AssertionSpec = serde_json::from_value(
            serde_json::json!({"type": "json-path", "path": "$.sentiment", "value": "{{ expected }}"}),
        )
        .unwrap();
        assert_eq!(
            super::assertion_line(&spec),
            "json-path $.sentiment <the case's expected>"
        );
    }
}
