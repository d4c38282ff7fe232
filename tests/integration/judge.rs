//! Model-graded assertions and pairwise ranking end to end, judged by the real
//! Qwen2.5-Coder-0.5B: verdicts parse under the grammar, are cached, carry the judge's
//! reason, agree with human labels on clear cases; a base model is refused as a judge;
//! an unreadable reply is a judge error (not a failure, not a crash); a missing judge is a
//! configuration error naming the case.

use std::path::Path;

use crate::common::{GEMMA, TempProject, promptlab, real_model, text};
use serde_json::Value;

const QWEN: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";

fn judge_project() -> TempProject {
    let project = TempProject::new();
    project.write(
        "models/models.yaml",
        &format!(
            "models:\n  qwen:\n    path: {}\n    context_size: 4096\n  gemma:\n    path: {}\n",
            real_model(QWEN).display(),
            real_model(GEMMA).display()
        ),
    );
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in ["recorded-answer", "judge-llm-rubric", "judge-pairwise"] {
        std::fs::copy(
            repo.join(format!("prompts/{name}.yaml")),
            project.root().join(format!("prompts/{name}.yaml")),
        )
        .unwrap();
    }
    project.write(
        "prompts/two-answers.yaml",
        "name: two-answers\nvariants:\n  good:\n    completion: \"{{ good }}\"\n  bad:\n    completion: \"{{ bad }}\"\n",
    );
    project.write(
        "eval-sets/judged.yaml",
        r#"name: judged
prompts: [recorded-answer]
models: [echo]
judge: qwen
cases:
  - id: capital-right
    human: pass
    vars: {answer: "Canberra is the capital of Australia.", question: "What is the capital of Australia?"}
    expected: "Canberra"
    assert:
      - {type: llm-rubric, value: "States that the capital of Australia is Canberra."}
      - {type: factuality}
      - {type: model-graded-closedqa}
  - id: capital-wrong
    human: fail
    vars: {answer: "The capital of Australia is Sydney.", question: "What is the capital of Australia?"}
    expected: "Canberra"
    assert:
      - {type: llm-rubric, value: "States that the capital of Australia is Canberra."}
  - id: plain-check
    vars: {answer: "hello"}
    assert:
      - {type: contains, value: hello}
"#,
    );
    project
}

fn run_json(project: &TempProject, args: &[&str], report: &str) -> (Value, String) {
    let mut all = vec!["eval"];
    all.extend_from_slice(args);
    all.extend(["-o", report, "--threads", "2"]);
    let out = promptlab(&all, project.root());
    let printed = text(&out);
    // 3: some cell could not be judged (its judge failed), as `--help` documents.
    let judge_errors = printed.contains("ERR");
    assert!(
        matches!(
            (out.status.code(), judge_errors),
            (Some(0 | 1), false) | (Some(3), true)
        ),
        "unexpected exit {:?}: {printed}",
        out.status.code()
    );
    let json = std::fs::read_to_string(project.root().join(report)).expect("report written");
    (serde_json::from_str(&json).unwrap(), printed)
}

fn outcomes(cell: &Value) -> Vec<&Value> {
    cell["assertions"].as_array().unwrap().iter().collect()
}

#[test]
fn a_real_judge_grades_caches_and_is_measured_against_human_labels() {
    let project = judge_project();
    let (report, printed) = run_json(&project, &["eval-sets/judged.yaml"], "judged.json");
    let cells = report["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 3);
    let judged: Vec<&Value> = cells
        .iter()
        .flat_map(outcomes)
        .filter(|o| o["assertion"] != "contains")
        .collect();
    assert_eq!(judged.len(), 4, "{printed}");
    for outcome in &judged {
        // Forced by the schema grammar, every reply parses into a verdict with a reason.
        assert!(outcome.get("judge_error").is_none(), "{outcome}");
        let reason = outcome["reason"].as_str().unwrap_or_default();
        assert!(reason.starts_with("judge `qwen`"), "{reason}");
    }
    assert_eq!(report["judge_time"]["assertions"], 4);
    assert_eq!(report["judge_time"]["cells"], 2);
    // Verdicts decide the cells: a cell passes exactly when every assertion passed.
    // (How often a 0.5B judge is right is measured on eval-sets/judge-agreement.yaml,
    // not asserted here.)
    for cell in cells {
        let all_passed = outcomes(cell).iter().all(|o| o["passed"] == true);
        assert_eq!(cell["passed"], all_passed, "{cell}");
    }
    // Agreement counts the labelled cases whose verdict matches the label.
    let labelled: Vec<(bool, bool)> = cells
        .iter()
        .filter_map(|c| {
            let case = &report["cases"][c["case"].as_u64().unwrap() as usize];
            case["human"]
                .as_str()
                .map(|h| (h == "pass", c["passed"] == true))
        })
        .collect();
    let agreement = &report["judge_agreement"][0];
    assert_eq!(agreement["cases"], 2, "{printed}");
    assert_eq!(
        agreement["agreed"].as_u64().unwrap() as usize,
        labelled.iter().filter(|(h, j)| h == j).count(),
        "{printed}"
    );
    assert!(printed.contains("Agreement with human labels"), "{printed}");
    assert!(
        printed.contains("Judged 4 assertions on 2 cells with qwen"),
        "{printed}"
    );

    // The second run judges from the cache: same verdicts, no judge model loaded.
    let (again, printed_again) = run_json(&project, &["eval-sets/judged.yaml"], "again.json");
    for (first, second) in report["cells"]
        .as_array()
        .unwrap()
        .iter()
        .zip(again["cells"].as_array().unwrap())
    {
        assert_eq!(first["assertions"], second["assertions"]);
        assert_eq!(first["passed"], second["passed"]);
    }
    assert!(
        again["judge_time"]["seconds"].as_f64().unwrap()
            < report["judge_time"]["seconds"].as_f64().unwrap(),
        "{printed_again}"
    );
}

#[test]
fn pairwise_ranks_the_better_column_first() {
    let project = judge_project();
    project.write(
        "eval-sets/pairs.yaml",
        r#"name: pairs
prompts: [two-answers]
models: [echo]
judge: qwen
cases:
  - vars: {question: "What is 15% of 80?", good: "15% of 80 is 12.", bad: "15% of 80 is 15."}
  - vars: {question: "Name two renewable sources of energy.", good: "Solar power and wind power.", bad: "Coal and natural gas."}
  - vars: {question: "Translate 'Good morning' into French.", good: "Bonjour.", bad: "Buenos días."}
"#,
    );
    let (report, printed) = run_json(
        &project,
        &["eval-sets/pairs.yaml", "--pairwise"],
        "pairs.json",
    );
    let pairwise = &report["pairwise"];
    assert_eq!(pairwise["judge"], "qwen");
    assert_eq!(
        pairwise["outcomes"].as_array().unwrap().len(),
        3,
        "{printed}"
    );
    assert_eq!(pairwise["errors"], 0, "{printed}");
    let tally = &pairwise["tallies"][0];
    let total = tally["wins_a"].as_u64().unwrap()
        + tally["ties"].as_u64().unwrap()
        + tally["wins_b"].as_u64().unwrap();
    assert_eq!(total, 3);
    let ranking = pairwise["ranking"].as_array().unwrap();
    assert_eq!(ranking.len(), 2);
    let (low, high) = (
        ranking[0]["interval"][0].as_f64().unwrap(),
        ranking[0]["interval"][1].as_f64().unwrap(),
    );
    let strength = ranking[0]["strength"].as_f64().unwrap();
    assert!(low <= strength && strength <= high, "{printed}");
    assert!(
        ranking[0]["strength"].as_f64() >= ranking[1]["strength"].as_f64(),
        "{printed}"
    );
    assert!(printed.contains("Ranking (Bradley–Terry"), "{printed}");
}

#[test]
fn judges_that_cannot_judge_are_refused_or_recorded_as_judge_errors() {
    let project = judge_project();
    // A base model without a chat template is refused before anything runs.
    let out = promptlab(
        &[
            "eval",
            "eval-sets/judged.yaml",
            "--judge",
            "gemma",
            "--no-store",
        ],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no chat template"), "{}", text(&out));

    // The echo model replies with its prompt, which is no verdict: a judge error on the
    // cell, counted as an error rather than a failure, and the run completes.
    let (report, printed) = run_json(
        &project,
        &["eval-sets/judged.yaml", "--judge", "echo", "--no-store"],
        "echo.json",
    );
    let summary = &report["summaries"][0];
    assert_eq!(summary["errors"], 2, "{printed}");
    let error = report["cells"][0]["assertions"][0]["judge_error"]
        .as_str()
        .unwrap();
    assert!(error.contains("not JSON"), "{error}");
    assert!(printed.contains("judge error"), "{printed}");

    // Without any judge, the plan names the case that needs one.
    project.write(
        "eval-sets/unjudged.yaml",
        "prompts: [recorded-answer]\nmodels: [echo]\ncases:\n  - id: lonely\n    vars: {answer: hi}\n    assert:\n      - {type: llm-rubric, value: is friendly}\n",
    );
    let out = promptlab(&["eval", "eval-sets/unjudged.yaml"], project.root());
    assert_eq!(out.status.code(), Some(2));
    let message = text(&out);
    assert!(
        message.contains("`lonely`") && message.contains("--judge"),
        "{message}"
    );
}
