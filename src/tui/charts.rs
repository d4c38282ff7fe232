//! Charts of the open run: pass rate per prompt × model column as bars, and each
//! column's latency distribution as a histogram sparkline on a shared scale.

use crossterm::event::KeyEvent;
use promptlab::results::RunMatrix;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Bar, BarChart, BarGroup, Block, Paragraph, Sparkline, Widget};

use super::app::{App, Effect};
use super::view::truncate;

const BUCKETS: usize = 24;

pub fn on_key(_app: &mut App, _key: KeyEvent) -> Vec<Effect> {
    Vec::new()
}

/// Column letters (A, B, …) label the bars; the legend names them.
fn letter(index: usize) -> String {
    let mut n = index;
    let mut text = String::new();
    loop {
        text.insert(0, char::from(b'A' + (n % 26) as u8));
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    text
}

/// Latencies of each column bucketed on one scale from the fastest to the slowest cell.
pub fn latency_histograms(matrix: &RunMatrix) -> (f64, f64, Vec<Vec<u64>>) {
    let latencies: Vec<Vec<f64>> = (0..matrix.columns.len())
        .map(|column| {
            (0..matrix.cases.len())
                .filter_map(|case| matrix.cell(case, column))
                .filter(|cell| !cell.cached)
                .map(|cell| cell.latency_ms)
                .collect()
        })
        .collect();
    let all = latencies.iter().flatten();
    let low = all.clone().copied().fold(f64::INFINITY, f64::min);
    let high = all.copied().fold(f64::NEG_INFINITY, f64::max);
    if !low.is_finite() {
        return (0.0, 0.0, vec![Vec::new(); latencies.len()]);
    }
    let span = (high - low).max(1e-9);
    let histograms = latencies
        .iter()
        .map(|values| {
            let mut buckets = vec![0u64; BUCKETS];
            for v in values {
                let at = (((v - low) / span) * BUCKETS as f64) as usize;
                buckets[at.min(BUCKETS - 1)] += 1;
            }
            buckets
        })
        .collect();
    (low, high, histograms)
}

pub fn draw(app: &App, area: Rect, buf: &mut Buffer) {
    let Some(matrix) = &app.matrix else {
        Paragraph::new("No run open. Open one from the results (4) or history (7) screen.")
            .block(Block::bordered().title(" Charts "))
            .render(area, buf);
        return;
    };
    let [bars_area, latency_area] =
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    let [chart_area, legend_area] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
            .areas(bars_area);
    let bars: Vec<Bar> = (0..matrix.columns.len())
        .map(|column| {
            let stats = matrix.column_stats(column);
            let percent = (stats.pass_rate().unwrap_or(0.0) * 100.0).round() as u64;
            Bar::default()
                .label(Line::from(letter(column)))
                .value(percent)
                .text_value(format!("{percent}%"))
                .style(Style::new().fg(if percent == 100 {
                    Color::Green
                } else {
                    Color::Yellow
                }))
        })
        .collect();
    BarChart::default()
        .block(Block::bordered().title(format!(" Pass rate per column · run {} ", matrix.run.id)))
        .data(BarGroup::default().bars(&bars))
        .bar_width(5)
        .bar_gap(2)
        .max(100)
        .render(chart_area, buf);
    let legend: Vec<Line> = matrix
        .columns
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let stats = matrix.column_stats(i);
            Line::from(format!(
                "{}  {}  ({}/{} passed, mean {:.0} ms)",
                letter(i),
                truncate(name, 40),
                stats.passed,
                stats.recorded,
                stats.mean_latency_ms
            ))
        })
        .collect();
    Paragraph::new(legend)
        .block(Block::bordered().title(" Columns "))
        .render(legend_area, buf);

    let (low, high, histograms) = latency_histograms(matrix);
    let block = Block::bordered().title(format!(
        " Latency distribution per column, {low:.0} ms … {high:.0} ms (generated cells only) "
    ));
    let inner = block.inner(latency_area);
    block.render(latency_area, buf);
    if histograms.is_empty() {
        return;
    }
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints(vec![Constraint::Length(2); histograms.len()])
        .split(inner);
    for (i, (histogram, row)) in histograms.iter().zip(rows.iter()).enumerate() {
        let [label, spark] =
            Layout::horizontal([Constraint::Length(4), Constraint::Min(0)]).areas(*row);
        Paragraph::new(letter(i)).bold().render(label, buf);
        let width = usize::from(spark.width).max(1);
        // Stretch the buckets over the width so the shape is readable.
        let stretched: Vec<u64> = (0..width)
            .map(|x| histogram[(x * BUCKETS / width).min(BUCKETS - 1)])
            .collect();
        Sparkline::default()
            .data(&stretched)
            .style(Style::new().fg(Color::Cyan))
            .render(spark, buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_letters_continue_past_z() {
        assert_eq!(letter(0), "A");
        assert_eq!(letter(25), "Z");
        assert_eq!(letter(26), "AA");
        assert_eq!(letter(27), "AB");
    }
}
