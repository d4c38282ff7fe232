//! What the questions of one agent run share (the project, the tools, the folders they may
//! read, the run store) and how one question is asked and recorded: used by `promptlab
//! agent` and by agent evaluations.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::tools::{ToolContext, ToolSet};
use super::{
    Agent, AgentError, AgentEvent, AgentLimits, AgentStep, AgentStop, AgentTrace, Convention,
    ToolModels, default_roots, load_engine, opening_messages, project_tools,
};
use crate::catalog::CatalogError;
use crate::engine::{EngineError, EngineWorker, Flow, Generator};
use crate::params::GenerationParams;
use crate::project::Project;
use crate::prompt::Prompt;
use crate::store::{RunStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Tools(#[from] super::ToolSetupError),
    #[error("no tools to offer the model{0}")]
    NoTools(String),
    #[error("none of the allowed folders exist")]
    NoRoots,
    #[error("`{0}` is the built-in echo engine, which cannot call tools")]
    Echo(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Agent(#[from] AgentError),
}

/// How a session is set up.
pub struct SessionOptions<'a> {
    /// Offer only these tools (empty: every tool whose model is set up).
    pub wanted_tools: &'a [String],
    pub models: &'a ToolModels,
    pub tool_timeout: Duration,
    /// Folders the tools may read (empty: the project).
    pub allowed: &'a [PathBuf],
    /// Record every question's trace in this run store (None: not at all).
    pub record: Option<&'a Path>,
}

pub struct Session {
    pub project: Project,
    /// The tools offered, and the ones left out with the reason.
    pub tools: ToolSet,
    pub context: ToolContext,
    store: Option<RunStore>,
    /// `--gpu-layers`, over the catalog's `gpu_layers` for the models this session loads.
    pub gpu_layers: Option<crate::catalog::GpuLayers>,
}

/// A language model loaded for the agent.
pub struct LoadedModel {
    pub name: String,
    pub engine: EngineWorker,
    pub params: GenerationParams,
}

/// One question and how to ask it.
pub struct Question<'a> {
    pub text: &'a str,
    /// The system prompt, when no agent prompt opens the conversation.
    pub system: String,
    pub prompt: Option<&'a Prompt>,
    pub limits: AgentLimits,
    /// Overrides of the model's and prompt's sampling.
    pub temperature: Option<f32>,
    pub seed: Option<u32>,
    /// Added to the sampling seed: repeat r of an evaluation samples with seed + r.
    pub seed_offset: u32,
    pub ground_numbers: bool,
}

impl Session {
    pub fn open(project: Project, options: &SessionOptions) -> Result<Session, SessionError> {
        let wanted = (!options.wanted_tools.is_empty()).then_some(options.wanted_tools);
        let tools = project_tools(
            &project.catalog,
            options.models,
            wanted,
            options.tool_timeout,
        )?;
        if tools.is_empty() {
            let reasons: Vec<String> = tools
                .unavailable
                .iter()
                .map(|(name, why)| format!("{name}: {why}"))
                .collect();
            return Err(SessionError::NoTools(if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", reasons.join("; "))
            }));
        }
        let roots = if options.allowed.is_empty() {
            default_roots(&project.root)
        } else {
            options.allowed.to_vec()
        };
        let context = ToolContext::new(roots, project.root.clone());
        if context.roots().is_empty() {
            return Err(SessionError::NoRoots);
        }
        let store = match options.record {
            Some(path) => Some(RunStore::open(path)?),
            None => None,
        };
        Ok(Session {
            project,
            tools,
            context,
            store,
            gpu_layers: None,
        })
    }

    pub fn load_model(&self, name: &str) -> Result<LoadedModel, SessionError> {
        let model = self.project.catalog.resolve(name)?;
        let Some(entry) = model.entry.as_ref() else {
            return Err(SessionError::Echo(name.to_string()));
        };
        Ok(LoadedModel {
            name: name.to_string(),
            params: entry.params().clone(),
            engine: load_engine(&model, self.gpu_layers)?,
        })
    }

    /// Starts the run-store record of a question, before it is asked (None when this
    /// session does not record).
    pub fn record_question(
        &self,
        model: &str,
        question: &str,
    ) -> Result<Option<i64>, SessionError> {
        let Some(store) = &self.store else {
            return Ok(None);
        };
        let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let tool_names: Vec<String> = self.tools.names().iter().map(|s| s.to_string()).collect();
        Ok(Some(store.create_agent_run(
            &started_at,
            model,
            question,
            &tool_names,
        )?))
    }

    /// Answers one question, reporting each event to `on_event`. With `record` (from
    /// [`Session::record_question`]) every step is written as it happens, so a trace
    /// survives a kill mid-question, and the finished trace at the end.
    pub fn ask(
        &self,
        model: &mut LoadedModel,
        question: &Question,
        record: Option<i64>,
        on_event: &mut dyn FnMut(AgentEvent) -> Flow,
    ) -> Result<AgentTrace, SessionError> {
        let mut recorder = self.recorder(record, question.text);
        let trace = ask_with(
            &mut model.engine,
            &model.params,
            &self.tools,
            &self.context,
            question,
            &mut |event| {
                if let AgentEvent::Step(step) = &event {
                    recorder.step(step);
                }
                on_event(event)
            },
        )?;
        recorder.finish(&trace)?;
        Ok(trace)
    }

    /// Writes a question's trace to the run store step by step (nothing when `record` is
    /// `None` or this session does not record).
    pub fn recorder(&self, record: Option<i64>, question: &str) -> TraceRecorder<'_> {
        TraceRecorder {
            target: self.store.as_ref().zip(record),
            partial: AgentTrace {
                question: question.to_string(),
                convention: Convention::Hermes,
                tools: self.tools.names().iter().map(|s| s.to_string()).collect(),
                steps: Vec::new(),
                answer: None,
                stop: AgentStop::Cancelled,
                error: None,
                total_ms: 0.0,
            },
            started: Instant::now(),
        }
    }
}

/// Answers one question with `model` (whose catalog parameters are `params`), the tools
/// and the folders they may read. Shared by a session's own questions and by questions
/// asked together on threads, which each hold their share of one batched engine.
pub fn ask_with(
    model: &mut dyn Generator,
    params: &GenerationParams,
    tools: &ToolSet,
    context: &ToolContext,
    question: &Question,
    on_event: &mut dyn FnMut(AgentEvent) -> Flow,
) -> Result<AgentTrace, SessionError> {
    let mut sampling = match question.prompt {
        Some(prompt) => params.overlay(&prompt.params).resolve(),
        None => params.resolve(),
    };
    if let Some(t) = question.temperature {
        sampling.temperature = t;
    }
    if let Some(seed) = question.seed {
        sampling.seed = seed;
    }
    sampling.seed = sampling.seed.wrapping_add(question.seed_offset);
    let opening = opening_messages(question.prompt, question.text)?;
    let mut agent = Agent {
        opening,
        engine: model,
        tools,
        context,
        system: question.system.clone(),
        limits: question.limits.clone(),
        sampling,
        ground_numbers: question.ground_numbers,
    };
    Ok(agent.run(question.text, on_event)?)
}

/// A question's trace on its way into the run store.
pub struct TraceRecorder<'s> {
    target: Option<(&'s RunStore, i64)>,
    partial: AgentTrace,
    started: Instant,
}

impl TraceRecorder<'_> {
    /// Writes the trace so far with its new step.
    pub fn step(&mut self, step: &AgentStep) {
        let Some((store, id)) = self.target else {
            return;
        };
        self.partial.steps.push(step.clone());
        self.partial.total_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        // A failed write of a partial trace only costs that record; the final write
        // reports its error.
        let _ = store.update_agent_run(id, &self.partial, false);
    }

    /// Writes the finished trace.
    pub fn finish(self, trace: &AgentTrace) -> Result<(), SessionError> {
        if let Some((store, id)) = self.target {
            store.update_agent_run(id, trace, true)?;
        }
        Ok(())
    }
}
