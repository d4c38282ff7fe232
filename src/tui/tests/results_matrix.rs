//! The results matrix and the side-by-side view: filtering, sorting, jumping to failures,
//! prompts and their differences, and a vision case's picture with its boxes.

use std::collections::HashMap;

use crossterm::event::KeyCode;
use promptlab::results::RunMatrix;

use super::*;

#[test]
fn results_filter_sort_and_jump_to_failures() {
    let mut app = app_with_run((120, 40));
    let all = app.results.rows.len();
    assert_eq!(all, 30);
    press(&mut app, "f");
    let failures = app.results.rows.clone();
    let matrix = app.matrix.as_ref().unwrap();
    assert!(!failures.is_empty() && failures.len() < all);
    assert!(failures.iter().all(|&c| matrix.has_failure(c)));
    press(&mut app, "f");
    assert!(
        app.results
            .rows
            .iter()
            .all(|&c| app.matrix.as_ref().unwrap().columns_disagree(c))
    );
    press(&mut app, "f");
    assert_eq!(
        app.results.filter,
        promptlab::results::RowFilter::Tag("formal".into())
    );
    assert_eq!(app.results.rows, [1]);
    press(&mut app, "ff");
    assert_eq!(app.results.filter, promptlab::results::RowFilter::All);

    press(&mut app, "s");
    let matrix = app.matrix.as_ref().unwrap();
    let first = app.results.rows[0];
    assert!(matrix.has_failure(first), "lowest score first");
    press(&mut app, "ss");

    app.results.selected = 0;
    press(&mut app, "n");
    let selected = app.results.selected_case().unwrap();
    assert!(app.matrix.as_ref().unwrap().has_failure(selected));
    app.update(key(KeyCode::Enter));
    assert_eq!(app.screen, Screen::SideBySide);
    assert_eq!(app.side.case, selected);
}

#[test]
fn side_by_side_moves_between_cases_and_diff_pairs() {
    let mut app = app_with_run((120, 40));
    press(&mut app, "5");
    assert_eq!(app.side.case, 0);
    app.update(key(KeyCode::Right));
    assert_eq!(app.side.case, 1);
    app.update(key(KeyCode::Left));
    app.update(key(KeyCode::Left));
    assert_eq!(app.side.case, 0);
    press(&mut app, "n");
    assert!(app.matrix.as_ref().unwrap().has_failure(app.side.case));
    assert_eq!(app.side.diff, (0, 1));
    press(&mut app, "d");
    assert_eq!(app.side.diff, (0, 2));
    press(&mut app, "d");
    assert_eq!(app.side.diff, (1, 2));
    press(&mut app, "d");
    assert_eq!(app.side.diff, (0, 1));
    let case = app.side.case;
    app.update(key(KeyCode::Esc));
    assert_eq!(app.screen, Screen::Results);
    assert_eq!(app.results.selected_case(), Some(case));
}

/// `p` shows the prompts each column sent, with the words only one of the diffed pair has
/// highlighted; `p` again goes back to the outputs.
#[test]
fn side_by_side_shows_the_prompts_and_their_differences() {
    let mut cells = cells(3, 0);
    for cell in cells.iter_mut().filter(|c| c.column_index == 1) {
        cell.prompt_json = serde_json::json!({"chat": [
            {"role": "system", "content": "Answer tersely."},
            {"role": "user", "content": format!("Hello, I am case {}.", cell.case_index)},
        ]})
        .to_string();
    }
    let mut app = app((140, 40));
    app.update(Event::RunLoaded(Ok(RunMatrix::from_cells(
        run_row(7, "greetings", 9, 0),
        cells,
        &HashMap::new(),
    ))));
    press(&mut app, "5");
    assert!(
        screen_text(&app).contains("Hello there, friend number 0!")
            || screen_text(&app).contains("Hi friend 0.")
    );
    press(&mut app, "p");
    assert!(app.side.show_prompts);
    let text = screen_text(&app);
    assert!(text.contains("· prompts ·"), "{text}");
    assert!(
        text.contains("[system]") && text.contains("Answer tersely."),
        "{text}"
    );
    assert!(text.contains("Hello, I am case 0."), "{text}");
    assert!(!text.contains("friend"), "outputs are not shown: {text}");
    // "tersely." is column 1's own word: highlighted in the [diff +] pane.
    let terminal = draw(&app);
    let buffer = terminal.backend().buffer();
    let row = (0..buffer.area.height)
        .find(|&y| {
            (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol().to_string())
                .collect::<String>()
                .contains("Answer tersely.")
        })
        .unwrap();
    let line: String = (0..buffer.area.width)
        .map(|x| buffer[(x, row)].symbol().to_string())
        .collect();
    let x = line
        .find("tersely")
        .map(|byte| line[..byte].chars().count())
        .unwrap() as u16;
    assert!(
        buffer[(x, row)].modifier.contains(Modifier::REVERSED),
        "{:?}",
        buffer[(x, row)]
    );
    press(&mut app, "p");
    assert!(screen_text(&app).contains("friend"));
    // Long prompts and outputs scroll; another case starts at the top.
    app.update(key(KeyCode::PageDown));
    assert!(app.side.scroll > 0);
    app.update(key(KeyCode::PageUp));
    assert_eq!(app.side.scroll, 0);
    app.update(key(KeyCode::PageDown));
    app.update(key(KeyCode::Right));
    assert_eq!((app.side.case, app.side.scroll), (1, 0));
}

/// A vision case shows its picture above each column's output, with the expected boxes
/// in green and the column's found boxes in red; `p` (prompts) hides it.
#[test]
fn side_by_side_draws_a_vision_case_with_its_boxes() {
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("photo.png");
    image::RgbImage::from_pixel(300, 200, image::Rgb([250, 250, 250]))
        .save(&photo)
        .unwrap();
    let mut cells = cells(2, 0);
    for cell in &mut cells {
        cell.output = r#"{"objects":[{"label":"person","box":[150,20,290,190]}]}"#.into();
    }
    let mut matrix = RunMatrix::from_cells(run_row(7, "people", 6, 0), cells, &HashMap::new());
    matrix.cases[0].picture = Some(photo);
    matrix.cases[0].expected =
        Some(serde_json::json!([{"label": "person", "box": [10, 10, 140, 190]}]));
    let mut app = app((160, 50));
    app.update(Event::RunLoaded(Ok(matrix)));
    press(&mut app, "5");
    assert!(screen_text(&app).contains("picture (half blocks)"));
    let colour_count = |app: &App, rgb: (u8, u8, u8)| {
        let terminal = draw(app);
        let colour = ratatui::style::Color::Rgb(rgb.0, rgb.1, rgb.2);
        terminal
            .backend()
            .buffer()
            .content()
            .iter()
            .filter(|c| c.fg == colour || c.bg == colour)
            .count()
    };
    let (green, red) = ((40, 200, 60), (230, 40, 40));
    assert!(colour_count(&app, green) >= 30, "expected boxes drawn");
    assert!(colour_count(&app, red) >= 30, "found boxes drawn");
    // The outputs still show under the pictures.
    assert!(screen_text(&app).contains("objects"));
    press(&mut app, "p");
    assert_eq!(
        colour_count(&app, green),
        0,
        "no picture beside the prompts"
    );
    // A case without a picture draws none.
    press(&mut app, "p");
    app.update(key(KeyCode::Right));
    assert_eq!(colour_count(&app, green), 0);
}
