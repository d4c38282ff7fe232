//! `promptlab optimize` end to end with the echo engine as the target (its output is the
//! rendered prompt, so a case passes when the prompt holds its expected word) and a
//! scripted proposer: a `kind: openai` model served on loopback whose replies follow
//! rules written here. The held-out words are never in any request the proposer gets.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use promptlab::optimize::Version;
use promptlab::store::RunStore;
use serde_json::{Value, json};

use crate::common::{TempProject, promptlab, serve_on_loopback, text};

const WORDS: [&str; 12] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima",
];

#[derive(Clone, Copy)]
enum Script {
    /// An instruction holding the expected word of every failing case it was shown:
    /// perfect on the tuning part, useless on the held-out one.
    Overfit,
    /// An instruction holding all twelve words: better everywhere.
    General,
    /// An instruction without `{{ question }}`.
    DropVariable,
    /// The words of the current instruction plus one new one, after a pause: one more
    /// tuning case per round.
    OneMore,
}

#[derive(Default)]
struct Seen {
    requests: Vec<String>,
}

type Shared = (Script, Arc<Mutex<Seen>>);

fn expected_words(request: &str) -> Vec<&'static str> {
    WORDS
        .into_iter()
        .filter(|w| request.contains(&format!("Expected: \"{w}\"")))
        .collect()
}

fn instruction_words(request: &str) -> Vec<&'static str> {
    let instruction = request
        .split("(the instruction)]\n")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap_or_default();
    WORDS
        .into_iter()
        .filter(|w| instruction.split_whitespace().any(|t| t == *w))
        .collect()
}

async fn completions(State((script, seen)): State<Shared>, Json(body): Json<Value>) -> Response {
    let request = body["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| m["content"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    seen.lock().unwrap().requests.push(request.clone());
    let words: Vec<&str> = match script {
        Script::Overfit => expected_words(&request),
        Script::General => WORDS.to_vec(),
        Script::DropVariable => vec![],
        Script::OneMore => {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let mut words = instruction_words(&request);
            if let Some(new) = expected_words(&request)
                .into_iter()
                .find(|w| !words.contains(w))
            {
                words.push(new);
            }
            words
        }
    };
    let instruction = match script {
        Script::DropVariable => "Answer with one word.".to_string(),
        _ => format!("Answer {{{{ question }}}} {}", words.join(" ")),
    };
    // As a server that follows the request's grammar answers.
    assert!(body["grammar"].as_str().unwrap().contains("<instruction>"));
    let content = format!("<instruction>{instruction}</instruction>");
    if body["stream"] == true {
        let events = [
            json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": content}, "finish_reason": null}]}).to_string(),
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 9, "completion_tokens": 5}})
            .to_string(),
            "[DONE]".to_string(),
        ];
        let chunks: Vec<Result<Bytes, std::io::Error>> = events
            .into_iter()
            .map(|e| Ok(Bytes::from(format!("data: {e}\n\n"))))
            .collect();
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(futures_util::stream::iter(chunks)))
            .unwrap();
    }
    Json(json!({
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 5}
    }))
    .into_response()
}

/// A project whose prompt `words` is one user message, an eval set of twelve cases (each
/// expecting its own word, stratified by tag) and the scripted proposer `writer`.
fn project(script: Script) -> (TempProject, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state((script, seen.clone()));
    let port = serve_on_loopback(app);
    let project = TempProject::new();
    project.write(
        "models/models.yaml",
        &format!(
            "models:\n  writer:\n    kind: openai\n    openai:\n      model: m\n      endpoints: ['http://127.0.0.1:{port}/v1']\n      retries: 0\n"
        ),
    );
    project.write(
        "prompts/words.yaml",
        "name: words\n# kept as it is\nvariants:\n  plain:\n    description: The question alone.\n    messages:\n      - role: user\n        content: \"Answer {{ question }}\"\n",
    );
    let cases: String = WORDS
        .iter()
        .enumerate()
        .map(|(i, w)| {
            format!(
                "  - {{id: case{i}, vars: {{question: q{i}}}, expected: {w}, tags: [{}]}}\n",
                if i % 2 == 0 { "even" } else { "odd" }
            )
        })
        .collect();
    project.write(
        "eval-sets/words.yaml",
        &format!(
            "name: words\ndescription: Say the case's word.\nprompts: [words:plain]\nmodels: [echo]\ndefaults:\n  assert:\n    - type: icontains\n      value: \"{{{{ expected }}}}\"\ncases:\n{cases}"
        ),
    );
    (project, seen)
}

fn optimize(project: &TempProject, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "optimize",
        "words",
        "--prompt",
        "words:plain",
        "--model",
        "echo",
        "--proposer",
        "writer",
        "--strategy",
        "rewrite",
        "--split",
        "0.5",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    promptlab(&args, project.root())
}

fn store(project: &TempProject) -> RunStore {
    RunStore::open(&project.root().join(".promptlab/runs.db")).unwrap()
}

/// The held-out cases' words, read from the stored split.
fn held_out_words(project: &TempProject) -> Vec<&'static str> {
    let row = store(project).optimization(1).unwrap().unwrap();
    let state: Value = serde_json::from_str(&row.state_json).unwrap();
    state["split"]["held_out"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| {
            let i: usize = id.as_str().unwrap()["case".len()..].parse().unwrap();
            WORDS[i]
        })
        .collect()
}

#[test]
fn a_candidate_that_only_wins_on_the_tuning_part_is_not_declared_the_winner() {
    let (project, seen) = project(Script::Overfit);
    let out = optimize(&project, &["--rounds", "3"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("6 cases to tune on, 6 held out (stratified by tag)"),
        "{all}"
    );
    assert!(all.contains("a candidate scores 100%"), "{all}");
    assert!(all.contains("no candidate is proven better"), "{all}");
    assert!(all.contains("nothing written"), "{all}");
    let held_out = held_out_words(&project);
    assert_eq!(held_out.len(), 6);
    for request in &seen.lock().unwrap().requests {
        for word in &held_out {
            assert!(!request.contains(word), "the proposer saw held-out {word}");
        }
    }
    let file = std::fs::read_to_string(project.root().join("prompts/words.yaml")).unwrap();
    assert!(!file.contains("opt1"), "{file}");
}

#[test]
fn a_candidate_that_drops_a_variable_is_refused_without_being_evaluated() {
    let (project, _) = project(Script::DropVariable);
    let out = optimize(&project, &["--rounds", "2", "--per-round", "2"]);
    let all = text(&out);
    assert!(all.contains("refused, drops {{ question }}"), "{all}");
    let store = store(&project);
    let candidates = store.candidates(1).unwrap();
    assert_eq!(candidates.len(), 5, "the baseline and 2 × 2 proposals");
    for c in &candidates[1..] {
        assert!(
            c.rejected
                .as_deref()
                .unwrap()
                .contains("drops {{ question }}")
        );
        assert_eq!(c.run_id, None);
        assert_eq!(c.evaluation_json, None);
    }
    // Only the baseline's tuning run and the held-out run exist, one column each.
    let runs = store.runs().unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    for run in runs {
        let columns: std::collections::BTreeSet<String> = store
            .cells(run.id)
            .unwrap()
            .into_iter()
            .map(|c| c.column_id)
            .collect();
        assert_eq!(columns.len(), 1, "{columns:?}");
    }
    assert!(
        all.contains("no candidate beat the baseline on the tuning cases"),
        "{all}"
    );
}

#[test]
fn a_held_out_winner_is_written_as_one_new_variant() {
    let (project, _) = project(Script::General);
    let before = std::fs::read_to_string(project.root().join("prompts/words.yaml")).unwrap();
    let out = optimize(&project, &["--budget", "200"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    // 6 held-out cases fixed, none regressed: p = 2 / 2^6.
    assert!(all.contains("candidate 1 beats the baseline"), "{all}");
    assert!(all.contains("McNemar p = 0.0313"), "{all}");
    assert!(all.contains("wrote `words:opt1-1`"), "{all}");
    let after = std::fs::read_to_string(project.root().join("prompts/words.yaml")).unwrap();
    assert!(
        after.starts_with(&before),
        "one block appended under variants:\n{after}"
    );
    // The new variant runs as any other and passes every case.
    let eval = promptlab(
        &["eval", "words", "--prompts", "words:opt1-1", "--no-store"],
        project.root(),
    );
    assert_eq!(eval.status.code(), Some(0), "{}", text(&eval));
    assert!(text(&eval).contains("12/12"), "{}", text(&eval));
}

#[test]
fn the_same_seed_gives_the_same_split_and_candidates() {
    let run = || {
        let (project, _) = project(Script::Overfit);
        let out = optimize(&project, &["--rounds", "1", "--seed", "7"]);
        assert!(out.status.code().is_some(), "{}", text(&out));
        let store = store(&project);
        let state = store.optimization(1).unwrap().unwrap().state_json;
        let split: Value = serde_json::from_str::<Value>(&state).unwrap()["split"].clone();
        let candidates: Vec<String> = store
            .candidates(1)
            .unwrap()
            .into_iter()
            .map(|c| c.prompt_json)
            .collect();
        (split, candidates)
    };
    assert_eq!(run(), run());
}

#[test]
fn resume_after_sigkill_continues_the_same_lineage() {
    let (project, _) = project(Script::OneMore);
    let mut child = Command::new(env!("CARGO_BIN_EXE_promptlab"))
        .args([
            "optimize",
            "words",
            "--prompt",
            "words:plain",
            "--model",
            "echo",
            "--proposer",
            "writer",
            "--strategy",
            "rewrite",
            "--split",
            "0.5",
            "--per-round",
            "1",
            "--patience",
            "9",
            "--rounds",
            "9",
        ])
        .current_dir(project.root())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    for line in std::io::BufReader::new(stderr).lines() {
        if line.unwrap().starts_with("round 3:") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let store_before = store(&project).candidates(1).unwrap();
    assert!(store_before.len() >= 3, "{store_before:?}");
    assert_eq!(
        store(&project)
            .optimization(1)
            .unwrap()
            .unwrap()
            .finished_at,
        None
    );

    let out = promptlab(
        &["optimize", "words", "--resume", "--quiet"],
        project.root(),
    );
    let all = text(&out);
    assert!(all.contains("optimize 1:"), "{all}");
    let store = store(&project);
    assert_eq!(store.optimizations().unwrap().len(), 1);
    let after = store.candidates(1).unwrap();
    // The candidates made before the kill are kept as they were; the lineage goes on from
    // them, one round after another, until the tuning part is solved.
    for (old, new) in store_before.iter().zip(&after) {
        assert_eq!(old.prompt_json, new.prompt_json);
        assert_eq!(old.round, new.round);
    }
    for (i, c) in after.iter().enumerate().skip(1) {
        assert_eq!(c.round as usize, i, "one candidate per round");
        assert_eq!(c.parent, Some(i as i64 - 1), "each from the one before");
    }
    let last: Version = serde_json::from_str(&after.last().unwrap().prompt_json).unwrap();
    assert_eq!(
        after.len(),
        7,
        "six rounds solve the six tuning cases: {last:?}"
    );
    assert!(all.contains("a candidate scores 100%"), "{all}");
    assert!(all.contains("no candidate is proven better"), "{all}");
}
