//! JavaScript in QuickJS (rquickjs): a fresh runtime per call, so calls cannot see each
//! other, with an interrupt handler for the time limit and QuickJS's allocator limit.
//! QuickJS itself has no file, network or process API; none is added (no `require`, no
//! `std`/`os` modules), so a script can only compute.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rquickjs::allocator::{Allocator, RustAllocator};
use rquickjs::{CatchResultExt, CaughtError, Context, Ctx, Promise, Runtime};
use serde_json::{Value, json};

use super::{ScriptError, Source};

/// Runs inline code the way promptfoo's `new Function('output', 'context', body)` does
/// (`vars` instead of `output` for `transformVars`).
const INLINE_DRIVER: &str = r#"(() => {
  const p = globalThis.__promptlab;
  delete globalThis.__promptlab;
  const body = p.body.includes('\n') ? p.body : `return ${p.body}`;
  return new Function(p.input_name, 'context', body)(p.input, p.context);
})()"#;

/// Loads a CommonJS file (`module.exports`) and calls the function promptfoo would: the
/// named export, else the module itself, else its `default`.
const FILE_DRIVER: &str = r#"(() => {
  const p = globalThis.__promptlab;
  delete globalThis.__promptlab;
  const module = { exports: {} };
  new Function('module', 'exports', p.code)(module, module.exports);
  const m = module.exports;
  let f;
  if (p.function && m && typeof m[p.function] === 'function') f = m[p.function];
  else if (typeof m === 'function') f = m;
  else if (m && typeof m.default === 'function') f = m.default;
  else if (p.function) throw new Error(`${p.path} does not export a function named ${p.function}`);
  else throw new Error(`${p.path} must export a function (module.exports = ...) or have a default export`);
  return f(p.input, p.context);
})()"#;

pub(super) fn call(
    source: &Source,
    input_name: &str,
    input: &Value,
    context: &Value,
    time_limit: Duration,
    memory_limit: usize,
) -> Result<Value, ScriptError> {
    let exceeded = Arc::new(AtomicBool::new(false));
    let allocator = LimitedAllocator {
        used: 0,
        limit: memory_limit,
        exceeded: exceeded.clone(),
    };
    let runtime = Runtime::new_with_alloc(allocator)
        .map_err(|e| ScriptError::Thrown(format!("QuickJS: {e}")))?;
    // Well inside the smallest thread stack the calls run on (a test thread's 2 MiB).
    runtime.set_max_stack_size(512 * 1024);
    let deadline = Instant::now() + time_limit;
    let interrupted = Rc::new(Cell::new(false));
    let flag = interrupted.clone();
    runtime.set_interrupt_handler(Some(Box::new(move || {
        let late = Instant::now() >= deadline;
        if late {
            flag.set(true);
        }
        late
    })));
    let context_js =
        Context::full(&runtime).map_err(|e| ScriptError::Thrown(format!("QuickJS: {e}")))?;
    let (parameters, driver) = match source {
        Source::Inline(body) => (json!({ "body": body }), INLINE_DRIVER),
        Source::File {
            path,
            function,
            code,
        } => (
            json!({ "code": code, "function": function, "path": path.display().to_string() }),
            FILE_DRIVER,
        ),
    };
    let mut parameters = parameters;
    parameters["input_name"] = json!(input_name);
    parameters["input"] = input.clone();
    parameters["context"] = context.clone();
    let result = context_js.with(|ctx| run(&ctx, &parameters, driver));
    match result {
        Err(_) if interrupted.get() => Err(ScriptError::Timeout(time_limit)),
        // Out of memory QuickJS may fail to build its own error too, and throw null.
        Err(_) if exceeded.load(Ordering::Relaxed) => Err(ScriptError::OutOfMemory(memory_limit)),
        other => other,
    }
}

/// Rust's allocator with a ceiling: QuickJS's own limit applies only to its default
/// allocator, and an allocation refused here is remembered, because out of memory QuickJS
/// may not manage to report it as an error.
struct LimitedAllocator {
    used: usize,
    limit: usize,
    exceeded: Arc<AtomicBool>,
}

impl LimitedAllocator {
    fn admit(&mut self, size: usize) -> bool {
        let fits = self.used.saturating_add(size) <= self.limit;
        if !fits {
            self.exceeded.store(true, Ordering::Relaxed);
        }
        fits
    }
}

// SAFETY: every pointer comes from RustAllocator and goes back to it; this wrapper only
// counts sizes (RustAllocator's own usable size) and refuses allocations past the limit.
unsafe impl Allocator for LimitedAllocator {
    fn alloc(&mut self, size: usize) -> *mut u8 {
        if !self.admit(size) {
            return std::ptr::null_mut();
        }
        let ptr = RustAllocator.alloc(size);
        if !ptr.is_null() {
            self.used += unsafe { RustAllocator::usable_size(ptr) };
        }
        ptr
    }

    fn calloc(&mut self, count: usize, size: usize) -> *mut u8 {
        if !self.admit(count.saturating_mul(size)) {
            return std::ptr::null_mut();
        }
        let ptr = RustAllocator.calloc(count, size);
        if !ptr.is_null() {
            self.used += unsafe { RustAllocator::usable_size(ptr) };
        }
        ptr
    }

    unsafe fn dealloc(&mut self, ptr: *mut u8) {
        if !ptr.is_null() {
            self.used = self
                .used
                .saturating_sub(unsafe { RustAllocator::usable_size(ptr) });
            unsafe { RustAllocator.dealloc(ptr) }
        }
    }

    unsafe fn realloc(&mut self, ptr: *mut u8, new_size: usize) -> *mut u8 {
        let old = if ptr.is_null() {
            0
        } else {
            unsafe { RustAllocator::usable_size(ptr) }
        };
        if new_size > old && !self.admit(new_size - old) {
            return std::ptr::null_mut();
        }
        let moved = unsafe { RustAllocator.realloc(ptr, new_size) };
        if !moved.is_null() {
            self.used =
                self.used.saturating_sub(old) + unsafe { RustAllocator::usable_size(moved) };
        }
        moved
    }

    unsafe fn usable_size(ptr: *mut u8) -> usize {
        unsafe { RustAllocator::usable_size(ptr) }
    }
}

fn run(ctx: &Ctx<'_>, parameters: &Value, driver: &str) -> Result<Value, ScriptError> {
    let thrown = |e: CaughtError| ScriptError::Thrown(describe(e));
    let parameters = ctx
        .json_parse(parameters.to_string())
        .catch(ctx)
        .map_err(thrown)?;
    ctx.globals()
        .set("__promptlab", parameters)
        .catch(ctx)
        .map_err(thrown)?;
    let mut value: rquickjs::Value = ctx.eval(driver).catch(ctx).map_err(thrown)?;
    // promptfoo awaits what a script returns, so an async function works too.
    if let Some(promise) = value.as_promise().cloned() {
        value = settle(ctx, &promise)?;
    }
    let text = ctx.json_stringify(value).catch(ctx).map_err(thrown)?;
    match text {
        // `undefined` (and functions) have no JSON form.
        None => Ok(Value::Null),
        Some(text) => {
            let text = text
                .to_string()
                .map_err(|e| ScriptError::Thrown(e.to_string()))?;
            serde_json::from_str(&text).map_err(|e| ScriptError::BadResult(e.to_string()))
        }
    }
}

/// Runs pending jobs until `promise` settles (the interrupt handler bounds the time).
fn settle<'js>(
    ctx: &Ctx<'js>,
    promise: &Promise<'js>,
) -> Result<rquickjs::Value<'js>, ScriptError> {
    loop {
        if let Some(result) = promise.result::<rquickjs::Value>() {
            return result
                .catch(ctx)
                .map_err(|e| ScriptError::Thrown(describe(e)));
        }
        if !ctx.execute_pending_job() {
            return Err(ScriptError::BadResult(
                "the returned promise never settles".into(),
            ));
        }
    }
}

/// `Name: message` and the first stack line that says where.
fn describe(error: CaughtError) -> String {
    match error {
        CaughtError::Exception(exception) => {
            let message = exception.message().unwrap_or_default();
            let name: Option<String> = exception.get("name").ok();
            let name = name.unwrap_or_else(|| "Error".into());
            let at = exception.stack().and_then(|s| {
                s.lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .map(String::from)
            });
            match at {
                Some(at) => format!("{name}: {message} ({at})"),
                None => format!("{name}: {message}"),
            }
        }
        CaughtError::Value(value) => {
            let shown = value
                .as_string()
                .and_then(|s| s.to_string().ok())
                .unwrap_or_else(|| format!("{value:?}"));
            format!("threw {shown}")
        }
        CaughtError::Error(error) => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inline(body: &str, output: Value) -> Result<Value, ScriptError> {
        call(
            &Source::Inline(body.into()),
            "output",
            &output,
            &json!({"vars": {"name": "Ada"}}),
            Duration::from_millis(500),
            16 * 1024 * 1024,
        )
    }

    #[test]
    fn expressions_and_bodies_see_output_and_context() {
        assert_eq!(
            inline("output.length > 3", json!("hello")).unwrap(),
            json!(true)
        );
        assert_eq!(
            inline("output.includes(context.vars.name)", json!("hi Bob")).unwrap(),
            json!(false)
        );
        let body = "const n = output.split(' ').length;\nreturn { pass: n > 1, score: n / 10, reason: 'words: ' + n };";
        assert_eq!(
            inline(body, json!("a b c")).unwrap(),
            json!({"pass": true, "score": 0.3, "reason": "words: 3"})
        );
        // A body with no return gives undefined.
        assert_eq!(inline("const x = 1;\nx;", json!("")).unwrap(), Value::Null);
    }

    #[test]
    fn async_results_are_awaited() {
        let body = "return (async () => output === 'ok')();\n";
        assert_eq!(inline(body, json!("ok")).unwrap(), json!(true));
    }

    #[test]
    fn endless_loops_are_stopped() {
        let start = Instant::now();
        let err = inline("while (true) {}\nreturn 1;", json!("")).unwrap_err();
        assert_eq!(err, ScriptError::Timeout(Duration::from_millis(500)));
        assert!(start.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn memory_is_limited() {
        let body = "const a = [];\nwhile (true) a.push('x'.repeat(1000) + a.length);";
        let err = inline(body, json!("")).unwrap_err();
        assert_eq!(err, ScriptError::OutOfMemory(16 * 1024 * 1024));
    }

    #[test]
    fn no_file_network_or_module_access() {
        for probe in [
            "require('fs')",
            "fetch('http://example.com')",
            "process.env",
            "std.loadFile('/etc/passwd')",
            "os.exec(['ls'])",
        ] {
            let err = inline(probe, json!("")).unwrap_err();
            assert!(
                matches!(&err, ScriptError::Thrown(m) if m.contains("ReferenceError")),
                "{probe}: {err:?}"
            );
        }
        // An import is a module load, which has no loader here.
        assert!(inline("import('fs')", json!("")).is_err());
    }

    #[test]
    fn errors_name_what_was_thrown() {
        let err = inline("output.nope.deeper", json!("x")).unwrap_err();
        assert!(
            matches!(&err, ScriptError::Thrown(m) if m.starts_with("TypeError")),
            "{err:?}"
        );
        let err = inline("throw new Error('bad output')\n", json!("x")).unwrap_err();
        assert!(matches!(&err, ScriptError::Thrown(m) if m.contains("bad output")));
    }

    #[test]
    fn files_export_functions_as_commonjs() {
        let code = "module.exports = (output, context) => output + '!';\nmodule.exports.shout = (o) => o.toUpperCase();".to_string();
        let file = |function: Option<&str>| Source::File {
            path: "t.js".into(),
            function: function.map(String::from),
            code: code.clone(),
        };
        let run = |source: Source| {
            call(
                &source,
                "output",
                &json!("hey"),
                &json!({}),
                Duration::from_secs(1),
                16 << 20,
            )
        };
        assert_eq!(run(file(None)).unwrap(), json!("hey!"));
        assert_eq!(run(file(Some("shout"))).unwrap(), json!("HEY"));
        // A missing name falls back to the module when it is a function (as promptfoo).
        assert_eq!(run(file(Some("missing"))).unwrap(), json!("hey!"));
        let object = Source::File {
            path: "t.js".into(),
            function: Some("missing".into()),
            code: "module.exports = { other: () => true };".into(),
        };
        let err = run(object).unwrap_err();
        assert!(
            matches!(&err, ScriptError::Thrown(m) if m.contains("missing")),
            "{err:?}"
        );
    }
}
