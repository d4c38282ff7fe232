//! Prompt templates (minijinja with promptlab's filters, fuel and size limits), strict
//! and lenient about undefined variables.
//!
//! The environments are promptlab's own with a smaller step budget: inputs that loop
//! until the 20-million-step budget runs out take seconds each under AddressSanitizer,
//! which held the target to ~60 inputs a second. What the fuzzer looks for (panics,
//! hangs, memory growth) does not depend on the budget's size; the wall-clock limit, the
//! per-operator size caps and the nesting limit are kept as they are, and the default
//! budget has its own tests (`template::tests`).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use minijinja::Environment;
use promptlab::template::{self, Undefined};

const FUZZ_STEPS: u64 = 200_000;

fn environment(undefined: Undefined) -> &'static Environment<'static> {
    static STRICT: OnceLock<Environment<'static>> = OnceLock::new();
    static LENIENT: OnceLock<Environment<'static>> = OnceLock::new();
    let cell = match undefined {
        Undefined::Strict => &STRICT,
        Undefined::Lenient => &LENIENT,
    };
    cell.get_or_init(|| {
        let mut env = template::environment(undefined).clone();
        env.set_fuel(Some(FUZZ_STEPS));
        env
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let context = minijinja::Value::from_serialize(serde_json::json!({
        "name": "you", "x": 4, "data": {"a": [1, 2, {"b": null}]},
        "messages": [{"role": "user", "content": " hi "}],
    }));
    for undefined in [Undefined::Strict, Undefined::Lenient] {
        let _ = template::render_str(environment(undefined), &text, &context)
            .map_err(|e| e.to_string());
    }
});
