//! Chat templates embedded in GGUF files (`tokenizer.chat_template`), rendered with
//! minijinja like Hugging Face's renderer. llama.cpp's own `apply_chat_template` only
//! pattern-matches known templates; rendering the real Jinja source handles any model.

use minijinja::context;

use crate::prompt::ChatMessage;
use crate::template::{self, TemplateFault, Undefined};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTemplate {
    pub source: String,
    pub bos_token: String,
    pub eos_token: String,
}

impl ChatTemplate {
    /// The chat template a GGUF file carries, if any (read from its header only).
    pub fn from_gguf(path: &std::path::Path) -> Option<ChatTemplate> {
        let info = crate::gguf::GgufInfo::read(path).ok()?;
        let source = info.chat_template()?;
        Some(ChatTemplate::new(
            source,
            info.bos_token().unwrap_or_default(),
            info.eos_token().unwrap_or_default(),
        ))
    }

    pub fn new(
        source: impl Into<String>,
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> Self {
        ChatTemplate {
            source: source.into(),
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
        }
    }

    /// Renders a conversation; with `add_generation_prompt` the text ends where the
    /// assistant's reply begins.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, TemplateFault> {
        let env = template::environment(Undefined::Lenient);
        let ctx = context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        };
        template::render_str(env, &self.source, &ctx)
    }

    /// Renders messages given as JSON (so assistant `tool_calls` and `tool` messages pass
    /// through) with the OpenAI-style `tools` list templates with tool support read.
    pub fn render_with_tools(
        &self,
        messages: &[serde_json::Value],
        tools: &[serde_json::Value],
        add_generation_prompt: bool,
    ) -> Result<String, TemplateFault> {
        let env = template::environment(Undefined::Lenient);
        let ctx = context! {
            messages => messages,
            tools => (!tools.is_empty()).then_some(tools),
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        };
        template::render_str(env, &self.source, &ctx)
    }

    /// Whether the template follows the Hermes/Qwen convention: tools listed in the
    /// system prompt, calls as `<tool_call>` JSON, results in `<tool_response>`.
    pub fn has_tool_calls(&self) -> bool {
        self.source.contains("tools") && self.source.contains("<tool_call>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn chatml_renders_with_generation_prompt() {
        let t = ChatTemplate::new(CHATML, "", "<|im_end|>");
        let out = t
            .render(
                &[ChatMessage {
                    role: "user".into(),
                    content: "Hi".into(),
                }],
                true,
            )
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }
}
