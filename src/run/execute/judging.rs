//! The judge phase of a run: after every cell has generated, each judge model is loaded
//! once and judges all the model-graded assertions assigned to it, decoding them as
//! parallel sequences. Replies are cached like generations, so a resumed or repeated run
//! judges only what changed. Also: how often a judge agrees with human labels.

use std::collections::HashMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{ExecuteOptions, RunError, RunObserver, spawn_worker};
use crate::engine::{CancelToken, EngineError, GenerationEvent, GenerationRequest, WorkerEvent};
use crate::evalset::HumanLabel;
use crate::run::plan::cache_key;
use crate::run::plan::judging::JudgePlan;
use crate::run::record::Recording;
use crate::run::{CaseInfo, CellResult, RunPlan};
use crate::score::assertion::{AssertionKind, AssertionOutcome, combine};
use crate::score::judge::question_of;

/// One assertion to judge.
struct Task {
    cell: usize,
    assertion: usize,
    model: usize,
    key: String,
    request: GenerationRequest,
}

/// Judges every unjudged model-graded assertion of the finished cells in `results`,
/// records the re-scored cells and returns the time spent judging.
pub(in crate::run) fn judge_cells(
    plan: &RunPlan,
    options: &ExecuteOptions,
    results: &mut [Option<CellResult>],
    observer: &mut dyn RunObserver,
    cancel: &CancelToken,
    recording: &mut Option<Recording<'_>>,
) -> Result<JudgeTime, RunError> {
    let clock = Instant::now();
    let mut tasks = Vec::new();
    for (id, result) in results.iter_mut().enumerate() {
        let Some(result) = result.as_mut().filter(|r| r.error.is_none()) else {
            continue;
        };
        let planned = &plan.cells[id];
        for (index, assertion) in planned.assertions.iter().enumerate() {
            let AssertionKind::ModelGraded {
                grader,
                criterion,
                judge: Some(judge),
            } = &assertion.kind
            else {
                continue;
            };
            let (Some(model), Some(prompt)) = (
                plan.judging.models.iter().position(|m| &m.name == judge),
                plan.judging.prompt(*grader),
            ) else {
                continue;
            };
            // A case's own `question` is the task in plain words; otherwise the prompt's.
            let question = plan
                .cases
                .get(planned.case)
                .and_then(|c| c.vars.get("question"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| question_of(&planned.request.prompt));
            let vars = grader.variables(&question, &result.output, criterion);
            let rendered = match prompt.render(&minijinja::Value::from_serialize(&vars)) {
                Ok(rendered) => rendered,
                Err(e) => {
                    set_outcome(result, index, |o| o.judge_error = Some(e.to_string()));
                    continue;
                }
            };
            let request = plan.judging.request(model, prompt, rendered);
            let key = cache_key(plan.judging.identity(model), &request);
            tasks.push(Task {
                cell: id,
                assertion: index,
                model,
                key,
                request,
            });
        }
    }
    let judged_cells: Vec<usize> = {
        let mut ids: Vec<usize> = tasks.iter().map(|t| t.cell).collect();
        ids.dedup();
        ids
    };
    if tasks.is_empty() {
        return Ok(JudgeTime::default());
    }
    observer.judging(tasks.len());

    let requests: Vec<JudgeRequest> = tasks
        .iter()
        .map(|t| JudgeRequest {
            model: t.model,
            key: t.key.clone(),
            request: t.request.clone(),
        })
        .collect();
    let replies = run_judge(
        &plan.judging,
        &requests,
        options,
        observer,
        cancel,
        recording,
    )?;

    for (i, task) in tasks.iter().enumerate() {
        let Some(result) = results[task.cell].as_mut() else {
            continue;
        };
        let assertion = &plan.cells[task.cell].assertions[task.assertion];
        let AssertionKind::ModelGraded { grader, .. } = &assertion.kind else {
            continue;
        };
        let judge = &plan.judging.models[task.model].name;
        match replies.get(&i) {
            None => set_outcome(result, task.assertion, |o| {
                o.judge_error = Some("not judged: the run stopped first".into())
            }),
            Some(Err(err)) => set_outcome(result, task.assertion, |o| {
                o.judge_error = Some(err.to_string())
            }),
            Some(Ok(reply)) => match grader.verdict(&reply.text, assertion.threshold) {
                Err(why) => set_outcome(result, task.assertion, |o| {
                    o.judge_error = Some(format!("judge `{judge}`: {why}"))
                }),
                Ok(verdict) => set_outcome(result, task.assertion, |o| {
                    o.passed = verdict.passed != assertion.negated;
                    o.score = if assertion.negated {
                        1.0 - verdict.score
                    } else {
                        verdict.score
                    };
                    let not = if assertion.negated { "not " } else { "" };
                    o.reason = Some(format!(
                        "judge `{judge}` (expected the output {not}to {}, score {:.2}): {}",
                        grader.expectation(),
                        verdict.score,
                        verdict.reason.replace(['\n', '\r'], " ")
                    ));
                    o.judge_error = None;
                }),
            },
        }
    }
    for &id in &judged_cells {
        let Some(result) = results[id].as_mut() else {
            continue;
        };
        let (passed, score) = combine(&result.assertions, plan.cells[id].threshold);
        result.passed = passed && !result.has_judge_error();
        result.score = score;
        if let Some(recording) = recording.as_mut() {
            recording.record(plan, id, result)?;
        }
        observer.cell_rescored(id, result);
    }
    Ok(JudgeTime {
        judges: plan.judging.models.iter().map(|m| m.name.clone()).collect(),
        seconds: clock.elapsed().as_secs_f64(),
        cells: judged_cells.len(),
        assertions: tasks.len(),
    })
}

/// A request to a judge model, with its cache key.
pub(in crate::run) struct JudgeRequest {
    /// Index into [`JudgePlan::models`].
    pub model: usize,
    pub key: String,
    pub request: GenerationRequest,
}

/// A judge model that did not load or did not answer a request.
#[derive(Debug, Clone, thiserror::Error)]
#[error("judge `{judge}`: {source}")]
pub(in crate::run) struct JudgeFailure {
    judge: String,
    #[source]
    source: EngineError,
}

/// A judge's reply to one request, or why there is none.
pub(in crate::run) type JudgeReply = Result<crate::engine::Generation, JudgeFailure>;

/// Runs judge requests: cached replies first, then each judge model loaded once for all
/// of its requests. Returns replies by request index; a request missing from the map was
/// not judged (the run was cancelled).
pub(in crate::run) fn run_judge(
    judging: &JudgePlan,
    tasks: &[JudgeRequest],
    options: &ExecuteOptions,
    observer: &mut dyn RunObserver,
    cancel: &CancelToken,
    recording: &mut Option<Recording<'_>>,
) -> Result<HashMap<usize, JudgeReply>, RunError> {
    let mut replies: HashMap<usize, JudgeReply> = HashMap::new();
    if let Some(recording) = recording.as_ref() {
        let keys: Vec<String> = tasks.iter().map(|t| t.key.clone()).collect();
        let hits = recording.cached_by_key(&keys)?;
        for (i, task) in tasks.iter().enumerate() {
            if let Some(hit) = hits.get(&task.key) {
                replies.insert(i, Ok(hit.clone()));
                observer.judged(1);
            }
        }
    }
    for (model_index, model) in judging.models.iter().enumerate() {
        let mine: Vec<usize> = (0..tasks.len())
            .filter(|i| tasks[*i].model == model_index && !replies.contains_key(i))
            .collect();
        if mine.is_empty() || cancel.is_cancelled() {
            continue;
        }
        observer.model_loading(&model.name);
        let load_start = Instant::now();
        let worker = match spawn_worker(model, options) {
            Ok(worker) => worker,
            Err(source) => {
                let failure = JudgeFailure {
                    judge: model.name.clone(),
                    source,
                };
                for &i in &mine {
                    replies.insert(i, Err(failure.clone()));
                }
                continue;
            }
        };
        observer.model_loaded(&model.name, load_start.elapsed().as_secs_f64() * 1000.0);
        let requests = mine.iter().map(|&i| tasks[i].request.clone()).collect();
        for event in worker.generate(requests, cancel.clone()) {
            match event {
                WorkerEvent::BatchDone => break,
                WorkerEvent::Generation(GenerationEvent::Finished(i, outcome)) => {
                    let task = mine[i];
                    let reply = match outcome {
                        Ok(g) if g.finish == crate::engine::FinishReason::Cancelled => continue,
                        Ok(generation) => {
                            if let Some(recording) = recording.as_ref() {
                                recording.cache(&tasks[task].key, &generation)?;
                            }
                            Ok(generation)
                        }
                        Err(source) => Err(JudgeFailure {
                            judge: model.name.clone(),
                            source,
                        }),
                    };
                    replies.insert(task, reply);
                    observer.judged(1);
                }
                WorkerEvent::Generation(_) => {}
            }
        }
    }

    Ok(replies)
}

fn set_outcome(result: &mut CellResult, index: usize, change: impl FnOnce(&mut AssertionOutcome)) {
    if let Some(outcome) = result.assertions.get_mut(index) {
        change(outcome);
    }
}

/// What judging cost a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JudgeTime {
    /// The judge models used.
    pub judges: Vec<String>,
    pub seconds: f64,
    /// Cells with at least one model-graded assertion.
    pub cells: usize,
    pub assertions: usize,
}

/// How a column's verdicts compare with the cases' human labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeAgreement {
    /// Labelled cases with a verdict (judge errors are left out).
    pub cases: usize,
    pub agreed: usize,
    /// Cohen's kappa; None when it is undefined (one label everywhere on both sides).
    pub kappa: Option<f64>,
    /// Human pass judged fail, and human fail judged pass.
    pub false_fails: usize,
    pub false_passes: usize,
}

/// Per column, when some case carries a human label.
pub(in crate::run) fn agreements(
    columns: usize,
    cases: &[CaseInfo],
    cells: &[CellResult],
) -> Vec<Option<JudgeAgreement>> {
    if cases.iter().all(|c| c.human.is_none()) {
        return vec![None; columns];
    }
    (0..columns)
        .map(|column| {
            let pairs: Vec<(bool, bool)> = cells
                .iter()
                .filter(|c| c.column == column && !c.is_error())
                .filter_map(|c| {
                    let human = cases.get(c.case)?.human?;
                    Some((human == HumanLabel::Pass, c.passed))
                })
                .collect();
            if pairs.is_empty() {
                return None;
            }
            Some(JudgeAgreement {
                cases: pairs.len(),
                agreed: pairs.iter().filter(|(h, j)| h == j).count(),
                kappa: crate::score::stats::cohen_kappa(&pairs),
                false_fails: pairs.iter().filter(|(h, j)| *h && !*j).count(),
                false_passes: pairs.iter().filter(|(h, j)| !*h && *j).count(),
            })
        })
        .collect()
}
