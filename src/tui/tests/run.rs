//! The run screen: starting a run, its progress and results, cancelling, and engine
//! errors.

use std::collections::HashMap;

use crossterm::event::KeyCode;
use promptlab::results::RunMatrix;

use super::{app, cells, ctrl, draw, key, matrix, press, run_row, screen_text};
use crate::tui::app::{CellOutcome, Effect, Event, Popup, RunEvent, Screen};
use crate::tui::run_screen::CellStatus;

#[test]
fn ctrl_c_cancels_the_run_and_never_quits() {
    let mut app = app((120, 40));
    assert!(app.update(ctrl('c')).is_empty());
    assert!(app.message.as_deref().unwrap_or("").contains("q to quit"));
    app.update(Event::Run(RunEvent::Started {
        run_id: Some(1),
        cells: vec![("c".into(), "1".into())],
    }));
    assert_eq!(app.update(ctrl('c')), [Effect::CancelRun]);
    // The cell in flight was not kept: it shows as queued, not running, once stopped.
    app.update(Event::Run(RunEvent::CellStarted(0)));
    app.update(Event::Run(RunEvent::Finished {
        run_id: Some(1),
        cancelled: true,
        duration_s: 0.5,
    }));
    let active = app.run.active.as_ref().unwrap();
    assert_eq!(active.cells[0].status, CellStatus::Queued);
    assert!(
        app.message
            .as_deref()
            .unwrap_or("")
            .contains("R on the history screen")
    );
}

#[test]
fn starting_a_run_needs_a_prompt_and_a_model() {
    let mut app = app((120, 40));
    press(&mut app, "3");
    // greetings is first: its prompts and model are ticked.
    let effects = press(&mut app, "r");
    let [Effect::StartRun(request)] = &effects[..] else {
        panic!("expected a run, got {effects:?}");
    };
    assert!(request.eval_set.ends_with("greetings.yaml"));
    assert_eq!(request.prompts, ["greet:short", "greet:warm"]);
    assert_eq!(request.models, ["tiny"]);

    // Untick every model: the run is refused with a reason.
    app.update(key(KeyCode::Tab));
    app.update(key(KeyCode::Tab));
    press(&mut app, " ");
    assert!(press(&mut app, "r").is_empty());
    assert!(matches!(&app.popup, Some(Popup::Error(e)) if e.contains("model")));
}

#[test]
fn run_progress_then_results() {
    let mut app = app((120, 40));
    press(&mut app, "3");
    let cells = vec![
        ("greet:short @ tiny".to_string(), "ada".to_string()),
        ("greet:short @ tiny".to_string(), "grace".to_string()),
    ];
    app.update(Event::Run(RunEvent::Started {
        run_id: Some(9),
        cells,
    }));
    app.update(Event::Run(RunEvent::CellStarted(0)));
    app.update(Event::Run(RunEvent::Token(0, "Hel".into())));
    app.update(Event::Run(RunEvent::Token(0, "lo".into())));
    let active = app.run.active.as_ref().unwrap();
    assert_eq!(active.cells[0].text, "Hello");
    assert_eq!(active.tokens, 2);
    let outcome = CellOutcome {
        passed: true,
        cached: false,
        error: None,
        score: 1.0,
        completion_tokens: 2,
    };
    app.update(Event::Run(RunEvent::CellFinished(0, outcome)));
    assert_eq!(app.run.active.as_ref().unwrap().done(), 1);
    assert_eq!(press(&mut app, "c"), [Effect::CancelRun]);
    let effects = app.update(Event::Run(RunEvent::Finished {
        run_id: Some(9),
        cancelled: false,
        duration_s: 1.5,
    }));
    assert_eq!(effects, [Effect::LoadRun(9)]);
    assert!(!app.run_active());
    app.update(Event::RunLoaded(Ok(matrix(30))));
    assert_eq!(app.screen, Screen::Results);
}

#[test]
fn the_first_engine_error_of_a_run_pops_up_once() {
    let mut app = app((120, 40));
    app.update(Event::Run(RunEvent::Started {
        run_id: Some(1),
        cells: vec![
            ("p @ tiny".into(), "a".into()),
            ("p @ tiny".into(), "b".into()),
        ],
    }));
    let failed = CellOutcome {
        passed: false,
        cached: false,
        error: Some("cannot load models/tiny.gguf: truncated file".into()),
        score: 0.0,
        completion_tokens: 0,
    };
    app.update(Event::Run(RunEvent::CellFinished(0, failed.clone())));
    assert!(matches!(&app.popup, Some(Popup::Error(e)) if e.contains("truncated")));
    app.update(key(KeyCode::Esc));
    app.update(Event::Run(RunEvent::CellFinished(1, failed)));
    assert_eq!(app.popup, None, "shown once per run");
    assert!(app.run_active(), "the run goes on");
}

#[test]
fn a_failed_run_shows_why_and_frees_the_screen() {
    let mut app = app((120, 40));
    app.update(Event::Run(RunEvent::Started {
        run_id: Some(1),
        cells: Vec::new(),
    }));
    app.update(Event::Run(RunEvent::Failed(
        "model `tiny`: cannot load models/tiny.gguf".into(),
    )));
    assert!(!app.run_active());
    assert!(matches!(&app.popup, Some(Popup::Error(e)) if e.contains("cannot load")));
    app.update(key(KeyCode::Enter));
    assert_eq!(app.popup, None);
}

/// A run whose every cell came from the cache measured no latency: the charts screen says
/// so instead of indexing an empty histogram (it panicked after `eval` ran twice).
#[test]
fn charts_of_a_fully_cached_run_say_nothing_was_measured() {
    let mut app = app((120, 40));
    let mut all_cached = cells(12, 0);
    for cell in &mut all_cached {
        cell.cached = true;
    }
    let matrix = RunMatrix::from_cells(run_row(9, "greetings", 36, 0), all_cached, &HashMap::new());
    app.update(Event::RunLoaded(Ok(matrix)));
    press(&mut app, "8");
    let screen = screen_text(&app);
    assert!(screen.contains("Pass rate per column"), "{screen}");
    assert!(screen.contains("came from the cache"), "{screen}");
    for size in [(80, 24), (200, 60), (40, 12)] {
        app.update(Event::Resize(size.0, size.1));
        draw(&app);
    }
}
