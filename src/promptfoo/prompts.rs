//! promptfoo's `prompts`: raw strings, `file://` paths and globs (text files split on
//! `---` lines, JSON or YAML message lists), `{id, label, raw, config}` objects, and the
//! older `{path: label}` map. Each becomes a promptlab prompt whose template is rendered
//! whole, as promptfoo renders it with Nunjucks.

use std::path::Path;

use serde_json::Value;

use super::{PromptfooError, Reader};
use crate::params::GenerationParams;
use crate::prompt::{MessageTemplate, Prompt, PromptBody};

/// One prompt before it gets its id.
struct Draft {
    label: Option<String>,
    /// Name used when there is no label: the file stem, or `prompt`.
    stem: String,
    text: String,
    /// Set for `{messages: [...]}` prompts, whose messages are templates of their own.
    messages: Option<Vec<MessageTemplate>>,
    params: GenerationParams,
    schema: Option<Value>,
    source: std::path::PathBuf,
}

pub(super) fn read(reader: &mut Reader, value: &Value) -> Result<Vec<Prompt>, PromptfooError> {
    let mut drafts = Vec::new();
    match value {
        Value::String(s) => entry(reader, s, None, None, "prompts", &mut drafts)?,
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let at = format!("prompts[{i}]");
                match item {
                    Value::String(s) => entry(reader, s, None, None, &at, &mut drafts)?,
                    Value::Object(object) => {
                        let label = object.get("label").and_then(Value::as_str);
                        let config = object.get("config");
                        for key in object.keys() {
                            if !["id", "label", "raw", "config", "messages"].contains(&key.as_str())
                            {
                                reader.unsupported(format!("{at}: prompt field `{key}`"));
                            }
                        }
                        if let Some(messages) = object.get("messages") {
                            let mut draft = draft_from_text(reader, "", label, config, &at)?;
                            draft.messages = Some(message_list(reader, messages, &at)?);
                            drafts.push(draft);
                            continue;
                        }
                        let text = object
                            .get("raw")
                            .or_else(|| object.get("id"))
                            .and_then(Value::as_str)
                            .ok_or_else(|| {
                                reader.invalid(format!("{at}: expected `raw` or `id` text"))
                            })?;
                        let raw = object.contains_key("raw");
                        if raw {
                            drafts.push(draft_from_text(reader, text, label, config, &at)?);
                        } else {
                            entry(reader, text, label, config, &at, &mut drafts)?;
                        }
                    }
                    _ => {
                        return Err(reader.invalid(format!(
                            "{at}: expected a prompt text, a file:// path or an object"
                        )));
                    }
                }
            }
        }
        Value::Object(map) => {
            // `{ "file://a.txt": "label" }`
            for (text, label) in map {
                let at = format!("prompts.{text}");
                entry(reader, text, label.as_str(), None, &at, &mut drafts)?;
            }
        }
        _ => return Err(reader.invalid("`prompts`: expected a list")),
    }
    if drafts.is_empty() {
        return Err(reader.invalid("`prompts` is empty"));
    }
    name_drafts(drafts)
}

fn draft_from_text(
    reader: &mut Reader,
    text: &str,
    label: Option<&str>,
    config: Option<&Value>,
    at: &str,
) -> Result<Draft, PromptfooError> {
    let (params, schema) = prompt_config(reader, config, at)?;
    Ok(Draft {
        label: label.map(str::to_string),
        stem: "prompt".into(),
        text: text.to_string(),
        messages: None,
        params,
        schema,
        source: reader.path.to_path_buf(),
    })
}

/// A prompt string: raw text, or `file://` files.
fn entry(
    reader: &mut Reader,
    text: &str,
    label: Option<&str>,
    config: Option<&Value>,
    at: &str,
    drafts: &mut Vec<Draft>,
) -> Result<(), PromptfooError> {
    // Older configs name files without `file://`.
    let bare_file = !text.contains('\n') && reader.base.join(text).is_file();
    if !text.starts_with("file://") && !bare_file {
        drafts.push(draft_from_text(reader, text, label, config, at)?);
        return Ok(());
    }
    let text = &if bare_file {
        format!("file://{text}")
    } else {
        text.to_string()
    };
    let (params, schema) = prompt_config(reader, config, at)?;
    let files = reader.files(text, at)?;
    let single = files.len() == 1;
    for file in files {
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "prompt".into());
        let texts = file_prompts(reader, &file, at)?;
        let one = single && texts.len() == 1;
        for (text, own_label) in texts {
            drafts.push(Draft {
                label: own_label.or_else(|| label.filter(|_| one).map(str::to_string)),
                stem: stem.clone(),
                text,
                messages: None,
                params: params.clone(),
                schema: schema.clone(),
                source: file.clone(),
            });
        }
    }
    Ok(())
}

/// The prompt texts in one file, with the labels the file gives them.
fn file_prompts(
    reader: &mut Reader,
    file: &Path,
    at: &str,
) -> Result<Vec<(String, Option<String>)>, PromptfooError> {
    let unlabelled = |texts: Vec<String>| texts.into_iter().map(|t| (t, None)).collect();
    let extension = file
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "js" | "cjs" | "mjs" | "ts" | "py" => {
            reader.unsupported(format!(
                "{at}: prompt functions ({}) are JavaScript or Python",
                file.display()
            ));
            Ok(Vec::new())
        }
        "json" => Ok(unlabelled(vec![reader.read_text(file, at)?])),
        "yaml" | "yml" => {
            // A YAML message list is sent as JSON, as promptfoo does.
            let text = reader.read_text(file, at)?;
            let value: Value = crate::yaml::from_str(file, &text)?;
            Ok(unlabelled(vec![value.to_string()]))
        }
        "csv" => csv_prompts(reader, file, at),
        _ => {
            let text = reader.read_text(file, at)?;
            Ok(unlabelled(split_separators(&text)))
        }
    }
}

/// promptfoo's CSV prompt files: a `prompt` column (values trimmed) and an optional
/// `label` column, a row per prompt; a file without commas is a prompt per line (after an
/// optional `prompt` header).
fn csv_prompts(
    reader: &mut Reader,
    file: &Path,
    at: &str,
) -> Result<Vec<(String, Option<String>)>, PromptfooError> {
    let text = reader.read_text(file, at)?;
    let text = text.trim_start_matches('\u{feff}');
    let lines = || {
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let start = usize::from(
            lines
                .first()
                .is_some_and(|l| l.trim().eq_ignore_ascii_case("prompt")),
        );
        lines[start..]
            .iter()
            .map(|l| (l.to_string(), None))
            .collect::<Vec<_>>()
    };
    if !text.contains(',') {
        return Ok(lines());
    }
    let mut csv = ::csv::ReaderBuilder::new()
        .flexible(true)
        .trim(::csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = match csv.headers() {
        Ok(h) => h.clone(),
        Err(_) => return Ok(lines()),
    };
    let column = |name: &str| headers.iter().position(|h| h == name);
    let Some(prompt) = column("prompt") else {
        return Err(reader.invalid(format!(
            "{}: a CSV prompt file needs a `prompt` column (and may have `label`)",
            file.display()
        )));
    };
    let label = column("label");
    let mut out = Vec::new();
    for record in csv.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            reader.invalid(format!("{}:{line}: {e}", file.display()))
        })?;
        let Some(text) = record.get(prompt).filter(|t| !t.is_empty()) else {
            continue;
        };
        let label = label
            .and_then(|i| record.get(i))
            .filter(|l| !l.is_empty())
            .map(str::to_string);
        out.push((text.to_string(), label));
    }
    Ok(out)
}

/// promptfoo splits text prompt files on lines that are `---`, spaces around allowed.
fn split_separators(text: &str) -> Vec<String> {
    let mut prompts = vec![String::new()];
    for line in text.split_inclusive('\n') {
        if line.trim() == "---" {
            prompts.push(String::new());
        } else if let Some(last) = prompts.last_mut() {
            last.push_str(line);
        }
    }
    prompts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// `messages: [{role, content}]`, a content being text or a `file://` file.
fn message_list(
    reader: &mut Reader,
    value: &Value,
    at: &str,
) -> Result<Vec<MessageTemplate>, PromptfooError> {
    let Value::Array(items) = value else {
        return Err(reader.invalid(format!("{at}.messages: expected a list")));
    };
    let mut messages = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{at}.messages[{i}]");
        let (Some(role), Some(content)) = (
            item.get("role").and_then(Value::as_str),
            item.get("content").and_then(Value::as_str),
        ) else {
            return Err(reader.invalid(format!("{at}: expected `role` and text `content`")));
        };
        let content = if content.starts_with("file://") {
            let files = reader.files(content, &at)?;
            let [file] = files.as_slice() else {
                return Err(reader.invalid(format!("{at}: `{content}` matches several files")));
            };
            let extension = file.extension().map(|e| e.to_string_lossy().to_lowercase());
            if matches!(
                extension.as_deref(),
                Some("js" | "cjs" | "mjs" | "ts" | "py")
            ) {
                reader.unsupported(format!("{at}: content computed by {}", file.display()));
            }
            reader.read_text(file, &at)?.trim_end().to_string()
        } else {
            content.to_string()
        };
        messages.push(MessageTemplate {
            role: role.to_string(),
            content,
        });
    }
    Ok(messages)
}

/// A prompt's `config`: sampling settings and a JSON-schema `response_format`.
fn prompt_config(
    reader: &mut Reader,
    config: Option<&Value>,
    at: &str,
) -> Result<(GenerationParams, Option<Value>), PromptfooError> {
    let Some(config) = config else {
        return Ok((GenerationParams::default(), None));
    };
    let Value::Object(config) = config else {
        return Err(reader.invalid(format!("{at}.config: expected an object")));
    };
    super::providers::params(reader, config, &format!("{at}.config"))
}

/// Gives each draft a unique id: its label, else the file stem or `prompt`, numbered when
/// several share it.
/// The prompt id a label becomes (`:` separates a prompt from its variant here).
pub(super) fn id_for_label(label: &str) -> String {
    let id: String = label
        .chars()
        .map(|c| if c == ':' || c.is_control() { '-' } else { c })
        .collect();
    id.trim().to_string()
}

fn name_drafts(drafts: Vec<Draft>) -> Result<Vec<Prompt>, PromptfooError> {
    let clean = id_for_label;
    let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for d in &drafts {
        let base = d.label.as_deref().map_or_else(|| clean(&d.stem), clean);
        *counts.entry(base).or_default() += 1;
    }
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut prompts = Vec::new();
    for d in drafts {
        let base = d.label.as_deref().map_or_else(|| clean(&d.stem), clean);
        let base = if base.is_empty() {
            "prompt".into()
        } else {
            base
        };
        let n = seen.entry(base.clone()).or_default();
        *n += 1;
        let id = if counts.get(&base).copied().unwrap_or(0) > 1 {
            format!("{base}-{n}")
        } else {
            base
        };
        let description: String = d.text.chars().take(80).collect();
        let prompt = Prompt {
            id: id.clone(),
            name: id,
            variant: None,
            description,
            body: match d.messages {
                Some(messages) => PromptBody::Chat(messages),
                None => PromptBody::Promptfoo(d.text),
            },
            params: d.params,
            schema: d.schema,
            tools: Vec::new(),
            source: d.source,
        };
        prompt
            .check_templates()
            .map_err(|e| PromptfooError::Invalid {
                path: prompt.source.clone(),
                message: e.to_string(),
            })?;
        prompts.push(prompt);
    }
    Ok(prompts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_files_split_on_separator_lines() {
        assert_eq!(
            split_separators("One {{x}}\n  ---  \nTwo\n--- not a separator\n---\n\n"),
            ["One {{x}}", "Two\n--- not a separator"]
        );
    }
}
