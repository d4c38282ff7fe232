//! The agent screen's worker thread: keeps the last language model loaded between
//! questions, offers the project's tools, runs the agent loop and records every step in
//! the run store as it happens, so a trace survives the app closing mid-question.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use promptlab::agent::session::{LoadedModel, Question, Session, SessionOptions};
use promptlab::agent::{AgentEvent, AgentLimits, DEFAULT_SYSTEM, ToolModels};
use promptlab::engine::{CancelToken, Flow};
use promptlab::project::Project;
use promptlab::prompt::Prompt;
use promptlab::trace::AgentTrace;
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

/// The worker thread; a model left idle for `idle` is unloaded.
pub fn spawn(
    tx: UnboundedSender<Event>,
    root: PathBuf,
    idle: Duration,
) -> std::sync::mpsc::Sender<AgentJob> {
    let (jobs, incoming) = std::sync::mpsc::channel::<AgentJob>();
    std::thread::spawn(move || {
        let send = |event: AgentUiEvent| tx.send(Event::Agent(event)).is_ok();
        let mut loaded: Option<LoadedModel> = None;
        loop {
            let job = match incoming.recv_timeout(idle) {
                Ok(job) => job,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(model) = loaded.take()
                        && !send(AgentUiEvent::Unloaded {
                            model: model.name.clone(),
                            idle,
                        })
                    {
                        break;
                    }
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            };
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
    loaded: &mut Option<LoadedModel>,
    send: &dyn Fn(AgentUiEvent) -> bool,
) -> Result<AgentTrace, String> {
    let project = Project::open(root).map_err(|e| e.to_string())?;
    let store_path = project.store_path();
    let wanted = job
        .prompt
        .as_ref()
        .map(|p| p.tools.clone())
        .unwrap_or_default();
    let session = Session::open(
        project,
        &SessionOptions {
            wanted_tools: &wanted,
            models: &ToolModels::default(),
            tool_timeout: Duration::from_secs(60),
            allowed: &[],
            record: Some(&store_path),
        },
    )
    .map_err(|e| e.to_string())?;
    if loaded
        .as_ref()
        .is_none_or(|model| model.name != job.model_name)
    {
        *loaded = None;
        send(AgentUiEvent::Loading(job.model_name.clone()));
        let started = Instant::now();
        let model = session
            .load_model(&job.model_name)
            .map_err(|e| format!("cannot load {}: {e}", job.model_name))?;
        send(AgentUiEvent::Loaded {
            model: job.model_name.clone(),
            load_ms: started.elapsed().as_secs_f64() * 1000.0,
        });
        *loaded = Some(model);
    }
    let Some(model) = loaded.as_mut() else {
        return Err("the model did not load".into());
    };
    // A store that cannot be written only costs the record, not the answer.
    let run_id = session
        .record_question(&model.name, &job.question)
        .ok()
        .flatten();
    send(AgentUiEvent::Started {
        run_id,
        tools: session
            .tools
            .names()
            .iter()
            .map(|s| s.to_string())
            .collect(),
        left_out: session.tools.unavailable.clone(),
    });
    let question = Question {
        text: &job.question,
        system: DEFAULT_SYSTEM.into(),
        prompt: job.prompt.as_ref(),
        limits: AgentLimits::default(),
        temperature: None,
        seed: None,
        seed_offset: 0,
        ground_numbers: true,
    };
    let cancel = job.cancel.clone();
    session
        .ask(model, &question, run_id, &mut |event| {
            let open = match event {
                AgentEvent::Token(piece) => send(AgentUiEvent::Token(piece.to_string())),
                AgentEvent::Step(step) => send(AgentUiEvent::Step(step.clone())),
            };
            // A closed channel means the app has quit: stop too.
            if cancel.is_cancelled() || !open {
                Flow::Stop
            } else {
                Flow::Continue
            }
        })
        .map_err(|e| e.to_string())
}
