//! Prompt editor: the prompt's YAML file in a text area, with a live preview of the
//! messages rendered for a case of an eval set and passed through a model's chat
//! template. A template error shows in the preview with its line; the edit is kept.

use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use promptlab::engine::chat_template::ChatTemplate;
use promptlab::project::ProjectScan;
use promptlab::prompt::{Prompt, RenderedPrompt};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Paragraph, Widget, Wrap};
use tui_textarea::TextArea;

use super::app::{App, Effect, Screen};
use super::view::error_style;

#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    /// Which prompt, case and model the preview shows.
    pub context: String,
    pub result: Result<String, String>,
    /// Tokens of `result` for the chosen model, once counted (or why they could not be).
    pub tokens: Option<Result<usize, String>>,
}

#[derive(Default)]
pub struct EditorState {
    /// Index into the scan's prompt files.
    pub file: Option<usize>,
    pub path: Option<PathBuf>,
    pub textarea: TextArea<'static>,
    saved_text: String,
    pub editing: bool,
    pub variant: usize,
    pub eval_set: Option<usize>,
    pub case: usize,
    /// Index into the scan's models.
    pub model: Option<usize>,
    pub preview: Option<Preview>,
    /// The preview text whose tokens were last asked for, so each text is counted once.
    counting: Option<String>,
}

impl EditorState {
    /// Leaves typing mode with the view back at the start of the line: typing at the
    /// end of a long line scrolled it sideways, and a still view should show every line
    /// from its start.
    pub fn stop_typing(&mut self) {
        self.editing = false;
        self.textarea.move_cursor(tui_textarea::CursorMove::Head);
    }

    pub fn open(&mut self, file: usize, scan: &ProjectScan) {
        let Some(prompt_file) = scan.prompts.get(file) else {
            return;
        };
        self.file = Some(file);
        self.path = Some(prompt_file.path.clone());
        self.saved_text = prompt_file.text.clone();
        self.textarea = new_textarea(&prompt_file.text);
        self.variant = 0;
        self.case = 0;
        self.editing = false;
        let name = prompt_file.name();
        // The first eval set that runs this prompt has the most telling cases.
        self.eval_set = scan
            .eval_sets
            .iter()
            .position(|f| {
                f.eval_set.as_ref().is_ok_and(|set| {
                    set.prompts
                        .iter()
                        .any(|p| p == &name || p.starts_with(&format!("{name}:")))
                })
            })
            .or_else(|| scan.eval_sets.iter().position(|f| f.eval_set.is_ok()));
        if self.model.is_none() {
            let chat = |m: &&promptlab::project::ModelFile| m.is_chat_model() && m.runnable_here();
            let named: Vec<String> = self
                .eval_set
                .and_then(|i| scan.eval_sets.get(i))
                .and_then(|f| f.eval_set.as_ref().ok())
                .map(|set| set.models.clone())
                .unwrap_or_default();
            // The eval set's own model when it has a chat template, else any that has one.
            self.model = scan
                .models
                .iter()
                .position(|m| named.contains(&m.name) && chat(&m))
                .or_else(|| {
                    scan.models
                        .iter()
                        .position(|m| named.contains(&m.name) && m.runnable_here())
                })
                .or_else(|| scan.models.iter().position(|m| chat(&m)));
        }
        self.refresh_preview(scan);
    }

    pub fn text(&self) -> String {
        let mut text = self.textarea.lines().join("\n");
        if self.saved_text.ends_with('\n') || self.saved_text.is_empty() {
            text.push('\n');
        }
        text
    }

    pub fn dirty(&self) -> bool {
        self.path.is_some() && self.text() != self.saved_text
    }

    pub fn saved(&mut self) {
        self.saved_text = self.text();
    }

    /// The text changed outside (in `$EDITOR`): load it as an unsaved edit.
    pub fn replace_text(&mut self, text: &str, scan: &ProjectScan) {
        self.textarea = new_textarea(text);
        self.refresh_preview(scan);
    }

    /// A request to count the preview's tokens, when it has text not yet counted.
    pub fn token_count_request(&mut self, scan: &ProjectScan) -> Option<Effect> {
        let preview = self.preview.as_ref()?;
        if preview.tokens.is_some() {
            return None;
        }
        let text = preview.result.as_ref().ok()?;
        if self.counting.as_ref() == Some(text) {
            return None;
        }
        let model = scan.models.get(self.model?)?;
        model.info.as_ref().ok()?;
        self.counting = Some(text.clone());
        Some(Effect::CountTokens {
            model: model.entry.path.clone(),
            text: text.clone(),
        })
    }

    pub fn token_count(&mut self, text: &str, count: Result<usize, String>) {
        if let Some(preview) = self.preview.as_mut()
            && preview.result.as_deref() == Ok(text)
        {
            preview.tokens = Some(count);
        }
    }

    pub fn refresh_preview(&mut self, scan: &ProjectScan) {
        let Some(path) = &self.path else {
            self.preview = None;
            return;
        };
        let previous_tokens = self.preview.as_ref().and_then(|p| p.tokens.clone());
        let previous_result = self.preview.as_ref().map(|p| p.result.clone());
        let mut preview = render_preview(self, path, scan);
        // The count stays valid while the rendered text is the same.
        if previous_result.as_ref() == Some(&preview.result) {
            preview.tokens = previous_tokens;
        }
        self.preview = Some(preview);
    }
}

fn new_textarea(text: &str) -> TextArea<'static> {
    let mut textarea = TextArea::new(text.lines().map(str::to_string).collect());
    textarea.set_line_number_style(Style::new().fg(Color::DarkGray));
    textarea.set_cursor_line_style(Style::new());
    textarea
}

fn render_preview(state: &EditorState, path: &std::path::Path, scan: &ProjectScan) -> Preview {
    let text = state.text();
    let prompts = match Prompt::parse_file(path, &text) {
        Ok(prompts) if !prompts.is_empty() => prompts,
        Ok(_) => {
            return Preview {
                context: String::new(),
                result: Err("the file defines no prompt".into()),
                tokens: None,
            };
        }
        Err(err) => {
            return Preview {
                context: String::new(),
                result: Err(err.to_string()),
                tokens: None,
            };
        }
    };
    let prompt = &prompts[state.variant % prompts.len()];
    let case = state
        .eval_set
        .and_then(|i| scan.eval_sets.get(i))
        .and_then(|f| f.eval_set.as_ref().ok())
        .and_then(|set| {
            let n = set.cases.len();
            (n > 0).then(|| (set, &set.cases[state.case % n]))
        });
    let vars = case.map(|(_, case)| case.vars.clone()).unwrap_or_default();
    let model = state.model.and_then(|i| scan.models.get(i));
    let mut context = format!("prompt {}", prompt.id);
    if let Some((set, case)) = case {
        context.push_str(&format!(" · {} case {}", set.name, case.id));
    } else {
        context.push_str(" · no eval set case (variables empty)");
    }
    let rendered = prompt.render(&minijinja::Value::from_serialize(&vars));
    let result = match rendered {
        Err(err) => Err(err.to_string()),
        Ok(RenderedPrompt::Completion(text)) => {
            if let Some(model) = model {
                context.push_str(&format!(" · {}", model.name));
            }
            Ok(text)
        }
        Ok(RenderedPrompt::Chat(messages) | RenderedPrompt::Promptfoo { messages, .. }) => {
            let template = model.and_then(|m| {
                let info = m.info.as_ref().ok()?;
                Some((
                    m.name.clone(),
                    ChatTemplate::new(
                        info.chat_template()?,
                        info.bos_token().unwrap_or_default(),
                        info.eos_token().unwrap_or_default(),
                    ),
                ))
            });
            match template {
                Some((name, template)) => {
                    context.push_str(&format!(" · {name}'s chat template"));
                    template
                        .render(&messages, true)
                        .map_err(|err| format!("{name}'s chat template: {err}"))
                }
                None => {
                    context.push_str(" · no model with a chat template: messages as written");
                    Ok(messages
                        .iter()
                        .map(|m| format!("[{}]\n{}\n", m.role, m.content))
                        .collect::<Vec<_>>()
                        .join("\n"))
                }
            }
        }
    };
    Preview {
        context,
        result,
        tokens: None,
    }
}

pub fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && key.code == KeyCode::Char('s') {
        return save(app);
    }
    if app.editor.editing {
        if key.code == KeyCode::Esc {
            app.editor.stop_typing();
        } else if app.editor.textarea.input(key) {
            app.editor.refresh_preview(&app.scan);
        }
        return Vec::new();
    }
    if app.editor.path.is_none() {
        if key.code == KeyCode::Esc {
            app.screen = Screen::Library;
        }
        return Vec::new();
    }
    let editor = &mut app.editor;
    match key.code {
        KeyCode::Char('i') | KeyCode::Enter => editor.editing = true,
        KeyCode::Char('s') => return save(app),
        KeyCode::Char('e') => {
            if let Some(path) = editor.path.clone() {
                return vec![Effect::EditExternally {
                    path,
                    text: editor.text(),
                }];
            }
        }
        KeyCode::Char('c') => editor.case = editor.case.wrapping_add(1),
        KeyCode::Char('C') => editor.case = editor.case.wrapping_sub(1),
        KeyCode::Char('v') => editor.variant = editor.variant.wrapping_add(1),
        KeyCode::Char('t') => {
            let n = app.scan.eval_sets.len();
            if n > 0 {
                editor.eval_set = Some(editor.eval_set.map_or(0, |i| (i + 1) % n));
                editor.case = 0;
            }
        }
        KeyCode::Char('m') => {
            // The next model this build can run now; others would only fail.
            let n = app.scan.models.len();
            let start = editor.model.map_or(0, |i| i + 1);
            if let Some(next) = (0..n)
                .map(|step| (start + step) % n)
                .find(|&i| app.scan.models[i].runnable_here())
            {
                editor.model = Some(next);
            }
        }
        KeyCode::Esc => app.screen = Screen::Library,
        _ => return Vec::new(),
    }
    app.editor.refresh_preview(&app.scan);
    Vec::new()
}

/// Saves, and leaves typing mode: the next key is a command again (`3`, `r`: run), not
/// text typed into the prompt.
fn save(app: &mut App) -> Vec<Effect> {
    app.editor.stop_typing();
    match &app.editor.path {
        Some(path) => vec![Effect::Save {
            path: path.clone(),
            text: app.editor.text(),
        }],
        None => Vec::new(),
    }
}

pub fn draw(app: &App, area: Rect, buf: &mut Buffer) {
    let editor = &app.editor;
    let Some(path) = &editor.path else {
        Paragraph::new("No prompt open. Choose one in the library (1) and press Enter.")
            .block(Block::bordered().title(" Editor "))
            .render(area, buf);
        return;
    };
    let [edit_area, preview_area] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(area);
    let mut title = format!(" {} ", app.relative(path));
    if editor.dirty() {
        title.push_str("[modified] ");
    }
    // The key bar lists the keys; the border says when keys are text.
    let hint = if editor.editing {
        " editing · Esc: stop · Ctrl-S: save "
    } else {
        ""
    };
    let border = if editor.editing {
        Style::new().fg(Color::Yellow)
    } else {
        Style::new()
    };
    let mut textarea = editor.textarea.clone();
    textarea.set_block(
        Block::bordered()
            .border_style(border)
            .title(title)
            .title_bottom(Line::from(hint).dim()),
    );
    if !editor.editing {
        textarea.set_cursor_style(Style::new());
    }
    (&textarea).render(edit_area, buf);

    let mut lines: Vec<Line> = Vec::new();
    match &editor.preview {
        None => {}
        Some(preview) => {
            if !preview.context.is_empty() {
                lines.push(Line::from(preview.context.clone()).dim());
            }
            match &preview.tokens {
                Some(Ok(n)) => lines.push(Line::from(format!("{n} prompt tokens")).cyan()),
                Some(Err(error)) => lines.push(Line::styled(
                    format!("tokens not counted: {}", app.shorten(error)),
                    error_style(),
                )),
                None => {}
            }
            lines.push(Line::from(
                "c/C: case · t: eval set · v: variant · m: model".dim(),
            ));
            lines.push(Line::raw(""));
            match &preview.result {
                Ok(text) => lines.extend(text.lines().map(|l| Line::raw(l.to_string()))),
                Err(error) => {
                    lines.push(Line::from(Span::styled("✗ ", error_style())));
                    lines.extend(
                        error
                            .lines()
                            .map(|l| Line::styled(l.to_string(), error_style())),
                    );
                }
            }
        }
    }
    Paragraph::new(Text::from(lines))
        .wrap(Wrap { trim: false })
        .block(Block::bordered().title(" Preview "))
        .render(preview_area, buf);
}
