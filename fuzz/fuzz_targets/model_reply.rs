//! A model's reply read as a tool call or an answer (every convention), and as a judge's
//! verdict (every grader).
#![no_main]

use libfuzzer_sys::fuzz_target;
use promptlab::agent::convention::parse_reply;
use promptlab::score::judge::Grader;
use promptlab::trace::Convention;

fuzz_target!(|data: &[u8]| {
    let reply = String::from_utf8_lossy(data);
    for convention in [Convention::Hermes, Convention::Json, Convention::Native] {
        let _ = parse_reply(convention, &reply);
    }
    for grader in [Grader::Rubric, Grader::Factuality, Grader::ClosedQa] {
        let _ = grader.verdict(&reply, Some(0.5));
    }
});
