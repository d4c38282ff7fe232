//! Run screen: choose an eval set, prompts and models, start, and watch every cell go
//! from queued to running (with its tokens streaming) to passed, failed or cached.
//! Cancelling keeps the finished cells; the run can be resumed from the CLI.

use std::time::Instant;

use crossterm::event::{KeyCode, KeyEvent};
use promptlab::project::ProjectScan;

use super::app::{App, CellOutcome, Effect, Popup, RunEvent, RunRequest, move_selection};

mod draw;
pub use draw::{draw, short_placement};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    EvalSets,
    Prompts,
    Models,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CellStatus {
    Queued,
    Running,
    Done(CellOutcome),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CellProgress {
    pub column: String,
    pub case: String,
    pub status: CellStatus,
    /// Streamed text while running.
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct ActiveRun {
    pub run_id: Option<i64>,
    pub cells: Vec<CellProgress>,
    pub started: Instant,
    pub model: Option<String>,
    /// Where the model runs, shortened for the status bar (`CPU (AVX2)`, `Vulkan0: all 30 layers`).
    pub runs_on: Option<String>,
    pub tokens: usize,
    pub finished: bool,
    pub cancelled: bool,
    pub duration_s: Option<f64>,
    /// The most recently started cell, whose tokens are shown.
    pub watching: Option<usize>,
    /// The first engine error of the run was shown in a popup (later ones only on cells).
    pub error_shown: bool,
}

impl ActiveRun {
    pub fn done(&self) -> usize {
        self.cells
            .iter()
            .filter(|c| matches!(c.status, CellStatus::Done(_)))
            .count()
    }
}

#[derive(Debug)]
pub struct RunState {
    pub focus: Focus,
    pub eval_set: usize,
    /// Prompt ids (variants expanded) with a tick.
    pub prompts: Vec<(String, bool)>,
    pub prompt_cursor: usize,
    pub models: Vec<(String, bool)>,
    pub model_cursor: usize,
    pub active: Option<ActiveRun>,
}

impl RunState {
    pub fn new(scan: &ProjectScan) -> RunState {
        let mut state = RunState {
            focus: Focus::EvalSets,
            eval_set: 0,
            prompts: Vec::new(),
            prompt_cursor: 0,
            models: Vec::new(),
            model_cursor: 0,
            active: None,
        };
        state.choose_eval_set(0, scan);
        state
    }

    /// Selects an eval set (prompt sets first, then agent sets) and ticks the prompts
    /// and models it names. An agent set offers agent prompts (those with `tools:`) and
    /// language models only.
    pub fn choose_eval_set(&mut self, index: usize, scan: &ProjectScan) {
        self.eval_set = index.min(set_count(scan).saturating_sub(1));
        let (named_prompts, named_models, agent): (&[String], &[String], bool) =
            match chosen(scan, self.eval_set) {
                Some(Chosen::Prompts(file)) => match &file.eval_set {
                    Ok(set) => (&set.prompts, &set.models, false),
                    Err(_) => (&[], &[], false),
                },
                Some(Chosen::Agent(file)) => match &file.set {
                    Ok(set) => (&set.prompts, &set.models, true),
                    Err(_) => (&[], &[], true),
                },
                None => (&[], &[], false),
            };
        self.prompts = scan
            .prompts
            .iter()
            .filter_map(|f| f.prompts.as_ref().ok())
            .flatten()
            .filter(|p| !agent || !p.tools.is_empty())
            .map(|p| {
                let named = named_prompts
                    .iter()
                    .any(|sel| sel == &p.id || sel == &p.name);
                (p.id.clone(), named)
            })
            .collect();
        // An embedding model serves the `similar` assertion; it is not a column. An agent
        // needs a language model that can call tools.
        let mut models: Vec<String> = scan
            .models
            .iter()
            .filter(|m| m.entry.kind() != promptlab::catalog::ModelKind::Embedding)
            .filter(|m| !agent || m.entry.kind().is_gguf() || m.entry.servers().is_some())
            .map(|m| m.name.clone())
            .collect();
        if !agent {
            models.push(promptlab::catalog::ECHO_MODEL.to_string());
        }
        self.models = models
            .into_iter()
            .map(|m| {
                let named = named_models.contains(&m);
                (m, named)
            })
            .collect();
        self.prompt_cursor = 0;
        self.model_cursor = 0;
    }

    /// Keeps the choice valid after the project was read again.
    pub fn sync_with(&mut self, scan: &ProjectScan) {
        let prompts = self.prompts.clone();
        let models = self.models.clone();
        self.choose_eval_set(self.eval_set, scan);
        for (id, ticked) in &mut self.prompts {
            if let Some((_, old)) = prompts.iter().find(|(p, _)| p == id) {
                *ticked = *old;
            }
        }
        for (name, ticked) in &mut self.models {
            if let Some((_, old)) = models.iter().find(|(m, _)| m == name) {
                *ticked = *old;
            }
        }
    }

    fn request(&self, scan: &ProjectScan) -> Result<RunRequest, String> {
        let (path, agent) = match chosen(scan, self.eval_set) {
            None => return Err("no eval set in eval-sets/ to run".into()),
            Some(Chosen::Prompts(file)) => match &file.eval_set {
                Ok(_) => (file.path.clone(), false),
                Err(error) => return Err(error.clone()),
            },
            Some(Chosen::Agent(file)) => match &file.set {
                Ok(_) => (file.path.clone(), true),
                Err(error) => return Err(error.clone()),
            },
        };
        let ticked = |list: &[(String, bool)]| -> Vec<String> {
            list.iter()
                .filter(|(_, t)| *t)
                .map(|(n, _)| n.clone())
                .collect()
        };
        let prompts = ticked(&self.prompts);
        let models = ticked(&self.models);
        // An agent set without a ticked prompt asks with the built-in system prompt.
        if prompts.is_empty() && !agent {
            return Err("tick at least one prompt (Tab to the prompts, Space to tick)".into());
        }
        if models.is_empty() {
            return Err("tick at least one model (Tab to the models, Space to tick)".into());
        }
        Ok(RunRequest {
            eval_set: path,
            prompts,
            models,
            agent,
            resume: None,
        })
    }
}

/// The eval sets the run screen lists: the prompt sets, then the agent sets.
pub fn set_count(scan: &ProjectScan) -> usize {
    scan.eval_sets.len() + scan.agent_sets.len()
}

enum Chosen<'a> {
    Prompts(&'a promptlab::project::EvalSetFile),
    Agent(&'a promptlab::project::AgentSetFile),
}

fn chosen(scan: &ProjectScan, index: usize) -> Option<Chosen<'_>> {
    match index.checked_sub(scan.eval_sets.len()) {
        None => scan.eval_sets.get(index).map(Chosen::Prompts),
        Some(agent) => scan.agent_sets.get(agent).map(Chosen::Agent),
    }
}

pub fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    let page = usize::from(app.size.1.saturating_sub(8));
    let run = &mut app.run;
    match key.code {
        KeyCode::Tab => {
            run.focus = match run.focus {
                Focus::EvalSets => Focus::Prompts,
                Focus::Prompts => Focus::Models,
                Focus::Models => Focus::EvalSets,
            }
        }
        KeyCode::BackTab => {
            run.focus = match run.focus {
                Focus::EvalSets => Focus::Models,
                Focus::Prompts => Focus::EvalSets,
                Focus::Models => Focus::Prompts,
            }
        }
        KeyCode::Char(' ') => match run.focus {
            Focus::Prompts => {
                if let Some((_, t)) = run.prompts.get_mut(run.prompt_cursor) {
                    *t = !*t;
                }
            }
            Focus::Models => {
                if let Some((_, t)) = run.models.get_mut(run.model_cursor) {
                    *t = !*t;
                }
            }
            Focus::EvalSets => {}
        },
        KeyCode::Char('r') | KeyCode::Enter => {
            if app.run_active() {
                app.message = Some("a run is already going; c cancels it".into());
                return Vec::new();
            }
            if key.code == KeyCode::Enter
                && let Some(run_id) = app.run.active.as_ref().and_then(|a| a.run_id)
                && app.run.active.as_ref().is_some_and(|a| a.finished)
            {
                // Enter on a finished run opens its results; r starts a new one.
                return vec![Effect::LoadRun(run_id)];
            }
            return match app.run.request(&app.scan) {
                Ok(request) => {
                    app.run.active = None;
                    vec![Effect::StartRun(request)]
                }
                Err(error) => {
                    app.popup = Some(Popup::Error(error));
                    Vec::new()
                }
            };
        }
        KeyCode::Char('c') => {
            if app.run_active() {
                app.message = Some("cancelling the run; finished cells are kept".into());
                return vec![Effect::CancelRun];
            }
        }
        code => match run.focus {
            Focus::EvalSets => {
                let next = move_selection(run.eval_set, set_count(&app.scan), code, page);
                if next != run.eval_set {
                    run.choose_eval_set(next, &app.scan);
                }
            }
            Focus::Prompts => {
                run.prompt_cursor = move_selection(run.prompt_cursor, run.prompts.len(), code, page)
            }
            Focus::Models => {
                run.model_cursor = move_selection(run.model_cursor, run.models.len(), code, page)
            }
        },
    }
    Vec::new()
}

pub fn on_run_event(app: &mut App, event: RunEvent) -> Vec<Effect> {
    match event {
        RunEvent::Started { run_id, cells } => {
            app.run.active = Some(ActiveRun {
                run_id,
                cells: cells
                    .into_iter()
                    .map(|(column, case)| CellProgress {
                        column,
                        case,
                        status: CellStatus::Queued,
                        text: String::new(),
                    })
                    .collect(),
                started: app.now,
                model: None,
                runs_on: None,
                tokens: 0,
                finished: false,
                cancelled: false,
                duration_s: None,
                watching: None,
                error_shown: false,
            });
        }
        RunEvent::ModelLoading(model) => {
            if let Some(active) = app.run.active.as_mut() {
                active.model = Some(format!("{model} (loading…)"));
            }
        }
        RunEvent::ModelLoaded { model, load_ms } => {
            if let Some(active) = app.run.active.as_mut() {
                active.model = Some(format!("{model} (loaded in {load_ms:.0} ms)"));
            }
        }
        RunEvent::ModelPlaced { runs_on, note } => {
            if let Some(active) = app.run.active.as_mut() {
                active.runs_on = runs_on.as_deref().map(short_placement);
            }
            if let Some(note) = note {
                app.message = Some(note);
            }
        }
        RunEvent::CellStarted(index) => {
            if let Some(active) = app.run.active.as_mut()
                && let Some(cell) = active.cells.get_mut(index)
            {
                cell.status = CellStatus::Running;
                active.watching = Some(index);
            }
        }
        RunEvent::Token(index, text) => {
            if let Some(active) = app.run.active.as_mut()
                && let Some(cell) = active.cells.get_mut(index)
            {
                cell.text.push_str(&text);
                active.tokens += 1;
            }
        }
        RunEvent::CellFinished(index, outcome) => {
            if let Some(active) = app.run.active.as_mut()
                && let Some(cell) = active.cells.get_mut(index)
            {
                // A model that cannot load fails all its cells: say why once, in a popup;
                // the cells show `E` and the run goes on with the other models.
                if let Some(error) = &outcome.error
                    && !active.error_shown
                    && app.popup.is_none()
                {
                    active.error_shown = true;
                    app.popup = Some(Popup::Error(format!(
                        "{} · {}: {error}\n\nCells with an engine error show E; the run continues.",
                        cell.column, cell.case
                    )));
                }
                cell.status = CellStatus::Done(outcome);
            }
        }
        RunEvent::Finished {
            run_id,
            cancelled,
            duration_s,
        } => {
            if let Some(active) = app.run.active.as_mut() {
                active.finished = true;
                active.cancelled = cancelled;
                active.duration_s = Some(duration_s);
                active.run_id = run_id.or(active.run_id);
                // Cells in flight when the run stopped were not kept: queued again.
                for cell in &mut active.cells {
                    if cell.status == CellStatus::Running {
                        cell.status = CellStatus::Queued;
                    }
                }
            }
            if cancelled {
                app.message = Some(match run_id {
                    Some(id) => format!(
                        "run {id} cancelled; finished cells are stored (resume: R on the history screen, or promptlab eval … --resume {id})"
                    ),
                    None => "run cancelled".into(),
                });
            } else if let Some(id) = run_id {
                // Show the results at once, unless the user went somewhere else meanwhile.
                if app.screen == super::app::Screen::Run {
                    return vec![Effect::LoadRun(id)];
                }
                app.message = Some(format!(
                    "run {id} finished; Enter on the run screen opens it"
                ));
            }
        }
        RunEvent::Failed(error) => {
            if let Some(active) = app.run.active.as_mut() {
                active.finished = true;
            }
            app.popup = Some(Popup::Error(error));
        }
    }
    Vec::new()
}
