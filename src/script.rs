//! User scripts that score or reshape outputs, as promptfoo runs them: `javascript`
//! assertions and `transform`s in an embedded QuickJS engine (no file, network or process
//! access: only the language itself), `python` assertions and transforms through the
//! system `python3`. Every call has a time limit, and JavaScript a memory limit, so a
//! script that loops forever or allocates without end is stopped and reported.

mod js;
mod python;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// How long one call may run, unless `PROMPTLAB_SCRIPT_TIMEOUT` (seconds) says otherwise.
const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(10);
/// What one JavaScript call may allocate.
pub const JS_MEMORY_LIMIT: usize = 64 * 1024 * 1024;

/// The language of a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    JavaScript,
    Python,
}

impl Language {
    pub fn name(self) -> &'static str {
        match self {
            Language::JavaScript => "javascript",
            Language::Python => "python",
        }
    }
}

/// What a script is for: it decides a `file://` script's default function name in Python
/// (`get_assert`, `get_transform`, as promptfoo) and what inline JavaScript calls its
/// input (`output`, or `vars` for `transformVars`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Assertion,
    Transform,
    /// promptfoo's `transformVars`: the input is the test's `vars`, not an output.
    VarsTransform,
}

/// A script ready to call with `(output, context)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub language: Language,
    pub source: Source,
    /// As written, for reasons and for writing the assertion back out.
    pub written: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// promptfoo's inline code: one line is an expression, several lines a function body.
    Inline(String),
    /// `file://path` or `file://path:function`; JavaScript files are read when parsed
    /// (CommonJS, `module.exports`), Python files are imported by the interpreter.
    File {
        path: PathBuf,
        function: Option<String>,
        code: String,
    },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScriptError {
    #[error("stopped after {0:?}: the script ran too long (an endless loop?)")]
    Timeout(Duration),
    #[error("stopped: the script used more than {} MiB of memory", .0 / (1024 * 1024))]
    OutOfMemory(usize),
    #[error("{0}")]
    Thrown(String),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error(
        "python assertions run through the system Python, and `{0}` was not found (install Python 3, or set PROMPTFOO_PYTHON to its path)"
    )]
    PythonMissing(String),
    #[error("{0}")]
    BadResult(String),
}

/// The per-call time limit: `PROMPTLAB_SCRIPT_TIMEOUT` seconds, else 10 s.
pub fn time_limit() -> Duration {
    std::env::var("PROMPTLAB_SCRIPT_TIMEOUT")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(DEFAULT_TIME_LIMIT)
}

impl Script {
    /// A script as promptfoo writes one: `file://path[:function]` (relative to `base`) or
    /// inline code. The language of a file comes from its extension.
    pub fn parse(
        written: &str,
        inline_language: Language,
        base: &Path,
    ) -> Result<Script, ScriptError> {
        let Some(reference) = written.strip_prefix("file://") else {
            return Ok(Script {
                language: inline_language,
                source: Source::Inline(written.to_string()),
                written: written.to_string(),
            });
        };
        // The last colon separates a function name (paths here have no drive letters).
        let (file, function) = match reference.rsplit_once(':') {
            Some((file, function)) if !function.contains('/') && !function.is_empty() => {
                (file, Some(function.to_string()))
            }
            _ => (reference, None),
        };
        let path = base.join(file);
        let extension = path
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let language = match extension.as_str() {
            "js" | "cjs" | "mjs" => Language::JavaScript,
            "py" => Language::Python,
            other => {
                return Err(ScriptError::File {
                    path,
                    message: format!(
                        "scripts must be .js, .cjs, .mjs or .py files, not .{other} ones"
                    ),
                });
            }
        };
        let code = std::fs::read_to_string(&path).map_err(|e| ScriptError::File {
            path: path.clone(),
            message: format!("cannot read: {e}"),
        })?;
        Ok(Script {
            language,
            source: Source::File {
                path,
                function,
                code,
            },
            written: written.to_string(),
        })
    }

    /// Calls the script with `(output, context)` (`(vars, context)` for a vars transform)
    /// and returns what it returned (JSON; a JavaScript `undefined` is `null`).
    pub fn call(&self, role: Role, output: &Value, context: &Value) -> Result<Value, ScriptError> {
        let limit = time_limit();
        match self.language {
            Language::JavaScript => {
                // promptfoo trims an assertion's code (so a one-line YAML `|` block stays
                // an expression) but not a transform's.
                let trimmed;
                let source = match (&self.source, role) {
                    (Source::Inline(code), Role::Assertion) => {
                        trimmed = Source::Inline(code.trim_end().to_string());
                        &trimmed
                    }
                    (source, _) => source,
                };
                let input_name = match role {
                    Role::VarsTransform => "vars",
                    Role::Assertion | Role::Transform => "output",
                };
                js::call(source, input_name, output, context, limit, JS_MEMORY_LIMIT)
            }
            Language::Python => python::call(&self.source, role, output, context, limit),
        }
    }
}

/// Shortens a script for a reason line.
pub fn excerpt(code: &str) -> String {
    let one_line = code.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &one_line[..at]),
        None => one_line,
    }
}
