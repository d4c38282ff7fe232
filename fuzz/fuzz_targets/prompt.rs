//! Prompt files: parsed, and each prompt rendered with typical variables.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let path = std::path::Path::new("prompts/p.yaml");
    match promptlab::prompt::Prompt::parse_file(path, &text) {
        Ok(prompts) => {
            let vars = minijinja::Value::from_serialize(serde_json::json!({
                "question": "What is 2 + 2?", "text": "fine", "output": "a", "review": "good",
                "country": "France", "expression": "1 + 1", "ticket": "printer on fire",
            }));
            for prompt in prompts {
                let _ = prompt.render(&vars).map_err(|e| e.to_string());
            }
        }
        Err(err) => assert!(!err.to_string().is_empty()),
    }
});
