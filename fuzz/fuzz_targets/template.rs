//! Prompt templates (minijinja with promptlab's filters, fuel and size limits), strict
//! and lenient about undefined variables.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promptlab::template::{self, Undefined};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let context = minijinja::Value::from_serialize(serde_json::json!({
        "name": "you", "x": 4, "data": {"a": [1, 2, {"b": null}]},
        "messages": [{"role": "user", "content": " hi "}],
    }));
    for undefined in [Undefined::Strict, Undefined::Lenient] {
        let env = template::environment(undefined);
        let _ = template::render_str(env, &text, &context).map_err(|e| e.to_string());
    }
});
