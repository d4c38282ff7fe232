//! A run of an evaluation: the prompts × models × cases matrix. Planning resolves and
//! validates everything (prompts render for every case, assertions parse, models exist
//! and can run the prompts) before any model is loaded, so bad input fails in seconds
//! and never after an hour of generation. Execution then loads each model once.

mod execute;
mod pairwise;
mod plan;
mod record;
mod repeat;
mod stored;
mod summary;

use serde::{Deserialize, Serialize};

use crate::engine::{FinishReason, GenerationRequest};
use crate::metrics::classification::ClassificationReport;
use crate::prompt::RenderedPrompt;
use crate::score::assertion::{Assertion, AssertionOutcome};
use crate::score::detection::DetectionReport;

pub use execute::judging::{JudgeAgreement, JudgeTime};
pub use execute::{ExecuteOptions, Quiet, RunError, RunObserver, chat_worker, execute};
pub use pairwise::{PairwisePlan, PairwiseReport, compare_pairwise};
pub use plan::judging::JudgePlan;
pub use plan::{AssertionValueError, CellBuilder, PlanError, RunOptions, plan};
pub use record::{Recording, ResumeFrom, StoredConfig, stored_cell};
pub use repeat::{RepeatColumn, RepeatReport, repeat_report};
pub use stored::{Timing, assemble, stored_result};
pub use summary::ColumnSummary;

/// One column of the matrix: a prompt (variant) on a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// `prompt_id @ model`.
    pub id: String,
    pub prompt_id: String,
    pub model: String,
}

/// What a case looked like when it was run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseInfo {
    pub id: String,
    pub description: String,
    pub tags: Vec<String>,
    pub vars: serde_json::Map<String, serde_json::Value>,
    pub expected: Option<serde_json::Value>,
    /// A person's pass/fail verdict on this case, to measure a judge against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human: Option<crate::evalset::HumanLabel>,
}

impl CaseInfo {
    /// Its description, or else its first variable's value.
    pub fn label(&self) -> String {
        crate::evalset::case_label(&self.description, &self.vars)
    }
}

/// A question of an agent set as a row of the matrix: its text is the description and
/// the `question` variable.
impl From<&crate::evalset::agent::AgentCase> for CaseInfo {
    fn from(case: &crate::evalset::agent::AgentCase) -> CaseInfo {
        let mut vars = serde_json::Map::new();
        vars.insert("question".into(), serde_json::json!(case.question));
        CaseInfo {
            id: case.id.clone(),
            description: case.question.clone(),
            tags: case.tags.clone(),
            vars,
            expected: None,
            human: None,
        }
    }
}

/// A cell ready to generate.
#[derive(Debug, Clone)]
pub struct PlannedCell {
    pub column: usize,
    pub case: usize,
    /// Identifies the generation: equal keys give equal outputs, so results are reused.
    pub cache_key: String,
    pub request: GenerationRequest,
    pub assertions: Vec<Assertion>,
    pub threshold: Option<f64>,
    /// Reshapes the output before the assertions see it (the case's `transform`).
    pub transform: Option<crate::script::Script>,
}

/// Everything needed to execute a run, already validated.
#[derive(Debug, Clone)]
pub struct RunPlan {
    pub eval_set: crate::evalset::EvalSet,
    pub columns: Vec<Column>,
    /// Model catalog entries by column model name (None for echo).
    pub models: Vec<crate::catalog::ModelRef>,
    pub cases: Vec<CaseInfo>,
    pub cells: Vec<PlannedCell>,
    /// The judge models of the model-graded assertions, and their templates.
    pub judging: JudgePlan,
    /// Renders a case's cells again (for cases that read earlier outputs).
    pub builder: CellBuilder,
}

/// Why a model's outputs can depend on how a run was scheduled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleDependence {
    /// A remote model sent several requests at once: most servers decode concurrent
    /// requests in one batch whose arithmetic changes with its make-up (llama-server with
    /// several slots does).
    RemoteConcurrency,
    /// A local GGUF model of an architecture whose batched decoding has not been found to
    /// give the same bytes as one sequence alone (the architecture's name).
    Architecture(String),
}

impl RunPlan {
    /// The models whose outputs can differ from a `--parallel 1` run at `parallel`
    /// sequences at once, and why. promptlab's llama.cpp engine is batch-invariant for the
    /// architectures in [`crate::engine::llama::BATCH_INVARIANT_ARCHITECTURES`].
    pub fn schedule_dependent_models(&self, parallel: u32) -> Vec<(&str, ScheduleDependence)> {
        let mut found = Vec::new();
        for model in &self.models {
            let Some(entry) = model.entry.as_ref() else {
                continue;
            };
            if let Some(remote) = entry.servers() {
                let in_flight: usize = remote
                    .endpoints
                    .iter()
                    .map(|endpoint| match endpoint {
                        crate::catalog::remote::EndpointSpec::Detailed {
                            concurrency: Some(n),
                            ..
                        } => *n,
                        _ => remote.concurrency,
                    })
                    .sum();
                if in_flight > 1 {
                    found.push((model.name.as_str(), ScheduleDependence::RemoteConcurrency));
                }
                continue;
            }
            if parallel <= 1 {
                continue;
            }
            if let Some(architecture) = crate::engine::llama::not_batch_invariant(entry) {
                found.push((
                    model.name.as_str(),
                    ScheduleDependence::Architecture(architecture),
                ));
            }
        }
        found
    }
}

/// The outcome of one cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    pub column: usize,
    pub case: usize,
    pub prompt: RenderedPrompt,
    pub output: String,
    /// Set when the engine failed for this cell; the cell then fails.
    pub error: Option<String>,
    pub passed: bool,
    pub score: f64,
    pub assertions: Vec<AssertionOutcome>,
    pub finish: Option<FinishReason>,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub ttft_ms: f64,
    pub latency_ms: f64,
    pub tokens_per_s: Option<f64>,
    /// Reused from the run store's cache instead of generated.
    #[serde(default)]
    pub cached: bool,
    /// Each generated token's log-probability, when an assertion needed them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<f64>>,
}

impl CellResult {
    /// A model-graded assertion of this cell could not be judged.
    pub fn has_judge_error(&self) -> bool {
        self.assertions.iter().any(|a| a.judge_error.is_some())
    }

    /// Neither passed nor failed: the engine or a judge failed.
    pub fn is_error(&self) -> bool {
        self.error.is_some() || self.has_judge_error()
    }

    /// One line per failed assertion (or the engine error), for terminals and reports.
    pub fn failure_reasons(&self) -> Vec<String> {
        if let Some(error) = &self.error {
            return vec![format!("engine error: {error}")];
        }
        let judge_errors: Vec<String> = self
            .assertions
            .iter()
            .filter_map(|a| {
                a.judge_error
                    .as_ref()
                    .map(|e| format!("{}: judge error: {e}", a.assertion))
            })
            .collect();
        if !judge_errors.is_empty() {
            return judge_errors;
        }
        let mut reasons: Vec<String> = self
            .assertions
            .iter()
            .filter(|a| !a.passed)
            .map(|a| match &a.reason {
                Some(reason) => format!("{}: {reason}", a.assertion),
                None => format!("{}: failed", a.assertion),
            })
            .collect();
        if !reasons.is_empty() && self.finish == Some(FinishReason::Length) {
            reasons.push(format!(
                "note: generation stopped at max_tokens ({} tokens), the output may be cut short",
                self.completion_tokens
            ));
        }
        reasons
    }
}

/// A finished (or cancelled) run with its per-column summaries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub eval_set: String,
    pub eval_set_path: String,
    pub started_at: String,
    pub duration_s: f64,
    pub cancelled: bool,
    pub columns: Vec<Column>,
    pub cases: Vec<CaseInfo>,
    /// Ordered by column, then case.
    pub cells: Vec<CellResult>,
    pub summaries: Vec<ColumnSummary>,
    /// Per column, when the eval set asks for classification metrics.
    pub classification: Vec<Option<ClassificationReport>>,
    /// Per column, when the eval set asks for detection metrics.
    #[serde(default)]
    pub detection: Vec<Option<DetectionReport>>,
    /// Time spent judging model-graded assertions (zero without any).
    #[serde(default)]
    pub judge_time: JudgeTime,
    /// Per column, when cases carry human labels: the verdicts' agreement with them.
    #[serde(default)]
    pub judge_agreement: Vec<Option<JudgeAgreement>>,
    /// With `--pairwise`: the judge's pairwise comparison and ranking of the columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairwise: Option<PairwiseReport>,
}

impl RunResult {
    pub fn cell(&self, column: usize, case: usize) -> Option<&CellResult> {
        self.cells
            .iter()
            .find(|c| c.column == column && c.case == case)
    }

    pub fn failed_cells(&self) -> impl Iterator<Item = &CellResult> {
        self.cells.iter().filter(|c| !c.passed)
    }

    /// Overall fraction of passed cells.
    /// Every named metric some column has: named ones first, then derived ones.
    pub fn named_metric_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for summary in &self.summaries {
            for name in summary.named_scores.keys() {
                if !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
        }
        names.sort_by_key(|name| {
            !self
                .summaries
                .iter()
                .any(|s| s.named_counts.contains_key(*name))
        });
        names
    }

    pub fn pass_rate(&self) -> f64 {
        if self.cells.is_empty() {
            return 0.0;
        }
        self.cells.iter().filter(|c| c.passed).count() as f64 / self.cells.len() as f64
    }
}
