//! `list_images`: the images in a folder under the allowed roots, so the model can find
//! what to look at instead of guessing file names.

use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolError};

const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "gif", "webp"];
/// A folder of thousands of scans would flood the context; the count says so.
const MAX_LISTED: usize = 100;

pub struct ListImages;

impl Tool for ListImages {
    fn name(&self) -> &'static str {
        "list_images"
    }

    fn description(&self) -> String {
        "Lists the image files (PNG, JPEG, ...) in a folder of the project, e.g. \"eval-sets/data/photos\".".into()
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "dir": {"type": "string", "description": "folder path, relative to the project"}
            },
            "required": ["dir"],
            "additionalProperties": false
        })
    }

    fn call(&mut self, args: &Value, context: &ToolContext) -> Result<Value, ToolError> {
        let dir = args
            .get("dir")
            .and_then(Value::as_str)
            .ok_or_else(|| ToolError::Arguments("expected `dir`, a folder path".into()))?;
        let real = context.resolve(dir)?;
        if !real.is_dir() {
            return Err(ToolError::Path(format!("`{dir}` is not a folder")));
        }
        let entries = std::fs::read_dir(&real)
            .map_err(|e| ToolError::Failed(format!("cannot read `{dir}`: {e}")))?;
        let mut images: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            })
            .map(|p| {
                let shown =
                    std::path::Path::new(dir.trim()).join(p.file_name().unwrap_or_default());
                shown.display().to_string()
            })
            .collect();
        images.sort();
        let total = images.len();
        images.truncate(MAX_LISTED);
        Ok(json!({ "dir": dir, "count": total, "images": images }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_images_only_inside_the_roots() {
        let project = tempfile::tempdir().unwrap();
        let root = project.path();
        std::fs::create_dir_all(root.join("photos")).unwrap();
        for name in ["b.JPG", "a.png", "notes.txt"] {
            std::fs::write(root.join("photos").join(name), b"x").unwrap();
        }
        let context = ToolContext::new(vec![root.into()], root.into());
        let out = ListImages
            .call(&json!({"dir": "photos"}), &context)
            .unwrap();
        assert_eq!(out["images"], json!(["photos/a.png", "photos/b.JPG"]));
        assert_eq!(out["count"], 2);
        let err = ListImages.call(&json!({"dir": "/"}), &context).unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
        let err = ListImages
            .call(&json!({"dir": "photos/a.png"}), &context)
            .unwrap_err();
        assert!(err.to_string().contains("not a folder"), "{err}");
        let err = ListImages
            .call(&json!({"folder": "photos"}), &context)
            .unwrap_err();
        assert!(matches!(err, ToolError::Arguments(_)), "{err}");
    }
}
