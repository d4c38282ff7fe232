//! Unit tests of the parent module.
use super::*;
use serde_json::json;

/// One row: an assertion, an output, and whether it passes. Every row is also run as the
/// `not-` form, which must give the opposite result (unless `unjudgeable`: then both fail).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    assert: AssertionSpec,
    output: String,
    #[serde(default)]
    latency_ms: Option<f64>,
    pass: bool,
    /// Must appear in the reason of whichever form fails.
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    unjudgeable: bool,
}

const CASES: &str = r#"
# equals: strings compare exactly (no trimming), objects/arrays compare parsed JSON
- {assert: {type: equals, value: Hello}, output: Hello, pass: true}
- {assert: {type: equals, value: Hello}, output: "Hello ", pass: false, reason: 'got "Hello "'}
- {assert: {type: equals, value: hello}, output: Hello, pass: false}
- {assert: {type: equals, value: 5}, output: "5", pass: true}
- {assert: {type: equals, value: 5.0}, output: "5", pass: true}
- {assert: {type: equals, value: true}, output: "true", pass: true}
- {assert: {type: equals, value: {a: 1, b: [1, 2]}}, output: '{"b": [1, 2.0], "a": 1}', pass: true}
- {assert: {type: equals, value: {a: 1}}, output: '{"a": 2}', pass: false, reason: 'got {"a":2}'}
- {assert: {type: equals, value: [1, 2]}, output: '[2, 1]', pass: false}
- {assert: {type: equals, value: {a: 1}}, output: 'not json', pass: false, reason: output is not JSON}
- {assert: {type: equals, value: x}, output: '', pass: false}

# contains / icontains
- {assert: {type: contains, value: foo}, output: a foo b, pass: true, reason: 'output was "a foo b"'}
- {assert: {type: contains, value: Foo}, output: a foo b, pass: false, reason: 'output was "a foo b"'}
- {assert: {type: contains, value: 0}, output: "score: 0", pass: true}
- {assert: {type: contains, value: needle}, output: "a haystack with plenty of hay before the needle", pass: true, reason: 'output was …"y of hay before the needle"'}
- {assert: {type: contains, value: x}, output: '', pass: false}
- {assert: {type: contains, value: é}, output: café, pass: true}
- {assert: {type: icontains, value: FOO}, output: a foo b, pass: true}
- {assert: {type: icontains, value: ärger}, output: ÄRGER IM BÜRO, pass: true}
- {assert: {type: icontains, value: σοφία}, output: ΣΟΦΊΑ, pass: true}
- {assert: {type: icontains, value: straße}, output: STRASSE, pass: false}
- {assert: {type: icontains, value: bar}, output: "İİİİ bar", pass: true, reason: 'bar'}
- {assert: {type: icontains, value: x}, output: '', pass: false}

# contains-any / contains-all and case-insensitive forms; strings are comma-separated
- {assert: {type: contains-any, value: [cat, dog]}, output: hot dog, pass: true, reason: 'found "dog"'}
- {assert: {type: contains-any, value: [cat, dog]}, output: bird, pass: false, reason: 'output was "bird"'}
- {assert: {type: contains-any, value: 'cat, dog'}, output: hot dog, pass: true}
- {assert: {type: contains-any, value: ['1,000', in stock]}, output: 'only 1,000 left', pass: true}
- {assert: {type: contains-any, value: ['1,000', in stock]}, output: 'only 1 left', pass: false}
- {assert: {type: contains-any, value: ' , cat,,dog '}, output: 'dog', pass: true}
- {assert: {type: contains-any, value: [cat]}, output: '', pass: false}
- {assert: {type: contains-all, value: [cat, dog]}, output: cat and dog, pass: true, reason: 'output was "cat and dog"'}
- {assert: {type: contains-all, value: [cat, dog, eel]}, output: cat, pass: false, reason: 'missing ["dog", "eel"]'}
- {assert: {type: contains-all, value: 'cat,dog'}, output: Cat and dog, pass: false}
- {assert: {type: contains-all, value: [1, 2]}, output: '1 and 2', pass: true}
- {assert: {type: icontains-any, value: [CAT, DOG]}, output: hot dog, pass: true}
- {assert: {type: icontains-any, value: [Éclair]}, output: ÉCLAIR, pass: true}
- {assert: {type: icontains-any, value: [cat]}, output: bird, pass: false}
- {assert: {type: icontains-all, value: 'Cat, DOG'}, output: cat and dog, pass: true}
- {assert: {type: icontains-all, value: [cat, dog]}, output: CAT, pass: false, reason: missing}

# starts-with
- {assert: {type: starts-with, value: 'Yes'}, output: 'Yes, indeed', pass: true}
- {assert: {type: starts-with, value: 'Yes'}, output: ' Yes', pass: false, reason: 'output was " Yes"'}
- {assert: {type: starts-with, value: 'Yes'}, output: '', pass: false}

# regex (Rust regex syntax)
- {assert: {type: regex, value: '\d{4}'}, output: 'in 2024', pass: true, reason: 'matched "2024"'}
- {assert: {type: regex, value: '^\d{4}$'}, output: 'in 2024', pass: false}
- {assert: {type: regex, value: '(?i)hello'}, output: 'HELLO', pass: true}
- {assert: {type: regex, value: '^$'}, output: '', pass: true}

# is-json: strict, whole output; any JSON value counts; optional schema
- {assert: {type: is-json}, output: '{"a": 1}', pass: true}
- {assert: {type: is-json}, output: ' [1, 2] ', pass: true}
- {assert: {type: is-json}, output: '42', pass: true}
- {assert: {type: is-json}, output: '', pass: false}
- {assert: {type: is-json}, output: "```json\n{\"a\": 1}\n```", pass: false, reason: 'not JSON: expected value at line 1 column 1 (fenced; contains-json allows that)'}
- {assert: {type: is-json}, output: '{"a": 1,}', pass: false, reason: 'not JSON: trailing comma'}
- {assert: {type: is-json, value: {type: object, required: [lat]}}, output: '{"lat": 1}', pass: true}
- {assert: {type: is-json, value: {type: object, required: [lat]}}, output: '{"lon": 1}', pass: false, reason: 'at (root): "lat" is a required property'}
- assert: {type: is-json, value: {type: object, properties: {lat: {type: number, maximum: 90}}}}
  output: '{"lat": 100}'
  pass: false
  reason: 'at /lat: 100 is greater than the maximum of 90'
- assert: {type: is-json, value: {type: object, properties: {items: {type: array, items: {type: string}}}}}
  output: '{"items": ["a", 2, 3]}'
  pass: false
  reason: 'at /items/1: 2 is not of type "string" (+1 more)'
- {assert: {type: is-json, value: '{"type": "array"}'}, output: '[]', pass: true}
- {assert: {type: is-json, value: {type: string, format: email}}, output: '"nope"', pass: false}
- {assert: {type: is-json, value: {type: object}}, output: 'nope', pass: false, reason: 'not JSON'}

# contains-json: finds objects in prose and markdown fences; a bare array does not count
- {assert: {type: contains-json}, output: 'Here: {"a": 1} ok', pass: true, reason: 'found {"a":1}'}
- {assert: {type: contains-json}, output: "Sure!\n```json\n{\"a\": {\"b\": \"}\"}}\n```\nDone.", pass: true}
- {assert: {type: contains-json}, output: 'see [1] and [2]', pass: false, reason: no JSON object found}
- {assert: {type: contains-json}, output: '[{"a": 1}]', pass: true}
- {assert: {type: contains-json}, output: '{not json} {"ok": true}', pass: true}
- {assert: {type: contains-json}, output: '{"a": 1', pass: false}
- {assert: {type: contains-json}, output: '', pass: false}
- assert: {type: contains-json, value: {type: object, required: [name], properties: {name: {type: string}}}}
  output: "```json\n{\"name\": \"Ada\"}\n```"
  pass: true
- assert: {type: contains-json, value: {type: object, required: [name], properties: {name: {type: string}}}}
  output: 'first {"x": 1} then {"name": "Ada"}'
  pass: true
- assert: {type: contains-json, value: {type: object, required: [name], properties: {name: {type: string}}}}
  output: 'result: {"name": 7}'
  pass: false
  reason: '1 JSON object(s), none valid; first: schema violation at /name: 7 is not of type "string"'

# json-path: RFC 9535 on the parsed output, or on JSON embedded in text
- {assert: {type: json-path, path: '$.a.b'}, output: '{"a": {"b": null}}', pass: true}
- {assert: {type: json-path, path: '$.a.c'}, output: '{"a": {"b": 1}}', pass: false, reason: 'nothing matches $.a.c'}
- {assert: {type: json-path, path: '$.n', value: 5}, output: '{"n": 5.0}', pass: true}
- {assert: {type: json-path, path: '$.n', value: 5}, output: '{"n": 6}', pass: false, reason: '$.n is 6'}
- {assert: {type: json-path, path: '$.n', value: '5'}, output: '{"n": 5}', pass: false, reason: '$.n is 5, a number, not a string'}
- {assert: {type: json-path, path: '$[*].id', value: 2}, output: '[{"id": 1}, {"id": 2}]', pass: true}
- {assert: {type: json-path, path: '$[*].id', value: 3}, output: '[{"id": 1}, {"id": 2}]', pass: false, reason: '$[*].id is 2 values: [1,2]'}
- {assert: {type: json-path, path: '$.user.name', value: Ada}, output: "Result:\n```json\n{\"user\": {\"name\": \"Ada\"}}\n```", pass: true}
- {assert: {type: json-path, path: '$.ok', value: true}, output: 'ref [1]: {"ok": true}', pass: true}
- {assert: {type: json-path, path: '$.tags', value: [a, b]}, output: '{"tags": ["a", "b"]}', pass: true}
- {assert: {type: json-path, path: '$.a'}, output: 'no json here', pass: false, reason: 'output has no JSON object or array: "no json here"'}
- {assert: {type: json-path, path: '$.a'}, output: '', pass: false}

# word-count / character-count (alias length): number = exact, or min/max
- {assert: {type: word-count, value: 3}, output: " one  two\nthree ", pass: true}
- {assert: {type: word-count, value: 3}, output: one two, pass: false, reason: 'to have exactly 3 words; it has 2 words'}
- {assert: {type: word-count, value: '2'}, output: one two, pass: true}
- {assert: {type: word-count, value: {min: 2, max: 3}}, output: one two three four, pass: false, reason: between 2 and 3}
- {assert: {type: word-count, min: 2}, output: one two, pass: true}
- {assert: {type: word-count, max: 1}, output: one two, pass: false, reason: 'to have at most 1 word; it has 2 words'}
- {assert: {type: word-count, value: 0}, output: '  ', pass: true}
- {assert: {type: word-count, value: {min: 1}}, output: '', pass: false, reason: 'it has 0 words'}
- {assert: {type: character-count, value: 4}, output: café, pass: true}
- {assert: {type: length, value: {max: 3}}, output: café, pass: false, reason: 'it has 4 characters'}
- {assert: {type: length, min: 1, max: 2}, output: '😀😀', pass: true}
- {assert: {type: length, value: 0}, output: '', pass: true}

# levenshtein: threshold is the maximum distance, default 5
- {assert: {type: levenshtein, value: kitten}, output: sitting, pass: true}
- {assert: {type: levenshtein, value: kitten, threshold: 2}, output: sitting, pass: false, reason: 'the distance is 3; output was "sitting"'}
- {assert: {type: levenshtein, value: kitten, threshold: 3}, output: sitting, pass: true, reason: 'the distance is 3'}
- {assert: {type: levenshtein, value: same, threshold: 0}, output: same, pass: true}
- {assert: {type: levenshtein, value: hello world}, output: '', pass: false, reason: 'the distance is at least 11'}
- {assert: {type: levenshtein, value: abc}, output: '', pass: true}
- {assert: {type: levenshtein, value: naïve, threshold: 1}, output: naive, pass: true}

# latency: threshold in ms; an unmeasured latency fails both forms
- {assert: {type: latency, threshold: 500}, output: x, latency_ms: 499.5, pass: true}
- {assert: {type: latency, threshold: 500}, output: x, latency_ms: 500, pass: true}
- {assert: {type: latency, threshold: 500}, output: x, latency_ms: 812, pass: false, reason: 'expected latency to be at most 500 ms; it took 812 ms'}
- {assert: {type: latency, threshold: 500}, output: x, pass: false, unjudgeable: true, reason: not measured}

# boxes-match: F1 of the match (all or nothing here); output that is not boxes fails both forms
- {assert: {type: boxes-match, value: [{label: cat, box: [0, 0, 10, 10]}]}, output: '{"objects": [{"label": "cat", "confidence": 0.9, "box": [1, 0, 10, 10]}]}', pass: true}
- {assert: {type: boxes-match, value: [{label: cat, box: [0, 0, 10, 10]}]}, output: '{"objects": [{"label": "dog", "confidence": 0.9, "box": [0, 0, 10, 10]}]}', pass: false, reason: 'F1 was 0.000: 0 of 1 expected box found at IoU ≥ 0.5; missed cat [0, 0, 10, 10]; 1 extra: dog'}
- {assert: {type: boxes-match, value: []}, output: '[]', pass: true}
- {assert: {type: boxes-match, value: []}, output: 'two cats', pass: false, unjudgeable: true, reason: not a list of boxes}

# text metrics: scored 0..1 against the reference (identical 1, disjoint 0 here; partial
# scores are pinned by tests/fixtures/text-metrics.json)
- {assert: {type: rouge-n, value: the cat sat}, output: The cat sat!, pass: true}
- {assert: {type: rouge-2, value: the cat sat}, output: dogs run, pass: false, reason: 'expected rouge-2 to be at least 0.75 against "the cat sat"; it was 0.000'}
- {assert: {type: rouge-l, value: a b c, threshold: 1}, output: a b c, pass: true}
- {assert: {type: bleu, value: The cat sat on the mat.}, output: The cat sat on the mat., pass: true}
- {assert: {type: chrf, value: abc}, output: xyz, pass: false, reason: it was 0.000}

# similar: without an embedding model (filled in from the catalog when a run is planned)
# it cannot be judged; tests/integration/similarity.rs checks it with the real model
- {assert: {type: similar, value: hi}, output: hi, pass: false, unjudgeable: true, reason: no embedding model}
# structured outputs (promptfoo's types; tests/promptfoo/scripts has promptfoo's verdicts)
- {assert: {type: is-xml}, output: '<a><b>1</b></a>', pass: true}
- {assert: {type: is-xml, value: 'a.b, a.c'}, output: '<a><b>1</b></a>', pass: false, reason: 'missing required elements: a.c'}
- {assert: {type: is-xml}, output: '<a><b></a>', pass: false, reason: 'not XML'}
- {assert: {type: contains-xml, value: [a.b]}, output: 'Here: <a><b>1</b></a>.', pass: true}
- {assert: {type: contains-xml}, output: 'no markup', pass: false, reason: 'no XML content found'}
- {assert: {type: is-sql}, output: 'SELECT a FROM t', pass: true}
- {assert: {type: is-sql, value: {databaseType: PostgreSQL, allowedTables: ['select::null::t']}}, output: 'SELECT a FROM u', pass: false, reason: "select::null::u"}
- {assert: {type: contains-sql}, output: "```sql\nSELECT 1\n```", pass: true}
- {assert: {type: is-sql}, output: 'not sql at all', pass: false, reason: 'does not conform'}
- {assert: {type: is-html}, output: '<p>Hi <b>there</b></p>', pass: true}
- {assert: {type: is-html}, output: 'Hi <b>there</b>', pass: false, reason: 'wrapped in HTML tags'}
- {assert: {type: contains-html}, output: 'See <div class="x">this</div>', pass: true}
- {assert: {type: contains-html}, output: 'x < y', pass: false}
- {assert: {type: is-refusal}, output: "I'm sorry, I can't help with that.", pass: true}
- {assert: {type: is-refusal}, output: 'Paris.', pass: false, reason: 'output was "Paris."'}

"#;

fn parse(yaml: &str) -> Result<Assertion, AssertionError> {
    let spec: AssertionSpec = serde_norway::from_str(yaml).expect("test spec is valid YAML");
    Assertion::from_spec(&spec)
}

fn run(a: &Assertion, output: &str) -> AssertionOutcome {
    a.check(&CheckInput {
        output,
        latency_ms: None,
        ..CheckInput::default()
    })
}

fn check_outcome(label: &str, o: &AssertionOutcome, want: bool, reason: Option<&str>) {
    assert_eq!(o.passed, want, "{label}: {o:?}");
    assert_eq!(o.score, if want { 1.0 } else { 0.0 }, "{label}");
    match &o.reason {
        Some(r) => {
            assert!(!want, "{label}: reason on a pass: {r}");
            assert!(!r.contains('\n'), "{label}: multi-line reason {r:?}");
            if let Some(needle) = reason {
                assert!(r.contains(needle), "{label}: reason {r:?} lacks {needle:?}");
            }
        }
        None => assert!(want, "{label}: failed without a reason"),
    }
}

#[test]
fn table_of_cases_in_both_polarities() {
    let cases: Vec<Case> = serde_norway::from_str(CASES).expect("CASES parses");
    let mut seen = std::collections::BTreeSet::new();
    for (i, case) in cases.iter().enumerate() {
        let label = format!("case {i} ({} on {:?})", case.assert.kind, case.output);
        let input = CheckInput {
            output: &case.output,
            latency_ms: case.latency_ms,
            ..CheckInput::default()
        };
        let positive =
            Assertion::from_spec(&case.assert).unwrap_or_else(|e| panic!("{label}: {e}"));
        seen.insert(positive.kind.name());
        let outcome = positive.check(&input);
        assert_eq!(outcome.assertion, positive.kind.name(), "{label}");
        let failing_reason = |fails: bool| if fails { case.reason.as_deref() } else { None };
        check_outcome(&label, &outcome, case.pass, failing_reason(!case.pass));

        let mut spec = case.assert.clone();
        spec.kind = format!("not-{}", spec.kind);
        let negated =
            Assertion::from_spec(&spec).unwrap_or_else(|e| panic!("{label} negated: {e}"));
        let outcome = negated.check(&input);
        assert_eq!(outcome.assertion, format!("not-{}", positive.kind.name()));
        let want = !case.pass && !case.unjudgeable;
        check_outcome(
            &format!("{label} negated"),
            &outcome,
            want,
            failing_reason(!want),
        );
        if !want && !case.unjudgeable {
            assert!(
                outcome
                    .reason
                    .as_deref()
                    .is_some_and(|r| r.contains(" not to ")),
                "{label}"
            );
        }
    }
    let canonical: Vec<&str> = ASSERTION_TYPES
        .iter()
        .copied()
        .filter(|t| *t != "length" && *t != "rouge-1")
        // Judged by a model in the run (tests/integration/judge.rs), not by `check`.
        .filter(|t| promptlab_judge(t).is_none())
        // Scored or given run inputs; tested in scripted_and_run_input_types,
        // perplexity_follows_promptfoo and score::meteor's fixtures.
        .filter(|t| {
            ![
                "javascript",
                "python",
                "assert-set",
                "gleu",
                "finish-reason",
                "cost",
                "meteor",
                "perplexity",
                "perplexity-score",
                // tools_call's tests and tests/integration/tools_call.rs.
                "is-valid-openai-tools-call",
            ]
            .contains(t)
        })
        .collect();
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>().len(),
        canonical.len(),
        "every type has cases"
    );
}

#[test]
fn spec_rejects_unknown_fields() {
    let err =
        serde_norway::from_str::<AssertionSpec>("{type: contains, value: a, rubricPrompt: x}")
            .unwrap_err();
    assert!(
        err.to_string().contains("unknown field `rubricPrompt`"),
        "{err}"
    );
    // Deserializing an Assertion validates it too.
    let err = serde_norway::from_str::<Vec<Assertion>>("[{type: icontain, value: a}]").unwrap_err();
    assert!(
        err.to_string().contains("did you mean \"icontains\"?"),
        "{err}"
    );
}

#[test]
fn defaults_and_fields() {
    let a = parse("{type: not-icontains, value: Foo, metric: tone}").unwrap();
    assert_eq!(a.kind, AssertionKind::IContains("Foo".into()));
    assert!(a.negated);
    assert_eq!(
        (a.weight, a.threshold, a.metric.as_deref()),
        (1.0, None, Some("tone"))
    );
    assert_eq!(a.type_name(), "not-icontains");
    assert_eq!(
        parse("{type: length, value: 3}").unwrap().type_name(),
        "character-count"
    );
    assert_eq!(
        parse("{type: word-count, value: {min: 2}}").unwrap().kind,
        AssertionKind::WordCount {
            min: Some(2),
            max: None
        }
    );
    assert_eq!(
        parse("{type: is-json, value: ''}").unwrap().kind,
        AssertionKind::IsJson(None)
    );
    assert_eq!(
        parse("{type: contains-json, value: null}").unwrap().kind,
        AssertionKind::ContainsJson(None)
    );
    let weighted = parse("{type: contains, value: a, weight: 0}").unwrap();
    assert_eq!(run(&weighted, "b").weight, 0.0);
}

#[test]
fn assertions_round_trip_through_yaml() {
    let specs = [
        "{type: equals, value: {a: [1, 2]}}",
        "{type: not-contains-any, value: 'a, b ,c', weight: 2, metric: m}",
        "{type: regex, value: '^\\d+$'}",
        "{type: is-json, value: {type: object}}",
        "{type: contains-json}",
        "{type: json-path, path: '$.a[0]', value: x}",
        "{type: word-count, min: 1, max: 9}",
        "{type: length, value: 7}",
        "{type: levenshtein, value: abc, threshold: 1}",
        "{type: not-latency, threshold: 100}",
    ];
    for yaml in specs {
        let a = parse(yaml).unwrap();
        let text = serde_norway::to_string(&a).unwrap();
        let back: Assertion =
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{yaml} -> {text}: {e}"));
        assert_eq!(a, back, "{yaml} -> {text}");
    }
    let spec = parse("{type: length, min: 2, max: 2}").unwrap().to_spec();
    assert_eq!(
        (spec.kind.as_str(), spec.value),
        ("character-count", Some(json!(2)))
    );
}

#[test]
fn reasons_are_short_and_quote_excerpts() {
    let long = format!("{}needle{}", "x".repeat(500), "y\n".repeat(500));
    let o = run(
        &parse("{type: not-contains, value: needle}").unwrap(),
        &long,
    );
    let reason = o.reason.unwrap();
    assert!(reason.len() < 250 && !reason.contains('\n'), "{reason}");
    assert!(reason.contains("…\"xxxxxxxxxxxxxxxxxxxxneedle"), "{reason}");

    let o = run(&parse("{type: equals, value: short}").unwrap(), &long);
    assert!(o.reason.unwrap().ends_with("xxxxx…\""));

    let list: Vec<String> = (0..20).map(|i| format!("w{i}")).collect();
    let spec = AssertionSpec {
        kind: "contains-all".into(),
        value: Some(json!(list)),
        ..spec("x")
    };
    let reason = run(&Assertion::from_spec(&spec).unwrap(), "w1")
        .reason
        .unwrap();
    assert!(
        reason.contains("(+15 more)") && reason.len() < 300,
        "{reason}"
    );
}

fn spec(kind: &str) -> AssertionSpec {
    AssertionSpec {
        kind: kind.into(),
        ..AssertionSpec::default()
    }
}

fn outcome(passed: bool, score: f64, weight: f64) -> AssertionOutcome {
    let reason = (!passed).then(|| "no".to_owned());
    AssertionOutcome {
        named_scores: Default::default(),
        metric: None,
        assertion: "contains".into(),
        passed,
        score,
        weight,
        reason,
        judge_error: None,
    }
}

#[test]
fn combine_weights_and_thresholds() {
    assert_eq!(combine(&[], None), (true, 1.0));
    assert_eq!(combine(&[], Some(0.5)), (true, 1.0));
    let all_pass = [outcome(true, 1.0, 1.0), outcome(true, 1.0, 3.0)];
    assert_eq!(combine(&all_pass, None), (true, 1.0));

    let mixed = [outcome(true, 1.0, 3.0), outcome(false, 0.0, 1.0)];
    assert_eq!(combine(&mixed, None), (false, 0.75));
    assert_eq!(combine(&mixed, Some(0.75)), (true, 0.75));
    assert_eq!(combine(&mixed, Some(0.8)), (false, 0.75));
    assert_eq!(combine(&mixed, Some(0.0)), (true, 0.75));

    let thirds = [outcome(true, 1.0, 2.0), outcome(false, 0.0, 1.0)];
    assert!(combine(&thirds, Some(2.0 / 3.0)).0);

    // Weight 0 neither moves the score nor fails the test.
    let informational = [outcome(true, 1.0, 1.0), outcome(false, 0.0, 0.0)];
    assert_eq!(combine(&informational, None), (true, 1.0));
    assert_eq!(combine(&[outcome(false, 0.0, 0.0)], None), (true, 1.0));

    // Real outcomes, end to end.
    let outcomes: Vec<_> = [
        "{type: contains, value: a, weight: 2}",
        "{type: not-contains, value: b}",
    ]
    .iter()
    .map(|y| run(&parse(y).unwrap(), "a b"))
    .collect();
    let (passed, score) = combine(&outcomes, None);
    assert!(!passed && (score - 2.0 / 3.0).abs() < 1e-12);
}

#[test]
fn long_outputs_stay_cheap() {
    // The length gap settles levenshtein without the O(n·m) table.
    let long = "ab".repeat(500_000);
    let lev = parse("{type: levenshtein, value: abab}").unwrap();
    let reason = run(&lev, &long).reason.unwrap();
    assert!(
        reason.contains("the distance is at least 999996"),
        "{reason}"
    );
    // Many unmatched braces do not blow up contains-json.
    let braces = format!("{}{}", "{".repeat(20_000), "{\"ok\": 1}");
    assert!(run(&parse("{type: contains-json}").unwrap(), &braces).passed);
}

#[test]
fn boxes_match_scores_f1_and_names_missed_and_extra_boxes() {
    let assertion = parse(
        "{type: boxes-match, iou: 0.5, threshold: 0.8, value: [{label: person, box: [0, 0, 10, 10]}, {label: person, box: [20, 0, 30, 10]}]}",
    )
    .unwrap();
    let both = r#"{"objects": [{"label": "person", "confidence": 0.9, "box": [0, 0, 10, 9]}, {"label": "person", "confidence": 0.8, "box": [21, 0, 30, 10]}]}"#;
    let o = run(&assertion, both);
    assert!(o.passed && (o.score - 1.0).abs() < 1e-12, "{o:?}");
    let one = r#"{"objects": [{"label": "person", "confidence": 0.9, "box": [0, 0, 10, 9]}]}"#;
    let o = run(&assertion, one);
    assert!(!o.passed && (o.score - 2.0 / 3.0).abs() < 1e-12, "{o:?}");
    let reason = o.reason.unwrap();
    assert!(
        reason.contains(
            "F1 was 0.667: 1 of 2 expected boxes found at IoU ≥ 0.5; missed person [20, 0, 30, 10]"
        ),
        "{reason}"
    );
    let o = run(&assertion, "I see two people");
    assert!(!o.passed && o.score == 0.0 && o.reason.unwrap().contains("not a list of boxes"));
    // An empty expectation passes only when nothing is found.
    let none = parse("{type: boxes-match, value: []}").unwrap();
    assert!(run(&none, r#"{"objects": []}"#).passed);
    assert!(!run(&none, one).passed);
    // Round trip and config errors.
    assert_eq!(
        Assertion::from_spec(&assertion.to_spec()).unwrap(),
        assertion
    );
    let err = parse("{type: boxes-match, value: [{box: [1, 2]}]}")
        .unwrap_err()
        .to_string();
    assert!(err.contains("box 1: `box` must be 4 numbers"), "{err}");
    let err = parse("{type: boxes-match, iou: 1.5, value: []}")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`iou` between 0 and 1"), "{err}");
    let err = parse("{type: contains, value: a, iou: 0.5}")
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not take `iou`"), "{err}");
}

fn promptlab_judge(name: &str) -> Option<crate::score::judge::Grader> {
    crate::score::judge::Grader::from_name(name)
}

#[test]
fn model_graded_assertions_wait_for_their_judge() {
    let assertion = parse("{type: llm-rubric, value: is polite, provider: qwen}").unwrap();
    let outcome = assertion.check(&CheckInput {
        output: "hello",
        latency_ms: None,
        ..CheckInput::default()
    });
    assert!(!outcome.passed);
    assert_eq!(outcome.judge_error.as_deref(), Some("not judged yet"));
    let spec = assertion.to_spec();
    assert_eq!(spec.provider.as_deref(), Some("qwen"));
    assert_eq!(Assertion::from_spec(&spec).unwrap(), assertion);
}

mod errors;
mod scripted;
