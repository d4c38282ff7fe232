//! Connects a run to the run store: each finished cell is written at once (so a kill
//! loses at most the cells in flight), cached generations are looked up before any model
//! loads, and the cells of an interrupted run are read back for `--resume`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{CellResult, RunError, RunOptions, RunPlan};
use crate::engine::{FinishReason, Generation};
use crate::store::{CachedGeneration, NewRun, RunStore, StoreError, StoredCell};

/// What a run stores about how it was selected, so a resume selects the same cells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredConfig {
    /// The eval set's absolute path: runs of one set are found by it.
    pub eval_set: String,
    pub options: RunOptions,
    pub columns: Vec<String>,
}

impl StoredConfig {
    /// The store row of a new run of `plan`.
    pub fn new_run(plan: &RunPlan, eval_set_key: &str, options: &RunOptions) -> NewRun {
        let config = StoredConfig {
            eval_set: eval_set_key.to_string(),
            options: options.clone(),
            columns: plan.columns.iter().map(|c| c.id.clone()).collect(),
        };
        NewRun {
            eval_set: plan.eval_set.name.clone(),
            eval_set_path: eval_set_key.to_string(),
            // A struct of strings always serializes.
            config_json: serde_json::to_string(&config).unwrap_or_default(),
            started_at: chrono::Local::now().to_rfc3339(),
            cell_count: plan.cells.len(),
        }
    }

    /// The configuration run `run_id` was started with, for resuming it: None when the
    /// store has no such run; an error when it was not recorded by a prompt evaluation.
    pub fn of_run(store: &RunStore, run_id: i64) -> Result<Option<StoredConfig>, StoreError> {
        let Some(config) = store.run_config(run_id)? else {
            return Ok(None);
        };
        serde_json::from_str(&config)
            .map(Some)
            .map_err(|e| StoreError::InvalidInput {
                path: store.path().to_path_buf(),
                message: format!("run {run_id}: unreadable stored configuration ({e})"),
            })
    }
}

/// Which interrupted run to pick up again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeFrom {
    /// The newest run of the eval set that did not finish.
    Latest,
    Run(i64),
}

impl StoredConfig {
    /// The run to resume and the options it was started with, so the resumed run selects
    /// exactly the same cells; it must be a run of the eval set at `eval_set_path`.
    pub fn to_resume(
        store: &RunStore,
        eval_set_path: &std::path::Path,
        which: ResumeFrom,
    ) -> Result<(i64, RunOptions), RunError> {
        let key = crate::store::eval_set_key(eval_set_path);
        let run_id = match which {
            ResumeFrom::Run(id) => id,
            ResumeFrom::Latest => {
                store
                    .latest_resumable(&key)?
                    .ok_or_else(|| RunError::Resume {
                        run: None,
                        message: format!(
                            "{}: no interrupted run of this eval set to resume",
                            eval_set_path.display()
                        ),
                    })?
            }
        };
        let stored = StoredConfig::of_run(store, run_id)?.ok_or_else(|| RunError::Resume {
            run: Some(run_id),
            message: format!("no such run in {}", store.path().display()),
        })?;
        if stored.eval_set != key {
            return Err(RunError::Resume {
                run: Some(run_id),
                message: format!("evaluated {}, not {key}", stored.eval_set),
            });
        }
        Ok((run_id, stored.options))
    }
}

/// A run being recorded.
pub struct Recording<'a> {
    pub store: &'a mut RunStore,
    pub run_id: i64,
    /// Reuse generations whose cache key was seen before.
    pub use_cache: bool,
}

impl<'a> Recording<'a> {
    /// Starts recording `plan`, run with `options` on the eval set at `eval_set_path`: a
    /// new run, or the interrupted run `resume` picked up again. How `eval` and the TUI
    /// both start a recorded run.
    pub fn begin(
        store: &'a mut RunStore,
        plan: &RunPlan,
        eval_set_path: &std::path::Path,
        options: &RunOptions,
        resume: Option<i64>,
        use_cache: bool,
    ) -> Result<Recording<'a>, StoreError> {
        let run_id = match resume {
            Some(id) => {
                store.resume_run(id)?;
                id
            }
            None => {
                let key = crate::store::eval_set_key(eval_set_path);
                store.create_run(&StoredConfig::new_run(plan, &key, options))?
            }
        };
        Ok(Recording {
            store,
            run_id,
            use_cache,
        })
    }

    /// Generations this run already recorded (when resuming), by plan cell index, to be
    /// scored again with the current assertions. A stored cell counts only when it is the
    /// same column and case with the same request; cells that ended in an engine error
    /// are generated again.
    pub fn recorded(
        &self,
        plan: &RunPlan,
    ) -> Result<HashMap<usize, (Generation, bool)>, StoreError> {
        let by_position: HashMap<(usize, usize), usize> = plan
            .cells
            .iter()
            .enumerate()
            .map(|(i, c)| ((c.column, c.case), i))
            .collect();
        let mut found = HashMap::new();
        for stored in self.store.cells(self.run_id)? {
            if let Some(&id) = by_position.get(&(stored.column_index, stored.case_index))
                && stored.error.is_none()
                && plan.cells[id].cache_key == stored.cache_key
                && plan.columns[stored.column_index].id == stored.column_id
                && plan.cases[stored.case_index].id == stored.case_id
            {
                found.insert(id, (stored_generation(&stored), stored.cached));
            }
        }
        Ok(found)
    }

    /// Cached generations for the given plan cells, by cell index.
    pub fn cached(
        &self,
        plan: &RunPlan,
        ids: &[usize],
    ) -> Result<HashMap<usize, Generation>, StoreError> {
        if !self.use_cache || ids.is_empty() {
            return Ok(HashMap::new());
        }
        let keys: Vec<String> = ids
            .iter()
            .map(|&i| plan.cells[i].cache_key.clone())
            .collect();
        let hits = self.store.cached_generations(&keys)?;
        Ok(ids
            .iter()
            .filter_map(|&i| {
                hits.get(&plan.cells[i].cache_key)
                    .map(|hit| (i, to_generation(hit)))
            })
            .collect())
    }

    /// Cached judge replies by cache key (judging is cached like generating).
    pub fn cached_by_key(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, Generation>, StoreError> {
        if !self.use_cache || keys.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(self
            .store
            .cached_generations(keys)?
            .iter()
            .map(|(key, hit)| (key.clone(), to_generation(hit)))
            .collect())
    }

    /// Caches a judge's reply.
    pub fn cache(&self, key: &str, generation: &Generation) -> Result<(), StoreError> {
        let cached = CachedGeneration {
            output: generation.text.clone(),
            finish: Some(finish_text(generation.finish)),
            prompt_tokens: generation.prompt_tokens,
            completion_tokens: generation.completion_tokens,
            ttft_ms: generation.ttft_ms,
            latency_ms: generation.total_ms,
            tokens_per_s: generation.tokens_per_s,
            logprobs_json: logprobs_json(generation.logprobs.as_deref()),
        };
        self.store.cache_generation(key, &cached)
    }

    pub fn record(
        &mut self,
        plan: &RunPlan,
        id: usize,
        cell: &CellResult,
    ) -> Result<(), StoreError> {
        let stored = stored_cell(
            cell,
            &plan.columns[cell.column].id,
            &plan.cases[cell.case].id,
            &plan.cells[id].cache_key,
        );
        self.store.record_cell(self.run_id, &stored)
    }
}

/// A cell as the run store keeps it.
pub fn stored_cell(
    cell: &CellResult,
    column_id: &str,
    case_id: &str,
    cache_key: &str,
) -> StoredCell {
    StoredCell {
        column_index: cell.column,
        case_index: cell.case,
        column_id: column_id.to_string(),
        case_id: case_id.to_string(),
        cache_key: cache_key.to_string(),
        prompt_json: serde_json::to_string(&cell.prompt).unwrap_or_default(),
        output: cell.output.clone(),
        error: cell.error.clone(),
        passed: cell.passed,
        score: cell.score,
        assertions_json: serde_json::to_string(&cell.assertions).unwrap_or_default(),
        finish: cell.finish.map(finish_text),
        prompt_tokens: cell.prompt_tokens,
        completion_tokens: cell.completion_tokens,
        ttft_ms: cell.ttft_ms,
        latency_ms: cell.latency_ms,
        tokens_per_s: cell.tokens_per_s,
        cached: cell.cached,
        logprobs_json: logprobs_json(cell.logprobs.as_deref()),
    }
}

fn logprobs_json(logprobs: Option<&[f64]>) -> Option<String> {
    logprobs.and_then(|l| serde_json::to_string(l).ok())
}

fn parse_logprobs(json: Option<&str>) -> Option<Vec<f64>> {
    json.and_then(|j| serde_json::from_str(j).ok())
}

fn finish_text(finish: FinishReason) -> String {
    serde_json::to_value(finish)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn parse_finish(text: &str) -> Option<FinishReason> {
    serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
}

fn to_generation(hit: &CachedGeneration) -> Generation {
    Generation {
        text: hit.output.clone(),
        finish: hit
            .finish
            .as_deref()
            .and_then(parse_finish)
            .unwrap_or(FinishReason::EndOfText),
        prompt_tokens: hit.prompt_tokens,
        completion_tokens: hit.completion_tokens,
        ttft_ms: hit.ttft_ms,
        total_ms: hit.latency_ms,
        prompt_tokens_per_s: None,
        tokens_per_s: hit.tokens_per_s,
        cached_prompt_tokens: 0,
        logprobs: parse_logprobs(hit.logprobs_json.as_deref()),
    }
}

fn stored_generation(stored: &StoredCell) -> Generation {
    Generation {
        text: stored.output.clone(),
        finish: stored
            .finish
            .as_deref()
            .and_then(parse_finish)
            .unwrap_or(FinishReason::EndOfText),
        prompt_tokens: stored.prompt_tokens,
        completion_tokens: stored.completion_tokens,
        ttft_ms: stored.ttft_ms,
        total_ms: stored.latency_ms,
        prompt_tokens_per_s: None,
        tokens_per_s: stored.tokens_per_s,
        cached_prompt_tokens: 0,
        logprobs: parse_logprobs(stored.logprobs_json.as_deref()),
    }
}
