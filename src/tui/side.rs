//! Side by side: one case's outputs from up to four columns next to each other, the
//! words that differ between two of them highlighted, with each cell's assertion
//! results, latency and token counts. `p` shows the full prompts each column sent
//! instead, their differences highlighted the same way (two prompt variants, one edit).

use crossterm::event::{KeyCode, KeyEvent};
use promptlab::compare::{WordChange, word_diff};
use promptlab::results;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Paragraph, Widget, Wrap};

use super::app::{App, Effect, Screen};
use super::view::{fail_style, pass_style};

pub const MAX_PANES: usize = 4;

#[derive(Debug, Default)]
pub struct SideState {
    /// Case index in the matrix.
    pub case: usize,
    pub first_column: usize,
    /// The two shown panes (0-based among the visible ones) whose words are compared.
    pub diff: (usize, usize),
    /// The panes show the prompts sent rather than the outputs.
    pub show_prompts: bool,
    /// Lines scrolled down in every pane (PgDn, PgUp).
    pub scroll: u16,
}

impl SideState {
    pub fn show_case(&mut self, case: usize, first_column: usize) {
        self.case = case;
        self.first_column = first_column;
        self.diff = (0, 1);
        self.scroll = 0;
    }
}

pub fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    let Some(matrix) = app.matrix.as_ref() else {
        return Vec::new();
    };
    // Cases move in the results screen's order and filter when the case is shown there.
    let order: Vec<usize> = if app.results.rows.contains(&app.side.case) {
        app.results.rows.clone()
    } else {
        (0..matrix.cases.len()).collect()
    };
    let position = order.iter().position(|&c| c == app.side.case).unwrap_or(0);
    let page = app.size.1.saturating_sub(10).max(1);
    let side = &mut app.side;
    let case_before = side.case;
    let panes = matrix
        .columns
        .len()
        .saturating_sub(side.first_column)
        .min(MAX_PANES);
    match key.code {
        KeyCode::Right | KeyCode::Char('l') | KeyCode::Down | KeyCode::Char('j') => {
            if let Some(&next) = order.get(position + 1) {
                side.case = next;
            }
        }
        KeyCode::Left | KeyCode::Char('h') | KeyCode::Up | KeyCode::Char('k') => {
            if let Some(previous) = position.checked_sub(1).and_then(|p| order.get(p)) {
                side.case = *previous;
            }
        }
        KeyCode::Char('n') => {
            let len = order.len();
            if let Some(next) = (1..=len)
                .map(|step| order[(position + step) % len])
                .find(|&case| matrix.has_failure(case))
            {
                side.case = next;
            }
        }
        KeyCode::Tab => {
            side.first_column = if side.first_column + MAX_PANES < matrix.columns.len() {
                side.first_column + 1
            } else {
                0
            };
        }
        KeyCode::Char('p') => {
            side.show_prompts = !side.show_prompts;
            side.scroll = 0;
        }
        KeyCode::PageDown | KeyCode::Char(' ') => side.scroll = side.scroll.saturating_add(page),
        KeyCode::PageUp => side.scroll = side.scroll.saturating_sub(page),
        KeyCode::Home => side.scroll = 0,
        KeyCode::Char('d') => {
            // Every pair of the shown panes in turn: (0,1), (0,2), …, (1,2), …
            let (a, b) = side.diff;
            side.diff = if b + 1 < panes {
                (a, b + 1)
            } else if a + 2 < panes {
                (a + 1, a + 2)
            } else {
                (0, 1)
            };
        }
        KeyCode::Esc => {
            if let Some(row) = app.results.rows.iter().position(|&c| c == side.case) {
                app.results.selected = row;
            }
            app.screen = Screen::Results;
        }
        _ => {}
    }
    if side.case != case_before {
        side.scroll = 0;
    }
    Vec::new()
}

pub fn draw(app: &App, area: Rect, buf: &mut Buffer) {
    let Some(matrix) = &app.matrix else {
        Paragraph::new("No run open. Open one from the results (4) or history (7) screen.")
            .block(Block::bordered().title(" Side by side "))
            .render(area, buf);
        return;
    };
    let side = &app.side;
    let Some(case) = matrix.cases.get(side.case) else {
        return;
    };
    let columns: Vec<usize> = (side.first_column..matrix.columns.len())
        .take(MAX_PANES)
        .collect();
    let [header_area, panes_area] =
        Layout::vertical([Constraint::Length(4), Constraint::Min(0)]).areas(area);
    let mut header = vec![Span::styled(
        if case.label.is_empty() {
            format!("case {}", case.id)
        } else {
            format!("case {} · {}", case.id, case.label)
        },
        Style::new().bold(),
    )];
    if !case.tags.is_empty() {
        header.push(Span::raw(format!("  tags: {}", case.tags.join(", "))).dim());
    }
    if case.picture.is_some() {
        header.push(
            Span::raw(format!(
                "  picture ({}): expected boxes green, found red",
                app.pictures.protocol_name()
            ))
            .dim(),
        );
    }
    let prompt_hint = matrix
        .cell(side.case, side.first_column)
        .map(|c| prompt_summary(&c.prompt_json))
        .unwrap_or_default();
    Paragraph::new(vec![Line::from(header), Line::from(prompt_hint).dim()])
        .block(Block::bordered().title(format!(
            " Side by side · {} of {} columns · {} · ←/→ case · n: next failing · p: {} · d: diff pair · PgDn/PgUp: scroll · Tab: columns · Esc: back ",
            columns.len(),
            matrix.columns.len(),
            if side.show_prompts { "prompts" } else { "outputs" },
            if side.show_prompts { "outputs" } else { "prompts" },
        )))
        .render(header_area, buf);
    if columns.is_empty() {
        return;
    }
    let panes = Layout::horizontal(vec![
        Constraint::Ratio(1, columns.len() as u32);
        columns.len()
    ])
    .split(panes_area);
    let output = |pane: usize| {
        columns
            .get(pane)
            .and_then(|&c| matrix.cell(side.case, c))
            .map(|c| {
                if side.show_prompts {
                    prompt_text(&c.prompt_json)
                } else {
                    c.output.clone()
                }
            })
    };
    let diff = match (output(side.diff.0), output(side.diff.1)) {
        (Some(a), Some(b)) => Some(word_diff(&a, &b)),
        _ => None,
    };
    for (pane, (&column, &pane_area)) in columns.iter().zip(panes.iter()).enumerate() {
        let mut lines: Vec<Line> = Vec::new();
        let title = format!(" {} ", matrix.columns[column]);
        match matrix.cell(side.case, column) {
            None => {
                lines.push(Line::from("not run (the run was interrupted before this cell)").dim())
            }
            Some(cell) => {
                let verdict = if cell.passed {
                    Span::styled(format!("✓ pass {:.2}", cell.score), pass_style())
                } else {
                    Span::styled(format!("✗ fail {:.2}", cell.score), fail_style())
                };
                lines.push(Line::from(vec![
                    verdict,
                    Span::raw(format!(
                        "  {:.0} ms · {}+{} tok{}",
                        cell.latency_ms,
                        cell.prompt_tokens,
                        cell.completion_tokens,
                        if cell.cached { " · cached" } else { "" }
                    ))
                    .dim(),
                ]));
                lines.push(Line::raw(""));
                let role = if pane == side.diff.0 {
                    Some(WordChange::Removed)
                } else if pane == side.diff.1 {
                    Some(WordChange::Added)
                } else {
                    None
                };
                let shown = if side.show_prompts {
                    prompt_text(&cell.prompt_json)
                } else {
                    cell.output.clone()
                };
                match (&diff, role) {
                    (Some(parts), Some(role)) => lines.extend(diff_lines(parts, role)),
                    _ => lines.extend(shown.lines().map(|l| Line::raw(l.to_string()))),
                }
                if let Some(error) = cell.error.as_ref().filter(|_| !side.show_prompts) {
                    lines.push(Line::styled(format!("engine error: {error}"), fail_style()));
                }
                lines.push(Line::raw(""));
                let assertions = if side.show_prompts {
                    Vec::new()
                } else {
                    results::assertions(cell)
                };
                for outcome in assertions {
                    let mark = if outcome.passed {
                        Span::styled("✓ ", pass_style())
                    } else {
                        Span::styled("✗ ", fail_style())
                    };
                    let mut line = vec![mark, Span::raw(outcome.assertion.clone())];
                    if let Some(reason) = outcome.reason {
                        line.push(Span::raw(format!(": {reason}")).dim());
                    }
                    lines.push(Line::from(line));
                }
            }
        }
        let marker = if pane == side.diff.0 {
            " [diff −] "
        } else if pane == side.diff.1 {
            " [diff +] "
        } else {
            ""
        };
        let block = Block::bordered().title(title).title_bottom(marker);
        let mut text_area = block.inner(pane_area);
        block.render(pane_area, buf);
        // A vision case shows its picture above each column's output: the expected boxes
        // and the ones this column found.
        if let Some(path) = case.picture.as_ref().filter(|_| !side.show_prompts) {
            let height = (text_area.height / 2).clamp(1, 16);
            if text_area.height > 6 {
                let [picture_area, rest] =
                    Layout::vertical([Constraint::Length(height), Constraint::Min(0)])
                        .areas(text_area);
                let found = matrix
                    .cell(side.case, column)
                    .map(|cell| cell.output.as_str());
                if app
                    .pictures
                    .draw(path, case.expected.as_ref(), found, picture_area, buf)
                {
                    text_area = rest;
                }
            }
        }
        Paragraph::new(Text::from(lines))
            .wrap(Wrap { trim: false })
            .scroll((side.scroll, 0))
            .render(text_area, buf);
    }
}

/// The words of one side of a diff: common words plain, this side's own words marked.
fn diff_lines(parts: &[(WordChange, String)], side: WordChange) -> Vec<Line<'static>> {
    let style = match side {
        WordChange::Removed => Style::new().fg(Color::Red).add_modifier(Modifier::REVERSED),
        _ => Style::new()
            .fg(Color::Green)
            .add_modifier(Modifier::REVERSED),
    };
    super::view::styled_lines(
        parts
            .iter()
            .filter(|(kind, _)| *kind == WordChange::Same || *kind == side)
            .map(|(kind, text)| {
                let run_style = if *kind == WordChange::Same {
                    Style::new()
                } else {
                    style
                };
                (run_style, text.as_str())
            }),
    )
}

/// A stored prompt in full: each chat message under its role, or the completion text.
fn prompt_text(prompt_json: &str) -> String {
    match serde_json::from_str::<promptlab::prompt::RenderedPrompt>(prompt_json) {
        Ok(
            promptlab::prompt::RenderedPrompt::Chat(messages)
            | promptlab::prompt::RenderedPrompt::Promptfoo { messages, .. },
        ) => messages
            .iter()
            .map(|m| format!("[{}]\n{}", m.role, m.content))
            .collect::<Vec<_>>()
            .join("\n\n"),
        Ok(promptlab::prompt::RenderedPrompt::Completion(text)) => text,
        Err(_) => format!("(the stored prompt does not read: {prompt_json})"),
    }
}

/// The last user message (or the completion text) of a stored prompt, on one line.
fn prompt_summary(prompt_json: &str) -> String {
    let Ok(prompt) = serde_json::from_str::<promptlab::prompt::RenderedPrompt>(prompt_json) else {
        return String::new();
    };
    let text = match prompt {
        promptlab::prompt::RenderedPrompt::Chat(messages)
        | promptlab::prompt::RenderedPrompt::Promptfoo { messages, .. } => messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map(|m| m.content.clone())
            .unwrap_or_default(),
        // Completion prompts end with what varies (few-shot examples come first).
        promptlab::prompt::RenderedPrompt::Completion(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(2)..].join(" ")
        }
    };
    format!(
        "prompt: {}",
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    )
}
