//! The one place that parses YAML. `serde_yaml` is archived upstream; keeping every call
//! behind this module lets us swap the fork (`serde_norway` today) without touching the rest.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A YAML file that could not be read or did not have the expected shape.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("{path}: cannot read file: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}{location}: {message}")]
    Parse {
        path: PathBuf,
        /// `:line:column` when the parser knows where, empty otherwise.
        location: String,
        line: Option<usize>,
        message: String,
    },
}

impl YamlError {
    pub fn path(&self) -> &Path {
        match self {
            YamlError::Io { path, .. } | YamlError::Parse { path, .. } => path,
        }
    }
}

/// Reads and deserializes a YAML file, reporting the file, line and column of any error.
pub fn read_file<T: DeserializeOwned>(path: &Path) -> Result<T, YamlError> {
    let text = std::fs::read_to_string(path).map_err(|source| YamlError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    from_str(path, &text)
}

/// Collections nested deeper than this are refused before parsing: the parser takes
/// quadratic time on deep nesting (100,000 `[` took 50 s) before giving up, and no eval
/// set, prompt or catalog needs more than a handful of levels.
pub const MAX_DEPTH: usize = 128;

/// The line where `text` nests collections deeper than [`MAX_DEPTH`], if it does: flow
/// brackets and braces outside quotes and comments, and block sequences (`- - -`) opened
/// on one line.
fn too_deep(text: &str) -> Option<usize> {
    let mut depth: usize = 0;
    for (number, line) in text.lines().enumerate() {
        let mut quote: Option<char> = None;
        let mut block_dashes = 0;
        let mut leading = true;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match quote {
                Some('"') if c == '\\' => {
                    chars.next();
                }
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    '#' => break,
                    '"' | '\'' => quote = Some(c),
                    '[' | '{' => depth += 1,
                    ']' | '}' => depth = depth.saturating_sub(1),
                    '-' if leading && chars.peek().is_none_or(|n| *n == ' ') => block_dashes += 1,
                    ' ' | '\t' => {}
                    _ => leading = false,
                },
            }
            if depth > MAX_DEPTH || block_dashes > MAX_DEPTH {
                return Some(number + 1);
            }
        }
    }
    None
}

/// Deserializes YAML text that came from `path` (used only for error messages).
pub fn from_str<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, YamlError> {
    if let Some(line) = too_deep(text) {
        return Err(YamlError::Parse {
            path: path.to_path_buf(),
            location: format!(":{line}"),
            line: Some(line),
            message: format!("collections nest deeper than {MAX_DEPTH} levels"),
        });
    }
    serde_norway::from_str(text).map_err(|err| {
        let (location, line) = match err.location() {
            Some(loc) => (
                format!(":{}:{}", loc.line(), loc.column()),
                Some(loc.line()),
            ),
            None => (String::new(), None),
        };
        YamlError::Parse {
            path: path.to_path_buf(),
            location,
            line,
            message: clean_message(&err.to_string()),
        }
    })
}

/// Parses YAML text into a generic value (for files we edit while preserving other keys).
pub fn value_from_str(path: &Path, text: &str) -> Result<serde_json::Value, YamlError> {
    from_str(path, text)
}

/// serde_norway appends " at line X column Y" to its messages; we print the location
/// ourselves in the conventional `file:line:col` position, so drop the duplicate.
fn clean_message(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(idx) if message[idx..].contains("column") => message[..idx].to_string(),
        _ => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 20: deep nesting is refused at once, with the line, not after 50 s.
    #[test]
    fn issue_20_deep_nesting_is_refused_quickly() {
        let started = std::time::Instant::now();
        let path = Path::new("deep.yaml");
        for text in [
            format!("cases: {}", "[".repeat(100_000)),
            format!("a: 1\nb: {}1{}", "{x: ".repeat(5_000), "}".repeat(5_000)),
            format!("- {}1", "- ".repeat(1_000)),
        ] {
            let err = from_str::<serde_json::Value>(path, &text).unwrap_err();
            let message = err.to_string();
            assert!(message.contains("nest deeper than 128"), "{message}");
            assert!(message.starts_with("deep.yaml:"), "{message}");
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // Brackets inside quotes and comments do not count; ordinary nesting parses.
        let fine = format!(
            "a: '{}'\nb: [[1], {{c: [2]}}] # {}\n",
            "[".repeat(500),
            "[".repeat(500)
        );
        let value: serde_json::Value = from_str(path, &fine).unwrap();
        assert_eq!(value["b"][1]["c"][0], 2);
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
    }

    #[test]
    fn unknown_key_names_file_line_and_column() {
        let err = from_str::<Sample>(Path::new("x.yaml"), "name: a\nnmae: b\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("x.yaml:2:"), "{text}");
        assert!(text.contains("unknown field `nmae`"), "{text}");
        assert!(!text.contains(" at line "), "{text}");
    }

    #[test]
    fn syntax_error_has_location() {
        let err = from_str::<Sample>(Path::new("y.yaml"), "name: [unclosed\n").unwrap_err();
        assert!(
            matches!(err, YamlError::Parse { line: Some(_), .. }),
            "{err}"
        );
    }
}
