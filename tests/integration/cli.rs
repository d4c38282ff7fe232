//! The `promptlab` binary end to end with the echo engine: output formats, exit codes,
//! and every kind of bad input (clear message naming the file, exit code 2, no panic,
//! no output file left behind).

use std::process::Output;

use crate::common::{self, SMOLLM2, TempProject, promptlab, real_model};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A project whose echo prompt outputs the case's `output` variable verbatim.
fn echo_project() -> TempProject {
    let project = TempProject::new();
    project.write(
        "prompts/echo.yaml",
        "name: echo\ncompletion: '{{ output }}'\n",
    );
    project.write(
        "eval-sets/mixed.yaml",
        "name: mixed\nprompts: [echo]\nmodels: [echo]\ncases:\n  - description: passes\n    vars: {output: '{\"label\": \"yes\"}'}\n    expected: 'yes'\n    assert:\n      - type: json-path\n        path: $.label\n        value: '{{ expected }}'\n  - description: fails\n    vars: {output: 'plain text'}\n    expected: 'no'\n    assert:\n      - type: is-json\n",
    );
    project
}

#[test]
fn writes_all_five_formats_and_exits_1_on_failures() {
    let project = echo_project();
    let out = promptlab(
        &[
            "eval",
            "eval-sets/mixed.yaml",
            "-o",
            "r.json",
            "-o",
            "r.jsonl",
            "-o",
            "r.csv",
            "-o",
            "r.md",
            "-o",
            "r.xml",
        ],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("echo @ echo"), "{text}");
    assert!(text.contains("1 of 2 cells passed"), "{text}");
    assert!(text.contains("is-json"), "failure reason printed: {text}");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.root().join("r.json")).unwrap())
            .unwrap();
    assert_eq!(json["cells"].as_array().unwrap().len(), 2);
    assert_eq!(json["summaries"][0]["passed"], 1);
    // The 95% Wilson interval of 1/2 (statsmodels: 0.0945312, 0.9054688).
    let interval = json["summaries"][0]["pass_interval"].as_array().unwrap();
    assert!((interval[0].as_f64().unwrap() - 0.09453120573423068).abs() < 1e-12);
    let jsonl = std::fs::read_to_string(project.root().join("r.jsonl")).unwrap();
    assert_eq!(jsonl.lines().count(), 2);
    for line in jsonl.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
    let mut csv = csv::Reader::from_path(project.root().join("r.csv")).unwrap();
    assert_eq!(csv.records().count(), 2);
    let md = std::fs::read_to_string(project.root().join("r.md")).unwrap();
    assert!(
        md.contains("| echo @ echo | 50.0% [9.5–90.5] | 1/2 |"),
        "{md}"
    );
    let xml = std::fs::read_to_string(project.root().join("r.xml")).unwrap();
    assert!(
        xml.contains("<testsuite name=\"echo @ echo\" tests=\"2\""),
        "{xml}"
    );
    assert!(xml.contains("<failure"), "{xml}");
}

#[test]
fn min_pass_rate_turns_partial_failure_into_success() {
    let project = echo_project();
    let out = promptlab(
        &["eval", "eval-sets/mixed.yaml", "--min-pass-rate", "0.5"],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = promptlab(
        &[
            "eval",
            "eval-sets/mixed.yaml",
            "--filter",
            "none",
            "--limit",
            "1",
        ],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no cases left"), "{}", stderr(&out));
}

/// Runs a bad configuration and checks exit 2, the message, and that no report appeared.
fn assert_bad_input(project: &TempProject, eval_set: &str, expected: &[&str]) {
    let out = promptlab(&["eval", eval_set, "-o", "out.json"], project.root());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    for needle in expected {
        assert!(err.contains(needle), "expected {needle:?} in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        !project.root().join("out.json").exists(),
        "a report was written"
    );
}

#[test]
fn malformed_yaml_names_file_and_line() {
    let project = echo_project();
    project.write(
        "eval-sets/broken.yaml",
        "name: x\ncases:\n  - vars: {a: 1\n",
    );
    assert_bad_input(&project, "eval-sets/broken.yaml", &["broken.yaml:"]);
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let project = echo_project();
    project.write(
        "eval-sets/typo.yaml",
        "name: x\nprompts: [echo]\nmodel: [echo]\ncases:\n  - vars: {output: a}\n",
    );
    assert_bad_input(
        &project,
        "eval-sets/typo.yaml",
        &["typo.yaml:3:1", "unknown field `model`"],
    );
}

/// A set that uses the broken prompt stops with the file, line and key.
#[test]
fn unknown_key_in_prompt_file() {
    let project = echo_project();
    project.write("prompts/bad.yaml", "name: bad\ncompletion: x\nparms: {}\n");
    project.write(
        "eval-sets/uses-bad.yaml",
        "prompts: [echo, bad]\nmodels: [echo]\ncases:\n  - vars: {output: a}\n",
    );
    assert_bad_input(
        &project,
        "eval-sets/uses-bad.yaml",
        &["prompt `bad`", "bad.yaml:3:1", "unknown field `parms`"],
    );
}

/// Issue 21: one broken prompt file blocked every eval, even of sets that do not use it.
/// They run (with a warning naming the file); a set using a prompt the broken file
/// declares by `name:` under another file name, or a variant of it, still stops.
#[test]
fn a_broken_prompt_file_does_not_block_sets_that_do_not_use_it() {
    let project = echo_project();
    project.write("prompts/bad.yaml", "name: bad\ncompletion: x\nparms: {}\n");
    project.write("prompts/unreadable.yaml", "name: other\ncompletion: [\n");
    project.write("prompts/renamed.yaml", "name: shiny\ncompletion: '{{ x'\n");
    let out = promptlab(
        &["eval", "eval-sets/mixed.yaml", "--no-store"],
        project.root(),
    );
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one case fails, none is bad input: {err}"
    );
    assert!(
        stdout(&out).contains("1 of 2 cells passed"),
        "{}",
        stdout(&out)
    );
    assert!(
        err.contains("warning: a prompt file does not load") && err.contains("bad.yaml:3:1"),
        "{err}"
    );
    for (selector, expected) in [
        ("shiny", "renamed.yaml"),
        ("bad:loud", "bad.yaml:3:1"),
        ("unreadable", "unreadable.yaml:"),
    ] {
        project.write(
            "eval-sets/uses.yaml",
            &format!("prompts: [{selector}]\nmodels: [echo]\ncases:\n  - vars: {{output: a}}\n"),
        );
        assert_bad_input(&project, "eval-sets/uses.yaml", &[expected]);
    }
}

#[test]
fn missing_variable_names_case_and_variable() {
    let project = echo_project();
    project.write(
        "eval-sets/novar.yaml",
        "prompts: [echo]\nmodels: [echo]\ncases:\n  - vars: {outptu: a}\n",
    );
    assert_bad_input(
        &project,
        "eval-sets/novar.yaml",
        &["novar.yaml: case 1", "undefined variable `output`"],
    );
}

#[test]
fn unknown_model_suggests_the_closest() {
    let project = echo_project();
    project.write(
        "models/models.yaml",
        "models:\n  smollm2:\n    path: s.gguf\n",
    );
    project.write(
        "eval-sets/m.yaml",
        "prompts: [echo]\nmodels: [smolm2]\ncases:\n  - vars: {output: a}\n",
    );
    assert_bad_input(
        &project,
        "eval-sets/m.yaml",
        &["unknown model `smolm2`", "did you mean `smollm2`"],
    );
}

#[test]
fn missing_gguf_file() {
    let project = echo_project();
    project.write(
        "models/models.yaml",
        "models:\n  ghost:\n    path: ghost.gguf\n",
    );
    project.write(
        "eval-sets/g.yaml",
        "prompts: [echo]\nmodels: [ghost]\ncases:\n  - vars: {output: a}\n",
    );
    assert_bad_input(
        &project,
        "eval-sets/g.yaml",
        &["model `ghost`", "ghost.gguf", "not found"],
    );
}

#[test]
fn truncated_gguf_file() {
    let project = echo_project();
    let source = real_model(SMOLLM2);
    let truncated = project.root().join("models/half.gguf");
    let full = std::fs::read(&source).unwrap();
    std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
    project.write(
        "models/models.yaml",
        "models:\n  half:\n    path: half.gguf\n",
    );
    project.write(
        "eval-sets/t.yaml",
        "prompts: [echo]\nmodels: [half]\ncases:\n  - vars: {output: a}\n",
    );
    assert_bad_input(
        &project,
        "eval-sets/t.yaml",
        &["model `half`", "half.gguf", "truncated"],
    );
}

#[test]
fn corrupt_gguf_file() {
    let project = echo_project();
    project.write(
        "models/models.yaml",
        "models:\n  junk:\n    path: junk.gguf\n",
    );
    project.write(
        "models/junk.gguf",
        "this is not a model, just some text pretending to be one",
    );
    project.write(
        "eval-sets/j.yaml",
        "prompts: [echo]\nmodels: [junk]\ncases:\n  - vars: {output: a}\n",
    );
    assert_bad_input(
        &project,
        "eval-sets/j.yaml",
        &["junk.gguf", "not a GGUF file"],
    );
}

#[test]
fn chat_template_that_does_not_compile_stops_the_run_before_it_starts() {
    let project = echo_project();
    let mut bytes = std::fs::read(real_model(SMOLLM2)).unwrap();
    // Same length, so the header stays well-formed: only the Jinja breaks.
    let tag = b"{% for message in messages %}";
    let at = bytes
        .windows(tag.len())
        .position(|w| w == tag)
        .expect("SmolLM2's ChatML template loops over messages");
    bytes[at..at + tag.len()].copy_from_slice(b"{% for message in messages %%");
    std::fs::write(project.root().join("models/broken.gguf"), &bytes).unwrap();
    project.write(
        "models/models.yaml",
        "models:\n  broken:\n    path: broken.gguf\n",
    );
    project.write(
        "prompts/chat.yaml",
        "name: chat\nmessages:\n  - role: user\n    content: '{{ output }}'\n",
    );
    project.write(
        "eval-sets/b.yaml",
        "prompts: [chat]\nmodels: [broken]\ncases:\n  - vars: {output: a}\n",
    );
    assert_bad_input(
        &project,
        "eval-sets/b.yaml",
        &["broken.gguf", "chat template", "does not compile"],
    );
}

#[test]
fn a_bad_default_assertion_is_named_by_the_eval_set_not_a_csv_row() {
    let project = echo_project();
    project.write("eval-sets/rows.csv", "output\nfirst\nsecond\n");
    project.write(
        "eval-sets/d.yaml",
        "prompts: [echo]\nmodels: [echo]\ncases_from: [rows.csv]\ndefaults:\n  assert:\n    - type: contains\n      value: a\n    - type: regex\n      value: '('\n",
    );
    let out = promptlab(
        &["eval", "eval-sets/d.yaml", "-o", "out.json"],
        project.root(),
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(err.contains("d.yaml: defaults.assert[2]"), "{err}");
    assert!(!err.starts_with("rows.csv"), "{err}");
}

/// Issue 18: a run says when its outputs can depend on the schedule: only for a remote
/// model sent several requests at once (local engines are batch-invariant).
#[test]
fn a_remote_model_with_concurrent_requests_is_flagged_as_schedule_dependent() {
    let project = echo_project();
    let note = "can depend on what else it was decoding";
    for (concurrency, flagged) in [(4, true), (1, false)] {
        project.write(
            "models/models.yaml",
            &format!(
                "models:\n  far:\n    kind: openai\n    openai:\n      model: m\n      endpoints: ['http://127.0.0.1:9/v1']\n      concurrency: {concurrency}\n      retries: 0\n      connect_timeout_s: 1\n"
            ),
        );
        project.write(
            "prompts/chat.yaml",
            "name: chat\nmessages:\n  - role: user\n    content: '{{ output }}'\n",
        );
        project.write(
            "eval-sets/far.yaml",
            "prompts: [chat]\nmodels: [far]\ncases:\n  - vars: {output: a}\n",
        );
        let out = promptlab(
            &["eval", "eval-sets/far.yaml", "--no-store"],
            project.root(),
        );
        let err = stderr(&out);
        assert_eq!(
            err.contains(note),
            flagged,
            "concurrency {concurrency}: {err}"
        );
        assert!(err.contains("`far`") || !flagged, "{err}");
    }
    // Local engines never are.
    let out = promptlab(
        &["eval", "eval-sets/mixed.yaml", "--no-store"],
        project.root(),
    );
    assert!(!stderr(&out).contains(note));
}

#[test]
fn empty_eval_set() {
    let project = echo_project();
    project.write(
        "eval-sets/empty.yaml",
        "name: empty\nprompts: [echo]\nmodels: [echo]\ncases: []\n",
    );
    assert_bad_input(
        &project,
        "eval-sets/empty.yaml",
        &["empty.yaml", "no cases"],
    );
}

#[test]
fn ragged_csv_row() {
    let project = echo_project();
    project.write("eval-sets/rows.csv", "output,expected\na,b\nc,d,e\n");
    project.write(
        "eval-sets/csv.yaml",
        "prompts: [echo]\nmodels: [echo]\ncases_from: [rows.csv]\n",
    );
    assert_bad_input(
        &project,
        "eval-sets/csv.yaml",
        &["rows.csv:3", "row has 3 fields, expected 2"],
    );
}

#[test]
fn unknown_assertion_type_suggests_a_name() {
    let project = echo_project();
    project.write(
        "eval-sets/a.yaml",
        "prompts: [echo]\nmodels: [echo]\ncases:\n  - vars: {output: a}\n    assert:\n      - type: icontain\n        value: a\n",
    );
    assert_bad_input(
        &project,
        "eval-sets/a.yaml",
        &["a.yaml: case 1", "did you mean \"icontains\""],
    );
}

#[test]
fn schema_llama_cpp_cannot_compile_is_bad_input() {
    let project = echo_project();
    project.write(
        "prompts/js.yaml",
        "name: js\ncompletion: '{{ output }}'\nschema:\n  type: object\n  properties:\n    a: {$ref: '#/definitions/missing'}\n",
    );
    project.write(
        "eval-sets/s.yaml",
        "prompts: [js]\nmodels: [echo]\ncases:\n  - vars: {output: a}\n",
    );
    assert_bad_input(
        &project,
        "eval-sets/s.yaml",
        &["js.yaml", "prompt `js`: schema"],
    );
}

#[test]
fn unknown_output_format_is_rejected_before_running() {
    let project = echo_project();
    let out = promptlab(
        &["eval", "eval-sets/mixed.yaml", "-o", "r.txt"],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("r.txt: unknown report format"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_eval_set_file() {
    let project = echo_project();
    assert_bad_input(
        &project,
        "eval-sets/nope.yaml",
        &["nope.yaml", "cannot read file"],
    );
}

#[test]
fn chat_prompt_on_a_model_without_template_is_a_clear_error() {
    let project = echo_project();
    let gemma = real_model(common::GEMMA);
    project.write(
        "models/models.yaml",
        &format!("models:\n  gemma:\n    path: {}\n", gemma.display()),
    );
    project.write(
        "prompts/chat.yaml",
        "name: chat\nmessages:\n  - role: user\n    content: '{{ output }}'\n",
    );
    project.write(
        "eval-sets/c.yaml",
        "prompts: [chat]\nmodels: [gemma]\ncases:\n  - vars: {output: a}\n",
    );
    assert_bad_input(
        &project,
        "eval-sets/c.yaml",
        &[
            "model `gemma`",
            "no chat template",
            "use a `completion:` prompt",
        ],
    );
}

#[test]
fn models_list_reads_gguf_headers() {
    let project = echo_project();
    let smollm = real_model(SMOLLM2);
    project.write(
        "models/models.yaml",
        &format!("models:\n  smollm2:\n    path: {}\n", smollm.display()),
    );
    let out = promptlab(&["models", "list"], project.root());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "smollm2", "llama", "134.5M", "Q4_1", "8192", "yes", "93.8 MiB",
    ] {
        assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
    }
}

#[test]
fn agent_and_prompt_eval_sets_point_to_each_other() {
    let project = TempProject::new();
    project.write(
        "eval-sets/agent.yaml",
        "kind: agent\nmodels: [echo]\ncases:\n  - {question: What is 2 + 2?, assert: [{type: tool-called, value: calculator}]}\n",
    );
    project.write("eval-sets/plain.yaml", "prompts: []\ncases: [{vars: {}}]\n");
    // `promptlab eval` runs agent sets too, with the options that apply to them.
    let out = promptlab(&["eval", "eval-sets/agent.yaml"], project.root());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("echo engine, which cannot call tools"),
        "{stderr}"
    );
    let out = promptlab(
        &["eval", "eval-sets/agent.yaml", "--pairwise"],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--pairwise does not apply to an agent eval set"),
        "{stderr}"
    );
    let out = promptlab(&["agent", "--eval", "eval-sets/plain.yaml"], project.root());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not an agent eval set"), "{stderr}");
    // An agent prompt (one that lists tools) is refused by promptlab eval, with the way.
    project.write(
        "prompts/helper.yaml",
        "tools: [calculator]\nmessages: [{role: user, content: '{{ question }}'}]\n",
    );
    project.write(
        "eval-sets/helper.yaml",
        "prompts: [helper]\nmodels: [echo]\ncases: [{vars: {question: hi}}]\n",
    );
    let out = promptlab(&["eval", "eval-sets/helper.yaml"], project.root());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("promptlab agent --prompt helper"),
        "{stderr}"
    );
    // A typo in an agent assertion names the case and the agent types.
    project.write(
        "eval-sets/agent.yaml",
        "kind: agent\ncases:\n  - {id: sum, question: What is 2 + 2?, assert: [{type: tool-caled, value: calculator}]}\n",
    );
    let out = promptlab(&["agent", "--eval", "eval-sets/agent.yaml"], project.root());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("case sum") && stderr.contains("tool-called"),
        "{stderr}"
    );
}

/// `--repeat K`: K stored runs and pass@1 / pass@K / pass^K per column. The echo engine
/// is deterministic, so the three agree and a note says why.
#[test]
fn repeat_runs_k_times_and_reports_pass_at_k() {
    let project = echo_project();
    let out = promptlab(
        &["eval", "eval-sets/mixed.yaml", "--repeat", "3", "--quiet"],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("pass@1 [95% CI]"), "{text}");
    assert!(text.contains("pass@3") && text.contains("pass^3"), "{text}");
    // One case of two passes every time: 50% on all three measures (Wilson of 3/6:
    // 0.1876, 0.8124 by statsmodels).
    assert!(text.contains("50.0% [18.8–81.2]"), "{text}");
    assert!(
        text.contains("3 of 6 cells passed over 3 repeats · runs 1, 2, 3"),
        "{text}"
    );
    assert!(
        stderr(&out).contains("repeats give the same outputs"),
        "{}",
        stderr(&out)
    );

    let out = promptlab(
        &[
            "eval",
            "eval-sets/mixed.yaml",
            "--repeat",
            "2",
            "-o",
            "r.json",
            "-o",
            "r.md",
        ],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.root().join("r.json")).unwrap())
            .unwrap();
    assert_eq!(report["repeats"], 2);
    assert_eq!(report["runs"], serde_json::json!([4, 5]));
    let column = &report["columns"][0];
    assert_eq!(
        (column["passed"].as_u64(), column["attempts"].as_u64()),
        (Some(2), Some(4))
    );
    assert_eq!(column["pass_at_k"], 0.5);
    let markdown = std::fs::read_to_string(project.root().join("r.md")).unwrap();
    assert!(
        markdown.contains("| pass@1 | 95% interval | pass@2 | pass^2 |"),
        "{markdown}"
    );
    assert!(markdown.contains("50.0% (2/4)"), "{markdown}");

    // Per-cell formats hold one run; with --repeat they are refused before anything runs.
    let out = promptlab(
        &[
            "eval",
            "eval-sets/mixed.yaml",
            "--repeat",
            "2",
            "-o",
            "r.csv",
        ],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("pass@k summary as .json or .md"),
        "{}",
        stderr(&out)
    );
}

/// `promptlab report`: a stored run written again, the same as `eval` wrote it.
#[test]
fn report_writes_any_stored_run() {
    let project = echo_project();
    let out = promptlab(
        &["eval", "eval-sets/mixed.yaml", "-o", "eval.json", "--quiet"],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let out = promptlab(
        &["report", "latest", "-o", "again.json", "-o", "again.html"],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(project.root().join(name)).unwrap()).unwrap()
    };
    let (eval, again) = (read("eval.json"), read("again.json"));
    assert_eq!(eval["summaries"], again["summaries"]);
    assert_eq!(eval["cases"], again["cases"]);
    for (a, b) in eval["cells"]
        .as_array()
        .unwrap()
        .iter()
        .zip(again["cells"].as_array().unwrap())
    {
        assert_eq!(a["output"], b["output"]);
        assert_eq!(a["passed"], b["passed"]);
        assert_eq!(a["assertions"], b["assertions"]);
    }
    let html = std::fs::read_to_string(project.root().join("again.html")).unwrap();
    assert!(html.contains("<h1>mixed</h1>"), "{html:.500}");

    let out = promptlab(&["report", "1"], project.root());
    assert!(stdout(&out).contains("Run 1 · mixed"), "{}", stdout(&out));
    let out = promptlab(&["report", "99"], project.root());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no run 99"), "{}", stderr(&out));

    // Run 2 fixes the failing case; its pull-request summary against run 1 says so.
    let set = project.root().join("eval-sets/mixed.yaml");
    let text = std::fs::read_to_string(&set)
        .unwrap()
        .replace("output: 'plain text'", "output: '{\"x\": 1}'");
    std::fs::write(&set, text).unwrap();
    let out = promptlab(&["eval", "eval-sets/mixed.yaml", "--quiet"], project.root());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = promptlab(
        &["report", "2", "--baseline", "1", "-o", "pr.md"],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let markdown = std::fs::read_to_string(project.root().join("pr.md")).unwrap();
    assert!(markdown.contains("## Against run 1"), "{markdown}");
    assert!(markdown.contains("| 50.0% | 100.0% |"), "{markdown}");
    assert!(markdown.contains("### Fixes (1)"), "{markdown}");
    assert!(!markdown.contains("### Regressions"), "{markdown}");
}

/// `init` then `eval NAME`, as the README's tutorial does: a new project runs on the real
/// SmolLM2 and is recorded; a second `init` in the same folder changes nothing.
#[test]
fn init_scaffolds_a_project_that_runs_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let model = real_model(SMOLLM2);
    let out = promptlab(
        &["init", "demo", "--model", model.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("cd demo"), "{text}");
    assert!(text.contains("promptlab eval capitals"), "{text}");
    let root = dir.path().join("demo");
    let catalog = std::fs::read_to_string(root.join("models/models.yaml")).unwrap();
    assert!(catalog.contains("smollm2-135m-instruct.q4-1:"), "{catalog}");

    // From a sub-folder, by name; the models list says the model is ready.
    std::fs::create_dir(root.join("notes")).unwrap();
    let out = promptlab(&["eval", "capitals", "--quiet"], &root.join("notes"));
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("capital @ smollm2-135m-instruct.q4-1"),
        "{}",
        stdout(&out)
    );
    assert!(root.join(".promptlab/runs.db").is_file());
    let out = promptlab(&["eval", "capitols"], &root);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("eval sets here: capitals"),
        "{}",
        stderr(&out)
    );

    let before = std::fs::read_to_string(root.join("prompts/capital.yaml")).unwrap();
    let out = promptlab(&["init", "."], &root);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(root.join("prompts/capital.yaml")).unwrap(),
        before
    );
}

/// Without --model, the catalog names SmolLM2 where scripts/fetch-models.sh puts it, and
/// `models list` treats an absent file as not fetched rather than an error.
#[test]
fn init_without_a_model_points_at_the_fetched_smollm2() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_promptlab"))
        .args(["init"])
        .current_dir(dir.path())
        .env("PROMPTLAB_MODELS_CACHE", cache.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("fetch-models.sh"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("cd "), "{}", stdout(&out));
    let out = promptlab(&["models", "list"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("not fetched"), "{}", stdout(&out));
}

#[test]
fn completions_and_man_page_are_generated() {
    let dir = tempfile::tempdir().unwrap();
    let out = promptlab(&["completions", "bash"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("complete -F _promptlab"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("--min-pass-rate"), "{}", stdout(&out));
    let out = promptlab(&["man"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(".ie"),
        "roff: {}",
        &stdout(&out)[..40.min(stdout(&out).len())]
    );
    assert!(stdout(&out).contains("promptlab"));
    let out = promptlab(&["man", "--dir", "man"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(dir.path().join("man/promptlab-eval.1").is_file());
}

/// `-o -` puts the JSON report on standard output (for `jq`) and the summary on stderr.
#[test]
fn dash_output_writes_json_to_stdout() {
    let project = echo_project();
    let out = promptlab(&["eval", "eval-sets/mixed.yaml", "-o", "-"], project.root());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(json["cells"].as_array().unwrap().len(), 2);
    assert!(
        stderr(&out).contains("1 of 2 cells passed"),
        "{}",
        stderr(&out)
    );
    let out = promptlab(&["report", "latest", "-o", "-"], project.root());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(json["cells"].as_array().unwrap().len(), 2);
    let out = promptlab(
        &["eval", "eval-sets/mixed.yaml", "-o", "-", "-o", "-"],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("given twice"), "{}", stderr(&out));
}

/// Issue 21: a prompt edit changed "Rio de Janeiro" to "Rio"; both pass `contains: Rio`,
/// and `runs compare` said "no case changed". It counts the changed output and shows its
/// word diff; the cached re-run after the edit does change nothing.
#[test]
fn runs_compare_counts_outputs_that_changed_with_the_same_verdict() {
    let project = TempProject::new();
    project.write(
        "prompts/capital.yaml",
        "name: capital\ncompletion: 'The capital is {{ city }}.'\n",
    );
    project.write(
        "eval-sets/capitals.yaml",
        "prompts: [capital]\nmodels: [echo]\ncases:\n  - vars: {city: Paris}\n    assert: [{type: contains, value: Paris}]\n  - vars: {city: Rio de Janeiro}\n    assert: [{type: contains, value: Rio}]\n",
    );
    let run = |project: &TempProject| {
        let out = promptlab(
            &["eval", "eval-sets/capitals.yaml", "--quiet"],
            project.root(),
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    };
    run(&project);
    project.write(
        "prompts/capital.yaml",
        "name: capital\ncompletion: \"The capital is {{ city | replace(' de Janeiro', '') }}.\"\n",
    );
    run(&project);
    run(&project);
    let out = promptlab(&["runs", "compare", "1", "2"], project.root());
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{report}{}", stderr(&out));
    assert!(
        report.contains("capital @ echo: outputs changed: 1, no pass/fail change"),
        "{report}"
    );
    assert!(
        report.contains("Outputs changed, same verdict: 1")
            && report.contains("capital @ echo · case 2 Rio de Janeiro (score 1.00 → 1.00)")
            && report.contains("The capital is [-Rio de Janeiro.-]{+Rio.+}"),
        "{report}"
    );
    let cached = promptlab(&["runs", "compare", "2", "3"], project.root());
    assert!(
        stdout(&cached).contains("capital @ echo: no case changed"),
        "{}",
        stdout(&cached)
    );
}
