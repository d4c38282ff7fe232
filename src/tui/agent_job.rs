//! The agent screen's worker thread: keeps the last language model loaded between
//! questions, offers the project's tools, runs the agent loop and records every step in
//! the run store as it happens, so a trace survives the app closing mid-question.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use promptlab::agent::tools::{ToolContext, ToolSet};
use promptlab::agent::{
    Agent, AgentEvent, AgentLimits, AgentStop, AgentTrace, Convention, DEFAULT_SYSTEM, ToolModels,
    default_roots, load_engine, project_tools,
};
use promptlab::catalog::ModelCatalog;
use promptlab::engine::CancelToken;
use promptlab::engine::Engine;
use promptlab::engine::Flow;
use promptlab::prompt::Prompt;
use promptlab::store::RunStore;
use tokio::sync::mpsc::UnboundedSender;

use super::agent::AgentUiEvent;
use super::app::Event;

pub struct AgentJob {
    pub model_name: String,
    pub question: String,
    /// An agent prompt: its messages open the conversation, its parameters overlay the
    /// model's and its `tools:` list chooses the tools.
    pub prompt: Option<Prompt>,
    pub cancel: CancelToken,
}

pub fn spawn(tx: UnboundedSender<Event>, root: PathBuf) -> std::sync::mpsc::Sender<AgentJob> {
    let (jobs, incoming) = std::sync::mpsc::channel::<AgentJob>();
    std::thread::spawn(move || {
        let send = |event: AgentUiEvent| tx.send(Event::Agent(event)).is_ok();
        let mut loaded: Option<(String, Box<dyn Engine>)> = None;
        while let Ok(job) = incoming.recv() {
            // A panic in a tool or the engine ends this question, not the app.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                answer(&root, &job, &mut loaded, &send)
            }));
            let result = match outcome {
                Ok(result) => result,
                Err(_) => {
                    loaded = None;
                    Err("the agent stopped on an internal error (a panic); see the log".into())
                }
            };
            if !send(AgentUiEvent::Done(result)) {
                break;
            }
        }
    });
    jobs
}

fn answer(
    root: &Path,
    job: &AgentJob,
    loaded: &mut Option<(String, Box<dyn Engine>)>,
    send: &dyn Fn(AgentUiEvent) -> bool,
) -> Result<AgentTrace, String> {
    let catalog_path = root.join("models").join("models.yaml");
    let catalog = ModelCatalog::load(&catalog_path).map_err(|e| e.to_string())?;
    let wanted = job
        .prompt
        .as_ref()
        .map(|p| p.tools.clone())
        .filter(|tools| !tools.is_empty());
    let tools = project_tools(
        &catalog,
        &ToolModels::default(),
        wanted.as_deref(),
        Duration::from_secs(60),
    )?;
    if tools.is_empty() {
        return Err("no tools to offer the model".into());
    }
    let entry = catalog
        .models
        .get(&job.model_name)
        .filter(|e| e.kind.is_gguf() || e.openai.is_some())
        .ok_or_else(|| {
            format!(
                "`{}` is not a language model of the catalog",
                job.model_name
            )
        })?
        .clone();
    if loaded
        .as_ref()
        .is_none_or(|(name, _)| *name != job.model_name)
    {
        *loaded = None;
        send(AgentUiEvent::Loading(job.model_name.clone()));
        let started = Instant::now();
        let engine = load_engine(&job.model_name, &entry)
            .map_err(|e| format!("cannot load {}: {e}", job.model_name))?;
        send(AgentUiEvent::Loaded {
            model: job.model_name.clone(),
            load_ms: started.elapsed().as_secs_f64() * 1000.0,
        });
        *loaded = Some((job.model_name.clone(), engine));
    }
    let Some((_, engine)) = loaded.as_mut() else {
        return Err("the model did not load".into());
    };
    let store = RunStore::open(&root.join(".promptlab").join("runs.db")).ok();
    let tool_names: Vec<String> = tools.names().iter().map(|s| s.to_string()).collect();
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let run_id = store.as_ref().and_then(|s| {
        s.create_agent_run(&started_at, &job.model_name, &job.question, &tool_names)
            .ok()
    });
    send(AgentUiEvent::Started {
        run_id,
        tools: tool_names.clone(),
        left_out: tools.unavailable.clone(),
    });
    let context = ToolContext::new(default_roots(root), root.to_path_buf());
    let record = |partial: &AgentTrace| {
        // Each step is written as it happens; a failed write only costs the record.
        if let (Some(store), Some(id)) = (&store, run_id) {
            let _ = store.update_agent_run(id, partial, false);
        }
    };
    let trace = run_agent(
        engine.as_mut(),
        &tools,
        &context,
        &entry.params,
        job,
        send,
        record,
    )?;
    if let (Some(store), Some(id)) = (&store, run_id) {
        store
            .update_agent_run(id, &trace, true)
            .map_err(|e| e.to_string())?;
    }
    Ok(trace)
}

fn run_agent(
    engine: &mut dyn Engine,
    tools: &ToolSet,
    context: &ToolContext,
    params: &promptlab::params::GenerationParams,
    job: &AgentJob,
    send: &dyn Fn(AgentUiEvent) -> bool,
    record: impl Fn(&AgentTrace),
) -> Result<AgentTrace, String> {
    let opening = promptlab::agent::opening_messages(job.prompt.as_ref(), &job.question)
        .map_err(|e| e.to_string())?;
    let sampling = match &job.prompt {
        Some(prompt) => params.overlay(&prompt.params).resolve(),
        None => params.resolve(),
    };
    let mut agent = Agent {
        opening,
        engine,
        tools,
        context,
        system: DEFAULT_SYSTEM.into(),
        limits: AgentLimits::default(),
        sampling,
        ground_numbers: true,
    };
    let mut partial = AgentTrace {
        question: job.question.clone(),
        convention: Convention::Hermes,
        tools: Vec::new(),
        steps: Vec::new(),
        answer: None,
        stop: AgentStop::MaxSteps,
        error: None,
        total_ms: 0.0,
    };
    let started = Instant::now();
    let cancel = job.cancel.clone();
    let mut on_event = |event: AgentEvent| {
        let open = match event {
            AgentEvent::Token(piece) => send(AgentUiEvent::Token(piece.to_string())),
            AgentEvent::Step(step) => {
                partial.steps.push(step.clone());
                partial.total_ms = started.elapsed().as_secs_f64() * 1000.0;
                record(&partial);
                send(AgentUiEvent::Step(step.clone()))
            }
        };
        // A closed channel means the app has quit: stop too.
        if cancel.is_cancelled() || !open {
            Flow::Stop
        } else {
            Flow::Continue
        }
    };
    agent
        .run(&job.question, &mut on_event)
        .map_err(|e| e.to_string())
}
