//! Reports of a run: a terminal summary, and files whose format follows the extension
//! (`.json`, `.jsonl`, `.csv`, `.md`, `.xml` as JUnit, `.html` self-contained). Files are written to a temporary
//! name and renamed into place, so an interrupted write never leaves a file that looks
//! complete.

mod data;
mod html;
mod junit;
mod learning_curve;
mod markdown;
mod promptfoo_json;
mod sweep;
mod table;
mod training;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::run::RunResult;

pub use learning_curve::learning_curve_html;
pub use markdown::baseline_markdown;
pub use table::{TableStyle, Verdict, failures_text, judging_text, summary_table};
pub use training::training_html;

/// The file formats a run can be written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Jsonl,
    Csv,
    Markdown,
    Junit,
    Html,
    /// promptfoo's `eval -o out.json` shape, for a path ending in `.promptfoo.json`.
    PromptfooJson,
}

impl Format {
    pub const EXTENSIONS: &'static str =
        ".json, .promptfoo.json (promptfoo's format), .jsonl, .csv, .md, .xml (JUnit), .html";

    /// The format a path asks for; `-` (standard output) is JSON.
    pub fn from_path(path: &Path) -> Option<Format> {
        if is_stdout(path) {
            return Some(Format::Json);
        }
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        if name.ends_with(".promptfoo.json") {
            return Some(Format::PromptfooJson);
        }
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "json" => Some(Format::Json),
            "jsonl" => Some(Format::Jsonl),
            "csv" => Some(Format::Csv),
            "md" | "markdown" => Some(Format::Markdown),
            "xml" => Some(Format::Junit),
            "html" | "htm" => Some(Format::Html),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "{path}: unknown report format: expected one of {}",
        Format::EXTENSIONS
    )]
    UnknownFormat { path: PathBuf },
    #[error("-o - given twice: standard output can take one report")]
    StdoutTwice,
    #[error("{path}: cannot write report: {message}")]
    Write { path: PathBuf, message: String },
    #[error("{path}: cannot write report: {source}")]
    Render {
        path: PathBuf,
        #[source]
        source: RenderError,
    },
}

/// A report that could not be rendered to bytes; the message is the serializer's.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Csv(#[from] csv::Error),
    /// Flushing the CSV writer's buffer.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Junit(#[from] quick_junit::SerializeError),
}

/// Writes a sweep report (`.html`, `.json` or `.md`) atomically.
pub fn write_sweep(report: &crate::sweep::SweepReport, path: &Path) -> Result<(), ReportError> {
    let bytes = sweep_bytes(report, path)?;
    write_bytes(path, &bytes)
}

/// A sweep report in the format `path` names (`-`: JSON, for standard output).
pub fn sweep_bytes(
    report: &crate::sweep::SweepReport,
    path: &Path,
) -> Result<Vec<u8>, ReportError> {
    let fail = |source: RenderError| ReportError::Render {
        path: path.to_path_buf(),
        source,
    };
    let extension = if is_stdout(path) {
        Some("json")
    } else {
        path.extension().and_then(|e| e.to_str())
    };
    let text = match extension {
        Some("html") => sweep::html(report).map_err(fail)?,
        Some("json") => serde_json::to_string_pretty(report).map_err(|e| fail(e.into()))?,
        Some("md") => sweep::markdown(report),
        _ => {
            return Err(ReportError::UnknownFormat {
                path: path.to_path_buf(),
            });
        }
    };
    Ok(text.into_bytes())
}

/// Renders the report in memory.
fn render(result: &RunResult, format: Format) -> Result<Vec<u8>, RenderError> {
    match format {
        Format::Json => Ok(serde_json::to_vec_pretty(result)?),
        Format::Jsonl => data::jsonl(result),
        Format::Csv => data::csv(result),
        Format::Markdown => Ok(markdown::render(result).into_bytes()),
        Format::Junit => junit::render(result),
        Format::Html => html::render(result).map(String::into_bytes),
        Format::PromptfooJson => promptfoo_json::render(result),
    }
}

/// Whether an output path means standard output (`-o -`).
pub fn is_stdout(path: &Path) -> bool {
    path == Path::new("-")
}

/// The report as bytes, for a caller that writes it somewhere other than a file.
pub fn to_bytes(result: &RunResult, format: Format) -> Result<Vec<u8>, ReportError> {
    render(result, format).map_err(|source| ReportError::Render {
        path: PathBuf::from("-"),
        source,
    })
}

/// Writes the report to `path` atomically.
pub fn write(result: &RunResult, path: &Path) -> Result<(), ReportError> {
    let format = Format::from_path(path).ok_or_else(|| ReportError::UnknownFormat {
        path: path.to_path_buf(),
    })?;
    let bytes = render(result, format).map_err(|source| ReportError::Render {
        path: path.to_path_buf(),
        source,
    })?;
    write_bytes(path, &bytes)
}

/// Writes to a temporary file beside `path` and renames it into place.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let fail = |message: String| ReportError::Write {
        path: path.to_path_buf(),
        message,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Reports are shared artefacts (CI uploads them): readable like any file written
    // with the user's umask, not owner-only like a fresh temporary file.
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let mut file = builder.tempfile_in(dir).map_err(|e| fail(e.to_string()))?;
    file.write_all(bytes).map_err(|e| fail(e.to_string()))?;
    file.persist(path).map_err(|e| fail(e.error.to_string()))?;
    Ok(())
}

/// Checks every output path has a known format before a run starts, and that standard
/// output is asked for at most once.
pub fn check_paths(paths: &[PathBuf]) -> Result<(), ReportError> {
    if paths.iter().filter(|path| is_stdout(path)).count() > 1 {
        return Err(ReportError::StdoutTwice);
    }
    for path in paths {
        if Format::from_path(path).is_none() {
            return Err(ReportError::UnknownFormat { path: path.clone() });
        }
    }
    Ok(())
}

/// A short excerpt for one-line displays.
pub(crate) fn excerpt(text: &str, max_chars: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max_chars {
        flat
    } else {
        let cut: String = flat.chars().take(max_chars.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}
