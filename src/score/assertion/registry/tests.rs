//! The registry agrees with the kinds it builds, and the guide's assertions page shows its table.
use super::*;
use crate::score::assertion::Assertion;

/// One valid spec of every registered type: a new type needs a line here.
const EXAMPLES: &[&str] = &[
    "{type: equals, value: a}",
    "{type: contains, value: a}",
    "{type: icontains, value: a}",
    "{type: contains-any, value: [a, b]}",
    "{type: contains-all, value: [a, b]}",
    "{type: icontains-any, value: [a, b]}",
    "{type: icontains-all, value: [a, b]}",
    "{type: starts-with, value: a}",
    "{type: regex, value: a+}",
    "{type: is-json}",
    "{type: contains-json}",
    "{type: json-path, path: $.a}",
    "{type: word-count, value: 2}",
    "{type: character-count, value: 2}",
    "{type: levenshtein, value: a}",
    "{type: latency, threshold: 100}",
    "{type: boxes-match, value: []}",
    "{type: rouge-n, value: a}",
    "{type: rouge-2, value: a}",
    "{type: rouge-l, value: a}",
    "{type: bleu, value: a}",
    "{type: chrf, value: a}",
    "{type: similar, value: a}",
    "{type: llm-rubric, value: a}",
    "{type: factuality, value: a}",
    "{type: model-graded-closedqa, value: a}",
    "{type: javascript, value: output.length > 0}",
    "{type: python, value: len(output) > 0}",
    "{type: assert-set, assert: [{type: contains, value: a}]}",
    "{type: is-xml}",
    "{type: contains-xml}",
    "{type: is-sql}",
    "{type: contains-sql}",
    "{type: is-html}",
    "{type: contains-html}",
    "{type: is-refusal}",
    "{type: is-valid-openai-tools-call}",
    "{type: finish-reason, value: stop}",
    "{type: gleu, value: a b c}",
    "{type: cost, threshold: 0.1}",
    "{type: meteor, value: a b c}",
    "{type: perplexity, threshold: 5}",
    "{type: perplexity-score}",
];

fn example(assertion_type: &AssertionType) -> AssertionSpec {
    let wanted = format!("{{type: {},", assertion_type.name);
    let wanted_bare = format!("{{type: {}}}", assertion_type.name);
    let yaml = EXAMPLES
        .iter()
        .find(|e| e.starts_with(&wanted) || **e == wanted_bare)
        .unwrap_or_else(|| panic!("no example of {} in EXAMPLES", assertion_type.name));
    serde_norway::from_str(yaml).expect("examples are valid YAML")
}

fn set(spec: &mut AssertionSpec, field: Field) {
    match field {
        Field::Threshold => spec.threshold = Some(0.5),
        Field::Path => spec.path = Some("$.a".into()),
        Field::Min => spec.min = Some(1.0),
        Field::Max => spec.max = Some(1.0),
        Field::Iou => spec.iou = Some(0.5),
        Field::Provider => spec.provider = Some("m".into()),
    }
}

#[test]
fn every_type_builds_its_own_kind() {
    assert_eq!(EXAMPLES.len(), REGISTRY.len(), "one example a type");
    for t in REGISTRY {
        let assertion = Assertion::from_spec(&example(t))
            .unwrap_or_else(|e| panic!("{}'s example: {e}", t.name));
        assert_eq!(assertion.kind.name(), t.name);
        assert_eq!(
            assertion.kind.assertion_type().map(|f| f.name),
            Some(t.name)
        );
        for alias in t.names() {
            let spec = AssertionSpec {
                kind: format!("not-{alias}"),
                ..example(t)
            };
            let negated = Assertion::from_spec(&spec).unwrap_or_else(|e| panic!("{alias}: {e}"));
            assert_eq!(negated.type_name(), format!("not-{}", t.name));
            assert_eq!(Assertion::from_spec(&negated.to_spec()).ok(), Some(negated));
        }
        // What the run supplies goes where the kind keeps it.
        let holds = match &assertion.kind {
            AssertionKind::Latency => Needs::Latency,
            AssertionKind::ModelGraded { .. } => Needs::JudgeModel,
            AssertionKind::Similar { .. } => Needs::EmbeddingModel,
            _ => Needs::Output,
        };
        assert_eq!(t.needs, holds, "{}", t.name);
    }
}

#[test]
fn fields_a_type_does_not_declare_are_refused() {
    for t in REGISTRY {
        for field in Field::ALL {
            let mut spec = example(t);
            set(&mut spec, field);
            let result = Assertion::from_spec(&spec);
            let refused = matches!(
                &result,
                Err(AssertionError::UnexpectedField(name, f)) if name == t.name && *f == field.name()
            );
            let declared = t.fields.iter().any(|(f, _)| *f == field);
            assert_eq!(
                refused,
                !declared,
                "{} with `{}`: {result:?}",
                t.name,
                field.name()
            );
        }
    }
}

#[test]
fn types_with_a_reference_say_expected_can_stand_in() {
    for t in REGISTRY.iter().filter(|t| t.reference.is_some()) {
        let spec = AssertionSpec {
            value: None,
            ..example(t)
        };
        let err = Assertion::from_spec(&spec).expect_err(t.name).to_string();
        assert!(err.contains("`expected`"), "{}: {err}", t.name);
        assert!(t.value_help().contains("`expected`"), "{}", t.name);
    }
}

#[test]
fn names_suggestions_and_the_error_come_from_the_registry() {
    let names: Vec<&str> = REGISTRY.iter().flat_map(AssertionType::names).collect();
    assert_eq!(*ASSERTION_TYPES, names);
    let unique: std::collections::BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), names.len(), "a name stands for one type");
    let err = Assertion::from_spec(&AssertionSpec {
        kind: "not-rogue-l".into(),
        ..example(&REGISTRY[0])
    })
    .expect_err("unknown")
    .to_string();
    assert!(err.contains("did you mean \"not-rouge-l\"?"), "{err}");
    assert!(err.contains(&names.join(", ")), "{err}");
    assert!(find("not-length").is_some_and(|t| t.name == "character-count"));
    assert!(find("not-not-length").is_none());
}

#[test]
fn help_states_the_defaults_the_checks_use() {
    use crate::score::assertion::{DEFAULT_BOX_IOU, DEFAULT_LEVENSHTEIN_DISTANCE};
    let help = |name: &str| {
        find(name)
            .map(AssertionType::value_help)
            .unwrap_or_default()
    };
    let has = |name: &str, default: f64| {
        let text = format!("default {default}");
        assert!(
            help(name).contains(&text),
            "{name}: {} lacks {text}",
            help(name)
        );
    };
    has("levenshtein", DEFAULT_LEVENSHTEIN_DISTANCE);
    has("boxes-match", DEFAULT_BOX_IOU);
    has("similar", crate::score::assertion::DEFAULT_SIMILARITY);
    for metric in [
        TextMetric::Rouge(1),
        TextMetric::Rouge(2),
        TextMetric::RougeL,
        TextMetric::Bleu,
        TextMetric::Chrf,
    ] {
        has(metric.name(), metric.default_threshold());
    }
}

/// The markers around the table, the first saying how to regenerate it.
const START: &str = "<!-- assertion-table:start: generated from src/score/assertion/registry.rs \
                     by `UPDATE_DOCS=1 cargo test --lib assertions_page_shows_the_generated_table` -->\n";
const END: &str = "<!-- assertion-table:end -->\n";

/// The guide's assertions page shows [`help_table`]'s table; `UPDATE_DOCS=1` rewrites it.
#[test]
fn assertions_page_shows_the_generated_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/src/assertions.md");
    let page = std::fs::read_to_string(path).expect("docs/src/assertions.md is readable");
    let (Some(start), Some(end)) = (page.find(START), page.find(END)) else {
        panic!(
            "docs/src/assertions.md lacks the lines {START:?} and {END:?} around the assertion table"
        );
    };
    let table = help_table();
    for row in table.lines() {
        assert_eq!(row.matches('|').count(), 5, "a `|` in a cell: {row}");
    }
    let wanted = format!("{START}\n{table}\n");
    let start_end = start..end;
    if page[start_end.clone()] == wanted {
        return;
    }
    if std::env::var_os("UPDATE_DOCS").is_some() {
        let mut updated = page.clone();
        updated.replace_range(start_end, &wanted);
        std::fs::write(path, updated).expect("docs/src/assertions.md is writable");
        return;
    }
    panic!(
        "docs/src/assertions.md's assertion table is not the registry's \
         (src/score/assertion/registry.rs); regenerate it with `UPDATE_DOCS=1 cargo test \
         --locked --features mistralrs --lib assertions_page_shows_the_generated_table`"
    );
}
