//! Adds a case to an eval set file without rewriting it: the case goes in as one line at
//! the end of the `cases:` list, so comments, key order and formatting stay as written.
//! The result is loaded before it replaces the file, and it replaces it atomically.

use std::io::Write;
use std::path::Path;

use super::{EvalSet, EvalSetError};

/// Appends `case` (a JSON object: `id`, `vars`, `expected`, `tags`…) to the eval set at
/// `path` and returns the set as loaded afterwards.
pub fn append_case(path: &Path, case: &serde_json::Value) -> Result<EvalSet, EvalSetError> {
    let invalid = |message: String| EvalSetError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(format!("cannot read the eval set: {e}")))?;
    let updated = with_case(&text, case).map_err(|e| invalid(e.to_string()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile_in(dir)
        .map_err(|e| invalid(format!("cannot write beside the eval set: {e}")))?;
    file.write_all(updated.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .map_err(|e| invalid(format!("cannot write beside the eval set: {e}")))?;
    // Loaded from beside the original, so `cases_from` paths resolve the same way.
    let loaded = EvalSet::load(file.path()).map_err(|e| {
        invalid(format!(
            "the set would no longer load with the new case, so it was left as it was: {e}"
        ))
    })?;
    file.persist(path)
        .map_err(|e| invalid(format!("cannot replace the eval set: {e}")))?;
    Ok(EvalSet {
        source: path.to_path_buf(),
        ..loaded
    })
}

/// An eval set whose `cases:` list is written inline, where a case cannot be added as one
/// line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "its `cases:` is written inline (`cases: [...]`); add the case by hand or write the list one item per line"
)]
pub struct InlineCasesError;

/// The file's text with `case` as the last item of its top-level `cases:` block list.
fn with_case(text: &str, case: &serde_json::Value) -> Result<String, InlineCasesError> {
    // JSON is YAML flow syntax: one line, any strings escaped correctly.
    let item = case.to_string();
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines
        .iter()
        .position(|l| l.trim_end().starts_with("cases:"))
    else {
        let mut out = text.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("cases:\n  - {item}\n"));
        return Ok(out);
    };
    let rest = lines[start].trim_end()["cases:".len()..].trim();
    if !rest.is_empty() && !rest.starts_with('#') {
        if rest == "[]" {
            let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            out[start] = format!("cases:\n  - {item}");
            return Ok(out.join("\n") + "\n");
        }
        return Err(InlineCasesError);
    }
    // The block ends at the next top-level line (a key, not a comment or blank line).
    let end = lines[start + 1..]
        .iter()
        .position(|l| !l.is_empty() && !l.starts_with([' ', '\t', '#', '-']))
        .map_or(lines.len(), |i| start + 1 + i);
    // Insert after the block's last item line (blank lines and comments at the margin
    // that follow it belong to what comes next), indented like its items.
    let mut at = end;
    while at > start + 1 && (lines[at - 1].trim().is_empty() || lines[at - 1].starts_with('#')) {
        at -= 1;
    }
    let indent = lines[start + 1..end]
        .iter()
        .find_map(|l| {
            let trimmed = l.trim_start();
            trimmed
                .starts_with("- ")
                .then(|| &l[..l.len() - trimmed.len()])
        })
        .unwrap_or("  ");
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    out.insert(at, format!("{indent}- {item}"));
    Ok(out.join("\n") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set_file(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
        let path = dir.path().join("set.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn the_case_goes_last_in_the_list_and_the_rest_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let text = "name: s  # keep me\nprompts: [p]\ncases:\n    - id: a\n      vars: {x: 1}\n\n# trailing comment\nmetrics: {}\n";
        let path = set_file(&dir, text);
        let set =
            append_case(&path, &json!({"id": "b", "vars": {"x": "two: \"quoted\""}})).unwrap();
        let ids: Vec<&str> = set.cases.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(set.cases[1].vars["x"], "two: \"quoted\"");
        let after = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            after,
            "name: s  # keep me\nprompts: [p]\ncases:\n    - id: a\n      vars: {x: 1}\n    - {\"id\":\"b\",\"vars\":{\"x\":\"two: \\\"quoted\\\"\"}}\n\n# trailing comment\nmetrics: {}\n"
        );
    }

    #[test]
    fn a_set_without_cases_gets_a_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = set_file(&dir, "name: s\nprompts: [p]");
        let set = append_case(&path, &json!({"id": "first", "vars": {}})).unwrap();
        assert_eq!(set.cases.len(), 1);
        let path = set_file(&dir, "name: s\nprompts: [p]\ncases: []\n");
        assert_eq!(
            append_case(&path, &json!({"id": "x"})).unwrap().cases.len(),
            1
        );
    }

    #[test]
    fn an_inline_list_or_a_case_that_breaks_the_set_leaves_the_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let text = "name: s\nprompts: [p]\ncases: [{id: a}]\n";
        let path = set_file(&dir, text);
        let err = append_case(&path, &json!({"id": "b"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("inline"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);

        let text = "name: s\nprompts: [p]\ncases:\n  - id: a\n";
        let path = set_file(&dir, text);
        let err = append_case(&path, &json!({"id": "b", "bogus": 1}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("left as it was"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }
}
