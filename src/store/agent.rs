//! Agent runs: one row per question, with every step as JSON, rewritten after each step.

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{RunStore, StoreError};
use crate::agent::AgentTrace;

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
        let changed = self
            .conn
            .execute(
                "UPDATE agent_runs SET status = ?2, answer = ?3, steps_json = ?4, total_ms = ?5,
                 generated_tokens = ?6 WHERE id = ?1",
                params![
                    id,
                    status,
                    trace.answer,
                    steps,
                    trace.total_ms,
                    trace.generated_tokens()
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
    use crate::agent::{AgentStep, AgentStop, Convention, StepAction};

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
}
