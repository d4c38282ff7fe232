//! Chat templates as downloaded model files carry them, rendered with and without tools.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promptlab::engine::chat_template::ChatTemplate;
use promptlab::prompt::ChatMessage;

fuzz_target!(|data: &[u8]| {
    let template = ChatTemplate::new(String::from_utf8_lossy(data), "<s>", "</s>");
    let messages = [
        ChatMessage {
            role: "system".into(),
            content: "Be brief.".into(),
        },
        ChatMessage {
            role: "user".into(),
            content: "Hi".into(),
        },
    ];
    let _ = template.render(&messages, true);
    let tool = serde_json::json!({"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}});
    let _ = template.render_with_tools(
        &[serde_json::json!({"role": "user", "content": "Hi"})],
        std::slice::from_ref(&tool),
        true,
    );
});
