//! `file://` references in promptfoo tests: variable values and assertion values read from
//! files, and test files (YAML, JSON, JSONL, CSV), read as promptfoo reads them.

use std::path::Path;

use serde_json::{Map, Value};

use super::{RawTest, csv_tests, test_object};
use crate::dialect::js;
use crate::promptfoo::{PromptfooError, Reader};

/// `file://` variable values: text files as text, JSON and YAML parsed.
pub(super) fn load_var_files(
    reader: &mut Reader,
    mut vars: Map<String, Value>,
    origin: &str,
) -> Result<Map<String, Value>, PromptfooError> {
    for (key, value) in vars.iter_mut() {
        let Some(reference) = value.as_str().filter(|s| s.starts_with("file://")) else {
            continue;
        };
        let at = format!("{origin}: vars.{key}");
        if let Some(loaded) = file_value(reader, reference, &at)? {
            *value = loaded;
        }
    }
    Ok(vars)
}

/// The contents of a `file://` reference as a value, or None when unsupported.
pub(super) fn file_value(
    reader: &mut Reader,
    reference: &str,
    at: &str,
) -> Result<Option<Value>, PromptfooError> {
    let files = reader.files(reference, at)?;
    let [file] = files.as_slice() else {
        return Err(reader.invalid(format!("{at}: `{reference}` matches several files")));
    };
    let extension = extension(file);
    match extension.as_str() {
        "js" | "cjs" | "mjs" | "ts" | "py" => {
            reader.unsupported(format!("{at}: values computed by {}", file.display()));
            Ok(None)
        }
        "png" | "jpg" | "jpeg" | "gif" | "webp" | "pdf" => {
            reader.unsupported(format!(
                "{at}: binary file {} (image prompts)",
                file.display()
            ));
            Ok(None)
        }
        // promptfoo's renderPrompt: YAML becomes compact JSON text; every other file,
        // JSON included, is its text trimmed at both ends.
        "yaml" | "yml" => {
            let text = reader.read_text(file, at)?;
            let value: Value = crate::yaml::from_str(file, &text)?;
            Ok(Some(Value::String(js::stringify(&value, 0))))
        }
        _ => Ok(Some(Value::String(
            reader.read_text(file, at)?.trim().to_string(),
        ))),
    }
}

/// A file referenced by an assertion's `value` or a test's `vars`: JSON and YAML parsed,
/// text as it is (promptfoo's `processFileReference`).
pub(super) fn assertion_file_value(
    reader: &mut Reader,
    reference: &str,
    at: &str,
) -> Result<Option<Value>, PromptfooError> {
    let (path, function) = split_function(reference);
    let files = reader.files(path, at)?;
    let [file] = files.as_slice() else {
        return Err(reader.invalid(format!("{at}: `{reference}` matches several files")));
    };
    match extension(file).as_str() {
        "js" | "cjs" | "mjs" | "ts" | "py" | "rb" => {
            let what = match function {
                Some(f) => format!("function `{f}` of {}", file.display()),
                None => file.display().to_string(),
            };
            reader.unsupported(format!("{at}: assertion values computed by {what}"));
            Ok(None)
        }
        "json" => {
            let text = reader.read_text(file, at)?;
            serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| reader.invalid(format!("{at}: {}: invalid JSON: {e}", file.display())))
        }
        "yaml" | "yml" => {
            let text = reader.read_text(file, at)?;
            Ok(Some(crate::yaml::from_str(file, &text)?))
        }
        _ => Ok(Some(Value::String(reader.read_text(file, at)?))),
    }
}

/// `file://x.js:fn` names a function in a file.
pub(super) fn split_function(reference: &str) -> (&str, Option<&str>) {
    let path = reference.trim_start_matches("file://");
    match path.rsplit_once(':') {
        Some((_, function)) if !function.is_empty() && !function.contains(['/', '\\', '.']) => (
            &reference[..reference.len() - function.len() - 1],
            Some(function),
        ),
        _ => (reference, None),
    }
}

/// What promptfoo's renderPrompt does to the variables before rendering (in place, so
/// assertions see it too): one trailing newline is removed from each string, then
/// `{{ name }}` references between variables are substituted (five rounds at most).
pub(super) fn prepare_vars(mut vars: Map<String, Value>) -> Map<String, Value> {
    static REFERENCE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\{\{\s*(\w+)\s*\}\}").expect("valid regex")
    });
    for value in vars.values_mut() {
        if let Value::String(s) = value
            && s.ends_with('\n')
        {
            s.pop();
        }
    }
    for _ in 0..5 {
        let mut changed = false;
        let keys: Vec<String> = vars.keys().cloned().collect();
        for key in keys {
            let Some(Value::String(text)) = vars.get(&key) else {
                continue;
            };
            let Some(caps) = REFERENCE.captures(text) else {
                continue;
            };
            let (Some(whole), Some(name)) = (caps.get(0), caps.get(1)) else {
                continue;
            };
            let Some(replacement) = vars.get(name.as_str()).map(js::string) else {
                continue;
            };
            let mut updated = text.clone();
            updated.replace_range(whole.range(), &replacement);
            vars.insert(key, Value::String(updated));
            changed = true;
        }
        if !changed {
            break;
        }
    }
    vars
}

pub(super) fn extension(file: &Path) -> String {
    file.extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}

pub(super) fn test_files(
    reader: &mut Reader,
    reference: &str,
    at: &str,
) -> Result<Vec<RawTest>, PromptfooError> {
    if !reference.starts_with("file://") {
        return Err(reader.invalid(format!(
            "{at}: expected a test object or a file:// path, got {reference:?}"
        )));
    }
    let mut tests = Vec::new();
    for file in reader.files(reference, at)? {
        let shown = file.display().to_string();
        match extension(&file).as_str() {
            "csv" => tests.extend(csv_tests(reader, &file)?),
            "jsonl" => {
                let text = reader.read_text(&file, at)?;
                for (n, line) in text.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let origin = format!("{shown}:{}", n + 1);
                    let value: Value = serde_json::from_str(line)
                        .map_err(|e| reader.invalid(format!("{origin}: invalid JSON: {e}")))?;
                    tests.push(test_object(reader, &value, &origin)?);
                }
            }
            "json" | "yaml" | "yml" => {
                let text = reader.read_text(&file, at)?;
                let value: Value = crate::yaml::from_str(&file, &text)?;
                let items = match value {
                    Value::Array(items) => items,
                    object @ Value::Object(_) => vec![object],
                    _ => {
                        return Err(reader.invalid(format!("{shown}: expected a list of tests")));
                    }
                };
                for (i, item) in items.iter().enumerate() {
                    tests.push(test_object(
                        reader,
                        item,
                        &format!("{shown}: test {}", i + 1),
                    )?);
                }
            }
            other => {
                reader.unsupported(format!("{at}: tests from a .{other} file ({shown})"));
            }
        }
    }
    Ok(tests)
}
