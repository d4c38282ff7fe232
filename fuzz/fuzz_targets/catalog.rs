//! Model catalogs (`models/models.yaml`), local and remote entries.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("promptlab-fuzz-catalog-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("models.yaml");
    if std::fs::write(&path, data).is_ok()
        && let Err(err) = promptlab::catalog::ModelCatalog::load(&path)
    {
        assert!(!err.to_string().is_empty());
    }
});
