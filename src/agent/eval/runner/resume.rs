//! Resuming an agent evaluation: the options a run was started with are stored with it,
//! and the questions it finished are read back (trace and all) to be scored again.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{AgentEvalOptions, AgentEvalPlan, AgentRunError};
use crate::store::agent::CellTraces;
use crate::store::{NewRun, RunStore};

/// The run-store configuration of an agent evaluation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredAgentConfig {
    /// Always `agent`.
    kind: String,
    /// The set's absolute path: runs of one set are found by it.
    eval_set: String,
    options: AgentEvalOptions,
    columns: Vec<String>,
}

impl AgentEvalPlan {
    /// The run-store row of a new run of this plan.
    pub(super) fn new_run(&self, started_at: &str) -> NewRun {
        let config = StoredAgentConfig {
            kind: "agent".into(),
            eval_set: self.set_key.clone(),
            options: self.options.clone(),
            columns: self.column_ids(),
        };
        NewRun {
            eval_set: self.set.name.clone(),
            eval_set_path: self.set_key.clone(),
            // A struct of strings and numbers always serializes.
            config_json: serde_json::to_string(&config).unwrap_or_default(),
            started_at: started_at.to_string(),
            cell_count: self.cell_count(),
        }
    }

    /// The questions run `run_id` finished, by (column, row), with the agent run holding
    /// each trace: only cells whose column and case are the ones this plan puts there, and
    /// that did not end in an engine error.
    pub(super) fn finished_questions(
        &self,
        store: &RunStore,
        run_id: i64,
    ) -> Result<CellTraces, AgentRunError> {
        let columns = self.column_ids();
        let mut traces = store.agent_cell_traces(run_id)?;
        let mut finished = HashMap::new();
        for cell in store.cells(run_id)? {
            let position = (cell.column_index, cell.case_index);
            let expected_case = self
                .cases
                .get(cell.case_index)
                .map(|&i| self.set.cases[i].id.as_str());
            if cell.error.is_none()
                && columns.get(cell.column_index) == Some(&cell.column_id)
                && expected_case == Some(cell.case_id.as_str())
                && let Some(found) = traces.remove(&position)
            {
                finished.insert(position, found);
            }
        }
        Ok(finished)
    }
}

/// The options an interrupted agent evaluation run was started with, for resuming it:
/// `latest` finds the newest resumable run of the set at `set_path`.
pub fn resume_options(
    store: &RunStore,
    set_path: &Path,
    which: Option<i64>,
) -> Result<(i64, AgentEvalOptions), AgentRunError> {
    let set_key = crate::store::eval_set_key(set_path);
    let run_id = match which {
        Some(id) => id,
        None => store
            .latest_resumable(&set_key)?
            .ok_or_else(|| AgentRunError::Selection {
                path: set_path.to_path_buf(),
                message: "no interrupted run of this agent eval set to resume".into(),
            })?,
    };
    let resume_error = |message: String| AgentRunError::Resume { run_id, message };
    let config = store
        .run_config(run_id)?
        .ok_or_else(|| resume_error(format!("no such run in {}", store.path().display())))?;
    let stored: StoredAgentConfig = serde_json::from_str(&config).map_err(|_| {
        resume_error(
            "was not recorded as a resumable agent evaluation (runs from before promptlab kept agent options cannot be resumed)"
                .into(),
        )
    })?;
    if stored.kind != "agent" {
        return Err(resume_error("is not an agent evaluation".into()));
    }
    if stored.eval_set != set_key {
        return Err(resume_error(format!(
            "evaluated {}, not {set_key}",
            stored.eval_set
        )));
    }
    Ok((run_id, stored.options))
}
