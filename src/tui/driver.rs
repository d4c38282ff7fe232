//! The TUI's driver: owns the terminal, waits on keys, mouse, background jobs and a
//! tick with `tokio::select!`, feeds them to [`App::update`], carries out the effects
//! (runs on their own threads, store reads, saves, `$EDITOR`) and draws once per pass.

use std::collections::HashMap;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossterm::event::{
    DisableMouseCapture, EnableMouseCapture, Event as TermEvent, EventStream, KeyEventKind,
};
use futures_util::StreamExt;
use promptlab::compare;
use promptlab::engine::CancelToken;
use promptlab::engine::llama::Tokenizer;
use promptlab::engine::{EngineWorker, GenerationEvent, GenerationRequest, WorkerEvent};
use promptlab::project;
use promptlab::prompt::RenderedPrompt;
use promptlab::results::RunMatrix;
use promptlab::run;
use promptlab::store::RunStore;
use ratatui::DefaultTerminal;
use tokio::sync::mpsc::UnboundedSender;

use super::agent::AgentUiEvent;
use super::app::{App, Effect, Event, RunEvent};
use super::playground::{ChatEvent, ChatReply};
use super::view;

pub fn run(root: &Path) -> Result<()> {
    let scan = project::scan(root);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut terminal = ratatui::init();
    // ratatui's panic hook restores the screen; mouse capture must be released too.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = crossterm::execute!(std::io::stdout(), DisableMouseCapture);
        hook(info);
    }));
    let _ = crossterm::execute!(std::io::stdout(), EnableMouseCapture);
    let size = terminal
        .size()
        .map(|s| (s.width, s.height))
        .unwrap_or((80, 24));
    let mut app = App::new(scan, size, Instant::now());
    // Asked once, before the event stream reads stdin. The query leaves raw mode off, so
    // it is turned on again.
    app.pictures = super::picture::Pictures::detect();
    let _ = crossterm::terminal::enable_raw_mode();
    let result = runtime.block_on(event_loop(&mut terminal, app, root.to_path_buf()));
    let _ = crossterm::execute!(std::io::stdout(), DisableMouseCapture);
    ratatui::restore();
    result
}

struct Jobs {
    root: PathBuf,
    tx: UnboundedSender<Event>,
    cancel: Option<CancelToken>,
    tokenizer: std::sync::mpsc::Sender<(PathBuf, String)>,
    chat: std::sync::mpsc::Sender<ChatJob>,
    chat_cancel: Option<CancelToken>,
    agent: std::sync::mpsc::Sender<super::agent_job::AgentJob>,
    agent_cancel: Option<CancelToken>,
}

struct ChatJob {
    model_name: String,
    model: promptlab::catalog::ModelEntry,
    request: GenerationRequest,
    cancel: CancelToken,
}

/// How long the playground and the agent keep a model loaded with nothing to do: a
/// model holds hundreds of MiB that the rest of the machine may want back.
fn model_idle_limit() -> Duration {
    std::env::var("PROMPTLAB_TUI_UNLOAD_IDLE_S")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(Duration::from_secs(300), Duration::from_secs_f64)
}

/// The playground's engine thread: keeps the last model loaded between messages (until
/// it has been idle for `idle`) and streams each reply's tokens.
fn spawn_chat(tx: UnboundedSender<Event>, idle: Duration) -> std::sync::mpsc::Sender<ChatJob> {
    let (jobs, incoming) = std::sync::mpsc::channel::<ChatJob>();
    std::thread::spawn(move || {
        let send = |event: ChatEvent| tx.send(Event::Chat(event)).is_ok();
        let mut loaded: Option<(String, promptlab::catalog::ModelEntry, EngineWorker)> = None;
        loop {
            let job = match incoming.recv_timeout(idle) {
                Ok(job) => job,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if let Some((model, _, _)) = loaded.take()
                        && !send(ChatEvent::Unloaded { model, idle })
                    {
                        break;
                    }
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            };
            if loaded
                .as_ref()
                .is_none_or(|(_, entry, _)| *entry != job.model)
            {
                loaded = None;
                send(ChatEvent::Loading(job.model_name.clone()));
                let started = Instant::now();
                let model = promptlab::catalog::ModelRef {
                    name: job.model_name.clone(),
                    entry: Some(job.model.clone()),
                };
                match run::chat_worker(&model) {
                    Ok(worker) => {
                        send(ChatEvent::Loaded {
                            model: job.model_name.clone(),
                            load_ms: started.elapsed().as_secs_f64() * 1000.0,
                            runs_on: worker.capabilities().runs_on.clone(),
                            note: worker.capabilities().offload_note.clone(),
                        });
                        loaded = Some((job.model_name.clone(), job.model.clone(), worker));
                    }
                    Err(err) => {
                        send(ChatEvent::Done(Err(format!(
                            "cannot load {}: {err}",
                            job.model_name
                        ))));
                        continue;
                    }
                }
            }
            let Some((_, _, worker)) = &loaded else {
                continue;
            };
            let events = worker.generate(vec![job.request], job.cancel);
            let mut done = false;
            for event in events {
                match event {
                    WorkerEvent::Generation(GenerationEvent::Token(_, text)) => {
                        send(ChatEvent::Token(text));
                    }
                    WorkerEvent::Generation(GenerationEvent::Finished(_, result)) => {
                        done = true;
                        send(ChatEvent::Done(
                            result
                                .map(|g| ChatReply {
                                    text: g.text,
                                    completion_tokens: g.completion_tokens,
                                    tokens_per_s: g.tokens_per_s,
                                })
                                .map_err(|e| e.to_string()),
                        ));
                    }
                    WorkerEvent::Generation(GenerationEvent::Started(_)) => {}
                    WorkerEvent::BatchDone => break,
                }
            }
            if !done {
                send(ChatEvent::Done(Err(
                    "the engine stopped without a reply".into()
                )));
            }
        }
    });
    jobs
}

/// A thread that keeps each model's vocabulary loaded and counts preview tokens. While
/// the user types, only the newest text of a burst is counted.
fn spawn_tokenizer(tx: UnboundedSender<Event>) -> std::sync::mpsc::Sender<(PathBuf, String)> {
    let (requests, incoming) = std::sync::mpsc::channel::<(PathBuf, String)>();
    std::thread::spawn(move || {
        let mut loaded: HashMap<PathBuf, Result<Tokenizer, String>> = HashMap::new();
        while let Ok(mut request) = incoming.recv() {
            while let Ok(newer) = incoming.try_recv() {
                request = newer;
            }
            let (model, text) = request;
            let tokenizer = loaded
                .entry(model.clone())
                .or_insert_with(|| Tokenizer::load(&model).map_err(|e| e.to_string()));
            let count = match tokenizer {
                Ok(tokenizer) => Ok(tokenizer.count(&text)),
                Err(error) => Err(error.clone()),
            };
            if tx.send(Event::TokenCount { text, count }).is_err() {
                break;
            }
        }
    });
    requests
}

async fn event_loop(terminal: &mut DefaultTerminal, mut app: App, root: PathBuf) -> Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let mut jobs = Jobs {
        root: root.clone(),
        tokenizer: spawn_tokenizer(tx.clone()),
        chat: spawn_chat(tx.clone(), model_idle_limit()),
        chat_cancel: None,
        agent: super::agent_job::spawn(tx.clone(), root.clone(), model_idle_limit()),
        agent_cancel: None,
        tx,
        cancel: None,
    };
    let mut input = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        terminal.draw(|frame| view::draw(&app, frame))?;
        let mut events: Vec<Event> = Vec::new();
        tokio::select! {
            next = input.next() => match next {
                Some(Ok(event)) => events.extend(convert(event)),
                Some(Err(err)) => return Err(err).context("cannot read the terminal"),
                None => return Ok(()),
            },
            Some(event) = rx.recv() => events.push(event),
            _ = tick.tick() => events.push(Event::Tick { now: Instant::now(), rss_bytes: resident_bytes() }),
        }
        // Drain whatever else is waiting (streamed tokens arrive in bursts), then draw once.
        while let Ok(event) = rx.try_recv() {
            events.push(event);
        }
        for event in events {
            for effect in app.update(event) {
                if effect == Effect::Quit {
                    for cancel in [&jobs.cancel, &jobs.chat_cancel].into_iter().flatten() {
                        cancel.cancel();
                    }
                    return Ok(());
                }
                if let Effect::EditExternally { path, text } = &effect {
                    let edited = edit_externally(terminal, path, text);
                    // The old stream may have swallowed keys meant for the editor.
                    input = EventStream::new();
                    app.update(Event::EditedExternally(edited));
                    continue;
                }
                jobs.execute(effect);
            }
        }
    }
}

fn convert(event: TermEvent) -> Option<Event> {
    match event {
        TermEvent::Key(key) if key.kind != KeyEventKind::Release => Some(Event::Key(key)),
        TermEvent::Mouse(mouse) => Some(Event::Mouse(mouse)),
        TermEvent::Resize(width, height) => Some(Event::Resize(width, height)),
        _ => None,
    }
}

impl Jobs {
    fn store_path(&self) -> PathBuf {
        promptlab::project::store_path(&self.root)
    }

    /// Runs `job` on its own thread and sends what it returns; a panic becomes an error.
    fn spawn(&self, job: impl FnOnce() -> Event + Send + 'static) {
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            let event = std::panic::catch_unwind(AssertUnwindSafe(job)).unwrap_or_else(|_| {
                Event::Run(RunEvent::Failed(
                    "internal error in a background job (see the log)".into(),
                ))
            });
            let _ = tx.send(event);
        });
    }

    fn execute(&mut self, effect: Effect) {
        let store_path = self.store_path();
        match effect {
            Effect::Quit | Effect::EditExternally { .. } => {}
            Effect::StartRun(request) => {
                let cancel = CancelToken::new();
                self.cancel = Some(cancel.clone());
                let tx = self.tx.clone();
                let root = self.root.clone();
                self.spawn(move || {
                    match super::run_job::run_job(&root, &store_path, request, tx.clone(), &cancel)
                    {
                        Ok(finished) => Event::Run(finished),
                        // Each cause once, as the command line prints it.
                        Err(err) => Event::Run(RunEvent::Failed(crate::cli::error_text(&err))),
                    }
                });
            }
            Effect::CancelRun => {
                if let Some(cancel) = &self.cancel {
                    cancel.cancel();
                }
            }
            Effect::LoadRun(id) => self.spawn(move || {
                let loaded = RunStore::open(&store_path)
                    .and_then(|store| RunMatrix::load(&store, id))
                    .map_err(|e| e.to_string())
                    .and_then(|m| m.ok_or_else(|| format!("no run {id} in the store")));
                Event::RunLoaded(loaded)
            }),
            Effect::ListRuns => self.spawn(move || {
                Event::RunsListed(
                    RunStore::open(&store_path)
                        .and_then(|store| store.runs())
                        .map(|mut runs| {
                            runs.sort_by_key(|run| std::cmp::Reverse(run.id));
                            runs
                        })
                        .map_err(|e| e.to_string()),
                )
            }),
            Effect::SetLabel { run, label } => self.spawn(move || {
                Event::RunsListed(
                    RunStore::open(&store_path)
                        .and_then(|store| {
                            store.set_label(run, label.as_deref())?;
                            store.runs()
                        })
                        .map(|mut runs| {
                            runs.sort_by_key(|run| std::cmp::Reverse(run.id));
                            runs
                        })
                        .map_err(|e| e.to_string()),
                )
            }),
            Effect::Compare(a, b) => self.spawn(move || {
                let compared = RunStore::open(&store_path)
                    .and_then(|store| Ok((a, b, compare::compare_runs(&store, a, b)?)));
                Event::Compared(compared.map_err(|e| e.to_string()))
            }),
            Effect::Save { path, text } => {
                self.spawn(move || Event::Saved(save_atomically(&path, &text).map(|()| path)))
            }
            Effect::Chat {
                model,
                model_name,
                messages,
                params,
                schema,
            } => {
                let cancel = CancelToken::new();
                self.chat_cancel = Some(cancel.clone());
                let job = ChatJob {
                    model: *model,
                    model_name,
                    request: GenerationRequest {
                        prompt: RenderedPrompt::Chat(messages),
                        params,
                        schema,
                        grammar: None,
                        tools: None,
                    },
                    cancel,
                };
                if self.chat.send(job).is_err() {
                    let _ = self.tx.send(Event::Chat(ChatEvent::Done(Err(
                        "the playground's engine thread has stopped".into(),
                    ))));
                }
            }
            Effect::ListTrainingRuns => self.spawn(move || {
                // No store yet means no runs, not an error.
                if !store_path.is_file() {
                    return Event::TrainingRunsListed(Ok(Vec::new()));
                }
                Event::TrainingRunsListed(
                    RunStore::open(&store_path)
                        .and_then(|store| store.training_runs())
                        .map_err(|e| e.to_string()),
                )
            }),
            Effect::AskAgent {
                model_name,
                question,
                prompt,
            } => {
                let cancel = CancelToken::new();
                self.agent_cancel = Some(cancel.clone());
                let job = super::agent_job::AgentJob {
                    model_name,
                    question,
                    prompt,
                    cancel,
                };
                if self.agent.send(job).is_err() {
                    let _ = self.tx.send(Event::Agent(AgentUiEvent::Done(Err(
                        "the agent's thread has stopped".into(),
                    ))));
                }
            }
            Effect::CancelAgent => {
                if let Some(cancel) = &self.agent_cancel {
                    cancel.cancel();
                }
            }
            Effect::ListOptimizations => {
                let store_path = store_path.clone();
                self.spawn(move || {
                    if !store_path.is_file() {
                        return Event::OptimizationsListed(Ok(Vec::new()));
                    }
                    Event::OptimizationsListed(
                        RunStore::open(&store_path)
                            .map_err(|e| e.to_string())
                            .and_then(|store| {
                                promptlab::optimize::Snapshot::load_all(&store)
                                    .map_err(|e| e.to_string())
                            }),
                    )
                })
            }
            Effect::AcceptCandidate {
                optimization,
                number,
            } => {
                let store_path = store_path.clone();
                self.spawn(move || {
                    Event::CandidateAccepted(
                        RunStore::open(&store_path)
                            .map_err(|e| e.to_string())
                            .and_then(|store| {
                                promptlab::optimize::accept(&store, optimization, number)
                                    .map_err(|e| e.to_string())
                            })
                            .map(|written| (written.prompt_id, written.path)),
                    )
                })
            }
            Effect::ListAgentRuns => {
                let store_path = store_path.clone();
                self.spawn(move || {
                    if !store_path.is_file() {
                        return Event::AgentRunsListed(Ok(Vec::new()));
                    }
                    Event::AgentRunsListed(
                        RunStore::open(&store_path)
                            .and_then(|store| store.agent_runs())
                            .map_err(|e| e.to_string()),
                    )
                })
            }
            Effect::CancelChat => {
                if let Some(cancel) = &self.chat_cancel {
                    cancel.cancel();
                }
            }
            Effect::SaveCase { eval_set, case } => self.spawn(move || {
                let id = case["id"].as_str().unwrap_or_default().to_string();
                Event::CaseSaved(
                    promptlab::evalset::append_case(&eval_set, &case)
                        .map(|_| (eval_set, id))
                        .map_err(|e| e.to_string()),
                )
            }),
            Effect::CountTokens { model, text } => {
                let _ = self.tokenizer.send((model, text));
            }
            Effect::Rescan => {
                let root = self.root.clone();
                self.spawn(move || Event::Rescanned(project::scan(&root)));
            }
        }
    }
}

/// Writes beside the file and renames over it, so a crash never leaves half a prompt.
fn save_atomically(path: &Path, text: &str) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| format!("{}: cannot save: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .map_err(|e| format!("{}: cannot save: {e}", path.display()))?;
    file.persist(path)
        .map_err(|e| format!("{}: cannot save: {e}", path.display()))?;
    Ok(())
}

/// Opens the editor's text (saved or not) in `$EDITOR` on a scratch copy; what comes back
/// is an unsaved edit, so quitting the editor without saving loses nothing on disk.
fn edit_externally(
    terminal: &mut DefaultTerminal,
    path: &Path,
    text: &str,
) -> Result<String, String> {
    let scratch = tempfile::Builder::new()
        .prefix("promptlab-")
        .suffix(".yaml")
        .tempfile()
        .map_err(|e| format!("cannot create a scratch file: {e}"))?;
    std::fs::write(scratch.path(), text)
        .map_err(|e| format!("cannot write a scratch file: {e}"))?;
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let _ = crossterm::execute!(std::io::stdout(), DisableMouseCapture);
    ratatui::restore();
    // Through the shell, so EDITOR="code --wait" works.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(scratch.path())
        .status();
    *terminal = ratatui::init();
    let _ = crossterm::execute!(std::io::stdout(), EnableMouseCapture);
    let _ = terminal.clear();
    match status {
        Ok(status) if status.success() => std::fs::read_to_string(scratch.path())
            .map_err(|e| format!("cannot read back the edit of {}: {e}", path.display())),
        Ok(status) => Err(format!(
            "{editor} exited with {status}; the edit was not taken"
        )),
        Err(err) => Err(format!("cannot start {editor}: {err}")),
    }
}

/// Resident memory from /proc (Linux); None elsewhere.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smollm2() -> promptlab::catalog::ModelEntry {
        let cache = std::env::var_os("PROMPTLAB_MODELS_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/promptlab/models")
            });
        let path = cache.join("SmolLM2-135M-Instruct.Q4_1.gguf");
        assert!(path.is_file(), "run scripts/fetch-models.sh first");
        serde_json::from_value(serde_json::json!({ "path": path })).unwrap()
    }

    fn ask(jobs: &std::sync::mpsc::Sender<ChatJob>) {
        let job = ChatJob {
            model_name: "smollm2".into(),
            model: smollm2(),
            request: GenerationRequest {
                prompt: RenderedPrompt::Chat(vec![promptlab::prompt::ChatMessage {
                    role: "user".into(),
                    content: "Hi".into(),
                }]),
                params: promptlab::params::SamplingParams {
                    max_tokens: 4,
                    ..Default::default()
                },
                schema: None,
                grammar: None,
                tools: None,
            },
            cancel: CancelToken::new(),
        };
        jobs.send(job).unwrap();
    }

    fn next_chat(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Event>) -> ChatEvent {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match rx.try_recv() {
                Ok(Event::Chat(event)) => return event,
                Ok(_) => {}
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(_) => panic!("no chat event within 120 s"),
            }
        }
    }

    /// A playground model is kept between messages, let go after sitting idle (its
    /// memory back to the machine), and loaded again by the next message.
    #[test]
    fn an_idle_playground_model_is_unloaded_then_loads_again() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let jobs = spawn_chat(tx, Duration::from_millis(1500));
        let mut replies = 0;
        let mut loads = 0;
        ask(&jobs);
        ask(&jobs);
        // Two messages in a row: one load.
        while replies < 2 {
            match next_chat(&mut rx) {
                ChatEvent::Loading(_) => loads += 1,
                ChatEvent::Done(result) => {
                    result.unwrap();
                    replies += 1;
                }
                ChatEvent::Unloaded { .. } => panic!("unloaded while busy"),
                _ => {}
            }
        }
        assert_eq!(loads, 1);
        let ChatEvent::Unloaded { model, idle } = next_chat(&mut rx) else {
            panic!("expected the idle model to be unloaded");
        };
        assert_eq!(
            (model.as_str(), idle),
            ("smollm2", Duration::from_millis(1500))
        );
        ask(&jobs);
        assert!(matches!(next_chat(&mut rx), ChatEvent::Loading(_)));
        loop {
            if let ChatEvent::Done(result) = next_chat(&mut rx) {
                result.unwrap();
                break;
            }
        }
    }
}
