//! Real-model tests on SmolLM2-135M-Instruct and Gemma-3-270M (base). They assert
//! behaviour that holds for any sane model: schema-valid JSON under a grammar, stop
//! sequences respected, identical output for the same seed, the exact ChatML text.
//! They run one at a time with one thread: two decoders fighting over two cores slow
//! each other down by orders of magnitude.

use std::sync::Mutex;

use crate::common::{GEMMA, SMOLLM2, real_model};
use promptlab::engine::llama::{LlamaEngine, LlamaOptions};
use promptlab::engine::{
    Engine, FinishReason, Flow, Generation, GenerationEvent, GenerationRequest,
};
use promptlab::params::SamplingParams;
use promptlab::prompt::{ChatMessage, RenderedPrompt};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn load_parallel(file: &str, parallel: u32) -> LlamaEngine {
    LlamaEngine::load(
        &real_model(file),
        &LlamaOptions {
            context_size: Some(1024),
            threads: Some(1),
            parallel: Some(parallel),
            keep_conversation: false,
            ..LlamaOptions::default()
        },
    )
    .expect("model loads")
}

fn load(file: &str) -> LlamaEngine {
    load_parallel(file, 1)
}

fn chat(user: &str) -> RenderedPrompt {
    RenderedPrompt::Chat(vec![
        ChatMessage {
            role: "system".into(),
            content: "You are a helpful assistant.".into(),
        },
        ChatMessage {
            role: "user".into(),
            content: user.into(),
        },
    ])
}

fn generate(engine: &mut LlamaEngine, requests: &[GenerationRequest]) -> Vec<Generation> {
    let mut results: Vec<Option<Generation>> = vec![None; requests.len()];
    engine.generate_batch(requests, &mut |event| {
        if let GenerationEvent::Finished(i, outcome) = event {
            results[i] = Some(outcome.expect("generation succeeds"));
        }
        Flow::Continue
    });
    results
        .into_iter()
        .map(|r| r.expect("every request finished"))
        .collect()
}

fn params(max_tokens: u32) -> SamplingParams {
    SamplingParams {
        max_tokens,
        ..SamplingParams::default()
    }
}

#[test]
fn chatml_rendering_matches_snapshot() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let engine = load(SMOLLM2);
    let text = engine.render_prompt(&chat("Name a colour.")).unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n"
    );
    // Special tokens are parsed as single tokens, not spelled out.
    let tokens = engine.count_tokens(&text).unwrap();
    assert!(
        tokens < 30,
        "ChatML markers should be single tokens, got {tokens} tokens"
    );
}

#[test]
fn schema_constrained_output_always_parses_and_validates() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Four sequences in one batch, each with its own grammar state.
    let mut engine = load_parallel(SMOLLM2, 4);
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 40},
            "population": {"type": "integer", "minimum": 0},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3}
        },
        "required": ["city", "population", "tags"],
        "additionalProperties": false
    });
    let validator = jsonschema::validator_for(&schema).unwrap();
    // Greedy plus sampled runs at a high temperature: the grammar must hold either way.
    let requests: Vec<GenerationRequest> = [(0.0, 1), (1.2, 1), (1.2, 2), (1.2, 3)]
        .iter()
        .map(|&(temperature, seed)| GenerationRequest {
            prompt: chat("Describe Lisbon as JSON."),
            params: SamplingParams {
                temperature,
                seed,
                max_tokens: 200,
                ..SamplingParams::default()
            },
            schema: Some(schema.clone()),
            grammar: None,
            tools: None,
        })
        .collect();
    for generation in generate(&mut engine, &requests) {
        assert_eq!(generation.finish, FinishReason::EndOfText, "{generation:?}");
        let value: serde_json::Value = serde_json::from_str(&generation.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", generation.text));
        assert!(validator.is_valid(&value), "does not validate: {value}");
    }
}

#[test]
fn stop_sequences_end_generation() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Both requests in one batch: the stop applies to its own sequence only.
    let mut engine = load_parallel(SMOLLM2, 2);
    let request = GenerationRequest {
        prompt: chat("Count from 1 to 20, one number per line."),
        params: SamplingParams {
            stop: vec!["\n".into()],
            ..params(100)
        },
        schema: None,
        grammar: None,
        tools: None,
    };
    let unstopped = GenerationRequest {
        params: params(100),
        ..request.clone()
    };
    let results = generate(&mut engine, &[request, unstopped]);
    assert_eq!(
        results[0].finish,
        FinishReason::StopSequence,
        "{:?}",
        results[0]
    );
    assert!(!results[0].text.contains('\n'));
    assert!(
        results[1].text.contains('\n'),
        "without the stop the model writes lines: {:?}",
        results[1].text
    );
    assert!(results[1].text.starts_with(&results[0].text));
}

#[test]
fn same_seed_gives_the_same_output() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut engine = load(SMOLLM2);
    let sampled = |seed| GenerationRequest {
        prompt: chat("Write a short poem about the sea."),
        params: SamplingParams {
            temperature: 0.9,
            seed,
            ..params(40)
        },
        schema: None,
        grammar: None,
        tools: None,
    };
    let results = generate(&mut engine, &[sampled(7), sampled(7), sampled(8)]);
    assert_eq!(results[0].text, results[1].text);
    // Measurements are recorded for every cell.
    for r in &results {
        assert!(r.prompt_tokens > 10 && r.completion_tokens > 0, "{r:?}");
        assert!(r.ttft_ms > 0.0 && r.total_ms >= r.ttft_ms, "{r:?}");
        assert!(r.tokens_per_s.unwrap_or(0.0) > 0.0, "{r:?}");
    }
}

#[test]
fn base_model_completion_works() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut engine = load(GEMMA);
    assert!(
        !engine.capabilities().chat_template,
        "Gemma-3-270M base has no chat template"
    );
    let request = GenerationRequest {
        prompt: RenderedPrompt::Completion(
            "Country: Japan\nCapital: Tokyo\n\nCountry: France\nCapital:".into(),
        ),
        params: SamplingParams {
            stop: vec!["\n".into()],
            ..params(10)
        },
        schema: None,
        grammar: None,
        tools: None,
    };
    let result = &generate(&mut engine, &[request])[0];
    assert!(result.text.contains("Paris"), "{result:?}");
    assert!(
        engine.render_prompt(&chat("hi")).is_err(),
        "chat prompts need a template"
    );
}

#[test]
fn cancelling_stops_between_tokens() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut engine = load(SMOLLM2);
    let request = GenerationRequest {
        prompt: chat("Tell me a long story."),
        params: params(200),
        schema: None,
        grammar: None,
        tools: None,
    };
    let mut tokens = 0;
    let mut finished = Vec::new();
    engine.generate_batch(&[request.clone(), request], &mut |event| match event {
        GenerationEvent::Token(..) => {
            tokens += 1;
            if tokens == 5 {
                Flow::Stop
            } else {
                Flow::Continue
            }
        }
        GenerationEvent::Finished(i, outcome) => {
            finished.push((i, outcome.unwrap()));
            Flow::Continue
        }
        GenerationEvent::Started(_) => Flow::Continue,
    });
    assert_eq!(finished.len(), 1, "the second request never starts");
    assert_eq!(finished[0].1.finish, FinishReason::Cancelled);
    assert!(finished[0].1.completion_tokens <= 6);
}

#[test]
fn batched_generation_is_deterministic_and_completes_every_request() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Six requests sharing a long system prompt (the prefix is decoded once), through
    // three slots: slots are reused as requests finish.
    let system = "You are a terse assistant. Answer in one short sentence. Never use lists. \
        Do not greet the user. Do not apologise. Prefer common words.";
    let requests: Vec<GenerationRequest> =
        ["a cat", "the sea", "a tree", "bread", "rain", "a clock"]
            .iter()
            .map(|topic| GenerationRequest {
                prompt: RenderedPrompt::Chat(vec![
                    ChatMessage {
                        role: "system".into(),
                        content: system.into(),
                    },
                    ChatMessage {
                        role: "user".into(),
                        content: format!("Describe {topic}."),
                    },
                ]),
                params: params(24),
                schema: None,
                grammar: None,
                tools: None,
            })
            .collect();
    let mut batched = load_parallel(SMOLLM2, 3);
    let first = generate(&mut batched, &requests);
    let second = generate(&mut batched, &requests);
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a.text, b.text, "same batch, same greedy output");
        assert!(!a.text.trim().is_empty());
        assert!(a.prompt_tokens > 30, "{a:?}");
    }
    let distinct: std::collections::HashSet<_> = first.iter().map(|g| g.text.clone()).collect();
    assert!(
        distinct.len() >= 4,
        "different questions get different answers: {distinct:?}"
    );
}

/// A conversation that grows turn by turn re-reads only its new part: the engine keeps the
/// last request's KV cache (`keep_conversation`) and decodes from the common start. The
/// answers stay right whether the next prompt extends the last one, diverges from it after
/// the system message, or is unrelated.
#[test]
fn a_kept_conversation_decodes_only_its_new_tokens() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut engine = LlamaEngine::load(
        &real_model(SMOLLM2),
        &LlamaOptions {
            keep_conversation: true,
            ..LlamaOptions::one_conversation(Some(1024))
        },
    )
    .expect("model loads");
    let ask = |engine: &mut LlamaEngine, prompt: RenderedPrompt| {
        let request = GenerationRequest {
            prompt,
            params: params(12),
            schema: None,
            grammar: None,
            tools: None,
        };
        generate(engine, std::slice::from_ref(&request)).remove(0)
    };
    let first = ask(&mut engine, chat("What is the capital of Japan?"));
    assert_eq!(first.cached_prompt_tokens, 0);
    assert!(first.text.contains("Tokyo"), "{}", first.text);

    // The next turn starts with the whole first exchange.
    let RenderedPrompt::Chat(mut turns) = chat("What is the capital of Japan?") else {
        unreachable!()
    };
    turns.push(ChatMessage {
        role: "assistant".into(),
        content: first.text.clone(),
    });
    turns.push(ChatMessage {
        role: "user".into(),
        content: "And the capital of Kenya?".into(),
    });
    let second = ask(&mut engine, RenderedPrompt::Chat(turns));
    assert!(
        second.cached_prompt_tokens >= first.prompt_tokens,
        "kept {} of {} prompt tokens; the first prompt had {}",
        second.cached_prompt_tokens,
        second.prompt_tokens,
        first.prompt_tokens
    );
    assert!(second.text.contains("Nairobi"), "{}", second.text);

    // Diverging after the system message: the rest of the cache is dropped, not reused.
    let third = ask(&mut engine, chat("What is the capital of Kenya?"));
    assert!(third.cached_prompt_tokens > 0);
    assert!(third.cached_prompt_tokens < second.cached_prompt_tokens);
    assert!(third.text.contains("Nairobi"), "{}", third.text);

    // Unrelated text: nothing in common, the answer is the one a fresh engine gives.
    let completion = RenderedPrompt::Completion("The capital of Italy is".into());
    let fourth = ask(&mut engine, completion.clone());
    let fresh = ask(&mut load(SMOLLM2), completion);
    assert_eq!(fourth.cached_prompt_tokens, 0);
    assert_eq!(fourth.text, fresh.text);
}
