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

/// Deserializes YAML text that came from `path` (used only for error messages).
pub fn from_str<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, YamlError> {
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
