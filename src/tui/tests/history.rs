//! The history screen resuming a run that stopped early.

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
