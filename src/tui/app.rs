//! The TUI's state machine: [`App::update`] takes one [`Event`] (a key, a mouse action,
//! a message from a background job) and returns [`Effect`]s for the driver to carry out.
//! It performs no IO, so every transition is tested without a terminal or a runtime.

use std::time::Instant;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use promptlab::project::ProjectScan;
use promptlab::results::RunMatrix;

use super::agent::{AgentState, AgentUiEvent};
use super::charts::ChartsState;
use super::editor::EditorState;
use super::history::HistoryState;
use super::library::LibraryState;
use super::optimize::OptimizeState;
use super::playground::PlaygroundState;
use super::results::ResultsState;
use super::run_screen::RunState;
use super::side::SideState;
use super::{
    agent, charts, editor, history, library, optimize, playground, results, run_screen, search,
    side,
};

mod messages;
pub use messages::{CellOutcome, Effect, Event, RunEvent, RunRequest};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Library,
    Editor,
    Run,
    Results,
    SideBySide,
    Playground,
    History,
    Charts,
    Agent,
    Optimize,
}

impl Screen {
    pub const ALL: [Screen; 10] = [
        Screen::Library,
        Screen::Editor,
        Screen::Run,
        Screen::Results,
        Screen::SideBySide,
        Screen::Playground,
        Screen::History,
        Screen::Charts,
        Screen::Agent,
        Screen::Optimize,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Screen::Library => "Library",
            Screen::Editor => "Editor",
            Screen::Run => "Run",
            Screen::Results => "Results",
            Screen::SideBySide => "Side by side",
            Screen::Playground => "Playground",
            Screen::History => "History",
            Screen::Charts => "Charts",
            Screen::Agent => "Agent",
            Screen::Optimize => "Optimize",
        }
    }

    /// The title on narrow terminals.
    pub fn short_title(self) -> &'static str {
        match self {
            Screen::SideBySide => "Side",
            Screen::Playground => "Play",
            Screen::Results => "Res",
            Screen::Optimize => "Opt",
            other => other.title(),
        }
    }

    /// The digit that opens the screen: 1 to 9, then 0 for the tenth.
    pub fn key(self) -> char {
        let index = Screen::ALL.iter().position(|s| *s == self).unwrap_or(0);
        if index == 9 {
            '0'
        } else {
            char::from(b'1' + index as u8)
        }
    }

    fn from_key(c: char) -> Option<Screen> {
        if c == '0' {
            return Screen::ALL.get(9).copied();
        }
        let index = (c as u32).checked_sub('1' as u32)? as usize;
        Screen::ALL.get(index).copied()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Popup {
    Error(String),
    ConfirmQuit,
    /// The editor's prompt has unsaved edits and the user asked for something that would
    /// drop them: `y` goes ahead, any other key stays.
    DiscardEdits(Discard),
}

/// What discarding the editor's unsaved edits is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discard {
    Quit,
    /// Open another prompt file (index into the scan's prompts) in the editor, or in
    /// `$EDITOR` with `external`.
    OpenPrompt {
        file: usize,
        external: bool,
    },
}

pub struct App {
    pub scan: ProjectScan,
    pub screen: Screen,
    pub help: bool,
    /// The first key binding the help overlay shows (it scrolls when the screen is short).
    pub help_scroll: usize,
    /// `/` search in the current list.
    pub search: search::SearchState,
    pub popup: Option<Popup>,
    /// One line of feedback in the status bar (saved, cancelled…).
    pub message: Option<String>,
    pub size: (u16, u16),
    pub now: Instant,
    pub rss_bytes: Option<u64>,
    /// The run shown by the results, side-by-side and charts screens.
    pub matrix: Option<RunMatrix>,
    pub library: LibraryState,
    pub editor: EditorState,
    pub run: RunState,
    pub results: ResultsState,
    pub side: SideState,
    pub playground: PlaygroundState,
    pub history: HistoryState,
    pub charts: ChartsState,
    pub agent: AgentState,
    pub optimize: OptimizeState,
    /// How vision cases' pictures are drawn (the terminal's graphics protocol).
    pub pictures: super::picture::Pictures,
}

impl App {
    pub fn new(scan: ProjectScan, size: (u16, u16), now: Instant) -> App {
        let run = RunState::new(&scan);
        App {
            scan,
            screen: Screen::Library,
            help: false,
            help_scroll: 0,
            search: Default::default(),
            popup: None,
            message: None,
            size,
            now,
            rss_bytes: None,
            matrix: None,
            library: LibraryState::default(),
            editor: EditorState::default(),
            run,
            results: ResultsState::default(),
            side: SideState::default(),
            playground: PlaygroundState::default(),
            history: HistoryState::default(),
            charts: ChartsState::default(),
            agent: AgentState::default(),
            optimize: OptimizeState::default(),
            pictures: Default::default(),
        }
    }

    /// Whether keys are text right now (a prompt, a message, a question, a run label or a
    /// search): `q` and the digits type rather than quit or switch screens.
    pub fn typing(&self) -> bool {
        self.search.typing.is_some()
            || match self.screen {
                Screen::Editor => self.editor.editing,
                Screen::Playground => self.playground.typing,
                Screen::Agent => self.agent.typing,
                Screen::History => self.history.label_input.is_some(),
                _ => false,
            }
    }

    pub fn run_active(&self) -> bool {
        self.run.active.as_ref().is_some_and(|a| !a.finished)
    }

    /// Switches screen, asking for whatever the new screen shows.
    pub fn open(&mut self, screen: Screen) -> Vec<Effect> {
        // A message belongs to the screen it was said on; the next shows its key bar.
        if screen != self.screen {
            self.message = None;
        }
        self.screen = screen;
        match screen {
            Screen::History => vec![Effect::ListRuns],
            Screen::Charts => vec![Effect::ListTrainingRuns],
            Screen::Agent => vec![Effect::ListAgentRuns],
            Screen::Optimize => vec![Effect::ListOptimizations],
            _ => Vec::new(),
        }
    }

    /// Quits, asking first while a run is active.
    fn quit(&mut self) -> Vec<Effect> {
        if self.run_active() {
            self.popup = Some(Popup::ConfirmQuit);
            Vec::new()
        } else {
            vec![Effect::Quit]
        }
    }

    pub fn update(&mut self, event: Event) -> Vec<Effect> {
        let mut effects = self.handle(event);
        if self.screen == Screen::Editor
            && let Some(request) = self.editor.token_count_request(&self.scan)
        {
            effects.push(request);
        }
        effects
    }

    fn handle(&mut self, event: Event) -> Vec<Effect> {
        match event {
            Event::Key(key) => self.on_key(key),
            Event::Mouse(mouse) => self.on_mouse(mouse),
            Event::Resize(width, height) => {
                self.size = (width, height);
                Vec::new()
            }
            Event::Tick { now, rss_bytes } => {
                self.now = now;
                self.rss_bytes = rss_bytes;
                if self.screen == Screen::Optimize && self.optimize.due(now) {
                    // Until the answer arrives, so ticks do not pile up requests.
                    self.optimize.listed_at = Some(now);
                    return vec![Effect::ListOptimizations];
                }
                Vec::new()
            }
            Event::OptimizationsListed(Ok(list)) => {
                self.optimize.set(list, self.now);
                Vec::new()
            }
            Event::CandidateAccepted(Ok((prompt, path))) => {
                self.message = Some(format!("wrote `{prompt}` to {}", self.relative(&path)));
                vec![Effect::Rescan]
            }
            Event::OptimizationsListed(Err(error)) | Event::CandidateAccepted(Err(error)) => {
                self.popup = Some(Popup::Error(error));
                Vec::new()
            }
            Event::Run(event) => run_screen::on_run_event(self, event),
            Event::RunLoaded(Ok(matrix)) => {
                self.side.show_case(0, 0);
                self.matrix = Some(matrix);
                self.results.refresh(self.matrix.as_ref());
                self.screen = Screen::Results;
                Vec::new()
            }
            Event::RunsListed(Ok(runs)) => {
                self.history.set_runs(runs);
                Vec::new()
            }
            Event::Compared(Ok((a, b, comparison))) => {
                self.history.comparison = Some((a, b, comparison));
                Vec::new()
            }
            Event::Saved(Ok(path)) => {
                self.editor.saved();
                self.message = Some(format!("saved {}", self.relative(&path)));
                vec![Effect::Rescan]
            }
            Event::Rescanned(scan) => {
                self.scan = scan;
                self.library.clamp(&self.scan);
                self.run.sync_with(&self.scan);
                self.editor.refresh_preview(&self.scan);
                Vec::new()
            }
            Event::EditedExternally(Ok(text)) => {
                self.editor.replace_text(&text, &self.scan);
                Vec::new()
            }
            Event::TrainingRunsListed(Ok(runs)) => {
                self.charts.set_training_runs(runs);
                Vec::new()
            }
            Event::TrainingRunsListed(Err(error)) => {
                self.message = Some(format!("training runs: {error}"));
                Vec::new()
            }
            Event::Agent(event) => {
                let done = matches!(event, AgentUiEvent::Done(_));
                agent::on_agent_event(self, event);
                // The finished question is in the store now, with its run id.
                if done {
                    vec![Effect::ListAgentRuns]
                } else {
                    Vec::new()
                }
            }
            Event::AgentRunsListed(Ok(runs)) => {
                self.agent.set_runs(runs);
                Vec::new()
            }
            Event::AgentRunsListed(Err(error)) => {
                self.agent.status = Some(format!("agent runs: {error}"));
                Vec::new()
            }
            Event::Chat(event) => {
                playground::on_chat_event(self, event);
                Vec::new()
            }
            Event::CaseSaved(saved) => {
                let ok = saved.is_ok();
                playground::case_saved(self, saved);
                if ok { vec![Effect::Rescan] } else { Vec::new() }
            }
            Event::TokenCount { text, count } => {
                self.editor.token_count(&text, count);
                Vec::new()
            }
            Event::RunLoaded(Err(error))
            | Event::RunsListed(Err(error))
            | Event::Compared(Err(error))
            | Event::Saved(Err(error))
            | Event::EditedExternally(Err(error)) => {
                self.popup = Some(Popup::Error(error));
                Vec::new()
            }
        }
    }

    fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            if self.playground.busy() {
                return vec![Effect::CancelChat];
            }
            if self.agent.running {
                self.message = Some("stopping the agent after this step".into());
                return vec![Effect::CancelAgent];
            }
            if self.run_active() {
                self.message = Some("cancelling the run; finished cells are kept".into());
                return vec![Effect::CancelRun];
            }
            self.message = Some("nothing to cancel; press q to quit".into());
            return Vec::new();
        }
        if let Some(popup) = &self.popup {
            return match (popup, key.code) {
                (Popup::ConfirmQuit, KeyCode::Char('y')) => {
                    self.popup = None;
                    vec![Effect::CancelRun, Effect::Quit]
                }
                (Popup::DiscardEdits(discard), KeyCode::Char('y')) => {
                    let discard = *discard;
                    self.popup = None;
                    match discard {
                        Discard::Quit => self.quit(),
                        Discard::OpenPrompt { file, external } => {
                            library::open_prompt(self, file, external)
                        }
                    }
                }
                (Popup::DiscardEdits(_), _) => {
                    self.popup = None;
                    self.message = Some("kept the edits (Ctrl-S saves them)".into());
                    Vec::new()
                }
                (Popup::ConfirmQuit, _) | (Popup::Error(_), KeyCode::Esc | KeyCode::Enter) => {
                    self.popup = None;
                    Vec::new()
                }
                _ => Vec::new(),
            };
        }
        if self.help {
            let page = usize::from(self.size.1.saturating_sub(6)).max(1);
            let limit = super::view::help_scroll_limit(self);
            let scroll = &mut self.help_scroll;
            match key.code {
                KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q') => self.help = false,
                KeyCode::Down | KeyCode::Char('j') => *scroll += 1,
                KeyCode::Up | KeyCode::Char('k') => *scroll = scroll.saturating_sub(1),
                KeyCode::PageDown | KeyCode::Char(' ') => *scroll += page,
                KeyCode::PageUp => *scroll = scroll.saturating_sub(page),
                KeyCode::Home | KeyCode::Char('g') => *scroll = 0,
                KeyCode::End | KeyCode::Char('G') => *scroll = usize::MAX,
                _ => {}
            }
            // Past the end is the last page (the overlay knows how many rows fit).
            *scroll = (*scroll).min(limit);
            return Vec::new();
        }
        // While typing in the editor every key is text, except the editor's own commands.
        if self.screen == Screen::Editor && self.editor.editing {
            return editor::on_key(self, key);
        }
        if self.screen == Screen::Playground && self.playground.typing {
            return playground::on_key(self, key);
        }
        if self.screen == Screen::Agent && self.agent.typing {
            return agent::on_key(self, key);
        }
        if self.screen == Screen::History && self.history.label_input.is_some() {
            return history::on_key(self, key);
        }
        if self.search.typing.is_some() {
            return search::on_key(self, key);
        }
        if search::searchable(self.screen) && !ctrl {
            match key.code {
                KeyCode::Char('/') => {
                    search::start(self);
                    return Vec::new();
                }
                KeyCode::Char('n') if search::repeats_with_n(self.screen) => {
                    search::find(self, search::Direction::Next);
                    return Vec::new();
                }
                KeyCode::Char('N') if search::repeats_with_n(self.screen) => {
                    search::find(self, search::Direction::Previous);
                    return Vec::new();
                }
                _ => {}
            }
        }
        match key.code {
            KeyCode::Char('q') => {
                if self.editor.dirty() {
                    self.popup = Some(Popup::DiscardEdits(Discard::Quit));
                    Vec::new()
                } else {
                    self.quit()
                }
            }
            KeyCode::Char('?') => {
                self.help = true;
                self.help_scroll = 0;
                Vec::new()
            }
            KeyCode::Char(c) if !ctrl && Screen::from_key(c).is_some() => match Screen::from_key(c)
            {
                Some(screen) => self.open(screen),
                None => Vec::new(),
            },
            _ => match self.screen {
                Screen::Library => library::on_key(self, key),
                Screen::Editor => editor::on_key(self, key),
                Screen::Run => run_screen::on_key(self, key),
                Screen::Results => results::on_key(self, key),
                Screen::SideBySide => side::on_key(self, key),
                Screen::Playground => playground::on_key(self, key),
                Screen::History => history::on_key(self, key),
                Screen::Charts => charts::on_key(self, key),
                Screen::Agent => agent::on_key(self, key),
                Screen::Optimize => optimize::on_key(self, key),
            },
        }
    }

    fn on_mouse(&mut self, mouse: MouseEvent) -> Vec<Effect> {
        if self.popup.is_some() || self.help {
            return Vec::new();
        }
        let key = |code| KeyEvent::new(code, KeyModifiers::NONE);
        match mouse.kind {
            MouseEventKind::ScrollDown => self.on_key(key(KeyCode::Down)),
            MouseEventKind::ScrollUp => self.on_key(key(KeyCode::Up)),
            MouseEventKind::Down(MouseButton::Left) if mouse.row == 0 => {
                match super::view::tab_at(mouse.column, self.size.0) {
                    Some(screen) => self.open(screen),
                    None => Vec::new(),
                }
            }
            MouseEventKind::Down(MouseButton::Left) => {
                // Lists start below the tab bar and their block's top border.
                let row = usize::from(mouse.row.saturating_sub(2));
                match self.screen {
                    Screen::Library => library::click(self, row),
                    Screen::Results => results::click(self, row),
                    Screen::History => history::click(self, row),
                    _ => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }

    /// A message with the project's own paths made relative, as the user thinks of them.
    pub fn shorten(&self, message: &str) -> String {
        let root = format!("{}/", self.scan.root.display());
        message.replace(&root, "")
    }

    /// A path as the user thinks of it: relative to the project.
    pub fn relative(&self, path: &std::path::Path) -> String {
        path.strip_prefix(&self.scan.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

/// Up/down/page/home/end movement over a list of `len` items.
pub fn move_selection(selected: usize, len: usize, key: KeyCode, page: usize) -> usize {
    if len == 0 {
        return 0;
    }
    let last = len - 1;
    match key {
        KeyCode::Down | KeyCode::Char('j') => (selected + 1).min(last),
        KeyCode::Up | KeyCode::Char('k') => selected.saturating_sub(1),
        KeyCode::PageDown => (selected + page.max(1)).min(last),
        KeyCode::PageUp => selected.saturating_sub(page.max(1)),
        KeyCode::Home | KeyCode::Char('g') => 0,
        KeyCode::End | KeyCode::Char('G') => last,
        _ => selected.min(last),
    }
}
