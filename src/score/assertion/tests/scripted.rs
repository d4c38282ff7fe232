//! Assertions checked with scripts and with what the run adds (finish reason, cost,
//! transformed values).

use super::*;

#[test]
fn scripted_and_run_input_types() {
    let check = |yaml: &str, input: CheckInput| parse(yaml).unwrap().check(&input);
    let on = |output| CheckInput {
        output,
        ..CheckInput::default()
    };
    // A script's boolean follows `not-`; a failure names the script and what it returned.
    let o = check("{type: javascript, value: output.length > 3}", on("hello"));
    assert!(o.passed && o.score == 1.0);
    let o = check(
        "{type: not-javascript, value: output.length > 3}",
        on("hello"),
    );
    assert!(!o.passed);
    assert!(o.reason.unwrap().contains("returned true"));
    // A number is the score, against the threshold.
    let o = check(
        "{type: javascript, value: output.length / 10, threshold: 0.6}",
        on("hello"),
    );
    assert!(!o.passed && o.score == 0.5, "{o:?}");
    // Scripts see the context the run gives, and the assertion's config.
    let context = json!({"vars": {"name": "Ada"}});
    let o = check(
        "{type: javascript, value: 'output.includes(context.vars.name) && context.config.n === 2', config: {n: 2}}",
        CheckInput {
            context: Some(&context),
            ..on("hi Ada")
        },
    );
    assert!(o.passed, "{o:?}");
    // An assertion transform changes what its assertion sees.
    let o = check(
        "{type: equals, value: HI, transform: output.toUpperCase()}",
        on("hi"),
    );
    assert!(o.passed, "{o:?}");
    let o = check(
        "{type: equals, value: x, transform: output.nope.x}",
        on("hi"),
    );
    assert!(!o.passed && o.reason.unwrap().contains("transform"));
    // assert-set: all must pass, or the weighted mean must reach the threshold.
    let set = "{type: assert-set, assert: [{type: contains, value: a}, {type: contains, value: z, weight: 3}]";
    let o = check(&format!("{set}}}"), on("abc"));
    assert!(!o.passed && o.score == 0.25, "{o:?}");
    let o = check(&format!("{set}, threshold: 0.2}}"), on("abc"));
    assert!(o.passed, "{o:?}");
    // finish-reason needs the engine's reason; echo gives none.
    let o = check("{type: finish-reason, value: stop}", on("x"));
    assert!(!o.passed);
    let o = check(
        "{type: finish-reason, value: length}",
        CheckInput {
            finish: Some(crate::engine::FinishReason::Length),
            ..on("x")
        },
    );
    assert!(o.passed);
    let o = check(
        "{type: cost, threshold: 0.01}",
        CheckInput {
            cost: Some(0.0),
            ..on("x")
        },
    );
    assert!(o.passed);
    assert!(!check("{type: cost, threshold: 0.01}", on("x")).passed);
    // gleu scores, and `not-gleu` scores 1 - GLEU.
    let o = check(
        "{type: gleu, value: the cat sat up}",
        on("the cat sat down"),
    );
    assert!(o.passed && (o.score - 0.6).abs() < 1e-9, "{o:?}");
    let o = check(
        "{type: not-gleu, value: the cat sat up}",
        on("the cat sat down"),
    );
    assert!(!o.passed && (o.score - 0.4).abs() < 1e-9, "{o:?}");
}

/// promptfoo's `perplexity` and `perplexity-score`: exp(-mean log-probability), and
/// 1 / (1 + perplexity); no log-probabilities is a failure that says why.
#[test]
fn perplexity_follows_promptfoo() {
    let check = |yaml: &str, logprobs: Option<&[f64]>| {
        parse(yaml).unwrap().check(&CheckInput {
            output: "x",
            logprobs,
            ..CheckInput::default()
        })
    };
    // Mean log-probability -ln 4: perplexity 4, score 0.2.
    let four = [-(2.0f64.ln()), -(8.0f64.ln())];
    let o = check("{type: perplexity, threshold: 4.0001}", Some(&four));
    assert!(o.passed && o.score == 1.0, "{o:?}");
    let o = check("{type: perplexity, threshold: 3.9}", Some(&four));
    assert!(!o.passed && o.score == 0.0, "{o:?}");
    assert!(o.reason.unwrap().contains("perplexity 4.00"));
    let o = check("{type: perplexity}", Some(&four));
    assert!(o.passed, "no threshold passes, as in promptfoo");
    let o = check("{type: perplexity-score, threshold: 0.2}", Some(&four));
    assert!(o.passed && (o.score - 0.2).abs() < 1e-12, "{o:?}");
    let o = check("{type: perplexity-score, threshold: 0.21}", Some(&four));
    assert!(!o.passed && (o.score - 0.2).abs() < 1e-12, "{o:?}");
    let o = check("{type: not-perplexity, threshold: 3.9}", Some(&four));
    assert!(o.passed, "{o:?}");
    for missing in [None, Some(&[][..])] {
        let o = check("{type: perplexity}", missing);
        assert!(!o.passed);
        assert!(o.reason.unwrap().contains("no token log-probabilities"));
    }
}
