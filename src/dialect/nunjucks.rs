//! promptfoo's templates are Nunjucks; this environment makes minijinja render them the
//! same way: block tags keep the newline after them, the final newline stays, undefined
//! values render empty (as do attributes of undefined ones), values print as JavaScript's
//! `String(v)`, Nunjucks' own filters (`truncate`, `wordcount`, `striptags`, `center`,
//! `nl2br`, `dump`...) with Nunjucks' arguments, and `for k, v in object`.

use std::sync::{LazyLock, OnceLock};

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior, Value};

use super::js;
use crate::template::{self, TemplateFault};

/// Renders a Nunjucks template.
pub fn render_str(source: &str, context: &Value) -> Result<String, TemplateFault> {
    let source = prepare(source);
    template::render_str(environment(), &source, context)
}

/// Checks a Nunjucks template compiles.
pub fn check_syntax(source: &str) -> Result<(), TemplateFault> {
    template::check_syntax(environment(), &prepare(source))
}

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(build)
}

fn build() -> Environment<'static> {
    let mut env = Environment::new();
    template::set_limits(&mut env);
    // Nunjucks: `{{ missing }}` and `{{ missing.field }}` render empty.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    // Nunjucks' defaults (promptfoo configures neither).
    env.set_trim_blocks(false);
    env.set_lstrip_blocks(false);
    env.set_keep_trailing_newline(true);
    env.set_formatter(|out, _state, value| {
        out.write_str(&text(value))
            .map_err(|e| Error::new(ErrorKind::WriteFailure, e.to_string()))
    });
    env.add_filter("dump", dump);
    env.add_filter("load", load);
    env.add_filter("escape", escape);
    env.add_filter("e", escape);
    env.add_filter("forceescape", escape);
    env.add_filter("truncate", truncate);
    env.add_filter("wordcount", wordcount);
    env.add_filter("striptags", striptags);
    env.add_filter("center", center);
    env.add_filter("nl2br", nl2br);
    env.add_filter("title", title);
    env.add_filter("indent", indent);
    env.add_filter("int", int);
    env.add_filter("float", float);
    env.add_filter("round", round);
    env.add_filter("random", random);
    env.add_filter("urlize", urlize);
    env.add_filter("nunjucks_pairs", pairs);
    env
}

/// Source rewrites for syntax minijinja spells differently: `for k, v in object` (pairs
/// of an object), `elseif`, and a prompt with an unclosed tag, which promptfoo renders as
/// raw text.
fn prepare(source: &str) -> String {
    static FOR_PAIRS: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(
            r"\{%(-?)\s*for\s+([A-Za-z_]\w*)\s*,\s*([A-Za-z_]\w*)\s+in\s+(.*?)\s*(-?)%\}",
        )
        .expect("valid regex")
    });
    static ELSEIF: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"\{%(-?)\s*elseif\b").expect("valid regex"));
    // promptfoo's autoWrapRawIfPartialNunjucks, as written there.
    static PARTIAL: LazyLock<regress::Regex> = LazyLock::new(|| {
        regress::Regex::with_flags(r"({%[^%]*$|{{[^}]*$|{#[^#]*$)", "m").expect("valid regex")
    });
    static RAW: LazyLock<regress::Regex> =
        LazyLock::new(|| regress::Regex::new(r"{\%\s*raw\s*\%}").expect("valid regex"));
    static ENDRAW: LazyLock<regress::Regex> =
        LazyLock::new(|| regress::Regex::new(r"{\%\s*endraw\s*\%}").expect("valid regex"));
    let wrapped = RAW.find(source).is_some() && ENDRAW.find(source).is_some();
    if PARTIAL.find(source).is_some() && !wrapped {
        return format!("{{% raw %}}{source}{{% endraw %}}");
    }
    let source = FOR_PAIRS.replace_all(source, "{%$1 for $2, $3 in ($4) | nunjucks_pairs $5%}");
    ELSEIF.replace_all(&source, "{%$1 elif").into_owned()
}

/// `String(v)` of a template value, as Nunjucks prints it (undefined and null empty).
pub fn text(value: &Value) -> String {
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => String::new(),
        _ => item_text(value),
    }
}

fn item_text(value: &Value) -> String {
    match value.kind() {
        // Inside an array, null and undefined join as empty.
        ValueKind::Undefined | ValueKind::None => String::new(),
        ValueKind::Bool => value.is_true().to_string(),
        ValueKind::Number => number_text(value),
        ValueKind::String => value.as_str().unwrap_or_default().to_string(),
        ValueKind::Seq | ValueKind::Iterable => match value.try_iter() {
            Ok(items) => items.map(|v| item_text(&v)).collect::<Vec<_>>().join(","),
            Err(_) => value.to_string(),
        },
        ValueKind::Map => "[object Object]".into(),
        _ => value.to_string(),
    }
}

fn number_text(value: &Value) -> String {
    if value.is_integer()
        && let Ok(i) = i64::try_from(value.clone())
    {
        return js::json_number(&serde_json::Number::from(i));
    }
    f64::try_from(value.clone())
        .map(js::number)
        .unwrap_or_else(|_| value.to_string())
}

fn fail(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.into())
}

/// `dump(spaces)`: JSON.stringify.
fn dump(value: Value, spaces: Option<usize>) -> Result<Value, Error> {
    let json = serde_json::to_value(&value).map_err(|e| fail(e.to_string()))?;
    Ok(Value::from_safe_string(js::stringify(
        &json,
        spaces.unwrap_or(0),
    )))
}

/// promptfoo's `load`: JSON.parse.
fn load(text: &str) -> Result<Value, Error> {
    js::json_parse(text)
        .map(|v| Value::from_serialize(&v))
        .map_err(|e| fail(format!("load: not JSON: {e}")))
}

/// Nunjucks' HTML escape (`'` as `&#39;`, `/` left alone).
fn escape(value: Value) -> String {
    let mut out = String::new();
    for c in text(&value).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Length as JavaScript counts it (UTF-16 units), for filters that cut or pad.
fn js_len(s: &str) -> usize {
    s.encode_utf16().count()
}

fn js_slice(s: &str, end: usize) -> String {
    let units: Vec<u16> = s.encode_utf16().take(end).collect();
    String::from_utf16_lossy(&units)
}

/// `truncate(length=255, killwords=false, end="...")`.
fn truncate(
    value: Value,
    length: Option<usize>,
    killwords: Option<bool>,
    end: Option<String>,
) -> String {
    let input = text(&value);
    let length = length.unwrap_or(255);
    if js_len(&input) <= length {
        return input;
    }
    let cut = if killwords.unwrap_or(false) {
        js_slice(&input, length)
    } else {
        // lastIndexOf(' ', length): the last space at or before `length`.
        let units: Vec<u16> = input.encode_utf16().collect();
        let upto = length.min(units.len().saturating_sub(1));
        let index = (0..=upto)
            .rev()
            .find(|&i| units[i] == u16::from(b' '))
            .unwrap_or(length);
        js_slice(&input, index)
    };
    format!("{cut}{}", end.unwrap_or_else(|| "...".into()))
}

/// `wordcount`: runs of `\w` (ASCII word characters, as JavaScript's `\w`); none is null.
fn wordcount(value: Value) -> Value {
    static WORD: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"(?-u)\w+").expect("valid regex"));
    let input = text(&value);
    match WORD.find_iter(&input).count() {
        0 => Value::from(()),
        n => Value::from(n),
    }
}

/// `striptags(preserve_linebreaks=false)`.
fn striptags(value: Value, preserve: Option<bool>) -> String {
    static TAGS: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"(?i)</?([a-z][a-z0-9]*)\b[^>]*>|<!--[\s\S]*?-->").expect("valid regex")
    });
    static EDGE_SPACES: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"(?m)^ +| +$").expect("valid regex"));
    static SPACES: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r" +").expect("valid regex"));
    static BLANKS: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"\n\n\n+").expect("valid regex"));
    static WHITESPACE: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"\s+").expect("valid regex"));
    let input = text(&value);
    let stripped = TAGS.replace_all(&input, "");
    let trimmed = stripped.trim();
    if preserve.unwrap_or(false) {
        let out = EDGE_SPACES.replace_all(trimmed, "");
        let out = SPACES.replace_all(&out, " ");
        let out = out.replace("\r\n", "\n");
        BLANKS.replace_all(&out, "\n\n").into_owned()
    } else {
        WHITESPACE.replace_all(trimmed, " ").into_owned()
    }
}

/// `center(width=80)`: the odd space goes after, as Nunjucks' fractional repeat does.
fn center(value: Value, width: Option<usize>) -> String {
    let input = text(&value);
    let width = width.unwrap_or(80);
    let len = js_len(&input);
    if len >= width {
        return input;
    }
    let spaces = width - len;
    let pre = (spaces as f64 / 2.0 - (spaces % 2) as f64).ceil().max(0.0) as usize;
    let post = (spaces as f64 / 2.0).ceil() as usize;
    format!("{}{input}{}", " ".repeat(pre), " ".repeat(post))
}

fn nl2br(value: Value) -> String {
    text(&value).replace("\r\n", "\n").replace('\n', "<br />\n")
}

/// `title`: each space-separated word capitalized (the rest lower-cased).
fn title(value: Value) -> String {
    text(&value)
        .split(' ')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => format!("{}{}", first.to_uppercase(), chars.as_str().to_lowercase()),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `indent(width=4, indentfirst=false)`: every line after the first, blank ones too.
fn indent(value: Value, width: Option<usize>, first: Option<bool>) -> String {
    let pad = " ".repeat(width.unwrap_or(4));
    text(&value)
        .split('\n')
        .enumerate()
        .map(|(i, line)| {
            if i == 0 && !first.unwrap_or(false) {
                line.to_string()
            } else {
                format!("{pad}{line}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// JavaScript's `parseFloat` prefix of a text.
fn parse_float_prefix(s: &str) -> Option<f64> {
    static FLOAT: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"^[+-]?(Infinity|\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)")
            .expect("valid regex")
    });
    let found = FLOAT.find(s.trim_start())?;
    match found.as_str().trim_start_matches(['+', '-']) {
        "Infinity" if found.as_str().starts_with('-') => Some(f64::NEG_INFINITY),
        "Infinity" => Some(f64::INFINITY),
        _ => found.as_str().parse().ok(),
    }
}

fn numeric(value: &Value) -> Option<f64> {
    match value.kind() {
        ValueKind::Number | ValueKind::Bool => f64::try_from(value.clone()).ok(),
        ValueKind::String => parse_float_prefix(value.as_str().unwrap_or_default()),
        _ => None,
    }
}

/// `int(default)`: parseInt, the default when it is NaN.
fn int(value: Value, default: Option<Value>) -> Value {
    let n = match value.kind() {
        ValueKind::String => {
            static INT: LazyLock<regex::Regex> =
                LazyLock::new(|| regex::Regex::new(r"^[+-]?\d+").expect("valid regex"));
            INT.find(value.as_str().unwrap_or_default().trim_start())
                .and_then(|m| m.as_str().parse::<f64>().ok())
        }
        _ => numeric(&value).filter(|n| n.is_finite()).map(f64::trunc),
    };
    match n {
        Some(n) => Value::from(n as i64),
        None => default.unwrap_or(Value::UNDEFINED),
    }
}

/// `float(default)`: parseFloat, the default when it is NaN.
fn float(value: Value, default: Option<Value>) -> Value {
    match numeric(&value) {
        Some(n) => Value::from(n),
        None => default.unwrap_or(Value::UNDEFINED),
    }
}

/// `round(precision=0, method="common")`.
fn round(value: Value, precision: Option<i32>, method: Option<String>) -> Result<Value, Error> {
    let n = numeric(&value).ok_or_else(|| fail("round: not a number"))?;
    let factor = 10f64.powi(precision.unwrap_or(0));
    let scaled = n * factor;
    let rounded = match method.as_deref() {
        Some("ceil") => scaled.ceil(),
        Some("floor") => scaled.floor(),
        // Math.round: halves go up.
        _ => (scaled + 0.5).floor(),
    };
    Ok(Value::from(rounded / factor))
}

fn random(value: Value) -> Result<Value, Error> {
    use rand::Rng;
    let items: Vec<Value> = value.try_iter()?.collect();
    if items.is_empty() {
        return Ok(Value::UNDEFINED);
    }
    Ok(items[rand::rng().random_range(0..items.len())].clone())
}

/// `urlize(length, nofollow)`: bare URLs and `www.` addresses become links.
fn urlize(value: Value, length: Option<usize>, nofollow: Option<bool>) -> String {
    static URL: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"^(?:https?://|www\.)\S+$|^\S+@[A-Za-z0-9.-]+\.\w+$")
            .expect("valid regex")
    });
    let rel = if nofollow.unwrap_or(false) {
        " rel=\"nofollow\""
    } else {
        ""
    };
    text(&value)
        .split(' ')
        .map(|word| {
            if !URL.is_match(word) {
                return word.to_string();
            }
            let shown = match length {
                Some(n) => js_slice(word, n),
                None => word.to_string(),
            };
            if word.contains('@') && !word.contains("://") {
                format!("<a href=\"mailto:{word}\">{shown}</a>")
            } else if word.starts_with("www.") {
                format!("<a href=\"http://{word}\"{rel}>{shown}</a>")
            } else {
                format!("<a href=\"{word}\"{rel}>{shown}</a>")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What `for k, v in x` iterates: an object's `[key, value]` pairs, else `x` itself.
fn pairs(value: Value, _kwargs: Kwargs) -> Result<Value, Error> {
    if value.kind() != ValueKind::Map {
        return Ok(value);
    }
    let mut out = Vec::new();
    for key in value.try_iter()? {
        let item = value.get_item(&key)?;
        out.push(Value::from(vec![key, item]));
    }
    Ok(Value::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    fn render(source: &str, vars: serde_json::Value) -> String {
        render_str(source, &Value::from_serialize(&vars)).unwrap()
    }

    #[test]
    fn blocks_keep_newlines_and_values_print_as_javascript() {
        let vars = serde_json::json!({"t": true, "f": false, "n": null, "three": 3.0,
            "small": 1.5e-7, "big": 1e21, "list": [1, 2, 3], "obj": {"a": 1}});
        assert_eq!(
            render(
                "{% if t %}\nyes\n{% endif %}\n{{t}} {{f}} [{{n}}] [{{missing}}] [{{missing.x}}] {{three}} {{small}} {{big}} {{list}} {{obj}}\n",
                vars
            ),
            "\nyes\n\ntrue false [] [] [] 3 1.5e-7 1e+21 1,2,3 [object Object]\n"
        );
    }

    #[test]
    fn nunjucks_filters_and_syntax() {
        let vars = serde_json::json!({"s": "Hello brave new world", "html": "<p>Hi <b>there</b></p>",
            "m": {"a": 1, "b": 2}, "x": 2});
        assert_eq!(
            render(
                "{{ s | truncate(9) }}|{{ s | truncate(9, true) }}",
                vars.clone()
            ),
            "Hello...|Hello bra..."
        );
        assert_eq!(
            render("{{ s | wordcount }} {{ html | striptags }}", vars.clone()),
            "4 Hi there"
        );
        assert_eq!(
            render(
                "{% for k, v in m %}{{k}}={{v}};{% endfor %}{% if x == 1 %}one{% elseif x == 2 %}two{% endif %}",
                vars.clone()
            ),
            "a=1;b=2;two"
        );
        assert_eq!(
            render("[{{ 'ab' | center(7) }}] {{ 'a b' | title }}", vars.clone()),
            "[  ab   ] A B"
        );
        assert_eq!(
            render(
                "{{ m | dump }} {{ '3.7' | int }} {{ 2.5 | round }} {{ 'x' | int }}",
                vars
            ),
            r#"{"a":1,"b":2} 3 3 "#
        );
        // An unclosed tag renders as text, as promptfoo wraps it in raw.
        assert_eq!(
            render("Use {{ like this", serde_json::json!({})),
            "Use {{ like this"
        );
        let out = render_str("{{ a }}", &context! {}).unwrap();
        assert_eq!(out, "");
    }
}
