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
mod editing;
mod gpu;
mod history;
mod keys;
mod optimize;
mod ranking;
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

fn training_row(id: i64) -> promptlab::store::TrainingRunRow {
    let epochs: Vec<serde_json::Value> = (1..=5)
        .map(|e| {
            let e = f64::from(e);
            serde_json::json!({"epoch": e, "train_loss": 1.0 / e, "validation_loss": 0.8 / e + 0.05,
                "train_accuracy": 1.0 - 0.3 / e, "validation_accuracy": 1.0 - 0.2 / e})
        })
        .collect();
    promptlab::store::TrainingRunRow {
        id,
        kind: "digit-cnn".into(),
        dataset: "mnist".into(),
        preset: "mnist".into(),
        started_at: "2026-11-28T01:00:00+00:00".into(),
        finished_at: None,
        status: "finished".into(),
        parameters: 225_226,
        config_json: "{}".into(),
        card_json: Some(serde_json::json!({"epochs": epochs}).to_string()),
        weights_path: None,
        test_accuracy: Some(0.9912),
    }
}

/// A card for MobileNetV2 features with a new head on Fashion-MNIST, as
/// `--backbone mobilenet_v2 --freeze all` writes it.
fn mobilenet_card() -> serde_json::Value {
    use promptlab::vision::{dataset::DatasetKind, mobilenet, train};
    let backbone = mobilenet::mobilenet_v2();
    let layers = train::layer_summary(&backbone.layers, [3, 96, 96], 10).unwrap();
    let parameters = layers.iter().map(|l| l.params).sum();
    let card = train::ModelCard {
        format: train::CARD_FORMAT.into(),
        config: train::TrainConfig {
            dataset: DatasetKind::FashionMnist,
            preset: mobilenet::NAME.into(),
            layers: backbone.layers.clone(),
            optimizer: train::OptimizerKind::Adam,
            learning_rate: 1e-3,
            schedule: train::Schedule::Constant,
            batch_size: 64,
            epochs: 5,
            seed: 1,
            validation_split: 0.1,
            patience: None,
            augmentation: promptlab::vision::augment::Augmentation::NONE,
            train_limit: Some(1000),
            backbone: Some(mobilenet::NAME.into()),
            image_size: Some(96),
            init: None,
            frozen_layers: backbone.blocks[backbone.block_count()],
        },
        classes: (0..10).map(|c| c.to_string()).collect(),
        input: [1, 28, 28],
        mean: 0.0,
        std: 1.0,
        adapt: Some(train::Adaptation::imagenet(96)),
        layers,
        parameters,
        frozen_parameters: 2_223_872,
        epochs: (1..=5)
            .map(|epoch| train::EpochStats {
                epoch,
                learning_rate: 1e-3,
                train_loss: 1.0 / epoch as f64,
                train_accuracy: 1.0 - 0.3 / epoch as f64,
                validation_loss: 0.8 / epoch as f64 + 0.05,
                validation_accuracy: 1.0 - 0.2 / epoch as f64,
                images_per_s: 40_000.0,
                seconds: 0.1,
            })
            .collect(),
        best_epoch: 5,
        stopped_early: false,
        test: None,
        train_seconds: 1.0,
        feature_seconds: 0.5,
        labelled_images: 1000,
    };
    serde_json::to_value(card).unwrap()
}

#[test]
fn charts_draw_a_pretrained_network_block_by_block() {
    let mut app = app_with_run((140, 40));
    press(&mut app, "8");
    press(&mut app, "t");
    let mut row = training_row(5);
    row.card_json = Some(mobilenet_card().to_string());
    app.update(Event::TrainingRunsListed(Ok(vec![row])));
    let blocks = &app.charts.runs[0].blocks;
    assert_eq!(
        blocks.len(),
        21,
        "19 blocks, the dropout and the classes layer"
    );
    assert!(blocks[..19].iter().all(|b| b.frozen) && !blocks[20].frozen);
    assert_eq!(blocks[3].name, "inverted residual (expand to 144) + skip");
    assert_eq!(blocks[3].output, "24×24×24");
    let screen = screen_text(&app);
    assert!(
        screen.contains("Network · 2236682 parameters, 2223872 frozen"),
        "{screen}"
    );
    insta::assert_snapshot!("training_network_140x40", draw(&app).backend().to_string());
}

#[test]
fn charts_switch_to_training_curves() {
    let mut app = app_with_run((120, 40));
    assert_eq!(press(&mut app, "8"), [Effect::ListTrainingRuns]);
    assert!(!app.charts.training);
    assert_eq!(press(&mut app, "t"), [Effect::ListTrainingRuns]);
    assert!(app.charts.training);
    assert!(screen_text(&app).contains("No training runs yet"));
    app.update(Event::TrainingRunsListed(Ok(vec![
        training_row(4),
        training_row(3),
    ])));
    assert_eq!(app.charts.runs[0].epochs.len(), 5);
    let screen = screen_text(&app);
    assert!(
        screen.contains("Loss · run 4 (5 epochs, finished)"),
        "{screen}"
    );
    assert!(screen.contains("99.12%"), "{screen}");
    press(&mut app, "j");
    assert_eq!(app.charts.selected, 1);
    press(&mut app, "t");
    assert!(!app.charts.training);
    insta::assert_snapshot!("training_curves_120x40", {
        app.charts.training = true;
        draw(&app).backend().to_string()
    });
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
