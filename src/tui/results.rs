//! Results matrix: cases down, prompt × model columns across, each cell pass/fail and
//! score in colour, pass rates at the top. Filters (failures, disagreements, a tag) and
//! orderings (score, latency) narrow a large run to the cases worth reading. Only the
//! visible rows are built, so a run of thousands of cases draws as fast as one of ten.

use crossterm::event::{KeyCode, KeyEvent};
use promptlab::results::{RowFilter, RowOrder, RunMatrix};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Row, Table, Widget};

use super::app::{App, Effect, Screen, move_selection};
use super::view::{fail_style, pass_style, selected_style, truncate};

const CASE_WIDTH: u16 = 16;
/// Cells are as wide as the longest column name, within these bounds.
const MIN_CELL_WIDTH: u16 = 12;
const MAX_CELL_WIDTH: u16 = 32;

#[derive(Debug, Default)]
pub struct ResultsState {
    pub filter: RowFilter,
    pub order: RowOrder,
    /// Case indices shown, after filter and order.
    pub rows: Vec<usize>,
    pub selected: usize,
    pub first_column: usize,
    /// Show the judge's pairwise ranking instead of the matrix.
    pub show_ranking: bool,
}

impl ResultsState {
    pub fn refresh(&mut self, matrix: Option<&RunMatrix>) {
        let selected_case = self.rows.get(self.selected).copied();
        self.rows = matrix
            .map(|m| m.rows(&self.filter, self.order))
            .unwrap_or_default();
        self.selected = selected_case
            .and_then(|case| self.rows.iter().position(|&r| r == case))
            .unwrap_or(0);
    }

    pub fn selected_case(&self) -> Option<usize> {
        self.rows.get(self.selected).copied()
    }
}

fn filter_label(filter: &RowFilter) -> String {
    match filter {
        RowFilter::All => "all cases".into(),
        RowFilter::Failures => "failures".into(),
        RowFilter::Disagreements => "columns disagree".into(),
        RowFilter::Tag(tag) => format!("tag {tag}"),
    }
}

fn order_label(order: RowOrder) -> &'static str {
    match order {
        RowOrder::Case => "case order",
        RowOrder::Score => "lowest score first",
        RowOrder::Latency => "slowest first",
    }
}

pub fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    let Some(matrix) = app.matrix.as_ref() else {
        return Vec::new();
    };
    let results = &mut app.results;
    let page = usize::from(app.size.1.saturating_sub(8));
    match key.code {
        KeyCode::Char('f') => {
            let tags = matrix.tags();
            results.filter = match &results.filter {
                RowFilter::All => RowFilter::Failures,
                RowFilter::Failures => RowFilter::Disagreements,
                RowFilter::Disagreements => match tags.first() {
                    Some(tag) => RowFilter::Tag(tag.clone()),
                    None => RowFilter::All,
                },
                RowFilter::Tag(tag) => match tags.iter().position(|t| t == tag) {
                    Some(i) if i + 1 < tags.len() => RowFilter::Tag(tags[i + 1].clone()),
                    _ => RowFilter::All,
                },
            };
            results.refresh(Some(matrix));
        }
        KeyCode::Char('p') => results.show_ranking = !results.show_ranking,
        KeyCode::Char('s') => {
            results.order = match results.order {
                RowOrder::Case => RowOrder::Score,
                RowOrder::Score => RowOrder::Latency,
                RowOrder::Latency => RowOrder::Case,
            };
            results.refresh(Some(matrix));
        }
        KeyCode::Left | KeyCode::Char('h') => {
            results.first_column = results.first_column.saturating_sub(1)
        }
        KeyCode::Right | KeyCode::Char('l') => {
            if results.first_column + 1 < matrix.columns.len() {
                results.first_column += 1;
            }
        }
        KeyCode::Char('n') => {
            let len = results.rows.len();
            if let Some(next) = (1..=len)
                .map(|step| (results.selected + step) % len.max(1))
                .find(|&i| matrix.has_failure(results.rows[i]))
            {
                results.selected = next;
            }
        }
        KeyCode::Enter => {
            if let Some(case) = results.selected_case() {
                app.side.show_case(case, results.first_column);
                app.screen = Screen::SideBySide;
            }
        }
        code => results.selected = move_selection(results.selected, results.rows.len(), code, page),
    }
    Vec::new()
}

pub fn click(app: &mut App, row: usize) -> Vec<Effect> {
    // Two header lines (pass rates, column names) precede the cases.
    let Some(index) = row.checked_sub(2) else {
        return Vec::new();
    };
    let offset = window_start(app.results.selected, visible_rows(app.size.1));
    if offset + index < app.results.rows.len() {
        app.results.selected = offset + index;
    }
    Vec::new()
}

/// Case rows that fit on screen at terminal height `height`.
fn visible_rows(height: u16) -> usize {
    // Tabs, status bar, two borders, two header lines and the footer line.
    usize::from(height.saturating_sub(7)).max(1)
}

fn window_start(selected: usize, visible: usize) -> usize {
    (selected + 1).saturating_sub(visible)
}

pub fn draw(app: &App, area: Rect, buf: &mut Buffer) {
    let Some(matrix) = &app.matrix else {
        Paragraph::new(
            "No run open. Start one on the run screen (3) or open one from the history (7).",
        )
        .block(Block::bordered().title(" Results "))
        .render(area, buf);
        return;
    };
    let results = &app.results;
    if results.show_ranking {
        super::ranking::draw(matrix, area, buf);
        return;
    }
    let run = &matrix.run;
    let title = format!(
        " Run {} · {} · {} · {}/{} cells ",
        run.id, run.eval_set, run.status, run.cells_done, run.cell_count
    );
    let block = Block::bordered().title(title).title_bottom(
        Line::from(format!(
            " {} of {} cases · {} · {} ",
            results.rows.len(),
            matrix.cases.len(),
            filter_label(&results.filter),
            order_label(results.order),
        ))
        .dim(),
    );
    let inner = block.inner(area);
    block.render(area, buf);

    let longest = matrix
        .columns
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(0);
    let cell_width = u16::try_from(longest)
        .unwrap_or(MAX_CELL_WIDTH)
        .clamp(MIN_CELL_WIDTH, MAX_CELL_WIDTH);
    let fits = usize::from(inner.width.saturating_sub(CASE_WIDTH) / (cell_width + 1)).max(1);
    let columns: Vec<usize> = (results.first_column..matrix.columns.len())
        .take(fits)
        .collect();
    let mut widths = vec![Constraint::Length(CASE_WIDTH)];
    widths.extend(columns.iter().map(|_| Constraint::Length(cell_width)));

    let [header_area, table_area] =
        Layout::vertical([Constraint::Length(2), Constraint::Min(0)]).areas(inner);
    let rates = Row::new(std::iter::once(Line::from("pass rate").bold()).chain(
        columns.iter().map(|&c| {
            let stats = matrix.column_stats(c);
            match stats.pass_rate() {
                Some(rate) => Line::styled(
                    format!(
                        "{:.0}% {}/{} {}",
                        rate * 100.0,
                        stats.passed,
                        stats.recorded,
                        interval(stats.passed, stats.recorded)
                    ),
                    if stats.passed == stats.recorded {
                        pass_style()
                    } else {
                        fail_style()
                    },
                ),
                None => Line::from("—"),
            }
        }),
    ));
    let names =
        Row::new(
            std::iter::once(Line::from("case").bold()).chain(columns.iter().map(|&c| {
                Line::from(truncate(&matrix.columns[c], usize::from(cell_width))).bold()
            })),
        );
    Table::new(vec![rates, names], widths.clone())
        .column_spacing(1)
        .render(header_area, buf);

    let visible = usize::from(table_area.height).max(1);
    let start = window_start(results.selected, visible);
    let rows: Vec<Row> = results
        .rows
        .iter()
        .enumerate()
        .skip(start)
        .take(visible)
        .map(|(position, &case)| {
            let case_info = &matrix.cases[case];
            let name = if case_info.label.is_empty() {
                case_info.id.clone()
            } else {
                format!("{} {}", case_info.id, case_info.label)
            };
            let mut cells = vec![Line::from(truncate(&name, usize::from(CASE_WIDTH)))];
            for &column in &columns {
                cells.push(match matrix.cell(case, column) {
                    None => Line::styled("·", Style::new().fg(Color::DarkGray)),
                    Some(cell) => {
                        let judge_error = serde_json::from_str::<
                            Vec<promptlab::score::assertion::AssertionOutcome>,
                        >(&cell.assertions_json)
                        .is_ok_and(|a| a.iter().any(|o| o.judge_error.is_some()));
                        let mark = if cell.error.is_some() || judge_error {
                            "E"
                        } else if cell.passed {
                            "✓"
                        } else {
                            "✗"
                        };
                        let cached = if cell.cached { " c" } else { "" };
                        Line::from(vec![Span::styled(
                            format!("{mark} {:.2}{cached}", cell.score),
                            if cell.passed {
                                pass_style()
                            } else {
                                fail_style()
                            },
                        )])
                    }
                });
            }
            let row = Row::new(cells);
            if position == results.selected {
                row.style(selected_style())
            } else {
                row
            }
        })
        .collect();
    Table::new(rows, widths)
        .column_spacing(1)
        .render(table_area, buf);
}

/// `[55–95]`: the 95% Wilson interval of a pass rate, in whole percent.
pub fn interval(passed: usize, n: usize) -> String {
    promptlab::score::stats::wilson_interval(passed, n)
        .map(|(low, high)| format!("[{:.0}–{:.0}]", low * 100.0, high * 100.0))
        .unwrap_or_default()
}
