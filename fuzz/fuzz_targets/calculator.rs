//! The agent's calculator tool, whose expressions come from the model.
//!
//! The calculator runs with size limits 16 times smaller than the defaults: with the
//! defaults the corpus fills with expressions near the bounds (20,000-digit powers and
//! fractions), each taking tens of milliseconds under AddressSanitizer, which held the
//! target to ~60 inputs a second. What the fuzzer looks for (panics, hangs, memory growth)
//! runs through the same parser, arithmetic and checks at any bound; the default limits
//! have their own tests (`calculator::tests`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use promptlab::agent::tools::{CalcLimits, Calculator, Tool, ToolContext};

const FUZZ_LIMITS: CalcLimits = CalcLimits {
    max_bits: 4_096,
    max_work: 250_000,
};

fuzz_target!(|data: &[u8]| {
    let context = ToolContext::new(vec![std::env::temp_dir()], std::env::temp_dir());
    let args = serde_json::json!({"expression": String::from_utf8_lossy(data)});
    let _ = Calculator::with_limits(FUZZ_LIMITS).call(&args, &context);
});
