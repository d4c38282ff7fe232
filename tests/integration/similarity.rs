//! The `similar` assertion's embeddings: all-MiniLM-L6-v2 (fetched by
//! scripts/fetch-models.sh) against the reference implementation's embeddings in
//! tests/fixtures/minilm-golden.json (scripts/minilm_golden.py), and the assertion
//! through a run with the shipped catalog's embedding model.

use crate::common::{self, TempProject, models_cache};
use promptlab::score::similarity::Embedder;

fn minilm() -> std::path::PathBuf {
    let dir = models_cache().join("all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} is missing: run scripts/fetch-models.sh",
        dir.display()
    );
    dir
}

#[test]
fn embeddings_match_sentence_transformers() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/minilm-golden.json"
    );
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let embedder = Embedder::load(&minilm()).unwrap();
    let sentences = golden["sentences"].as_array().unwrap();
    for (sentence, expected) in sentences
        .iter()
        .zip(golden["embeddings"].as_array().unwrap())
    {
        let text = sentence.as_str().unwrap();
        let ours = embedder.embed(text).unwrap();
        let expected: Vec<f64> = expected
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(ours.len(), 384);
        let worst = ours
            .iter()
            .zip(&expected)
            .map(|(a, b)| (f64::from(*a) - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-4, "{text:?}: differs by {worst}");
    }
    // Paraphrases are close, unrelated sentences are not.
    let close = embedder
        .similarity("The cat sat on the mat.", "A cat was sitting on the mat.")
        .unwrap();
    let far = embedder
        .similarity(
            "The cat sat on the mat.",
            "Stock markets fell sharply on Monday.",
        )
        .unwrap();
    assert!(close > 0.75 && far < 0.2, "{close} {far}");
}

/// all-MiniLM-L6-v2 converted to GGUF by scripts/minilm_to_gguf.py (fetch-models.sh).
fn minilm_gguf() -> std::path::PathBuf {
    let path = models_cache().join("all-MiniLM-L6-v2-f32.gguf");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-models.sh",
        path.display()
    );
    path
}

/// llama.cpp running the converted GGUF gives the reference implementation's embeddings:
/// two independent implementations (and tokenizers) agree on every golden sentence.
/// An embedding model opens through `engine::open` like any model: it says it embeds,
/// embeds as the `similar` assertion's embedder does, and refuses to generate; a
/// language model refuses to embed.
#[test]
fn embedding_models_are_engines_that_embed_and_do_not_generate() {
    use promptlab::catalog::{KindSettings, ModelEntry, ModelRef};
    use promptlab::engine::{GenerationEvent, OpenOptions, WorkerEvent};
    let model = ModelRef {
        name: "minilm".into(),
        entry: Some(ModelEntry::new(minilm(), KindSettings::Embedding)),
    };
    let worker = promptlab::engine::open(&model, &OpenOptions::default()).unwrap();
    assert!(worker.capabilities().embeddings);
    let text = "The cat sat on the mat.";
    let through_worker = worker.embed(text.into()).unwrap();
    let embedder = Embedder::load(&minilm()).unwrap();
    assert_eq!(through_worker, *embedder.embed(text).unwrap());
    let request = promptlab::engine::GenerationRequest {
        prompt: promptlab::prompt::RenderedPrompt::Completion(text.into()),
        params: Default::default(),
        schema: None,
        grammar: None,
        tools: None,
    };
    let events: Vec<WorkerEvent> = worker
        .generate(vec![request], promptlab::engine::CancelToken::new())
        .iter()
        .collect();
    let Some(WorkerEvent::Generation(GenerationEvent::Finished(0, Err(error)))) = events.first()
    else {
        panic!("expected a refusal, got {events:?}");
    };
    assert!(error.to_string().contains("does not generate"), "{error}");

    let chat = ModelRef {
        name: "smollm2".into(),
        entry: Some(ModelEntry::gguf(common::real_model(common::SMOLLM2))),
    };
    let worker = promptlab::engine::open(&chat, &OpenOptions::default()).unwrap();
    assert!(!worker.capabilities().embeddings);
    let error = worker.embed(text.into()).unwrap_err().to_string();
    assert!(error.contains("does not embed text"), "{error}");
}

#[test]
fn gguf_embeddings_through_llama_cpp_match_the_reference() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/minilm-golden.json"
    );
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let embedder = Embedder::load(&minilm_gguf()).unwrap();
    let mut lowest = 1.0f64;
    for (sentence, expected) in golden["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .zip(golden["embeddings"].as_array().unwrap())
    {
        let text = sentence.as_str().unwrap();
        let ours = embedder.embed(text).unwrap();
        assert_eq!(ours.len(), 384, "{text:?}");
        let cosine: f64 = ours
            .iter()
            .zip(expected.as_array().unwrap())
            .map(|(a, b)| f64::from(*a) * b.as_f64().unwrap())
            .sum();
        assert!(
            cosine > 0.999,
            "{text:?}: cosine with the reference {cosine}"
        );
        lowest = lowest.min(cosine);
    }
    eprintln!("lowest cosine with the reference: {lowest:.6}");
    // A GGUF without pooling (a chat model) is refused as an embedder, with the reason.
    let chat = common::real_model(common::SMOLLM2);
    let err = Embedder::load(&chat).err().expect("refused").to_string();
    assert!(err.contains("not an embedding model"), "{err}");
}

#[test]
fn similar_assertion_through_a_run() {
    let project = TempProject::new();
    project.write(
        "models/models.yaml",
        &format!(
            "models:\n  minilm:\n    path: {}\n    kind: embedding\n  minilm-gguf:\n    path: {}\n    kind: embedding\n",
            minilm().display(),
            minilm_gguf().display()
        ),
    );
    project.write(
        "prompts/echo.yaml",
        "name: echo\ncompletion: '{{ output }}'\n",
    );
    let path = project.write(
        "eval-sets/s.yaml",
        "prompts: [echo]\nmodels: [echo]\ncases:\n  - id: paraphrase\n    vars: {output: To reset your password use the login page.}\n    expected: Reset your password from the login page.\n    assert: [{type: similar}]\n  - id: unrelated\n    vars: {output: Stock markets fell sharply on Monday.}\n    assert: [{type: similar, value: Reset your password from the login page., threshold: 0.5}]\n  - id: not-similar\n    vars: {output: Stock markets fell sharply on Monday.}\n    assert: [{type: not-similar, value: Reset your password from the login page.}]\n  - id: paraphrase-gguf\n    vars: {output: To reset your password use the login page.}\n    expected: Reset your password from the login page.\n    assert: [{type: similar, provider: minilm-gguf}]\n",
    );
    let out = common::promptlab(
        &["eval", path.to_str().unwrap(), "--no-store"],
        project.root(),
    );
    let text = common::text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("3/4"), "{text}");
    assert!(
        text.contains("expected the output to be similar to \"Reset your password"),
        "{text}"
    );
}

#[test]
fn similar_names_its_embedding_model_or_is_refused() {
    let project = TempProject::new();
    project.write(
        "models/models.yaml",
        &format!(
            "models:\n  minilm:\n    path: {}\n    kind: embedding\n",
            minilm().display()
        ),
    );
    project.write(
        "prompts/echo.yaml",
        "name: echo\ncompletion: '{{ output }}'\n",
    );
    let path = project.write(
        "eval-sets/s.yaml",
        "prompts: [echo]\nmodels: [echo]\ncases:\n  - id: wrong-provider\n    vars: {output: hi}\n    assert: [{type: similar, value: hello, provider: nope}]\n",
    );
    let out = common::promptlab(
        &["eval", path.to_str().unwrap(), "--no-store"],
        project.root(),
    );
    let text = common::text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("`wrong-provider`") && text.contains("provider `nope`"),
        "{text}"
    );
}
