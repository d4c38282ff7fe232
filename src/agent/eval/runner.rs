//! Running an agent evaluation set: every question for each prompt and model, each trace
//! checked, and each cell recorded in the run store as it finishes, with a link to its
//! trace, so an interrupted run resumes by scoring its finished questions again instead
//! of asking them again. `promptlab eval`, `promptlab agent --eval` and the TUI run agent
//! sets through here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::agent::session::{Question, Session, SessionError, SessionOptions};
use crate::agent::{AgentLimits, DEFAULT_SYSTEM};
use crate::engine::{CancelToken, Flow};
use crate::evalset::agent::{AgentEvalError, AgentEvalSet, AgentScores};
use crate::project::{Project, ProjectError};
use crate::prompt::{ChatMessage, Prompt, RenderedPrompt};
use crate::run::{CaseInfo, RunObserver, Timing};
use crate::store::{RunStatus, RunStore, StoreError};

mod asking;
mod options;
mod outcome;
mod resume;
mod tally;

use tally::Tally;

pub use options::AgentEvalOptions;
use outcome::AgentEvalEvent;
pub use outcome::{AgentEvalOutcome, AnsweredQuestion, Recording};
pub use resume::resume_options;

#[derive(Debug, thiserror::Error)]
pub enum AgentRunError {
    #[error(transparent)]
    Set(#[from] AgentEvalError),
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {message}")]
    Selection { path: PathBuf, message: String },
    #[error("unknown prompt `{selector}`: expected one of {known}")]
    UnknownPrompt { selector: String, known: String },
    #[error("prompt `{selector}` comes from a file that does not load: {source}")]
    BrokenPrompt {
        selector: String,
        #[source]
        source: std::sync::Arc<crate::prompt::PromptError>,
    },
    #[error("`{selector}` names {count} variants ({ids}); pick one as name:variant")]
    AmbiguousPrompt {
        selector: String,
        count: usize,
        ids: String,
    },
    #[error("run {run_id}: {message}")]
    Resume { run_id: i64, message: String },
}

/// One column: a prompt (or the built-in system prompt) with the session offering its
/// tools. Columns repeat for every model.
pub(super) struct PromptColumn {
    pub prompt: Option<Prompt>,
    pub session: Session,
}

/// An agent evaluation ready to run: the set, the selected questions and the columns.
pub struct AgentEvalPlan {
    pub set: AgentEvalSet,
    /// The set's absolute path, which the run store finds its runs by.
    pub set_key: String,
    pub options: AgentEvalOptions,
    pub models: Vec<String>,
    /// Indexes into `set.cases`.
    cases: Vec<usize>,
    columns: Vec<PromptColumn>,
    /// The run store the run and its traces are recorded in.
    store_path: PathBuf,
    /// The run's name in the store.
    label: Option<String>,
}

impl AgentEvalPlan {
    /// Loads the set at `path` and selects its questions, prompts and models; with
    /// `store`, every question's trace is recorded in that run store as it is asked.
    pub fn new(
        project_root: &Path,
        path: &Path,
        options: AgentEvalOptions,
        store: Option<&Path>,
    ) -> Result<AgentEvalPlan, AgentRunError> {
        let set = AgentEvalSet::load(path)?;
        let selection_error = |message: &str| AgentRunError::Selection {
            path: path.to_path_buf(),
            message: message.to_string(),
        };
        let models = if options.models.is_empty() {
            set.models.clone()
        } else {
            options.models.clone()
        };
        if models.is_empty() {
            return Err(selection_error(
                "no models: add `models:` to the set or pass --model",
            ));
        }
        let mut cases: Vec<usize> = (0..set.cases.len())
            .filter(|&i| {
                options.tags.is_empty()
                    || set.cases[i].tags.iter().any(|t| options.tags.contains(t))
            })
            .collect();
        if let Some(limit) = options.limit {
            cases.truncate(limit);
        }
        if cases.is_empty() {
            return Err(selection_error(
                "no cases left after the tag filter and limit",
            ));
        }
        let selectors: Vec<Option<String>> = if !options.prompts.is_empty() {
            options.prompts.iter().cloned().map(Some).collect()
        } else if !set.prompts.is_empty() {
            set.prompts.iter().cloned().map(Some).collect()
        } else {
            vec![None]
        };
        let mut columns = Vec::new();
        for selector in &selectors {
            let project = Project::open(project_root)?;
            let prompt = match selector {
                Some(selector) => Some(find_prompt(&project, selector)?),
                None => None,
            };
            let wanted = if !options.tools.is_empty() {
                options.tools.clone()
            } else if let Some(p) = prompt.as_ref().filter(|p| !p.tools.is_empty()) {
                p.tools.clone()
            } else {
                set.tools.clone()
            };
            let session = Session::open(
                project,
                &SessionOptions {
                    wanted_tools: &wanted,
                    models: &options.tool_models,
                    tool_timeout: Duration::from_secs(options.tool_timeout_s.max(1)),
                    allowed: &options.allowed,
                    record: store,
                },
            )?;
            columns.push(PromptColumn { prompt, session });
        }
        let set_key = crate::store::eval_set_key(path);
        Ok(AgentEvalPlan {
            set,
            set_key,
            options,
            models,
            cases,
            columns,
            store_path: store
                .map(Path::to_path_buf)
                .unwrap_or_else(|| crate::project::store_path(project_root)),
            label: None,
        })
    }

    /// Tools left out of some column, with the reason (a model not set up, say).
    /// The models (with their architecture) whose traces can change when questions are
    /// asked together, as they are at more than one question at a time.
    pub fn schedule_dependent_models(&self) -> Vec<(String, String)> {
        if self.options.parallel_questions(usize::MAX) <= 1 {
            return Vec::new();
        }
        let Some(first) = self.columns.first() else {
            return Vec::new();
        };
        self.models
            .iter()
            .filter_map(|model| {
                let resolved = first.session.project.catalog.resolve(model).ok()?;
                let architecture =
                    crate::engine::llama::not_batch_invariant(resolved.entry.as_ref()?)?;
                Some((model.clone(), architecture))
            })
            .collect()
    }

    pub fn left_out_tools(&self) -> Vec<(String, String)> {
        let mut left_out: Vec<(String, String)> = Vec::new();
        for column in &self.columns {
            for entry in &column.session.tools.unavailable {
                if !left_out.contains(entry) {
                    left_out.push(entry.clone());
                }
            }
        }
        left_out
    }

    /// The matrix's columns in run order: for each model, every prompt.
    pub fn column_ids(&self) -> Vec<String> {
        self.matrix_columns().into_iter().map(|c| c.id).collect()
    }

    fn matrix_columns(&self) -> Vec<crate::run::Column> {
        self.models
            .iter()
            .flat_map(|model| {
                self.columns.iter().map(move |c| {
                    super::matrix::column(c.prompt.as_ref().map(|p| p.id.as_str()), model)
                })
            })
            .collect()
    }

    /// `(column id, case id)` of every cell, in run order.
    pub fn cell_labels(&self) -> Vec<(String, String)> {
        self.column_ids()
            .into_iter()
            .flat_map(|column| {
                self.cases
                    .iter()
                    .map(move |&i| (column.clone(), self.set.cases[i].id.clone()))
            })
            .collect()
    }

    /// Every reply decodes greedily: temperature 0 from the options, else from each
    /// model's and prompt's parameters.
    pub fn samples_greedily(&self) -> bool {
        if let Some(t) = self.options.temperature {
            return t <= 0.0;
        }
        let Some(first) = self.columns.first() else {
            return true;
        };
        self.models.iter().all(|model| {
            let Ok(resolved) = first.session.project.catalog.resolve(model) else {
                return true;
            };
            let params = resolved
                .entry
                .map(|e| e.params().clone())
                .unwrap_or_default();
            self.columns.iter().all(|column| {
                let sampling = match &column.prompt {
                    Some(prompt) => params.overlay(&prompt.params).resolve(),
                    None => params.resolve(),
                };
                sampling.temperature <= 0.0
            })
        })
    }

    pub fn cell_count(&self) -> usize {
        self.models.len() * self.columns.len() * self.cases.len()
    }

    /// The run store the run is recorded in.
    pub fn open_store(&self) -> Result<RunStore, StoreError> {
        RunStore::open(&self.store_path)
    }

    /// Names the new run in the store.
    pub fn set_label(&mut self, label: String) {
        self.label = Some(label);
    }

    /// The system prompt a question opens with when no agent prompt does: the set's,
    /// else the options', else the built-in one.
    fn system_prompt(&self) -> String {
        self.set
            .system
            .clone()
            .or_else(|| self.options.system.clone())
            .unwrap_or_else(|| DEFAULT_SYSTEM.into())
    }

    fn limits(&self) -> AgentLimits {
        AgentLimits {
            max_steps: self.set.max_steps.unwrap_or(self.options.max_steps).max(1),
            max_tokens: self.options.max_tokens.max(1),
            max_wall: Duration::from_secs(self.options.max_seconds.max(1)),
            ..AgentLimits::default()
        }
    }

    /// How row `row`'s question is asked in `place`.
    fn question<'p>(&'p self, place: &Place<'p>, row: usize) -> Question<'p> {
        let case = &self.set.cases[self.cases[row]];
        Question {
            text: &case.question,
            system: self.system_prompt(),
            prompt: place.column.prompt.as_ref(),
            limits: self.limits(),
            temperature: self.options.temperature,
            seed: self.options.seed,
            seed_offset: self.options.seed_offset,
            ground_numbers: self.options.ground_numbers,
        }
    }

    /// The conversation a question opens with, as the cell's prompt.
    fn opening(
        &self,
        prompt: Option<&Prompt>,
        question: &str,
    ) -> Result<RenderedPrompt, AgentRunError> {
        let messages = match prompt {
            Some(p) => crate::agent::opening_messages(Some(p), question)
                .map_err(|e| AgentRunError::Session(SessionError::Agent(e)))?,
            None => vec![
                ChatMessage {
                    role: "system".into(),
                    content: self.system_prompt(),
                },
                ChatMessage {
                    role: "user".into(),
                    content: question.to_string(),
                },
            ],
        };
        Ok(RenderedPrompt::Chat(messages))
    }
}

/// The one prompt `selector` names in the project's prompts/.
pub fn find_prompt(project: &Project, selector: &str) -> Result<Prompt, AgentRunError> {
    if let Some(broken) = project.prompts.broken_for(selector) {
        return Err(AgentRunError::BrokenPrompt {
            selector: selector.to_string(),
            source: broken.error.clone(),
        });
    }
    match project.prompts.select(selector).as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(AgentRunError::UnknownPrompt {
            selector: selector.to_string(),
            known: project.prompts.names().join(", "),
        }),
        several => Err(AgentRunError::AmbiguousPrompt {
            selector: selector.to_string(),
            count: several.len(),
            ids: several
                .iter()
                .map(|p| p.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

impl AgentEvalPlan {
    /// `--gpu-layers` for every model the questions are asked of.
    pub fn set_gpu_layers(&mut self, gpu_layers: Option<crate::catalog::GpuLayers>) {
        for column in &mut self.columns {
            column.session.gpu_layers = gpu_layers;
        }
    }

    /// Runs every question not already answered in the run being resumed, until done or
    /// `cancel` is set. The question in flight when cancelled is not recorded: a resume
    /// asks it again.
    pub fn run(
        &self,
        recording: Recording,
        cancel: &CancelToken,
        observer: &mut dyn RunObserver,
    ) -> Result<AgentEvalOutcome, AgentRunError> {
        self.run_with(recording, cancel, &mut |event| {
            match event {
                AgentEvalEvent::Loading { model } => observer.model_loading(model),
                AgentEvalEvent::Loaded { model, load_ms } => observer.model_loaded(model, load_ms),
                AgentEvalEvent::Asking { index } => observer.cell_started(index),
                AgentEvalEvent::Token { index, text } => observer.token(index, text),
                AgentEvalEvent::Step { index, step } => observer.agent_step(index, step),
                AgentEvalEvent::Question { answered, cell } => {
                    observer.cell_finished(answered.index, cell)
                }
            }
            Flow::Continue
        })
    }

    fn run_with(
        &self,
        recording: Recording,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(AgentEvalEvent) -> Flow,
    ) -> Result<AgentEvalOutcome, AgentRunError> {
        let started = Instant::now();
        let started_at = chrono::Local::now().to_rfc3339();
        let mut store = match recording {
            Recording::Off => None,
            Recording::New | Recording::Resume(_) => Some(self.open_store()?),
        };
        let matrix_columns = self.matrix_columns();
        let (run_id, mut finished) = match (recording, store.as_ref()) {
            (Recording::New, Some(store)) => {
                let id = store.create_run(&self.new_run(&started_at))?;
                if let Some(label) = &self.label {
                    store.set_label(id, Some(label))?;
                }
                (Some(id), HashMap::new())
            }
            (Recording::Resume(id), Some(store)) => {
                store.resume_run(id)?;
                (Some(id), self.finished_questions(store, id)?)
            }
            _ => (None, HashMap::new()),
        };
        let mut tally = Tally {
            store: store.as_mut(),
            run_id,
            total: self.cell_count(),
            cells: Vec::new(),
            questions: Vec::new(),
        };
        let mut all_scores = Vec::new();
        let mut cancelled = false;
        'models: for (model_index, model) in self.models.iter().enumerate() {
            let mut loaded: Option<asking::Loaded> = None;
            for (prompt_index, column) in self.columns.iter().enumerate() {
                let column_index = model_index * self.columns.len() + prompt_index;
                let mut scores = AgentScores {
                    model: matrix_columns[column_index].id.clone(),
                    ..AgentScores::default()
                };
                let place = Place {
                    column,
                    column_index,
                    column_id: &matrix_columns[column_index].id,
                    model,
                };
                let mut to_ask = Vec::new();
                for row in 0..self.cases.len() {
                    match finished.remove(&(column_index, row)) {
                        Some((agent_run, trace)) => {
                            let (answered, cell) = tally.settle(
                                self,
                                &place,
                                row,
                                trace,
                                Some(agent_run),
                                true,
                                &mut scores,
                            )?;
                            if on_event(AgentEvalEvent::Question { answered, cell }) == Flow::Stop {
                                cancel.cancel();
                            }
                        }
                        None => to_ask.push(row),
                    }
                }
                if !to_ask.is_empty() {
                    if cancel.is_cancelled() {
                        cancelled = true;
                        break 'models;
                    }
                    let loaded = match &mut loaded {
                        Some(loaded) => loaded,
                        None => {
                            on_event(AgentEvalEvent::Loading { model });
                            let load_started = Instant::now();
                            let slots = self.options.parallel_questions(to_ask.len());
                            let model_loaded = asking::Loaded::load(&column.session, model, slots)?;
                            on_event(AgentEvalEvent::Loaded {
                                model,
                                load_ms: load_started.elapsed().as_secs_f64() * 1000.0,
                            });
                            loaded.insert(model_loaded)
                        }
                    };
                    let complete =
                        asking::ask(self, &place, loaded, &to_ask, cancel, &mut |progress| {
                            match progress {
                                asking::Answered::Event(event) => Ok(on_event(event)),
                                asking::Answered::Trace {
                                    row,
                                    trace,
                                    agent_run,
                                } => {
                                    let (answered, cell) = tally.settle(
                                        self,
                                        &place,
                                        row,
                                        trace,
                                        agent_run,
                                        false,
                                        &mut scores,
                                    )?;
                                    Ok(on_event(AgentEvalEvent::Question { answered, cell }))
                                }
                            }
                        })?;
                    if !complete {
                        cancelled = true;
                        break 'models;
                    }
                }
                all_scores.push(scores);
            }
        }
        let Tally {
            mut cells,
            mut questions,
            ..
        } = tally;
        // Questions asked together finish in any order.
        questions.sort_by_key(|q| q.index);
        cells.sort_by_key(|c| (c.column, c.case));
        if let (Some(store), Some(run_id)) = (&store, run_id) {
            let status = if cancelled {
                RunStatus::Cancelled
            } else {
                RunStatus::Finished
            };
            store.finish_run(run_id, &chrono::Local::now().to_rfc3339(), status)?;
        }
        let case_infos = self
            .cases
            .iter()
            .map(|&i| CaseInfo::from(&self.set.cases[i]))
            .collect();
        let result = super::matrix::run_result(
            &self.set,
            Timing {
                started_at,
                duration_s: started.elapsed().as_secs_f64(),
                cancelled,
            },
            matrix_columns,
            case_infos,
            cells,
        );
        Ok(AgentEvalOutcome {
            result,
            scores: all_scores,
            questions,
            run_id,
            cancelled,
        })
    }
}

/// Where a question is asked: its column of the matrix, and the model.
pub(super) struct Place<'p> {
    pub column: &'p PromptColumn,
    pub column_index: usize,
    pub column_id: &'p str,
    pub model: &'p str,
}
