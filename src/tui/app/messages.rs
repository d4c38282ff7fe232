//! The messages [`App::update`](super::App::update) takes and gives back: the events of
//! keys, the mouse and background jobs, and the effects the driver carries out.

use std::path::PathBuf;
use std::time::Instant;

use crossterm::event::{KeyEvent, MouseEvent};
use promptlab::compare::Comparison;
use promptlab::project::ProjectScan;
use promptlab::results::RunMatrix;
use promptlab::store::RunRow;

use crate::tui::agent::AgentUiEvent;
use crate::tui::playground::ChatEvent;

/// What a background run reports.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    Started {
        run_id: Option<i64>,
        /// `(column id, case id)` of every planned cell.
        cells: Vec<(String, String)>,
    },
    ModelLoading(String),
    ModelLoaded {
        model: String,
        load_ms: f64,
    },
    /// Where the model runs (`Capabilities::runs_on`), and why not on the GPU it asked for.
    ModelPlaced {
        runs_on: Option<String>,
        note: Option<String>,
    },
    CellStarted(usize),
    Token(usize, String),
    CellFinished(usize, CellOutcome),
    Finished {
        run_id: Option<i64>,
        cancelled: bool,
        duration_s: f64,
    },
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CellOutcome {
    pub passed: bool,
    pub cached: bool,
    pub error: Option<String>,
    pub score: f64,
    pub completion_tokens: u32,
}

#[derive(Debug)]
pub enum Event {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize(u16, u16),
    /// The clock and the process's resident memory, a few times a second.
    Tick {
        now: Instant,
        rss_bytes: Option<u64>,
    },
    Run(RunEvent),
    RunLoaded(Result<RunMatrix, String>),
    RunsListed(Result<Vec<RunRow>, String>),
    Compared(Result<(i64, i64, Comparison), String>),
    Saved(Result<PathBuf, String>),
    Rescanned(ProjectScan),
    /// The file's text after `$EDITOR` closed.
    EditedExternally(Result<String, String>),
    /// Tokens of an editor preview text for a model.
    TokenCount {
        text: String,
        count: Result<usize, String>,
    },
    Chat(ChatEvent),
    TrainingRunsListed(Result<Vec<promptlab::store::TrainingRunRow>, String>),
    Agent(AgentUiEvent),
    AgentRunsListed(Result<Vec<promptlab::store::AgentRunRow>, String>),
    /// A playground exchange was added to an eval set (its path and the case id).
    CaseSaved(Result<(PathBuf, String), String>),
    OptimizationsListed(Result<Vec<promptlab::optimize::Snapshot>, String>),
    /// A candidate was written into its prompt file: the prompt id and the file.
    CandidateAccepted(Result<(String, PathBuf), String>),
}

/// What to start, chosen on the run screen.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    pub eval_set: PathBuf,
    pub prompts: Vec<String>,
    pub models: Vec<String>,
    /// An agent eval set (`kind: agent`): each cell is a question the agent answers.
    pub agent: bool,
    /// Complete this interrupted run, with the prompts, models and options it was started
    /// with (`prompts` and `models` are then ignored).
    pub resume: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Quit,
    StartRun(RunRequest),
    CancelRun,
    LoadRun(i64),
    ListRuns,
    /// Name a run in the store (None clears its label), then list the runs again.
    SetLabel {
        run: i64,
        label: Option<String>,
    },
    Compare(i64, i64),
    Save {
        path: PathBuf,
        text: String,
    },
    EditExternally {
        path: PathBuf,
        text: String,
    },
    Rescan,
    CountTokens {
        model: PathBuf,
        text: String,
    },
    Chat {
        /// The catalog entry: a local GGUF (llama.cpp or mistral.rs) or a remote model.
        model: Box<promptlab::catalog::ModelEntry>,
        model_name: String,
        messages: Vec<promptlab::prompt::ChatMessage>,
        params: promptlab::params::SamplingParams,
        schema: Option<serde_json::Value>,
    },
    CancelChat,
    ListTrainingRuns,
    /// Ask the agent a question with a catalog model.
    AskAgent {
        model_name: String,
        question: String,
        /// The agent prompt framing the question (None: the built-in one).
        prompt: Option<promptlab::prompt::Prompt>,
    },
    CancelAgent,
    ListAgentRuns,
    SaveCase {
        eval_set: PathBuf,
        case: serde_json::Value,
    },
    ListOptimizations,
    /// Write candidate `number` of an optimization into its prompt file as a variant.
    AcceptCandidate {
        optimization: i64,
        number: usize,
    },
}
