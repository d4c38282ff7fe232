//! JavaScript's text forms, which promptfoo's verdicts depend on: `String(n)` for numbers,
//! `String(v)` for any value, `JSON.stringify` (with an indent) and what `JSON.parse`
//! accepts.

use serde_json::{Map, Value};

/// `String(n)` for a JavaScript number (ECMA-262 Number::toString): `3`, `0.1`,
/// `1.5e-7`, `1e+21`.
pub fn number(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if x == 0.0 {
        return "0".into();
    }
    let sign = if x < 0.0 { "-" } else { "" };
    // Rust's `{:e}` gives the shortest digits that round-trip, as JavaScript requires.
    let shortest = format!("{:e}", x.abs());
    let (mantissa, exponent) = shortest.split_once('e').unwrap_or((&shortest, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i64;
    let n = exponent.parse::<i64>().unwrap_or(0) + 1;
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let e = if e >= 0 {
            format!("+{e}")
        } else {
            e.to_string()
        };
        if k == 1 {
            format!("{digits}e{e}")
        } else {
            format!("{}.{}e{e}", &digits[..1], &digits[1..])
        }
    };
    format!("{sign}{body}")
}

/// A JSON number as JavaScript holds it (a double) and prints it.
pub fn json_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        // Beyond 2^53 JavaScript has already rounded it; print what it would.
        if i.unsigned_abs() < (1 << 53) {
            return i.to_string();
        }
    }
    number(n.as_f64().unwrap_or(f64::NAN))
}

/// `String(v)` for a JSON value: arrays join with commas (null items empty), objects are
/// `[object Object]`, null is `null`.
pub fn string(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => json_number(n),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::Null => String::new(),
                other => string(other),
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".into(),
    }
}

/// `JSON.stringify(value, null, indent)`; `indent` 0 is the compact form.
pub fn stringify(value: &Value, indent: usize) -> String {
    let mut out = String::new();
    write_json(&mut out, value, indent, 0);
    out
}

fn write_json(out: &mut String, value: &Value, indent: usize, level: usize) {
    let newline = |out: &mut String, level: usize| {
        if indent > 0 {
            out.push('\n');
            out.push_str(&" ".repeat(indent * level));
        }
    };
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let text = json_number(n);
            // JSON.stringify writes non-finite numbers as null.
            if text.contains(['N', 'I']) {
                out.push_str("null")
            } else {
                out.push_str(&text)
            }
        }
        Value::String(s) => quote(out, s),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, level + 1);
                write_json(out, item, indent, level + 1);
            }
            newline(out, level);
            out.push(']');
        }
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, level + 1);
                quote(out, key);
                out.push(':');
                if indent > 0 {
                    out.push(' ');
                }
                write_json(out, item, indent, level + 1);
            }
            newline(out, level);
            out.push('}');
        }
    }
}

fn quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Deepest nesting accepted; V8's `JSON.parse` has no fixed limit, and this is far past
/// anything a model writes while keeping the recursive drop of the value safe.
const MAX_DEPTH: usize = 10_000;

/// Text `JSON.parse` would refuse: what was wrong, at a byte offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{fault} at byte {at}")]
pub struct JsonParseError {
    pub fault: JsonFault,
    /// Where parsing stopped, in bytes from the start of the text.
    pub at: usize,
}

/// What [`json_parse`] found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JsonFault {
    #[error("unexpected text after the JSON value")]
    TrailingText,
    #[error("expected `{0}`")]
    Expected(char),
    #[error("nesting too deep")]
    TooDeep,
    #[error("unexpected end of JSON")]
    UnexpectedEnd,
    #[error("expected `,` or `]`")]
    ArraySeparator,
    #[error("expected `,` or `}}`")]
    ObjectSeparator,
    #[error("unbalanced JSON")]
    Unbalanced,
    #[error("expected a string key")]
    ExpectedKey,
    #[error("unexpected character")]
    UnexpectedCharacter,
    #[error("expected digits")]
    ExpectedDigits,
    #[error("expected digits after `.`")]
    ExpectedFraction,
    #[error("expected exponent digits")]
    ExpectedExponent,
    #[error("unterminated string")]
    UnterminatedString,
    #[error("invalid escape")]
    InvalidEscape,
    #[error("invalid \\u escape")]
    InvalidUnicodeEscape,
    #[error("control character in string")]
    ControlCharacter,
    #[error("invalid UTF-8")]
    InvalidUtf8,
}

/// Parses text as `JSON.parse` does: whitespace around, no trailing commas, any nesting
/// (up to [`MAX_DEPTH`]), lone surrogate escapes accepted (kept as U+FFFD, since a Rust
/// string cannot hold them).
pub fn json_parse(text: &str) -> Result<Value, JsonParseError> {
    let mut parser = JsonParser {
        bytes: text.as_bytes(),
        at: 0,
    };
    let value = parser.value()?;
    parser.skip_ws();
    if parser.at < parser.bytes.len() {
        return Err(parser.error(JsonFault::TrailingText));
    }
    Ok(value)
}

enum Frame {
    Array(Vec<Value>),
    Object(Map<String, Value>, String),
}

struct JsonParser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl JsonParser<'_> {
    fn error(&self, fault: JsonFault) -> JsonParseError {
        JsonParseError { fault, at: self.at }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> Result<(), JsonParseError> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(JsonFault::Expected(byte as char)))
        }
    }

    /// One value, containers handled with an explicit stack so depth costs no recursion.
    fn value(&mut self) -> Result<Value, JsonParseError> {
        let mut stack: Vec<Frame> = Vec::new();
        loop {
            // Open containers until a scalar (or an empty container) completes a value.
            let mut done = match self.peek() {
                Some(b'[') => {
                    self.at += 1;
                    if self.peek() == Some(b']') {
                        self.at += 1;
                        Value::Array(Vec::new())
                    } else {
                        stack.push(Frame::Array(Vec::new()));
                        if stack.len() > MAX_DEPTH {
                            return Err(self.error(JsonFault::TooDeep));
                        }
                        continue;
                    }
                }
                Some(b'{') => {
                    self.at += 1;
                    if self.peek() == Some(b'}') {
                        self.at += 1;
                        Value::Object(Map::new())
                    } else {
                        let key = self.key()?;
                        stack.push(Frame::Object(Map::new(), key));
                        if stack.len() > MAX_DEPTH {
                            return Err(self.error(JsonFault::TooDeep));
                        }
                        continue;
                    }
                }
                Some(_) => self.scalar()?,
                None => return Err(self.error(JsonFault::UnexpectedEnd)),
            };
            // Hand the value to its container; close containers that end here.
            loop {
                let Some(frame) = stack.last_mut() else {
                    return Ok(done);
                };
                match frame {
                    Frame::Array(items) => {
                        items.push(done);
                        match self.peek() {
                            Some(b',') => {
                                self.at += 1;
                                break;
                            }
                            Some(b']') => {
                                self.at += 1;
                            }
                            _ => return Err(self.error(JsonFault::ArraySeparator)),
                        }
                    }
                    Frame::Object(map, key) => {
                        map.insert(std::mem::take(key), done);
                        match self.peek() {
                            Some(b',') => {
                                self.at += 1;
                                *key = self.key()?;
                                break;
                            }
                            Some(b'}') => {
                                self.at += 1;
                            }
                            _ => return Err(self.error(JsonFault::ObjectSeparator)),
                        }
                    }
                }
                done = match stack.pop() {
                    Some(Frame::Array(items)) => Value::Array(items),
                    Some(Frame::Object(map, _)) => Value::Object(map),
                    None => return Err(self.error(JsonFault::Unbalanced)),
                };
            }
        }
    }

    fn key(&mut self) -> Result<String, JsonParseError> {
        if self.peek() != Some(b'"') {
            return Err(self.error(JsonFault::ExpectedKey));
        }
        let key = self.string()?;
        self.expect(b':')?;
        Ok(key)
    }

    fn scalar(&mut self) -> Result<Value, JsonParseError> {
        let rest = &self.bytes[self.at..];
        for (word, value) in [
            (&b"true"[..], Value::Bool(true)),
            (b"false", Value::Bool(false)),
            (b"null", Value::Null),
        ] {
            if rest.starts_with(word) {
                self.at += word.len();
                return Ok(value);
            }
        }
        match rest.first() {
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.error(JsonFault::UnexpectedCharacter)),
        }
    }

    fn number(&mut self) -> Result<Value, JsonParseError> {
        let start = self.at;
        let digits = |p: &mut Self| {
            let from = p.at;
            while let Some(b'0'..=b'9') = p.bytes.get(p.at) {
                p.at += 1;
            }
            p.at > from
        };
        if self.bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        if self.bytes.get(self.at) == Some(&b'0') {
            self.at += 1;
        } else if !digits(self) {
            return Err(self.error(JsonFault::ExpectedDigits));
        }
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            if !digits(self) {
                return Err(self.error(JsonFault::ExpectedFraction));
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.at) {
                self.at += 1;
            }
            if !digits(self) {
                return Err(self.error(JsonFault::ExpectedExponent));
            }
        }
        let text = std::str::from_utf8(&self.bytes[start..self.at]).unwrap_or("0");
        // Through serde_json so integers stay integers; numbers JSON.parse would turn into
        // Infinity are still accepted.
        Ok(serde_json::from_str::<Value>(text).unwrap_or_else(|_| {
            serde_json::Number::from_f64(text.parse::<f64>().unwrap_or(0.0))
                .map(Value::Number)
                .unwrap_or(Value::Null)
        }))
    }

    fn string(&mut self) -> Result<String, JsonParseError> {
        self.at += 1; // the opening quote
        let mut out = String::new();
        let mut units: Vec<u16> = Vec::new();
        loop {
            let Some(&byte) = self.bytes.get(self.at) else {
                return Err(self.error(JsonFault::UnterminatedString));
            };
            if byte != b'\\' && !units.is_empty() {
                out.push_str(&String::from_utf16_lossy(&units));
                units.clear();
            }
            match byte {
                b'"' => {
                    self.at += 1;
                    return Ok(out);
                }
                b'\\' => {
                    let escape = self.bytes.get(self.at + 1).copied();
                    self.at += 2;
                    let simple = match escape {
                        Some(b'"') => Some('"'),
                        Some(b'\\') => Some('\\'),
                        Some(b'/') => Some('/'),
                        Some(b'b') => Some('\u{8}'),
                        Some(b'f') => Some('\u{c}'),
                        Some(b'n') => Some('\n'),
                        Some(b'r') => Some('\r'),
                        Some(b't') => Some('\t'),
                        Some(b'u') => None,
                        _ => return Err(self.error(JsonFault::InvalidEscape)),
                    };
                    match simple {
                        Some(c) => {
                            out.push_str(&String::from_utf16_lossy(&units));
                            units.clear();
                            out.push(c);
                        }
                        None => {
                            let hex = self
                                .bytes
                                .get(self.at..self.at + 4)
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .and_then(|h| u16::from_str_radix(h, 16).ok())
                                .ok_or_else(|| self.error(JsonFault::InvalidUnicodeEscape))?;
                            self.at += 4;
                            // Pairs join; a lone surrogate becomes U+FFFD.
                            units.push(hex);
                        }
                    }
                }
                0x00..=0x1f => return Err(self.error(JsonFault::ControlCharacter)),
                _ => {
                    let rest = std::str::from_utf8(&self.bytes[self.at..])
                        .map_err(|_| self.error(JsonFault::InvalidUtf8))?;
                    let c = rest.chars().next().unwrap_or('\u{fffd}');
                    out.push(c);
                    self.at += c.len_utf8();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_print_as_javascript_prints_them() {
        for (x, text) in [
            (3.0, "3"),
            (1.5e-7, "1.5e-7"),
            (1e21, "1e+21"),
            (1.5e21, "1.5e+21"),
            (1e20, "100000000000000000000"),
            (0.000001, "0.000001"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-2.5, "-2.5"),
            (123.456, "123.456"),
        ] {
            assert_eq!(number(x), text, "{x}");
        }
        assert_eq!(string(&json!([1, 2.0, null, "a"])), "1,2,,a");
        assert_eq!(string(&json!({"a": 1})), "[object Object]");
    }

    #[test]
    fn stringify_matches_json_stringify_with_two_spaces() {
        let value = json!([{"role": "user", "content": "a\n\"b\"\u{1}", "n": 1.0}, [], {}]);
        assert_eq!(
            stringify(&value, 2),
            "[\n  {\n    \"role\": \"user\",\n    \"content\": \"a\\n\\\"b\\\"\\u0001\",\n    \"n\": 1\n  },\n  [],\n  {}\n]"
        );
        assert_eq!(stringify(&json!({"a": [1, "x"]}), 0), r#"{"a":[1,"x"]}"#);
    }

    #[test]
    fn parse_accepts_what_json_parse_accepts() {
        assert_eq!(json_parse(r#" "\ud800" "#).unwrap(), json!("\u{fffd}"));
        assert_eq!(json_parse(r#""\ud83d\ude00""#).unwrap(), json!("😀"));
        let deep = format!("{}{}", "[".repeat(500), "]".repeat(500));
        assert!(json_parse(&deep).is_ok());
        assert!(serde_json::from_str::<Value>(&deep).is_err());
        assert_eq!(
            json_parse(r#"{"a": [1, {"b": null}], "c": -0.5e1}"#).unwrap(),
            json!({"a": [1, {"b": null}], "c": -5.0})
        );
        for bad in [
            "",
            "[1,]",
            "{\"a\" 1}",
            "01",
            "'a'",
            "[1] x",
            "\"\t\"",
            "nul",
        ] {
            assert!(json_parse(bad).is_err(), "{bad:?}");
        }
    }
}
