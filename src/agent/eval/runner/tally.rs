//! The results of an agent evaluation as its questions settle: each trace checked, its
//! cell built and recorded in the run store, and the answered question kept for the
//! report.

use super::{AgentEvalPlan, AgentRunError, AnsweredQuestion, Place};
use crate::evalset::agent::{AgentScores, check_trace};
use crate::run::stored_cell;
use crate::store::RunStore;
use crate::trace::AgentTrace;

/// The run's results so far, and where they are recorded.
pub(super) struct Tally<'s> {
    pub store: Option<&'s mut RunStore>,
    pub run_id: Option<i64>,
    pub total: usize,
    pub cells: Vec<crate::run::CellResult>,
    pub questions: Vec<AnsweredQuestion>,
}

impl Tally<'_> {
    /// Checks a finished trace, records its cell, and returns the answered question.
    #[allow(clippy::too_many_arguments)]
    pub fn settle(
        &mut self,
        plan: &AgentEvalPlan,
        place: &Place,
        row: usize,
        trace: AgentTrace,
        agent_run: Option<i64>,
        resumed: bool,
        scores: &mut AgentScores,
    ) -> Result<(&AnsweredQuestion, &crate::run::CellResult), AgentRunError> {
        let case = &plan.set.cases[plan.cases[row]];
        let outcomes = check_trace(&case.checks, &trace);
        scores.add(&trace, &outcomes, &place.column.session.tools.specs());
        let cell = crate::agent::eval::matrix::cell(
            (place.column_index, row),
            plan.opening(place.column.prompt.as_ref(), &case.question)?,
            &trace,
            &outcomes,
        );
        if let (Some(store), Some(run_id), Some(agent_run)) =
            (self.store.as_mut(), self.run_id, agent_run)
        {
            // Agent cells are not generated from a cache key: this one names the column
            // and case, so it never matches a generation's.
            let key = format!("agent:{}:{}", place.column_id, case.id);
            let stored = stored_cell(&cell, place.column_id, &case.id, &key);
            store.record_agent_cell(run_id, &stored, agent_run)?;
        }
        self.questions.push(AnsweredQuestion {
            column: place.column_id.to_string(),
            model: place.model.to_string(),
            prompt: place.column.prompt.as_ref().map(|p| p.id.clone()),
            case: case.id.clone(),
            question: case.question.clone(),
            passed: cell.passed,
            score: cell.score,
            checks: outcomes,
            trace,
            resumed,
            index: place.column_index * plan.cases.len() + row,
            total: self.total,
        });
        self.cells.push(cell);
        Ok((
            &self.questions[self.questions.len() - 1],
            &self.cells[self.cells.len() - 1],
        ))
    }
}
