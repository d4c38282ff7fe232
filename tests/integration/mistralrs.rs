//! The mistral.rs engine (cargo feature `mistralrs`) on the real SmolLM2 GGUF: chat
//! generation through `promptlab eval --engine mistralrs`, JSON-schema output that parses,
//! both engines in one run, and what it cannot run refused with a reason: Gemma 3 (which
//! mistral.rs 0.8 panics on) before loading, a completion prompt, a missing file.

use crate::common::{GEMMA, SMOLLM2, TempProject, promptlab, real_model, text};
use serde_json::Value;

fn project() -> TempProject {
    let project = TempProject::new();
    project.write(
        "models/models.yaml",
        &format!(
            "models:\n  smollm2:\n    path: {smol}\n    context_size: 1024\n  smollm2-mistralrs:\n    path: {smol}\n    engine: mistralrs\n  gemma:\n    path: {gemma}\n    engine: mistralrs\n",
            smol = real_model(SMOLLM2).display(),
            gemma = real_model(GEMMA).display()
        ),
    );
    project.write(
        "prompts/capital.yaml",
        "name: capital\nparams: {max_tokens: 16, temperature: 0}\nmessages:\n  - role: user\n    content: \"What is the capital of {{ country }}?\"\n",
    );
    project.write(
        "prompts/json.yaml",
        "name: json\nparams: {max_tokens: 48, temperature: 0}\nschema:\n  type: object\n  properties: {city: {type: string, maxLength: 24}}\n  required: [city]\n  additionalProperties: false\nmessages:\n  - role: user\n    content: \"Capital of {{ country }} as JSON.\"\n",
    );
    project.write(
        "prompts/complete.yaml",
        "name: complete\ncompletion: \"The capital of {{ country }} is\"\n",
    );
    project.write(
        "eval-sets/capitals.yaml",
        "prompts: [capital, json]\nmodels: [smollm2, smollm2-mistralrs]\ncases:\n  - vars: {country: France}\n  - vars: {country: Japan}\n  - vars: {country: Kenya}\n",
    );
    project
}

#[test]
fn both_engines_run_the_same_model_in_one_run() {
    let project = project();
    let out = promptlab(
        &[
            "eval",
            "eval-sets/capitals.yaml",
            "--no-store",
            "--threads",
            "2",
            "-o",
            "r.json",
        ],
        project.root(),
    );
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(project.root().join("r.json"))
            .unwrap_or_else(|_| panic!("{}", text(&out))),
    )
    .unwrap();
    let columns = report["columns"].as_array().unwrap();
    for cell in report["cells"].as_array().unwrap() {
        assert!(cell["error"].is_null(), "{cell}");
        let column = &columns[cell["column"].as_u64().unwrap() as usize];
        let output = cell["output"].as_str().unwrap();
        assert!(!output.trim().is_empty(), "{cell}");
        assert!(cell["completion_tokens"].as_u64().unwrap() > 0, "{cell}");
        if column["prompt_id"] == "json" {
            let parsed: Value = serde_json::from_str(output)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {output}", column["id"]));
            assert!(parsed["city"].is_string(), "{output}");
            // A finished object ends the reply instead of running on to `max_tokens`.
            assert_eq!(cell["finish"], "end_of_text", "{cell}");
        }
        if column["model"] == "smollm2-mistralrs" {
            assert!(cell["tokens_per_s"].as_f64().unwrap_or(0.0) > 0.0, "{cell}");
        }
        // Each case gets its own answer: mistral.rs's own batching once answered all
        // three with Kenya's.
        if column["prompt_id"] == "capital" {
            let answer = match cell["case"].as_u64() {
                Some(1) => "Tokyo",
                Some(2) => "Nairobi",
                _ => continue,
            };
            assert!(output.contains(answer), "{}: {output}", column["id"]);
        }
    }
}

#[test]
fn what_mistralrs_cannot_run_is_refused_with_a_reason() {
    let project = project();
    project.write(
        "eval-sets/gemma.yaml",
        "prompts: [complete]\nmodels: [gemma]\ncases:\n  - vars: {country: France}\n",
    );
    let out = promptlab(
        &["eval", "eval-sets/gemma.yaml", "--no-store"],
        project.root(),
    );
    let said = text(&out);
    assert!(
        said.contains("mistral.rs cannot run the `gemma3` architecture"),
        "{said}"
    );
    assert!(!said.contains("panicked"), "{said}");

    project.write(
        "eval-sets/completion.yaml",
        "prompts: [complete]\nmodels: [smollm2]\ncases:\n  - vars: {country: France}\n",
    );
    let out = promptlab(
        &[
            "eval",
            "eval-sets/completion.yaml",
            "--no-store",
            "--engine",
            "mistralrs",
        ],
        project.root(),
    );
    assert!(
        text(&out).contains("runs chat prompts only"),
        "{}",
        text(&out)
    );
}
