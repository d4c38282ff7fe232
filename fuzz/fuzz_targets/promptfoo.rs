//! promptfoo configurations, imported as an eval set with its prompts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("promptlab-fuzz-promptfoo-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("promptfooconfig.yaml");
    let catalog = promptlab::catalog::ModelCatalog::default();
    if std::fs::write(&path, data).is_ok()
        && let Err(err) = promptlab::promptfoo::import(&path, &catalog, true)
    {
        assert!(!err.to_string().is_empty());
    }
});
