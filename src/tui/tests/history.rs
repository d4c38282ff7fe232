//! The history screen: comparing two runs, and resuming a run that stopped early.

use crossterm::event::KeyCode;
use promptlab::compare;
use promptlab::store::{RunStatus, StoredCell};
use ratatui::style::{Color, Modifier};

use super::{app, cells, draw, key, press, run_row, screen_text};
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

/// Issue 21: after a prompt edit (run 2) and a cached re-run of it (run 3), `c` on run 3
/// compared it with run 2, its own copy, and found "no case changed". It compares with
/// run 1, the last run that asked something else.
#[test]
fn compare_skips_cached_copies_of_the_same_configuration() {
    let mut app = app((120, 40));
    press(&mut app, "7");
    let with_digest = |id, digest: &str| {
        let mut row = run_row(id, "capitals", 3, 3);
        row.config_digest = Some(digest.into());
        row
    };
    let mut unfinished = run_row(4, "capitals", 0, 0);
    unfinished.config_digest = None;
    app.update(Event::RunsListed(Ok(vec![
        unfinished,
        with_digest(3, "edited"),
        with_digest(2, "edited"),
        run_row(5, "other", 3, 3),
        with_digest(1, "original"),
    ])));
    press(&mut app, "j");
    assert_eq!(app.history.runs[app.history.selected].id, 3);
    assert_eq!(press(&mut app, "c"), [Effect::Compare(1, 3)]);
    // The edited run itself also compares with the original.
    press(&mut app, "j");
    assert_eq!(press(&mut app, "c"), [Effect::Compare(1, 2)]);
    // The first run has nothing earlier that differs: it says so rather than guessing.
    press(&mut app, "jj");
    assert_eq!(app.history.runs[app.history.selected].id, 1);
    assert!(press(&mut app, "c").is_empty());
    assert!(
        app.message
            .as_deref()
            .unwrap_or("")
            .contains("mark two runs with Space"),
        "{:?}",
        app.message
    );
}

/// Issue 21: the comparison shows how many outputs changed and their word diffs, also
/// when no verdict changed.
#[test]
fn comparison_shows_changed_outputs_with_word_diffs() {
    let mut app = app((120, 40));
    press(&mut app, "7");
    app.update(Event::RunsListed(Ok(vec![
        run_row(2, "capitals", 1, 1),
        run_row(1, "capitals", 1, 1),
    ])));
    let before: Vec<StoredCell> = cells(1, 0)
        .into_iter()
        .take(1)
        .map(|mut c| {
            c.passed = true;
            c.output = "The capital is Rio de Janeiro.".into();
            c
        })
        .collect();
    let mut after = before.clone();
    after[0].output = "The capital is Rio.".into();
    app.update(Event::Compared(Ok((
        1,
        2,
        compare::compare(&before, &after),
    ))));
    let terminal = draw(&app);
    let buffer = terminal.backend().buffer();
    let text = terminal.backend().to_string();
    assert!(
        text.contains("outputs changed: 1, no pass/fail change"),
        "{text}"
    );
    assert!(text.contains("1 outputs changed, same verdict"), "{text}");
    let line = text
        .lines()
        .position(|l| l.contains("case-0000: The capital is [-Rio de Janeiro.-]{+Rio.+}"))
        .unwrap_or_else(|| panic!("the changed case is listed with its diff: {text}"));
    let row: String = (0..buffer.area.width)
        .map(|x| buffer[(x, line as u16)].symbol().to_string())
        .collect();
    let at = |word: &str| row[..row.find(word).unwrap_or(0)].chars().count() as u16;
    let removed = &buffer[(at("Janeiro"), line as u16)];
    assert_eq!(removed.fg, Color::Red);
    let added = &buffer[(at("{+Rio.") + 2, line as u16)];
    assert_eq!(added.symbol(), "R");
    assert_eq!(added.fg, Color::Green);
    assert!(added.modifier.contains(Modifier::BOLD));
    let same = &buffer[(at("capital"), line as u16)];
    assert_eq!(same.fg, Color::Reset);
}

/// `l` types a label for the selected run: keys that switch screens or quit are text
/// while typing, Enter saves (an empty label clears it), Esc leaves the label as it was.
#[test]
fn a_run_is_labelled_in_place_and_its_keys_are_text_meanwhile() {
    let mut app = app((120, 40));
    press(&mut app, "7");
    let mut labelled = run_row(2, "greetings", 90, 80);
    labelled.label = Some("baseline".into());
    app.update(Event::RunsListed(Ok(vec![
        run_row(3, "greetings", 90, 80),
        labelled,
    ])));
    assert!(press(&mut app, "l").is_empty());
    assert_eq!(app.history.label_input, Some((3, String::new())));
    assert!(
        screen_text(&app).contains("label for run 3:"),
        "{}",
        screen_text(&app)
    );
    // "q" and "1" would quit and open the library outside the label.
    assert!(press(&mut app, "terse q1").is_empty());
    assert_eq!(app.screen, Screen::History);
    app.update(key(KeyCode::Backspace));
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        [Effect::SetLabel {
            run: 3,
            label: Some("terse q".into())
        }]
    );
    assert_eq!(app.history.label_input, None);

    // The existing label is there to edit; Esc keeps it; an emptied label clears it.
    press(&mut app, "j");
    press(&mut app, "l");
    assert_eq!(app.history.label_input, Some((2, "baseline".into())));
    assert!(app.update(key(KeyCode::Esc)).is_empty());
    assert_eq!(app.history.label_input, None);
    press(&mut app, "l");
    for _ in 0.."baseline".len() {
        app.update(key(KeyCode::Backspace));
    }
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        [Effect::SetLabel {
            run: 2,
            label: None
        }]
    );
    // The list shows labels.
    let mut relabelled = run_row(3, "greetings", 90, 80);
    relabelled.label = Some("terse q".into());
    app.update(Event::RunsListed(Ok(vec![relabelled])));
    assert!(
        screen_text(&app).contains("terse q"),
        "{}",
        screen_text(&app)
    );
}
