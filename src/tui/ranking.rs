//! The results screen's ranking view (`p`): the judge's pairwise comparison of the run's
//! columns, a Bradley–Terry ranking with 95% intervals drawn as bars on one scale, and the
//! win/tie/loss table of every pair.

use promptlab::results::RunMatrix;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Row, Table, Widget, Wrap};

use super::view::truncate;

/// Widest interval bar.
const MAX_BAR: usize = 24;

pub fn draw(matrix: &RunMatrix, area: Rect, buf: &mut Buffer) {
    let block = Block::bordered()
        .title(format!(" Run {} · pairwise ranking ", matrix.run.id))
        .title_bottom(Line::from(" p: back to the matrix ").dim());
    let inner = block.inner(area);
    block.render(area, buf);
    let Some(report) = &matrix.pairwise else {
        Paragraph::new(format!(
            "This run has no pairwise ranking. Have a judge compare its columns with:\n\n  promptlab eval {} --pairwise --judge MODEL",
            matrix.run.eval_set_path
        ))
        .wrap(Wrap { trim: false })
        .render(inner, buf);
        return;
    };
    let [header, ranking_area, tally_area] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(report.ranking.len() as u16 + 2),
        Constraint::Min(0),
    ])
    .areas(inner);
    Paragraph::new(vec![
        Line::from(format!(
            "Judge {} · {} comparisons, each judged in both orders",
            report.judge,
            report.outcomes.len(),
        )),
        Line::from(format!(
            "{} order disagreements counted as ties{}",
            report.order_disagreements,
            if report.errors > 0 {
                format!(" · {} judge errors", report.errors)
            } else {
                String::new()
            }
        )),
        Line::from(format!("Criterion: {}", report.criterion)).dim(),
    ])
    .render(header, buf);

    // One scale for every interval, so overlaps are visible at a glance.
    let low = report
        .ranking
        .iter()
        .map(|r| r.interval.0)
        .fold(f64::INFINITY, f64::min);
    let high = report
        .ranking
        .iter()
        .map(|r| r.interval.1)
        .fold(f64::NEG_INFINITY, f64::max);
    let span = (high - low).max(1e-9);
    let name_width = report
        .ranking
        .iter()
        .map(|r| r.column_id.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(12, 40);
    // The bar takes what the other columns leave.
    let bar_width = usize::from(inner.width)
        .saturating_sub(3 + name_width + 8 + 16 + 12 + 5)
        .clamp(8, MAX_BAR);
    let at = |v: f64| (((v - low) / span) * (bar_width - 1) as f64).round() as usize;
    let rows: Vec<Row> = report
        .ranking
        .iter()
        .enumerate()
        .map(|(rank, r)| {
            let (from, to, mid) = (at(r.interval.0), at(r.interval.1), at(r.strength));
            let bar: String = (0..bar_width)
                .map(|i| match i {
                    i if i == mid => '●',
                    i if i >= from && i <= to => '─',
                    _ => ' ',
                })
                .collect();
            let style = if rank == 0 {
                Style::new().fg(Color::Green)
            } else {
                Style::new()
            };
            Row::new(vec![
                Line::from(format!("{}.", rank + 1)),
                Line::from(truncate(&r.column_id, name_width)),
                Line::from(format!("{:+.2}", r.strength)),
                Line::from(format!("[{:+.2}, {:+.2}]", r.interval.0, r.interval.1)),
                Line::from(Span::styled(bar, style)),
                Line::from(format!("{:.0}%", r.win_probability * 100.0)),
            ])
        })
        .collect();
    let header_row = Row::new(vec![
        "#",
        "column",
        "strength",
        "95% interval",
        "",
        "P(beats avg)",
    ])
    .bold();
    Table::new(
        rows,
        [
            Constraint::Length(3),
            Constraint::Length(name_width as u16),
            Constraint::Length(8),
            Constraint::Length(16),
            Constraint::Length(bar_width as u16),
            Constraint::Length(12),
        ],
    )
    .header(header_row)
    .column_spacing(1)
    .render(ranking_area, buf);

    let pair_width = (usize::from(inner.width).saturating_sub(7 + 5 + 7 + 4) / 2).clamp(10, 32);
    let tallies: Vec<Row> = report
        .tallies
        .iter()
        .map(|t| {
            let name = |i: usize| {
                truncate(
                    matrix.columns.get(i).map_or("?", String::as_str),
                    pair_width,
                )
            };
            Row::new(vec![
                name(t.a),
                name(t.b),
                t.wins_a.to_string(),
                t.ties.to_string(),
                t.wins_b.to_string(),
            ])
        })
        .collect();
    Table::new(
        tallies,
        [
            Constraint::Length(pair_width as u16),
            Constraint::Length(pair_width as u16),
            Constraint::Length(7),
            Constraint::Length(5),
            Constraint::Length(7),
        ],
    )
    .header(Row::new(vec!["A", "B", "A wins", "ties", "B wins"]).bold())
    .column_spacing(1)
    .render(tally_area, buf);
}
