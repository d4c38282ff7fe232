//! The agent's calculator tool, whose expressions come from the model.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promptlab::agent::tools::{Calculator, Tool, ToolContext};

fuzz_target!(|data: &[u8]| {
    let context = ToolContext::new(vec![std::env::temp_dir()], std::env::temp_dir());
    let args = serde_json::json!({"expression": String::from_utf8_lossy(data)});
    let _ = Calculator.call(&args, &context);
});
