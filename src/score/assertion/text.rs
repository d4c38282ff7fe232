//! Helpers for checking outputs and wording one-line failure reasons.

use super::*;

pub(super) fn json_path_check(
    out: &str,
    path: &JsonPathExpr,
    want: Option<&Value>,
) -> (bool, String) {
    let docs = match serde_json::from_str::<Value>(out) {
        Ok(v) => vec![v],
        Err(_) => embedded_json(out, true),
    };
    let Some(first) = docs.first() else {
        return (
            false,
            format!("output has no JSON object or array: {}", excerpt(out)),
        );
    };
    // Text may embed several JSON values: use the first one the path matches in.
    let query = |doc| {
        path.compiled
            .query(doc)
            .all()
            .into_iter()
            .cloned()
            .collect::<Vec<_>>()
    };
    let nodes = docs.iter().map(query).find(|nodes| !nodes.is_empty());
    let p = &path.source;
    let shown = match nodes.as_deref() {
        None | Some([]) => return (false, format!("nothing matches {p} in {}", describe(first))),
        Some([one]) => describe(one),
        Some(many) => format!("{} values: {}", many.len(), describe(&json!(many))),
    };
    let (Some(want), Some(nodes)) = (want, nodes) else {
        return (true, format!("{p} is {shown}"));
    };
    let equal = nodes.iter().any(|n| json_eq(n, want));
    match nodes.as_slice() {
        // "5" vs 5 is a classic mistake; say so rather than print two similar-looking values.
        [one] if !equal && type_of(one) != type_of(want) => {
            let (got, wanted) = (type_of(one), type_of(want));
            (false, format!("{p} is {shown}, a {got}, not a {wanted}"))
        }
        _ => (equal, format!("{p} is {shown}")),
    }
}

/// JSON values embedded in text (prose, markdown fences), left to right. Only objects unless
/// `arrays`: promptfoo's contains-json ignores arrays, since `[1]` is usually a citation.
pub(super) fn embedded_json(text: &str, arrays: bool) -> Vec<Value> {
    let mut found = Vec::new();
    let mut pos = 0;
    while let Some(offset) = text[pos..].find(|c| c == '{' || (arrays && c == '[')) {
        let start = pos + offset;
        let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
        pos = start + 1;
        if let Some(Ok(value)) = stream.next() {
            found.push(value);
            pos = start + stream.byte_offset().max(1);
        }
    }
    found
}

/// The first schema violation as "at /path: message (+N more)", or None if the value conforms.
pub(super) fn schema_violation(schema: &JsonSchema, value: &Value) -> Option<String> {
    let mut errors = schema.validator.iter_errors(value);
    let first = errors.next()?;
    let at = match first.instance_path.as_str() {
        "" => "(root)",
        path => path,
    };
    let message = clip(&first.to_string(), 120);
    let more = match errors.count() {
        0 => String::new(),
        n => format!(" (+{n} more)"),
    };
    Some(format!("schema violation at {at}: {message}{more}"))
}

/// JSON equality where 1 and 1.0 are equal (JSON has one number type) and key order is ignored.
pub(super) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            let same = |(k, v): (&String, &Value)| y.get(k).is_some_and(|w| json_eq(v, w));
            x.len() == y.len() && x.iter().all(same)
        }
        _ => a == b,
    }
}

/// A scalar as JavaScript's `String(v)` prints it (promptfoo compares that way): 5.0 is "5".
pub(super) fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => n.as_f64().unwrap_or_default().to_string(),
        other => other.to_string(),
    }
}

pub(super) fn in_bounds(n: usize, min: Option<usize>, max: Option<usize>) -> bool {
    min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m)
}

pub(super) fn bounds_text(min: Option<usize>, max: Option<usize>, unit: &str) -> String {
    match (min, max) {
        (Some(a), Some(b)) if a == b => format!("have exactly {a} {unit}{}", plural(a)),
        (Some(a), Some(b)) => format!("have between {a} and {b} {unit}s"),
        (Some(a), None) => format!("have at least {a} {unit}{}", plural(a)),
        (None, Some(b)) => format!("have at most {b} {unit}{}", plural(b)),
        (None, None) => format!("have any number of {unit}s"),
    }
}

pub(super) fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A JSON value for a reason: strings quoted, anything else as compact JSON; truncated.
pub(super) fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => excerpt(s),
        other => clip(&other.to_string(), EXCERPT_CHARS),
    }
}

/// `s` cut to `max` chars, with an ellipsis if anything was cut.
pub(super) fn clip(s: &str, max: usize) -> String {
    let mut short: String = s.chars().take(max).collect();
    if s.chars().nth(max).is_some() {
        short.push('…');
    }
    short
}

/// A quoted, escaped (so single-line) excerpt of ~80 chars.
pub(super) fn excerpt(s: &str) -> String {
    format!("{:?}", clip(s, EXCERPT_CHARS))
}

/// An excerpt starting a little before byte offset `at`, so that a match there is visible.
pub(super) fn excerpt_at(s: &str, at: usize) -> String {
    let before = s.get(..at).unwrap_or_default();
    match before.char_indices().rev().nth(19) {
        Some((start, _)) if start > 0 => format!("…{}", excerpt(&s[start..])),
        _ => excerpt(s),
    }
}

pub(super) fn quote_list(items: &[String]) -> String {
    let mut shown: Vec<String> = items.iter().take(5).map(|s| excerpt(s)).collect();
    if items.len() > 5 {
        shown.push(format!("… (+{} more)", items.len() - 5));
    }
    format!("[{}]", shown.join(", "))
}

pub(super) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
