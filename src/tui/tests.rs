//! State-machine tests (no terminal, no runtime) and `TestBackend` snapshots of every
//! screen at 120×40 and 80×24, on a fixture project and a synthetic run.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use promptlab::catalog::ModelEntry;
use promptlab::compare;
use promptlab::gguf::{GgufInfo, MetaValue};
use promptlab::project::{self, ModelFile};
use promptlab::results::RunMatrix;
use promptlab::store::{RunRow, RunStatus, StoredCell};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::{Buffer, Cell};
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier};

use super::app::{App, CellOutcome, Effect, Event, Popup, RunEvent, Screen};
use super::{results, view};

const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

fn fixture_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tui-project")
}

/// A model with a real-looking header, so snapshots do not depend on downloaded files.
pub(super) fn tiny_model() -> ModelFile {
    let metadata = BTreeMap::from([
        (
            "general.architecture".to_string(),
            MetaValue::String("llama".into()),
        ),
        ("llama.context_length".to_string(), MetaValue::U64(8192)),
        (
            "tokenizer.chat_template".to_string(),
            MetaValue::String(CHATML.into()),
        ),
    ]);
    ModelFile {
        name: "tiny".into(),
        entry: ModelEntry {
            description: "a small chat model".into(),
            ..ModelEntry::gguf(fixture_root().join("models/tiny.gguf"))
        },
        info: Ok(GgufInfo {
            version: 3,
            metadata,
            tensor_count: 272,
            parameter_count: 134_515_008,
            data_offset: 0,
            data_size: 0,
            file_size: 103_000_000,
            tensor_types: BTreeMap::from([("Q4_1".to_string(), 134_000_000)]),
            bos_text: Some("<|im_start|>".into()),
            eos_text: Some("<|im_end|>".into()),
            tensors: Vec::new(),
        }),
    }
}

fn app(size: (u16, u16)) -> App {
    let mut scan = project::scan(&fixture_root());
    scan.models = vec![tiny_model()];
    App::new(scan, size, Instant::now())
}

fn key(code: KeyCode) -> Event {
    Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn ctrl(c: char) -> Event {
    Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

fn press(app: &mut App, keys: &str) -> Vec<Effect> {
    keys.chars()
        .flat_map(|c| app.update(key(KeyCode::Char(c))))
        .collect()
}

fn run_row(id: i64, eval_set: &str, done: usize, passed: usize) -> RunRow {
    RunRow {
        id,
        eval_set: eval_set.into(),
        eval_set_path: format!("/project/eval-sets/{eval_set}.yaml"),
        started_at: format!("2026-11-28T10:{id:02}:00+00:00"),
        finished_at: Some(format!("2026-11-28T10:{id:02}:30+00:00")),
        status: RunStatus::Finished,
        cell_count: done,
        cells_done: done,
        passed,
        label: None,
        // Every other run is a cached re-run.
        cached: if id % 2 == 0 { done } else { 0 },
        columns: vec!["greet:short @ tiny".into(), "greet:warm @ tiny".into()],
        // Every run asked something else, unless a test says otherwise.
        config_digest: Some(format!("config-{id}")),
    }
}

/// `cases` cases × 3 columns with a deterministic mix of passes, failures and outputs.
fn cells(cases: usize, flip: usize) -> Vec<StoredCell> {
    let columns = [
        "greet:short @ tiny",
        "greet:warm @ tiny",
        "greet:warm @ other",
    ];
    let mut cells = Vec::new();
    for case in 0..cases {
        for (column, column_id) in columns.iter().enumerate() {
            let passed = !(case * 7 + column * 3 + flip).is_multiple_of(5);
            let output = if passed {
                format!("Hello there, friend number {case}!")
            } else {
                format!("Hi friend {case}.")
            };
            let assertions = serde_json::json!([{
                "assertion": "icontains", "passed": passed, "score": if passed {1.0} else {0.0},
                "weight": 1.0,
                "reason": if passed { serde_json::Value::Null } else { format!("expected output to contain \"case {case}\"").into() }
            }]);
            cells.push(StoredCell {
                column_index: column,
                case_index: case,
                column_id: column_id.to_string(),
                case_id: format!("case-{case:04}"),
                cache_key: format!("{case}-{column}"),
                prompt_json: serde_json::json!({"chat": [{"role": "user", "content": format!("Hello, I am case {case}.")}]}).to_string(),
                output,
                error: None,
                passed,
                score: if passed { 1.0 } else { 0.0 },
                assertions_json: assertions.to_string(),
                finish: Some("stop".into()),
                prompt_tokens: 20 + column as u32,
                completion_tokens: 5 + (case % 4) as u32,
                ttft_ms: 10.0,
                latency_ms: 100.0 + ((case * 37 + column * 11) % 90) as f64,
                tokens_per_s: Some(50.0),
                cached: column == 0 && case % 3 == 0,
                logprobs_json: None,
            });
        }
    }
    cells
}

fn matrix(cases: usize) -> RunMatrix {
    let tags = HashMap::from([
        ("case-0001".to_string(), vec!["formal".to_string()]),
        ("case-0002".to_string(), vec!["short-name".to_string()]),
    ]);
    RunMatrix::from_cells(
        run_row(7, "greetings", cases * 3, 0),
        cells(cases, 0),
        &tags,
    )
}

fn app_with_run(size: (u16, u16)) -> App {
    let mut app = app(size);
    app.update(Event::RunLoaded(Ok(matrix(30))));
    app
}

fn draw(app: &App) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap();
    terminal.draw(|frame| view::draw(app, frame)).unwrap();
    terminal
}

fn screen_text(app: &App) -> String {
    draw(app).backend().to_string()
}

mod agent;
mod charts;
mod editing;
mod gpu;
mod history;
mod keys;
mod optimize;
mod ranking;
mod results_matrix;
mod run;
mod search;
mod snapshot;

// ---------- state machine ----------

#[test]
fn digits_switch_screens_and_history_asks_for_the_runs() {
    let mut app = app((120, 40));
    assert_eq!(app.screen, Screen::Library);
    assert!(press(&mut app, "4").is_empty());
    assert_eq!(app.screen, Screen::Results);
    assert_eq!(press(&mut app, "7"), [Effect::ListRuns]);
    assert_eq!(app.screen, Screen::History);
    assert_eq!(press(&mut app, "0"), [Effect::ListOptimizations]);
    assert_eq!(app.screen, Screen::Optimize, "0 is the tenth screen");
}

#[test]
fn quitting_asks_first_while_a_run_is_active() {
    let mut app = app((120, 40));
    assert_eq!(press(&mut app, "q"), [Effect::Quit]);

    app.update(Event::Run(RunEvent::Started {
        run_id: Some(1),
        cells: vec![("c".into(), "1".into())],
    }));
    assert!(app.run_active());
    assert!(press(&mut app, "q").is_empty());
    assert_eq!(app.popup, Some(Popup::ConfirmQuit));
    assert!(press(&mut app, "n").is_empty());
    assert_eq!(app.popup, None);
    press(&mut app, "q");
    assert_eq!(press(&mut app, "y"), [Effect::CancelRun, Effect::Quit]);
}

#[test]
fn library_lists_broken_files_and_opens_prompts_and_eval_sets() {
    let mut app = app((120, 40));
    // broken.yaml sorts first and carries its error.
    let broken = &app.scan.prompts[0];
    assert!(broken.prompts.as_ref().is_err());
    assert!(
        app.scan.eval_sets[1]
            .eval_set
            .as_ref()
            .unwrap_err()
            .contains("asert")
    );
    press(&mut app, "j");
    app.update(key(KeyCode::Enter));
    assert_eq!(app.screen, Screen::Editor);
    assert!(app.editor.path.as_ref().unwrap().ends_with("greet.yaml"));

    press(&mut app, "1");
    press(&mut app, "j");
    app.update(key(KeyCode::Enter));
    assert_eq!(app.screen, Screen::Run);
    let ticked: Vec<&str> = app
        .run
        .prompts
        .iter()
        .filter(|(_, t)| *t)
        .map(|(p, _)| p.as_str())
        .collect();
    assert_eq!(ticked, ["greet:short", "greet:warm"]);
    let models: Vec<&str> = app
        .run
        .models
        .iter()
        .filter(|(_, t)| *t)
        .map(|(m, _)| m.as_str())
        .collect();
    assert_eq!(models, ["tiny"]);
}

#[test]
fn mouse_clicks_tabs_and_rows_and_scrolls() {
    let mut app = app_with_run((120, 40));
    let click = |column, row| {
        Event::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column,
            row,
            modifiers: KeyModifiers::NONE,
        })
    };
    // The Results tab is the fourth label on row 0.
    let x = (0..120)
        .find(|&x| view::tab_at(x, 120) == Some(Screen::Results))
        .unwrap();
    app.update(click(x, 0));
    assert_eq!(app.screen, Screen::Results);
    // Row 2 is the block border + 2 header lines away from the first case.
    app.update(click(10, 6));
    assert_eq!(app.results.selected, 2);
    app.update(Event::Mouse(MouseEvent {
        kind: MouseEventKind::ScrollDown,
        column: 10,
        row: 10,
        modifiers: KeyModifiers::NONE,
    }));
    assert_eq!(app.results.selected, 3);
}

/// Draws `app` into an area inset in a larger buffer filled with a marker, as it would be
/// inside another layout; panics if any cell outside the area changed. Returns the buffer
/// and the area.
fn draw_inset(app: &App) -> (Buffer, Rect) {
    const MARGIN: u16 = 2;
    let (width, height) = app.size;
    let area = Rect::new(MARGIN, MARGIN, width, height);
    let outer = Rect::new(0, 0, width + 2 * MARGIN, height + 2 * MARGIN);
    let marker = Cell::new("▒");
    let mut buf = Buffer::filled(outer, marker.clone());
    for position in area.positions() {
        buf[position].reset();
    }
    view::render(app, area, &mut buf);
    for position in outer.positions().filter(|p| !area.contains(*p)) {
        assert_eq!(
            buf[position], marker,
            "{:?} (help {}) at {width}×{height} drew outside its area at {position:?}",
            app.screen, app.help
        );
    }
    (buf, area)
}

/// Row `y` of `area` (0 is its top) as text.
fn area_row(buf: &Buffer, area: Rect, y: u16) -> String {
    (area.left()..area.right())
        .map(|x| buf[(x, area.top() + y)].symbol())
        .collect()
}

#[test]
fn drawing_stays_in_its_area_and_shows_the_screen_at_any_size() {
    const TOO_SMALL: &str = "promptlab: enlarge the terminal";
    let sizes = [
        (1, 1),
        (10, 3),
        (19, 5),
        (20, 4),
        (20, 5),
        (40, 12),
        (80, 24),
        (200, 60),
    ];
    for (width, height) in sizes {
        let mut app = app_with_run((width, height));
        for screen in Screen::ALL {
            for help in [false, true] {
                app.screen = screen;
                app.help = help;
                let (buf, area) = draw_inset(&app);
                let rows: Vec<String> = (0..height).map(|y| area_row(&buf, area, y)).collect();
                let at = format!(
                    "{screen:?} (help {help}) at {width}×{height}:\n{}",
                    rows.join("\n")
                );
                if width < 20 || height < 5 {
                    // Only the request to enlarge, from its first word on.
                    let first = rows[0].trim_end();
                    assert!(!first.is_empty() && TOO_SMALL.starts_with(first), "{at}");
                    continue;
                }
                // The tab bar starts with the first tab; the current tab, where it fits
                // whole, is the only one highlighted, at the columns a click maps to it.
                assert!(rows[0].trim_start().starts_with("1 Library"), "{at}");
                let columns: Vec<u16> = (0..400)
                    .filter(|&x| view::tab_at(x, width) == Some(screen))
                    .collect();
                let (first, last) = (columns[0], *columns.last().unwrap());
                if last < width {
                    let label: String = (first..=last)
                        .map(|x| buf[(area.left() + x, area.top())].symbol())
                        .collect();
                    let expected = format!("{} {}", screen.key(), screen.short_title());
                    assert!(label.trim().starts_with(&expected), "{label:?}; {at}");
                    let highlighted: Vec<u16> = (0..width)
                        .filter(|&x| buf[(area.left() + x, area.top())].bg == Color::Cyan)
                        .collect();
                    assert_eq!(highlighted, columns, "{at}");
                }
                // The status bar on the last row, also while the help overlay is open.
                assert!(
                    rows[usize::from(height) - 1].contains("? help · q quit"),
                    "{at}"
                );
                if !help {
                    let body = &rows[1..usize::from(height) - 1];
                    assert!(body.iter().any(|row| !row.trim().is_empty()), "{at}");
                } else if width >= 40 && height >= 12 {
                    // The help overlay, this screen's keys first (or the global ones).
                    assert!(rows.iter().any(|row| row.contains(" Keys ")), "{at}");
                    let (header, column) = rows
                        .iter()
                        .enumerate()
                        .find_map(|(y, row)| {
                            let x = row.find("screen").filter(|_| row.contains("keys"))?;
                            Some((y, row[..x].chars().count()))
                        })
                        .unwrap_or_else(|| panic!("no key table; {at}"));
                    let first_binding = super::help::KEYMAP
                        .iter()
                        .find(|b| b.screen == screen.title())
                        .map_or("all", |b| b.screen);
                    let under: String = rows[header + 1].chars().skip(column).collect();
                    assert!(under.starts_with(first_binding), "{at}");
                }
            }
        }
    }
}

/// Frame time of the results matrix at 1,000 cases × 6 columns (a benchmark: run with
/// `cargo test --release --bin promptlab bench_results_matrix -- --ignored --nocapture`).
#[test]
#[ignore]
fn bench_results_matrix() {
    let mut cells_6 = Vec::new();
    for (i, mut cell) in cells(1000, 0).into_iter().chain(cells(1000, 2)).enumerate() {
        if i >= 3000 {
            cell.column_index += 3;
            cell.column_id = format!("{} (b)", cell.column_id);
        }
        cells_6.push(cell);
    }
    let matrix = RunMatrix::from_cells(run_row(1, "big", 6000, 0), cells_6, &HashMap::new());
    let mut app = app((240, 60));
    app.update(Event::RunLoaded(Ok(matrix)));
    assert_eq!(app.matrix.as_ref().unwrap().columns.len(), 6);
    let mut terminal = Terminal::new(TestBackend::new(240, 60)).unwrap();
    let frames = 200;
    let started = Instant::now();
    for i in 0..frames {
        app.results.selected = (i * 37) % 1000;
        terminal.draw(|frame| view::draw(&app, frame)).unwrap();
    }
    let per_frame = started.elapsed().as_secs_f64() * 1000.0 / frames as f64;
    // Filtering re-computes rows over all cases; measure it too.
    let started = Instant::now();
    for _ in 0..20 {
        app.results.filter = promptlab::results::RowFilter::Failures;
        app.results.refresh(app.matrix.as_ref());
        app.results.filter = promptlab::results::RowFilter::All;
        app.results.refresh(app.matrix.as_ref());
    }
    let per_filter = started.elapsed().as_secs_f64() * 1000.0 / 40.0;
    println!(
        "results matrix 1000 cases x 6 columns at 240x60: {per_frame:.2} ms per frame, {per_filter:.2} ms per filter change"
    );
    let _ = results::ResultsState::default();
}
