//! Agent: ask a question and watch a model work through the tools step by step,
//! or go back over earlier questions from the run store. Each step shows as one line;
//! the selected step opens in full (the model's reply, the call's arguments, the tool's
//! result or error, the timings).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use promptlab::store::AgentRunRow;
use promptlab::trace::{AgentStep, AgentTrace, StepAction};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Paragraph, Widget, Wrap};
use tui_textarea::TextArea;

use super::app::{App, Effect};
use super::playground::chat_models;
use super::view::{error_style, selected_style};

/// What the agent's worker thread reports.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentUiEvent {
    Loading(String),
    Loaded {
        model: String,
        load_ms: f64,
    },
    /// The model was let go after sitting idle, to give its memory back.
    Unloaded {
        model: String,
        idle: std::time::Duration,
    },
    Started {
        run_id: Option<i64>,
        tools: Vec<String>,
        /// Tools left out, with the reason.
        left_out: Vec<(String, String)>,
    },
    Token(String),
    Step(AgentStep),
    Done(Result<AgentTrace, String>),
}

/// One question and its trace, live or from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRunView {
    pub id: Option<i64>,
    pub model: String,
    pub question: String,
    /// `running`, or how it stopped.
    pub status: String,
    pub answer: Option<String>,
    pub steps: Vec<AgentStep>,
    pub total_ms: Option<f64>,
}

impl AgentRunView {
    fn from_row(row: AgentRunRow) -> AgentRunView {
        AgentRunView {
            id: Some(row.id),
            model: row.model,
            question: row.question,
            // Still `running` in the store: another process is on it, or it was cut
            // off; either way not this screen's question.
            status: if row.status == "running" {
                "unfinished".into()
            } else {
                row.status
            },
            answer: row.answer,
            steps: serde_json::from_str(&row.steps_json).unwrap_or_default(),
            total_ms: row.total_ms,
        }
    }
}

#[derive(Default)]
pub struct AgentState {
    /// Index into the scan's models.
    pub model: Option<usize>,
    /// The agent prompt questions are asked through (its id); None: the built-in prompt.
    pub prompt: Option<String>,
    pub typing: bool,
    pub input: TextArea<'static>,
    /// Newest first; while a question runs, it is the first.
    pub runs: Vec<AgentRunView>,
    pub selected: usize,
    /// The step shown in full (None: the last one).
    pub step: Option<usize>,
    /// The reply being generated.
    pub live: Option<String>,
    pub running: bool,
    pub tools: Vec<String>,
    pub left_out: Vec<(String, String)>,
    pub status: Option<String>,
}

impl AgentState {
    pub fn set_runs(&mut self, rows: Vec<AgentRunRow>) {
        let live: Vec<AgentRunView> = self
            .runs
            .iter()
            .filter(|r| r.status == "running")
            .cloned()
            .collect();
        let live_ids: Vec<Option<i64>> = live.iter().map(|r| r.id).collect();
        self.runs = live;
        self.runs.extend(
            rows.into_iter()
                .filter(|r| !live_ids.contains(&Some(r.id)))
                .map(AgentRunView::from_row),
        );
        self.selected = self.selected.min(self.runs.len().saturating_sub(1));
    }

    fn selected_run(&self) -> Option<&AgentRunView> {
        self.runs.get(self.selected)
    }
}

pub fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    let state = &mut app.agent;
    if state.model.is_none() {
        state.model = agent_models(&app.scan).first().copied();
    }
    if state.typing {
        return match key.code {
            KeyCode::Esc => {
                state.typing = false;
                Vec::new()
            }
            KeyCode::Enter if !key.modifiers.contains(KeyModifiers::ALT) => ask(app),
            _ => {
                state.input.input(key);
                Vec::new()
            }
        };
    }
    let steps = state.selected_run().map_or(0, |r| r.steps.len());
    match key.code {
        KeyCode::Char('i') | KeyCode::Enter => state.typing = true,
        KeyCode::Char('m') if !state.running => {
            let models = agent_models(&app.scan);
            let at = state
                .model
                .and_then(|m| models.iter().position(|&x| x == m));
            state.model = match at {
                Some(i) => models.get((i + 1) % models.len()).copied(),
                None => models.first().copied(),
            };
        }
        KeyCode::Char('p') if !state.running => {
            // Cycles the built-in prompt, then each agent prompt of the project.
            let prompts = agent_prompts(&app.scan);
            let at = state
                .prompt
                .as_ref()
                .and_then(|id| prompts.iter().position(|p| p.id == *id));
            state.prompt = match at {
                None => prompts.first().map(|p| p.id.clone()),
                Some(i) => prompts.get(i + 1).map(|p| p.id.clone()),
            };
        }
        KeyCode::Char('c') if state.running => return vec![Effect::CancelAgent],
        KeyCode::Up | KeyCode::Char('k') => {
            state.selected = state.selected.saturating_sub(1);
            state.step = None;
        }
        KeyCode::Down | KeyCode::Char('j') => {
            state.selected = (state.selected + 1).min(state.runs.len().saturating_sub(1));
            state.step = None;
        }
        KeyCode::Left | KeyCode::Char('h') if steps > 0 => {
            let at = state.step.unwrap_or(steps - 1);
            state.step = Some(at.saturating_sub(1));
        }
        KeyCode::Right | KeyCode::Char('l') if steps > 0 => {
            let at = state.step.unwrap_or(steps - 1) + 1;
            state.step = (at < steps - 1).then_some(at);
        }
        KeyCode::Char('r') => return vec![Effect::ListAgentRuns],
        _ => {}
    }
    Vec::new()
}

fn ask(app: &mut App) -> Vec<Effect> {
    let state = &mut app.agent;
    let question = state.input.lines().join(" ").trim().to_string();
    if question.is_empty() || state.running {
        return Vec::new();
    }
    let Some(model) = state.model.and_then(|m| app.scan.models.get(m)) else {
        state.status = Some("no model with a chat template in models/models.yaml".into());
        return Vec::new();
    };
    state.input = TextArea::default();
    state.typing = false;
    state.running = true;
    state.live = Some(String::new());
    state.status = None;
    state.runs.insert(
        0,
        AgentRunView {
            id: None,
            model: model.name.clone(),
            question: question.clone(),
            status: "running".into(),
            answer: None,
            steps: Vec::new(),
            total_ms: None,
        },
    );
    state.selected = 0;
    state.step = None;
    let prompt = state
        .prompt
        .as_ref()
        .and_then(|id| app.scan.prompt(id))
        .cloned();
    vec![Effect::AskAgent {
        model_name: model.name.clone(),
        question,
        prompt,
    }]
}

/// Models the agent can run on: local chat models, and remote (`kind: openai`) models,
/// whose servers apply their own templates.
fn agent_models(scan: &promptlab::project::ProjectScan) -> Vec<usize> {
    let mut models = chat_models(scan);
    models.extend(
        (0..scan.models.len()).filter(|&i| {
            scan.models[i].entry.servers().is_some() && scan.models[i].runnable_here()
        }),
    );
    models.sort_unstable();
    models
}

/// The project's agent prompts: those with a `tools:` list.
fn agent_prompts(scan: &promptlab::project::ProjectScan) -> Vec<&promptlab::prompt::Prompt> {
    scan.prompts
        .iter()
        .filter_map(|f| f.prompts.as_ref().ok())
        .flatten()
        .filter(|p| !p.tools.is_empty())
        .collect()
}

pub fn on_agent_event(app: &mut App, event: AgentUiEvent) {
    let root = format!("{}/", app.scan.root.display());
    let state = &mut app.agent;
    let live_run = state.runs.iter_mut().find(|r| r.status == "running");
    match event {
        AgentUiEvent::Loading(model) => state.status = Some(format!("loading {model}…")),
        AgentUiEvent::Loaded { model, load_ms } => {
            state.status = Some(format!("{model} loaded in {load_ms:.0} ms"))
        }
        AgentUiEvent::Unloaded { model, idle } => {
            state.status = Some(format!(
                "{model} unloaded after {} s idle to free its memory; the next question loads it again",
                idle.as_secs()
            ))
        }
        AgentUiEvent::Started {
            run_id,
            tools,
            left_out,
        } => {
            if let Some(run) = live_run {
                run.id = run_id;
            }
            state.tools = tools;
            state.left_out = left_out;
        }
        AgentUiEvent::Token(piece) => {
            if let Some(live) = state.live.as_mut() {
                live.push_str(&piece);
            }
        }
        AgentUiEvent::Step(step) => {
            if let Some(run) = live_run {
                run.steps.push(step);
            }
            state.live = Some(String::new());
        }
        AgentUiEvent::Done(result) => {
            state.running = false;
            state.live = None;
            match (result, live_run) {
                (Ok(trace), Some(run)) => {
                    run.status = trace.stop.as_str().into();
                    run.answer = trace.answer.clone();
                    run.steps = trace.steps;
                    run.total_ms = Some(trace.total_ms);
                    state.status = Some(match &trace.error {
                        Some(error) => format!("stopped: {error}"),
                        None => format!(
                            "{} · {} steps · {:.1} s",
                            trace.stop.as_str().replace('_', " "),
                            run.steps.len(),
                            trace.total_ms / 1000.0
                        ),
                    });
                }
                (Err(error), run) => {
                    if let Some(run) = run {
                        run.status = "failed".into();
                    }
                    state.status = Some(error.replace(&root, ""));
                }
                (Ok(_), None) => {}
            }
        }
    }
}

fn status_style(status: &str) -> Style {
    match status {
        "answered" => Style::new().fg(Color::Green),
        "running" => Style::new().fg(Color::Yellow),
        _ => error_style(),
    }
}

fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

pub fn draw(app: &App, area: Rect, buf: &mut Buffer) {
    let state = &app.agent;
    let [main, input_area] =
        Layout::vertical([Constraint::Min(6), Constraint::Length(3)]).areas(area);
    let list_width = (main.width / 3).clamp(20, 44);
    let [list_area, trace_area] =
        Layout::horizontal([Constraint::Length(list_width), Constraint::Min(20)]).areas(main);

    let inner = usize::from(list_area.height.saturating_sub(2)).max(1);
    let first = state.selected.saturating_sub(inner - 1);
    let mut lines: Vec<Line> = Vec::new();
    if state.runs.is_empty() {
        lines.push(Line::from("no questions yet").dim());
    }
    for (i, run) in state.runs.iter().enumerate().skip(first).take(inner) {
        // Answered is not the same as right, so no check mark.
        let mark = match run.status.as_str() {
            "answered" => "●",
            "running" => "…",
            _ => "✗",
        };
        let line = Line::from(vec![
            Span::styled(format!("{mark} "), status_style(&run.status)),
            Span::raw(run.question.clone()),
        ]);
        lines.push(if i == state.selected {
            line.style(selected_style())
        } else {
            line
        });
    }
    Paragraph::new(Text::from(lines))
        .block(Block::bordered().title(" Questions "))
        .render(list_area, buf);

    draw_trace(app, trace_area, buf);

    let model = state
        .model
        .or_else(|| agent_models(&app.scan).first().copied())
        .and_then(|m| app.scan.models.get(m))
        .map(|m| m.name.clone())
        .unwrap_or_else(|| "no chat model".into());
    let mut input = state.input.clone();
    let title = if state.typing {
        format!(" question for {model} · Enter: ask · Esc: stop typing ")
    } else if state.running {
        format!(" {model} is working · c: cancel ")
    } else {
        let prompt = state.prompt.as_deref().unwrap_or("built-in");
        format!(
            " question (i to type) · m: model ({model}) · p: prompt ({prompt}) · ↑↓ questions · ←→ steps "
        )
    };
    let border = if state.typing {
        Style::new().fg(Color::Yellow)
    } else {
        Style::new()
    };
    input.set_block(Block::bordered().border_style(border).title(title));
    if !state.typing {
        input.set_cursor_style(Style::new());
    }
    (&input).render(input_area, buf);
}

fn draw_trace(app: &App, area: Rect, buf: &mut Buffer) {
    let state = &app.agent;
    let mut lines: Vec<Line> = Vec::new();
    let title = match state.selected_run() {
        Some(run) => format!(" Trace · {} ", run.model),
        None => " Trace ".into(),
    };
    let Some(run) = state.selected_run() else {
        lines.push(Line::from(
            "Ask a question (i): the model calls the project's tools (detect_objects, classify_digit, list_images, calculator…) and answers. Every step is recorded in the run store.",
        ).dim());
        if let Some(status) = &state.status {
            lines.push(Line::raw(""));
            lines.push(Line::styled(status.clone(), Style::new().fg(Color::Yellow)));
        }
        Paragraph::new(Text::from(lines))
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(title))
            .render(area, buf);
        return;
    };
    lines.push(Line::from(vec![
        Span::styled("question: ", Style::new().fg(Color::Cyan).bold()),
        Span::raw(run.question.clone()),
    ]));
    if run.status == "running" && !state.tools.is_empty() {
        lines.push(Line::from(format!("tools: {}", state.tools.join(", "))).dim());
        for (name, why) in &state.left_out {
            lines.push(Line::from(format!("left out: {name} ({})", clip(why, 80))).dim());
        }
    }
    let shown = state
        .step
        .filter(|&s| s < run.steps.len())
        .or(run.steps.len().checked_sub(1));
    for (i, step) in run.steps.iter().enumerate() {
        let line = Line::raw(clip(&step.headline(), 160));
        lines.push(if Some(i) == shown {
            line.style(selected_style())
        } else {
            line
        });
    }
    if let Some(step) = shown.and_then(|s| run.steps.get(s)) {
        lines.push(Line::raw(""));
        lines.extend(step_detail(step));
    }
    if let Some(live) = state.live.as_ref().filter(|_| run.status == "running") {
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            format!("step {} · generating…", run.steps.len() + 1),
            Style::new().fg(Color::Yellow),
        ));
        lines.extend(live.lines().map(|l| Line::raw(l.to_string())));
    }
    lines.push(Line::raw(""));
    match &run.answer {
        Some(answer) => lines.push(Line::from(vec![
            Span::styled("answer: ", Style::new().fg(Color::Green).bold()),
            Span::raw(answer.clone()),
        ])),
        None if run.status != "running" => lines.push(Line::styled(
            format!("no answer ({})", run.status.replace('_', " ")),
            error_style(),
        )),
        None => {}
    }
    if let Some(ms) = run.total_ms {
        let tokens: u32 = run.steps.iter().map(|s| s.generated_tokens).sum();
        lines.push(
            Line::from(format!(
                "{} steps · {tokens} tokens · {:.1} s{}",
                run.steps.len(),
                ms / 1000.0,
                run.id
                    .map(|id| format!(" · agent run {id}"))
                    .unwrap_or_default()
            ))
            .dim(),
        );
    }
    if let Some(status) = &state.status {
        lines.push(Line::styled(status.clone(), Style::new().fg(Color::Yellow)));
    }
    let block = Block::bordered().title(title);
    let mut text_area = block.inner(area);
    block.render(area, buf);
    // A tool call on an image shows the image, with the boxes a detector found.
    if let Some((path, result)) = shown
        .and_then(|s| run.steps.get(s))
        .and_then(|step| step_picture(&app.scan.root, step))
        && text_area.width >= 40
    {
        let [text, picture] =
            Layout::horizontal([Constraint::Percentage(60), Constraint::Min(0)]).areas(text_area);
        if app.pictures.draw(&path, None, Some(&result), picture, buf) {
            text_area = text;
        }
    }
    // Keep the end in view while a question runs.
    let width = usize::from(text_area.width).max(1);
    let height = usize::from(text_area.height).max(1);
    let wrapped: usize = lines.iter().map(|l| l.width() / width + 1).sum();
    let scroll = if run.status == "running" {
        wrapped.saturating_sub(height) as u16
    } else {
        0
    };
    Paragraph::new(Text::from(lines))
        .wrap(Wrap { trim: false })
        .scroll((scroll, 0))
        .render(text_area, buf);
}

/// The image a step's tool read (its result's `image`, relative to the project) and the
/// result's JSON text, when that file is there.
fn step_picture(root: &std::path::Path, step: &AgentStep) -> Option<(std::path::PathBuf, String)> {
    let Some(Ok(value)) = step.outcome() else {
        return None;
    };
    let image = value.get("image")?.as_str()?;
    let path = root.join(image);
    path.is_file().then(|| (path, value.to_string()))
}

/// The selected step in full.
fn step_detail(step: &AgentStep) -> Vec<Line<'static>> {
    let label = |text: &str| Span::styled(format!("{text}: "), Style::new().bold());
    let mut lines = vec![Line::from(vec![
        label("reply"),
        Span::raw(step.reply.trim().replace('\n', " ⏎ ")),
    ])];
    match &step.action {
        StepAction::ToolCall { arguments, .. } | StepAction::Repeated { arguments, .. } => {
            lines.push(Line::from(vec![
                label("arguments"),
                Span::raw(arguments.to_string()),
            ]));
        }
        StepAction::Answer { .. } | StepAction::Malformed { .. } => {}
    }
    match step.outcome() {
        Some(Ok(value)) => {
            lines.push(Line::from(label("result")));
            let pretty = serde_json::to_string_pretty(value).unwrap_or_default();
            lines.extend(pretty.lines().map(|l| Line::raw(format!("  {l}"))));
        }
        Some(Err(error)) => lines.push(Line::from(vec![
            label("error"),
            Span::styled(error.to_string(), error_style()),
        ])),
        None => {}
    }
    lines.push(
        Line::from(format!(
            "prompt {} tokens{} · generated {} tokens in {:.0} ms",
            step.prompt_tokens,
            if step.cached_prompt_tokens > 0 {
                format!(" ({} kept from the last step)", step.cached_prompt_tokens)
            } else {
                String::new()
            },
            step.generated_tokens,
            step.generation_ms
        ))
        .dim(),
    );
    lines
}
