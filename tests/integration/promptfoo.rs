//! promptfoo configurations run as they are (tests/fixtures/promptfoo, written after the
//! examples in promptfoo's repository): echo-provider configs with exact expectations,
//! unsupported features refused up front or skipped, an unreachable server recorded per
//! cell, catalog models under ollama ids, a local judge, and a config pointing at a
//! running `promptlab serve`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::common::{SMOLLM2, TempProject, real_model, served_port, text};
use serde_json::Value;

const QWEN: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";

/// A project whose catalog has the real models the configs name, and a copy of the
/// fixture folder inside it.
fn setup(fixture: &str) -> (TempProject, PathBuf) {
    let project = TempProject::new();
    project.write(
        "models/models.yaml",
        &format!(
            "models:\n  smollm2:\n    path: {}\n    context_size: 1024\n  qwen2.5-0.5b:\n    path: {}\n    context_size: 2048\n",
            real_model(SMOLLM2).display(),
            real_model(QWEN).display()
        ),
    );
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/promptfoo")
        .join(fixture);
    let target = project.root().join("configs").join(fixture);
    copy_dir(&source, &target);
    (project, target.join("promptfooconfig.yaml"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

fn eval(project: &TempProject, config: &Path, extra: &[&str]) -> (Output, Option<Value>) {
    let report = project.root().join("report.json");
    let _ = std::fs::remove_file(&report);
    let mut args = vec![
        "eval".to_string(),
        config.display().to_string(),
        "-o".into(),
        report.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = Command::new(env!("CARGO_BIN_EXE_promptlab"))
        .args(&args)
        .current_dir(project.root())
        .output()
        .unwrap();
    let json = std::fs::read_to_string(&report)
        .ok()
        .map(|t| serde_json::from_str(&t).unwrap());
    (out, json)
}

/// (column id, case index, passed, error) of every cell, sorted.
fn cells(report: &Value) -> Vec<(String, u64, bool, Option<String>)> {
    let columns = report["columns"].as_array().unwrap();
    let mut cells: Vec<_> = report["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let column = &columns[c["column"].as_u64().unwrap() as usize];
            (
                column["id"].as_str().unwrap().to_string(),
                c["case"].as_u64().unwrap(),
                c["passed"].as_bool().unwrap(),
                c["error"].as_str().map(str::to_string),
            )
        })
        .collect();
    cells.sort();
    cells
}

fn failures(report: &Value) -> Vec<(String, u64)> {
    cells(report)
        .into_iter()
        .filter(|c| !c.2)
        .map(|c| (c.0, c.1))
        .collect()
}

/// A fixture, its number of cells, and the (column, case) cells that fail.
type Expectation = (&'static str, usize, &'static [(&'static str, u64)]);

#[test]
fn echo_configs_give_exactly_the_expected_verdicts() {
    let expectations: &[Expectation] = &[
        ("getting-started", 4, &[]),
        ("simple-csv", 6, &[]),
        ("csv-metadata", 3, &[]),
        ("jsonl-tests", 3, &[("prompt @ echo", 2)]),
        (
            "support-rubric",
            3,
            // A labelled echo provider is a column named by its label, as in promptfoo.
            &[
                ("prompt @ Mock support assistant", 0),
                ("prompt @ Mock support assistant", 2),
            ],
        ),
        ("separate-test-configs", 12, &[("prompt1-1 @ echo", 3)]),
        ("translation-scenarios", 16, &[]),
        ("chat-messages", 4, &[]),
        // Verdicts of promptfoo 0.118.
        ("json-output", 2, &[]),
        (
            "simple-test",
            4,
            &[
                ("prompts-1 @ echo", 0),
                ("prompts-1 @ echo", 1),
                ("prompts-2 @ echo", 0),
                ("prompts-2 @ echo", 1),
            ],
        ),
    ];
    for (fixture, count, failing) in expectations {
        let (project, config) = setup(fixture);
        let (out, report) = eval(&project, &config, &[]);
        let report = report.unwrap_or_else(|| panic!("{fixture}: no report: {}", text(&out)));
        let all = cells(&report);
        assert_eq!(all.len(), *count, "{fixture}: {all:?}");
        assert!(all.iter().all(|c| c.3.is_none()), "{fixture}: {all:?}");
        let expected: Vec<(String, u64)> =
            failing.iter().map(|(c, i)| (c.to_string(), *i)).collect();
        assert_eq!(failures(&report), expected, "{fixture}");
        let code = if failing.is_empty() { 0 } else { 1 };
        assert_eq!(out.status.code(), Some(code), "{fixture}: {}", text(&out));
    }
}

fn python_available() -> bool {
    Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Script and structured-output configs (tests/promptfoo/scripts) give the verdicts
/// promptfoo 0.118 gave on them, test by test and assertion by assertion (recorded in
/// each folder's expected.json by record.sh).
#[test]
fn script_configs_agree_with_promptfoo() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/promptfoo/scripts");
    for fixture in ["javascript", "python", "structured"] {
        if fixture == "python" && !python_available() {
            eprintln!("python3 is missing: the python config is not checked");
            continue;
        }
        let project = TempProject::new();
        let target = project.root().join(fixture);
        copy_dir(&root.join(fixture), &target);
        let config = target.join("promptfooconfig.yaml");
        let (out, report) = eval(&project, &config, &[]);
        let report = report.unwrap_or_else(|| panic!("{fixture}: no report: {}", text(&out)));
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(target.join("expected.json")).unwrap())
                .unwrap();
        let mut cells: Vec<&Value> = report["cells"].as_array().unwrap().iter().collect();
        cells.sort_by_key(|c| c["case"].as_u64());
        let verdicts = expected["verdicts"].as_array().unwrap();
        assert_eq!(cells.len(), verdicts.len(), "{fixture}");
        for (cell, want) in cells.iter().zip(verdicts) {
            let at = format!("{fixture}: test {} ({})", want["test"], want["description"]);
            let got: Vec<bool> = cell["assertions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["passed"].as_bool().unwrap())
                .collect();
            let wanted: Vec<bool> = want["assertions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_bool().unwrap())
                .collect();
            assert_eq!(got, wanted, "{at}: {}", cell["assertions"]);
            assert_eq!(cell["passed"], want["pass"], "{at}");
            assert_eq!(
                cell["error"].is_string(),
                want["error"],
                "{at}: {}",
                cell["error"]
            );
        }
    }
}

#[test]
fn a_script_that_never_ends_is_stopped_and_reported() {
    let project = TempProject::new();
    project.write(
        "loop/promptfooconfig.yaml",
        "prompts: ['Hi {{name}}']\nproviders: [echo]\ntests:\n  - vars: {name: Ada}\n    assert:\n      - type: javascript\n        value: |\n          while (true) {}\n          return true;\n      - type: contains\n        value: Ada\n",
    );
    let config = project.root().join("loop/promptfooconfig.yaml");
    let report = project.root().join("report.json");
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_promptlab"))
        .args([
            "eval",
            config.to_str().unwrap(),
            "-o",
            report.to_str().unwrap(),
        ])
        .env("PROMPTLAB_SCRIPT_TIMEOUT", "0.5")
        .current_dir(project.root())
        .output()
        .unwrap();
    assert!(started.elapsed().as_secs() < 30, "{}", text(&out));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let assertions = &report["cells"][0]["assertions"];
    assert_eq!(assertions[0]["passed"], false);
    let reason = assertions[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("javascript") && reason.contains("ran too long"),
        "{reason}"
    );
    assert_eq!(
        assertions[1]["passed"], true,
        "the other assertions still count"
    );
}

#[test]
fn runs_write_promptfoo_json_for_promptfoo_tools() {
    let (project, config) = setup("getting-started");
    let out_path = project.root().join("out.promptfoo.json");
    let out = Command::new(env!("CARGO_BIN_EXE_promptlab"))
        .args([
            "eval",
            config.to_str().unwrap(),
            "-o",
            out_path.to_str().unwrap(),
        ])
        .current_dir(project.root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    let results = &written["results"];
    assert_eq!(results["version"], 3);
    let cells = results["results"].as_array().unwrap();
    assert_eq!(cells.len(), 4);
    assert!(
        cells
            .iter()
            .all(|c| c["success"] == true && c["failureReason"] == 0)
    );
    assert!(
        cells
            .iter()
            .all(|c| c["gradingResult"]["componentResults"].is_array())
    );
    assert_eq!(results["stats"]["successes"], 4);
    let passes: u64 = results["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metrics"]["testPassCount"].as_u64().unwrap())
        .sum();
    assert_eq!(passes, 4);
}

#[test]
fn unsupported_features_stop_the_run_unless_skipped() {
    for (fixture, listed, cells_when_skipped) in [(
        "unsupported",
        vec!["assertion type `ruby`", "tests[1]: option `prefix`"],
        2,
    )] {
        let (project, config) = setup(fixture);
        let (out, report) = eval(&project, &config, &[]);
        assert_eq!(out.status.code(), Some(2), "{fixture}: {}", text(&out));
        assert!(report.is_none());
        let message = text(&out);
        for item in listed {
            assert!(message.contains(item), "{fixture}: {item}: {message}");
        }
        assert!(message.contains("--skip-unsupported"), "{message}");

        let (out, report) = eval(&project, &config, &["--skip-unsupported"]);
        assert_eq!(out.status.code(), Some(0), "{fixture}: {}", text(&out));
        assert!(text(&out).contains("skipped (promptlab lacks it)"));
        let report = report.unwrap();
        assert_eq!(cells(&report).len(), cells_when_skipped, "{fixture}");
        assert!(
            failures(&report).is_empty(),
            "{fixture}: {:?}",
            cells(&report)
        );
    }
}

#[test]
fn an_unreachable_llama_server_fails_each_cell_and_the_run_goes_on() {
    let (project, config) = setup("llama-server");
    let (out, _) = eval(&project, &config, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("assertion type `answer-relevance`"));

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml = std::fs::read_to_string(&config).unwrap().replace(
        "http://localhost:8080",
        &format!("http://127.0.0.1:{closed}"),
    );
    std::fs::write(&config, yaml).unwrap();
    let (out, report) = eval(&project, &config, &["--skip-unsupported", "--no-cache"]);
    let report = report.unwrap_or_else(|| panic!("{}", text(&out)));
    let all = cells(&report);
    assert_eq!(all.len(), 2, "two prompts, one test");
    for cell in &all {
        let error = cell.3.as_deref().unwrap_or_default();
        assert!(error.contains("cannot connect"), "{error}");
        assert!(error.contains("gave up after 4 attempts"), "{error}");
    }
    assert_ne!(out.status.code(), Some(0));
}

#[test]
fn ollama_ids_run_catalog_models_on_their_own_prompts() {
    let (project, config) = setup("ollama-local");
    let (out, report) = eval(&project, &config, &[]);
    let report = report.unwrap_or_else(|| panic!("{}", text(&out)));
    let columns: Vec<&str> = report["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        ["chat_prompt @ ollama:chat:smollm2", "llama_prompt @ echo"]
    );
    let all = cells(&report);
    assert_eq!(all.len(), 6);
    assert!(all.iter().all(|c| c.3.is_none()), "{all:?}");
    // num_predict became max_tokens.
    for cell in report["cells"].as_array().unwrap() {
        if cell["column"] == 0 {
            assert!(cell["completion_tokens"].as_u64().unwrap() <= 24, "{cell}");
        }
    }
}

#[test]
fn a_local_model_judges_llm_rubric_for_a_local_model() {
    let (project, config) = setup("judged-local");
    let (out, report) = eval(&project, &config, &["--no-cache"]);
    let report = report.unwrap_or_else(|| panic!("{}", text(&out)));
    let all = cells(&report);
    assert_eq!(all.len(), 2);
    for cell in report["cells"].as_array().unwrap() {
        assert!(cell["error"].is_null(), "{cell}");
        let kinds: Vec<&str> = cell["assertions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["assertion"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["llm-rubric", "icontains"], "{cell}");
        let rubric = &cell["assertions"][0];
        assert!(rubric["judge_error"].is_null(), "{rubric}");
        assert!(rubric["reason"].is_string(), "{rubric}");
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_openai_provider_with_api_base_url_reaches_promptlab_serve() {
    let (project, config) = setup("openai-compatible");
    let mut child = Command::new(env!("CARGO_BIN_EXE_promptlab"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--api-key-env", "SERVED_KEY", "--threads", "2"])
        .env("SERVED_KEY", "pf-key")
        .current_dir(project.root())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let port = served_port(&mut child);
    let _server = Server(child);
    let yaml = std::fs::read_to_string(&config)
        .unwrap()
        .replace("PORT", &port.to_string());
    std::fs::write(&config, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_promptlab"))
        .args([
            "eval",
            &config.display().to_string(),
            "-o",
            "r.json",
            "--no-cache",
        ])
        .env("SERVED_KEY", "pf-key")
        .current_dir(project.root())
        .output()
        .unwrap();
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(project.root().join("r.json"))
            .unwrap_or_else(|_| panic!("{}", text(&out))),
    )
    .unwrap();
    for cell in report["cells"].as_array().unwrap() {
        assert!(cell["error"].is_null(), "{cell}");
        assert!(!cell["output"].as_str().unwrap().is_empty(), "{cell}");
    }
    assert_eq!(report["columns"][0]["model"], "served smollm2");
}

/// Named metrics and `derivedMetrics` give what promptfoo 0.118 gave on the same config
/// (its `results.prompts[].metrics.namedScores`, recorded from `promptfoo eval -o`).
#[test]
fn named_and_derived_metrics_equal_promptfoos() {
    let project = TempProject::new();
    project.write("models/models.yaml", "models: {}\n");
    let config = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/promptfoo/derived-metrics/promptfooconfig.yaml");
    let ours = project.root().join("ours.promptfoo.json");
    let (out, report) = eval(
        &project,
        &config,
        &["--no-store", "-o", &ours.display().to_string()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("Named metrics"), "{}", text(&out));
    let report = report.unwrap();
    let promptfoo = [
        [
            ("tp", 2.0),
            ("fp", 0.0),
            ("fn", 1.0),
            ("precision", 1.0),
            ("recall", 2.0 / 3.0),
            ("f1", 0.8),
            ("scaled", 20.0),
        ],
        [
            ("tp", 2.0),
            ("fp", 2.0),
            ("fn", 1.0),
            ("precision", 0.5),
            ("recall", 2.0 / 3.0),
            ("f1", 0.5714285714285715),
            ("scaled", 20.0),
        ],
    ];
    let exported: Value = serde_json::from_str(&std::fs::read_to_string(&ours).unwrap()).unwrap();
    for (column, expected) in promptfoo.iter().enumerate() {
        let summary = &report["summaries"][column]["named_scores"];
        let metrics = &exported["results"]["prompts"][column]["metrics"];
        for (name, value) in expected {
            for got in [&summary[name], &metrics["namedScores"][name]] {
                let got = got.as_f64().unwrap_or(f64::NAN);
                assert!(
                    (got - value).abs() < 1e-12,
                    "column {column} {name}: {got} ≠ {value}"
                );
            }
        }
        assert_eq!(metrics["namedScoresCount"]["tp"], 3);
        assert_eq!(metrics["namedScoresCount"]["fp"], 2);
    }
}

/// `namedScores` returned by javascript assertions count toward named metrics as
/// promptfoo 0.118 counts them (its values for this config: hits 4 over 2, misses 4 over
/// 3, quality 0.75 over 2, ratio 0.5).
#[test]
fn named_scores_from_scripts_equal_promptfoos() {
    let project = TempProject::new();
    project.write("models/models.yaml", "models: {}\n");
    let config = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/promptfoo/named-scores-js/promptfooconfig.yaml");
    let ours = project.root().join("ours.promptfoo.json");
    let (out, _) = eval(
        &project,
        &config,
        &["--no-store", "-o", &ours.display().to_string()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let exported: Value = serde_json::from_str(&std::fs::read_to_string(&ours).unwrap()).unwrap();
    let metrics = &exported["results"]["prompts"][0]["metrics"];
    for (name, value, count) in [
        ("hits", 4.0, Some(2)),
        ("misses", 4.0, Some(3)),
        ("quality", 0.75, Some(2)),
        ("ratio", 0.5, None),
    ] {
        let got = metrics["namedScores"][name].as_f64().unwrap_or(f64::NAN);
        assert!((got - value).abs() < 1e-12, "{name}: {got} ≠ {value}");
        if let Some(count) = count {
            assert_eq!(metrics["namedScoresCount"][name], count, "{name}");
        }
    }
}
