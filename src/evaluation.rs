//! Starting an evaluation of any eval set: a prompt set, a promptfoo config or an agent
//! set. This is the one way `promptlab eval`, `promptlab agent --eval` and the
//! workbench start a run: [`Evaluation::prepare`] loads and validates everything and
//! opens (or resumes) the run in the run store, [`Evaluation::execute`] runs it,
//! reporting through one [`RunObserver`] whatever the cells are, and returns one
//! [`RunResult`]. Prompt cells run through [`crate::run`]; agent questions, each a loop
//! of replies and tool calls, through [`crate::agent::eval::runner`].

use std::path::{Path, PathBuf};

use crate::agent::eval::runner::{
    AgentEvalOptions, AgentEvalPlan, AgentRunError, AnsweredQuestion, Recording as AgentRecording,
    resume_options,
};
use crate::catalog::{EngineChoice, KindSettings};
use crate::engine::CancelToken;
use crate::evalset::agent::AgentScores;
use crate::evalset::{EvalSet, EvalSetError};
use crate::project::{Project, ProjectError};
use crate::run::{
    ExecuteOptions, PlanError, Recording, ResumeFrom, RunError, RunObserver, RunOptions, RunPlan,
    RunResult, ScheduleDependence, StoredConfig,
};
use crate::store::{RunStore, StoreError};

/// Where the run is recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StoreChoice {
    /// Not at all: no resume, no cache.
    Off,
    /// The project's `.promptlab/runs.db`.
    #[default]
    Project,
    /// This database file.
    At(PathBuf),
}

/// What to evaluate and how to record it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The eval set file (a prompt set, a promptfoo config or an agent set).
    pub eval_set: PathBuf,
    /// The project folder; None finds it from the eval set's location.
    pub project: Option<PathBuf>,
    /// Prompts (`name` or `name:variant`) instead of the set's.
    pub prompts: Vec<String>,
    /// Models instead of the set's.
    pub models: Vec<String>,
    /// Only cases with one of these tags.
    pub tags: Vec<String>,
    /// Only the first N cases.
    pub limit: Option<usize>,
    /// Added to every seed: repeat `r` of `--repeat` uses `r`.
    pub seed_offset: u32,
    /// Judge of model-graded assertions that name none (prompt sets).
    pub judge: Option<String>,
    /// Generation parameters over the prompts' and models' (a sweep's setting; prompt
    /// sets).
    pub params: crate::params::GenerationParams,
    /// Engine for every GGUF model of the catalog, over each entry's `engine`.
    pub engine: Option<EngineChoice>,
    /// For a promptfoo config: run what promptlab supports and list the rest as skipped.
    pub skip_unsupported: bool,
    pub store: StoreChoice,
    /// Continue an interrupted run instead of starting a new one; its recorded options
    /// replace the selection above.
    pub resume: Option<ResumeFrom>,
    /// Reuse generations found in the run store's cache.
    pub use_cache: bool,
    /// A name for the run in the store.
    pub label: Option<String>,
    /// Cells (or agent questions) decoded together per model.
    pub parallel: Option<u32>,
    /// Layers of every GGUF model on a GPU, over each entry's `gpu_layers` (`--gpu-layers`).
    /// Applied before planning, so cache keys name the device the outputs come from.
    pub gpu_layers: Option<crate::catalog::GpuLayers>,
    /// How agent questions are asked (tools, limits, sampling); its selection fields are
    /// replaced by the request's. Ignored for prompt sets.
    pub agent: AgentEvalOptions,
    /// Only the cases with these ids (prompt sets).
    pub case_ids: Vec<String>,
    /// Prompt versions in no file, selectable by id in `prompts` (prompt sets).
    pub extra_prompts: Vec<crate::prompt::Prompt>,
}

#[derive(Debug, thiserror::Error)]
pub enum EvaluationError {
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    EvalSet(#[from] EvalSetError),
    #[error(transparent)]
    Promptfoo(#[from] crate::promptfoo::OpenError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Agent(#[from] AgentRunError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: --resume needs the run store; record the run (drop --no-store)")]
    ResumeWithoutStore { path: PathBuf },
    #[error("{path}: {option} does not apply to an agent eval set (`kind: agent`)")]
    NotForAgentSets { path: PathBuf, option: &'static str },
}

/// Something the user should know before the run starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// A promptfoo setting promptfoo ignores or that changes nothing, accepted as it is.
    ImportWarning(String),
    /// A promptfoo feature promptlab lacks, left out (with `skip_unsupported`).
    Skipped(String),
    /// A prompt file of the project does not load; the run does not use it.
    BrokenPrompt(String),
    /// An agent tool is not offered, and why (a model not set up, say).
    LeftOutTool { tool: String, why: String },
    /// A model whose outputs can depend on how the cells were scheduled.
    ScheduleDependent {
        model: String,
        why: ScheduleDependence,
        parallel: u32,
    },
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Note::ImportWarning(warning) => write!(f, "warning: {warning}"),
            Note::Skipped(what) => write!(f, "skipped (promptlab lacks it): {what}"),
            Note::BrokenPrompt(error) => write!(
                f,
                "warning: a prompt file does not load (this eval set does not use it): {error}"
            ),
            Note::LeftOutTool { tool, why } => write!(f, "note: tool {tool} is left out: {why}"),
            Note::ScheduleDependent {
                model,
                why: ScheduleDependence::RemoteConcurrency,
                ..
            } => write!(
                f,
                "note: `{model}` is a remote model sent several requests at once; its server may decode them in one batch, and then its replies can depend on what else it was decoding (promptlab's own engines give the same output at any --parallel for the architectures it has verified)"
            ),
            Note::ScheduleDependent {
                model,
                why: ScheduleDependence::Architecture(architecture),
                parallel,
            } => write!(
                f,
                "note: `{model}` ({architecture}) is not batch-invariant yet: at --parallel {parallel} some outputs can differ from a --parallel 1 run; use --parallel 1 for outputs that do not depend on the schedule"
            ),
        }
    }
}

enum Kind {
    Prompts {
        project: Box<Project>,
        plan: Box<RunPlan>,
        options: Box<RunOptions>,
        store: Option<RunStore>,
        /// Set once the run is opened in the store.
        run_id: Option<i64>,
        label: Option<String>,
    },
    Agent {
        plan: Box<AgentEvalPlan>,
        recording: AgentRecording,
    },
}

/// An evaluation ready to run.
pub struct Evaluation {
    eval_set: PathBuf,
    kind: Kind,
    notes: Vec<Note>,
    use_cache: bool,
    resumed: Option<i64>,
}

/// A finished (or cancelled) evaluation.
pub struct Finished {
    /// The matrix, for every report format.
    pub result: RunResult,
    /// The run in the store, when recorded.
    pub run_id: Option<i64>,
    /// For an agent set: tool-use figures per column and each question's trace.
    pub agent: Option<AgentDetails>,
}

pub struct AgentDetails {
    pub scores: Vec<AgentScores>,
    pub questions: Vec<AnsweredQuestion>,
}

impl Evaluation {
    /// Loads the eval set and its project and validates the run, reading the options of
    /// the interrupted run `request.resume` names; nothing is written to the store until
    /// [`Evaluation::begin`].
    pub fn prepare(request: Request) -> Result<Evaluation, EvaluationError> {
        if request.resume.is_some() && request.store == StoreChoice::Off {
            return Err(EvaluationError::ResumeWithoutStore {
                path: request.eval_set.clone(),
            });
        }
        if crate::evalset::is_agent_set(&request.eval_set) {
            Self::prepare_agent(request)
        } else {
            Self::prepare_prompts(request)
        }
    }

    fn prepare_prompts(request: Request) -> Result<Evaluation, EvaluationError> {
        let mut notes = Vec::new();
        let (eval_set, mut project) = if crate::promptfoo::is_config(&request.eval_set) {
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            let (project, imported) = crate::promptfoo::open_project(
                &request.eval_set,
                request.project.as_deref(),
                &cwd,
                request.skip_unsupported,
            )?;
            notes.extend(imported.warnings.into_iter().map(Note::ImportWarning));
            notes.extend(imported.skipped.into_iter().map(Note::Skipped));
            (imported.eval_set, project)
        } else {
            let eval_set = EvalSet::load(&request.eval_set)?;
            let project = match &request.project {
                Some(dir) => Project::open(dir)?,
                None => Project::discover(&request.eval_set)?,
            };
            (eval_set, project)
        };
        for entry in project.catalog.models.values_mut() {
            if let KindSettings::Gguf(local) = &mut entry.settings {
                if let Some(choice) = request.engine {
                    local.engine = choice;
                }
                if let Some(layers) = request.gpu_layers {
                    local.gpu_layers = Some(layers);
                }
            }
        }
        let mut options = RunOptions {
            prompts: request.prompts.clone(),
            models: request.models.clone(),
            tags: request.tags.clone(),
            limit: request.limit,
            seed_offset: request.seed_offset,
            judge: request.judge.clone(),
            params: request.params.clone(),
            case_ids: request.case_ids.clone(),
            extra_prompts: request.extra_prompts.clone(),
        };
        let store = open_store(&request.store, &project.root)?;
        let resume = match (&request.resume, store.as_ref()) {
            (Some(which), Some(store)) => {
                // Resuming re-selects exactly what the interrupted run selected.
                let (id, stored) = StoredConfig::to_resume(store, &request.eval_set, *which)?;
                options = stored;
                Some(id)
            }
            _ => None,
        };
        let plan = crate::run::plan(&project, eval_set, &options)?;
        // The plan refused any broken file the set uses; the others only get a word.
        notes.extend(
            project
                .prompts
                .broken
                .iter()
                .map(|broken| Note::BrokenPrompt(broken.error.to_string())),
        );
        let parallel = request
            .parallel
            .unwrap_or(crate::engine::llama::DEFAULT_PARALLEL);
        notes.extend(
            plan.schedule_dependent_models(parallel)
                .into_iter()
                .map(|(model, why)| Note::ScheduleDependent {
                    model: model.to_string(),
                    why,
                    parallel,
                }),
        );
        Ok(Evaluation {
            eval_set: request.eval_set,
            kind: Kind::Prompts {
                project: Box::new(project),
                plan: Box::new(plan),
                options: Box::new(options),
                store,
                run_id: None,
                label: request.label,
            },
            notes,
            use_cache: request.use_cache,
            resumed: resume,
        })
    }

    fn prepare_agent(request: Request) -> Result<Evaluation, EvaluationError> {
        let refuse = |option| {
            Err(EvaluationError::NotForAgentSets {
                path: request.eval_set.clone(),
                option,
            })
        };
        if request.judge.is_some() {
            return refuse("--judge");
        }
        if request.engine.is_some() {
            return refuse("--engine");
        }
        let root = match &request.project {
            Some(dir) => dir.clone(),
            None => Project::discover(&request.eval_set)?.root,
        };
        let store_path = match &request.store {
            StoreChoice::Off => None,
            StoreChoice::Project => Some(crate::project::store_path(&root)),
            StoreChoice::At(path) => Some(path.clone()),
        };
        let mut options = AgentEvalOptions {
            models: request.models.clone(),
            prompts: request.prompts.clone(),
            tags: request.tags.clone(),
            limit: request.limit,
            seed_offset: request.seed_offset,
            parallel: request.parallel.or(request.agent.parallel),
            ..request.agent.clone()
        };
        let (recording, resumed) = match (&request.resume, &store_path) {
            (Some(which), Some(path)) => {
                let store = RunStore::open(path)?;
                let which = match which {
                    ResumeFrom::Latest => None,
                    ResumeFrom::Run(id) => Some(*id),
                };
                // A resume asks the remaining questions as the interrupted run would have.
                let (run_id, stored) = resume_options(&store, &request.eval_set, which)?;
                options = stored;
                (AgentRecording::Resume(run_id), Some(run_id))
            }
            (_, Some(_)) => (AgentRecording::New, None),
            (_, None) => (AgentRecording::Off, None),
        };
        let mut plan =
            AgentEvalPlan::new(&root, &request.eval_set, options, store_path.as_deref())?;
        if let Some(label) = request.label.clone().filter(|l| !l.trim().is_empty()) {
            plan.set_label(label);
        }
        if request.gpu_layers.is_some() {
            plan.set_gpu_layers(request.gpu_layers);
        }
        let mut notes: Vec<Note> = plan
            .left_out_tools()
            .into_iter()
            .map(|(tool, why)| Note::LeftOutTool { tool, why })
            .collect();
        let parallel = plan.options.parallel_questions(usize::MAX) as u32;
        notes.extend(
            plan.schedule_dependent_models()
                .into_iter()
                .map(|(model, architecture)| Note::ScheduleDependent {
                    model,
                    why: ScheduleDependence::Architecture(architecture),
                    parallel,
                }),
        );
        Ok(Evaluation {
            eval_set: request.eval_set,
            kind: Kind::Agent {
                plan: Box::new(plan),
                recording,
            },
            notes,
            use_cache: request.use_cache,
            resumed,
        })
    }

    /// Names the run in the store (before [`Evaluation::begin`]).
    pub fn set_label(&mut self, text: String) {
        match &mut self.kind {
            Kind::Prompts { label, .. } => *label = Some(text),
            Kind::Agent { plan, .. } => plan.set_label(text),
        }
    }

    /// What the user should know before the run starts.
    pub fn notes(&self) -> &[Note] {
        &self.notes
    }

    /// The eval set file.
    pub fn eval_set(&self) -> &Path {
        &self.eval_set
    }

    /// Opens the run in the store (a new run, or the one being resumed), once; `execute`
    /// does it when this was not called. Returns its id: known here for prompt sets and
    /// resumed runs, while a new agent run gets its id as it starts (see [`Finished`]).
    pub fn begin(&mut self) -> Result<Option<i64>, EvaluationError> {
        let resumed = self.resumed;
        let use_cache = self.use_cache;
        match &mut self.kind {
            Kind::Prompts {
                plan,
                options,
                store: Some(store),
                run_id: run_id @ None,
                label,
                ..
            } => {
                let recording =
                    Recording::begin(store, plan, &self.eval_set, options, resumed, use_cache)?;
                let id = recording.run_id;
                if let Some(label) = label.as_deref().filter(|l| !l.trim().is_empty()) {
                    store.set_label(id, Some(label))?;
                }
                *run_id = Some(id);
                Ok(Some(id))
            }
            Kind::Prompts { run_id, .. } => Ok(*run_id),
            Kind::Agent { .. } => Ok(resumed),
        }
    }

    /// The interrupted run this evaluation continues.
    pub fn resumed(&self) -> Option<i64> {
        self.resumed
    }

    pub fn is_agent(&self) -> bool {
        matches!(self.kind, Kind::Agent { .. })
    }

    /// `(column id, case id)` of every cell, in the order observers number them.
    pub fn cell_labels(&self) -> Vec<(String, String)> {
        match &self.kind {
            Kind::Prompts { plan, .. } => plan
                .cells
                .iter()
                .map(|c| {
                    (
                        plan.columns[c.column].id.clone(),
                        plan.cases[c.case].id.clone(),
                    )
                })
                .collect(),
            Kind::Agent { plan, .. } => plan.cell_labels(),
        }
    }

    pub fn cell_count(&self) -> usize {
        match &self.kind {
            Kind::Prompts { plan, .. } => plan.cells.len(),
            Kind::Agent { plan, .. } => plan.cell_count(),
        }
    }

    /// Every cell decodes greedily, so repeats give the same outputs.
    pub fn samples_greedily(&self) -> bool {
        match &self.kind {
            Kind::Prompts { plan, .. } => plan
                .cells
                .iter()
                .all(|c| c.request.params.temperature <= 0.0),
            Kind::Agent { plan, .. } => plan.samples_greedily(),
        }
    }

    /// The plan of a prompt set (None for an agent set).
    pub fn prompt_plan(&self) -> Option<&RunPlan> {
        match &self.kind {
            Kind::Prompts { plan, .. } => Some(plan),
            Kind::Agent { .. } => None,
        }
    }

    /// The project of a prompt set (None for an agent set).
    pub fn project(&self) -> Option<&Project> {
        match &self.kind {
            Kind::Prompts { project, .. } => Some(project),
            Kind::Agent { .. } => None,
        }
    }

    /// The recording of a prompt set's run, to add to it after it ran (a pairwise
    /// comparison).
    pub fn recording(&mut self) -> Option<Recording<'_>> {
        match &mut self.kind {
            Kind::Prompts {
                store: Some(store),
                run_id: Some(run_id),
                ..
            } => Some(Recording {
                store,
                run_id: *run_id,
                use_cache: self.use_cache,
            }),
            _ => None,
        }
    }

    /// Runs every cell not already finished in the run being resumed, until done or
    /// `cancel` is set; each finished cell is in the run store before the observer hears
    /// of it.
    pub fn execute(
        &mut self,
        options: &ExecuteOptions,
        observer: &mut dyn RunObserver,
        cancel: &CancelToken,
    ) -> Result<Finished, EvaluationError> {
        self.begin()?;
        let use_cache = self.use_cache;
        match &mut self.kind {
            Kind::Prompts {
                plan,
                store,
                run_id,
                ..
            } => {
                let recording = match (store.as_mut(), *run_id) {
                    (Some(store), Some(run_id)) => Some(Recording {
                        store,
                        run_id,
                        use_cache,
                    }),
                    _ => None,
                };
                let result = crate::run::execute(plan, options, observer, cancel, recording)?;
                Ok(Finished {
                    result,
                    run_id: *run_id,
                    agent: None,
                })
            }
            Kind::Agent { plan, recording } => {
                let outcome = plan.run(*recording, cancel, observer)?;
                Ok(Finished {
                    result: outcome.result,
                    run_id: outcome.run_id,
                    agent: Some(AgentDetails {
                        scores: outcome.scores,
                        questions: outcome.questions,
                    }),
                })
            }
        }
    }
}

fn open_store(choice: &StoreChoice, root: &Path) -> Result<Option<RunStore>, StoreError> {
    match choice {
        StoreChoice::Off => Ok(None),
        StoreChoice::Project => RunStore::open(&crate::project::store_path(root)).map(Some),
        StoreChoice::At(path) => RunStore::open(path).map(Some),
    }
}

#[cfg(test)]
mod tests;
