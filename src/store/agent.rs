//! Agent runs: one row per question, with every step as JSON, rewritten after each step.

use std::collections::HashMap;

use rusqlite::params;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{RunStore, StoreError};
use crate::trace::AgentTrace;

/// The traces behind an agent evaluation's cells, by (column, case) index: the agent run
/// holding each, and its trace.
pub type CellTraces = HashMap<(usize, usize), (i64, AgentTrace)>;

/// An agent run's columns, as read back to rebuild its trace.
struct StoredTrace {
    question: String,
    tools_json: String,
    steps_json: String,
    answer: Option<String>,
    status: String,
    convention: String,
    error: Option<String>,
    total_ms: Option<f64>,
}

/// A column of a stored agent run that does not read back; `column` is its name.
#[derive(Debug, thiserror::Error)]
#[error("{column}: {source}")]
struct TraceColumnError {
    column: &'static str,
    #[source]
    source: serde_json::Error,
}

impl StoredTrace {
    fn into_trace(self) -> Result<AgentTrace, TraceColumnError> {
        let text = |s: String| Value::String(s);
        let column = |column: &'static str| move |source| TraceColumnError { column, source };
        Ok(AgentTrace {
            question: self.question,
            convention: serde_json::from_value(text(self.convention))
                .map_err(column("convention"))?,
            tools: serde_json::from_str(&self.tools_json).map_err(column("tools"))?,
            steps: serde_json::from_str(&self.steps_json).map_err(column("steps"))?,
            answer: self.answer,
            stop: serde_json::from_value(text(self.status)).map_err(column("status"))?,
            error: self.error,
            total_ms: self.total_ms.unwrap_or(0.0),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRunRow {
    pub id: i64,
    pub started_at: String,
    pub model: String,
    pub question: String,
    /// `running`, or how the run stopped (`answered`, `max_steps`, ...).
    pub status: String,
    pub answer: Option<String>,
    pub steps_json: String,
    pub total_ms: Option<f64>,
    pub generated_tokens: u32,
}

impl RunStore {
    pub fn create_agent_run(
        &self,
        started_at: &str,
        model: &str,
        question: &str,
        tools: &[String],
    ) -> Result<i64, StoreError> {
        let tools = serde_json::to_string(tools).unwrap_or_default();
        self.conn
            .execute(
                "INSERT INTO agent_runs (started_at, model, question, tools_json) VALUES (?1, ?2, ?3, ?4)",
                params![started_at, model, question, tools],
            )
            .map_err(self.err("creating an agent run"))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records the steps so far; `finished` also records how the run stopped.
    pub fn update_agent_run(
        &self,
        id: i64,
        trace: &AgentTrace,
        finished: bool,
    ) -> Result<(), StoreError> {
        let steps = serde_json::to_string(&trace.steps).unwrap_or_default();
        let status = if finished {
            trace.stop.as_str()
        } else {
            "running"
        };
        let convention = serde_json::to_value(trace.convention)
            .ok()
            .and_then(|v| v.as_str().map(String::from));
        let changed = self
            .conn
            .execute(
                "UPDATE agent_runs SET status = ?2, answer = ?3, steps_json = ?4, total_ms = ?5,
                 generated_tokens = ?6, convention = ?7, error = ?8 WHERE id = ?1",
                params![
                    id,
                    status,
                    trace.answer,
                    steps,
                    trace.total_ms,
                    trace.generated_tokens(),
                    convention,
                    trace.error,
                ],
            )
            .map_err(self.err(&format!("updating agent run {id}")))?;
        if changed == 0 {
            return Err(StoreError::InvalidInput {
                path: self.path.clone(),
                message: format!("no agent run {id}"),
            });
        }
        Ok(())
    }

    /// The finished traces behind the cells of agent evaluation run `run_id`, with the
    /// agent run holding each, by (column, case) index. A trace recorded before version 7 of the schema, or still running,
    /// is left out: its question is asked again.
    pub fn agent_cell_traces(&self, run_id: i64) -> Result<CellTraces, StoreError> {
        let action = format!("reading the agent traces of run {run_id}");
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT c.column_index, c.case_index, a.id, a.question, a.tools_json, a.steps_json,
                        a.answer, a.status, a.convention, a.error, a.total_ms
                 FROM agent_cells c JOIN agent_runs a ON a.id = c.agent_run_id
                 WHERE c.run_id = ?1 AND a.convention IS NOT NULL AND a.status != 'running'",
            )
            .map_err(self.err(&action))?;
        let rows = stmt
            .query_map([run_id], |r| {
                Ok((
                    (r.get::<_, i64>(0)?, r.get::<_, i64>(1)?),
                    r.get::<_, i64>(2)?,
                    StoredTrace {
                        question: r.get(3)?,
                        tools_json: r.get(4)?,
                        steps_json: r.get(5)?,
                        answer: r.get(6)?,
                        status: r.get(7)?,
                        convention: r.get(8)?,
                        error: r.get(9)?,
                        total_ms: r.get(10)?,
                    },
                ))
            })
            .map_err(self.err(&action))?;
        let mut traces = HashMap::new();
        for row in rows {
            let ((column, case), agent_run, stored) = row.map_err(self.err(&action))?;
            let trace = stored.into_trace().map_err(|why| StoreError::Corrupt {
                path: self.path.clone(),
                message: format!("run {run_id}, cell ({column}, {case}): {why}"),
            })?;
            // Indexes were written from usize values, so they convert back.
            if let (Ok(column), Ok(case)) = (usize::try_from(column), usize::try_from(case)) {
                traces.insert((column, case), (agent_run, trace));
            }
        }
        Ok(traces)
    }

    /// All agent runs, newest first.
    pub fn agent_runs(&self) -> Result<Vec<AgentRunRow>, StoreError> {
        let action = "listing agent runs";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, started_at, model, question, status, answer, steps_json, total_ms,
                 generated_tokens FROM agent_runs ORDER BY id DESC",
            )
            .map_err(self.err(action))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(AgentRunRow {
                    id: r.get(0)?,
                    started_at: r.get(1)?,
                    model: r.get(2)?,
                    question: r.get(3)?,
                    status: r.get(4)?,
                    answer: r.get(5)?,
                    steps_json: r.get(6)?,
                    total_ms: r.get(7)?,
                    generated_tokens: r.get(8)?,
                })
            })
            .map_err(self.err(action))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.err(action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{AgentStep, AgentStop, Convention, StepAction};

    #[test]
    fn agent_runs_record_their_steps() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::open(&dir.path().join("runs.db")).unwrap();
        let id = store
            .create_agent_run(
                "2026-11-28T05:00:00Z",
                "qwen",
                "2+2?",
                &["calculator".into()],
            )
            .unwrap();
        let mut trace = AgentTrace {
            question: "2+2?".into(),
            convention: Convention::Hermes,
            tools: vec!["calculator".into()],
            steps: vec![AgentStep {
                index: 0,
                reply: "<tool_call>…</tool_call>".into(),
                action: StepAction::ToolCall {
                    name: "calculator".into(),
                    arguments: serde_json::json!({"expression": "2+2"}),
                    result: Some(serde_json::json!({"result": "4"})),
                    error: None,
                    tool_ms: 0.1,
                },
                prompt_tokens: 300,
                cached_prompt_tokens: 0,
                generated_tokens: 20,
                generation_ms: 900.0,
                ttft_ms: 0.0,
            }],
            answer: None,
            stop: AgentStop::MaxSteps,
            error: None,
            total_ms: 950.0,
        };
        store.update_agent_run(id, &trace, false).unwrap();
        assert_eq!(store.agent_runs().unwrap()[0].status, "running");
        trace.answer = Some("4".into());
        trace.stop = AgentStop::Answered;
        store.update_agent_run(id, &trace, true).unwrap();
        let row = &store.agent_runs().unwrap()[0];
        assert_eq!(
            (row.status.as_str(), row.answer.as_deref()),
            ("answered", Some("4"))
        );
        assert_eq!(row.generated_tokens, 20);
        let steps: Vec<AgentStep> = serde_json::from_str(&row.steps_json).unwrap();
        assert_eq!(steps, trace.steps);
        assert!(store.update_agent_run(id + 1, &trace, true).is_err());
    }

    #[test]
    fn agent_cells_link_to_their_traces() {
        let (_dir, _path, mut store) = crate::store::tests::temp_store();
        let run = store
            .create_run(&crate::store::tests::new_run("/x/agent.yaml", 2))
            .unwrap();
        let trace = AgentTrace {
            question: "2+2?".into(),
            convention: Convention::Json,
            tools: vec!["calculator".into()],
            steps: Vec::new(),
            answer: Some("4".into()),
            stop: AgentStop::Answered,
            error: Some("a tool timed out once".into()),
            total_ms: 12.5,
        };
        let finished = store
            .create_agent_run("t", "qwen", "2+2?", &trace.tools)
            .unwrap();
        store.update_agent_run(finished, &trace, true).unwrap();
        let in_flight = store
            .create_agent_run("t", "qwen", "3+3?", &trace.tools)
            .unwrap();
        store.update_agent_run(in_flight, &trace, false).unwrap();
        let cell = crate::store::tests::cell(0, 0);
        store.record_agent_cell(run, &cell, finished).unwrap();
        store
            .record_agent_cell(run, &crate::store::tests::cell(0, 1), in_flight)
            .unwrap();
        // Recording a cell again (a resumed run re-scores it) keeps one link.
        store.record_agent_cell(run, &cell, finished).unwrap();

        let traces = store.agent_cell_traces(run).unwrap();
        assert_eq!(traces.len(), 1, "a running trace is not finished");
        assert_eq!(traces[&(0, 0)], (finished, trace));
        // Agent cells stay out of the generation cache.
        assert!(store.cached_generation(&cell.cache_key).unwrap().is_none());
        // A link to a run that does not exist is refused.
        assert!(store.record_agent_cell(run + 1, &cell, finished).is_err());
    }
}
