//! Python through the system interpreter, as promptfoo runs it: a wrapper imports the
//! script as a module and calls the function with the JSON-decoded `(output, context)`,
//! then writes the JSON result to a file. Inline code becomes promptfoo's
//! `def main(output, context):` around it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Role, ScriptError, Source};

/// promptfoo's `wrapper.py`, minus its progress print.
const WRAPPER: &str = r#"import asyncio
import importlib.util
import json
import os
import sys


def call_method(script_path, method_name, *args):
    script_dir = os.path.dirname(os.path.abspath(script_path))
    module_name = os.path.basename(script_path).rsplit(".", 1)[0]
    if script_dir not in sys.path:
        sys.path.insert(0, script_dir)
    spec = importlib.util.spec_from_file_location(module_name, script_path)
    script_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script_module)
    if "." in method_name:
        class_name, classmethod_name = method_name.split(".")
        method_to_call = getattr(getattr(script_module, class_name), classmethod_name)
    else:
        method_to_call = getattr(script_module, method_name)
    if asyncio.iscoroutinefunction(method_to_call):
        return asyncio.run(method_to_call(*args))
    return method_to_call(*args)


if __name__ == "__main__":
    with open(sys.argv[3], "r", encoding="utf-8") as fp:
        data = json.load(fp)
    result = call_method(sys.argv[1], sys.argv[2], *data)
    with open(sys.argv[4], "w", encoding="utf-8") as fp:
        json.dump({"type": "final_result", "data": result}, fp, ensure_ascii=False)
"#;

/// The interpreter: `PROMPTFOO_PYTHON` (promptfoo's setting), else `python3`.
fn interpreter() -> String {
    std::env::var("PROMPTFOO_PYTHON")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "python3".into())
}

/// promptfoo's script around inline code: one line is returned, several lines are the
/// body of `main`, indented the way their first indented line is.
fn inline_script(code: &str) -> String {
    let body = if code.contains('\n') {
        let indent = code
            .lines()
            .find(|l| !l.trim().is_empty() && l.starts_with(char::is_whitespace))
            .map(|l| &l[..l.len() - l.trim_start().len()])
            .unwrap_or("    ");
        code.split('\n')
            .map(|line| format!("{indent}{line}"))
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        format!("    return {code}")
    };
    format!("import json\n\ndef main(output, context):\n{body}\n")
}

pub(super) fn call(
    source: &Source,
    role: Role,
    output: &Value,
    context: &Value,
    time_limit: Duration,
) -> Result<Value, ScriptError> {
    run(&interpreter(), source, role, output, context, time_limit)
}

fn run(
    python: &str,
    source: &Source,
    role: Role,
    output: &Value,
    context: &Value,
    time_limit: Duration,
) -> Result<Value, ScriptError> {
    let io = |what: &str, e: std::io::Error| ScriptError::Thrown(format!("python: {what}: {e}"));
    let dir = tempfile::tempdir().map_err(|e| io("temporary folder", e))?;
    let wrapper = dir.path().join("promptlab_wrapper.py");
    std::fs::write(&wrapper, WRAPPER).map_err(|e| io("wrapper", e))?;
    let (script, function) = match source {
        Source::Inline(code) => {
            let script = dir.path().join("inline_assertion.py");
            std::fs::write(&script, inline_script(code)).map_err(|e| io("script", e))?;
            (script, "main".to_string())
        }
        Source::File { path, function, .. } => {
            let default = match role {
                Role::Assertion => "get_assert",
                Role::Transform | Role::VarsTransform => "get_transform",
            };
            (path.clone(), function.clone().unwrap_or(default.into()))
        }
    };
    let arguments = dir.path().join("arguments.json");
    std::fs::write(&arguments, json!([output, context]).to_string())
        .map_err(|e| io("arguments", e))?;
    let result = dir.path().join("result.json");
    let stderr_file = dir.path().join("stderr.txt");
    let stderr = std::fs::File::create(&stderr_file).map_err(|e| io("stderr", e))?;
    let mut child = Command::new(python)
        .arg(&wrapper)
        .arg(&script)
        .arg(&function)
        .arg(&arguments)
        .arg(&result)
        .stdin(Stdio::null())
        // A script's prints are its own business; they would garble the progress display.
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ScriptError::PythonMissing(python.to_string()),
            _ => io(python, e),
        })?;
    let deadline = Instant::now() + time_limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ScriptError::Timeout(time_limit));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(io("waiting for python", e)),
        }
    };
    if !status.success() {
        return Err(ScriptError::Thrown(traceback(&stderr_file, &script)));
    }
    let text = std::fs::read_to_string(&result).map_err(|e| io("result", e))?;
    let mut reply: Value =
        serde_json::from_str(&text).map_err(|e| ScriptError::BadResult(e.to_string()))?;
    Ok(reply["data"].take())
}

/// The traceback's last line (the exception), and the line of the script it points at.
fn traceback(stderr: &Path, script: &Path) -> String {
    let text = std::fs::read_to_string(stderr).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let last = lines
        .last()
        .map(|l| l.trim())
        .unwrap_or("python exited with an error");
    let name = script.file_name().map(|n| n.to_string_lossy().into_owned());
    let at = name.and_then(|name| {
        lines
            .iter()
            .rev()
            .find(|l| l.contains(&format!("{name}\", line")))
            .map(|l| l.trim().to_string())
    });
    match at {
        Some(at) => format!("{last} ({at})"),
        None => last.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn python_available() -> bool {
        Command::new(interpreter())
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    #[test]
    fn inline_scripts_follow_promptfoo() {
        assert_eq!(
            inline_script("output == 'x'"),
            "import json\n\ndef main(output, context):\n    return output == 'x'\n"
        );
        assert_eq!(
            inline_script("n = len(output)\nreturn n > 2"),
            "import json\n\ndef main(output, context):\n    n = len(output)\n    return n > 2\n"
        );
    }

    #[test]
    fn a_missing_python_is_named() {
        let err = run(
            "/nonexistent/python3",
            &Source::Inline("True".into()),
            Role::Assertion,
            &json!(""),
            &json!({}),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert_eq!(
            err,
            ScriptError::PythonMissing("/nonexistent/python3".into())
        );
        assert!(err.to_string().contains("PROMPTFOO_PYTHON"));
    }

    #[test]
    fn runs_inline_code_and_reports_errors() {
        if !python_available() {
            eprintln!("skipped: no python3");
            return;
        }
        let run = |code: &str, limit| {
            call(
                &Source::Inline(code.into()),
                Role::Assertion,
                &json!("hello"),
                &json!({"vars": {"n": 2}}),
                limit,
            )
        };
        let second = Duration::from_secs(20);
        assert_eq!(
            run("len(output) > context['vars']['n']", second).unwrap(),
            json!(true)
        );
        assert_eq!(
            run(
                "s = output.upper()\nreturn {'pass': False, 'score': 0.25, 'reason': s}",
                second
            )
            .unwrap(),
            json!({"pass": false, "score": 0.25, "reason": "HELLO"})
        );
        let err = run("1 / 0", second).unwrap_err();
        assert!(
            matches!(&err, ScriptError::Thrown(m) if m.contains("ZeroDivisionError")),
            "{err:?}"
        );
        let limit = Duration::from_millis(700);
        let err = run("while True:\n    pass", limit).unwrap_err();
        assert_eq!(err, ScriptError::Timeout(limit));
    }
}
