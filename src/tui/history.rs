//! History: every run in the run store, newest first. Enter opens one in the results
//! screen; two marked runs (or a run and the last earlier run of its eval set that asked
//! something else: another prompt, model or parameter, not a cached copy of itself) are
//! compared as `promptlab runs compare` does, regressions, fixes and changed outputs
//! shown with their word diffs.

use crossterm::event::{KeyCode, KeyEvent};
use promptlab::compare::{CaseChange, Comparison, WordChange, compact_diff};
use promptlab::store::{RunRow, RunStatus};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Stylize;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Paragraph, Row, StatefulWidget, Table, TableState, Widget, Wrap};

use super::app::{App, Effect, RunRequest, Screen, move_selection};
use super::view::{fail_style, pass_style, selected_style};

#[derive(Debug, Default)]
pub struct HistoryState {
    pub runs: Vec<RunRow>,
    pub selected: usize,
    /// Run ids marked for comparison (at most two).
    pub marked: Vec<i64>,
    pub comparison: Option<(i64, i64, Comparison)>,
    /// The label being typed, and the run it is for.
    pub label_input: Option<(i64, String)>,
}

impl HistoryState {
    pub fn set_runs(&mut self, runs: Vec<RunRow>) {
        self.selected = self.selected.min(runs.len().saturating_sub(1));
        self.marked.retain(|id| runs.iter().any(|r| r.id == *id));
        self.runs = runs;
    }

    /// The runs to compare: the two marked ones, else the selected run against the last
    /// earlier run of the same eval set whose configuration differs (a cached re-run has
    /// the same digest and would compare as "no case changed"). Older first.
    fn pair(&self) -> Option<(i64, i64)> {
        if let [a, b] = self.marked[..] {
            return Some((a.min(b), a.max(b)));
        }
        let run = self.runs.get(self.selected)?;
        let previous = self
            .runs
            .iter()
            .filter(|r| {
                r.eval_set_path == run.eval_set_path
                    && r.id < run.id
                    && r.config_digest.is_some()
                    && (run.config_digest.is_none() || r.config_digest != run.config_digest)
            })
            .map(|r| r.id)
            .max()?;
        Some((previous, run.id))
    }
}

pub fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    let page = usize::from(app.size.1.saturating_sub(8));
    let history = &mut app.history;
    if let Some((run, text)) = &mut history.label_input {
        match key.code {
            KeyCode::Enter => {
                let label = Some(text.trim().to_string()).filter(|l| !l.is_empty());
                let run = *run;
                history.label_input = None;
                return vec![Effect::SetLabel { run, label }];
            }
            KeyCode::Esc => history.label_input = None,
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Char(c) => text.push(c),
            _ => {}
        }
        return Vec::new();
    }
    match key.code {
        KeyCode::Enter => {
            if let Some(run) = history.runs.get(history.selected) {
                return vec![Effect::LoadRun(run.id)];
            }
        }
        KeyCode::Char(' ') => {
            if let Some(run) = history.runs.get(history.selected) {
                if let Some(at) = history.marked.iter().position(|&id| id == run.id) {
                    history.marked.remove(at);
                } else {
                    history.marked.push(run.id);
                    if history.marked.len() > 2 {
                        history.marked.remove(0);
                    }
                }
            }
        }
        KeyCode::Char('c') => match history.pair() {
            Some((a, b)) => return vec![Effect::Compare(a, b)],
            None => {
                app.message = Some(
                    "no earlier run of this eval set with other prompts, models or parameters; mark two runs with Space to compare any two"
                        .into(),
                )
            }
        },
        KeyCode::Char('r') => return vec![Effect::ListRuns],
        KeyCode::Char('R') => return resume(app),
        KeyCode::Char('l') => {
            if let Some(run) = history.runs.get(history.selected) {
                history.label_input = Some((run.id, run.label.clone().unwrap_or_default()));
            }
        }
        KeyCode::Esc => history.comparison = None,
        code => history.selected = move_selection(history.selected, history.runs.len(), code, page),
    }
    Vec::new()
}

/// Resumes the selected run on the run screen, when it stopped before all its cells.
fn resume(app: &mut App) -> Vec<Effect> {
    let Some(run) = app.history.runs.get(app.history.selected) else {
        return Vec::new();
    };
    if run.status == RunStatus::Finished || run.cells_done >= run.cell_count {
        app.message = Some(format!("run {} is complete: nothing to resume", run.id));
        return Vec::new();
    }
    if app.run_active() {
        app.message = Some("a run is already going; c on the run screen cancels it".into());
        return Vec::new();
    }
    let path = std::path::PathBuf::from(&run.eval_set_path);
    let request = RunRequest {
        agent: promptlab::evalset::is_agent_set(&path),
        eval_set: path,
        prompts: Vec::new(),
        models: Vec::new(),
        resume: Some(run.id),
    };
    app.run.active = None;
    let mut effects = app.open(Screen::Run);
    effects.push(Effect::StartRun(request));
    effects
}

pub fn click(app: &mut App, row: usize) -> Vec<Effect> {
    // The table's header line comes first.
    if let Some(index) = row.checked_sub(1)
        && index < app.history.runs.len()
    {
        app.history.selected = index;
    }
    Vec::new()
}

pub fn draw(app: &App, area: Rect, buf: &mut Buffer) {
    let history = &app.history;
    let split = if history.comparison.is_some() {
        40
    } else {
        100
    };
    let [list_area, compare_area] = Layout::vertical([
        Constraint::Percentage(split),
        Constraint::Percentage(100 - split),
    ])
    .areas(area);
    let header = Row::new([
        "", "run", "started", "eval set", "status", "cells", "passed", "label", "columns",
    ])
    .bold();
    let rows: Vec<Row> = history
        .runs
        .iter()
        .map(|run| {
            let mark = if history.marked.contains(&run.id) {
                "●"
            } else {
                " "
            };
            let rate = if run.cells_done > 0 {
                format!(
                    "{:.0}% {}",
                    100.0 * run.passed as f64 / run.cells_done as f64,
                    super::results::interval(run.passed, run.cells_done)
                )
            } else {
                "—".into()
            };
            Row::new(vec![
                mark.to_string(),
                run.id.to_string(),
                run.started_at.replace('T', " ").chars().take(19).collect(),
                run.eval_set.clone(),
                run.status.to_string(),
                if run.cached > 0 {
                    format!("{}/{} {}c", run.cells_done, run.cell_count, run.cached)
                } else {
                    format!("{}/{}", run.cells_done, run.cell_count)
                },
                rate,
                run.label.clone().unwrap_or_default(),
                run.columns.join(", "),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(1),
        Constraint::Length(4),
        Constraint::Length(19),
        Constraint::Fill(1),
        Constraint::Length(9),
        // "90/90 45c": cells done, of them from the cache.
        Constraint::Length(11),
        // "62% [45–78]": the rate and its 95% interval.
        Constraint::Length(13),
        Constraint::Fill(1),
        Constraint::Fill(2),
    ];
    let mut state = TableState::default().with_selected(Some(history.selected));
    let empty = history.runs.is_empty();
    StatefulWidget::render(
        Table::new(rows, widths)
            .header(header)
            .row_highlight_style(selected_style())
            .block(
                Block::bordered()
                    .title(" Runs ")
                    .title_bottom(match &history.label_input {
                        Some((run, text)) => Line::from(vec![
                            Span::raw(format!(" label for run {run}: ")),
                            Span::raw(format!("{text}▏")).bold(),
                            Span::raw(" · Enter: save · Esc: cancel ").dim(),
                        ]),
                        None => Line::from(if empty {
                            " no runs yet: start one on the run screen (3) "
                        } else {
                            " c compares the two marked runs, or the selected run with the last run of another configuration "
                        })
                        .dim(),
                    }),
            ),
        list_area,
        buf,
        &mut state,
    );
    if let Some((a, b, comparison)) = &history.comparison {
        draw_comparison(*a, *b, comparison, compare_area, buf);
    }
}

fn draw_comparison(a: i64, b: i64, comparison: &Comparison, area: Rect, buf: &mut Buffer) {
    let mut lines: Vec<Line> = Vec::new();
    for column in &comparison.columns {
        let delta = (column.pass_rate_b - column.pass_rate_a) * 100.0;
        let style = if delta > 0.0 {
            pass_style()
        } else if delta < 0.0 {
            fail_style()
        } else {
            ratatui::style::Style::new()
        };
        lines.push(Line::from(vec![
            Span::raw(format!("{:<40}", column.column)),
            Span::raw(format!(
                " {:>5.1}% → {:>5.1}% ",
                column.pass_rate_a * 100.0,
                column.pass_rate_b * 100.0
            )),
            Span::styled(format!("{delta:+.1} pts"), style),
            Span::raw(format!(
                "  score {:.2} → {:.2}  ({} shared cases)",
                column.mean_score_a, column.mean_score_b, column.shared
            ))
            .dim(),
        ]));
        lines.push(Line::from(format!("  {}", column.verdict())).dim());
    }
    lines.push(Line::raw(""));
    let sections = [
        (
            "regressions (passed in run {a}, fail in run {b})",
            &comparison.regressions,
            fail_style(),
        ),
        (
            "fixes (failed in run {a}, pass in run {b})",
            &comparison.fixes,
            pass_style(),
        ),
        (
            "outputs changed, same verdict",
            &comparison.changed_outputs,
            ratatui::style::Style::new().bold(),
        ),
    ];
    for (heading, changes, style) in sections {
        let heading = heading
            .replace("{a}", &a.to_string())
            .replace("{b}", &b.to_string());
        lines.push(Line::styled(format!("{} {heading}", changes.len()), style));
        for change in changes {
            lines.push(diff_line(change));
        }
    }
    Paragraph::new(Text::from(lines))
        .wrap(Wrap { trim: false })
        .block(Block::bordered().title(format!(" Run {a} → run {b} · Esc: close ")))
        .render(area, buf);
}

/// The case, then its outputs' word diff as `runs compare` prints it: run A's own words
/// in red within `[-…-]`, run B's in green within `{+…+}` (the markers keep it readable
/// without colour).
fn diff_line(change: &CaseChange) -> Line<'static> {
    let mut spans = vec![Span::raw(format!(
        "  {} · {}: ",
        change.column,
        change.name()
    ))];
    for (kind, text) in compact_diff(&change.output_a, &change.output_b) {
        let (open, close, style) = match kind {
            WordChange::Same => {
                spans.push(Span::raw(text));
                continue;
            }
            WordChange::Removed => ("[-", "-]", fail_style()),
            WordChange::Added => ("{+", "+}", pass_style().bold()),
        };
        if text.starts_with(' ') {
            spans.push(Span::raw(" "));
        }
        spans.push(Span::styled(format!("{open}{}{close}", text.trim()), style));
        if text.ends_with(' ') {
            spans.push(Span::raw(" "));
        }
    }
    Line::from(spans)
}
