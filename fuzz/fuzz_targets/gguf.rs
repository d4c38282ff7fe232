//! GGUF headers of downloaded model files: read and checked (hyper-parameters, tensor
//! shapes, as `GgufInfo::read` does) before llama.cpp ever sees the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("promptlab-fuzz-gguf-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("m.gguf");
    if std::fs::write(&path, data).is_ok()
        && let Ok(info) = promptlab::gguf::GgufInfo::read(&path)
    {
        let _ = (info.chat_template(), info.quantization(), info.context_length());
    }
});
