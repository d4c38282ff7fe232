//! Playground: chat with a model, optionally through one of the project's prompts (the
//! first message fills the prompt's variable), with tokens streaming in and generation
//! parameters adjustable in place. An exchange worth keeping becomes a case of an eval
//! set with one key: the message as the variable, the reply as the expected answer.

use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use promptlab::catalog::{GpuLayers, KindSettings};
use promptlab::params::SamplingParams;
use promptlab::project::ProjectScan;
use promptlab::prompt::{ChatMessage, Prompt, PromptBody, RenderedPrompt};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Paragraph, Widget, Wrap};
use tui_textarea::TextArea;

use super::app::{App, Effect};
use super::view::{error_style, selected_style};

/// What the chat job reports.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    Loading(String),
    Loaded {
        model: String,
        load_ms: f64,
        /// Where it runs (`Capabilities::runs_on`).
        runs_on: Option<String>,
        /// Why not on the GPU it asked for.
        note: Option<String>,
    },
    /// The model was let go after sitting idle, to give its memory back.
    Unloaded {
        model: String,
        idle: std::time::Duration,
    },
    Token(String),
    Done(Result<ChatReply, String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatReply {
    pub text: String,
    pub completion_tokens: u32,
    pub tokens_per_s: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Input,
    Params,
}

/// Adjustable parameters: name, step.
const PARAMS: [(&str, f64); 7] = [
    ("temperature", 0.1),
    ("top_p", 0.05),
    ("top_k", 5.0),
    ("min_p", 0.01),
    ("repeat_penalty", 0.05),
    ("max_tokens", 16.0),
    ("seed", 1.0),
];

/// The row after the sampling parameters: layers on a GPU when the model loads
/// (None: as `models.yaml` says). Changing it reloads the model at the next message.
const GPU_ROW: usize = PARAMS.len();

/// `gpu_layers` one step left or right: the model's own setting, none, 4, 8, … 128, all.
fn step_gpu_layers(current: Option<GpuLayers>, direction: f64) -> Option<GpuLayers> {
    const STEP: u32 = 4;
    const MOST: u32 = 128;
    let right = direction > 0.0;
    match (current, right) {
        (None, true) => Some(GpuLayers::None),
        (None, false) => None,
        (Some(GpuLayers::None | GpuLayers::Count(0)), false) => None,
        (Some(GpuLayers::None | GpuLayers::Count(0)), true) => Some(GpuLayers::Count(STEP)),
        (Some(GpuLayers::Count(n)), true) if n >= MOST => Some(GpuLayers::All),
        (Some(GpuLayers::Count(n)), true) => Some(GpuLayers::Count((n / STEP + 1) * STEP)),
        (Some(GpuLayers::Count(n)), false) if n <= STEP => Some(GpuLayers::None),
        (Some(GpuLayers::Count(n)), false) => Some(GpuLayers::Count((n - 1) / STEP * STEP)),
        (Some(GpuLayers::All), true) => Some(GpuLayers::All),
        (Some(GpuLayers::All), false) => Some(GpuLayers::Count(MOST)),
    }
}

pub struct PlaygroundState {
    /// Index into the scan's models.
    pub model: Option<usize>,
    /// A prompt whose messages frame the chat (None: plain chat).
    pub prompt: Option<String>,
    pub params: SamplingParams,
    pub param_cursor: usize,
    pub focus: Focus,
    pub typing: bool,
    pub input: TextArea<'static>,
    /// The user's messages and the model's replies, as typed and received.
    pub turns: Vec<ChatMessage>,
    /// The reply being generated.
    pub reply: Option<String>,
    pub status: Option<String>,
    /// Where `S` saves the exchange (index into the scan's eval sets).
    pub eval_set: Option<usize>,
    /// The model the engine thread holds, once loaded.
    pub loaded: Option<String>,
    /// Layers on a GPU for the next load (None: the model's `gpu_layers`).
    pub gpu_layers: Option<GpuLayers>,
}

impl Default for PlaygroundState {
    fn default() -> Self {
        PlaygroundState {
            model: None,
            prompt: None,
            params: SamplingParams {
                max_tokens: 128,
                ..SamplingParams::default()
            },
            param_cursor: 0,
            focus: Focus::Input,
            typing: false,
            input: TextArea::default(),
            turns: Vec::new(),
            reply: None,
            status: None,
            eval_set: None,
            loaded: None,
            gpu_layers: None,
        }
    }
}

/// Models the playground can chat with: local GGUF files with a chat template, and
/// remote models (whose server applies its own template); only those this build can run
/// now (not an unfetched file, nor a mistral.rs entry in a build without it).
pub(super) fn chat_models(scan: &ProjectScan) -> Vec<usize> {
    (0..scan.models.len())
        .filter(|&i| scan.models[i].is_chat_model() && scan.models[i].runnable_here())
        .collect()
}

/// Prompts that can frame a chat: chat prompts reading at most one variable.
fn chat_prompts(scan: &ProjectScan) -> Vec<&Prompt> {
    scan.prompts
        .iter()
        .filter_map(|f| f.prompts.as_ref().ok())
        .flatten()
        .filter(|p| matches!(p.body, PromptBody::Chat(_)) && p.variables().len() <= 1)
        .collect()
}

impl PlaygroundState {
    pub fn busy(&self) -> bool {
        self.reply.is_some()
    }

    /// The messages to send: the prompt rendered with the first message as its variable,
    /// then the rest of the conversation as typed.
    pub fn conversation(&self, scan: &ProjectScan) -> Result<Vec<ChatMessage>, String> {
        let Some(id) = &self.prompt else {
            return Ok(self.turns.clone());
        };
        let prompt = scan
            .prompt(id)
            .ok_or_else(|| format!("prompt `{id}` is gone from the project"))?;
        let Some(first) = self.turns.first() else {
            return Ok(Vec::new());
        };
        let mut vars = serde_json::Map::new();
        if let Some(variable) = prompt.variables().first() {
            vars.insert(variable.clone(), first.content.clone().into());
        }
        let mut messages = match prompt
            .render(&minijinja::Value::from_serialize(&vars))
            .map_err(|e| e.to_string())?
        {
            RenderedPrompt::Chat(messages) | RenderedPrompt::Promptfoo { messages, .. } => messages,
            RenderedPrompt::Completion(_) => return Err(format!("`{id}` is a completion prompt")),
        };
        if prompt.variables().is_empty() {
            messages.push(first.clone());
        }
        messages.extend(self.turns[1..].iter().cloned());
        Ok(messages)
    }

    fn param_value(&self, index: usize) -> f64 {
        let p = &self.params;
        match index {
            0 => f64::from(p.temperature),
            1 => f64::from(p.top_p),
            2 => f64::from(p.top_k),
            3 => f64::from(p.min_p),
            4 => f64::from(p.repeat_penalty),
            5 => f64::from(p.max_tokens),
            _ => f64::from(p.seed),
        }
    }

    fn adjust(&mut self, index: usize, direction: f64) {
        if index == GPU_ROW {
            self.gpu_layers = step_gpu_layers(self.gpu_layers, direction);
            return;
        }
        let step = PARAMS[index].1;
        let value = self.param_value(index) + direction * step;
        // Rounded to the step, so repeated tenths stay 0.3 and not 0.30000000004.
        let round = |v: f64| (v / step).round() * step;
        let p = &mut self.params;
        match index {
            0 => p.temperature = round(value.clamp(0.0, 2.0)) as f32,
            1 => p.top_p = round(value.clamp(0.05, 1.0)) as f32,
            2 => p.top_k = value.clamp(0.0, 200.0) as i32,
            3 => p.min_p = round(value.clamp(0.0, 1.0)) as f32,
            4 => p.repeat_penalty = round(value.clamp(1.0, 2.0)) as f32,
            5 => p.max_tokens = value.clamp(16.0, 4096.0) as u32,
            _ => p.seed = value.clamp(0.0, f64::from(u32::MAX)) as u32,
        }
    }

    fn choose_defaults(&mut self, scan: &ProjectScan) {
        if self.model.is_none() {
            self.model = chat_models(scan).first().copied();
        }
        if self.eval_set.is_none() {
            self.eval_set = scan.eval_sets.iter().position(|f| f.eval_set.is_ok());
        }
    }
}

pub fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    app.playground.choose_defaults(&app.scan);
    let play = &mut app.playground;
    if play.typing {
        return match key.code {
            KeyCode::Esc => {
                play.typing = false;
                Vec::new()
            }
            KeyCode::Enter if !key.modifiers.contains(KeyModifiers::ALT) => send(app),
            _ => {
                play.input.input(key);
                Vec::new()
            }
        };
    }
    match key.code {
        KeyCode::Char('i') | KeyCode::Enter if play.focus == Focus::Input => play.typing = true,
        KeyCode::Tab => {
            play.focus = match play.focus {
                Focus::Input => Focus::Params,
                Focus::Params => Focus::Input,
            }
        }
        KeyCode::Up | KeyCode::Char('k') if play.focus == Focus::Params => {
            play.param_cursor = play.param_cursor.saturating_sub(1)
        }
        KeyCode::Down | KeyCode::Char('j') if play.focus == Focus::Params => {
            play.param_cursor = (play.param_cursor + 1).min(GPU_ROW)
        }
        KeyCode::Left | KeyCode::Char('-') if play.focus == Focus::Params => {
            play.adjust(play.param_cursor, -1.0)
        }
        KeyCode::Right | KeyCode::Char('+') if play.focus == Focus::Params => {
            play.adjust(play.param_cursor, 1.0)
        }
        KeyCode::Char('m') => {
            let models = chat_models(&app.scan);
            let at = play.model.and_then(|m| models.iter().position(|&x| x == m));
            play.model = match at {
                Some(i) => models.get((i + 1) % models.len()).copied(),
                None => models.first().copied(),
            };
        }
        KeyCode::Char('p') => {
            let prompts: Vec<String> = chat_prompts(&app.scan)
                .iter()
                .map(|p| p.id.clone())
                .collect();
            let at = play
                .prompt
                .as_ref()
                .and_then(|id| prompts.iter().position(|p| p == id));
            play.prompt = match at {
                None if play.prompt.is_none() => prompts.first().cloned(),
                Some(i) if i + 1 < prompts.len() => Some(prompts[i + 1].clone()),
                _ => None,
            };
            play.turns.clear();
            // The prompt's own parameters to start from, and an eval set that runs it
            // to save cases to.
            if let Some(prompt) = play.prompt.as_ref().and_then(|id| app.scan.prompt(id)) {
                play.params = prompt.params.resolve();
                let runs_it = |set: &promptlab::evalset::EvalSet| {
                    set.prompts
                        .iter()
                        .any(|s| *s == prompt.id || *s == prompt.name)
                };
                if let Some(index) = app
                    .scan
                    .eval_sets
                    .iter()
                    .position(|f| f.eval_set.as_ref().is_ok_and(runs_it))
                {
                    play.eval_set = Some(index);
                }
            }
        }
        KeyCode::Char('t') => {
            let n = app.scan.eval_sets.len();
            if n > 0 {
                play.eval_set = Some(play.eval_set.map_or(0, |i| (i + 1) % n));
            }
        }
        KeyCode::Char('n') if !play.busy() => {
            play.turns.clear();
            play.status = Some("new conversation".into());
        }
        KeyCode::Char('c') if play.busy() => return vec![Effect::CancelChat],
        KeyCode::Char('S') => return save(app),
        _ => {}
    }
    Vec::new()
}

fn send(app: &mut App) -> Vec<Effect> {
    let play = &mut app.playground;
    let text = play.input.lines().join("\n").trim().to_string();
    if text.is_empty() || play.busy() {
        return Vec::new();
    }
    let Some(model) = play.model.and_then(|m| app.scan.models.get(m)) else {
        play.status = Some("no model with a chat template in models/models.yaml".into());
        return Vec::new();
    };
    play.turns.push(ChatMessage {
        role: "user".into(),
        content: text,
    });
    let messages = match play.conversation(&app.scan) {
        Ok(messages) => messages,
        Err(error) => {
            play.turns.pop();
            play.status = Some(error);
            return Vec::new();
        }
    };
    // A prompt's schema holds in the playground too: its replies look as they will in a run.
    let schema = play
        .prompt
        .as_ref()
        .and_then(|id| app.scan.prompt(id))
        .and_then(|p| p.schema.clone());
    play.input = TextArea::default();
    play.reply = Some(String::new());
    play.status = None;
    // Sent: keys are commands again until `i` (the next `i` is not typed into the message).
    play.typing = false;
    let mut entry = model.entry.clone();
    if let (Some(layers), KindSettings::Gguf(local)) = (play.gpu_layers, &mut entry.settings) {
        local.gpu_layers = Some(layers);
    }
    vec![Effect::Chat {
        model: Box::new(entry),
        model_name: model.name.clone(),
        messages,
        params: play.params.clone(),
        schema,
    }]
}

/// The first exchange as a case: the message fills the prompt's variable, the reply is
/// the expected answer (edit the set to turn it into the assertion you want).
fn save(app: &mut App) -> Vec<Effect> {
    let play = &mut app.playground;
    let prompt = play.prompt.as_ref().and_then(|id| app.scan.prompt(id));
    let variable = prompt.and_then(|p| p.variables().first().cloned());
    let (Some(variable), [question, answer, ..]) = (variable, &play.turns[..]) else {
        play.status = Some(
            "to save a case: choose a prompt with one variable (p), send a message and get a reply"
                .into(),
        );
        return Vec::new();
    };
    let Some(file) = play.eval_set.and_then(|i| app.scan.eval_sets.get(i)) else {
        play.status = Some("no eval set to save to (t chooses one)".into());
        return Vec::new();
    };
    let count = file.eval_set.as_ref().map_or(0, |s| s.cases.len());
    let case = serde_json::json!({
        "id": format!("playground-{}", count + 1),
        "vars": { variable: question.content },
        "expected": answer.content,
        "tags": ["playground"],
    });
    vec![Effect::SaveCase {
        eval_set: file.path.clone(),
        case,
    }]
}

pub fn on_chat_event(app: &mut App, event: ChatEvent) {
    let play = &mut app.playground;
    match event {
        ChatEvent::Loading(model) => {
            play.loaded = None;
            play.status = Some(format!("loading {model}…"))
        }
        ChatEvent::Loaded {
            model,
            load_ms,
            runs_on,
            note,
        } => {
            let place = runs_on
                .as_deref()
                .map(|r| format!(" on {}", crate::tui::run_screen::short_placement(r)))
                .unwrap_or_default();
            play.status = Some(match note {
                Some(note) => format!("{model} loaded in {load_ms:.0} ms{place}; it {note}"),
                None => format!("{model} loaded in {load_ms:.0} ms{place}"),
            });
            play.loaded = Some(format!("{model}{place}"));
        }
        ChatEvent::Unloaded { model, idle } => {
            play.status = Some(format!(
                "{model} unloaded after {} s idle to free its memory; the next message loads it again",
                idle.as_secs()
            ));
            play.loaded = None;
        }
        ChatEvent::Token(text) => {
            if let Some(reply) = play.reply.as_mut() {
                reply.push_str(&text);
            }
        }
        ChatEvent::Done(Ok(reply)) => {
            play.reply = None;
            play.status = Some(format!(
                "{} tokens{}",
                reply.completion_tokens,
                reply
                    .tokens_per_s
                    .map(|t| format!(" at {t:.1} tokens/s"))
                    .unwrap_or_default()
            ));
            play.turns.push(ChatMessage {
                role: "assistant".into(),
                content: reply.text,
            });
        }
        ChatEvent::Done(Err(error)) => {
            play.reply = None;
            // The message stays in the input box to send again.
            if let Some(last) = play.turns.pop() {
                play.input = TextArea::new(last.content.lines().map(str::to_string).collect());
            }
            play.status = Some(error);
        }
    }
}

pub fn case_saved(app: &mut App, saved: Result<(PathBuf, String), String>) {
    app.playground.status = Some(match saved {
        Ok((path, id)) => format!("saved case {id} to {}", app.relative(&path)),
        Err(error) => app.shorten(&error),
    });
}

pub fn draw(app: &App, area: Rect, buf: &mut Buffer) {
    let play = &app.playground;
    let [chat_area, side_area] =
        Layout::horizontal([Constraint::Min(30), Constraint::Length(30)]).areas(area);
    let [log_area, input_area] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(3)]).areas(chat_area);

    let model = play
        .model
        .or_else(|| chat_models(&app.scan).first().copied())
        .and_then(|m| app.scan.models.get(m))
        .map(|m| m.name.clone())
        .unwrap_or_else(|| "no chat model".into());
    let framing = play
        .prompt
        .as_ref()
        .map(|p| format!(" through {p}"))
        .unwrap_or_default();
    let mut lines: Vec<Line> = Vec::new();
    if play.turns.is_empty() && play.reply.is_none() {
        lines.push(Line::from(
            "i: type a message · Enter: send · m: model · p: prompt · Tab: parameters · n: new chat · S: save as a case",
        ).dim());
    }
    for turn in &play.turns {
        let style = if turn.role == "user" {
            Style::new().fg(Color::Cyan).bold()
        } else {
            Style::new().fg(Color::Green).bold()
        };
        lines.push(Line::from(Span::styled(format!("{}:", turn.role), style)));
        lines.extend(turn.content.lines().map(|l| Line::raw(l.to_string())));
        lines.push(Line::raw(""));
    }
    if let Some(reply) = &play.reply {
        lines.push(Line::from(Span::styled(
            "assistant: (generating, c cancels)",
            Style::new().fg(Color::Yellow),
        )));
        lines.extend(reply.lines().map(|l| Line::raw(l.to_string())));
    }
    // Keep the end of the conversation in view.
    let inner_height = usize::from(log_area.height.saturating_sub(2)).max(1);
    let wrapped: usize = lines
        .iter()
        .map(|l| (l.width() / usize::from(log_area.width.saturating_sub(2)).max(1)) + 1)
        .sum();
    let scroll = wrapped.saturating_sub(inner_height) as u16;
    Paragraph::new(Text::from(lines))
        .wrap(Wrap { trim: false })
        .scroll((scroll, 0))
        .block(Block::bordered().title(format!(" Playground · {model}{framing} ")))
        .render(log_area, buf);

    let mut input = play.input.clone();
    let border = if play.typing {
        Style::new().fg(Color::Yellow)
    } else {
        Style::new()
    };
    input.set_block(
        Block::bordered()
            .border_style(border)
            .title(if play.typing {
                " message · Enter: send · Esc: stop "
            } else {
                " message (i to type) "
            }),
    );
    if !play.typing {
        input.set_cursor_style(Style::new());
    }
    (&input).render(input_area, buf);

    let mut side: Vec<Line> = Vec::new();
    for (i, (name, _)) in PARAMS.iter().enumerate() {
        let value = play.param_value(i);
        let text = if i >= 2 && i != 3 && i != 4 {
            format!("{name:<15}{value:>8.0}")
        } else {
            format!("{name:<15}{value:>8.2}")
        };
        let line = Line::raw(text);
        side.push(if play.focus == Focus::Params && i == play.param_cursor {
            line.style(selected_style())
        } else {
            line
        });
    }
    let gpu = play
        .gpu_layers
        .map_or_else(|| "model's".to_string(), |layers| layers.to_string());
    let line = Line::raw(format!("{:<15}{gpu:>8}", "gpu_layers"));
    side.push(
        if play.focus == Focus::Params && play.param_cursor == GPU_ROW {
            line.style(selected_style())
        } else {
            line
        },
    );
    side.push(Line::raw(""));
    side.push(Line::from("Tab, ↑↓, ←→ adjust").dim());
    side.push(Line::raw(""));
    let target = play
        .eval_set
        .and_then(|i| app.scan.eval_sets.get(i))
        .map(|f| f.name())
        .unwrap_or_else(|| "—".into());
    side.push(Line::from(format!("save to: {target} (t)")));
    if let Some(status) = &play.status {
        side.push(Line::raw(""));
        let style = if status.contains("cannot") || status.contains("error") {
            error_style()
        } else {
            Style::new().fg(Color::Yellow)
        };
        side.push(Line::styled(status.clone(), style));
    }
    Paragraph::new(Text::from(side))
        .wrap(Wrap { trim: false })
        .block(Block::bordered().title(" Parameters "))
        .render(side_area, buf);
}
