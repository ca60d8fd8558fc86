//! Node-to-node links (`docs/protocol.md` §8): one ordered byte stream per pair of nodes and
//! direction (a TCP connection on the HTTP port; a QUIC stream for the QUIC transport), carrying
//! asks, tells and their replies as length-prefixed msgpack frames, in order.
//!
//! - [`Links`]: the calling side, a pool of one link per peer address, opened through a [`Dial`].
//! - [`serve_link`]: the serving side, entered when a stream starts with the link preface.
//! - `outbox`: the shared sending side (ordered, batched, bounded) over a [`LinkWriter`].
//!
//! Public so other transports carry the same links over their own streams.

mod client;
mod outbox;
mod server;
mod tcp;

pub use client::{Dial, Dialing, LinkReader, Links, Unsent};
pub use outbox::LinkWriter;
pub use server::serve_link;
pub(crate) use server::serve_tcp_link;

use std::time::Duration;

/// The window of a streamed reply, in bytes: what the server may send beyond what the client's
/// consumer took. The client grants bytes back as its consumer takes items, a quarter of the
/// window at a time. (As HTTP/2's stream window: a slow consumer holds back its own stream only.)
const STREAM_WINDOW: u32 = 1024 * 1024;

/// Items buffered between the task feeding a streamed reply and its consumer.
const STREAM_ITEMS: usize = 32;

/// What an item costs of the stream window: its payload and type, plus a frame's overhead.
fn item_cost(msg_type: &str, payload: usize) -> u32 {
    u32::try_from(32 + msg_type.len() + payload)
        .unwrap_or(u32::MAX)
        .min(STREAM_WINDOW)
}

/// Bytes a frame may carry beyond its payload (type, id, names, timeout): a frame body may be
/// `max_message_size` + this.
pub(crate) const FRAME_OVERHEAD: usize = 1024;

/// How long a link to a member declared down may take to answer the PING that checks it.
const GONE_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// The size of an `ask`/`tell` frame body, over-estimated by a few bytes.
fn frame_size(to: &str, msg_type: &str, payload: usize) -> usize {
    64 + to.len() + msg_type.len() + payload
}

/// The size of a message as the limits count it: its envelope `{"msg_type", "payload"}`, as the
/// body of `POST /actor/{name}` would be (over-estimated by a few bytes).
fn envelope_size(msg_type: &str, payload: usize) -> usize {
    24 + msg_type.len() + payload
}

/// The error for a message of `size` bytes over a limit of `max`; `whose` names the limit.
fn too_large(size: usize, max: usize, whose: &str) -> pulsing_core::PulsingError {
    pulsing_core::PulsingError::TooLarge(format!(
        "a message of {size} bytes exceeds {whose} limit of {max} bytes; it was not delivered"
    ))
}

/// Makes sure a task this worker just woke (an actor given a message, a caller given its reply) can
/// be run by another worker if this one gets stuck.
///
/// Tokio puts a task woken from a running task in the waking worker's LIFO slot, which other workers
/// cannot steal from, and does not wake a parked worker for it. A link reader wakes an actor that
/// way and goes back to waiting for bytes; if the actor then spins (user code at 100% CPU), it runs
/// on this worker, and if the other workers were parked without the IO driver, nobody polls the
/// sockets: the node stops answering PINGs and gossip and is declared down (what
/// `tests/cluster_processes.rs` checks). Spawning an empty task moves the woken task out of the LIFO
/// slot into the stealable queue and wakes a parked worker, which then runs it or the driver. One
/// spawn per read that delivered something, not per message.
///
/// A current-thread runtime (the Python module's, for one) has no LIFO slot and no other worker:
/// nothing to share, so nothing is spawned there. Those spawns were about 5% of the instructions of
/// a small remote ask, both nodes together (callgrind, `bench --scenario remote_ask`).
fn share_woken() {
    let flavor = tokio::runtime::Handle::current().runtime_flavor();
    if flavor != tokio::runtime::RuntimeFlavor::CurrentThread {
        drop(tokio::spawn(async {}));
    }
}
