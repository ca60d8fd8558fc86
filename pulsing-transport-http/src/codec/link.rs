//! The frames of a node-to-node link (`docs/protocol.md` §8), encoded and decoded without IO.
//!
//! A link is one TCP connection that starts with [`LINK_PREFACE`] and then carries length-prefixed
//! msgpack maps both ways, each with a `"t"` key naming its type. Encoding appends to a `Vec` (the
//! link's send buffer), so many frames go out in one write; decoding slices payloads out of the
//! received buffer without copying.

use bytes::{Buf, Bytes, BytesMut};
use pulsing_core::NodeId;
use rmp::Marker;

use super::{
    envelope_fields, error_fields, put_envelope_fields_inline, put_error_map, put_map, put_str,
    split_frame, utf8, DecodeError, Envelope, MessageKeys, Reader, WireError, VEC_WRITE,
};

/// The first bytes a client sends on a link connection, before any frame. No HTTP request starts
/// with them, so the server tells a link from HTTP/1.1 and HTTP/2 by them.
pub const LINK_PREFACE: &[u8; 16] = b"PULSING-LINK/1\r\n";

/// One frame of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkFrame {
    /// Client → server: queue a message for `to`; nothing is answered.
    Tell {
        /// The actor's name (or anonymous id).
        to: String,
        /// The message.
        msg: Envelope,
    },
    /// Client → server: queue a message for `to` and answer with frames carrying `id`.
    Ask {
        /// Chosen by the client, unique among its asks in flight on this link.
        id: u64,
        /// The actor's name (or anonymous id).
        to: String,
        /// The caller's remaining time, in milliseconds; `None`: the node's own ask timeout.
        timeout_ms: Option<u64>,
        /// The message.
        msg: Envelope,
    },
    /// Client → server: the caller of ask `id` gave up; skip it if not handled yet, stop its stream.
    Cancel {
        /// The ask.
        id: u64,
    },
    /// Client → server: the caller of streamed reply `id` can take `n` more items.
    Credit {
        /// The ask whose reply streams.
        id: u64,
        /// Items.
        n: u32,
    },
    /// Client → server: answer with [`LinkFrame::Pong`] (keep-alive).
    Ping,
    /// The first frame each way: who sends and the largest message it reads. The server's hello
    /// carries its boot id; the client's may leave it out.
    Hello {
        /// The sender's boot id.
        node: Option<NodeId>,
        /// The largest message, in bytes of its envelope (as an HTTP body), the sender accepts;
        /// the other side sends none larger (`None`: no limit announced).
        max_message: Option<u64>,
    },
    /// Server → client: the single reply (or error) of ask `id`.
    Reply {
        /// The ask.
        id: u64,
        /// The reply.
        result: Result<Envelope, WireError>,
    },
    /// Server → client: the reply of ask `id` is a stream; its items follow as
    /// [`LinkFrame::Item`], then [`LinkFrame::End`] or [`LinkFrame::Fail`].
    Stream {
        /// The ask.
        id: u64,
    },
    /// Server → client: one item of streamed reply `id`.
    Item {
        /// The ask.
        id: u64,
        /// The item.
        msg: Envelope,
    },
    /// Server → client: streamed reply `id` ended.
    End {
        /// The ask.
        id: u64,
    },
    /// Server → client: streamed reply `id` failed.
    Fail {
        /// The ask.
        id: u64,
        /// Why.
        error: WireError,
    },
    /// Server → client: the answer to a [`LinkFrame::Ping`].
    Pong,
    /// Server → client: the server is shutting down and reads nothing more from this link. Asks
    /// with an id above `id` (the last ask it read; 0 if none) were not delivered; replies to the
    /// others may still come before the link closes.
    Bye {
        /// The last ask id the server read.
        id: u64,
    },
}

/// Reserves the 4-byte length prefix of a frame; returns where it starts.
fn open(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    at
}

/// Writes the length of the frame started at `at`.
fn close(out: &mut [u8], at: usize) {
    let len = u32::try_from(out.len() - at - 4).unwrap_or(u32::MAX);
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn put_type(out: &mut Vec<u8>, t: &str) {
    put_str(out, "t");
    put_str(out, t);
}

fn put_id(out: &mut Vec<u8>, id: u64) {
    put_str(out, "id");
    rmp::encode::write_uint(out, id).expect(VEC_WRITE);
}

/// Appends a `tell` frame.
pub fn put_tell(out: &mut Vec<u8>, to: &str, msg_type: &str, payload: &[u8]) {
    let at = open(out);
    put_map(out, 4);
    put_type(out, "tell");
    put_str(out, "to");
    put_str(out, to);
    put_envelope_fields_inline(out, msg_type, payload);
    close(out, at);
}

/// Appends an `ask` frame.
pub fn put_ask(
    out: &mut Vec<u8>,
    id: u64,
    to: &str,
    timeout_ms: Option<u64>,
    msg_type: &str,
    payload: &[u8],
) {
    let at = open(out);
    put_map(out, if timeout_ms.is_some() { 6 } else { 5 });
    put_type(out, "ask");
    put_id(out, id);
    put_str(out, "to");
    put_str(out, to);
    if let Some(ms) = timeout_ms {
        put_str(out, "timeout_ms");
        rmp::encode::write_uint(out, ms).expect(VEC_WRITE);
    }
    put_envelope_fields_inline(out, msg_type, payload);
    close(out, at);
}

/// Appends a frame of type `t` whose only other key is `id`.
fn put_id_only(out: &mut Vec<u8>, t: &str, id: u64) {
    let at = open(out);
    put_map(out, 2);
    put_type(out, t);
    put_id(out, id);
    close(out, at);
}

/// Appends a `cancel` frame.
pub fn put_cancel(out: &mut Vec<u8>, id: u64) {
    put_id_only(out, "cancel", id);
}

/// Appends a `credit` frame.
pub fn put_credit(out: &mut Vec<u8>, id: u64, n: u32) {
    let at = open(out);
    put_map(out, 3);
    put_type(out, "credit");
    put_id(out, id);
    put_str(out, "n");
    rmp::encode::write_uint(out, u64::from(n)).expect(VEC_WRITE);
    close(out, at);
}

/// Appends a frame with only its type (`ping`, `pong`).
fn put_bare(out: &mut Vec<u8>, t: &str) {
    let at = open(out);
    put_map(out, 1);
    put_type(out, t);
    close(out, at);
}

/// Appends a `ping` frame.
pub fn put_ping(out: &mut Vec<u8>) {
    put_bare(out, "ping");
}

/// Appends a `pong` frame.
pub fn put_pong(out: &mut Vec<u8>) {
    put_bare(out, "pong");
}

/// Appends a `bye` frame.
pub fn put_bye(out: &mut Vec<u8>, last_id: u64) {
    put_id_only(out, "bye", last_id);
}

/// Appends a `hello` frame.
pub fn put_hello(out: &mut Vec<u8>, node: Option<NodeId>, max_message: Option<u64>) {
    let at = open(out);
    put_map(
        out,
        1 + u32::from(node.is_some()) + u32::from(max_message.is_some()),
    );
    put_type(out, "hello");
    if let Some(node) = node {
        put_str(out, "node");
        put_str(out, &node.to_string());
    }
    if let Some(max) = max_message {
        put_str(out, "max_message");
        rmp::encode::write_uint(out, max).expect(VEC_WRITE);
    }
    close(out, at);
}

/// Appends a `reply` frame carrying a result.
pub fn put_reply(out: &mut Vec<u8>, id: u64, msg_type: &str, payload: &[u8]) {
    let at = open(out);
    put_map(out, 3);
    put_type(out, "reply");
    put_id(out, id);
    put_str(out, "result");
    put_map(out, 2);
    put_envelope_fields_inline(out, msg_type, payload);
    close(out, at);
}

/// Appends a `reply` frame carrying an error.
pub fn put_reply_error(out: &mut Vec<u8>, id: u64, e: &WireError) {
    let at = open(out);
    put_map(out, 3);
    put_type(out, "reply");
    put_id(out, id);
    put_str(out, "error");
    put_error_map(out, e);
    close(out, at);
}

/// Appends a `stream` frame (the reply of `id` streams).
pub fn put_stream(out: &mut Vec<u8>, id: u64) {
    put_id_only(out, "stream", id);
}

/// Appends an `item` frame.
pub fn put_item(out: &mut Vec<u8>, id: u64, msg_type: &str, payload: &[u8]) {
    let at = open(out);
    put_map(out, 4);
    put_type(out, "item");
    put_id(out, id);
    put_envelope_fields_inline(out, msg_type, payload);
    close(out, at);
}

/// Appends an `end` frame.
pub fn put_end(out: &mut Vec<u8>, id: u64) {
    put_id_only(out, "end", id);
}

/// Appends a `fail` frame.
pub fn put_fail(out: &mut Vec<u8>, id: u64, e: &WireError) {
    let at = open(out);
    put_map(out, 3);
    put_type(out, "fail");
    put_id(out, id);
    put_str(out, "error");
    put_error_map(out, e);
    close(out, at);
}

/// Appends `frame` (every kind; the hot paths call the `put_*` functions directly).
pub fn put_frame(out: &mut Vec<u8>, frame: &LinkFrame) {
    match frame {
        LinkFrame::Tell { to, msg } => put_tell(out, to, &msg.msg_type, &msg.payload),
        LinkFrame::Ask {
            id,
            to,
            timeout_ms,
            msg,
        } => put_ask(out, *id, to, *timeout_ms, &msg.msg_type, &msg.payload),
        LinkFrame::Cancel { id } => put_cancel(out, *id),
        LinkFrame::Credit { id, n } => put_credit(out, *id, *n),
        LinkFrame::Ping => put_ping(out),
        LinkFrame::Hello { node, max_message } => put_hello(out, *node, *max_message),
        LinkFrame::Reply { id, result } => match result {
            Ok(m) => put_reply(out, *id, &m.msg_type, &m.payload),
            Err(e) => put_reply_error(out, *id, e),
        },
        LinkFrame::Stream { id } => put_stream(out, *id),
        LinkFrame::Item { id, msg } => put_item(out, *id, &msg.msg_type, &msg.payload),
        LinkFrame::End { id } => put_end(out, *id),
        LinkFrame::Fail { id, error } => put_fail(out, *id, error),
        LinkFrame::Pong => put_pong(out),
        LinkFrame::Bye { id } => put_bye(out, *id),
    }
}

impl Reader<'_> {
    /// A non-negative msgpack integer.
    fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        let v = match self.marker(what)? {
            Marker::FixPos(n) => u64::from(n),
            Marker::U8 => self.uint(1, what)? as u64,
            Marker::U16 => self.uint(2, what)? as u64,
            Marker::U32 => self.uint(4, what)? as u64,
            Marker::U64 => {
                let mut b = self.take(8, what)?;
                b.get_u64()
            }
            m => {
                return Err(DecodeError::new(format!(
                    "{what}: expected a non-negative integer, found {m:?}"
                )))
            }
        };
        Ok(v)
    }
}

/// The keys of a link frame, as read (any order; unknown keys skipped).
#[derive(Default)]
struct Keys<'a> {
    seen: u16,
    t: Option<&'a [u8]>,
    id: Option<u64>,
    to: Option<&'a str>,
    timeout_ms: Option<u64>,
    n: Option<u64>,
    node: Option<&'a str>,
    max_message: Option<u64>,
    result: Option<Envelope>,
    error: Option<WireError>,
    message: MessageKeys,
}

fn once(seen: &mut u16, bit: u16, key: &str) -> Result<(), DecodeError> {
    let mask = 1 << bit;
    if *seen & mask != 0 {
        return Err(DecodeError::new(format!("duplicate key {key:?}")));
    }
    *seen |= mask;
    Ok(())
}

/// Decodes one link frame body (without its length prefix). Payloads are slices of `body`.
///
/// # Errors
///
/// [`DecodeError`] if `body` is not one msgpack map of a known frame type with its required keys
/// (`docs/protocol.md` §8).
pub fn decode_link_frame(body: &Bytes) -> Result<LinkFrame, DecodeError> {
    match fast::decode(body) {
        Some(frame) => Ok(frame),
        None => decode_general(body),
    }
}

/// Decodes any link frame: keys in any order, unknown ones skipped, every error explained.
fn decode_general(body: &Bytes) -> Result<LinkFrame, DecodeError> {
    let mut r = Reader::new(body);
    let n = r.map_len("link frame")?;
    let mut k = Keys::default();
    for _ in 0..n {
        // Known keys are matched as bytes (valid UTF-8 by construction); any other is checked.
        let key = r.raw_str("map key")?;
        match key {
            b"t" => {
                once(&mut k.seen, 0, "t")?;
                k.t = Some(r.raw_str("t")?);
            }
            b"id" => {
                once(&mut k.seen, 1, "id")?;
                k.id = Some(r.u64("id")?);
            }
            b"to" => {
                once(&mut k.seen, 2, "to")?;
                k.to = Some(r.str("to")?);
            }
            b"timeout_ms" => {
                once(&mut k.seen, 3, "timeout_ms")?;
                k.timeout_ms = Some(r.u64("timeout_ms")?);
            }
            b"n" => {
                once(&mut k.seen, 4, "n")?;
                k.n = Some(r.u64("n")?);
            }
            b"node" => {
                once(&mut k.seen, 5, "node")?;
                k.node = Some(r.str("node")?);
            }
            b"max_message" => {
                once(&mut k.seen, 8, "max_message")?;
                k.max_message = Some(r.u64("max_message")?);
            }
            b"result" => {
                once(&mut k.seen, 6, "result")?;
                let len = r.map_len("result")?;
                k.result = Some(envelope_fields(&mut r, len, "result")?);
            }
            b"error" => {
                once(&mut k.seen, 7, "error")?;
                k.error = Some(error_fields(&mut r)?);
            }
            _ => {
                if !k.message.read(&mut r, key)? {
                    utf8(key, "map key")?;
                    r.skip(1)?;
                }
            }
        }
    }
    r.finish("link frame")?;
    let t =
        k.t.ok_or_else(|| DecodeError::new("link frame: missing key \"t\""))?;
    // For the errors of a known frame type (ASCII, so shown as it is).
    let name = || String::from_utf8_lossy(t);
    let need_id = || {
        k.id.ok_or_else(|| DecodeError::new(format!("link frame {:?}: missing key \"id\"", name())))
    };
    let need_to = || {
        k.to.map(str::to_owned)
            .ok_or_else(|| DecodeError::new(format!("link frame {:?}: missing key \"to\"", name())))
    };
    let message = |keys: MessageKeys| {
        let MessageKeys {
            msg_type, payload, ..
        } = keys;
        msg_type
            .map(|msg_type| Envelope { msg_type, payload })
            .ok_or_else(|| {
                DecodeError::new(format!("link frame {:?}: missing key \"msg_type\"", name()))
            })
    };
    let need_error = |e: Option<WireError>| {
        e.ok_or_else(|| DecodeError::new(format!("link frame {:?}: missing key \"error\"", name())))
    };
    Ok(match t {
        b"tell" => LinkFrame::Tell {
            to: need_to()?,
            msg: message(k.message)?,
        },
        b"ask" => LinkFrame::Ask {
            id: need_id()?,
            to: need_to()?,
            timeout_ms: k.timeout_ms,
            msg: message(k.message)?,
        },
        b"cancel" => LinkFrame::Cancel { id: need_id()? },
        b"credit" => LinkFrame::Credit {
            id: need_id()?,
            n: k.n
                .ok_or_else(|| DecodeError::new("link frame \"credit\": missing key \"n\""))?
                .min(u64::from(u32::MAX)) as u32,
        },
        b"ping" => LinkFrame::Ping,
        b"pong" => LinkFrame::Pong,
        b"bye" => LinkFrame::Bye { id: need_id()? },
        b"hello" => LinkFrame::Hello {
            node: k
                .node
                .map(|n| n.parse())
                .transpose()
                .map_err(|e| DecodeError::new(format!("link frame \"hello\": {e}")))?,
            max_message: k.max_message,
        },
        b"reply" => {
            let id = need_id()?;
            match (k.result, k.error) {
                (Some(m), None) => LinkFrame::Reply { id, result: Ok(m) },
                (None, Some(e)) => LinkFrame::Reply { id, result: Err(e) },
                _ => {
                    return Err(DecodeError::new(
                        "link frame \"reply\": needs exactly one of \"result\" and \"error\"",
                    ))
                }
            }
        }
        b"stream" => LinkFrame::Stream { id: need_id()? },
        b"item" => LinkFrame::Item {
            id: need_id()?,
            msg: message(k.message)?,
        },
        b"end" => LinkFrame::End { id: need_id()? },
        b"fail" => LinkFrame::Fail {
            id: need_id()?,
            error: need_error(k.error)?,
        },
        other => {
            return Err(DecodeError::new(format!(
                "unknown link frame type {:?}",
                utf8(other, "t")?.chars().take(40).collect::<String>()
            )))
        }
    })
}

/// Splits the bytes of a link into frame bodies as they arrive.
///
/// Read into [`buf`](Self::buf), then call [`next_frame`](Self::next_frame) until it returns `Ok(None)`. A frame
/// announced longer than `max_frame` is an error as soon as its length prefix is read, before any
/// of it is buffered.
#[derive(Debug)]
pub struct LinkDecoder {
    /// Received bytes not yet split into frames; read into it directly.
    pub buf: BytesMut,
    max_frame: usize,
}

impl LinkDecoder {
    /// A decoder refusing frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> LinkDecoder {
        LinkDecoder {
            buf: BytesMut::with_capacity(64 * 1024),
            max_frame,
        }
    }

    /// The next complete frame, or `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] for a frame over the limit or one that does not decode; the link is broken
    /// then and must be closed.
    pub fn next_frame(&mut self) -> Result<Option<LinkFrame>, DecodeError> {
        match split_frame(&mut self.buf, self.max_frame, "link frame")? {
            Some(body) => decode_link_frame(&body).map(Some),
            None => Ok(None),
        }
    }
}

mod fast;
#[cfg(test)]
mod tests;
