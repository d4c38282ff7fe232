//! Drawing the run screen: the eval set, prompts and models to choose, then every cell's
//! progress.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Gauge, List, ListItem, ListState, Paragraph, StatefulWidget, Widget, Wrap,
};

use super::{CellStatus, Chosen, Focus, chosen};
use crate::tui::app::App;
use crate::tui::view::{fail_style, pass_style, selected_style};

pub fn draw(app: &App, area: Rect, buf: &mut Buffer) {
    let run = &app.run;
    let [setup, progress] =
        Layout::vertical([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(area);
    let [sets_area, prompts_area, models_area] = Layout::horizontal([
        Constraint::Percentage(34),
        Constraint::Percentage(33),
        Constraint::Percentage(33),
    ])
    .areas(setup);
    let block = |title: &str, focused: bool| {
        let block = Block::bordered().title(format!(" {title} "));
        if focused {
            block.border_style(Style::new().fg(Color::Yellow))
        } else {
            block
        }
    };
    let broken =
        |name: String| ListItem::new(Span::styled(format!("{name} ✗ error"), fail_style()));
    let sets: Vec<ListItem> = app
        .scan
        .eval_sets
        .iter()
        .map(|f| match &f.eval_set {
            Ok(set) => ListItem::new(format!("{} ({} cases)", set.name, set.cases.len())),
            Err(_) => broken(f.name()),
        })
        .chain(app.scan.agent_sets.iter().map(|f| match &f.set {
            Ok(set) => ListItem::new(format!(
                "{} (agent, {} questions)",
                set.name,
                set.cases.len()
            )),
            Err(_) => broken(f.name()),
        }))
        .collect();
    list(
        sets,
        run.eval_set,
        block("Eval set", run.focus == Focus::EvalSets),
        sets_area,
        buf,
    );
    let ticks = |items: &[(String, bool)]| -> Vec<ListItem> {
        items
            .iter()
            .map(|(name, ticked)| {
                ListItem::new(format!("[{}] {name}", if *ticked { "x" } else { " " }))
            })
            .collect()
    };
    let agent_set = matches!(chosen(&app.scan, run.eval_set), Some(Chosen::Agent(_)));
    let prompts_title = if agent_set {
        "Agent prompts (optional)"
    } else {
        "Prompts"
    };
    list(
        ticks(&run.prompts),
        run.prompt_cursor,
        block(prompts_title, run.focus == Focus::Prompts),
        prompts_area,
        buf,
    );
    list(
        ticks(&run.models),
        run.model_cursor,
        block("Models", run.focus == Focus::Models),
        models_area,
        buf,
    );

    let Some(active) = &run.active else {
        let mut help = vec![
            Line::raw("Tab: next list · Space: tick · r or Enter: start the run"),
            Line::raw("While it runs: c or Ctrl-C cancels (finished cells are kept)."),
        ];
        if agent_set {
            help.push(Line::raw(
                "An agent set: each cell is a question; with no prompt ticked, questions open with the built-in system prompt.",
            ));
        }
        Paragraph::new(help)
            .wrap(Wrap { trim: true })
            .block(Block::bordered().title(" Progress "))
            .render(progress, buf);
        return;
    };
    let [gauge_area, info_area, cells_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(2),
        Constraint::Min(0),
    ])
    .areas(progress);
    let total = active.cells.len();
    let done = active.done();
    let ratio = if total == 0 {
        1.0
    } else {
        done as f64 / total as f64
    };
    Gauge::default()
        .ratio(ratio)
        .label(format!("{done}/{total} cells"))
        .gauge_style(Style::new().fg(Color::Green))
        .render(gauge_area, buf);
    let elapsed = active.duration_s.unwrap_or_else(|| {
        app.now
            .saturating_duration_since(active.started)
            .as_secs_f64()
    });
    let passed = active
        .cells
        .iter()
        .filter(|c| matches!(&c.status, CellStatus::Done(o) if o.passed))
        .count();
    let cached = active
        .cells
        .iter()
        .filter(|c| matches!(&c.status, CellStatus::Done(o) if o.cached))
        .count();
    let state = if active.cancelled {
        "cancelled".to_string()
    } else if active.finished {
        format!("finished in {elapsed:.1} s")
    } else if done > 0 && elapsed > 0.0 {
        let eta = elapsed / done as f64 * (total - done) as f64;
        format!("{elapsed:.0} s elapsed · ETA {eta:.0} s")
    } else {
        format!("{elapsed:.0} s elapsed")
    };
    let speed = if elapsed > 0.0 && active.tokens > 0 {
        format!(" · {:.1} tokens/s", active.tokens as f64 / elapsed)
    } else {
        String::new()
    };
    let run_label = active
        .run_id
        .map(|id| format!("run {id} · "))
        .unwrap_or_default();
    Paragraph::new(vec![
        Line::from(format!(
            "{run_label}{state}{speed} · {passed} passed · {cached} cached"
        )),
        Line::from(format!("model: {}", active.model.as_deref().unwrap_or("—"))).dim(),
    ])
    .render(info_area, buf);

    let [grid_area, stream_area] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
            .areas(cells_area);
    // One character per cell, in plan order: a dense map of the whole run.
    let mut spans: Vec<Span> = Vec::new();
    for cell in &active.cells {
        spans.push(match &cell.status {
            CellStatus::Queued => Span::styled("·", Style::new().fg(Color::DarkGray)),
            CellStatus::Running => Span::styled("▶", Style::new().fg(Color::Yellow)),
            CellStatus::Done(o) if o.error.is_some() => Span::styled("E", fail_style()),
            CellStatus::Done(o) if o.cached && o.passed => Span::styled("c", pass_style()),
            CellStatus::Done(o) if o.cached => Span::styled("c", fail_style()),
            CellStatus::Done(o) if o.passed => Span::styled("✓", pass_style()),
            CellStatus::Done(_) => Span::styled("✗", fail_style()),
        });
    }
    Paragraph::new(Line::from(spans))
        .wrap(Wrap { trim: false })
        .block(Block::bordered().title(" Cells (· queued ▶ running ✓ ✗ c cached E error) "))
        .render(grid_area, buf);
    let (title, text) = match active.watching.and_then(|i| active.cells.get(i)) {
        Some(cell) => (
            format!(" {} · {} ", cell.column, cell.case),
            cell.text.clone(),
        ),
        None => (" Output ".to_string(), String::new()),
    };
    Paragraph::new(text)
        .wrap(Wrap { trim: false })
        .block(Block::bordered().title(title))
        .render(stream_area, buf);
}

fn list(items: Vec<ListItem>, selected: usize, block: Block, area: Rect, buf: &mut Buffer) {
    let mut state = ListState::default().with_selected(Some(selected));
    StatefulWidget::render(
        List::new(items)
            .block(block)
            .highlight_style(selected_style()),
        area,
        buf,
        &mut state,
    );
}

/// `Vulkan0 (AMD Radeon 780M, 8.0 GiB): all 30 layers` as `Vulkan0: all 30 layers`;
/// `CPU (AVX2)` as it is.
pub fn short_placement(runs_on: &str) -> String {
    if runs_on.starts_with("CPU") {
        return runs_on.to_string();
    }
    let device = runs_on.split([' ', ':']).next().unwrap_or(runs_on);
    match runs_on.rsplit_once(": ") {
        Some((_, layers)) => format!("{device}: {layers}"),
        None => device.to_string(),
    }
}
