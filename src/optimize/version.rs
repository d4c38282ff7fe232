//! A candidate prompt version: the prompt's own messages as a strategy left them, plus
//! the demonstrations the few-shot strategy chose. It becomes an ordinary [`Prompt`]
//! (a variant in no file) to be evaluated, and is checked before it costs a cell.

use serde::{Deserialize, Serialize};

use crate::prompt::{MessageTemplate, Prompt, PromptBody};

/// A worked example shown to the model as an earlier turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Demo {
    /// The tuning case it was taken from.
    pub case_id: String,
    /// The user turn: the prompt's last user message rendered with the case's variables.
    pub input: String,
    /// The assistant turn: an output that passed the case's assertions.
    pub output: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    /// The messages (or completion) without the optimizer's demonstrations.
    pub body: PromptBody,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub demos: Vec<Demo>,
}

impl Version {
    pub fn of(prompt: &Prompt) -> Version {
        Version {
            body: prompt.body.clone(),
            demos: Vec::new(),
        }
    }

    /// The prompt to evaluate: `base` with this body, the demonstrations inserted before
    /// the last user message, and the id `name:variant`.
    pub fn to_prompt(&self, base: &Prompt, variant: &str, description: &str) -> Prompt {
        let body = match (&self.body, self.demos.is_empty()) {
            (PromptBody::Chat(messages), false) => {
                let at = messages
                    .iter()
                    .rposition(|m| m.role == "user")
                    .unwrap_or(messages.len());
                let mut with_demos = messages[..at].to_vec();
                for demo in &self.demos {
                    with_demos.push(MessageTemplate {
                        role: "user".into(),
                        content: literal(&demo.input),
                    });
                    with_demos.push(MessageTemplate {
                        role: "assistant".into(),
                        content: literal(&demo.output),
                    });
                }
                with_demos.extend_from_slice(&messages[at..]);
                PromptBody::Chat(with_demos)
            }
            (body, _) => body.clone(),
        };
        Prompt {
            id: format!("{}:{variant}", base.name),
            name: base.name.clone(),
            variant: Some(variant.to_string()),
            description: description.to_string(),
            body,
            params: base.params.clone(),
            schema: base.schema.clone(),
            tools: base.tools.clone(),
            source: base.source.clone(),
        }
    }

    /// The text two versions are compared by to find duplicates: every message, with
    /// runs of whitespace made one space.
    pub fn fingerprint(&self, base: &Prompt) -> String {
        let prompt = self.to_prompt(base, "x", "");
        let text = match &prompt.body {
            PromptBody::Chat(messages) => messages
                .iter()
                .map(|m| format!("{}\u{1}{}", m.role, m.content))
                .collect::<Vec<_>>()
                .join("\u{2}"),
            PromptBody::Completion(text) | PromptBody::Promptfoo(text) => text.clone(),
        };
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// The text a strategy rewrites: the system message, else the first message, else
    /// the completion.
    pub fn instruction(&self) -> &str {
        match &self.body {
            PromptBody::Chat(messages) => messages
                .iter()
                .find(|m| m.role == "system")
                .or_else(|| messages.first())
                .map(|m| m.content.as_str())
                .unwrap_or_default(),
            PromptBody::Completion(text) | PromptBody::Promptfoo(text) => text,
        }
    }

    /// This version with its instruction replaced (see [`Version::instruction`]).
    pub fn with_instruction(&self, text: &str) -> Version {
        let body = match &self.body {
            PromptBody::Chat(messages) => {
                let mut messages = messages.clone();
                let at = messages
                    .iter()
                    .position(|m| m.role == "system")
                    .unwrap_or(0);
                if let Some(message) = messages.get_mut(at) {
                    message.content = text.to_string();
                }
                PromptBody::Chat(messages)
            }
            PromptBody::Completion(_) => PromptBody::Completion(text.to_string()),
            PromptBody::Promptfoo(_) => PromptBody::Promptfoo(text.to_string()),
        };
        Version {
            body,
            demos: self.demos.clone(),
        }
    }
}

/// `text` as a template that renders to itself. Text holding `endraw` cannot be wrapped
/// safely; the few-shot strategy never picks it (see [`can_be_literal`]).
pub fn literal(text: &str) -> String {
    if text.contains("{{") || text.contains("{%") || text.contains("{#") {
        format!("{{% raw %}}{text}{{% endraw %}}")
    } else {
        text.to_string()
    }
}

pub fn can_be_literal(text: &str) -> bool {
    !text.contains("endraw")
}

/// Why a version is refused before it is evaluated.
pub fn check(
    version: &Version,
    base: &Prompt,
    cases: &[&crate::evalset::Case],
    earlier: &[String],
) -> Result<(), String> {
    let prompt = version.to_prompt(base, "candidate", "");
    if version.instruction().trim().is_empty() {
        return Err("the instruction is empty".into());
    }
    prompt
        .check_templates()
        .map_err(|e| format!("the template does not compile: {e}"))?;
    let wanted = base.variables();
    let found = prompt.variables();
    let dropped: Vec<&String> = wanted.iter().filter(|v| !found.contains(v)).collect();
    let added: Vec<&String> = found.iter().filter(|v| !wanted.contains(v)).collect();
    if !dropped.is_empty() || !added.is_empty() {
        let mut parts = Vec::new();
        if !dropped.is_empty() {
            parts.push(format!("drops {}", braces(&dropped)));
        }
        if !added.is_empty() {
            parts.push(format!("uses unknown {}", braces(&added)));
        }
        return Err(format!(
            "{} (the cases give {})",
            parts.join(" and "),
            braces(&wanted.iter().collect::<Vec<_>>())
        ));
    }
    if let Some(schema) = &base.schema {
        let validator = jsonschema::validator_for(schema)
            .map_err(|e| format!("the prompt's schema does not compile: {e}"))?;
        for demo in &version.demos {
            let parsed: serde_json::Value = serde_json::from_str(&demo.output).map_err(|_| {
                format!(
                    "the example from case {} is not JSON, which the schema asks for",
                    demo.case_id
                )
            })?;
            if !validator.is_valid(&parsed) {
                return Err(format!(
                    "the example from case {} does not follow the prompt's schema",
                    demo.case_id
                ));
            }
        }
    }
    for case in cases {
        let vars = minijinja::Value::from_serialize(&case.vars);
        prompt
            .render(&vars)
            .map_err(|e| format!("does not render for case {}: {e}", case.id))?;
    }
    let fingerprint = version.fingerprint(base);
    if earlier.contains(&fingerprint) {
        return Err("the same as an earlier candidate".into());
    }
    Ok(())
}

fn braces(names: &[&String]) -> String {
    if names.is_empty() {
        return "no variables".into();
    }
    names
        .iter()
        .map(|n| format!("{{{{ {n} }}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The whole prompt as text, one message after another, for diffs.
pub fn prompt_text(prompt: &Prompt) -> String {
    match &prompt.body {
        PromptBody::Chat(messages) => messages
            .iter()
            .map(|m| format!("[{}] {}", m.role, m.content))
            .collect::<Vec<_>>()
            .join("\n"),
        PromptBody::Completion(text) | PromptBody::Promptfoo(text) => text.clone(),
    }
}
