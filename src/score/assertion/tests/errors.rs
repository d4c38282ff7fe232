//! Invalid assertions are refused with a message that names the problem.

use super::*;

#[test]
fn errors_name_the_problem() {
    let cases = [
        (
            "{type: icontain, value: x}",
            r#"unknown assertion type "icontain"; did you mean "icontains"?"#,
        ),
        (
            "{type: not-contains_any, value: x}",
            r#"did you mean "not-contains-any"?"#,
        ),
        ("{type: IS-JSON}", r#"did you mean "is-json"?"#),
        (
            "{type: g-eval, value: x}",
            "supported types: equals, contains, icontains",
        ),
        ("{type: llm-rubric}", "llm-rubric expects a rubric"),
        (
            "{type: llm-rubric, value: x, iou: 0.5}",
            "llm-rubric does not take `iou`",
        ),
        ("{type: contains}", "contains expects a non-empty string"),
        (
            "{type: contains, value: ''}",
            "contains expects a non-empty string",
        ),
        ("{type: starts-with, value: [a]}", "starts-with expects"),
        (
            "{type: contains-any, value: {a: 1}}",
            "contains-any expects a non-empty list of non-empty strings or a comma-separated string",
        ),
        (
            "{type: contains-all, value: []}",
            "contains-all expects a non-empty list",
        ),
        (
            "{type: contains-all, value: ' , '}",
            "contains-all expects a non-empty list",
        ),
        (
            "{type: icontains-any, value: '\"a, b'}",
            "(with quotes or commas: a list)",
        ),
        (
            "{type: icontains-all, value: [a, {b: 1}]}",
            "icontains-all expects",
        ),
        ("{type: equals}", "equals expects a value"),
        (
            "{type: regex, value: '(unclosed'}",
            "regex: invalid regex: regex parse error",
        ),
        ("{type: regex, value: '(?<=a)b'}", "look-around"),
        ("{type: regex}", "regex expects a regular expression string"),
        (
            "{type: is-json, value: {type: nonsense}}",
            "is-json: invalid JSON schema",
        ),
        (
            "{type: contains-json, value: 'not json'}",
            "contains-json: invalid JSON schema: expected ident",
        ),
        (
            "{type: is-json, value: 3}",
            "a schema must be an object or a boolean",
        ),
        (
            "{type: json-path, path: '$..['}",
            r#"json-path: invalid JSONPath "$..[""#,
        ),
        ("{type: json-path, value: 1}", "json-path expects `path`"),
        (
            "{type: latency}",
            "latency requires `threshold` (the maximum latency in milliseconds)",
        ),
        ("{type: not-latency}", "latency requires `threshold`"),
        (
            "{type: latency, value: 500}",
            "latency does not take `value`",
        ),
        (
            "{type: latency, threshold: -1}",
            "threshold must be a finite non-negative number, got -1",
        ),
        (
            "{type: levenshtein, value: a, threshold: -2}",
            "threshold must be a finite non-negative number",
        ),
        (
            "{type: contains, value: a, weight: -1}",
            "weight must be a finite non-negative number, got -1",
        ),
        (
            "{type: contains, value: a, threshold: 0.5}",
            "contains does not take `threshold`",
        ),
        (
            "{type: contains, value: a, path: $.x}",
            "contains does not take `path`",
        ),
        (
            "{type: contains, value: a, max: 3}",
            "contains does not take `max`",
        ),
        (
            "{type: word-count}",
            "word-count expects a non-negative whole number",
        ),
        (
            "{type: word-count, value: -1}",
            "word-count expects a non-negative whole number",
        ),
        (
            "{type: word-count, value: 2.5}",
            "word-count expects a non-negative whole number",
        ),
        (
            "{type: word-count, value: {min: 5, max: 2}}",
            "`min` (5) to be at most `max` (2)",
        ),
        (
            "{type: word-count, value: {minimum: 5}}",
            "(as `value: {min, max}`)",
        ),
        (
            "{type: length, value: 3, max: 4}",
            "character-count expects either `value` or top-level `min`/`max`, not both",
        ),
        (
            "{type: length, value: {}}",
            "character-count expects a non-negative whole number",
        ),
    ];
    for (yaml, needle) in cases {
        match parse(yaml) {
            Ok(a) => panic!("{yaml}: expected an error, got {a:?}"),
            Err(e) => assert!(
                e.to_string().contains(needle),
                "{yaml}: {e} lacks {needle:?}"
            ),
        }
    }
    assert!(
        matches!(parse("{type: icontain}"), Err(AssertionError::UnknownType { suggestion: Some(s), .. }) if s == "icontains")
    );
    assert!(matches!(
        parse("{type: ruby}"),
        Err(AssertionError::UnknownType {
            suggestion: None,
            ..
        })
    ));
    assert!(matches!(
        parse("{type: latency}"),
        Err(AssertionError::MissingThreshold)
    ));
    assert!(matches!(
        parse("{type: regex, value: '['}"),
        Err(AssertionError::InvalidRegex(_))
    ));
}
