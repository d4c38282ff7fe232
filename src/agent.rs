//! An LLM agent that answers a question by calling tools (the vision models, a file lister,
//! a calculator). Each step renders the conversation with the model's own chat template,
//! generates one reply under a grammar built from the tool schemas (so every call parses
//! and fits a schema), runs the tool and feeds its result (or error) back, until the model
//! answers or a cap (steps, tokens, wall time) is reached. Every step is reported as it
//! happens and kept in the [`AgentTrace`].

pub mod convention;
pub mod eval;
pub mod grounding;
pub mod session;
mod setup;
pub mod tools;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::engine::{EngineError, Flow, GenerationEvent, GenerationRequest, Generator, ToolOffer};
use crate::params::SamplingParams;
use crate::prompt::RenderedPrompt;
use crate::trace::{AgentStep, AgentStop, AgentTrace, Convention, StepAction};
use convention::Reply;
pub use setup::{ToolModels, ToolSetupError, default_roots, load_engine, project_tools};
use tools::{ToolContext, ToolSet};

/// Caps on one question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentLimits {
    pub max_steps: usize,
    /// Tokens generated over all steps.
    pub max_tokens: u32,
    /// Tokens in one reply.
    pub max_reply_tokens: u32,
    pub max_wall: Duration,
}

impl Default for AgentLimits {
    fn default() -> Self {
        AgentLimits {
            max_steps: 6,
            max_tokens: 2048,
            max_reply_tokens: 256,
            max_wall: Duration::from_secs(300),
        }
    }
}

/// The default system prompt; an agent prompt template replaces it.
pub const DEFAULT_SYSTEM: &str = "You are a careful assistant that answers questions about images and numbers. Use a tool whenever the answer depends on an image or on arithmetic; never guess what a tool would say. Give a tool only the arguments the question calls for. Image paths are relative to the project. Once a tool has given you what you need, answer the question in one or two sentences.";

/// What the caller hears while the agent works.
pub enum AgentEvent<'a> {
    /// A piece of the reply being generated.
    Token(&'a str),
    Step(&'a AgentStep),
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the model has no chat template, so it cannot hold a conversation with tools")]
    NoChatTemplate,
    #[error("no tools to offer: {0}")]
    NoTools(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Prompt(#[from] crate::prompt::PromptError),
    #[error("prompt `{id}` is a completion prompt; an agent prompt needs chat `messages` ({path})")]
    CompletionPrompt { id: String, path: String },
}

/// The conversation an agent prompt opens with, rendered for `question` (empty without a
/// prompt: the system prompt and the question then open it).
pub fn opening_messages(
    prompt: Option<&crate::prompt::Prompt>,
    question: &str,
) -> Result<Vec<crate::prompt::ChatMessage>, AgentError> {
    let Some(prompt) = prompt else {
        return Ok(Vec::new());
    };
    let vars = minijinja::Value::from_serialize(json!({ "question": question }));
    match prompt.render(&vars)? {
        RenderedPrompt::Chat(messages) | RenderedPrompt::Promptfoo { messages, .. } => Ok(messages),
        RenderedPrompt::Completion(_) => Err(AgentError::CompletionPrompt {
            id: prompt.id.clone(),
            path: prompt.source.display().to_string(),
        }),
    }
}

pub struct Agent<'a> {
    pub engine: &'a mut dyn Generator,
    pub tools: &'a ToolSet,
    pub context: &'a ToolContext,
    pub system: String,
    /// The conversation to start from, rendered from an agent prompt template; when
    /// empty, `system` and the question.
    pub opening: Vec<crate::prompt::ChatMessage>,
    pub limits: AgentLimits,
    pub sampling: SamplingParams,
    /// Optional number arguments may take only numbers written in the user's messages
    /// (see grounding.rs); applies where the agent builds the call grammar.
    pub ground_numbers: bool,
}

impl Agent<'_> {
    /// Answers `question`. Engine failures end the trace (stop `EngineError`); tool
    /// failures and malformed replies go back to the model.
    pub fn run(
        &mut self,
        question: &str,
        on_event: &mut dyn FnMut(AgentEvent) -> Flow,
    ) -> Result<AgentTrace, AgentError> {
        if self.tools.is_empty() {
            return Err(AgentError::NoTools(
                self.tools
                    .unavailable
                    .iter()
                    .map(|(n, why)| format!("{n}: {why}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            ));
        }
        let template = self.engine.chat_template().cloned();
        let convention = match &template {
            Some(template) => Convention::for_template(template),
            None if self.engine.calls_tools_itself() => Convention::Native,
            None => return Err(AgentError::NoChatTemplate),
        };
        let specs = self.tools.specs();
        let user_text: String = if self.opening.is_empty() {
            question.to_string()
        } else {
            self.opening
                .iter()
                .filter(|m| m.role == "user")
                .map(|m| m.content.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        };
        let call_specs = if self.ground_numbers {
            grounding::ground_numbers(&specs, &user_text)
        } else {
            specs.clone()
        };
        // Local models reply under our grammars; a server applies its own.
        let grammars = match convention {
            Convention::Native => None,
            _ => Some((
                convention::grammar(convention, &call_specs)?,
                convention::answer_grammar(convention)?,
            )),
        };
        // Set when the model repeats a call: it already has that result, so the next
        // reply must be the answer (small models otherwise loop until the step cap).
        let mut must_answer = false;
        let mut messages: Vec<Value> = if self.opening.is_empty() {
            vec![
                json!({"role": "system", "content": self.system}),
                json!({"role": "user", "content": question}),
            ]
        } else {
            self.opening
                .iter()
                .map(|m| json!({"role": m.role, "content": m.content}))
                .collect()
        };
        if convention == Convention::Json {
            // Templates without tool support learn the tools and the reply format from
            // the system message.
            let instructions = convention::json_instructions(&specs);
            match messages.first_mut() {
                Some(first) if first["role"] == "system" => {
                    let text = format!(
                        "{}\n\n{instructions}",
                        first["content"].as_str().unwrap_or_default()
                    );
                    first["content"] = json!(text);
                }
                _ => messages.insert(0, json!({"role": "system", "content": instructions})),
            }
        }
        let started = Instant::now();
        let mut trace = AgentTrace {
            question: question.to_string(),
            convention,
            tools: self.tools.names().iter().map(|s| s.to_string()).collect(),
            steps: Vec::new(),
            answer: None,
            stop: AgentStop::MaxSteps,
            error: None,
            total_ms: 0.0,
        };
        for index in 0..self.limits.max_steps {
            if started.elapsed() >= self.limits.max_wall {
                trace.stop = AgentStop::WallTime;
                break;
            }
            let budget = self
                .limits
                .max_tokens
                .saturating_sub(trace.generated_tokens());
            if budget == 0 {
                trace.stop = AgentStop::MaxTokens;
                break;
            }
            let mut params = self.sampling.clone();
            params.max_tokens = self.limits.max_reply_tokens.min(budget);
            let request = match (&template, &grammars) {
                (Some(template), Some((grammar, answer_only))) => {
                    let tool_specs = if convention == Convention::Hermes {
                        specs.as_slice()
                    } else {
                        &[]
                    };
                    let text = template
                        .render_with_tools(&messages, tool_specs, true)
                        .map_err(|f| EngineError::ChatTemplate(f.to_string()))?;
                    tracing::debug!(step = index, prompt = %text, "agent prompt");
                    GenerationRequest {
                        prompt: RenderedPrompt::Completion(text),
                        params,
                        schema: None,
                        grammar: Some(if must_answer {
                            answer_only.clone()
                        } else {
                            grammar.clone()
                        }),
                        tools: None,
                    }
                }
                _ => GenerationRequest {
                    prompt: RenderedPrompt::Chat(plain_messages(&messages)),
                    params,
                    schema: None,
                    grammar: None,
                    tools: Some(ToolOffer {
                        conversation: messages.clone(),
                        tools: specs.clone(),
                        must_answer,
                        choice: None,
                        calls: crate::engine::CallsAs::Hermes,
                    }),
                },
            };
            let (generation, cancelled) = generate_one(self.engine, &request, on_event);
            let generation = match generation {
                Ok(g) => g,
                Err(e) => {
                    trace.stop = AgentStop::EngineError;
                    trace.error = Some(e.to_string());
                    break;
                }
            };
            let reply = generation.text.clone();
            let action = match convention::parse_reply(convention, &reply) {
                Reply::Answer(text) => StepAction::Answer { text },
                Reply::Malformed(error) => StepAction::Malformed { error },
                Reply::Call { name, arguments }
                    if trace.calls().any(|(n, a)| n == name && *a == arguments) =>
                {
                    must_answer = true;
                    StepAction::Repeated { name, arguments }
                }
                Reply::Call { name, arguments } => {
                    let tool_started = Instant::now();
                    let outcome = self.tools.call(&name, &arguments, self.context);
                    let tool_ms = tool_started.elapsed().as_secs_f64() * 1000.0;
                    let (result, error) = match outcome {
                        Ok(value) => (Some(value), None),
                        Err(e) => (None, Some(e.to_string())),
                    };
                    StepAction::ToolCall {
                        name,
                        arguments,
                        result,
                        error,
                        tool_ms,
                    }
                }
            };
            let step = AgentStep {
                index,
                reply,
                action,
                prompt_tokens: generation.prompt_tokens,
                cached_prompt_tokens: generation.cached_prompt_tokens,
                generated_tokens: generation.completion_tokens,
                generation_ms: generation.total_ms,
                ttft_ms: generation.ttft_ms,
            };
            let flow = on_event(AgentEvent::Step(&step));
            match &step.action {
                StepAction::Answer { text } => {
                    trace.answer = Some(text.clone());
                    trace.stop = AgentStop::Answered;
                }
                StepAction::ToolCall {
                    name,
                    arguments,
                    result,
                    error,
                    ..
                } => {
                    let content = match (result, error) {
                        (Some(value), _) => value.clone(),
                        (None, error) => json!({"error": error}),
                    };
                    messages.extend(convention::call_messages(
                        convention,
                        &step.reply,
                        &format!("call_{index}"),
                        name,
                        arguments,
                        &content,
                    ));
                }
                StepAction::Repeated { .. } => {
                    messages.push(json!({
                        "role": "user",
                        "content": format!("You have the tool result above. Now answer every part of this question in one sentence: {question}")
                    }));
                }
                StepAction::Malformed { error } => {
                    messages.push(json!({"role": "assistant", "content": step.reply.trim()}));
                    messages.push(json!({"role": "user", "content": format!("That reply could not be used ({error}). Call one tool or answer, briefly.")}));
                }
            }
            trace.steps.push(step);
            if trace.stop == AgentStop::Answered {
                break;
            }
            if cancelled || flow == Flow::Stop {
                trace.stop = AgentStop::Cancelled;
                break;
            }
        }
        trace.total_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(trace)
    }
}

/// The conversation as plain role/content messages (tool calls as their JSON), for
/// displays and records of a request whose real form is its [`ToolOffer`].
fn plain_messages(messages: &[Value]) -> Vec<crate::prompt::ChatMessage> {
    messages
        .iter()
        .map(|m| crate::prompt::ChatMessage {
            role: m["role"].as_str().unwrap_or("user").to_string(),
            content: match &m["content"] {
                Value::String(text) => text.clone(),
                _ => m["tool_calls"].to_string(),
            },
        })
        .collect()
}

fn generate_one(
    engine: &mut dyn Generator,
    request: &GenerationRequest,
    on_event: &mut dyn FnMut(AgentEvent) -> Flow,
) -> (Result<crate::engine::Generation, EngineError>, bool) {
    let mut outcome = Err(EngineError::Generation("the engine gave no result".into()));
    let mut cancelled = false;
    engine.generate(request, &mut |event| match event {
        GenerationEvent::Token(_, piece) => {
            let flow = on_event(AgentEvent::Token(&piece));
            cancelled |= flow == Flow::Stop;
            flow
        }
        GenerationEvent::Finished(_, result) => {
            outcome = result;
            Flow::Continue
        }
        GenerationEvent::Started(_) => Flow::Continue,
    });
    (outcome, cancelled)
}
