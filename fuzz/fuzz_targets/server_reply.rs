//! What an OpenAI-compatible server sends: an event stream cut at arbitrary places (the
//! first byte says where), and a whole JSON reply.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promptlab::engine::openai::wire::{Reply, SseData, SseDecoder};

fuzz_target!(|data: &[u8]| {
    let Some((&step, body)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut decoder = SseDecoder::default();
    let mut reply = Reply::default();
    for piece in body.chunks(step) {
        match decoder.feed(piece) {
            Ok(events) => {
                for event in events {
                    if let SseData::Json(value) = event {
                        let _ = reply.absorb(&value);
                    }
                }
            }
            Err(_) => break,
        }
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        let _ = Reply::default().absorb(&value);
    }
});
