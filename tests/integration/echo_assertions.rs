//! Every assertion type through a real run with the echo engine: the prompt outputs the
//! case's `output` variable verbatim, so each assertion sees exactly the text we chose.
//! Each row runs plain and with `not-`, which must give the opposite result.

use crate::common::TempProject;
use promptlab::engine::CancelToken;
use promptlab::evalset::EvalSet;
use promptlab::project::Project;
use promptlab::run::{self, ExecuteOptions, Quiet, RunOptions, RunResult};

/// (output, assertion as YAML flow mapping without `type`, type, expected pass)
const ROWS: &[(&str, &str, &str, bool)] = &[
    ("Paris", "value: Paris", "equals", true),
    ("Paris ", "value: Paris", "equals", false),
    (r#"{"a": 1}"#, "value: {a: 1}", "equals", true),
    ("The capital is Paris.", "value: Paris", "contains", true),
    ("The capital is Paris.", "value: paris", "contains", false),
    ("The capital is PARIS.", "value: paris", "icontains", true),
    ("red and blue", "value: [green, blue]", "contains-any", true),
    (
        "red and blue",
        "value: 'green, yellow'",
        "contains-any",
        false,
    ),
    ("red and blue", "value: [red, blue]", "contains-all", true),
    ("red and blue", "value: [red, green]", "contains-all", false),
    ("RED and blue", "value: [green, red]", "icontains-any", true),
    ("RED and BLUE", "value: [red, blue]", "icontains-all", true),
    ("RED and BLUE", "value: [red, pink]", "icontains-all", false),
    ("Answer: 42", "value: 'Answer:'", "starts-with", true),
    ("The answer: 42", "value: 'Answer:'", "starts-with", false),
    ("order #12345 shipped", "value: '#\\d{5}\\b'", "regex", true),
    ("order #123 shipped", "value: '#\\d{5}\\b'", "regex", false),
    (r#"{"ok": true}"#, "{}", "is-json", true),
    ("not json", "{}", "is-json", false),
    (
        r#"{"age": 7}"#,
        "value: {type: object, properties: {age: {type: integer, minimum: 18}}}",
        "is-json",
        false,
    ),
    ("Here you go: {\"x\": 1} done", "{}", "contains-json", true),
    ("no braces at all", "{}", "contains-json", false),
    (
        r#"{"user": {"name": "Ada"}}"#,
        "path: $.user.name, value: Ada",
        "json-path",
        true,
    ),
    (
        r#"{"user": {"name": "Bob"}}"#,
        "path: $.user.name, value: Ada",
        "json-path",
        false,
    ),
    ("one two three", "min: 2, max: 4", "word-count", true),
    ("one two three four five", "max: 4", "word-count", false),
    ("héllo", "value: 5", "length", true),
    ("hello world", "max: 5", "length", false),
    (
        "kitten",
        "value: sitting, threshold: 3",
        "levenshtein",
        true,
    ),
    (
        "kitten",
        "value: sitting, threshold: 2",
        "levenshtein",
        false,
    ),
    ("fast", "threshold: 60000", "latency", true),
    // Reference metrics (values as rouge-score and sacrebleu give them for this pair:
    // ROUGE-1 0.615, ROUGE-2 0.364, ROUGE-L 0.615, BLEU 37.7, chrF 39.8).
    (
        "The cat sat on the mat.",
        "value: 'A cat was sitting on the mat.', threshold: 0.6",
        "rouge-n",
        true,
    ),
    (
        "The cat sat on the mat.",
        "value: 'A cat was sitting on the mat.'",
        "rouge-n",
        false,
    ),
    (
        "The cat sat on the mat.",
        "value: 'A cat was sitting on the mat.', threshold: 0.35",
        "rouge-2",
        true,
    ),
    (
        "The cat sat on the mat.",
        "value: 'A cat was sitting on the mat.', threshold: 0.62",
        "rouge-l",
        false,
    ),
    (
        "The cat sat on the mat.",
        "value: 'A cat was sitting on the mat.', threshold: 0.37",
        "bleu",
        true,
    ),
    (
        "The cat sat on the mat.",
        "value: 'A cat was sitting on the mat.'",
        "bleu",
        false,
    ),
    (
        "The cat sat on the mat.",
        "value: 'A cat was sitting on the mat.', threshold: 0.39",
        "chrf",
        true,
    ),
    (
        "The cat sat on the mat.",
        "value: 'A cat was sitting on the mat.', threshold: 0.4",
        "chrf",
        false,
    ),
];

fn run_eval_set(project: &TempProject, path: &std::path::Path) -> RunResult {
    let eval_set = EvalSet::load(path).unwrap();
    let project = Project::open(project.root()).unwrap();
    let plan = run::plan(&project, eval_set, &RunOptions::default()).unwrap();
    run::execute(
        &plan,
        &ExecuteOptions::default(),
        &mut Quiet,
        &CancelToken::new(),
        None,
    )
    .unwrap()
}

fn run_rows(negated: bool) -> Vec<(String, bool, bool)> {
    let project = TempProject::new();
    project.write(
        "prompts/echo.yaml",
        "name: echo\ncompletion: '{{ output }}'\n",
    );
    let mut yaml = String::from("name: assertions\nprompts: [echo]\nmodels: [echo]\ncases:\n");
    for (output, spec, kind, _) in ROWS {
        let kind = if negated {
            format!("not-{kind}")
        } else {
            kind.to_string()
        };
        let spec = if *spec == "{}" {
            String::new()
        } else {
            format!(", {spec}")
        };
        yaml.push_str(&format!(
            "  - vars: {{output: {}}}\n    assert:\n      - {{type: {kind}{spec}}}\n",
            serde_json::to_string(output).unwrap()
        ));
    }
    let path = project.write("eval-sets/assertions.yaml", &yaml);
    let result = run_eval_set(&project, &path);
    assert_eq!(result.cells.len(), ROWS.len());
    result
        .cells
        .iter()
        .map(|cell| {
            let outcome = &cell.assertions[0];
            if !outcome.passed {
                assert!(
                    outcome.reason.is_some(),
                    "failure without a reason: {outcome:?}"
                );
            }
            (outcome.assertion.clone(), cell.passed, outcome.passed)
        })
        .collect()
}

#[test]
fn every_assertion_type_through_the_echo_engine() {
    for (row, (name, cell_passed, _)) in ROWS.iter().zip(run_rows(false)) {
        assert_eq!(cell_passed, row.3, "{name} on {:?} ({})", row.0, row.1);
    }
}

#[test]
fn every_not_assertion_inverts() {
    for (row, (name, cell_passed, _)) in ROWS.iter().zip(run_rows(true)) {
        assert!(name.starts_with("not-"), "{name}");
        assert_eq!(cell_passed, !row.3, "{name} on {:?} ({})", row.0, row.1);
    }
}

#[test]
fn weights_and_threshold_decide_the_case() {
    let project = TempProject::new();
    project.write(
        "prompts/echo.yaml",
        "name: echo\ncompletion: '{{ output }}'\n",
    );
    let path = project.write(
        "eval-sets/w.yaml",
        "prompts: [echo]\nmodels: [echo]\ncases:\n  - vars: {output: alpha beta}\n    threshold: 0.7\n    assert:\n      - {type: contains, value: alpha, weight: 3}\n      - {type: contains, value: gamma, weight: 1}\n  - vars: {output: alpha beta}\n    assert:\n      - {type: contains, value: alpha, weight: 3}\n      - {type: contains, value: gamma, weight: 1}\n",
    );
    let result = run_eval_set(&project, &path);
    assert!((result.cells[0].score - 0.75).abs() < 1e-9);
    assert!(result.cells[0].passed, "0.75 >= threshold 0.7");
    assert!(
        !result.cells[1].passed,
        "without a threshold every assertion must pass"
    );
}

/// A text metric without `value` scores against the case's `expected`, with the metric
/// as the cell's score; a case with neither is a configuration error naming the case.
#[test]
fn text_metrics_use_the_expected_answer_or_name_the_case() {
    let project = TempProject::new();
    project.write(
        "prompts/echo.yaml",
        "name: echo\ncompletion: '{{ output }}'\n",
    );
    let path = project.write(
        "eval-sets/m.yaml",
        "prompts: [echo]\nmodels: [echo]\ncases:\n  - vars: {output: The cat sat on the mat.}\n    expected: A cat was sitting on the mat.\n    assert:\n      - {type: rouge-l, threshold: 0.6}\n",
    );
    let result = run_eval_set(&project, &path);
    assert!(result.cells[0].passed);
    assert!((result.cells[0].score - 0.6153846153846153).abs() < 1e-9);

    let path = project.write(
        "eval-sets/missing.yaml",
        "prompts: [echo]\nmodels: [echo]\ncases:\n  - id: no-reference\n    vars: {output: hi}\n    assert:\n      - {type: bleu}\n",
    );
    let eval_set = EvalSet::load(&path).unwrap();
    let project = Project::open(project.root()).unwrap();
    let error = run::plan(&project, eval_set, &RunOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("no-reference"), "{error}");
    assert!(error.contains("`bleu` needs a reference text"), "{error}");
}
