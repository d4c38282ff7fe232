//! Template environments. Prompt templates are strict (a missing variable is an error, not
//! an empty string); GGUF chat templates are lenient like Hugging Face's renderer, because
//! real templates test optional keys such as `tools` with plain `{% if tools %}`.
//! Helpers that real chat templates call are registered here, in one place.

use std::sync::OnceLock;
use std::time::Duration;

use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior, Value};

/// How a template treats variables it was not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undefined {
    Strict,
    Lenient,
}

/// The shared environment for `undefined`, built once per process.
pub fn environment(undefined: Undefined) -> &'static Environment<'static> {
    static STRICT: OnceLock<Environment<'static>> = OnceLock::new();
    static LENIENT: OnceLock<Environment<'static>> = OnceLock::new();
    match undefined {
        Undefined::Strict => STRICT.get_or_init(|| build(undefined)),
        Undefined::Lenient => LENIENT.get_or_init(|| build(undefined)),
    }
}

/// Instructions one render may execute: real prompt and chat templates take thousands;
/// a runaway loop (three nested `range(100000)`, in a prompt or in a downloaded model's
/// chat template) stops here, within a second or two, instead of hanging.
pub const MAX_STEPS: u64 = 20_000_000;
/// Nested calls (macros, includes) a render may make.
const MAX_NESTING: usize = 100;
/// Wall-clock time one render may take. Steps alone do not bound it: one step may scan
/// or build a large value (`x in range(100000)` inside a loop). Real templates render in
/// microseconds.
pub const MAX_RENDER_TIME: Duration = Duration::from_secs(2);
/// The longest text one render may produce; a prompt or chat template that writes more
/// is refused rather than filling memory.
pub const MAX_OUTPUT_BYTES: usize = 16 * 1024 * 1024;

/// Bounds `env`'s renders: steps, nesting and time (minijinja is patched with a time
/// limit and size caps per operator, vendor/minijinja/PROMPTLAB.md).
pub fn set_limits(env: &mut Environment<'_>) {
    env.set_fuel(Some(MAX_STEPS));
    env.set_time_limit(Some(MAX_RENDER_TIME));
    env.set_recursion_limit(MAX_NESTING);
}

/// Builds an environment with the helpers prompt and chat templates rely on.
fn build(undefined: Undefined) -> Environment<'static> {
    let mut env = Environment::new();
    set_limits(&mut env);
    env.set_undefined_behavior(match undefined {
        Undefined::Strict => UndefinedBehavior::Strict,
        Undefined::Lenient => UndefinedBehavior::Lenient,
    });
    // Chat templates are written for Python's Jinja with trim_blocks/lstrip_blocks on,
    // and call Python string methods such as `.strip()` and `.startswith()`.
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(false);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env.add_filter("tojson", python_tojson);
    // promptfoo's Nunjucks filters, so its prompts render here: `dump` is
    // JSON.stringify, `load` is JSON.parse.
    env.add_filter("dump", dump);
    env.add_filter("load", load);
    env
}

fn dump(value: Value) -> Result<Value, Error> {
    serde_json::to_string(&value)
        .map(Value::from_safe_string)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))
}

fn load(text: &str) -> Result<Value, Error> {
    serde_json::from_str::<serde_json::Value>(text)
        .map(|v| Value::from_serialize(&v))
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("load: not JSON: {e}")))
}

/// `tojson` as Hugging Face's renderer does it (Python's `json.dumps`): keys in their
/// order, `", "` and `": "` separators, non-ASCII kept. Models were trained on exactly that
/// text (tool lists in system prompts, tool-call arguments), and minijinja's own filter
/// writes compact JSON.
fn python_tojson(value: Value, kwargs: minijinja::value::Kwargs) -> Result<Value, Error> {
    use serde::Serialize;
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let fail = |e: serde_json::Error| Error::new(ErrorKind::InvalidOperation, e.to_string());
    let mut out = Vec::new();
    match indent {
        Some(width) => {
            let spaces = " ".repeat(width);
            let formatter = serde_json::ser::PrettyFormatter::with_indent(spaces.as_bytes());
            let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
            value.serialize(&mut serializer).map_err(fail)?;
        }
        None => {
            let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonJson);
            value.serialize(&mut serializer).map_err(fail)?;
        }
    }
    Ok(Value::from_safe_string(
        String::from_utf8(out).unwrap_or_default(),
    ))
}

/// Python's default JSON separators.
struct PythonJson;

impl serde_json::ser::Formatter for PythonJson {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }
}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

/// chrono panics when `to_string` meets an invalid specifier; `write!` reports it instead.
fn strftime_now(format: String) -> Result<String, Error> {
    use std::fmt::Write;
    let mut out = String::new();
    write!(out, "{}", chrono::Local::now().format(&format)).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("strftime_now: invalid format {format:?}"),
        )
    })?;
    Ok(out)
}

/// A template error reduced to what a user needs: the line inside the template and the
/// message, without minijinja's multi-line debug dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateFault {
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for TemplateFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "template line {line}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for TemplateFault {}

impl From<&Error> for TemplateFault {
    fn from(err: &Error) -> Self {
        // The time limit reports itself as running out of fuel with a detail that
        // repeats the kind's text.
        let detail = err.detail().filter(|_| err.kind() != ErrorKind::OutOfFuel);
        let mut message = match detail {
            Some(detail) => format!("{}: {detail}", kind_text(err.kind())),
            None => kind_text(err.kind()).to_string(),
        };
        if err.kind() == ErrorKind::UndefinedError
            && let Some(name) = undefined_name(err)
        {
            message = format!("undefined variable `{name}`");
        }
        TemplateFault {
            line: err.line(),
            message,
        }
    }
}

fn kind_text(kind: ErrorKind) -> String {
    match kind {
        ErrorKind::OutOfFuel => format!(
            "the template ran more than {MAX_STEPS} steps or {} s and was stopped (a runaway loop?)",
            MAX_RENDER_TIME.as_secs()
        ),
        ErrorKind::UndefinedError => "undefined value".to_string(),
        ErrorKind::SyntaxError => "syntax error".to_string(),
        ErrorKind::InvalidOperation => "invalid operation".to_string(),
        other => other.to_string(),
    }
}

/// minijinja knows the source span of the failing expression; the text there is the
/// variable name the user mistyped or forgot.
fn undefined_name(err: &Error) -> Option<String> {
    let source = err.template_source()?;
    let span = err.range()?;
    let text = source.get(span)?.trim();
    (!text.is_empty() && text.len() < 80).then(|| text.to_string())
}

/// The longest template line accepted. minijinja counts columns in 16 bits, and its
/// error for a line past 65,535 columns overflows that count (a panic in debug builds).
pub const MAX_LINE_CHARS: usize = 60_000;

/// Refuses a source minijinja cannot be given safely.
pub fn compilable(source: &str) -> Result<(), TemplateFault> {
    match source.lines().position(|line| line.len() > MAX_LINE_CHARS) {
        Some(index) => Err(TemplateFault {
            line: Some(index + 1),
            message: format!("the line is over {MAX_LINE_CHARS} characters"),
        }),
        None => Ok(()),
    }
}

/// Renders one template string with `context`.
pub fn render_str(
    env: &Environment<'_>,
    source: &str,
    context: &Value,
) -> Result<String, TemplateFault> {
    compilable(source)?;
    let template = env
        .template_from_str(source)
        .map_err(|err| TemplateFault::from(&err))?;
    let mut out = BoundedText::default();
    match template.render_captured_to(context, &mut out) {
        Ok(_) => Ok(String::from_utf8_lossy(&out.bytes).into_owned()),
        Err(_) if out.overflowed => Err(TemplateFault {
            line: None,
            message: format!(
                "the rendered text is over {} MiB and was stopped",
                MAX_OUTPUT_BYTES >> 20
            ),
        }),
        Err(err) => Err(TemplateFault::from(&err)),
    }
}

/// A render's output, refused past [`MAX_OUTPUT_BYTES`].
#[derive(Default)]
struct BoundedText {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for BoundedText {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_OUTPUT_BYTES {
            self.overflowed = true;
            return Err(std::io::Error::other("rendered text too long"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Checks a template compiles, without rendering it.
pub fn check_syntax(env: &Environment<'_>, source: &str) -> Result<(), TemplateFault> {
    compilable(source)?;
    env.template_from_str(source)
        .map(|_| ())
        .map_err(|err| TemplateFault::from(&err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    #[test]
    fn issue_20_a_line_too_long_for_minijinja_is_refused_not_a_panic() {
        let env = environment(Undefined::Strict);
        let source = format!("ok\n{{{{ x }}}} {}%}}", "a".repeat(70_000));
        let fault = check_syntax(env, &source).unwrap_err();
        assert_eq!(fault.line, Some(2));
        assert!(fault.message.contains("over 60000 characters"), "{fault}");
        assert!(render_str(env, &source, &context! {}).is_err());
    }

    #[test]
    fn tojson_writes_what_python_json_dumps_writes() {
        let env = environment(Undefined::Lenient);
        let tool = serde_json::json!({"type": "function", "function": {"name": "f", "arguments": {"b": [1, 2], "a": "é<"}}});
        let out = render_str(env, "{{ tool | tojson }}", &context! { tool => tool }).unwrap();
        // json.dumps(tool, ensure_ascii=False)
        assert_eq!(
            out,
            r#"{"type": "function", "function": {"name": "f", "arguments": {"b": [1, 2], "a": "é<"}}}"#
        );
        let out = render_str(env, "{{ [1] | tojson(indent=2) }}", &context! {}).unwrap();
        assert_eq!(out, "[\n  1\n]");
    }

    #[test]
    fn promptfoo_filters_dump_and_load_json() {
        let env = environment(Undefined::Strict);
        let vars = context! { style => r#"{"tone": "formal"}"#, list => vec!["a", "b"] };
        let out = render_str(env, "{{ (style | load).tone }} {{ list | dump }}", &vars).unwrap();
        assert_eq!(out, r#"formal ["a","b"]"#);
        assert!(render_str(env, "{{ 'x' | load }}", &vars).is_err());
    }

    #[test]
    fn strict_names_the_missing_variable() {
        let env = environment(Undefined::Strict);
        let err = render_str(env, "Hello\n{{ nmae }}", &context! { name => "x" }).unwrap_err();
        assert_eq!(err.line, Some(2));
        assert_eq!(err.message, "undefined variable `nmae`");
    }

    /// Issue 20: a template's loops are bounded, so neither a prompt nor a downloaded
    /// chat template can hang a run.
    #[test]
    fn issue_20_runaway_templates_stop_with_a_clear_error() {
        let started = std::time::Instant::now();
        for undefined in [Undefined::Strict, Undefined::Lenient] {
            let env = environment(undefined);
            let err = render_str(
                env,
                "{% for a in range(100000) %}{% for b in range(100000) %}{% for c in range(100000) %}x{% endfor %}{% endfor %}{% endfor %}",
                &context! {},
            )
            .unwrap_err();
            assert!(err.message.contains("runaway loop"), "{}", err.message);
            let err = render_str(
                env,
                "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
                &context! {},
            )
            .unwrap_err();
            assert!(!err.message.is_empty());
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }

    /// Issue 20: one instruction costs one step but may do unbounded work; fuzzing found
    /// a chat template that hung this way. Each of these ran for minutes or hours, or
    /// filled memory, before minijinja was bounded per operator and in time.
    #[test]
    fn issue_20_single_expensive_steps_are_bounded() {
        let tools = vec![serde_json::json!({"name": "f"})];
        let attacks = [
            // fuzz/regressions/chat_template-timeout-sequence-repeat
            "{%- if 45~766447492211*tools %}x{% endif %}",
            "{{ [1] * 1000000000000 }}",
            "{% set s = [1] * 1000000 %}{% for i in range(20) %}{% set s = s + s %}{% endfor %}{{ s ~ '' }}",
            "{{ ['x' * 10000000] * 100000 ~ '' }}",
            "{% for i in range(100000) %}{{ 'x' * 10000000 }}{% endfor %}",
            "{% for i in range(100000) %}{% if -1 in range(100000) %}{% endif %}{% endfor %}",
        ];
        for undefined in [Undefined::Strict, Undefined::Lenient] {
            let env = environment(undefined);
            for attack in attacks {
                let started = std::time::Instant::now();
                let err = render_str(env, attack, &context! { tools => tools }).unwrap_err();
                let took = started.elapsed();
                assert!(
                    took < MAX_RENDER_TIME * 3,
                    "{attack} took {took:?} before: {err}"
                );
                assert!(
                    err.message.contains("too large")
                        || err.message.contains("runaway")
                        || err.message.contains("MiB"),
                    "{attack}: {err}"
                );
            }
        }
    }

    #[test]
    fn templates_within_the_limits_render_whole() {
        let env = environment(Undefined::Strict);
        let out = render_str(
            env,
            "{{ ([1, 2] * 3) | length }} {{ 'ab' * 3 }} {{ [1] ~ 2 }}",
            &context! {},
        )
        .unwrap();
        assert_eq!(out, "6 ababab [1]2");
        let out = render_str(env, "{{ 'x' * 1000000 }}", &context! {}).unwrap();
        assert_eq!(out.len(), 1_000_000);
    }

    #[test]
    fn lenient_allows_optional_keys() {
        let env = environment(Undefined::Lenient);
        let out = render_str(env, "{% if tools %}T{% endif %}ok", &context! {}).unwrap();
        assert_eq!(out, "ok");
    }

    #[test]
    fn chat_template_helpers_exist() {
        let env = environment(Undefined::Lenient);
        let out = render_str(
            env,
            "{{ ' a '.strip() }}|{{ {'k': 1} | tojson }}|{{ strftime_now('%Y') | length }}",
            &context! {},
        )
        .unwrap();
        assert_eq!(out, "a|{\"k\": 1}|4");
        let err = render_str(env, "{{ raise_exception('bad role') }}", &context! {}).unwrap_err();
        assert!(err.message.contains("bad role"), "{}", err.message);
    }
}
