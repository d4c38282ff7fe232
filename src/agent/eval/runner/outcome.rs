//! What an agent evaluation records and reports: where the run goes, the events a run
//! emits as questions are asked, and each answered question with its trace.

use serde::Serialize;

use crate::evalset::agent::{AgentScores, CheckOutcome};
use crate::run::{CellResult, RunResult};
use crate::trace::{AgentStep, AgentTrace};

/// Where the run goes in the run store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recording {
    /// Nowhere.
    Off,
    /// A new run.
    New,
    /// Continue this interrupted run: its finished questions are scored again, the rest
    /// asked.
    Resume(i64),
}

/// What happens during a run, for progress display. Cells are numbered in run order:
/// model by model, prompt by prompt, question by question (see
/// [`AgentEvalPlan::cell_labels`]).
pub(in crate::agent::eval) enum AgentEvalEvent<'a> {
    /// A language model is loading.
    Loading {
        model: &'a str,
    },
    Loaded {
        model: &'a str,
        load_ms: f64,
    },
    /// Cell `index` is being asked.
    Asking {
        index: usize,
    },
    /// A piece of a reply of cell `index`.
    Token {
        index: usize,
        text: &'a str,
    },
    /// A step of cell `index` is done (a tool called, an answer given).
    Step {
        index: usize,
        step: &'a AgentStep,
    },
    /// A question is done: asked now, or read back from the interrupted run.
    Question {
        answered: &'a AnsweredQuestion,
        cell: &'a CellResult,
    },
}

/// One question answered in one column.
#[derive(Debug, Clone, Serialize)]
pub struct AnsweredQuestion {
    /// The matrix column: `prompt @ model`.
    pub column: String,
    pub model: String,
    pub prompt: Option<String>,
    pub case: String,
    pub question: String,
    pub passed: bool,
    pub checks: Vec<CheckOutcome>,
    pub trace: AgentTrace,
    /// The cell's score: the fraction of checks passed.
    #[serde(skip)]
    pub score: f64,
    /// Read back from the run being resumed rather than asked now.
    #[serde(skip)]
    pub resumed: bool,
    /// The cell's place in run order (0-based), and the run's cell count.
    #[serde(skip)]
    pub index: usize,
    #[serde(skip)]
    pub total: usize,
}

pub struct AgentEvalOutcome {
    /// The matrix: every report format and the run store read it.
    pub result: RunResult,
    /// Tool-use figures per column.
    pub scores: Vec<AgentScores>,
    pub questions: Vec<AnsweredQuestion>,
    pub run_id: Option<i64>,
    /// Stopped by the cancel token before every question was answered.
    pub cancelled: bool,
}
