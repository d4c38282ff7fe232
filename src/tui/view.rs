//! Drawing: a pure function of [`App`]. The tab bar, the current screen, the status bar
//! and any overlay (help, error, quit confirmation).

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Row, Table, Widget, Wrap};

use super::app::{App, Popup, Screen};
use super::{
    agent, charts, editor, help, history, library, optimize, playground, results, run_screen, side,
};

pub fn pass_style() -> Style {
    Style::new().fg(Color::Green)
}

pub fn fail_style() -> Style {
    Style::new().fg(Color::Red)
}

pub fn error_style() -> Style {
    Style::new().fg(Color::Red)
}

pub fn selected_style() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}

/// Styled runs of text as lines: a run's newlines start new lines (word diffs).
pub fn styled_lines<'a>(runs: impl IntoIterator<Item = (Style, &'a str)>) -> Vec<Line<'static>> {
    let mut lines: Vec<Line> = vec![Line::default()];
    for (style, text) in runs {
        for (i, piece) in text.split('\n').enumerate() {
            if i > 0 {
                lines.push(Line::default());
            }
            if !piece.is_empty()
                && let Some(line) = lines.last_mut()
            {
                line.spans.push(Span::styled(piece.to_string(), style));
            }
        }
    }
    lines
}

/// At most `width` characters, with `…` when cut.
pub fn truncate(text: &str, width: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    let cut = line != text;
    if line.chars().count() <= width && !cut {
        return line.to_string();
    }
    let kept: String = line.chars().take(width.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// Tabs are padded when the terminal is wide enough for it.
fn tab_label(screen: Screen, width: u16) -> String {
    if width >= 100 {
        format!(" {} {} ", screen.key(), screen.title())
    } else {
        format!("{} {}", screen.key(), screen.short_title())
    }
}

/// The screen whose tab covers column `x` of the tab bar, in a terminal `width` wide.
pub fn tab_at(x: u16, width: u16) -> Option<Screen> {
    let mut start = 0u16;
    for screen in Screen::ALL {
        let width = tab_label(screen, width).chars().count() as u16;
        if x >= start && x < start + width {
            return Some(screen);
        }
        start += width + 1;
    }
    None
}

pub fn draw(app: &App, frame: &mut Frame) {
    render(app, frame.area(), frame.buffer_mut());
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    if area.width < 20 || area.height < 5 {
        Paragraph::new("promptlab: enlarge the terminal")
            .wrap(Wrap { trim: true })
            .render(area, buf);
        return;
    }
    let [tabs_area, body, status_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);

    let mut tabs: Vec<Span> = Vec::new();
    for screen in Screen::ALL {
        let style = if screen == app.screen {
            Style::new().fg(Color::Black).bg(Color::Cyan).bold()
        } else {
            Style::new().fg(Color::Cyan)
        };
        tabs.push(Span::styled(tab_label(screen, area.width), style));
        tabs.push(Span::raw(" "));
    }
    Line::from(tabs).render(tabs_area, buf);

    match app.screen {
        Screen::Library => library::draw(app, body, buf),
        Screen::Editor => editor::draw(app, body, buf),
        Screen::Run => run_screen::draw(app, body, buf),
        Screen::Results => results::draw(app, body, buf),
        Screen::SideBySide => side::draw(app, body, buf),
        Screen::Playground => playground::draw(app, body, buf),
        Screen::History => history::draw(app, body, buf),
        Screen::Charts => charts::draw(app, body, buf),
        Screen::Agent => agent::draw(app, body, buf),
        Screen::Optimize => optimize::draw(app, body, buf),
    }
    status_bar(app, status_area, buf);

    if app.help {
        help_overlay(app, area, buf);
    }
    match &app.popup {
        None => {}
        Some(Popup::Error(message)) => popup(
            area,
            buf,
            " Error ",
            &format!("{}\n\nEnter or Esc closes this.", app.shorten(message)),
            Color::Red,
        ),
        Some(Popup::DiscardEdits(discard)) => {
            let what = match discard {
                super::app::Discard::Quit => "quit",
                super::app::Discard::OpenPrompt { .. } => "open the other prompt",
            };
            let file = app
                .editor
                .path
                .as_deref()
                .map(|p| app.relative(p))
                .unwrap_or_default();
            popup(
                area,
                buf,
                " Unsaved edits ",
                &format!(
                    "{file} has unsaved edits.\n\ny: discard them and {what} · any other key: stay (Ctrl-S saves)"
                ),
                Color::Yellow,
            )
        }
        Some(Popup::ConfirmQuit) => popup(
            area,
            buf,
            " Quit? ",
            "A run is active. Quit and cancel it? Finished cells are kept and the run can be resumed.\n\ny: quit · any other key: stay",
            Color::Yellow,
        ),
    }
}

fn status_bar(app: &App, area: Rect, buf: &mut Buffer) {
    let mut right: Vec<String> = Vec::new();
    if let Some(active) = &app.run.active {
        if !active.finished {
            right.push(format!("running {}/{}", active.done(), active.cells.len()));
        }
        if let Some(model) = &active.model {
            right.push(format!("model {model}"));
        }
        if let Some(runs_on) = &active.runs_on {
            right.push(format!("on {runs_on}"));
        }
    }
    if let Some(model) = &app.playground.loaded {
        right.push(format!("chat {model}"));
    }
    if let Some(bytes) = app.rss_bytes {
        right.push(format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0)));
    }
    // The mode, always in the same place: while typing, `q` and the digits are text.
    let mode = if app.typing() {
        Span::raw("TYPING · Esc stops").bold().fg(Color::Magenta)
    } else {
        Span::raw("? help · q quit").dim()
    };
    if !right.is_empty() {
        right.push(String::new());
    }
    let right = right.join(" · ");
    // A message while it is news; otherwise the screen's main keys.
    let left = match (&app.search.typing, &app.message) {
        (Some(query), _) => format!("/{query}▏ Enter: find · Esc: cancel"),
        (None, Some(message)) => message.clone(),
        (None, None) if app.typing() => String::new(),
        (None, None) => help::key_bar(app.screen.title()),
    };
    let news = app.search.typing.is_some() || app.message.is_some();
    let width = usize::from(area.width);
    let room = width.saturating_sub(right.chars().count() + mode.content.chars().count() + 1);
    let line = Line::from(vec![
        if news {
            Span::raw(format!("{:<room$}", truncate(&left, room))).fg(Color::Yellow)
        } else {
            Span::raw(format!("{:<room$}", truncate(&left, room))).fg(Color::Cyan)
        },
        Span::raw(" "),
        Span::raw(right).dim(),
        mode,
    ]);
    Paragraph::new(line)
        .style(Style::new().bg(Color::Reset))
        .render(area, buf);
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(row);
    cell
}

fn popup(area: Rect, buf: &mut Buffer, title: &str, text: &str, color: Color) {
    let width = area.width.saturating_sub(4).min(70);
    let lines = text.lines().count() as u16;
    let height = (lines + 4 + text.len() as u16 / width.max(1)).min(area.height);
    let rect = centered(area, width, height);
    Clear.render(rect, buf);
    Paragraph::new(text.to_string())
        .wrap(Wrap { trim: false })
        .block(
            Block::bordered()
                .title(title.to_string())
                .border_style(Style::new().fg(color)),
        )
        .render(rect, buf);
}

/// Where the help overlay goes in a screen of `area`, and how many bindings it shows.
fn help_rect(area: Rect) -> (Rect, usize) {
    let rect = centered(
        area,
        area.width.saturating_sub(4).min(96),
        area.height.saturating_sub(2),
    );
    // Borders and the header row take three lines.
    (rect, usize::from(rect.height.saturating_sub(3)).max(1))
}

/// The furthest the help overlay scrolls: its last page fills the overlay.
pub fn help_scroll_limit(app: &App) -> usize {
    let (_, visible) = help_rect(Rect::new(0, 0, app.size.0, app.size.1));
    help::KEYMAP.len().saturating_sub(visible)
}

fn help_overlay(app: &App, area: Rect, buf: &mut Buffer) {
    let (rect, visible) = help_rect(area);
    Clear.render(rect, buf);
    // This screen's keys first, then the global ones, then the rest (dimmed).
    let mut bindings: Vec<&help::Binding> = help::KEYMAP
        .iter()
        .filter(|b| b.screen == app.screen.title())
        .collect();
    bindings.extend(help::KEYMAP.iter().filter(|b| b.screen == "all"));
    bindings.extend(
        help::KEYMAP
            .iter()
            .filter(|b| b.screen != "all" && b.screen != app.screen.title()),
    );
    let total = bindings.len();
    let first = app.help_scroll.min(total.saturating_sub(visible));
    let rows: Vec<Row> = bindings
        .into_iter()
        .skip(first)
        .map(|binding| {
            let style = if binding.screen == "all" || binding.screen == app.screen.title() {
                Style::new()
            } else {
                Style::new().dim()
            };
            Row::new(vec![binding.screen, binding.keys, binding.action]).style(style)
        })
        .collect();
    Table::new(
        rows,
        [
            Constraint::Length(12),
            Constraint::Length(16),
            Constraint::Fill(1),
        ],
    )
    .header(Row::new(["screen", "keys", "action"]).bold())
    .block({
        let title = if total > visible {
            let last = (first + visible).min(total);
            format!(
                " Keys {}–{last} of {total} (↑ ↓ PgUp PgDn scroll, ? or Esc closes) ",
                first + 1
            )
        } else {
            " Keys (? or Esc closes) ".to_string()
        };
        Block::bordered()
            .title(title)
            .border_style(Style::new().fg(Color::Cyan))
    })
    .render(rect, buf);
}
