//! Prompt optimization (`promptlab optimize`): a proposer model writes new versions of a
//! prompt from its failures; each is evaluated on a tuning part of the eval set; the best
//! few are then judged on a held-out part they never saw, and a winner is declared only
//! if it beats the baseline there under McNemar's test. Every candidate is stored with
//! its lineage and every evaluation is an ordinary run, so the whole search can be
//! compared, reported and resumed.

pub mod proposer;
mod record;
pub mod search;
mod setup;
pub mod split;
pub mod strategy;
pub mod variant;
mod verdict;
pub mod version;

use serde::{Deserialize, Serialize};

pub use record::{Snapshot, accept};
pub use search::{Optimization, OptimizeObserver, Progress, Request, State};
pub use split::Split;
pub use verdict::{Finalist, Verdict};
pub use version::{Demo, Version};

/// How new candidates are made (see [`strategy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    Rewrite,
    FewShot,
    Reflect,
}

impl StrategyKind {
    pub fn name(self) -> &'static str {
        match self {
            StrategyKind::Rewrite => "rewrite",
            StrategyKind::FewShot => "few-shot",
            StrategyKind::Reflect => "reflect",
        }
    }

    pub const ALL: [StrategyKind; 3] = [
        StrategyKind::Rewrite,
        StrategyKind::FewShot,
        StrategyKind::Reflect,
    ];

    pub fn parse(text: &str) -> Option<StrategyKind> {
        Self::ALL.into_iter().find(|k| k.name() == text)
    }

    pub fn needs_proposer(self) -> bool {
        !matches!(self, StrategyKind::FewShot)
    }
}

/// What a candidate is ranked by on the tuning part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// The share of cases whose assertions pass.
    #[default]
    PassRate,
    /// The mean weighted assertion score.
    MeanScore,
    /// Macro-averaged F1 of the classification labels (sets with `metrics.classification`).
    MacroF1,
}

impl Objective {
    pub const ALL: [Objective; 3] = [
        Objective::PassRate,
        Objective::MeanScore,
        Objective::MacroF1,
    ];

    /// The option's spelling: `pass-rate`, `mean-score`, `macro-f1`.
    pub fn key(self) -> &'static str {
        match self {
            Objective::PassRate => "pass-rate",
            Objective::MeanScore => "mean-score",
            Objective::MacroF1 => "macro-f1",
        }
    }

    pub fn parse(text: &str) -> Option<Objective> {
        Self::ALL.into_iter().find(|o| o.key() == text)
    }

    pub fn name(self) -> &'static str {
        match self {
            Objective::PassRate => "pass rate",
            Objective::MeanScore => "mean score",
            Objective::MacroF1 => "macro F1",
        }
    }
}

/// One case's outcome for a candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseOutcome {
    pub case_id: String,
    pub passed: bool,
    pub score: f64,
    pub output: String,
    /// Why it failed (empty when it passed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// A candidate's evaluation on one part of the cases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub objective: f64,
    pub passed: usize,
    pub cases: usize,
    pub mean_score: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macro_f1: Option<f64>,
    pub outcomes: Vec<CaseOutcome>,
}

impl Scored {
    pub fn pass_rate(&self) -> f64 {
        if self.cases == 0 {
            0.0
        } else {
            self.passed as f64 / self.cases as f64
        }
    }

    /// The 95% Wilson interval of the pass rate.
    pub fn pass_interval(&self) -> Option<(f64, f64)> {
        crate::score::stats::wilson_interval(self.passed, self.cases)
    }
}

/// A prompt version in the search: the baseline (number 0) or a proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub number: usize,
    /// 0 for the baseline.
    pub round: usize,
    pub parent: Option<usize>,
    /// `baseline` or the strategy's name.
    pub strategy: String,
    pub version: Version,
    /// The proposer's reply, or how the strategy chose.
    pub proposal: String,
    /// Why it was refused without being evaluated.
    pub rejected: Option<String>,
    /// The run that evaluated it on the tuning part.
    pub run_id: Option<i64>,
    pub tuning: Option<Scored>,
}

impl Candidate {
    /// Its tuning objective (negative when not evaluated, so it ranks last).
    pub fn objective(&self) -> f64 {
        self.tuning.as_ref().map_or(-1.0, |s| s.objective)
    }

    pub fn is_baseline(&self) -> bool {
        self.number == 0
    }

    /// Waiting to be evaluated.
    pub fn is_pending(&self) -> bool {
        self.rejected.is_none() && self.tuning.is_none()
    }
}

/// The variant name a candidate is evaluated (and written) under.
pub fn variant_name(optimization_id: i64, number: usize) -> String {
    format!("opt{optimization_id}-{number}")
}

#[derive(Debug, thiserror::Error)]
pub enum OptimizeError {
    #[error(transparent)]
    Project(#[from] crate::project::ProjectError),
    #[error(transparent)]
    EvalSet(#[from] crate::evalset::EvalSetError),
    #[error(transparent)]
    Evaluation(#[from] crate::evaluation::EvaluationError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{path}: {message}")]
    Invalid {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("proposer `{model}`: {message}")]
    Proposer { model: String, message: String },
    #[error("{}{message}", id.map(|id| format!("optimization {id}: ")).unwrap_or_default())]
    Resume { id: Option<i64>, message: String },
}
