//! Grounded number arguments. Small models fill optional number arguments with values
//! nobody asked for: Qwen2.5-Coder-0.5B adds `max_per_class: 1, min_confidence: 0.5` to
//! every detection call, which hides the faces a question asks about. With grounding, the
//! call grammar lets an optional number argument take only a number written in the user's
//! messages (or null), so "at least 0.65" still reaches the tool as 0.65.

use serde_json::{Value, json};

/// Numbers written in `text`: digits (`3`, `0.65`, `65%` also as 0.65) and the words
/// zero to twelve.
pub fn numbers_in(text: &str) -> Vec<f64> {
    const WORDS: [&str; 13] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve",
    ];
    let mut numbers = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || (chars[i] == '.' && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit())))
            {
                i += 1;
            }
            let digits: String = chars[start..i].iter().collect();
            if let Ok(value) = digits.parse::<f64>() {
                numbers.push(value);
                if chars.get(i) == Some(&'%') {
                    numbers.push(value / 100.0);
                }
            }
        } else {
            i += 1;
        }
    }
    for word in text.split(|c: char| !c.is_alphabetic()) {
        if let Some(n) = WORDS.iter().position(|w| w.eq_ignore_ascii_case(word)) {
            numbers.push(n as f64);
        }
    }
    numbers
}

/// `tools` (OpenAI function specs) with every optional number argument narrowed to the
/// numbers in `text` (and null, when the schema allows it); one with no such number and
/// no null is left out. Required arguments and other types are untouched.
pub fn ground_numbers(tools: &[Value], text: &str) -> Vec<Value> {
    let numbers = numbers_in(text);
    tools
        .iter()
        .map(|spec| {
            let mut spec = spec.clone();
            let parameters = &mut spec["function"]["parameters"];
            let required: Vec<String> = parameters["required"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let Some(properties) = parameters
                .get_mut("properties")
                .and_then(Value::as_object_mut)
            else {
                return spec;
            };
            let names: Vec<String> = properties.keys().cloned().collect();
            for name in names {
                if required.contains(&name) {
                    continue;
                }
                if let Some(grounded) = grounded(&properties[&name], &numbers) {
                    match grounded {
                        Some(schema) => properties.insert(name, schema),
                        None => properties.remove(&name),
                    };
                }
            }
            spec
        })
        .collect()
}

/// For a number schema: `Some(Some(enum))` narrowed, `Some(None)` to leave it out;
/// `None` when the schema is not a number's.
fn grounded(schema: &Value, numbers: &[f64]) -> Option<Option<Value>> {
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return None,
    };
    let integer = types.contains(&"integer");
    if !(integer || types.contains(&"number"))
        || types
            .iter()
            .any(|t| !matches!(*t, "integer" | "number" | "null"))
    {
        return None;
    }
    let (minimum, maximum) = (
        schema["minimum"].as_f64().unwrap_or(f64::NEG_INFINITY),
        schema["maximum"].as_f64().unwrap_or(f64::INFINITY),
    );
    let mut allowed: Vec<Value> = Vec::new();
    if types.contains(&"null") {
        allowed.push(Value::Null);
    }
    for &n in numbers {
        if n < minimum || n > maximum {
            continue;
        }
        let value = if n.fract() == 0.0 && n.abs() < 1e15 {
            json!(n as i64)
        } else if integer && !types.contains(&"number") {
            continue;
        } else {
            json!(n)
        };
        if !allowed.contains(&value) {
            allowed.push(value);
        }
    }
    Some((!allowed.is_empty()).then(|| json!({ "enum": allowed })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect_spec() -> Value {
        json!({"type": "function", "function": {"name": "detect_objects", "parameters": {
            "type": "object",
            "properties": {
                "image": {"type": "string"},
                "classes": {"type": ["array", "null"], "items": {"type": "string"}},
                "max_per_class": {"type": ["integer", "null"]},
                "min_confidence": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                "scale": {"type": "number"},
            },
            "required": ["image", "scale"],
        }}})
    }

    #[test]
    fn numbers_are_read_as_digits_percentages_and_words() {
        assert_eq!(
            numbers_in("at least 0.65, or 70%, in t10k.png; two or Three"),
            vec![0.65, 70.0, 0.7, 10.0, 2.0, 3.0]
        );
        assert!(numbers_in("How many people are in bus.jpg?").is_empty());
    }

    #[test]
    fn optional_numbers_take_only_what_the_question_says() {
        let specs = ground_numbers(&[detect_spec()], "people in bus.jpg with confidence 0.65?");
        let properties = &specs[0]["function"]["parameters"]["properties"];
        assert_eq!(properties["min_confidence"], json!({"enum": [null, 0.65]}));
        // 0.65 is no integer: only null is left.
        assert_eq!(properties["max_per_class"], json!({"enum": [null]}));
        // Required numbers and other types are the model's to choose.
        assert_eq!(properties["scale"], json!({"type": "number"}));
        assert_eq!(
            properties["classes"],
            detect_spec()["function"]["parameters"]["properties"]["classes"]
        );

        let specs = ground_numbers(&[detect_spec()], "at most 2 boxes per class");
        let properties = &specs[0]["function"]["parameters"]["properties"];
        assert_eq!(properties["max_per_class"], json!({"enum": [null, 2]}));
        // 2 is over the schema's maximum of 1.
        assert_eq!(properties["min_confidence"], json!({"enum": [null]}));
    }

    #[test]
    fn an_optional_number_without_null_or_a_number_to_take_is_left_out() {
        let spec = json!({"function": {"name": "f", "parameters": {"type": "object",
            "properties": {"limit": {"type": "integer"}}}}});
        let specs = ground_numbers(&[spec], "no numbers here");
        assert_eq!(specs[0]["function"]["parameters"]["properties"], json!({}));
    }
}
