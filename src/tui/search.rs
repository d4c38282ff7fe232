//! `/` search in the lists (Library, Results, History), as in less and vim: `/` then text
//! and Enter selects the next row containing it (ignoring case); `/` and Enter alone finds
//! the next one, and so do `n` and `N` (next, previous) where `n` means nothing else (the
//! Results screen keeps `n` for its next failing case). Rows are not hidden, so a list
//! keeps its order and its sections.

use crossterm::event::{KeyCode, KeyEvent};

use super::app::{App, Effect, Screen};
use super::library::{Item, items};

#[derive(Debug, Default)]
pub struct SearchState {
    /// The query being typed after `/`.
    pub typing: Option<String>,
    /// The last query searched for, which `n` and `N` repeat.
    pub query: Option<String>,
}

/// Whether `screen` has a list that `/` searches.
pub fn searchable(screen: Screen) -> bool {
    matches!(screen, Screen::Library | Screen::Results | Screen::History)
}

/// Whether `n` and `N` repeat the search on `screen`.
pub fn repeats_with_n(screen: Screen) -> bool {
    matches!(screen, Screen::Library | Screen::History)
}

/// `/`: starts typing a query.
pub fn start(app: &mut App) {
    app.search.typing = Some(String::new());
}

/// A key while the query is typed: Enter searches, Esc gives up.
pub fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    let Some(text) = app.search.typing.as_mut() else {
        return Vec::new();
    };
    match key.code {
        KeyCode::Enter => {
            let query = std::mem::take(text);
            app.search.typing = None;
            if query.trim().is_empty() {
                // As in less: an empty query repeats the last one, from the next row.
                find(app, Direction::Next);
            } else {
                app.search.query = Some(query);
                find(app, Direction::Here);
            }
        }
        KeyCode::Esc => app.search.typing = None,
        KeyCode::Backspace => {
            text.pop();
        }
        KeyCode::Char(c) => text.push(c),
        _ => {}
    }
    Vec::new()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The selected row if it matches, else the next one.
    Here,
    Next,
    Previous,
}

/// Selects the row matching the last query in `direction` from the selection, wrapping
/// around the list; says so in the status bar when no row matches.
pub fn find(app: &mut App, direction: Direction) {
    let Some(query) = app.search.query.clone() else {
        app.message = Some("no search yet: / then text and Enter".into());
        return;
    };
    let Some((rows, selected)) = rows(app) else {
        return;
    };
    let needle = query.to_lowercase();
    let count = rows.len();
    let steps: Box<dyn Iterator<Item = usize>> = match direction {
        Direction::Here => Box::new((0..count).map(|step| (selected + step) % count)),
        Direction::Next => Box::new((1..=count).map(|step| (selected + step) % count)),
        Direction::Previous => {
            Box::new((1..=count).map(|step| (selected + 2 * count - step) % count))
        }
    };
    let found = steps
        .into_iter()
        .find(|&index| rows[index].to_lowercase().contains(&needle));
    match found {
        Some(index) => {
            select(app, index);
            app.message = Some(format!("/{query}"));
        }
        None => app.message = Some(format!("/{query}: not found")),
    }
}

/// The current screen's rows as searchable text, and which one is selected.
fn rows(app: &App) -> Option<(Vec<String>, usize)> {
    match app.screen {
        Screen::Library => {
            let scan = &app.scan;
            let texts = items(scan)
                .into_iter()
                .map(|item| match item {
                    Item::Prompt(i) => scan.prompts[i].name(),
                    Item::EvalSet(i) => scan.eval_sets[i].name(),
                    Item::AgentSet(i) => scan.agent_sets[i].name(),
                    Item::Model(i) => {
                        let model = &scan.models[i];
                        format!("{} {}", model.name, model.entry.description)
                    }
                })
                .collect();
            Some((texts, app.library.selected))
        }
        Screen::Results => {
            let matrix = app.matrix.as_ref()?;
            let texts = app
                .results
                .rows
                .iter()
                .filter_map(|&case| matrix.cases.get(case))
                .map(|case| format!("{} {} {}", case.id, case.label, case.tags.join(" ")))
                .collect();
            Some((texts, app.results.selected))
        }
        Screen::History => {
            let texts = app
                .history
                .runs
                .iter()
                .map(|run| {
                    format!(
                        "{} {} {} {}",
                        run.id,
                        run.eval_set,
                        run.label.as_deref().unwrap_or(""),
                        run.started_at
                    )
                })
                .collect();
            Some((texts, app.history.selected))
        }
        _ => None,
    }
}

fn select(app: &mut App, index: usize) {
    match app.screen {
        Screen::Library => app.library.selected = index,
        Screen::Results => app.results.selected = index,
        Screen::History => app.history.selected = index,
        _ => {}
    }
}
