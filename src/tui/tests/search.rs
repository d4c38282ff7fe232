//! `/` search in the lists: Enter selects the next matching row, `n` and `N` move between
//! matches, keys are text while the query is typed, and a miss says so.

use crossterm::event::KeyCode;

use super::{app, app_with_run, key, press, run_row, screen_text};
use crate::tui::app::{Event, Screen};
use crate::tui::library::{Item, items};

#[test]
fn slash_finds_a_library_row_and_keys_are_text_while_typing() {
    let mut app = app((120, 40));
    assert_eq!(app.screen, Screen::Library);
    let unfinished = items(&app.scan)
        .iter()
        .position(|item| matches!(item, Item::EvalSet(i) if app.scan.eval_sets[*i].name() == "unfinished"))
        .expect("the fixture's unfinished eval set");
    assert_ne!(app.library.selected, unfinished);
    // "q" would quit and "3" open the run screen outside the query.
    assert!(press(&mut app, "/UNFIN").is_empty());
    assert!(
        screen_text(&app).contains("/UNFIN▏"),
        "{}",
        screen_text(&app)
    );
    app.update(key(KeyCode::Backspace));
    press(&mut app, "N");
    app.update(key(KeyCode::Enter));
    assert_eq!(app.library.selected, unfinished, "{}", screen_text(&app));
    assert_eq!(app.screen, Screen::Library);
    assert_eq!(app.message.as_deref(), Some("/UNFIN"));

    // A miss leaves the selection and says so; Esc while typing changes nothing.
    press(&mut app, "/zzz-q3");
    app.update(key(KeyCode::Enter));
    assert_eq!(app.library.selected, unfinished);
    assert!(app.message.as_deref().unwrap_or("").contains("not found"));
    press(&mut app, "/greet");
    app.update(key(KeyCode::Esc));
    assert_eq!(app.library.selected, unfinished);
    assert!(app.search.typing.is_none());
}

#[test]
fn n_and_shift_n_step_through_matches_and_wrap() {
    let mut app = app((120, 40));
    press(&mut app, "7");
    let labelled = |id, label: &str| {
        let mut row = run_row(id, "greetings", 3, 3);
        row.label = Some(label.into());
        row
    };
    app.update(Event::RunsListed(Ok(vec![
        labelled(5, "terse v2"),
        run_row(4, "other", 3, 3),
        labelled(3, "Terse"),
        run_row(2, "other", 3, 3),
        labelled(1, "verbose"),
    ])));
    let selected = |app: &crate::tui::app::App| app.history.runs[app.history.selected].id;
    // The selected row matches already: Enter stays there.
    press(&mut app, "/terse");
    app.update(key(KeyCode::Enter));
    assert_eq!(selected(&app), 5);
    press(&mut app, "n");
    assert_eq!(selected(&app), 3);
    // Past the last match, back to the first.
    press(&mut app, "n");
    assert_eq!(selected(&app), 5);
    press(&mut app, "N");
    assert_eq!(selected(&app), 3);
    press(&mut app, "N");
    assert_eq!(selected(&app), 5);
    press(&mut app, "/");
    app.update(key(KeyCode::Enter));
    assert_eq!(selected(&app), 3);
    // Eval set names are searched too, forward from the selected run (3).
    press(&mut app, "/other");
    app.update(key(KeyCode::Enter));
    assert_eq!(selected(&app), 2);
}

#[test]
fn results_search_by_case_label_id_or_tag() {
    let mut app = app_with_run((120, 40));
    press(&mut app, "4");
    assert_eq!(app.screen, Screen::Results);
    let matrix = app.matrix.as_ref().unwrap();
    let case_of = |app: &crate::tui::app::App| {
        let case = app.results.selected_case().unwrap();
        app.matrix.as_ref().unwrap().cases[case].id.clone()
    };
    let tagged = matrix
        .cases
        .iter()
        .find(|c| c.tags.contains(&"short-name".to_string()))
        .unwrap()
        .id
        .clone();
    press(&mut app, "/SHORT-name");
    app.update(key(KeyCode::Enter));
    assert_eq!(case_of(&app), tagged);
    press(&mut app, "/case-001");
    app.update(key(KeyCode::Enter));
    assert_eq!(case_of(&app), "case-0010");
    // `n` is still the next failing case here; `/` and Enter repeat the search.
    press(&mut app, "/");
    app.update(key(KeyCode::Enter));
    assert_eq!(case_of(&app), "case-0011");
    // Other screens have no list to search: `/` is not taken from them.
    press(&mut app, "6");
    press(&mut app, "/");
    assert!(app.search.typing.is_none());
}

/// The status bar says when keys are text, on every typing mode, and goes back after.
#[test]
fn the_status_bar_shows_when_keys_are_text() {
    let mut app = app((120, 40));
    let status = |app: &crate::tui::app::App| screen_text(app).lines().last().unwrap().to_string();
    assert!(status(&app).contains("? help · q quit"), "{}", status(&app));
    press(&mut app, "/");
    assert!(
        status(&app).contains("TYPING · Esc stops"),
        "{}",
        status(&app)
    );
    app.update(key(KeyCode::Esc));
    assert!(status(&app).contains("? help · q quit"));
    press(&mut app, "7");
    app.update(Event::RunsListed(Ok(vec![run_row(1, "greetings", 3, 3)])));
    press(&mut app, "l");
    assert!(status(&app).contains("TYPING"), "{}", status(&app));
    app.update(key(KeyCode::Esc));
    press(&mut app, "6i");
    assert!(status(&app).contains("TYPING"), "{}", status(&app));
    app.update(key(KeyCode::Esc));
    assert!(!status(&app).contains("TYPING"), "{}", status(&app));
}
