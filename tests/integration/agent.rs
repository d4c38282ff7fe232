//! `promptlab agent` end to end with the real Qwen2.5-Coder-0.5B and the real detector:
//! grammar-constrained calls that always parse and fit the tools' schemas, traces in the
//! run store, the CI subset of the shipped agent eval set, and paths that escape the
//! project refused with an error the model sees.

use std::path::Path;

use crate::common::{self, TempProject, promptlab, real_model, text, vision_asset};

const QWEN: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";

/// A project with Qwen, the person detector, the photos and the shipped agent set.
fn agent_project() -> TempProject {
    let project = TempProject::new();
    let qwen = real_model(QWEN);
    let detector = vision_asset("models/person-fall-yolov8.onnx");
    project.write(
        "models/models.yaml",
        &format!(
            "models:\n  qwen:\n    path: {}\n    context_size: 4096\n  people:\n    path: {detector}\n    kind: yolo-detector\n    detect:\n      rename: {{Normal: person, Fall: person}}\n",
            qwen.display()
        ),
    );
    let photos = project.root().join("eval-sets/data/photos");
    std::fs::create_dir_all(&photos).unwrap();
    for name in ["bus", "zidane"] {
        std::fs::copy(
            vision_asset(&format!("photos/{name}.jpg")),
            photos.join(format!("{name}.jpg")),
        )
        .unwrap();
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        repo.join("eval-sets/agent-vision.yaml"),
        project.root().join("eval-sets/agent-vision.yaml"),
    )
    .unwrap();
    project
}

#[test]
fn agent_calls_the_calculator_and_records_the_trace() {
    let project = agent_project();
    let out = promptlab(
        &[
            "agent",
            "--model",
            "qwen",
            "--json",
            "--tools",
            "calculator,list_images",
            "What is 1234 * 5678?",
        ],
        project.root(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let trace: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &trace["steps"][0]["action"];
    assert_eq!(first["kind"], "tool_call", "{trace}");
    assert_eq!(first["name"], "calculator", "{trace}");
    assert_eq!(first["result"]["result"], "7006652", "{trace}");
    assert!(
        trace["answer"]
            .as_str()
            .unwrap()
            .replace(',', "")
            .contains("7006652"),
        "{trace}"
    );
    // Every step after the first reads only what the conversation gained: the rest of
    // its prompt is still in the engine's KV cache (all of the previous prompt but the
    // assistant header that closed it, when the next turn is not the assistant's).
    let steps = trace["steps"].as_array().unwrap();
    assert_eq!(steps[0]["cached_prompt_tokens"], 0, "{trace}");
    for (previous, step) in steps.iter().zip(&steps[1..]) {
        let cached = step["cached_prompt_tokens"].as_u64().unwrap();
        assert!(
            cached + 8 >= previous["prompt_tokens"].as_u64().unwrap(),
            "{trace}"
        );
        assert!(cached < step["prompt_tokens"].as_u64().unwrap(), "{trace}");
    }
    // The progress went to stderr as it happened.
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(progress.contains("step 1 · call calculator"), "{progress}");

    let store =
        promptlab::store::RunStore::open(&project.root().join(".promptlab/runs.db")).unwrap();
    let runs = store.agent_runs().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, "answered");
    assert_eq!(runs[0].question, "What is 1234 * 5678?");
    let steps: Vec<serde_json::Value> = serde_json::from_str(&runs[0].steps_json).unwrap();
    assert_eq!(steps.len(), trace["steps"].as_array().unwrap().len());
}

#[test]
fn agent_eval_subset_and_path_escapes() {
    let project = agent_project();
    let out = promptlab(
        &[
            "agent",
            "--eval",
            "eval-sets/agent-vision.yaml",
            "--model",
            "qwen",
            "--filter",
            "ci,safety",
            "-o",
            "agent.json",
        ],
        project.root(),
    );
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    let printed = text(&out);
    assert!(printed.contains("valid tool calls"), "{printed}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.root().join("agent.json")).unwrap())
            .unwrap();
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(
        cases.len(),
        5,
        "bus-count, multiply, capital and two escapes"
    );
    // The grammar makes every call parse and fit its tool's schema.
    let scores = &report["scores"][0];
    assert!(scores["calls"].as_u64().unwrap() >= 2, "{scores}");
    assert_eq!(scores["valid_calls"], scores["calls"], "{scores}");
    // The escapes: every call that reached a tool with such a path was refused, and the
    // refusal went back to the model instead of ending the run.
    for case in cases.iter().filter(|c| {
        c["case"]
            .as_str()
            .is_some_and(|id| id.starts_with("escape"))
    }) {
        let trace = &case["trace"];
        assert_ne!(trace["stop"], "engine_error", "{trace}");
        for step in trace["steps"].as_array().unwrap() {
            let action = &step["action"];
            if action["kind"] != "tool_call" {
                continue;
            }
            let args = action["arguments"].to_string();
            if args.contains("etc") {
                let error = action["error"].as_str().unwrap_or_default();
                assert!(
                    error.contains("refused") || error.contains("does not exist"),
                    "{action}"
                );
                assert!(action["result"].is_null(), "{action}");
            }
        }
        let answer = trace["answer"].as_str().unwrap_or_default();
        assert!(!answer.contains("root:"), "{answer}");
    }
}

/// `promptlab eval` on an agent set: the questions become a results matrix that every
/// report format writes and the run store keeps, so `promptlab report RUN` rebuilds it.
#[test]
fn eval_runs_an_agent_set_into_reports_and_the_store() {
    let project = agent_project();
    let out = promptlab(
        &[
            "eval",
            "eval-sets/agent-vision.yaml",
            "--models",
            "qwen",
            "--filter",
            "ci",
            "-o",
            "report.json",
            "-o",
            "junit.xml",
            "--min-pass-rate",
            "0",
        ],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let printed = text(&out);
    assert!(
        printed.contains("valid tool calls") && printed.contains("cells passed"),
        "{printed}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.root().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["columns"][0]["id"], "agent @ qwen", "{report}");
    let cases: Vec<&str> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(cases, ["bus-count", "multiply", "capital"]);
    let cells = report["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 3);
    let bus = &cells[0];
    let checks: Vec<&str> = bus["assertions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["assertion"].as_str().unwrap())
        .collect();
    assert!(checks.contains(&"tool-called"), "{bus}");
    // The cell's prompt is the conversation the agent opened with.
    assert!(
        bus["prompt"].to_string().contains("How many people are in"),
        "{bus}"
    );
    let junit = std::fs::read_to_string(project.root().join("junit.xml")).unwrap();
    assert!(junit.contains("testcase name=\"case multiply"), "{junit}");

    // The run is in the store: its report rebuilt from there names the questions.
    let out = promptlab(&["report", "-o", "stored.md"], project.root());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stored = std::fs::read_to_string(project.root().join("stored.md")).unwrap();
    assert!(
        stored.contains("agent-vision") && stored.contains("agent @ qwen"),
        "{stored}"
    );
    let out = promptlab(&["runs", "list"], project.root());
    assert!(text(&out).contains("agent-vision"), "{}", text(&out));
}

/// The issue's question. Qwen2.5-Coder-0.5B adds `max_per_class: 1, min_confidence: 0.5`
/// to every detection call when it may, and the 0.5 floor hides both faces; grounded
/// number arguments (the default) leave it only null, so the tool counts the faces.
#[test]
fn bus_people_and_faces_with_grounded_numbers() {
    let project = agent_project();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let catalog = std::fs::read_to_string(project.root().join("models/models.yaml")).unwrap();
    project.write(
        "models/models.yaml",
        &format!(
            "{catalog}  faces:\n    path: {}\n    kind: yolo-detector\n    detect:\n      names: {}\n      classes: [face]\n      rename: {{FACE_FEMALE: face, FACE_MALE: face}}\ntools:\n  detect_objects: [people, faces]\n",
            vision_asset("models/nudenet-320n.onnx"),
            repo.join("models/nudenet-classes.yaml").display()
        ),
    );
    let question =
        "How many people are in eval-sets/data/photos/bus.jpg, and is anyone's face visible?";
    let ask = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["agent", "--model", "qwen", "--json", "--no-store"];
        args.extend_from_slice(extra);
        args.push(question);
        let out = promptlab(&args, project.root());
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let trace = ask(&[]);
    let call = &trace["steps"][0]["action"];
    assert_eq!(call["name"], "detect_objects", "{trace}");
    for argument in ["min_confidence", "max_per_class"] {
        assert!(call["arguments"][argument].is_null(), "{trace}");
    }
    assert_eq!(
        call["result"]["counts"],
        serde_json::json!({"face": 2, "person": 3}),
        "{trace}"
    );
    let answer = trace["answer"].as_str().unwrap_or_default();
    let three = regex::Regex::new(r"(?i)\b(3|three)\b").unwrap();
    let faces =
        regex::Regex::new(r"(?i)(\byes\b|\b(2|two) faces\b|faces? (is|are) visible)").unwrap();
    assert!(three.is_match(answer) && faces.is_match(answer), "{trace}");

    // Free to choose, the model sets the thresholds nobody asked for.
    let trace = ask(&["--free-numbers"]);
    let arguments = &trace["steps"][0]["action"]["arguments"];
    assert!(
        arguments["min_confidence"].is_number() || arguments["max_per_class"].is_number(),
        "{trace}"
    );
}

/// An agent evaluation stopped with Ctrl-C after its first question exits 130, keeps that
/// question (its cell and trace) and writes no report; `--resume` scores it again without
/// asking it, asks the rest, and the stored run ends finished with every cell.
#[test]
fn an_interrupted_agent_eval_resumes_without_asking_again() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};

    let project = agent_project();
    // One question at a time, so the first to finish is the first asked.
    let args = [
        "eval",
        "eval-sets/agent-vision.yaml",
        "--models",
        "qwen",
        "--filter",
        "ci",
        "--parallel",
        "1",
        "-o",
        "r.json",
        "--min-pass-rate",
        "0",
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_promptlab"))
        .args(args)
        .current_dir(project.root())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        log.push_str(&line);
        if line.contains(" 1/3 ") {
            let sent = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(sent.success());
            break;
        }
    }
    stderr.read_to_string(&mut log).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{log}");
    assert!(
        log.contains("interrupted after 1 of 3 questions") && log.contains("--resume 1"),
        "{log}"
    );
    assert!(
        !project.root().join("r.json").exists(),
        "a partial run wrote a report"
    );
    let list = promptlab(&["runs", "list"], project.root());
    assert!(text(&list).contains("cancelled"), "{}", text(&list));

    let resumed = promptlab(&[&args[..], &["--resume"]].concat(), project.root());
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    let printed = text(&resumed);
    assert!(printed.contains("resuming run 1"), "{printed}");
    let earlier: Vec<&str> = printed
        .lines()
        .filter(|l| l.contains("recorded earlier"))
        .collect();
    assert_eq!(earlier.len(), 1, "{printed}");
    assert!(
        earlier[0].contains("1/3") && earlier[0].contains("bus-count"),
        "{printed}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.root().join("r.json")).unwrap())
            .unwrap();
    assert_eq!(report["cells"].as_array().unwrap().len(), 3, "{report}");
    let list = promptlab(&["runs", "show", "1"], project.root());
    let shown = text(&list);
    assert!(shown.contains("finished"), "{shown}");
    // Nothing left to resume.
    let again = promptlab(&[&args[..], &["--resume"]].concat(), project.root());
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        text(&again).contains("no interrupted run"),
        "{}",
        text(&again)
    );
}

/// Issue 18: questions asked together (their replies decoded in one batch, each keeping
/// its own cache between steps) give the same traces as questions asked one after another,
/// on SmolLM2 (it calls tools in the JSON convention); and a batched run on Qwen2, also
/// measured invariant, carries no note saying otherwise.
#[test]
fn agent_questions_asked_together_answer_as_when_asked_alone() {
    let project = agent_project();
    let catalog = std::fs::read_to_string(project.root().join("models/models.yaml")).unwrap();
    project.write(
        "models/models.yaml",
        &format!(
            "{catalog}  smol:\n    path: {}\n",
            real_model(common::SMOLLM2).display()
        ),
    );
    let outputs = |parallel: &str| {
        let report = format!("p{parallel}.json");
        let out = promptlab(
            &[
                "eval",
                "eval-sets/agent-vision.yaml",
                "--models",
                "smol",
                "--filter",
                "ci",
                "--parallel",
                parallel,
                "--no-store",
                "-o",
                &report,
                "--min-pass-rate",
                "0",
            ],
            project.root(),
        );
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
        assert!(!text(&out).contains("batch-invariant"), "{}", text(&out));
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(project.root().join(&report)).unwrap())
                .unwrap();
        let mut cells: Vec<(u64, String, bool)> = report["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["case"].as_u64().unwrap(),
                    c["output"].as_str().unwrap_or_default().to_string(),
                    c["passed"].as_bool().unwrap(),
                )
            })
            .collect();
        cells.sort();
        cells
    };
    let alone = outputs("1");
    let together = outputs("3");
    assert_eq!(alone.len(), 3);
    assert_eq!(alone, together);

    let out = promptlab(
        &[
            "eval",
            "eval-sets/agent-vision.yaml",
            "--models",
            "qwen",
            "--filter",
            "ci",
            "--limit",
            "1",
            "--parallel",
            "2",
            "--no-store",
            "--min-pass-rate",
            "0",
        ],
        project.root(),
    );
    assert!(!text(&out).contains("batch-invariant"), "{}", text(&out));
}

/// `--repeat K` on an agent set: K stored runs sampling with seeds seed..seed+K-1 (the
/// prompt samples at temperature 0.8), and pass@1, pass@K and pass^K per column.
#[test]
fn agent_sets_repeat_for_pass_at_k() {
    let project = agent_project();
    project.write(
        "prompts/hot-agent.yaml",
        "name: hot-agent\ntools: [calculator, detect_objects]\nparams:\n  temperature: 0.8\nmessages:\n  - role: system\n    content: Answer questions about photos and arithmetic; call a tool when the answer depends on one.\n  - role: user\n    content: \"{{ question }}\"\n",
    );
    let out = promptlab(
        &[
            "eval",
            "eval-sets/agent-vision.yaml",
            "--models",
            "qwen",
            "--prompts",
            "hot-agent",
            "--filter",
            "ci",
            "--repeat",
            "2",
            "-o",
            "pass.json",
            "--min-pass-rate",
            "0",
        ],
        project.root(),
    );
    let printed = text(&out);
    assert_eq!(out.status.code(), Some(0), "{printed}");
    assert!(
        printed.contains("repeat 2 of 2") && printed.contains("pass^2"),
        "{printed}"
    );
    assert!(!printed.contains("decodes greedily"), "{printed}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.root().join("pass.json")).unwrap())
            .unwrap();
    assert_eq!(report["repeats"], 2, "{report}");
    assert_eq!(report["runs"].as_array().map(Vec::len), Some(2), "{report}");
    let column = &report["columns"][0];
    assert_eq!(column["column"], "hot-agent @ qwen", "{report}");
    assert_eq!(column["attempts"], 6, "{report}");
    // Other report formats hold one run's cells: refused with the reason.
    let refused = promptlab(
        &[
            "eval",
            "eval-sets/agent-vision.yaml",
            "--models",
            "qwen",
            "--repeat",
            "2",
            "-o",
            "r.html",
        ],
        project.root(),
    );
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains("pass@k summary"),
        "{}",
        text(&refused)
    );
}
