//! Issue 20: inputs that made llama.cpp abort the whole process.
//!
//! - A GGUF that passes the header check but makes llama.cpp abort (here SmolLM2 with
//!   `llama.expert_used_count = 2` added, which fails `GGML_ASSERT(n_expert_used_max <=
//!   hparams.n_expert)` while loading) is loaded in a child process first, so `eval`
//!   reports it and `serve` keeps serving its other models.
//! - A JSON schema that no output satisfies (`minimum` above `maximum`) left its grammar
//!   with no allowed token; the end of text was then accepted into the unfinished
//!   grammar, which llama.cpp answers with `GGML_ABORT`: one request killed `serve`.
//!   `minLength` above `maxLength` (or a pattern `a{5,2}`) made llama.cpp's grammar
//!   parser build rules until memory ran out (10 GB in 30 s).

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::common::{SMOLLM2, TempProject, real_model, text};
use crate::serve::{chat, http, start_with};

/// Copies the GGUF at `from` to `to` with one more `u32` metadata key. The tensor data
/// is copied as it is: only the header grows, and the data section stays aligned.
pub fn with_extra_u32_key(from: &Path, to: &Path, key: &str, value: u32) {
    let bytes = std::fs::read(from).unwrap();
    let mut at = 8usize; // magic, version
    let u64_at = |at: &mut usize| {
        let v = u64::from_le_bytes(bytes[*at..*at + 8].try_into().unwrap());
        *at += 8;
        v
    };
    let tensors = u64_at(&mut at);
    let kv_count = u64_at(&mut at);
    let u32_at = |at: &mut usize| {
        let v = u32::from_le_bytes(bytes[*at..*at + 4].try_into().unwrap());
        *at += 4;
        v
    };
    fn skip_value(bytes: &[u8], at: &mut usize, ty: u32) {
        let read_u64 = |at: &mut usize| {
            let v = u64::from_le_bytes(bytes[*at..*at + 8].try_into().unwrap());
            *at += 8;
            v
        };
        match ty {
            0 | 1 | 7 => *at += 1,
            2 | 3 => *at += 2,
            4..=6 => *at += 4,
            10..=12 => *at += 8,
            8 => {
                let len = read_u64(at) as usize;
                *at += len;
            }
            9 => {
                let element = u32::from_le_bytes(bytes[*at..*at + 4].try_into().unwrap());
                *at += 4;
                for _ in 0..read_u64(at) {
                    skip_value(bytes, at, element);
                }
            }
            other => panic!("GGUF value type {other}"),
        }
    }
    let mut alignment = 32u64;
    for _ in 0..kv_count {
        let len = u64_at(&mut at) as usize;
        let name = String::from_utf8_lossy(&bytes[at..at + len]).into_owned();
        at += len;
        let ty = u32_at(&mut at);
        if name == "general.alignment" {
            alignment = u64::from(u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()));
        }
        skip_value(&bytes, &mut at, ty);
    }
    let infos_start = at;
    for _ in 0..tensors {
        let len = u64_at(&mut at) as usize;
        at += len;
        let dims = u32_at(&mut at);
        at += 8 * dims as usize + 4 + 8; // dims, type, offset
    }
    let infos_end = at;
    let data_start = (infos_end as u64).div_ceil(alignment) * alignment;

    let mut out = bytes[..infos_start].to_vec();
    out[16..24].copy_from_slice(&(kv_count + 1).to_le_bytes());
    out.extend_from_slice(&(key.len() as u64).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&4u32.to_le_bytes());
    out.extend_from_slice(&value.to_le_bytes());
    out.extend_from_slice(&bytes[infos_start..infos_end]);
    out.resize(
        (out.len() as u64).div_ceil(alignment) as usize * alignment as usize,
        0,
    );
    out.extend_from_slice(&bytes[data_start as usize..]);
    std::fs::write(to, out).unwrap();
}

/// SmolLM2 with an expert count that makes llama.cpp abort while loading.
fn crashing_model(project: &TempProject) -> std::path::PathBuf {
    let path = project.root().join("models/crashes.gguf");
    with_extra_u32_key(&real_model(SMOLLM2), &path, "llama.expert_used_count", 2);
    path
}

fn catalog(crashing: &Path) -> String {
    format!(
        "models:\n  smollm2:\n    path: {}\n    context_size: 1024\n  crashes:\n    path: {}\n    context_size: 1024\n",
        real_model(SMOLLM2).display(),
        crashing.display()
    )
}

#[test]
fn issue_20_eval_reports_a_model_that_crashes_llama_cpp() {
    let project = TempProject::new();
    let crashing = crashing_model(&project);
    project.write("models/models.yaml", &catalog(&crashing));
    project.write(
        "prompts/capital.yaml",
        "name: capital\nmessages:\n  - {role: user, content: \"The capital of {{ country }} is\"}\nparams: {max_tokens: 4}\n",
    );
    project.write(
        "eval-sets/capitals.yaml",
        "name: capitals\nprompts: [capital]\nmodels: [crashes, smollm2]\ncases:\n  - vars: {country: France}\n    assert: [{type: icontains, value: Paris}]\n",
    );
    let cache = tempfile::tempdir().unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_promptlab"))
            .args(["eval", "capitals", "--no-cache"])
            .current_dir(project.root())
            .env("XDG_CACHE_HOME", cache.path())
            .output()
            .unwrap()
    };
    let out = run();
    let all = text(&out);
    // Not 134 (an abort): the run ends with its cells, the crashing model's as errors.
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(all.contains("crashed while loading"), "{all}");
    assert!(
        all.contains("GGML_ASSERT(n_expert_used_max <= hparams.n_expert)"),
        "{all}"
    );
    assert!(all.contains("crashes.gguf"), "{all}");
    // SmolLM2's cell ran; only the file that loaded is remembered as loaded.
    assert!(all.contains("smollm2"), "{all}");
    let markers = || {
        std::fs::read_dir(cache.path().join("promptlab/loaded"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert_eq!(markers(), 1);
    // The next run tries the crashing file again (it may have been replaced) and says
    // the same.
    let again = run();
    assert_eq!(again.status.code(), Some(3), "{}", text(&again));
    assert!(text(&again).contains("crashed while loading"));
    assert_eq!(markers(), 1);
}

#[test]
fn issue_20_serve_survives_a_model_that_crashes_llama_cpp() {
    let project = TempProject::new();
    let crashing = crashing_model(&project);
    let server = start_with(&catalog(&crashing), None);
    let request = |model: &str| {
        json!({"model": model, "max_tokens": 4, "temperature": 0,
               "messages": [{"role": "user", "content": "Say hi"}]})
    };
    let (status, body) = chat(server.port, request("crashes"));
    assert_eq!(status, 500, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("crashed while loading"), "{body}");
    assert!(message.contains("GGML_ASSERT"), "{body}");
    // The server is still there, serves its other model, and no longer lists this one.
    let (status, body) = chat(server.port, request("smollm2"));
    assert_eq!(status, 200, "{body}");
    assert!(
        body["choices"][0]["message"]["content"].is_string(),
        "{body}"
    );
    let (status, listed) = http(server.port, "GET", "/v1/models", b"", &[]);
    assert_eq!(status, 200);
    assert!(
        listed.contains("smollm2") && !listed.contains("crashes"),
        "{listed}"
    );
    // Asking again answers from memory: the same error, and the file is not loaded again.
    let (status, body) = chat(server.port, request("crashes"));
    assert_eq!(status, 500, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("crashed")
    );
}

#[test]
fn issue_20_serve_survives_schemas_that_no_output_satisfies() {
    let server = start_with(
        &format!(
            "models:\n  smollm2:\n    path: {}\n    context_size: 1024\n",
            real_model(SMOLLM2).display()
        ),
        None,
    );
    let request = |schema: serde_json::Value, stream: bool| {
        json!({"model": "smollm2", "max_tokens": 64, "temperature": 0, "stream": stream,
               "messages": [{"role": "user", "content": "Give a number."}],
               "response_format": {"type": "json_schema",
                                   "json_schema": {"name": "n", "schema": schema}}})
    };
    for schema in [
        json!({"type": "integer", "minimum": 5, "maximum": 2}),
        json!({"type": "object", "properties": {"n": {"type": "integer", "minimum": 7, "maximum": 3}},
               "required": ["n"]}),
        json!({"type": "array", "items": {"type": "integer", "minimum": 9, "maximum": 1}, "minItems": 1}),
        // These two made llama.cpp's grammar parser build rules until memory ran out.
        json!({"type": "string", "minLength": 5, "maxLength": 2}),
        json!({"type": "string", "pattern": "^a{5,2}$"}),
    ] {
        let (status, body) = chat(server.port, request(schema.clone(), false));
        assert_eq!(status, 400, "{schema}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("cannot be satisfied") || message.contains("no output can satisfy"),
            "{schema}: {body}"
        );
        // Streamed, the error comes as the stream's last event; the server stays up.
        let (status, text) = http(
            server.port,
            "POST",
            "/v1/chat/completions",
            request(schema.clone(), true).to_string().as_bytes(),
            &[],
        );
        assert_eq!(status, 200, "{schema}: {text}");
        assert!(text.contains("satisf"), "{schema}: {text}");
    }
    let (status, body) = chat(
        server.port,
        request(
            json!({"type": "integer", "minimum": 2, "maximum": 5}),
            false,
        ),
    );
    assert_eq!(status, 200, "{body}");
    let answer = body["choices"][0]["message"]["content"].as_str().unwrap();
    let n: i64 = answer.trim().parse().unwrap_or_else(|_| panic!("{body}"));
    assert!((2..=5).contains(&n), "{body}");
}
