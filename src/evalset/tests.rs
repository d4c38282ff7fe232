//! Unit tests of the parent module.
use super::*;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn defaults_apply_and_files_load() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir,
        "more.jsonl",
        "{\"review\": \"fine\", \"expected\": \"positive\", \"tags\": \"short\"}\n\n{\"vars\": {\"review\": \"bad\"}, \"expected\": \"negative\"}\n",
    );
    write(
        &dir,
        "more.csv",
        "review,expected,tags\n\"good, really\",positive,a;b\n",
    );
    let set = write(
        &dir,
        "set.yaml",
        "name: s\nprompts: [p]\nmodels: [echo]\ndefaults:\n  assert:\n    - type: is-json\n  vars: {lang: en}\ncases:\n  - vars: {review: ok}\n    assert:\n      - type: contains\n        value: ok\ncases_from: [more.jsonl, more.csv]\n",
    );
    let set = EvalSet::load(&set).unwrap();
    assert_eq!(set.cases.len(), 4);
    let ids: Vec<_> = set.cases.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["1", "2", "3", "4"]);
    assert_eq!(set.cases[0].assertions.len(), 2);
    assert_eq!(set.cases[0].assertions[0].kind, "is-json");
    assert_eq!(set.cases[1].tags, ["short"]);
    assert_eq!(set.cases[2].vars["review"], "bad");
    assert_eq!(set.cases[3].vars["review"], "good, really");
    assert_eq!(set.cases[3].tags, ["a", "b"]);
    assert!(set.cases.iter().all(|c| c.vars["lang"] == "en"));
    assert_eq!(set.tags(), ["a", "b", "short"]);
}

#[test]
fn ragged_csv_row_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir, "r.csv", "review,expected\na,b\nc\n");
    let set = write(&dir, "set.yaml", "cases_from: [r.csv]\n");
    let err = EvalSet::load(&set).unwrap_err().to_string();
    assert!(err.contains("r.csv:3:"), "{err}");
    assert!(err.contains("row has 1 fields, expected 2"), "{err}");
}

#[test]
fn bad_jsonl_line_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir, "c.jsonl", "{\"a\": 1}\n{\"a\": \n");
    let set = write(&dir, "set.yaml", "cases_from: [c.jsonl]\n");
    let err = EvalSet::load(&set).unwrap_err().to_string();
    assert!(err.contains("c.jsonl:2: invalid JSON"), "{err}");
}

#[test]
fn empty_set_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let set = write(&dir, "empty.yaml", "name: e\ncases: []\n");
    let err = EvalSet::load(&set).unwrap_err().to_string();
    assert!(
        err.contains("empty.yaml") && err.contains("no cases"),
        "{err}"
    );
}

#[test]
fn unknown_case_key_names_line() {
    let dir = tempfile::tempdir().unwrap();
    let set = write(&dir, "u.yaml", "cases:\n  - vars: {a: 1}\n    expect: x\n");
    let err = EvalSet::load(&set).unwrap_err().to_string();
    assert!(
        err.contains("u.yaml:3:") && err.contains("unknown field `expect`"),
        "{err}"
    );
}

#[test]
fn missing_cases_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let set = write(&dir, "m.yaml", "cases_from: [nope.csv]\n");
    let err = EvalSet::load(&set).unwrap_err().to_string();
    assert!(err.contains("nope.csv"), "{err}");
}

/// Issue 20: a threshold is a fraction; one out of range is refused where it is written.
#[test]
fn issue_20_thresholds_out_of_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let set = write(
        &dir,
        "t.yaml",
        "defaults:\n  threshold: 1.5\ncases:\n  - vars: {a: 1}\n",
    );
    let err = EvalSet::load(&set).unwrap_err().to_string();
    assert!(err.contains("defaults.threshold 1.5"), "{err}");
    let set = write(
        &dir,
        "c.yaml",
        "cases:\n  - vars: {a: 1}\n  - id: second\n    vars: {a: 2}\n    threshold: -0.1\n",
    );
    let err = EvalSet::load(&set).unwrap_err().to_string();
    assert!(err.contains("case 2 (`second`): threshold -0.1"), "{err}");
}

/// Issue 21: a case is named by its description, or else by its first variable.
#[test]
fn cases_are_labelled_by_description_or_first_variable() {
    let vars = |json: serde_json::Value| json.as_object().unwrap().clone();
    assert_eq!(
        case_label(
            "the tricky one",
            &vars(serde_json::json!({"country": "France"}))
        ),
        "the tricky one"
    );
    assert_eq!(
        case_label("", &vars(serde_json::json!({"country": "France", "z": 1}))),
        "France"
    );
    assert_eq!(case_label("", &vars(serde_json::json!({"n": 42}))), "42");
    assert_eq!(case_label("", &serde_json::Map::new()), "");
}
