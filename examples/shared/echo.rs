//! The replies of the `echo` actor of `examples/echo_node.rs`, shared with the HTTP tests
//! (`tests/support/http.rs`), whose `echo` adds behaviours of its own in front of these.

use std::time::Duration;

use bytes::Bytes;
use pulsing::{ActorError, Message, MessageStream};

/// A decimal number in a payload.
fn number(payload: &[u8]) -> Result<u64, ActorError> {
    Ok(std::str::from_utf8(payload)?.trim().parse()?)
}

/// `fail` fails with `EchoError`; `stream n` streams `n` items `echo` with payloads `0`..`n-1`
/// (holding at most `stream_capacity` unread); `sleep ms` waits, then echoes; anything else is echoed
/// as `echo`.
pub(crate) async fn reply(
    msg_type: &str,
    payload: Bytes,
    stream_capacity: usize,
) -> Result<Message, ActorError> {
    match msg_type {
        "fail" => Err(ActorError::with_type("EchoError", "fail requested")),
        "stream" => {
            let n = number(&payload)?;
            let (tx, stream) = MessageStream::channel(stream_capacity);
            tokio::spawn(async move {
                for i in 0..n {
                    if tx
                        .send(Message::single("echo", i.to_string()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                tx.end().await;
            });
            Ok(Message::stream(stream))
        }
        "sleep" => {
            tokio::time::sleep(Duration::from_millis(number(&payload)?)).await;
            Ok(Message::single("echo", payload))
        }
        _ => Ok(Message::single("echo", payload)),
    }
}
