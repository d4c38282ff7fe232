//! Eval-set files (YAML, with their `cases:` from CSV/JSONL beside them): each input
//! loads or is refused with a message, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The loader reads a file (and files next to it), so the input becomes one in a
    // folder of its own per process.
    let dir = std::env::temp_dir().join(format!("promptlab-fuzz-eval-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("set.yaml");
    if std::fs::write(&path, data).is_ok()
        && let Err(err) = promptlab::evalset::EvalSet::load(&path)
    {
        assert!(!err.to_string().is_empty());
    }
});
