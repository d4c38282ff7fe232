//! Library screen: the project's prompts, eval sets and models, with a preview of the
//! selected one. Broken files are listed with their error instead of hiding the rest.

use crossterm::event::{KeyCode, KeyEvent};
use promptlab::catalog::ModelKind;
use promptlab::project::{ModelStatus, ProjectScan};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, List, ListItem, ListState, Paragraph, StatefulWidget, Widget, Wrap};

use super::app::{App, Discard, Effect, Popup, Screen, move_selection};
use super::view::{error_style, selected_style};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    Prompt(usize),
    EvalSet(usize),
    AgentSet(usize),
    Model(usize),
}

#[derive(Debug, Default)]
pub struct LibraryState {
    pub selected: usize,
}

impl LibraryState {
    pub fn clamp(&mut self, scan: &ProjectScan) {
        self.selected = self.selected.min(items(scan).len().saturating_sub(1));
    }
}

pub fn items(scan: &ProjectScan) -> Vec<Item> {
    (0..scan.prompts.len())
        .map(Item::Prompt)
        .chain((0..scan.eval_sets.len()).map(Item::EvalSet))
        .chain((0..scan.agent_sets.len()).map(Item::AgentSet))
        .chain((0..scan.models.len()).map(Item::Model))
        .collect()
}

pub fn selected_item(app: &App) -> Option<Item> {
    items(&app.scan).get(app.library.selected).copied()
}

/// Opens prompt file `file` in the editor (or in `$EDITOR` with `external`), first asking
/// before unsaved edits of another prompt are dropped.
fn open_prompt_or_ask(app: &mut App, file: usize, external: bool) -> Vec<Effect> {
    let same = app.editor.file == Some(file);
    // `$EDITOR` gets the file as saved, so its edits in progress would be lost too.
    if app.editor.dirty() && (!same || external) {
        app.popup = Some(Popup::DiscardEdits(Discard::OpenPrompt { file, external }));
        return Vec::new();
    }
    if same && !external {
        // Back to the edits in progress, not the file as saved.
        return app.open(Screen::Editor);
    }
    open_prompt(app, file, external)
}

/// Opens prompt file `file` in the editor, and in `$EDITOR` with `external`.
pub fn open_prompt(app: &mut App, file: usize, external: bool) -> Vec<Effect> {
    app.editor.open(file, &app.scan);
    if !external {
        return app.open(Screen::Editor);
    }
    app.screen = Screen::Editor;
    let Some(prompt) = app.scan.prompts.get(file) else {
        return Vec::new();
    };
    vec![Effect::EditExternally {
        path: prompt.path.clone(),
        text: prompt.text.clone(),
    }]
}

pub fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    let count = items(&app.scan).len();
    match key.code {
        KeyCode::Enter => match selected_item(app) {
            Some(Item::Prompt(index)) => open_prompt_or_ask(app, index, false),
            Some(Item::EvalSet(index)) => {
                app.run.choose_eval_set(index, &app.scan);
                app.open(Screen::Run)
            }
            Some(Item::AgentSet(index)) => {
                // The run screen lists agent sets after the prompt sets.
                app.run
                    .choose_eval_set(app.scan.eval_sets.len() + index, &app.scan);
                app.open(Screen::Run)
            }
            _ => Vec::new(),
        },
        KeyCode::Char('e') => match selected_item(app) {
            Some(Item::Prompt(index)) => open_prompt_or_ask(app, index, true),
            _ => Vec::new(),
        },
        KeyCode::Char('r') => vec![Effect::Rescan],
        code => {
            let page = usize::from(app.size.1.saturating_sub(6));
            app.library.selected = move_selection(app.library.selected, count, code, page);
            Vec::new()
        }
    }
}

/// A click on list row `row` (0 = the first line inside the list's border).
pub fn click(app: &mut App, row: usize) -> Vec<Effect> {
    // Each section has a header line above its items.
    let scan = &app.scan;
    let mut line = 0;
    let mut index = 0;
    for len in [
        scan.prompts.len(),
        scan.eval_sets.len(),
        scan.agent_sets.len(),
        scan.models.len(),
    ] {
        line += 1;
        if row < line + len && row >= line {
            app.library.selected = index + (row - line);
            return Vec::new();
        }
        line += len;
        index += len;
    }
    Vec::new()
}

pub fn draw(app: &App, area: Rect, buf: &mut Buffer) {
    let [list_area, preview_area] =
        Layout::horizontal([Constraint::Percentage(35), Constraint::Percentage(65)]).areas(area);
    let scan = &app.scan;
    let mut lines: Vec<ListItem> = Vec::new();
    let mut selected_line = 0;
    let mut index = 0;
    let header = |text: &str| ListItem::new(Line::from(text.to_string()).bold().fg(Color::Cyan));
    let mut push = |label: String, ok: bool, lines: &mut Vec<ListItem>| {
        if index == app.library.selected {
            selected_line = lines.len();
        }
        let style = if ok { Style::new() } else { error_style() };
        lines.push(ListItem::new(Line::from(Span::styled(label, style))));
        index += 1;
    };
    lines.push(header(&format!("Prompts ({})", scan.prompts.len())));
    for file in &scan.prompts {
        let label = match &file.prompts {
            Ok(prompts) if prompts.len() > 1 => {
                format!("  {} ({} variants)", file.name(), prompts.len())
            }
            Ok(_) => format!("  {}", file.name()),
            Err(_) => format!("  {} ✗ error", file.name()),
        };
        push(label, file.prompts.is_ok(), &mut lines);
    }
    lines.push(header(&format!("Eval sets ({})", scan.eval_sets.len())));
    for file in &scan.eval_sets {
        let label = match &file.eval_set {
            Ok(set) => format!("  {} ({} cases)", set.name, set.cases.len()),
            Err(_) => format!("  {} ✗ error", file.name()),
        };
        push(label, file.eval_set.is_ok(), &mut lines);
    }
    lines.push(header(&format!("Agent sets ({})", scan.agent_sets.len())));
    for file in &scan.agent_sets {
        let label = match &file.set {
            Ok(set) => format!("  {} ({} questions)", set.name, set.cases.len()),
            Err(_) => format!("  {} ✗ error", file.name()),
        };
        push(label, file.set.is_ok(), &mut lines);
    }
    lines.push(header(&format!("Models ({})", scan.models.len())));
    for model in &scan.models {
        let (label, usable) = match model.status() {
            ModelStatus::Ready => {
                let tag = match model.entry.kind() {
                    ModelKind::Gguf => "",
                    ModelKind::Openai => " (remote)",
                    ModelKind::Embedding => " (embeddings)",
                    _ => " (vision)",
                };
                (format!("  {}{tag}", model.name), true)
            }
            // Normal states, not errors: the preview says what to run.
            ModelStatus::NotFetched(_) => (format!("  {} (not fetched)", model.name), true),
            ModelStatus::Missing if model.entry.kind() == ModelKind::DigitCnn => {
                (format!("  {} (not trained yet)", model.name), true)
            }
            ModelStatus::Missing => (format!("  {} ✗ missing", model.name), false),
            ModelStatus::Unreadable(_) => (format!("  {} ✗ unreadable", model.name), false),
        };
        push(label, usable, &mut lines);
    }
    let mut state = ListState::default().with_selected(Some(selected_line));
    StatefulWidget::render(
        List::new(lines)
            .block(Block::bordered().title(" Project "))
            .highlight_style(selected_style()),
        list_area,
        buf,
        &mut state,
    );
    preview(app, preview_area, buf);
}

fn preview(app: &App, area: Rect, buf: &mut Buffer) {
    let scan = &app.scan;
    let (title, text): (String, Text) = match selected_item(app) {
        None => (
            " Preview ".into(),
            Text::from(format!(
                "Nothing here yet: add prompts/*.yaml, eval-sets/*.yaml and models/models.yaml under {}",
                scan.root.display()
            )),
        ),
        Some(Item::Prompt(index)) => {
            let file = &scan.prompts[index];
            let mut lines: Vec<Line> = Vec::new();
            match &file.prompts {
                Ok(prompts) => {
                    let ids: Vec<&str> = prompts.iter().map(|p| p.id.as_str()).collect();
                    lines.push(Line::from(vec![
                        "prompts: ".dim(),
                        Span::raw(ids.join(", ")),
                    ]));
                    lines.push(Line::from("Enter: edit here · e: edit in $EDITOR".dim()));
                }
                Err(error) => lines.push(Line::styled(app.shorten(error), error_style())),
            }
            lines.push(Line::raw(""));
            lines.extend(file.text.lines().map(highlight_template));
            (format!(" {} ", app.relative(&file.path)), Text::from(lines))
        }
        Some(Item::EvalSet(index)) => {
            let file = &scan.eval_sets[index];
            let mut lines: Vec<Line> = Vec::new();
            match &file.eval_set {
                Ok(set) => {
                    if !set.description.is_empty() {
                        lines.push(Line::raw(set.description.clone()));
                    }
                    lines.push(field("cases", set.cases.len().to_string()));
                    lines.push(field("prompts", set.prompts.join(", ")));
                    lines.push(field("models", set.models.join(", ")));
                    let mut tags: Vec<(String, usize)> = Vec::new();
                    for tag in set.cases.iter().flat_map(|c| &c.tags) {
                        match tags.iter_mut().find(|(t, _)| t == tag) {
                            Some((_, n)) => *n += 1,
                            None => tags.push((tag.clone(), 1)),
                        }
                    }
                    tags.sort();
                    let tags: Vec<String> =
                        tags.iter().map(|(t, n)| format!("{t} ({n})")).collect();
                    lines.push(field("tags", tags.join(", ")));
                    lines.push(Line::from("Enter: set up a run".dim()));
                    lines.push(Line::raw(""));
                    for case in set.cases.iter().take(usize::from(area.height)) {
                        let vars = serde_json::Value::Object(case.vars.clone()).to_string();
                        lines.push(Line::from(vec![
                            Span::styled(format!("{:<12}", case.id), Style::new().bold()),
                            Span::raw(vars),
                        ]));
                    }
                }
                Err(error) => lines.push(Line::styled(app.shorten(error), error_style())),
            }
            (format!(" {} ", app.relative(&file.path)), Text::from(lines))
        }
        Some(Item::AgentSet(index)) => {
            let file = &scan.agent_sets[index];
            let mut lines: Vec<Line> = Vec::new();
            match &file.set {
                Ok(set) => {
                    if !set.description.is_empty() {
                        lines.push(Line::raw(set.description.clone()));
                    }
                    lines.push(field("questions", set.cases.len().to_string()));
                    let or_default = |list: &[String], default: &str| {
                        if list.is_empty() {
                            default.to_string()
                        } else {
                            list.join(", ")
                        }
                    };
                    lines.push(field(
                        "prompts",
                        or_default(&set.prompts, "the built-in system prompt"),
                    ));
                    lines.push(field("models", set.models.join(", ")));
                    lines.push(field(
                        "tools",
                        or_default(&set.tools, "all that are set up"),
                    ));
                    lines.push(Line::from("Enter: set up a run".dim()));
                    lines.push(Line::raw(""));
                    let width = set.cases.iter().map(|c| c.id.chars().count()).max();
                    let width = width.unwrap_or(0).clamp(8, 24);
                    for case in set.cases.iter().take(usize::from(area.height)) {
                        let checks: Vec<String> = case.checks.iter().map(|c| c.name()).collect();
                        lines.push(Line::from(vec![
                            Span::styled(format!("{:<width$} ", case.id), Style::new().bold()),
                            Span::raw(case.question.clone()),
                            Span::raw(format!("  [{}]", checks.join(", "))).dim(),
                        ]));
                    }
                }
                Err(error) => lines.push(Line::styled(app.shorten(error), error_style())),
            }
            (format!(" {} ", app.relative(&file.path)), Text::from(lines))
        }
        Some(Item::Model(index)) => {
            let model = &scan.models[index];
            let mut lines = vec![field("file", app.relative(&model.entry.path))];
            match model.status() {
                ModelStatus::NotFetched(command) => {
                    lines.push(field("status", format!("not fetched yet: run `{command}`")))
                }
                ModelStatus::Missing => lines.push(field("status", "the file is missing".into())),
                ModelStatus::Ready | ModelStatus::Unreadable(_) => {}
            }
            if !model.entry.description.is_empty() {
                lines.push(field("about", model.entry.description.clone()));
            }
            match &model.info {
                Ok(info) => {
                    lines.push(field(
                        "architecture",
                        info.architecture().unwrap_or("?").into(),
                    ));
                    lines.push(field(
                        "parameters",
                        format!("{:.1} M", info.parameter_count as f64 / 1e6),
                    ));
                    lines.push(field("quantization", info.quantization()));
                    lines.push(field(
                        "context",
                        info.context_length()
                            .map(|n| n.to_string())
                            .unwrap_or_else(|| "?".into()),
                    ));
                    lines.push(field(
                        "chat template",
                        if info.chat_template().is_some() {
                            "yes"
                        } else {
                            "no (completion prompts only)"
                        }
                        .into(),
                    ));
                    lines.push(field(
                        "file size",
                        format!("{:.1} MiB", info.file_size as f64 / (1024.0 * 1024.0)),
                    ));
                }
                Err(error) => lines.push(Line::styled(app.shorten(error), error_style())),
            }
            (format!(" model {} ", model.name), Text::from(lines))
        }
    };
    let mut text = text;
    if let Some(error) = &scan.catalog_error {
        text.lines
            .insert(0, Line::styled(app.shorten(error), error_style()));
    }
    Paragraph::new(text)
        .wrap(Wrap { trim: false })
        .block(Block::bordered().title(title))
        .render(area, buf);
}

fn field(name: &str, value: String) -> Line<'static> {
    Line::from(vec![Span::raw(format!("{name}: ")).dim(), Span::raw(value)])
}

/// One line of a template with `{{ … }}` and `{% … %}` (and `{# … #}`) coloured.
pub fn highlight_template(line: &str) -> Line<'static> {
    let mut spans: Vec<Span> = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find('{') {
        let close = match rest[start..].chars().nth(1) {
            Some('{') => "}}",
            Some('%') => "%}",
            Some('#') => "#}",
            _ => {
                spans.push(Span::raw(rest[..=start].to_string()));
                rest = &rest[start + 1..];
                continue;
            }
        };
        let style = match close {
            "}}" => Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            "%}" => Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD),
            _ => Style::new().fg(Color::DarkGray),
        };
        if start > 0 {
            spans.push(Span::raw(rest[..start].to_string()));
        }
        match rest[start + 2..].find(close) {
            Some(end) => {
                let stop = start + 2 + end + 2;
                spans.push(Span::styled(rest[start..stop].to_string(), style));
                rest = &rest[stop..];
            }
            None => {
                spans.push(Span::styled(rest[start..].to_string(), style));
                rest = "";
            }
        }
    }
    if !rest.is_empty() {
        spans.push(Span::raw(rest.to_string()));
    }
    Line::from(spans)
}
