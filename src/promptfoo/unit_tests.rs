//! Unit tests of the promptfoo importer: the `__expected` shorthand, a config with every
//! supported shape, unsupported features listed or skipped, and errors named by place.

use serde_json::json;

use super::cases::expected_assertion;
use super::*;

#[test]
fn csv_expected_shorthand_reads_like_promptfoo() {
    assert_eq!(
        expected_assertion("contains: Paris"),
        json!({"type": "contains", "value": "Paris"})
    );
    assert_eq!(
        expected_assertion("not-icontains:sorry"),
        json!({"type": "not-icontains", "value": "sorry"})
    );
    assert_eq!(
        expected_assertion("similar(0.8): a sunny day"),
        json!({"type": "similar", "threshold": 0.8, "value": "a sunny day"})
    );
    assert_eq!(
        expected_assertion("icontains-any: red, green,blue"),
        json!({"type": "icontains-any", "value": ["red", "green", "blue"]})
    );
    assert_eq!(expected_assertion("is-json"), json!({"type": "is-json"}));
    assert_eq!(
        expected_assertion("grade: is polite"),
        json!({"type": "llm-rubric", "value": "is polite"})
    );
    assert_eq!(
        expected_assertion("fn: output.length < 5"),
        json!({"type": "javascript", "value": "output.length < 5"})
    );
    // Not a known type: the whole text is the expected output.
    assert_eq!(
        expected_assertion("Paris: the capital"),
        json!({"type": "equals", "value": "Paris: the capital"})
    );
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn config_becomes_prompts_models_and_expanded_cases() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "prompts/a.txt",
        "Translate {{text}} to {{lang}}\n---\nSay {{text}} in {{lang}}\n",
    );
    write(
        dir.path(),
        "tests.csv",
        "text,lang,__expected,__expected2,__description\nhi,French,contains: hi,not-contains: bye,first\n",
    );
    write(dir.path(), "long.txt", "a long text");
    let config = write(
        dir.path(),
        "promptfooconfig.yaml",
        r#"
description: demo
prompts: [file://prompts/*.txt, {raw: "Echo {{text}}", label: echo-it}]
providers:
  - echo
  - id: openai:chat:qwen
    label: fleet
    config: {apiBaseUrl: "http://10.0.0.9:8000/v1", temperature: 0.2, max_tokens: 64}
defaultTest:
  vars: {lang: German, tone: plain}
  assert: [{type: not-icontains, value: "error", weight: 0.5, metric: safety}]
tests:
  - file://tests.csv
  - vars: {text: [one, two], lang: [Spanish, Italian], doc: file://long.txt}
    assert: [{type: icontains, value: "{{text}}"}]
scenarios:
  - config: [{vars: {lang: Dutch}}, {vars: {lang: Polish}}]
    tests: [{vars: {text: x}}, {vars: {text: y}}]
"#,
    );
    assert!(is_config(&config));
    let imported = import(&config, &ModelCatalog::default(), false).unwrap();
    let ids: Vec<&str> = imported.prompts.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["a-1", "a-2", "echo-it"]);
    assert_eq!(imported.eval_set.models, ["echo", "fleet"]);
    let (name, entry) = &imported.models[0];
    assert_eq!(name, "fleet");
    let remote = entry.servers().unwrap();
    assert_eq!(remote.model, "qwen");
    assert_eq!(remote.endpoints[0].url(), "http://10.0.0.9:8000/v1");
    assert_eq!(entry.params().max_tokens, Some(64));

    let cases = &imported.eval_set.cases;
    // 1 CSV row + 2×2 expanded + 2 scenario configs × 2 tests.
    assert_eq!(cases.len(), 1 + 4 + 4);
    assert_eq!(cases[0].description, "first");
    assert_eq!(cases[0].vars["lang"], "French", "the test's vars win");
    assert_eq!(cases[0].vars["tone"], "plain", "defaultTest vars fill gaps");
    let kinds: Vec<&str> = cases[0]
        .assertions
        .iter()
        .map(|a| a.kind.as_str())
        .collect();
    assert_eq!(kinds, ["not-icontains", "contains", "not-contains"]);
    assert_eq!(cases[0].assertions[0].metric.as_deref(), Some("safety"));
    assert_eq!(cases[1].vars["doc"], "a long text");
    let combos: Vec<(String, String)> = cases[1..5]
        .iter()
        .map(|c| (c.vars["text"].to_string(), c.vars["lang"].to_string()))
        .collect();
    assert_eq!(combos.len(), 4);
    assert!(combos.contains(&("\"two\"".into(), "\"Italian\"".into())));
    assert_eq!(cases[5].vars["lang"], "Dutch");
    assert_eq!(cases[8].vars["lang"], "Polish");
    assert_eq!(cases[8].vars["text"], "y");
}

#[test]
fn unsupported_features_are_listed_up_front_or_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "promptfooconfig.yaml",
        r#"
prompts: ["Hi {{name}}"]
providers: [echo, anthropic:messages:claude-3]
tests:
  - vars: {name: Ann}
    assert:
      - {type: ruby, value: "output.length > 1"}
      - {type: contains, value: Ann, contextTransform: "output.trim()"}
      - {type: contains, value: Hi}
"#,
    );
    let err = import(&config, &ModelCatalog::default(), false)
        .unwrap_err()
        .to_string();
    for expected in [
        "provider `anthropic:messages:claude-3`",
        "assertion type `ruby`",
        "assertion field `contextTransform`",
        "--skip-unsupported",
    ] {
        assert!(err.contains(expected), "{expected}: {err}");
    }
    let imported = import(&config, &ModelCatalog::default(), true).unwrap();
    assert_eq!(imported.eval_set.models, ["echo"]);
    assert_eq!(imported.skipped.len(), 3);
    let kinds: Vec<&str> = imported.eval_set.cases[0]
        .assertions
        .iter()
        .map(|a| a.kind.as_str())
        .collect();
    // The assertion with a dropped `transform` is skipped, not run on the raw output.
    assert_eq!(kinds, ["contains"]);
}

#[test]
fn bad_input_names_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "promptfooconfig.yaml",
        "prompts: [\"x\"]\nproviders: [echo]\ntests:\n  - vars: {a: 1}\n    assert: [{type: regex, value: \"(\"}]\n",
    );
    let err = import(&config, &ModelCatalog::default(), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("promptfooconfig.yaml: tests[0]: assert[0]: regex"),
        "{err}"
    );

    let config = write(
        dir.path(),
        "promptfooconfig.yaml",
        "prompts: [file://missing.txt]\nproviders: [echo]\n",
    );
    let err = import(&config, &ModelCatalog::default(), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("prompts[0]: `file://missing.txt`: no such file"),
        "{err}"
    );

    let csv = write(dir.path(), "t.csv", "a,__threshold\n1,high\n");
    let config = write(
        dir.path(),
        "promptfooconfig.yaml",
        "prompts: [\"{{a}}\"]\nproviders: [echo]\ntests: file://t.csv\n",
    );
    let err = import(&config, &ModelCatalog::default(), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("{}:2: __threshold", csv.display())),
        "{err}"
    );
}

/// A `transformVars` that throws, or returns anything but an object, stops the import
/// with the test it belongs to (promptfoo stops the whole evaluation).
#[test]
fn failing_transform_vars_name_their_test() {
    let dir = tempfile::tempdir().unwrap();
    for (code, expected) in [
        ("vars.missing.field", "TypeError"),
        ("'just text'", "expected the script to return an object"),
        ("file://nope.js", "nope.js"),
    ] {
        let config = write(
            dir.path(),
            "promptfooconfig.yaml",
            &format!(
                "prompts: [\"{{{{a}}}}\"]\nproviders: [echo]\ntests:\n  - vars: {{a: 1}}\n  - vars: {{a: 2}}\n    options:\n      transformVars: \"{code}\"\n"
            ),
        );
        let err = import(&config, &ModelCatalog::default(), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("tests[1]: transformVars: "), "{err}");
        assert!(err.contains(expected), "{code}: {err}");
    }
}
