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
use promptlab::engine::GenerationRequest;
use promptlab::engine::llama::Tokenizer;
use promptlab::project;
use promptlab::prompt::RenderedPrompt;
use promptlab::results::RunMatrix;
use promptlab::store::RunStore;
use ratatui::DefaultTerminal;
use tokio::sync::mpsc::UnboundedSender;

use super::agent::AgentUiEvent;
use super::app::{App, Effect, Event, RunEvent};
use super::playground::ChatEvent;
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
    chat: std::sync::mpsc::Sender<super::chat_job::ChatJob>,
    chat_cancel: Option<CancelToken>,
    agent: std::sync::mpsc::Sender<super::agent_job::AgentJob>,
    agent_cancel: Option<CancelToken>,
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
        chat: super::chat_job::spawn(tx.clone(), model_idle_limit()),
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
                let job = super::chat_job::ChatJob {
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
