//! The history screen: comparing two runs, and resuming a run that stopped early.

use crossterm::event::KeyCode;
use promptlab::store::RunStatus;

use super::{app, key, press, run_row};
use crate::tui::app::{Effect, Event, RunRequest, Screen};

#[test]
fn a_run_that_stopped_early_resumes_on_the_run_screen() {
    let mut app = app((120, 40));
    press(&mut app, "7");
    let mut cancelled = run_row(2, "greetings", 90, 40);
    cancelled.status = RunStatus::Cancelled;
    cancelled.cells_done = 45;
    app.update(Event::RunsListed(Ok(vec![
        run_row(3, "greetings", 90, 80),
        cancelled,
    ])));
    // A finished run has nothing to resume.
    assert!(press(&mut app, "R").is_empty());
    assert!(
        app.message
            .as_deref()
            .unwrap_or("")
            .contains("nothing to resume")
    );
    assert_eq!(app.screen, Screen::History);

    app.update(key(KeyCode::Down));
    let effects = press(&mut app, "R");
    assert_eq!(app.screen, Screen::Run);
    assert_eq!(
        effects,
        [Effect::StartRun(RunRequest {
            eval_set: "/project/eval-sets/greetings.yaml".into(),
            prompts: Vec::new(),
            models: Vec::new(),
            agent: false,
            resume: Some(2),
        })]
    );
}

#[test]
fn history_marks_two_runs_and_compares_older_first() {
    let mut app = app((120, 40));
    press(&mut app, "7");
    app.update(Event::RunsListed(Ok(vec![
        run_row(3, "greetings", 90, 80),
        run_row(2, "other", 12, 3),
        run_row(1, "greetings", 90, 70),
    ])));
    // Run 3 against the previous run of its eval set.
    assert_eq!(press(&mut app, "c"), [Effect::Compare(1, 3)]);
    press(&mut app, " ");
    press(&mut app, "j");
    press(&mut app, " ");
    assert_eq!(app.history.marked, [3, 2]);
    assert_eq!(press(&mut app, "c"), [Effect::Compare(2, 3)]);
    assert_eq!(app.update(key(KeyCode::Enter)), [Effect::LoadRun(2)]);
}
