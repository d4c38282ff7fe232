//! `TestBackend` snapshots of every screen at 80×24, 120×40 and 200×60.

use super::*;

fn snapshot_all(size: (u16, u16)) {
    let suffix = format!("{}x{}", size.0, size.1);
    let mut app = app(size);
    insta::assert_snapshot!(format!("library_{suffix}"), draw(&app).backend());
    press(&mut app, "j");
    app.update(key(KeyCode::Enter));
    insta::assert_snapshot!(format!("editor_{suffix}"), draw(&app).backend());

    press(&mut app, "3");
    app.update(Event::Run(RunEvent::Started {
        run_id: Some(9),
        cells: (0..12)
            .map(|i| ("greet:short @ tiny".to_string(), format!("case-{i}")))
            .collect(),
    }));
    app.update(Event::Run(RunEvent::ModelLoaded {
        model: "tiny".into(),
        load_ms: 410.0,
    }));
    for i in 0..5 {
        app.update(Event::Run(RunEvent::CellFinished(
            i,
            CellOutcome {
                passed: i % 2 == 0,
                cached: i == 0,
                error: None,
                score: 1.0,
                completion_tokens: 4,
            },
        )));
    }
    app.update(Event::Run(RunEvent::CellStarted(5)));
    app.update(Event::Run(RunEvent::Token(5, "Hello, Ada".into())));
    insta::assert_snapshot!(format!("run_{suffix}"), draw(&app).backend());

    app.update(Event::RunLoaded(Ok(matrix(30))));
    insta::assert_snapshot!(format!("results_{suffix}"), draw(&app).backend());
    press(&mut app, "n");
    app.update(key(KeyCode::Enter));
    insta::assert_snapshot!(format!("side_by_side_{suffix}"), draw(&app).backend());
    press(&mut app, "8");
    insta::assert_snapshot!(format!("charts_{suffix}"), draw(&app).backend());

    press(&mut app, "6");
    press(&mut app, "p");
    press(&mut app, "i");
    press(&mut app, "Ada");
    app.update(key(KeyCode::Enter));
    app.update(Event::Chat(crate::tui::playground::ChatEvent::Token(
        "Hello, Ada! Welcome.".into(),
    )));
    insta::assert_snapshot!(format!("playground_{suffix}"), draw(&app).backend());
    app.update(Event::Chat(crate::tui::playground::ChatEvent::Done(Err(
        "cancelled".into(),
    ))));
    // Stop typing in the playground, or the digit would be text.
    app.update(key(KeyCode::Esc));
    press(&mut app, "7");
    assert_eq!(app.screen, Screen::History);
    app.update(Event::RunsListed(Ok(vec![
        run_row(8, "greetings", 90, 70),
        run_row(7, "greetings", 90, 60),
    ])));
    let a = cells(30, 0);
    let b = cells(30, 1);
    app.update(Event::Compared(Ok((7, 8, compare::compare(&a, &b)))));
    insta::assert_snapshot!(format!("history_{suffix}"), draw(&app).backend());

    press(&mut app, "?");
    insta::assert_snapshot!(format!("help_{suffix}"), draw(&app).backend());
    app.help = false;
    app.update(Event::Run(RunEvent::Started {
        run_id: Some(10),
        cells: vec![("c".into(), "1".into())],
    }));
    press(&mut app, "q");
    insta::assert_snapshot!(format!("confirm_quit_{suffix}"), draw(&app).backend());
}

#[test]
fn snapshots_120x40() {
    snapshot_all((120, 40));
}

#[test]
fn snapshots_80x24() {
    snapshot_all((80, 24));
}

/// A wide terminal: columns that get cut at 120 show whole, and nothing stretches oddly.
#[test]
fn snapshots_200x60() {
    snapshot_all((200, 60));
}
