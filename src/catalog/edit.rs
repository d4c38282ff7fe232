//! Adds and removes catalog entries without rewriting `models.yaml`: an entry goes in as
//! lines at the end of the `models:` block and comes out as its own lines, so comments
//! and formatting stay as written. The result must load before it replaces the file,
//! atomically.

use std::io::Write;
use std::path::Path;

use super::{CatalogError, ModelCatalog};

fn invalid(path: &Path, name: &str, problem: String) -> CatalogError {
    CatalogError::BadEntry {
        source_file: path.to_path_buf(),
        name: name.to_string(),
        problem,
    }
}

/// Adds `name` with `entry` (a JSON object of its fields) to the catalog at `path`,
/// creating the file if needed. Returns the catalog as loaded afterwards.
pub fn add_entry(
    path: &Path,
    name: &str,
    entry: &serde_json::Value,
) -> Result<ModelCatalog, CatalogError> {
    let text = if path.exists() {
        std::fs::read_to_string(path)
            .map_err(|e| invalid(path, name, format!("cannot read the catalog: {e}")))?
    } else {
        "# The model catalog: short names for model files.\nmodels:\n".to_string()
    };
    if path.exists() && ModelCatalog::load(path)?.models.contains_key(name) {
        return Err(invalid(
            path,
            name,
            "is already in the catalog: choose another --name, or `promptlab models rm` it first"
                .into(),
        ));
    }
    // JSON is YAML flow syntax: one line, every string escaped correctly.
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    let key = if plain {
        name.to_string()
    } else {
        serde_json::Value::from(name).to_string()
    };
    let item = format!("  {key}: {entry}");
    let lines: Vec<&str> = text.lines().collect();
    let updated = match lines.iter().position(|l| l.trim_end() == "models:") {
        None => format!("{}\nmodels:\n{item}\n", text.trim_end()),
        Some(start) => {
            // The block ends at the next line that is not indented, blank or a comment.
            let end = lines[start + 1..]
                .iter()
                .position(|l| !l.is_empty() && !l.starts_with([' ', '#']))
                .map_or(lines.len(), |i| start + 1 + i);
            // Right after the block's last entry: blank lines and unindented comments
            // before the next section belong to that section.
            let mut at = end;
            while at > start + 1
                && (lines[at - 1].trim().is_empty() || lines[at - 1].starts_with('#'))
            {
                at -= 1;
            }
            let mut out: Vec<String> = lines[..at].iter().map(|l| l.to_string()).collect();
            out.push(item);
            out.extend(lines[at..].iter().map(|l| l.to_string()));
            out.join("\n") + "\n"
        }
    };
    replace(path, name, &updated)
}

/// Removes `name`'s lines from the catalog at `path`.
pub fn remove_entry(path: &Path, name: &str) -> Result<ModelCatalog, CatalogError> {
    let catalog = ModelCatalog::load(path)?;
    if !catalog.models.contains_key(name) {
        return Err(catalog
            .resolve(name)
            .err()
            .unwrap_or_else(|| invalid(path, name, "is not in the catalog".into())));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(path, name, format!("cannot read the catalog: {e}")))?;
    let lines: Vec<&str> = text.lines().collect();
    let key = |l: &str| {
        let trimmed = l.trim_start();
        let indent = l.len() - trimmed.len();
        let key = trimmed.split(':').next().unwrap_or_default().trim();
        (indent, key.trim_matches(['"', '\'']).to_string())
    };
    let start = lines
        .iter()
        .position(|l| {
            let (indent, k) = key(l);
            indent > 0 && !l.trim_start().starts_with('#') && k == name && l.contains(':')
        })
        .ok_or_else(|| {
            invalid(
                path,
                name,
                "cannot find its lines to remove: edit the file by hand".into(),
            )
        })?;
    let indent = key(lines[start]).0;
    let end = lines[start + 1..]
        .iter()
        .position(|l| {
            let trimmed = l.trim_start();
            !trimmed.is_empty() && l.len() - trimmed.len() <= indent
        })
        .map_or(lines.len(), |i| start + 1 + i);
    // Blank lines after the entry separate it from the next: they stay.
    let mut end = end;
    while end > start + 1 && lines[end - 1].trim().is_empty() {
        end -= 1;
    }
    let mut out: Vec<&str> = lines[..start].to_vec();
    out.extend(&lines[end..]);
    replace(path, name, &(out.join("\n") + "\n"))
}

fn replace(path: &Path, name: &str, text: &str) -> Result<ModelCatalog, CatalogError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| invalid(path, name, format!("cannot create {}: {e}", dir.display())))?;
    let mut file = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile_in(dir)
        .map_err(|e| invalid(path, name, format!("cannot write beside the catalog: {e}")))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .map_err(|e| invalid(path, name, format!("cannot write beside the catalog: {e}")))?;
    // Loaded from beside the original, so relative paths resolve the same way.
    let loaded = ModelCatalog::load(file.path()).map_err(|e| {
        invalid(
            path,
            name,
            format!("the catalog would no longer load, so it was left as it was: {e}"),
        )
    })?;
    file.persist(path)
        .map_err(|e| invalid(path, name, format!("cannot replace the catalog: {e}")))?;
    Ok(ModelCatalog {
        source: Some(path.to_path_buf()),
        ..loaded
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_go_in_and_out_leaving_the_rest_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("models.yaml");
        let original = "# my models\nmodels:\n  a:\n    path: a.gguf  # keep me\n\n  b:\n    path: b.gguf\n\n# tools below\ntools: {}\n";
        std::fs::write(&path, original).unwrap();
        let catalog = add_entry(&path, "c", &serde_json::json!({"path": "c.gguf"})).unwrap();
        assert!(catalog.models.contains_key("c"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("  c: {\"path\":\"c.gguf\"}\n\n# tools below"),
            "{text}"
        );
        assert!(text.contains("# keep me"));
        let err = add_entry(&path, "c", &serde_json::json!({"path": "x"})).unwrap_err();
        assert!(err.to_string().contains("already in the catalog"), "{err}");

        remove_entry(&path, "c").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
        let catalog = remove_entry(&path, "a").unwrap();
        assert_eq!(catalog.models.keys().collect::<Vec<_>>(), ["b"]);
        let err = remove_entry(&path, "bb").unwrap_err().to_string();
        assert!(err.contains("did you mean `b`"), "{err}");

        let fresh = dir.path().join("new/models.yaml");
        add_entry(&fresh, "z", &serde_json::json!({"path": "z.gguf"})).unwrap();
        assert!(ModelCatalog::load(&fresh).unwrap().models.contains_key("z"));
    }
}
