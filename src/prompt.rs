//! Prompt templates (`prompts/*.yaml`): chat messages or a plain completion written as
//! minijinja templates over a case's variables, plus generation parameters, an optional
//! output JSON schema and named variants that are compared as separate columns.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dialect::{Dialect, js};
use crate::params::GenerationParams;
use crate::template::{self, TemplateFault, Undefined};
use crate::yaml::{self, YamlError};

mod library;

pub use library::{BrokenPromptFile, PromptLibrary};

/// One chat message as written in a prompt file (content is a template).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageTemplate {
    pub role: String,
    pub content: String,
}

/// A prompt file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptFileSpec {
    name: Option<String>,
    #[serde(default)]
    description: String,
    messages: Option<Vec<MessageTemplate>>,
    completion: Option<String>,
    #[serde(default)]
    params: GenerationParams,
    schema: Option<serde_json::Value>,
    /// Tools an agent may call with this prompt (`promptlab agent --prompt`).
    #[serde(default)]
    tools: Vec<String>,
    #[serde(default)]
    variants: BTreeMap<String, VariantSpec>,
}

/// A variant overrides parts of the prompt it belongs to.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct VariantSpec {
    description: Option<String>,
    messages: Option<Vec<MessageTemplate>>,
    completion: Option<String>,
    #[serde(default)]
    params: GenerationParams,
    schema: Option<serde_json::Value>,
    tools: Option<Vec<String>>,
}

/// What a prompt sends to a model: a conversation (rendered with the model's chat
/// template) or raw text for base models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptBody {
    Chat(Vec<MessageTemplate>),
    Completion(String),
    /// A promptfoo prompt, rendered as promptfoo renders it (see [`render_promptfoo`]); if
    /// the result is a JSON array of `{role, content}` messages it is that conversation,
    /// otherwise one user message.
    Promptfoo(String),
}

/// promptfoo's `renderPrompt`: a prompt that is JSON (a chat prompt, or a YAML one
/// converted) has each of its strings rendered, so a variable holding quotes or newlines
/// is escaped into each message, and is written back with `JSON.stringify(value, null,
/// 2)`; any other prompt is rendered whole, after its string variables are themselves
/// rendered as templates.
pub fn render_promptfoo(raw: &str, vars: &minijinja::Value) -> Result<String, TemplateFault> {
    let dialect = Dialect::Promptfoo;
    if let Ok(parsed) = js::json_parse(raw) {
        let rendered = render_strings(&parsed, &|s| dialect.render_str(s, vars))?;
        return Ok(js::stringify(&rendered, 2));
    }
    let json = serde_json::to_value(vars).unwrap_or_default();
    let rendered_vars = match json {
        serde_json::Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (key, value) in &map {
                let value = match value {
                    serde_json::Value::String(s) => {
                        serde_json::Value::String(dialect.render_str(s, vars)?)
                    }
                    other => other.clone(),
                };
                out.insert(key.clone(), value);
            }
            minijinja::Value::from_serialize(&out)
        }
        _ => vars.clone(),
    };
    dialect.render_str(raw, &rendered_vars)
}

/// Every string inside a JSON value rendered with `render` (promptfoo's
/// `renderVarsInObject`).
pub fn render_strings(
    value: &serde_json::Value,
    render: &dyn Fn(&str) -> Result<String, TemplateFault>,
) -> Result<serde_json::Value, TemplateFault> {
    use serde_json::Value;
    Ok(match value {
        Value::String(s) => Value::String(render(s)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_strings(v, render))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_strings(v, render)?)))
                .collect::<Result<_, TemplateFault>>()?,
        ),
        other => other.clone(),
    })
}

/// Checks what [`render_promptfoo`] will render compiles.
fn check_promptfoo(raw: &str) -> Result<(), TemplateFault> {
    let dialect = Dialect::Promptfoo;
    match js::json_parse(raw) {
        Ok(parsed) => {
            render_strings(&parsed, &|s| dialect.check_syntax(s).map(|_| String::new())).map(|_| ())
        }
        Err(_) => dialect.check_syntax(raw),
    }
}

/// How promptfoo sends a rendered prompt to a chat model: a JSON array of messages with
/// string contents is the conversation; any other text is one user message.
fn promptfoo_messages(rendered: String) -> Vec<ChatMessage> {
    let trimmed = rendered.trim_start();
    if trimmed.starts_with('[')
        && let Ok(messages) = serde_json::from_str::<Vec<ChatMessage>>(trimmed)
        && !messages.is_empty()
    {
        return messages;
    }
    vec![ChatMessage {
        role: "user".into(),
        content: rendered,
    }]
}

/// A prompt after variant expansion: one column of the evaluation matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    /// `name` or `name:variant`.
    pub id: String,
    pub name: String,
    pub variant: Option<String>,
    pub description: String,
    pub body: PromptBody,
    pub params: GenerationParams,
    pub schema: Option<serde_json::Value>,
    /// Non-empty for agent prompts: the tools offered with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    pub source: PathBuf,
}

/// The prompt rendered for one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RenderedPrompt {
    Chat(Vec<ChatMessage>),
    Completion(String),
    /// A promptfoo prompt: the text promptfoo hands its provider (what its `echo`
    /// returns), and the conversation a chat model is sent.
    Promptfoo {
        text: String,
        messages: Vec<ChatMessage>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl RenderedPrompt {
    /// A readable single-string form, used by the echo engine and in reports.
    pub fn to_plain_text(&self) -> String {
        match self {
            RenderedPrompt::Completion(text) | RenderedPrompt::Promptfoo { text, .. } => {
                text.clone()
            }
            RenderedPrompt::Chat(messages) => messages
                .iter()
                .map(|m| format!("{}: {}", m.role, m.content))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: {part}: {fault}")]
    Template {
        path: PathBuf,
        part: String,
        fault: TemplateFault,
    },
    #[error("{path}: cannot list prompt files: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Prompt {
    /// Loads a prompt file and expands its variants (one `Prompt` each, or just the base
    /// prompt when there are none). Templates are syntax-checked here, not at run time.
    pub fn load_file(path: &Path) -> Result<Vec<Prompt>, PromptError> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            PromptError::from(yaml::YamlError::Io {
                path: path.to_path_buf(),
                source,
            })
        })?;
        Prompt::parse_file(path, &text)
    }

    /// Like [`Prompt::load_file`] on text that is not saved yet (an editor's buffer);
    /// `path` names it in errors.
    pub fn parse_file(path: &Path, text: &str) -> Result<Vec<Prompt>, PromptError> {
        let spec: PromptFileSpec = yaml::from_str(path, text)?;
        let invalid = |message: String| PromptError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let name = match spec.name {
            Some(name) => name,
            None => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .ok_or_else(|| invalid("prompt has no name".into()))?,
        };
        if name.is_empty() || name.contains(':') {
            return Err(invalid(format!(
                "invalid prompt name {name:?}: expected a non-empty name without ':'"
            )));
        }
        let base_body = body_from(spec.messages.clone(), spec.completion.clone())
            .map_err(|m| invalid(m.to_string()))?;

        let mut prompts = Vec::new();
        if spec.variants.is_empty() {
            let body = base_body.clone().ok_or_else(|| {
                invalid("expected `messages` (a chat prompt) or `completion` (plain text)".into())
            })?;
            prompts.push(Prompt {
                id: name.clone(),
                name: name.clone(),
                variant: None,
                description: spec.description.clone(),
                body,
                params: spec.params.clone(),
                schema: spec.schema.clone(),
                tools: spec.tools.clone(),
                source: path.to_path_buf(),
            });
        }
        for (variant, v) in &spec.variants {
            if variant.is_empty() || variant.contains(':') {
                return Err(invalid(format!(
                    "invalid variant name {variant:?}: expected a non-empty name without ':'"
                )));
            }
            let own = body_from(v.messages.clone(), v.completion.clone())
                .map_err(|m| invalid(format!("variant `{variant}`: {m}")))?;
            let body = own.or_else(|| base_body.clone()).ok_or_else(|| {
                invalid(format!(
                    "variant `{variant}` has no `messages` or `completion`, and the prompt has none to inherit"
                ))
            })?;
            prompts.push(Prompt {
                id: format!("{name}:{variant}"),
                name: name.clone(),
                variant: Some(variant.clone()),
                description: v
                    .description
                    .clone()
                    .unwrap_or_else(|| spec.description.clone()),
                body,
                params: spec.params.overlay(&v.params),
                schema: v.schema.clone().or_else(|| spec.schema.clone()),
                tools: v.tools.clone().unwrap_or_else(|| spec.tools.clone()),
                source: path.to_path_buf(),
            });
        }
        for prompt in &prompts {
            prompt.check_templates()?;
            prompt.check_schema()?;
        }
        Ok(prompts)
    }

    /// Renders the prompt for one case. Variables not given are errors.
    /// The variables the templates read (top-level names, sorted), e.g. to know which
    /// case variable a playground message fills.
    pub fn variables(&self) -> Vec<String> {
        let env = template::environment(Undefined::Strict);
        let sources: Vec<&str> = match &self.body {
            PromptBody::Completion(text) | PromptBody::Promptfoo(text) => vec![text.as_str()],
            PromptBody::Chat(messages) => messages.iter().map(|m| m.content.as_str()).collect(),
        };
        let mut names: Vec<String> = sources
            .into_iter()
            .filter(|source| template::compilable(source).is_ok())
            .filter_map(|source| env.template_from_str(source).ok())
            .flat_map(|t| t.undeclared_variables(false))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    pub fn render(&self, vars: &minijinja::Value) -> Result<RenderedPrompt, PromptError> {
        let env = template::environment(Undefined::Strict);
        match &self.body {
            PromptBody::Completion(text) => template::render_str(env, text, vars)
                .map(RenderedPrompt::Completion)
                .map_err(|fault| self.template_error("completion".into(), fault)),
            PromptBody::Promptfoo(text) => render_promptfoo(text, vars)
                .map(|text| RenderedPrompt::Promptfoo {
                    messages: promptfoo_messages(text.clone()),
                    text,
                })
                .map_err(|fault| self.template_error("prompt".into(), fault)),
            PromptBody::Chat(messages) => messages
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    template::render_str(env, &m.content, vars)
                        .map(|content| ChatMessage {
                            role: m.role.clone(),
                            content,
                        })
                        .map_err(|fault| self.template_error(message_part(i, &m.role), fault))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(RenderedPrompt::Chat),
        }
    }

    pub(crate) fn check_templates(&self) -> Result<(), PromptError> {
        let env = template::environment(Undefined::Strict);
        match &self.body {
            PromptBody::Completion(text) => template::check_syntax(env, text)
                .map_err(|fault| self.template_error("completion".into(), fault)),
            PromptBody::Promptfoo(text) => {
                check_promptfoo(text).map_err(|fault| self.template_error("prompt".into(), fault))
            }
            PromptBody::Chat(messages) => {
                for (i, m) in messages.iter().enumerate() {
                    if !matches!(m.role.as_str(), "system" | "user" | "assistant" | "tool") {
                        return Err(PromptError::Invalid {
                            path: self.source.clone(),
                            message: format!(
                                "{}: unknown role {:?}: expected system, user, assistant or tool",
                                self.label(&message_part(i, &m.role)),
                                m.role
                            ),
                        });
                    }
                    template::check_syntax(env, &m.content)
                        .map_err(|fault| self.template_error(message_part(i, &m.role), fault))?;
                }
                Ok(())
            }
        }
    }

    fn check_schema(&self) -> Result<(), PromptError> {
        if let Some(schema) = &self.schema
            && !schema.is_object()
            && !schema.is_boolean()
        {
            return Err(PromptError::Invalid {
                path: self.source.clone(),
                message: format!(
                    "{}: `schema` must be a JSON Schema object",
                    self.label("schema")
                ),
            });
        }
        Ok(())
    }

    fn label(&self, part: &str) -> String {
        match &self.variant {
            Some(v) => format!("variant `{v}`, {part}"),
            None => part.to_string(),
        }
    }

    fn template_error(&self, part: String, fault: TemplateFault) -> PromptError {
        PromptError::Template {
            path: self.source.clone(),
            part: self.label(&part),
            fault,
        }
    }
}

fn message_part(index: usize, role: &str) -> String {
    format!("message {} ({role})", index + 1)
}

fn body_from(
    messages: Option<Vec<MessageTemplate>>,
    completion: Option<String>,
) -> Result<Option<PromptBody>, &'static str> {
    match (messages, completion) {
        (Some(_), Some(_)) => Err("give either `messages` or `completion`, not both"),
        (Some(m), None) if m.is_empty() => Err("`messages` is empty"),
        (Some(m), None) => Ok(Some(PromptBody::Chat(m))),
        (None, Some(c)) => Ok(Some(PromptBody::Completion(c))),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests;
