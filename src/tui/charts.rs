//! Charts of the open run: pass rate per prompt × model column as bars, and each
//! column's latency distribution as a histogram sparkline on a shared scale. `t` switches
//! to the training runs of vision models: loss and accuracy curves per epoch.

use crossterm::event::{KeyCode, KeyEvent};
use promptlab::results::RunMatrix;
use promptlab::store::TrainingRunRow;
use promptlab::vision::train::ModelCard;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{
    Axis, Chart, Dataset, GraphType, List, ListItem, ListState, StatefulWidget,
};
use ratatui::widgets::{Bar, BarChart, BarGroup, Block, Paragraph, Sparkline, Widget};

use super::app::{App, Effect};
use super::view::truncate;

const BUCKETS: usize = 24;

/// One training run's curves, read from its card.
#[derive(Debug, Clone, PartialEq)]
pub struct Curves {
    pub run: TrainingRunRow,
    /// (epoch, train loss, validation loss, train accuracy, validation accuracy).
    pub epochs: Vec<(f64, f64, f64, f64, f64)>,
    /// The network block by block, once the run has its card.
    pub blocks: Vec<NetworkBlock>,
}

/// A row of the network diagram.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkBlock {
    pub name: String,
    pub output: String,
    pub params: usize,
    pub frozen: bool,
}

#[derive(Debug, Default)]
pub struct ChartsState {
    pub training: bool,
    pub runs: Vec<Curves>,
    pub selected: usize,
}

impl ChartsState {
    pub fn set_training_runs(&mut self, runs: Vec<TrainingRunRow>) {
        self.runs = runs
            .into_iter()
            .map(|run| {
                let card: serde_json::Value = run
                    .card_json
                    .as_deref()
                    .and_then(|c| serde_json::from_str(c).ok())
                    .unwrap_or_default();
                let number = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
                let epochs = card["epochs"]
                    .as_array()
                    .map(|list| {
                        list.iter()
                            .map(|e| {
                                (
                                    number(&e["epoch"]),
                                    number(&e["train_loss"]),
                                    number(&e["validation_loss"]),
                                    number(&e["train_accuracy"]),
                                    number(&e["validation_accuracy"]),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let blocks = serde_json::from_value::<ModelCard>(card)
                    .map(|card| {
                        card.blocks()
                            .into_iter()
                            .map(|block| NetworkBlock {
                                frozen: card.frozen(&block),
                                name: block.name,
                                output: block
                                    .output
                                    .iter()
                                    .map(usize::to_string)
                                    .collect::<Vec<_>>()
                                    .join("×"),
                                params: block.params,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Curves {
                    run,
                    epochs,
                    blocks,
                }
            })
            .collect();
        self.selected = self.selected.min(self.runs.len().saturating_sub(1));
    }
}

pub fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    let charts = &mut app.charts;
    match key.code {
        KeyCode::Char('t') => {
            charts.training = !charts.training;
            if charts.training {
                return vec![Effect::ListTrainingRuns];
            }
        }
        code if charts.training => {
            charts.selected =
                super::app::move_selection(charts.selected, charts.runs.len(), code, 10)
        }
        _ => {}
    }
    Vec::new()
}

fn draw_training(app: &App, area: Rect, buf: &mut Buffer) {
    let charts = &app.charts;
    let [list_area, plots] =
        Layout::horizontal([Constraint::Length(34), Constraint::Min(0)]).areas(area);
    let items: Vec<ListItem> = charts
        .runs
        .iter()
        .map(|c| {
            let accuracy = c
                .run
                .test_accuracy
                .map(|a| format!(" {:.2}%", a * 100.0))
                .unwrap_or_default();
            ListItem::new(format!(
                "{} {} {}{accuracy}",
                c.run.id, c.run.dataset, c.run.preset
            ))
        })
        .collect();
    let mut state = ListState::default().with_selected(Some(charts.selected));
    StatefulWidget::render(
        List::new(items)
            .block(Block::bordered().title(" Training runs · t: eval run charts "))
            .highlight_style(super::view::selected_style()),
        list_area,
        buf,
        &mut state,
    );
    let Some(curves) = charts.runs.get(charts.selected) else {
        Paragraph::new("No training runs yet: promptlab vision digits train")
            .block(Block::bordered().title(" Curves "))
            .render(plots, buf);
        return;
    };
    let (plots, network_area) = if curves.blocks.is_empty() {
        (plots, None)
    } else {
        let [plots, network] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                .areas(plots);
        (plots, Some(network))
    };
    if let Some(network_area) = network_area {
        draw_network(&curves.blocks, network_area, buf);
    }
    let [loss_area, accuracy_area] =
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(plots);
    let series = |f: fn(&(f64, f64, f64, f64, f64)) -> f64| -> Vec<(f64, f64)> {
        curves
            .epochs
            .iter()
            .map(|e| (e.0, f(e)))
            .filter(|p| p.1.is_finite())
            .collect()
    };
    let last_epoch = curves.epochs.last().map_or(1.0, |e| e.0).max(1.0);
    let plot =
        |title: String, a: Vec<(f64, f64)>, b: Vec<(f64, f64)>, area: Rect, buf: &mut Buffer| {
            let values = a.iter().chain(&b).map(|p| p.1);
            let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
                (l.min(v), h.max(v))
            });
            let (low, high) = if low.is_finite() {
                (low, high.max(low + 1e-6))
            } else {
                (0.0, 1.0)
            };
            let datasets = vec![
                Dataset::default()
                    .name("train")
                    .marker(Marker::Braille)
                    .graph_type(GraphType::Line)
                    .style(Style::new().fg(Color::Cyan))
                    .data(&a),
                Dataset::default()
                    .name("validation")
                    .marker(Marker::Braille)
                    .graph_type(GraphType::Line)
                    .style(Style::new().fg(Color::Yellow))
                    .data(&b),
            ];
            Chart::new(datasets)
                .block(Block::bordered().title(title))
                .x_axis(
                    Axis::default()
                        .title("epoch")
                        .bounds([1.0, last_epoch])
                        .labels(["1".to_string(), format!("{last_epoch:.0}")]),
                )
                .y_axis(
                    Axis::default()
                        .bounds([low, high])
                        .labels([format!("{low:.3}"), format!("{high:.3}")]),
                )
                .render(area, buf);
        };
    plot(
        format!(
            " Loss · run {} ({} epochs, {}) ",
            curves.run.id,
            curves.epochs.len(),
            curves.run.status
        ),
        series(|e| e.1),
        series(|e| e.2),
        loss_area,
        buf,
    );
    plot(
        " Accuracy ".to_string(),
        series(|e| e.3),
        series(|e| e.4),
        accuracy_area,
        buf,
    );
}

/// A block's name in a narrow panel: `inverted residual (expand to 144), stride 2 + skip`
/// becomes `inv. res. →144 s2 +skip`.
fn compact(name: &str) -> String {
    let Some(rest) = name.strip_prefix("inverted residual") else {
        return name.replace(" channels", " ch");
    };
    let mut out = "inv. res.".to_string();
    if let Some(expanded) = rest.strip_prefix(" (expand to ") {
        let channels: String = expanded.chars().take_while(char::is_ascii_digit).collect();
        out += &format!(" →{channels}");
    }
    if let Some((_, stride)) = rest.split_once("stride ") {
        let stride: String = stride.chars().take_while(char::is_ascii_digit).collect();
        out += &format!(" s{stride}");
    }
    if rest.ends_with("+ skip") {
        out += " +skip";
    }
    out
}

/// The network's data flow, input first: each block with its output shape, a bar for
/// its share of the largest block's parameters, and its count; frozen blocks dimmed.
fn draw_network(blocks: &[NetworkBlock], area: Rect, buf: &mut Buffer) {
    let most = blocks.iter().map(|b| b.params).max().unwrap_or(1).max(1) as f64;
    let total: usize = blocks.iter().map(|b| b.params).sum();
    let frozen: usize = blocks.iter().filter(|b| b.frozen).map(|b| b.params).sum();
    let name_width = usize::from(area.width.saturating_sub(2))
        .saturating_sub(25)
        .max(8);
    let items: Vec<ListItem> = blocks
        .iter()
        .map(|block| {
            let cells = (block.params as f64 / most * 6.0).round() as usize;
            let bar = format!("{:<6}", "█".repeat(cells));
            let text = format!(
                "{bar} {:<name_width$} {:>9} {:>7}",
                truncate(&compact(&block.name), name_width),
                block.output,
                block.params
            );
            let style = if block.frozen {
                Style::new().fg(Color::DarkGray)
            } else {
                Style::new()
            };
            ListItem::new(text).style(style)
        })
        .collect();
    Widget::render(
        List::new(items).block(Block::bordered().title(format!(
            " Network · {total} parameters, {frozen} frozen (grey) "
        ))),
        area,
        buf,
    );
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

/// Latencies of each column bucketed on one scale from the fastest to the slowest cell;
/// no histograms when the run generated nothing (every cell came from the cache).
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
        return (0.0, 0.0, Vec::new());
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
    if app.charts.training {
        draw_training(app, area, buf);
        return;
    }
    let Some(matrix) = &app.matrix else {
        Paragraph::new("No run open. Open one from the results (4) or history (7) screen; t shows training runs.")
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
                "{}  {}  ({}/{} passed, 95% CI {}, mean {:.0} ms)",
                letter(i),
                truncate(name, 40),
                stats.passed,
                stats.recorded,
                super::results::interval(stats.passed, stats.recorded),
                stats.mean_latency_ms
            ))
        })
        .collect();
    Paragraph::new(legend)
        .block(Block::bordered().title(" Columns "))
        .render(legend_area, buf);

    let (low, high, histograms) = latency_histograms(matrix);
    if histograms.is_empty() {
        Paragraph::new(
            "Every cell of this run came from the cache, so it measured no latency; open a run that generated its cells.",
        )
        .wrap(ratatui::widgets::Wrap { trim: true })
        .block(Block::bordered().title(" Latency distribution per column "))
        .render(latency_area, buf);
        return;
    }
    let block = Block::bordered().title(format!(
        " Latency distribution per column, {low:.0} ms … {high:.0} ms (generated cells only) "
    ));
    let inner = block.inner(latency_area);
    block.render(latency_area, buf);
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
