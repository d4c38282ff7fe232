//! Optimize: the prompt optimizations in the run store, watched as they run (started here
//! or by `promptlab optimize` in another terminal: the store is re-read every second while
//! one is running). The lineage tree with each candidate's tuning pass rate and interval,
//! what is happening now, and the selected candidate against the baseline as a word
//! diff. Enter opens the candidate's run in the results; `a` writes it into its prompt
//! file as a variant.

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent};
use promptlab::compare::{WordChange, word_diff};
use promptlab::optimize::Snapshot;
use promptlab::optimize::version::prompt_text;
use promptlab::score::stats::format_rate;
use promptlab::store::RunStatus;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Paragraph, Widget, Wrap};

use super::app::{App, Effect, move_selection};
use super::view::{fail_style, pass_style, selected_style, truncate};

/// How often a running optimization is read again.
const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct OptimizeState {
    /// Newest first.
    pub optimizations: Vec<Snapshot>,
    /// The optimization shown.
    pub selected: usize,
    /// The selected line of its lineage tree.
    pub line: usize,
    pub listed_at: Option<Instant>,
}

impl OptimizeState {
    pub fn set(&mut self, optimizations: Vec<Snapshot>, now: Instant) {
        // Keep the same optimization selected when a new one appears on top.
        let id = self.current().map(|s| s.id);
        self.optimizations = optimizations;
        self.selected = id
            .and_then(|id| self.optimizations.iter().position(|s| s.id == id))
            .unwrap_or(0);
        let lines = self.current().map_or(0, |s| s.tree().len());
        self.line = self.line.min(lines.saturating_sub(1));
        self.listed_at = Some(now);
    }

    pub fn current(&self) -> Option<&Snapshot> {
        self.optimizations.get(self.selected)
    }

    /// The selected candidate's number.
    pub fn candidate(&self) -> Option<usize> {
        let snapshot = self.current()?;
        snapshot.tree().get(self.line).map(|(number, _)| *number)
    }

    /// Time to read the store again: an optimization is running and a second passed.
    pub fn due(&self, now: Instant) -> bool {
        self.optimizations
            .iter()
            .any(|s| s.status == RunStatus::Running)
            && self
                .listed_at
                .is_none_or(|at| now.saturating_duration_since(at) >= POLL)
    }
}

pub fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    let page = usize::from(app.size.1.saturating_sub(10));
    let state = &mut app.optimize;
    match key.code {
        KeyCode::Char('r') => return vec![Effect::ListOptimizations],
        KeyCode::Left | KeyCode::Char('[') => {
            state.selected = state.selected.saturating_sub(1);
            state.line = 0;
        }
        KeyCode::Right | KeyCode::Char(']') => {
            state.selected = (state.selected + 1).min(state.optimizations.len().saturating_sub(1));
            state.line = 0;
        }
        KeyCode::Enter | KeyCode::Char('h') => {
            let Some(snapshot) = state.current() else {
                return Vec::new();
            };
            let number = state.candidate().unwrap_or(0);
            let run = if key.code == KeyCode::Enter {
                snapshot.candidates.get(number).and_then(|c| c.run_id)
            } else {
                snapshot.state.verdict.as_ref().and_then(|v| v.run_id)
            };
            match run {
                Some(run) => return vec![Effect::LoadRun(run)],
                None => {
                    app.message = Some(if key.code == KeyCode::Enter {
                        format!(
                            "candidate {number} has no run: it was refused or is not evaluated yet"
                        )
                    } else {
                        "the held-out part has not been evaluated yet".into()
                    })
                }
            }
        }
        KeyCode::Char('a') => {
            let Some((id, number)) = state
                .current()
                .zip(state.candidate())
                .map(|(s, n)| (s.id, n))
            else {
                return Vec::new();
            };
            return vec![Effect::AcceptCandidate {
                optimization: id,
                number,
            }];
        }
        code => {
            let lines = state.current().map_or(0, |s| s.tree().len());
            state.line = move_selection(state.line, lines, code, page);
        }
    }
    Vec::new()
}

pub fn draw(app: &App, area: Rect, buf: &mut Buffer) {
    let state = &app.optimize;
    let Some(snapshot) = state.current() else {
        Paragraph::new(
            "No optimizations in this project's run store yet.\n\nStart one with\n  promptlab optimize EVAL_SET --prompt NAME[:variant] --model MODEL --proposer MODEL --budget 2000\nand watch it here as it works (this screen reads the store every second).",
        )
        .wrap(Wrap { trim: false })
        .block(Block::bordered().title(" Optimize "))
        .render(area, buf);
        return;
    };
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(area);
    draw_tree(app, snapshot, left, buf);
    draw_detail(app, snapshot, right, buf);
}

fn draw_tree(app: &App, snapshot: &Snapshot, area: Rect, buf: &mut Buffer) {
    let state = &app.optimize;
    let winner = snapshot.state.verdict.as_ref().and_then(|v| v.winner);
    let width = usize::from(area.width.saturating_sub(2));
    let rows = usize::from(area.height.saturating_sub(2));
    let tree = snapshot.tree();
    let first = state.line.saturating_sub(rows.saturating_sub(1));
    let lines: Vec<Line> = tree
        .iter()
        .enumerate()
        .skip(first)
        .take(rows)
        .map(|(i, (number, depth))| {
            let c = &snapshot.candidates[*number];
            let indent = if *depth == 0 {
                String::new()
            } else {
                format!("{}└ ", "  ".repeat(depth - 1))
            };
            let (score, style) = match (&c.rejected, &c.tuning) {
                (Some(_), _) => ("refused".to_string(), fail_style()),
                (None, Some(s)) => (format_rate(s.passed, s.cases), Style::new()),
                (None, None) => ("…".to_string(), Style::new().fg(Color::Yellow)),
            };
            let star = if winner == Some(*number) { " ★" } else { "" };
            let text = format!(
                "{indent}{} {} r{}  {score}{star}",
                c.number, c.strategy, c.round
            );
            let line = Line::styled(truncate(&text, width), style);
            if i == state.line {
                line.style(selected_style())
            } else {
                line
            }
        })
        .collect();
    let title = format!(
        " Optimization {} ({} of {}) · {} · ←/→ other ",
        snapshot.id,
        state.selected + 1,
        state.optimizations.len(),
        snapshot.status
    );
    Paragraph::new(lines)
        .block(Block::bordered().title(title))
        .render(area, buf);
}

fn draw_detail(app: &App, snapshot: &Snapshot, area: Rect, buf: &mut Buffer) {
    let mut text = Text::default();
    let request = &snapshot.request;
    let split = &snapshot.state.split;
    text.lines.push(Line::from(vec![
        Span::raw(format!("{} on {}", snapshot.state.base.id, request.model)).bold(),
        Span::raw(format!(
            "{} · {} · {} tuning / {} held out · seed {}",
            request
                .proposer
                .as_ref()
                .map(|p| format!(", proposer {p}"))
                .unwrap_or_default(),
            snapshot.eval_set,
            split.tuning.len(),
            split.held_out.len(),
            request.seed
        )),
    ]));
    text.lines.push(Line::styled(
        snapshot.activity(),
        Style::new().fg(Color::Cyan),
    ));
    text.lines.push(Line::raw(""));
    if let Some(number) = app.optimize.candidate()
        && let Some(c) = snapshot.candidates.get(number)
    {
        let origin = c.parent.map(|p| format!(", from {p}")).unwrap_or_default();
        text.lines.push(Line::from(
            Span::raw(format!(
                "candidate {} · {}{origin} · round {}",
                c.number, c.strategy, c.round
            ))
            .bold(),
        ));
        if let Some(why) = &c.rejected {
            text.lines
                .push(Line::styled(format!("refused: {why}"), fail_style()));
        }
        if let Some(s) = &c.tuning {
            text.lines.push(Line::raw(format!(
                "tuning: {} · {} {:.3}",
                format_rate(s.passed, s.cases),
                request.objective.name(),
                s.objective
            )));
        }
        if let Some(verdict) = &snapshot.state.verdict {
            let held_out = if c.is_baseline() {
                Some(format_rate(verdict.baseline.passed, verdict.baseline.cases))
            } else {
                verdict.finalist(number).map(|f| {
                    format!(
                        "{} · {} fixed, {} regressed · McNemar p = {:.4} (Holm {:.4})",
                        format_rate(f.held_out.passed, f.held_out.cases),
                        f.only_candidate,
                        f.only_baseline,
                        f.p_value,
                        f.adjusted_p
                    )
                })
            };
            if let Some(line) = held_out {
                let style = if verdict.winner == Some(number) {
                    pass_style()
                } else {
                    Style::new()
                };
                text.lines
                    .push(Line::styled(format!("held out: {line}"), style));
            }
        }
        text.lines.push(Line::raw(""));
        if let Some(prompt) = snapshot.prompt_of(number) {
            let before = prompt_text(&snapshot.state.base);
            let after = prompt_text(&prompt);
            if c.is_baseline() {
                text.lines.push(Line::raw("the baseline:").italic());
                text.lines
                    .extend(after.lines().map(|l| Line::raw(l.to_string())));
            } else {
                text.lines
                    .push(Line::raw("against the baseline (red removed, green added):").italic());
                text.lines.extend(diff_lines(&before, &after));
            }
        }
    }
    Paragraph::new(text)
        .wrap(Wrap { trim: false })
        .block(Block::bordered().title(" Candidate · Enter its run · h held-out run · a accept "))
        .render(area, buf);
}

/// The word diff as lines: removed words red and struck, added words green.
fn diff_lines(before: &str, after: &str) -> Vec<Line<'static>> {
    let parts = word_diff(before, after);
    super::view::styled_lines(parts.iter().map(|(part, chunk)| {
        let style = match part {
            WordChange::Same => Style::new(),
            WordChange::Removed => fail_style().crossed_out(),
            WordChange::Added => pass_style().bold(),
        };
        (style, chunk.as_str())
    }))
}
