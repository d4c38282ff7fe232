//! Writes a candidate into its prompt file as a new variant: one block inserted at the end
//! of the file's `variants:` mapping, nothing else touched (comments and formatting
//! included). The result must load with every earlier prompt exactly as before and the new
//! variant exactly as evaluated, or the file is left as it was; it replaces the file
//! atomically. A file without variants gets none: its prompt would stop being a column
//! of its own, so the candidate goes to a new file beside it instead.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::params::GenerationParams;
use crate::prompt::{MessageTemplate, Prompt, PromptBody};

#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct VariantError {
    pub path: PathBuf,
    pub message: String,
}

/// Where the candidate went and the prompt id it has there.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub path: PathBuf,
    pub prompt_id: String,
    /// A new prompt file (the original has no `variants:`).
    pub new_file: bool,
}

#[derive(Serialize)]
struct VariantBlock<'a> {
    description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<&'a [MessageTemplate]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a GenerationParams>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema: Option<&'a serde_json::Value>,
}

#[derive(Serialize)]
struct PromptFile<'a> {
    name: &'a str,
    #[serde(flatten)]
    block: VariantBlock<'a>,
}

/// Writes `candidate` as variant `variant` of the file `base` came from.
pub fn write_variant(
    base: &Prompt,
    candidate: &Prompt,
    variant: &str,
    description: &str,
) -> Result<Written, VariantError> {
    let path = &base.source;
    let fail = |message: String| VariantError {
        path: path.clone(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let before = Prompt::parse_file(path, &text).map_err(|e| fail(e.to_string()))?;
    if before.iter().any(|p| p.variant.as_deref() == Some(variant)) {
        return Err(fail(format!("it already has a variant `{variant}`")));
    }
    let Some(variants_line) = text
        .lines()
        .position(|l| l.trim_end() == "variants:" || l.starts_with("variants: #"))
    else {
        return new_file(base, candidate, variant, description);
    };
    let lines: Vec<&str> = text.lines().collect();
    // The block ends after its last indented line before the next top-level key: blank
    // lines and column-0 comments after it belong to what follows.
    let next_key = lines[variants_line + 1..]
        .iter()
        .position(|l| {
            !l.is_empty() && !l.starts_with(' ') && !l.starts_with('#') && !l.starts_with('\t')
        })
        .map_or(lines.len(), |i| variants_line + 1 + i);
    let end = lines[variants_line + 1..next_key]
        .iter()
        .rposition(|l| l.starts_with([' ', '\t']) && !l.trim().is_empty())
        .map_or(variants_line + 1, |i| variants_line + 2 + i);
    let indent = lines[variants_line + 1..end]
        .iter()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map_or(2, |l| l.len() - l.trim_start().len())
        .max(1);
    // First without params and schema; they are added when the file's own would not give
    // the candidate's (a variant's overrides).
    for explicit in [false, true] {
        let block = block_yaml(candidate, description, explicit).map_err(fail)?;
        let mut out: Vec<String> = lines[..end].iter().map(|l| l.to_string()).collect();
        out.push(format!("{}{variant}:", " ".repeat(indent)));
        out.extend(
            block
                .lines()
                .map(|l| format!("{}{l}", " ".repeat(indent * 2))),
        );
        out.extend(lines[end..].iter().map(|l| l.to_string()));
        let updated = out.join("\n") + "\n";
        let after = match Prompt::parse_file(path, &updated) {
            Ok(after) => after,
            Err(e) => {
                return Err(fail(format!(
                    "the file would not load with the variant: {e}"
                )));
            }
        };
        let unchanged = before.iter().all(|p| after.iter().any(|q| q == p));
        if !unchanged {
            return Err(fail(
                "inserting the variant would change another prompt of the file, so it was left as it was".into(),
            ));
        }
        let id = format!("{}:{variant}", base.name);
        let Some(new) = after.iter().find(|p| p.id == id) else {
            return Err(fail("the variant did not load".into()));
        };
        if new.body != candidate.body {
            return Err(fail(
                "the variant loads with other messages than evaluated".into(),
            ));
        }
        if new.params == candidate.params && new.schema == candidate.schema {
            replace(path, &updated).map_err(fail)?;
            return Ok(Written {
                path: path.clone(),
                prompt_id: id,
                new_file: false,
            });
        }
        if explicit {
            break;
        }
    }
    Err(fail(
        "the variant would not load with the parameters and schema it was evaluated with".into(),
    ))
}

fn block_yaml(candidate: &Prompt, description: &str, explicit: bool) -> Result<String, String> {
    let (messages, completion) = match &candidate.body {
        PromptBody::Chat(messages) => (Some(messages.as_slice()), None),
        PromptBody::Completion(text) | PromptBody::Promptfoo(text) => (None, Some(text.as_str())),
    };
    let block = VariantBlock {
        description,
        messages,
        completion,
        params: (explicit && candidate.params != GenerationParams::default())
            .then_some(&candidate.params),
        schema: if explicit {
            candidate.schema.as_ref()
        } else {
            None
        },
    };
    serde_norway::to_string(&block).map_err(|e| format!("cannot write the variant: {e}"))
}

fn new_file(
    base: &Prompt,
    candidate: &Prompt,
    variant: &str,
    description: &str,
) -> Result<Written, VariantError> {
    let name = format!("{}-{variant}", base.name);
    let dir = base.source.parent().unwrap_or(Path::new("."));
    let path = dir.join(format!("{name}.yaml"));
    let fail = |message: String| VariantError {
        path: path.clone(),
        message,
    };
    if path.exists() {
        return Err(fail("already exists".into()));
    }
    let (messages, completion) = match &candidate.body {
        PromptBody::Chat(messages) => (Some(messages.as_slice()), None),
        PromptBody::Completion(text) | PromptBody::Promptfoo(text) => (None, Some(text.as_str())),
    };
    let file = PromptFile {
        name: &name,
        block: VariantBlock {
            description,
            messages,
            completion,
            params: (candidate.params != GenerationParams::default()).then_some(&candidate.params),
            schema: candidate.schema.as_ref(),
        },
    };
    let text = serde_norway::to_string(&file).map_err(|e| fail(e.to_string()))?;
    let loaded = Prompt::parse_file(&path, &text).map_err(|e| fail(e.to_string()))?;
    if loaded.len() != 1 || loaded[0].body != candidate.body {
        return Err(fail(
            "the new prompt file would not load as evaluated".into(),
        ));
    }
    replace(&path, &text).map_err(fail)?;
    Ok(Written {
        path: path.clone(),
        prompt_id: name,
        new_file: true,
    })
}

fn replace(path: &Path, text: &str) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile_in(dir)
        .map_err(|e| format!("cannot write beside it: {e}"))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .map_err(|e| format!("cannot write beside it: {e}"))?;
    file.persist(path)
        .map_err(|e| format!("cannot replace it: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimize::version::{Demo, Version};

    const FILE: &str = "name: sentiment\n# a comment that stays\nparams:\n  temperature: 0\nvariants:\n  zero-shot:\n    description: Instructions only.\n    messages:\n      - role: system\n        content: Classify.\n      - role: user\n        content: \"Review: {{ review }}\"\n\n  tuned:\n    params:\n      max_tokens: 9\n    messages:\n      - role: user\n        content: \"{{ review }}\"\n\n# trailing comment\n";

    fn setup() -> (tempfile::TempDir, Vec<Prompt>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sentiment.yaml");
        std::fs::write(&path, FILE).unwrap();
        let prompts = Prompt::load_file(&path).unwrap();
        (dir, prompts)
    }

    #[test]
    fn the_winner_is_one_inserted_block_and_nothing_else_changes() {
        let (dir, prompts) = setup();
        let base = prompts
            .iter()
            .find(|p| p.id == "sentiment:zero-shot")
            .unwrap();
        let version = Version {
            demos: vec![Demo {
                case_id: "3".into(),
                input: "Review: {{ not a variable }}".into(),
                output: "{\"sentiment\": \"neutral\"}".into(),
            }],
            ..Version::of(base)
        }
        .with_instruction("Classify the review.\nAnswer: \"positive\" or 'negative'.");
        let candidate = version.to_prompt(base, "opt1-4", "");
        let written = write_variant(base, &candidate, "opt1-4", "optimize 1").unwrap();
        assert_eq!(written.prompt_id, "sentiment:opt1-4");
        let after = std::fs::read_to_string(dir.path().join("sentiment.yaml")).unwrap();
        // The change is one inserted run of lines, each indented under `variants:`, and
        // it sits before the file's trailing blank line and comment.
        let diff = similar::TextDiff::from_lines(FILE, &after);
        let mut runs = 0;
        let mut previous_inserted = false;
        for change in diff.iter_all_changes() {
            assert_ne!(change.tag(), similar::ChangeTag::Delete, "{change:?}");
            let inserted = change.tag() == similar::ChangeTag::Insert;
            if inserted {
                assert!(change.value().starts_with("  "), "{change:?}");
                runs += usize::from(!previous_inserted);
            }
            previous_inserted = inserted;
        }
        assert_eq!(runs, 1, "{after}");
        assert!(after.ends_with("\n\n# trailing comment\n"));
        let loaded = Prompt::load_file(&dir.path().join("sentiment.yaml")).unwrap();
        assert_eq!(loaded.len(), 3);
        let new = loaded.iter().find(|p| p.id == "sentiment:opt1-4").unwrap();
        assert_eq!(new.body, candidate.body);
        for p in &prompts {
            assert!(loaded.contains(p));
        }
        // Writing the same name again is refused and changes nothing.
        assert!(write_variant(base, &candidate, "opt1-4", "again").is_err());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("sentiment.yaml")).unwrap(),
            after
        );
    }

    #[test]
    fn a_variant_with_its_own_params_keeps_them() {
        let (dir, prompts) = setup();
        let base = prompts.iter().find(|p| p.id == "sentiment:tuned").unwrap();
        let candidate = Version::of(base)
            .with_instruction("Review text: {{ review }}")
            .to_prompt(base, "opt2-1", "");
        write_variant(base, &candidate, "opt2-1", "d").unwrap();
        let loaded = Prompt::load_file(&dir.path().join("sentiment.yaml")).unwrap();
        let new = loaded.iter().find(|p| p.id == "sentiment:opt2-1").unwrap();
        assert_eq!(new.params.max_tokens, Some(9));
        assert_eq!(new.params, base.params);
    }

    #[test]
    fn a_file_without_variants_gets_a_new_file_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("capital.yaml");
        let original = "messages:\n  - role: user\n    content: \"Capital of {{ country }}?\"\n";
        std::fs::write(&path, original).unwrap();
        let base = &Prompt::load_file(&path).unwrap()[0];
        let candidate = Version::of(base)
            .with_instruction("What is the capital city of {{ country }}? One word.")
            .to_prompt(base, "opt1-2", "");
        let written = write_variant(base, &candidate, "opt1-2", "d").unwrap();
        assert!(written.new_file);
        assert_eq!(written.prompt_id, "capital-opt1-2");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
        let loaded = Prompt::load_file(&written.path).unwrap();
        assert_eq!(loaded[0].body, candidate.body);
    }
}
