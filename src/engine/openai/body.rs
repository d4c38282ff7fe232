//! Reading a server's reply body within a limit: a server that never stops sending gets
//! an error, not the client's memory.

use super::{AttemptError, describe};

/// The most a reply may hold: far beyond any real completion, and a server that sends
/// more is broken or hostile, so the client stops reading instead of filling memory.
pub(super) const MAX_REPLY_BYTES: usize = 16 << 20;
/// The most of an error reply that is read.
pub(super) const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

pub(super) fn too_large() -> AttemptError {
    AttemptError::Fatal(format!(
        "the server's reply is over {} MiB; not read further",
        MAX_REPLY_BYTES >> 20
    ))
}

pub(super) enum ReadFault {
    /// The body is longer than the limit; its first `limit` bytes.
    TooLarge(Vec<u8>),
    Broken(String),
}

/// A body read up to `limit` bytes.
pub(super) async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, ReadFault> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    let room = limit - body.len();
                    body.extend_from_slice(&chunk[..room]);
                    return Err(ReadFault::TooLarge(body));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(ReadFault::Broken(describe(&e))),
        }
    }
}
