//! The search: the baseline on the tuning part, then rounds of proposals (each checked,
//! then evaluated together as one run), a beam of the best, and at the end the finalists
//! and the baseline on the held-out part. State is written to the run store after every
//! step, so an interrupted optimization resumes where it stopped.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::proposer::Proposer;
use super::setup::{json, row};
use super::split::Split;
use super::strategy::{self, Context, Task};
use super::verdict::Verdict;
use super::version::{self, Version};
use super::{Candidate, CaseOutcome, Objective, OptimizeError, Scored, StrategyKind, variant_name};
use crate::engine::CancelToken;
use crate::evaluation::{Evaluation, Request as EvalRequest};
use crate::project::Project;
use crate::prompt::Prompt;
use crate::run::{ExecuteOptions, ResumeFrom, RunObserver, RunResult};
use crate::store::{RunStatus, RunStore};

/// What to optimize, as stored with the optimization (a resume reads it back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The prompt to improve: `name` or `name:variant`.
    pub prompt: String,
    /// The model the prompt is tuned for.
    pub model: String,
    /// The model that writes candidates (needed by `rewrite` and `reflect`).
    pub proposer: Option<String>,
    pub strategies: Vec<StrategyKind>,
    /// Cells (candidates × cases, the held-out part included) the search may spend.
    pub budget: Option<usize>,
    /// Rounds of proposals, at most.
    pub rounds: Option<usize>,
    /// The share of cases used for tuning; the rest is held out.
    pub split: f64,
    pub seed: u64,
    /// Candidates proposed per round.
    pub per_round: usize,
    /// Candidates kept as parents.
    pub beam: usize,
    /// Rounds without a better candidate before stopping.
    pub patience: usize,
    /// Candidates tried on the held-out part.
    pub finalists: usize,
    /// Significance level of the held-out test.
    pub alpha: f64,
    pub objective: Objective,
    /// Only cases with one of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Only the first N cases.
    #[serde(default)]
    pub limit: Option<usize>,
}

impl Default for Request {
    fn default() -> Request {
        Request {
            prompt: String::new(),
            model: String::new(),
            proposer: None,
            strategies: vec![StrategyKind::Rewrite, StrategyKind::FewShot],
            budget: None,
            rounds: None,
            split: 0.6,
            seed: 1,
            per_round: 4,
            beam: 3,
            patience: 3,
            finalists: 3,
            alpha: 0.05,
            objective: Objective::PassRate,
            tags: Vec::new(),
            limit: None,
        }
    }
}

/// How the optimization runs this time (not stored: a resume may change them).
#[derive(Debug, Clone, Default)]
pub struct Runtime {
    pub project: Option<PathBuf>,
    pub use_cache: bool,
    pub execute: ExecuteOptions,
    /// `--gpu-layers` for the target model's runs.
    pub gpu_layers: Option<crate::catalog::GpuLayers>,
}

/// The optimization's progress, rewritten after every step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The prompt as it was when the optimization started.
    pub base: Prompt,
    pub split: Split,
    pub round: usize,
    /// Rounds since the best tuning objective last improved.
    pub stale: usize,
    /// Cells evaluated so far (cached ones included).
    pub spent_cells: usize,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub verdict: Option<Verdict>,
}

/// What the observer hears.
pub trait OptimizeObserver {
    /// A line worth showing (a round starting, a stop reason).
    fn note(&mut self, _text: &str) {}
    /// A candidate was proposed, refused or scored.
    fn candidate(&mut self, _candidate: &Candidate) {}
    /// An evaluation run starts: its label and cell count.
    fn evaluation(&mut self, _label: &str, _cells: usize) {}
    /// Progress of the evaluation run in flight.
    fn run_observer(&mut self) -> &mut dyn RunObserver;
    fn verdict(&mut self, _verdict: &Verdict) {}
}

#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    Finished,
    Cancelled,
}

pub struct Optimization {
    pub id: i64,
    pub request: Request,
    pub eval_set: PathBuf,
    pub state: State,
    pub candidates: Vec<Candidate>,
    pub(super) runtime: Runtime,
    pub project_root: PathBuf,
    pub(super) store: RunStore,
    pub(super) task: Task,
}

impl Optimization {
    /// What the user should know before the search starts: a held-out part too small for
    /// any candidate to ever be proven better at the chosen level.
    pub fn warnings(&self) -> Vec<String> {
        let held_out = self.state.split.held_out.len();
        let finalists = self.request.finalists.max(1) as f64;
        // The smallest exact McNemar p: every held-out case fixed, none regressed.
        let smallest = (2.0 * 0.5f64.powi(held_out as i32)).min(1.0) * finalists;
        if smallest >= self.request.alpha {
            vec![format!(
                "with {held_out} held-out cases and {} finalists no candidate can be proven better at α = {} (the smallest possible Holm-adjusted p is {smallest:.4}); add cases, raise --split's held-out share or use --finalists 1",
                self.request.finalists, self.request.alpha
            )]
        } else {
            Vec::new()
        }
    }

    /// The evaluated candidates, best first (the baseline included).
    pub fn ranking(&self) -> Vec<usize> {
        let mut ranked: Vec<&Candidate> = self
            .candidates
            .iter()
            .filter(|c| c.tuning.is_some())
            .collect();
        ranked.sort_by(|a, b| {
            b.objective()
                .total_cmp(&a.objective())
                .then(b.tuning_pass_rate().total_cmp(&a.tuning_pass_rate()))
                .then(a.number.cmp(&b.number))
        });
        ranked.into_iter().map(|c| c.number).collect()
    }

    /// Candidate `number` as the prompt it is evaluated as.
    pub fn prompt_of(&self, number: usize) -> Prompt {
        let candidate = &self.candidates[number];
        if candidate.is_baseline() {
            return self.state.base.clone();
        }
        candidate.version.to_prompt(
            &self.state.base,
            &variant_name(self.id, number),
            &format!(
                "promptlab optimize {}: candidate {number} ({}, round {})",
                self.id, candidate.strategy, candidate.round
            ),
        )
    }

    /// Runs until the search stops and the verdict is in, or `cancel` is set.
    pub fn run(
        &mut self,
        observer: &mut dyn OptimizeObserver,
        cancel: &CancelToken,
    ) -> Result<Progress, OptimizeError> {
        let proposer = self.open_proposer()?;
        loop {
            let pending: Vec<usize> = self
                .candidates
                .iter()
                .filter(|c| c.is_pending())
                .map(|c| c.number)
                .collect();
            if !pending.is_empty() {
                let before = self.best_objective();
                let label = if pending == [0] {
                    format!("optimize {}: baseline, tuning part", self.id)
                } else {
                    format!("optimize {}: round {}", self.id, self.state.round)
                };
                if !self.evaluate_tuning(&pending, &label, observer, cancel)? {
                    return self.stop_cancelled();
                }
                if pending != [0] {
                    if self.best_objective() > before + 1e-12 {
                        self.state.stale = 0;
                    } else {
                        self.state.stale += 1;
                    }
                }
                self.save_state(RunStatus::Running)?;
            }
            if let Some(reason) = self.stop_reason() {
                observer.note(&format!("search stopped: {reason}"));
                self.state.stop_reason = Some(reason);
                break;
            }
            if cancel.is_cancelled() {
                return self.stop_cancelled();
            }
            self.state.round += 1;
            let room = self.room_for_candidates();
            observer.note(&format!(
                "round {}: proposing {room} candidates",
                self.state.round
            ));
            let proposals = self.propose(room, proposer.as_ref(), cancel);
            let mut accepted = 0;
            for (kind, proposal) in proposals {
                let number = self.candidates.len();
                let mut candidate = Candidate {
                    number,
                    round: self.state.round,
                    parent: Some(proposal.parent),
                    strategy: kind.name().into(),
                    version: Version::of(&self.state.base),
                    proposal: proposal.text,
                    rejected: None,
                    run_id: None,
                    tuning: None,
                };
                match proposal.version {
                    Ok(version) => {
                        candidate.rejected = self.check(&version).err();
                        candidate.version = version;
                    }
                    Err(why) => candidate.rejected = Some(why),
                }
                accepted += usize::from(candidate.rejected.is_none());
                self.store.save_candidate(self.id, &row(&candidate))?;
                observer.candidate(&candidate);
                self.candidates.push(candidate);
            }
            if cancel.is_cancelled() {
                return self.stop_cancelled();
            }
            if accepted == 0 {
                // A round whose proposals were all refused is a round without progress.
                self.state.stale += 1;
                observer.note("no usable candidate this round");
            }
            self.save_state(RunStatus::Running)?;
        }
        self.held_out(observer, cancel)
    }

    fn stop_cancelled(&mut self) -> Result<Progress, OptimizeError> {
        self.save_state(RunStatus::Cancelled)?;
        Ok(Progress::Cancelled)
    }

    fn open_proposer(&self) -> Result<Option<Proposer>, OptimizeError> {
        let Some(name) = &self.request.proposer else {
            return Ok(None);
        };
        if !self.request.strategies.iter().any(|s| s.needs_proposer()) {
            return Ok(None);
        }
        let project = Project::open(&self.project_root)?;
        let model = project
            .catalog
            .resolve(name)
            .map_err(|e| OptimizeError::Proposer {
                model: name.clone(),
                message: e.to_string(),
            })?;
        Proposer::open(&model, self.runtime.execute.threads)
            .map(Some)
            .map_err(|e| OptimizeError::Proposer {
                model: name.clone(),
                message: e.to_string(),
            })
    }

    fn best_objective(&self) -> f64 {
        self.candidates
            .iter()
            .map(Candidate::objective)
            .fold(-1.0, f64::max)
    }

    fn tuning_cells(&self) -> usize {
        self.state.split.tuning.len()
    }

    /// Cells kept for the held-out part: the baseline and every finalist.
    fn held_out_reserve(&self) -> usize {
        (self.request.finalists + 1) * self.state.split.held_out.len()
    }

    /// How many candidates the next round may evaluate within the budget.
    fn room_for_candidates(&self) -> usize {
        let per_round = self.request.per_round.max(1);
        match self.request.budget {
            None => per_round,
            Some(budget) => {
                let left = budget.saturating_sub(self.state.spent_cells + self.held_out_reserve());
                per_round.min(left / self.tuning_cells().max(1))
            }
        }
    }

    fn stop_reason(&self) -> Option<String> {
        if self.best_objective() >= 1.0 - 1e-12 {
            return Some(format!(
                "a candidate scores 100% ({})",
                self.request.objective.name()
            ));
        }
        if let Some(rounds) = self.request.rounds
            && self.state.round >= rounds
        {
            return Some(format!("{rounds} rounds done"));
        }
        if self.state.round > 0 && self.state.stale >= self.request.patience {
            return Some(format!(
                "no better candidate for {} rounds",
                self.request.patience
            ));
        }
        if self.room_for_candidates() == 0 {
            return Some(format!(
                "the budget of {} cells is spent ({} on tuning, {} kept for the held-out part)",
                self.request.budget.unwrap_or(0),
                self.state.spent_cells,
                self.held_out_reserve()
            ));
        }
        None
    }

    /// `room` proposals, shared among the strategies in turn.
    fn propose(
        &self,
        room: usize,
        proposer: Option<&Proposer>,
        cancel: &CancelToken,
    ) -> Vec<(StrategyKind, strategy::Proposal)> {
        let beam: Vec<usize> = self
            .ranking()
            .into_iter()
            .take(self.request.beam.max(1))
            .collect();
        let ctx = Context {
            base: &self.state.base,
            candidates: &self.candidates,
            beam: &beam,
            task: &self.task,
            round: self.state.round,
            seed: self.request.seed,
            proposer,
            cancel,
        };
        let kinds = &self.request.strategies;
        let mut out = Vec::new();
        for (i, kind) in kinds.iter().enumerate() {
            let count = room / kinds.len() + usize::from(i < room % kinds.len());
            if count == 0 {
                continue;
            }
            let made = strategy::for_kind(*kind).propose(&ctx, count);
            out.extend(made.into_iter().map(|p| (*kind, p)));
        }
        out
    }

    /// Why `version` cannot be evaluated, if it cannot.
    fn check(&self, version: &Version) -> Result<(), String> {
        let earlier: Vec<String> = self
            .candidates
            .iter()
            .filter(|c| c.rejected.is_none())
            .map(|c| c.version.fingerprint(&self.state.base))
            .collect();
        let cases: Vec<&crate::evalset::Case> = self
            .task
            .cases
            .values()
            .chain(self.task.held_out_cases.values())
            .collect();
        version::check(version, &self.state.base, &cases, &earlier)
    }

    /// Evaluates the pending candidates on the tuning part as one run; false when it was
    /// cancelled.
    fn evaluate_tuning(
        &mut self,
        numbers: &[usize],
        label: &str,
        observer: &mut dyn OptimizeObserver,
        cancel: &CancelToken,
    ) -> Result<bool, OptimizeError> {
        let case_ids = self.state.split.tuning.clone();
        let resume = numbers
            .iter()
            .filter_map(|n| self.candidates[*n].run_id)
            .next();
        let Some((run_id, result)) =
            self.evaluate(numbers, &case_ids, label, resume, observer, cancel, true)?
        else {
            return Ok(false);
        };
        for &number in numbers {
            let scored = self.score(&result, number);
            let candidate = &mut self.candidates[number];
            candidate.run_id = run_id;
            candidate.tuning = Some(scored);
            self.store.save_candidate(self.id, &row(candidate))?;
            observer.candidate(candidate);
        }
        self.state.spent_cells += numbers.len() * case_ids.len();
        Ok(true)
    }

    /// One run of `numbers` on `case_ids`; None when cancelled.
    #[allow(clippy::too_many_arguments)]
    fn evaluate(
        &mut self,
        numbers: &[usize],
        case_ids: &[String],
        label: &str,
        resume: Option<i64>,
        observer: &mut dyn OptimizeObserver,
        cancel: &CancelToken,
        record_run: bool,
    ) -> Result<Option<(Option<i64>, RunResult)>, OptimizeError> {
        let prompts: Vec<Prompt> = numbers.iter().map(|n| self.prompt_of(*n)).collect();
        let mut evaluation = Evaluation::prepare(EvalRequest {
            eval_set: self.eval_set.clone(),
            project: Some(self.project_root.clone()),
            prompts: prompts.iter().map(|p| p.id.clone()).collect(),
            models: vec![self.request.model.clone()],
            case_ids: case_ids.to_vec(),
            extra_prompts: prompts,
            use_cache: self.runtime.use_cache,
            parallel: self.runtime.execute.parallel,
            gpu_layers: self.runtime.gpu_layers,
            label: Some(label.to_string()),
            resume: resume.map(ResumeFrom::Run),
            ..EvalRequest::default()
        })?;
        let run_id = evaluation.begin()?;
        if record_run && resume.is_none() {
            // Recorded before generating, so a kill mid-run resumes this run.
            for &number in numbers {
                self.candidates[number].run_id = run_id;
                self.store
                    .save_candidate(self.id, &row(&self.candidates[number]))?;
            }
        }
        observer.evaluation(label, evaluation.cell_count());
        let finished =
            evaluation.execute(&self.runtime.execute, observer.run_observer(), cancel)?;
        if finished.result.cancelled || cancel.is_cancelled() {
            return Ok(None);
        }
        Ok(Some((run_id, finished.result)))
    }

    /// Candidate `number`'s outcomes in `result` (its column is its prompt id).
    fn score(&self, result: &RunResult, number: usize) -> Scored {
        let prompt_id = self.prompt_of(number).id;
        let column = result
            .columns
            .iter()
            .position(|c| c.prompt_id == prompt_id)
            .unwrap_or(0);
        let outcomes: Vec<CaseOutcome> = result
            .cells
            .iter()
            .filter(|c| c.column == column)
            .map(|cell| CaseOutcome {
                case_id: result.cases[cell.case].id.clone(),
                passed: cell.passed && !cell.is_error(),
                score: cell.score,
                output: cell.output.clone(),
                reasons: if cell.passed {
                    Vec::new()
                } else {
                    cell.failure_reasons()
                },
            })
            .collect();
        let passed = outcomes.iter().filter(|o| o.passed).count();
        let cases = outcomes.len();
        let mean_score = if cases == 0 {
            0.0
        } else {
            outcomes.iter().map(|o| o.score).sum::<f64>() / cases as f64
        };
        let macro_f1 = result
            .classification
            .get(column)
            .and_then(|c| c.as_ref())
            .map(|report| report.macro_avg.f1);
        let objective = match self.request.objective {
            Objective::PassRate => passed as f64 / cases.max(1) as f64,
            Objective::MeanScore => mean_score,
            Objective::MacroF1 => macro_f1.unwrap_or(0.0),
        };
        Scored {
            objective,
            passed,
            cases,
            mean_score,
            macro_f1,
            outcomes,
        }
    }

    /// The finalists and the baseline on the held-out part, and the verdict.
    fn held_out(
        &mut self,
        observer: &mut dyn OptimizeObserver,
        cancel: &CancelToken,
    ) -> Result<Progress, OptimizeError> {
        let baseline_objective = self.candidates[0].objective();
        let finalists: Vec<usize> = self
            .ranking()
            .into_iter()
            .filter(|n| *n != 0 && self.candidates[*n].objective() > baseline_objective + 1e-12)
            .take(self.request.finalists)
            .collect();
        let mut numbers = vec![0];
        numbers.extend(&finalists);
        let label = format!("optimize {}: held-out part", self.id);
        let case_ids = self.state.split.held_out.clone();
        let resume = self.state.verdict.as_ref().and_then(|v| v.run_id);
        let Some((run_id, result)) =
            self.evaluate(&numbers, &case_ids, &label, resume, observer, cancel, false)?
        else {
            return self.stop_cancelled();
        };
        self.state.spent_cells += numbers.len() * case_ids.len();
        let baseline = self.score(&result, 0);
        let scored: Vec<(usize, Scored)> = finalists
            .iter()
            .map(|n| (*n, self.score(&result, *n)))
            .collect();
        let verdict = Verdict::new(run_id, baseline, scored, self.request.alpha);
        observer.verdict(&verdict);
        self.state.verdict = Some(verdict);
        self.save_state(RunStatus::Finished)?;
        Ok(Progress::Finished)
    }

    fn save_state(&self, status: RunStatus) -> Result<(), OptimizeError> {
        let finished = (status != RunStatus::Running).then(|| chrono::Local::now().to_rfc3339());
        self.store
            .update_optimization(self.id, &json(&self.state), status, finished.as_deref())?;
        Ok(())
    }
}

impl Candidate {
    fn tuning_pass_rate(&self) -> f64 {
        self.tuning.as_ref().map_or(-1.0, Scored::pass_rate)
    }
}
