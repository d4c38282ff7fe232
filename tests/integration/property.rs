//! Issue 20: property tests over every input a user, a model, a remote server or a
//! downloaded file controls. Each target takes 10,000 inputs (`PROMPTLAB_PROPERTY_CASES`
//! changes it) made by mutating a seed corpus, the shipped files plus hostile shapes, with
//! a seeded generator, so a failure names a case that can be run again. The property:
//! every input gives a value or a typed error, never a panic, a stack overflow or a hang.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::copy_dir;
use promptlab::agent::convention::parse_reply;
use promptlab::agent::tools::{Calculator, Tool, ToolContext};
use promptlab::catalog::ModelCatalog;
use promptlab::engine::chat_template::ChatTemplate;
use promptlab::engine::openai::wire::{Reply, SseDecoder};
use promptlab::evalset::EvalSet;
use promptlab::gguf::GgufInfo;
use promptlab::prompt::{ChatMessage, Prompt};
use promptlab::score::judge::Grader;
use promptlab::template::{self, Undefined};
use promptlab::trace::Convention;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

fn cases() -> usize {
    std::env::var("PROMPTLAB_PROPERTY_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

/// Longest any one input may take: generous, since it only has to tell a hang from work.
const HANG: Duration = Duration::from_secs(10);

/// Fragments that tend to break parsers: nesting, template syntax, YAML structure, numbers
/// at the edges, escapes and multi-byte text.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "(",
    ")",
    ":",
    ": ",
    "- ",
    "\n",
    "\n  ",
    "\t",
    "\"",
    "'",
    "\\",
    "&a",
    "*a",
    "!!binary",
    "~",
    "null",
    "-1",
    "0",
    "1e308",
    "-1e308",
    "NaN",
    ".nan",
    ".inf",
    "18446744073709551616",
    "9^9^9",
    "^",
    "-",
    "/",
    "0.5",
    "é",
    "🦀",
    "\u{0}",
    "\u{1c}",
    "data: ",
    "[DONE]",
    "<tool_call>",
    "</tool_call>",
    "for x in range(100000)",
    "loop",
    "recursive",
    "endfor",
    "raise_exception('x')",
    "type: ",
    "value: ",
    "assert:",
];

/// One mutation round or a few: bit flips, deletions, splices of the tokens above,
/// duplicated spans, a token repeated up to 3,000 times, truncation.
fn mutate(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let at = rng.random_range(0..=out.len());
        match rng.random_range(0..8) {
            0 if !out.is_empty() => {
                let i = rng.random_range(0..out.len());
                out[i] ^= 1 << rng.random_range(0..8);
            }
            1 if at < out.len() => {
                let end = (at + rng.random_range(1..=16)).min(out.len());
                out.drain(at..end);
            }
            2 | 3 => {
                let token = TOKENS[rng.random_range(0..TOKENS.len())].as_bytes();
                out.splice(at..at, token.iter().copied());
            }
            4 if at < out.len() => {
                let end = (at + rng.random_range(1..=64)).min(out.len());
                let span = out[at..end].to_vec();
                let to = rng.random_range(0..=out.len());
                out.splice(to..to, span);
            }
            5 => {
                let token = TOKENS[rng.random_range(0..TOKENS.len())].as_bytes();
                let times = rng.random_range(1..=3000);
                let repeated: Vec<u8> = token.repeat(times);
                out.splice(at..at, repeated);
            }
            6 => out.truncate(at),
            _ if !out.is_empty() => {
                let i = rng.random_range(0..out.len());
                out[i] = rng.random();
            }
            _ => {}
        }
    }
    out
}

/// Runs `check` on `cases()` mutations of the seeds (and on each seed as is).
fn each(target: &str, seeds: &[Vec<u8>], mut check: impl FnMut(&[u8])) {
    assert!(!seeds.is_empty(), "{target}: no seeds");
    for seed in seeds {
        check(seed);
    }
    let mut rng = StdRng::seed_from_u64(0x5eed_0000 + target.len() as u64);
    for case in 0..cases() {
        let seed = &seeds[case % seeds.len()];
        let input = mutate(&mut rng, seed);
        let started = Instant::now();
        check(&input);
        let took = started.elapsed();
        assert!(
            took < HANG,
            "{target}: case {case} took {took:?}: {:?}",
            String::from_utf8_lossy(&input[..input.len().min(300)])
        );
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The files in `dir` ending in `extension`, as seeds.
fn seeds_in(dir: &str, extension: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[test]
fn eval_sets_load_or_say_why() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo("eval-sets/data"), &dir.path().join("data"));
    let path = dir.path().join("set.yaml");
    each("eval sets", &seeds_in("eval-sets", "yaml"), |input| {
        std::fs::write(&path, input).unwrap();
        if let Err(err) = EvalSet::load(&path) {
            assert!(!err.to_string().is_empty());
        }
    });
}

#[test]
fn prompt_files_parse_and_render_or_say_why() {
    let path = Path::new("prompts/p.yaml");
    let vars = minijinja::Value::from_serialize(json!({
        "question": "What is 2 + 2?", "text": "fine", "output": "a", "review": "good",
        "country": "France", "expression": "1 + 1", "ticket": "printer on fire",
    }));
    each(
        "prompts",
        &seeds_in("prompts", "yaml"),
        |input| match Prompt::parse_file(path, &text(input)) {
            Ok(prompts) => {
                for prompt in prompts {
                    let _ = prompt.render(&vars).map_err(|e| e.to_string());
                }
            }
            Err(err) => assert!(!err.to_string().is_empty()),
        },
    );
}

#[test]
fn model_catalogs_load_or_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models.yaml");
    let remote = b"models:\n  far:\n    kind: openai\n    model: m\n    endpoints: ['http://127.0.0.1:9/v1', {url: 'https://x/v1', concurrency: 4}]\n    timeout_s: 30\n    retries: 2\n".to_vec();
    let seeds = vec![std::fs::read(repo("models/models.yaml")).unwrap(), remote];
    each("model catalogs", &seeds, |input| {
        std::fs::write(&path, input).unwrap();
        if let Err(err) = ModelCatalog::load(&path) {
            assert!(!err.to_string().is_empty());
        }
    });
}

#[test]
fn promptfoo_configs_import_or_say_why() {
    let fixtures = repo("tests/fixtures/promptfoo");
    let work = tempfile::tempdir().unwrap();
    let mut seeds = Vec::new();
    let mut dirs = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("promptfooconfig.yaml").exists())
        .collect();
    entries.sort();
    for fixture in entries {
        let copy = work.path().join(fixture.file_name().unwrap());
        copy_dir(&fixture, &copy);
        seeds.push(std::fs::read(copy.join("promptfooconfig.yaml")).unwrap());
        dirs.push(copy);
    }
    let catalog = ModelCatalog::default();
    let mut case = 0;
    each("promptfoo configs", &seeds, |input| {
        // Each mutation lands in the folder of a fixture, so its file references resolve.
        let config = dirs[case % dirs.len()].join("promptfooconfig.yaml");
        case += 1;
        std::fs::write(&config, input).unwrap();
        if let Err(err) = promptlab::promptfoo::import(&config, &catalog, true) {
            assert!(!err.to_string().is_empty());
        }
    });
}

#[test]
fn templates_render_or_say_why() {
    let seeds: Vec<Vec<u8>> = [
        "Hello {{ name }}!",
        "{% for m in messages %}{{ m.role }}: {{ m.content | trim }}\n{% endfor %}",
        "{% if x > 3 %}{{ x * 2 }}{% else %}{{ x | string | upper }}{% endif %}",
        "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }}",
        "{% for i in range(3) %}{% for j in range(3) %}{{ i * j }}{% endfor %}{% endfor %}",
        "{{ data | tojson }} {{ data | dump }} {{ '[1, 2]' | load }}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let context = minijinja::Value::from_serialize(json!({
        "name": "you", "x": 4, "data": {"a": [1, 2, {"b": null}]},
        "messages": [{"role": "user", "content": " hi "}],
    }));
    each("templates", &seeds, |input| {
        for undefined in [Undefined::Strict, Undefined::Lenient] {
            let env = template::environment(undefined);
            let _ = template::render_str(env, &text(input), &context).map_err(|e| e.to_string());
        }
    });
}

#[test]
fn chat_templates_from_model_files_render_or_say_why() {
    let chatml = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
    let tools = "{%- if tools %}{{- '<|im_start|>system\n' }}{%- for tool in tools %}{{- \"\n\" }}{{- tool | tojson }}{%- endfor %}{{- \"<|im_end|>\n\" }}{%- endif %}{%- for message in messages %}{%- if message.role == \"tool\" %}<tool_response>{{ message.content }}</tool_response>{%- else %}{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}";
    let seeds = vec![chatml.as_bytes().to_vec(), tools.as_bytes().to_vec()];
    let messages = vec![
        ChatMessage {
            role: "system".into(),
            content: "Be brief.".into(),
        },
        ChatMessage {
            role: "user".into(),
            content: "Hi".into(),
        },
    ];
    let tool =
        json!({"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}});
    each("chat templates", &seeds, |input| {
        let template = ChatTemplate::new(text(input), "<s>", "</s>");
        let _ = template.render(&messages, true);
        let _ = template.render_with_tools(
            &[json!({"role": "user", "content": "Hi"})],
            std::slice::from_ref(&tool),
            true,
        );
    });
}

/// A small but complete GGUF (version 3): llama architecture, two layers, a chat
/// template, three F32 tensors and their data.
fn small_gguf() -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }
    fn key_u32(out: &mut Vec<u8>, key: &str, value: u32) {
        string(out, key);
        out.extend(4u32.to_le_bytes());
        out.extend(value.to_le_bytes());
    }
    let tensors: [(&str, [u64; 2]); 3] = [
        ("token_embd.weight", [8, 16]),
        ("blk.0.attn_q.weight", [8, 8]),
        ("blk.1.attn_q.weight", [8, 8]),
    ];
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend(6u64.to_le_bytes());
    string(&mut out, "general.architecture");
    out.extend(8u32.to_le_bytes());
    string(&mut out, "llama");
    key_u32(&mut out, "llama.block_count", 2);
    key_u32(&mut out, "llama.embedding_length", 8);
    key_u32(&mut out, "llama.attention.head_count", 2);
    key_u32(&mut out, "llama.attention.head_count_kv", 2);
    string(&mut out, "tokenizer.chat_template");
    out.extend(8u32.to_le_bytes());
    string(
        &mut out,
        "{% for m in messages %}{{ m.content }}{% endfor %}",
    );
    let mut offset = 0u64;
    for (name, dims) in tensors {
        string(&mut out, name);
        out.extend(2u32.to_le_bytes());
        for d in dims {
            out.extend(d.to_le_bytes());
        }
        out.extend(0u32.to_le_bytes()); // F32
        out.extend(offset.to_le_bytes());
        offset += dims[0] * dims[1] * 4;
    }
    while !out.len().is_multiple_of(32) {
        out.push(0);
    }
    out.extend(std::iter::repeat_n(0u8, offset as usize));
    out
}

#[test]
fn gguf_headers_read_or_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    let seed = small_gguf();
    std::fs::write(&path, &seed).unwrap();
    let info = GgufInfo::read(&path).expect("the seed itself is a valid GGUF");
    assert_eq!(info.architecture(), Some("llama"));
    each("gguf headers", &[seed], |input| {
        std::fs::write(&path, input).unwrap();
        if let Ok(info) = GgufInfo::read(&path) {
            let _ = (
                info.chat_template(),
                info.quantization(),
                info.context_length(),
            );
        }
    });
}

#[test]
fn calculator_expressions_evaluate_or_say_why() {
    let seeds: Vec<Vec<u8>> = [
        "1234 * 5678",
        "(2 + 3) ^ 4 / 7",
        "-(-(-1.5)) + 0.25",
        "2 ^ 0.5",
        "((9 ^ 10) ^ 10) ^ 10",
        "(0.5 ^ 100) ^ 100",
        "100 / (3 - 3)",
        "12 % 5 + 7 // 2",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let context = ToolContext::new(vec![std::env::temp_dir()], std::env::temp_dir());
    let mut calculator = Calculator::default();
    each("calculator", &seeds, |input| {
        let args = json!({"expression": text(input)});
        let _ = calculator.call(&args, &context);
    });
}

#[test]
fn event_streams_and_replies_from_servers_decode_or_say_why() {
    let chunk = |content: &str| json!({"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]});
    let stream = format!(
        "data: {}\n\n: keep-alive\n\ndata: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
        chunk("Hel"),
        chunk("lo"),
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 2}, "timings": {"predicted_per_second": 80.5}})
    );
    let whole = json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]}, "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}});
    let seeds = vec![stream.into_bytes(), whole.to_string().into_bytes()];
    let mut rng = StdRng::seed_from_u64(7);
    each("server replies", &seeds, |input| {
        // As a stream, split at random places.
        let mut decoder = SseDecoder::default();
        let mut reply = Reply::default();
        let mut rest = input;
        while !rest.is_empty() {
            let take = rng.random_range(1..=rest.len().min(64));
            let (piece, tail) = rest.split_at(take);
            rest = tail;
            match decoder.feed(piece) {
                Ok(events) => {
                    for event in events {
                        if let promptlab::engine::openai::wire::SseData::Json(value) = event {
                            let _ = reply.absorb(&value);
                        }
                    }
                }
                Err(_) => break,
            }
        }
        // As one JSON body.
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(input) {
            let _ = Reply::default().absorb(&value);
        }
    });
}

#[test]
fn model_replies_parse_as_calls_answers_or_verdicts() {
    let seeds: Vec<Vec<u8>> = [
        "<tool_call>\n{\"name\": \"calculator\", \"arguments\": {\"expression\": \"2 + 2\"}}\n</tool_call>",
        "{\"tool\": \"detect_objects\", \"arguments\": {\"image\": \"photos/bus.jpg\", \"classes\": [\"person\"]}}",
        "{\"answer\": \"4\"}",
        "The answer is 4.",
        "{\"reason\": \"matches\", \"pass\": true, \"score\": 0.9}",
        "{\"reason\": \"no\", \"choice\": \"B\", \"pass\": false}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    each("model replies", &seeds, |input| {
        let reply = text(input);
        for convention in [Convention::Hermes, Convention::Json, Convention::Native] {
            let _ = parse_reply(convention, &reply);
        }
        for grader in [Grader::Rubric, Grader::Factuality, Grader::ClosedQa] {
            let _ = grader.verdict(&reply, Some(0.5));
        }
    });
}
