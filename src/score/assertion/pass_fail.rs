//! Assertions that pass or fail outright: whether the output holds, and the wording of
//! what was expected (the scored ones are in `scored.rs`).

use super::*;

/// Why an output cannot be judged either way by a pass/fail assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum Unjudgeable {
    #[error("latency was not measured (a cached response?)")]
    NoLatency,
    #[error("the engine did not report why generation stopped")]
    NoFinishReason,
    #[error("the model reports no cost")]
    NoCost,
    /// A kind that `check` hands to its own checker before it gets here.
    #[error("{0}")]
    CheckedElsewhere(&'static str),
}

impl Assertion {
    /// Whether the un-negated assertion holds, and what was found (for a reason).
    /// `Err` means the output cannot be judged either way.
    pub(super) fn evaluate(&self, input: &CheckInput) -> Result<(bool, String), Unjudgeable> {
        use AssertionKind::*;
        let out = input.output;
        let seen = |at: Option<usize>| format!("output was {}", excerpt_at(out, at.unwrap_or(0)));
        let has = |needle: &String, ignore_case: bool| match ignore_case {
            true => out.to_lowercase().contains(&needle.to_lowercase()),
            false => out.contains(needle.as_str()),
        };
        Ok(match &self.kind {
            Equals(want @ (Value::Object(_) | Value::Array(_))) => {
                match serde_json::from_str(out) {
                    Ok(got) => (json_eq(&got, want), format!("got {}", describe(&got))),
                    Err(e) => (false, format!("output is not JSON ({e}): {}", excerpt(out))),
                }
            }
            Equals(want) => (out == scalar_text(want), format!("got {}", excerpt(out))),
            Contains(s) => (out.contains(s.as_str()), seen(out.find(s.as_str()))),
            IContains(s) => (has(s, true), seen(None)),
            ContainsAny(list) | IContainsAny(list) => {
                match list
                    .iter()
                    .find(|s| has(s, matches!(self.kind, IContainsAny(_))))
                {
                    Some(s) => (true, format!("found {}", excerpt(s))),
                    None => (false, seen(None)),
                }
            }
            ContainsAll(list) | IContainsAll(list) => {
                let ignore_case = matches!(self.kind, IContainsAll(_));
                let missing: Vec<String> = list
                    .iter()
                    .filter(|s| !has(s, ignore_case))
                    .cloned()
                    .collect();
                match missing.is_empty() {
                    true => (true, seen(None)),
                    false => (
                        false,
                        format!("missing {}; {}", quote_list(&missing), seen(None)),
                    ),
                }
            }
            StartsWith(s) => (out.starts_with(s.as_str()), seen(None)),
            Regex(re) => match re.find(out) {
                Some(m) => (true, format!("it matched {}", excerpt(&out[m]))),
                None => (false, seen(None)),
            },
            IsJson(schema) => match self.dialect.parse_json(out) {
                Ok(value) => match schema.as_ref().and_then(|s| schema_violation(s, &value)) {
                    Some(violation) => (false, violation),
                    None => (true, format!("got {}", describe(&value))),
                },
                Err(e) => {
                    let fenced = out.trim_start().starts_with("```");
                    let hint = if fenced {
                        " (fenced; contains-json allows that)"
                    } else {
                        ""
                    };
                    (false, format!("not JSON: {e}{hint}; {}", seen(None)))
                }
            },
            ContainsJson(schema) => {
                let found = embedded_json(out, false);
                let Some(first) = found.first() else {
                    return Ok((false, format!("no JSON object found; {}", seen(None))));
                };
                let Some(schema) = schema else {
                    return Ok((true, format!("found {}", describe(first))));
                };
                match found.iter().find(|v| schema_violation(schema, v).is_none()) {
                    Some(valid) => (true, format!("found {}", describe(valid))),
                    None => {
                        let why = schema_violation(schema, first).unwrap_or_default();
                        (
                            false,
                            format!("{} JSON object(s), none valid; first: {why}", found.len()),
                        )
                    }
                }
            }
            JsonPath { path, value } => json_path_check(out, path, value.as_ref()),
            WordCount { min, max } | Length { min, max } => {
                let (n, unit) = match self.kind {
                    WordCount { .. } => (out.split_whitespace().count(), "word"),
                    _ => (out.chars().count(), "character"),
                };
                (
                    in_bounds(n, *min, *max),
                    format!("it has {n} {unit}{}", plural(n)),
                )
            }
            Levenshtein { value } => {
                let max = self.threshold.unwrap_or(DEFAULT_LEVENSHTEIN_DISTANCE);
                // The length difference is a lower bound: it skips the O(n·m) comparison when
                // a long output is checked against a short value.
                let gap = out.chars().count().abs_diff(value.chars().count());
                let (d, at_least) = match gap as f64 > max {
                    true => (gap, "at least "),
                    false => (strsim::levenshtein(out, value), ""),
                };
                (
                    d as f64 <= max,
                    format!("the distance is {at_least}{d}; {}", seen(None)),
                )
            }
            Latency => {
                let Some(ms) = input.latency_ms else {
                    return Err(Unjudgeable::NoLatency);
                };
                (
                    ms <= self.threshold.unwrap_or(0.0),
                    format!("it took {ms} ms"),
                )
            }
            BoxesMatch { .. } => {
                return Err(Unjudgeable::CheckedElsewhere(
                    "boxes are checked by check_boxes",
                ));
            }
            TextMetric { .. } => {
                return Err(Unjudgeable::CheckedElsewhere(
                    "text metrics are checked by check_text_metric",
                ));
            }
            Similar { .. } => {
                return Err(Unjudgeable::CheckedElsewhere(
                    "similarity is checked by check_similar",
                ));
            }
            ModelGraded { .. } => {
                return Err(Unjudgeable::CheckedElsewhere(
                    "model-graded assertions are judged by a model",
                ));
            }
            Script(_)
            | AssertSet(_)
            | IsRefusal
            | OpenAiToolsCall
            | Gleu(_)
            | Meteor(_)
            | Perplexity { .. } => {
                return Err(Unjudgeable::CheckedElsewhere("checked by check_new"));
            }
            Xml {
                contained,
                required,
            } => match structured::xml(out, *contained, required) {
                Ok(()) => (true, seen(None)),
                Err(why) => (false, format!("{why}; {}", seen(None))),
            },
            Sql { contained, check } => match check.check(out, *contained) {
                Ok(()) => (true, seen(None)),
                Err(why) => (false, format!("{why}; {}", seen(None))),
            },
            Html { contained: false } => match structured::is_html(out) {
                Ok(()) => (true, seen(None)),
                Err(why) => (false, format!("{why}; {}", seen(None))),
            },
            Html { contained: true } => (structured::contains_html(out), seen(None)),
            FinishReason(want) => {
                let Some(finish) = input.finish else {
                    return Err(Unjudgeable::NoFinishReason);
                };
                let got = structured::finish_reason_name(finish);
                (
                    got.eq_ignore_ascii_case(want),
                    format!("the finish reason was {got:?}"),
                )
            }
            Cost => {
                let Some(cost) = input.cost else {
                    return Err(Unjudgeable::NoCost);
                };
                let max = self.threshold.unwrap_or(0.0);
                (cost <= max, format!("it cost ${cost}"))
            }
        })
    }

    /// (subject, predicate) of what the un-negated assertion expects.
    pub(super) fn expectation(&self) -> (&'static str, String) {
        use AssertionKind::*;
        let predicate = match &self.kind {
            Equals(v @ (Value::Object(_) | Value::Array(_))) => {
                format!("equal JSON {}", describe(v))
            }
            Equals(v) => format!("equal {}", excerpt(&scalar_text(v))),
            Contains(s) => format!("contain {}", excerpt(s)),
            IContains(s) => format!("contain {} (ignoring case)", excerpt(s)),
            ContainsAny(l) => format!("contain any of {}", quote_list(l)),
            ContainsAll(l) => format!("contain all of {}", quote_list(l)),
            IContainsAny(l) => format!("contain any of {} (ignoring case)", quote_list(l)),
            IContainsAll(l) => format!("contain all of {} (ignoring case)", quote_list(l)),
            StartsWith(s) => format!("start with {}", excerpt(s)),
            Regex(re) => format!("match regex {}", excerpt(re.as_str())),
            IsJson(None) => "be valid JSON".to_owned(),
            IsJson(Some(_)) => "be JSON matching the schema".to_owned(),
            ContainsJson(None) => "contain a JSON object".to_owned(),
            ContainsJson(Some(_)) => "contain a JSON object matching the schema".to_owned(),
            JsonPath { path, value: None } => format!("have a match for {}", path.source),
            JsonPath {
                path,
                value: Some(v),
            } => format!("have {} = {}", path.source, describe(v)),
            WordCount { min, max } => bounds_text(*min, *max, "word"),
            Length { min, max } => bounds_text(*min, *max, "character"),
            Levenshtein { value } => {
                let max = self.threshold.unwrap_or(DEFAULT_LEVENSHTEIN_DISTANCE);
                format!("be within edit distance {max} of {}", excerpt(value))
            }
            Latency => {
                let max = self.threshold.unwrap_or(0.0);
                return ("latency", format!("be at most {max} ms"));
            }
            BoxesMatch { expected, .. } => format!("match {} boxes", expected.len()),
            TextMetric {
                metric, reference, ..
            } => {
                format!(
                    "score {} ≥ threshold against {}",
                    metric.name(),
                    excerpt(reference)
                )
            }
            Similar { reference, .. } => format!("be similar to {}", excerpt(reference)),
            ModelGraded { grader, .. } => grader.expectation().to_owned(),
            Script(script) => format!("pass {}", crate::script::excerpt(&script.written)),
            AssertSet(set) => format!("pass the set of {} assertions", set.len()),
            Xml {
                contained,
                required,
            } => {
                let what = if *contained { "contain XML" } else { "be XML" };
                match required.is_empty() {
                    true => what.to_owned(),
                    false => format!("{what} with elements {}", quote_list(required)),
                }
            }
            Sql { contained, check } => {
                let what = if *contained { "contain" } else { "be" };
                format!("{what} {} SQL", check.dialect_name())
            }
            Html { contained } => match contained {
                true => "contain HTML".to_owned(),
                false => "be HTML".to_owned(),
            },
            IsRefusal => "be a refusal".to_owned(),
            OpenAiToolsCall => "be valid OpenAI tool calls".to_owned(),
            Perplexity { .. } => return ("perplexity", "be within the threshold".to_owned()),
            Meteor(references) => {
                format!(
                    "score METEOR ≥ threshold against {}",
                    quote_list(references)
                )
            }
            Gleu(references) => {
                format!("score GLEU ≥ threshold against {}", quote_list(references))
            }
            FinishReason(want) => return ("finish reason", format!("be {want:?}")),
            Cost => {
                let max = self.threshold.unwrap_or(0.0);
                return ("cost", format!("be at most ${max}"));
            }
        };
        ("output", predicate)
    }
}
