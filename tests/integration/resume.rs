//! The run store through the real binary: cached re-runs, editing one prompt re-generates
//! only its column, and a run killed with SIGKILL at any moment keeps its finished cells,
//! leaves a sound database, and resumes to the same results as an uninterrupted run
//! (issue 3).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::{SMOLLM2, TempProject, promptlab, real_model};

/// Real-model runs one at a time: two decoders on two cores distort the kill timings.
static REAL_MODEL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn outputs(report: &Path) -> Vec<(String, String, String)> {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report).expect("report")).expect("json");
    json["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|c| {
            let column = c["column"].as_u64().unwrap_or(0) as usize;
            let case = c["case"].as_u64().unwrap_or(0) as usize;
            (
                json["columns"][column]["id"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                json["cases"][case]["id"].as_str().unwrap_or("").to_string(),
                c["output"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// A project whose catalog holds SmolLM2 as `smollm2`, with a context of `context` tokens.
fn smollm2_project(context: u32) -> TempProject {
    let project = TempProject::new();
    project.write(
        "models/models.yaml",
        &format!(
            "models:\n  smollm2:\n    path: {}\n    context_size: {context}\n",
            real_model(SMOLLM2).display()
        ),
    );
    project
}

/// Two echo prompts over 5 cases.
fn echo_project() -> TempProject {
    let project = TempProject::new();
    project.write("prompts/a.yaml", "name: a\ncompletion: 'A {{ x }}'\n");
    project.write("prompts/b.yaml", "name: b\ncompletion: 'B {{ x }}'\n");
    let mut cases = String::from("prompts: [a, b]\nmodels: [echo]\ncases:\n");
    for i in 0..5 {
        cases.push_str(&format!(
            "  - vars: {{x: '{i}'}}\n    assert: [{{type: contains, value: '{i}'}}]\n"
        ));
    }
    project.write("eval-sets/s.yaml", &cases);
    project
}

#[test]
fn rerun_is_served_from_the_cache_and_an_edit_regenerates_one_column() {
    let project = echo_project();
    let first = promptlab(&["eval", "eval-sets/s.yaml"], project.root());
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert!(!text(&first).contains("from the cache"), "{}", text(&first));
    let second = promptlab(&["eval", "eval-sets/s.yaml"], project.root());
    assert!(
        text(&second).contains("10 from the cache"),
        "{}",
        text(&second)
    );
    project.write("prompts/b.yaml", "name: b\ncompletion: 'B2 {{ x }}'\n");
    let third = promptlab(
        &["eval", "eval-sets/s.yaml", "-o", "r.json"],
        project.root(),
    );
    assert!(
        text(&third).contains("5 from the cache"),
        "{}",
        text(&third)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.root().join("r.json")).unwrap())
            .unwrap();
    for cell in report["cells"].as_array().unwrap() {
        let column = report["columns"][cell["column"].as_u64().unwrap() as usize]["id"]
            .as_str()
            .unwrap();
        assert_eq!(cell["cached"], column.starts_with("a "), "{cell}");
    }
    let fresh = promptlab(&["eval", "eval-sets/s.yaml", "--no-cache"], project.root());
    assert!(!text(&fresh).contains("from the cache"), "{}", text(&fresh));
}

#[test]
fn a_newer_database_is_refused() {
    let project = echo_project();
    let db = project.root().join("new.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let before = std::fs::read(&db).unwrap();
    let out = promptlab(
        &["eval", "eval-sets/s.yaml", "--store", "new.db"],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("999"), "{}", text(&out));
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "the database was altered"
    );
}

#[test]
fn killed_runs_resume_to_the_uninterrupted_result() {
    let _guard = REAL_MODEL.lock().unwrap_or_else(|e| e.into_inner());
    let project = smollm2_project(512);
    project.write(
        "prompts/p.yaml",
        "name: p\nparams: {max_tokens: 12}\nmessages:\n  - role: system\n    content: Answer with one word.\n  - role: user\n    content: 'What colour is {{ thing }}?'\n",
    );
    let things = [
        "grass",
        "the sky",
        "snow",
        "coal",
        "a banana",
        "blood",
        "an orange",
        "milk",
        "a tomato",
        "the sea",
        "ash",
        "gold",
    ];
    let mut set = String::from("prompts: [p]\nmodels: [smollm2]\ncases:\n");
    for thing in things {
        set.push_str(&format!("  - vars: {{thing: '{thing}'}}\n"));
    }
    project.write("eval-sets/c.yaml", &set);
    // Killed and resumed runs decode 3 cells at a time; the reference decodes 8 at a time
    // (issue 18: the cells a resume adds are the ones an uninterrupted batched run gives).
    let common = [
        "eval",
        "eval-sets/c.yaml",
        "--threads",
        "1",
        "--parallel",
        "3",
        "--no-cache",
        "--quiet",
    ];

    let reference_store = "--store=reference.db";
    let reference = promptlab(
        &[
            "eval",
            "eval-sets/c.yaml",
            "--threads",
            "1",
            "--parallel",
            "8",
            "--no-cache",
            "--quiet",
            reference_store,
            "-o",
            "reference.json",
        ],
        project.root(),
    );
    assert!(
        matches!(reference.status.code(), Some(0 | 1)),
        "{}",
        text(&reference)
    );
    let expected = outputs(&project.root().join("reference.json"));
    assert_eq!(expected.len(), things.len());

    // Kill at different moments: while loading, early, and mid-run. The last round waits
    // for the first recorded cell rather than a fixed time, so a slow or busy machine
    // still kills it mid-run.
    let mut partial_rounds = 0;
    for (round, delay_ms) in [Some(150u64), Some(900), None].into_iter().enumerate() {
        let store = format!("--store=kill{round}.db");
        let mut child = Command::new(env!("CARGO_BIN_EXE_promptlab"))
            .args([&common[..], &[store.as_str()]].concat())
            .current_dir(project.root())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start promptlab");
        match delay_ms {
            Some(ms) => std::thread::sleep(Duration::from_millis(ms)),
            None => {
                let db = project.root().join(format!("kill{round}.db"));
                let started = std::time::Instant::now();
                while started.elapsed() < Duration::from_secs(120) {
                    let recorded = rusqlite::Connection::open_with_flags(
                        &db,
                        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                    )
                    .and_then(|conn| {
                        conn.query_row("SELECT count(*) FROM cells", [], |r| r.get::<_, i64>(0))
                    })
                    .unwrap_or(0);
                    if recorded > 0 || child.try_wait().ok().flatten().is_some() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        let _ = child.kill();
        let _ = child.wait();

        let db = project.root().join(format!("kill{round}.db"));
        if db.exists() {
            let conn = rusqlite::Connection::open(&db).unwrap();
            let check: String = conn
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(check, "ok", "round {round}");
            let recorded: i64 = conn
                .query_row("SELECT count(*) FROM cells", [], |r| r.get(0))
                .unwrap_or(0);
            if recorded > 0 && (recorded as usize) < things.len() {
                partial_rounds += 1;
            }
        }
        let report = format!("resumed{round}.json");
        let resumed = promptlab(
            &[
                &common[..],
                &[store.as_str(), "--resume", "-o", report.as_str()],
            ]
            .concat(),
            project.root(),
        );
        let log = text(&resumed);
        if log.contains("no interrupted run") {
            // Killed before the run was created: nothing to resume, nothing lost.
            continue;
        }
        assert!(
            matches!(resumed.status.code(), Some(0 | 1)),
            "round {round}: {log}"
        );
        assert_eq!(
            outputs(&project.root().join(&report)),
            expected,
            "round {round}"
        );
    }
    assert!(
        partial_rounds > 0,
        "no kill landed mid-run; the test checked nothing"
    );
}

#[test]
fn runs_compare_reports_regressions_and_fails_on_them() {
    let project = echo_project();
    let first = promptlab(&["eval", "eval-sets/s.yaml"], project.root());
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    // Case 3 of prompt b now fails, case 2 still passes.
    project.write(
        "prompts/b.yaml",
        "name: b\ncompletion: \"B {{ x | replace('3', '') }}\"\n",
    );
    let second = promptlab(&["eval", "eval-sets/s.yaml"], project.root());
    assert_eq!(second.status.code(), Some(1), "{}", text(&second));

    let list = promptlab(&["runs", "list"], project.root());
    assert!(text(&list).contains("10/10"), "{}", text(&list));
    let compared = promptlab(&["runs", "compare", "1", "2"], project.root());
    assert_eq!(compared.status.code(), Some(0), "{}", text(&compared));
    let report = text(&compared);
    assert!(
        report.contains("b @ echo") && report.contains("-20.0 pts"),
        "{report}"
    );
    assert!(
        report.contains("Regressions (passed in A, fail in B): 1"),
        "{report}"
    );
    assert!(report.contains("b @ echo · case 4"), "{report}");
    let gated = promptlab(
        &["runs", "compare", "1", "2", "--fail-on-regression"],
        project.root(),
    );
    assert_eq!(gated.status.code(), Some(1), "{}", text(&gated));
    let missing = promptlab(&["runs", "show", "99"], project.root());
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));

    // Runs named relative to the latest: `latest~1 latest` is runs 1 and 2 here.
    let by_id = promptlab(&["runs", "compare", "1", "2"], project.root());
    let relative = promptlab(&["runs", "compare", "latest~1", "latest"], project.root());
    assert_eq!(relative.status.code(), by_id.status.code());
    assert_eq!(text(&relative), text(&by_id));
    let latest = promptlab(&["runs", "show"], project.root());
    assert_eq!(
        text(&latest),
        text(&promptlab(&["runs", "show", "2"], project.root()))
    );
    let too_far = promptlab(&["runs", "show", "latest~2"], project.root());
    assert_eq!(too_far.status.code(), Some(2), "{}", text(&too_far));
    assert!(
        text(&too_far).contains("latest~2: the run store holds 2 runs"),
        "{}",
        text(&too_far)
    );
    let bad = promptlab(&["runs", "show", "latest~x"], project.root());
    assert!(text(&bad).contains("expected `latest~N`"), "{}", text(&bad));
}

#[test]
fn ctrl_c_stops_cleanly_writes_no_report_and_resumes() {
    let _guard = REAL_MODEL.lock().unwrap_or_else(|e| e.into_inner());
    let project = echo_project();
    project.write(
        "models/models.yaml",
        &format!(
            "models:\n  smollm2:\n    path: {}\n    context_size: 512\n",
            real_model(SMOLLM2).display()
        ),
    );
    project.write(
        "prompts/long.yaml",
        "name: long\nparams: {max_tokens: 40}\nmessages:\n  - role: user\n    content: 'Write about {{ x }}.'\n",
    );
    let mut set = String::from("prompts: [long]\nmodels: [smollm2]\ncases:\n");
    for i in 0..12 {
        set.push_str(&format!("  - vars: {{x: 'topic {i}'}}\n"));
    }
    project.write("eval-sets/long.yaml", &set);
    let args = [
        "eval",
        "eval-sets/long.yaml",
        "--threads",
        "1",
        "--parallel",
        "2",
        "-o",
        "r.json",
    ];
    let child = Command::new(env!("CARGO_BIN_EXE_promptlab"))
        .args(args)
        .current_dir(project.root())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promptlab");
    std::thread::sleep(Duration::from_millis(2500));
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(sent.success());
    let out = child.wait_with_output().expect("wait");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(130), "{log}");
    assert!(log.contains("--resume 1"), "{log}");
    assert!(
        !project.root().join("r.json").exists(),
        "a partial run wrote a report"
    );
    let list = promptlab(&["runs", "list"], project.root());
    assert!(text(&list).contains("cancelled"), "{}", text(&list));

    let resumed = promptlab(&[&args[..], &["--resume"]].concat(), project.root());
    assert!(
        matches!(resumed.status.code(), Some(0 | 1)),
        "{}",
        text(&resumed)
    );
    assert_eq!(outputs(&project.root().join("r.json")).len(), 12);
}

/// Cases that store their output for later cases (`store_output_as`) run in order, each
/// reading what the case before it wrote; a run killed mid-chain resumes to the
/// uninterrupted result, which is the same at any `--parallel`.
#[test]
fn chained_cases_resume_and_batch_to_the_sequential_result() {
    let _guard = REAL_MODEL.lock().unwrap_or_else(|e| e.into_inner());
    let project = smollm2_project(1024);
    project.write(
        "prompts/story.yaml",
        "name: story\nparams: {max_tokens: 10}\nmessages:\n  - role: user\n    content: '{% if story is defined %}Story so far: {{ story }}\n{% endif %}Continue the story about {{ topic }} in one sentence.'\n",
    );
    let mut set = String::from("prompts: [story]\nmodels: [smollm2]\ncases:\n");
    for (i, topic) in ["a fox", "a river", "a lamp", "a storm", "a key", "a bell"]
        .iter()
        .enumerate()
    {
        set.push_str(&format!("  - vars: {{topic: '{topic}'}}\n"));
        if i % 3 != 2 {
            set.push_str("    store_output_as: story\n");
        }
    }
    project.write("eval-sets/chain.yaml", &set);
    let run = |parallel: &str, extra: &[&str]| {
        promptlab(
            &[
                &[
                    "eval",
                    "eval-sets/chain.yaml",
                    "--threads",
                    "1",
                    "--parallel",
                    parallel,
                    "--no-cache",
                    "--quiet",
                ][..],
                extra,
            ]
            .concat(),
            project.root(),
        )
    };
    let sequential = run("1", &["--store=seq.db", "-o", "seq.json"]);
    assert!(
        matches!(sequential.status.code(), Some(0 | 1)),
        "{}",
        text(&sequential)
    );
    let expected = outputs(&project.root().join("seq.json"));
    assert_eq!(expected.len(), 6);
    // Each case reads the output of the last storing case before it (0, 1, 3 and 4 store).
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.root().join("seq.json")).unwrap())
            .unwrap();
    let cells = report["cells"].as_array().unwrap();
    for (case, reads) in [(1, 0), (2, 1), (3, 1), (4, 3), (5, 4)] {
        let prompt = cells[case]["prompt"].to_string();
        let stored = serde_json::to_string(&expected[reads].2).unwrap();
        let stored = stored.trim_matches('"');
        assert!(!stored.is_empty());
        assert!(
            prompt.contains(&format!("Story so far: {stored}")),
            "case {case}: {prompt}"
        );
    }
    assert!(!cells[0]["prompt"].to_string().contains("Story so far"));
    let batched = run("8", &["--store=batched.db", "-o", "batched.json"]);
    assert!(matches!(batched.status.code(), Some(0 | 1)));
    assert_eq!(outputs(&project.root().join("batched.json")), expected);

    // Killed once the first cell is recorded, then resumed.
    let mut child = Command::new(env!("CARGO_BIN_EXE_promptlab"))
        .args([
            "eval",
            "eval-sets/chain.yaml",
            "--threads",
            "1",
            "--no-cache",
            "--quiet",
            "--store=kill.db",
        ])
        .current_dir(project.root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start promptlab");
    let db = project.root().join("kill.db");
    let started = std::time::Instant::now();
    let mut recorded = 0;
    while started.elapsed() < Duration::from_secs(120) {
        recorded =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .and_then(|conn| {
                    conn.query_row("SELECT count(*) FROM cells", [], |r| r.get::<_, i64>(0))
                })
                .unwrap_or(0);
        if recorded > 0 || child.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(recorded > 0, "nothing was recorded before the kill");
    let after_kill: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM cells", [], |r| r.get(0))
        .unwrap();
    assert!(after_kill < 6, "the kill came after the whole chain ran");
    let resumed = run("8", &["--store=kill.db", "--resume", "-o", "resumed.json"]);
    assert!(
        matches!(resumed.status.code(), Some(0 | 1)),
        "{}",
        text(&resumed)
    );
    assert_eq!(outputs(&project.root().join("resumed.json")), expected);
}

/// `perplexity` reads the tokens' log-probabilities from llama.cpp: the same at any
/// `--parallel`, kept by the run store (a cached re-run scores the same), and a model that
/// reports none (echo) fails the assertion saying so.
#[test]
fn perplexity_uses_logprobs_kept_across_batches_and_the_cache() {
    let _guard = REAL_MODEL.lock().unwrap_or_else(|e| e.into_inner());
    let project = smollm2_project(1024);
    project.write(
        "prompts/q.yaml",
        "name: q\nparams: {max_tokens: 12}\nmessages:\n  - role: user\n    content: '{{ q }}'\n",
    );
    let mut set = String::from("prompts: [q]\nmodels: [smollm2, echo]\ncases:\n");
    for q in [
        "Name a fruit.",
        "What is 2+2?",
        "Say hello.",
        "Name a city.",
    ] {
        set.push_str(&format!(
            "  - vars: {{q: '{q}'}}\n    assert:\n      - {{type: perplexity, threshold: 3}}\n      - {{type: perplexity-score}}\n"
        ));
    }
    project.write("eval-sets/p.yaml", &set);
    let run = |args: &[&str]| {
        let out = promptlab(
            &[&["eval", "eval-sets/p.yaml", "--threads", "1"][..], args].concat(),
            project.root(),
        );
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
        let report = args[args.iter().position(|a| *a == "-o").unwrap() + 1];
        serde_json::from_str::<serde_json::Value>(
            &std::fs::read_to_string(project.root().join(report)).unwrap(),
        )
        .unwrap()
    };
    let sequential = run(&["--parallel", "1", "--no-cache", "-o", "p1.json"]);
    let batched = run(&["--parallel", "8", "-o", "p8.json"]);
    let cached = run(&["--parallel", "8", "-o", "cached.json"]);
    let model_cells = |report: &serde_json::Value| -> Vec<serde_json::Value> {
        report["cells"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| {
                report["columns"][c["column"].as_u64().unwrap() as usize]["model"] == "smollm2"
            })
            .cloned()
            .collect()
    };
    let reference = model_cells(&sequential);
    assert_eq!(reference.len(), 4);
    for cell in &reference {
        let logprobs = cell["logprobs"].as_array().expect("logprobs");
        assert_eq!(
            logprobs.len() as u64,
            cell["completion_tokens"].as_u64().unwrap()
        );
        let mean: f64 =
            logprobs.iter().map(|l| l.as_f64().unwrap()).sum::<f64>() / logprobs.len() as f64;
        let perplexity = (-mean).exp();
        assert!(perplexity >= 1.0, "{cell}");
        let outcomes = cell["assertions"].as_array().unwrap();
        assert_eq!(outcomes[0]["passed"], perplexity <= 3.0, "{cell}");
        let score = outcomes[1]["score"].as_f64().unwrap();
        assert!((score - 1.0 / (1.0 + perplexity)).abs() < 1e-9, "{cell}");
    }
    for other in [&batched, &cached] {
        let cells = model_cells(other);
        for (a, b) in reference.iter().zip(&cells) {
            assert_eq!(a["output"], b["output"]);
            assert_eq!(a["logprobs"], b["logprobs"], "log-probabilities moved");
            assert_eq!(a["assertions"], b["assertions"]);
        }
    }
    assert!(model_cells(&cached).iter().all(|c| c["cached"] == true));
    // Echo reports no log-probabilities: the assertion fails and says why.
    let echo = sequential["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| sequential["columns"][c["column"].as_u64().unwrap() as usize]["model"] == "echo")
        .unwrap()
        .clone();
    assert_eq!(echo["passed"], false);
    assert!(
        echo["assertions"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("no token log-probabilities"),
        "{echo}"
    );
}
