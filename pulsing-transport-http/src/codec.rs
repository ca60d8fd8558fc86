//! The msgpack bodies and stream frames of `docs/protocol.md`, encoded and decoded without IO.
//!
//! Everything here works on [`Bytes`] in memory: the server and client feed it complete bodies (or,
//! for streams, chunks into a [`FrameDecoder`]) and write out what it returns. Decoded payloads are
//! slices of the input buffer, not copies; encoded bodies return the payload as a separate [`Bytes`]
//! ([`Encoded`]) so large payloads go out without being copied.
//!
//! msgpack is read and written with the low-level `rmp` crate rather than `rmp-serde`: the shapes are
//! four small maps, a hand-written reader can slice the payload out of the input without a copy, skip
//! unknown keys (forward compatibility), refuse duplicate keys and bound nesting, and the hot path
//! pays for no serde machinery.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use pulsing_core::PulsingError;
use rmp::Marker;

/// Deepest nesting accepted inside an unknown value (protocol.md §2).
pub const MAX_DEPTH: usize = 32;

/// Payloads up to this size are copied next to their header into one buffer; larger ones are sent as
/// a separate chunk (no copy).
const INLINE_PAYLOAD: usize = 4096;

/// A message as it crosses the wire: `{"msg_type": str, "payload": bin}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// What kind of message; the actor dispatches on it.
    pub msg_type: String,
    /// The message body; when decoded, a slice of the received buffer.
    pub payload: Bytes,
}

/// An error as it crosses the wire: `{"kind": str, "message": str}`, plus `"detail": str` when there
/// is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// The stable kind (`not_found`, `timeout`, ...; protocol.md §5).
    pub kind: String,
    /// The human-readable text.
    pub message: String,
    /// Free text for a human (e.g. a remote traceback); `None` when absent.
    pub detail: Option<String>,
}

impl WireError {
    /// The wire form of `err`: its kind ([`protocol::wire_kind`](crate::protocol::wire_kind)), its
    /// [`wire_message`](PulsingError::wire_message) and its [`wire_detail`](PulsingError::wire_detail).
    pub fn from_error(err: &PulsingError) -> WireError {
        WireError {
            kind: crate::protocol::wire_kind(err).to_owned(),
            message: err.wire_message(),
            detail: err.wire_detail().map(str::to_owned),
        }
    }

    /// The error this wire form stands for, kind, message and detail kept
    /// ([`PulsingError::from_wire_detail`]).
    pub fn into_error(self) -> PulsingError {
        PulsingError::from_wire_detail(&self.kind, self.message, self.detail)
    }
}

/// The body of a single-reply response: `{"result": ..}` or `{"error": ..}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `{"result": {"msg_type", "payload"}}`
    Result(Envelope),
    /// `{"error": {"kind", "message", "detail"?}}`
    Error(WireError),
}

/// One frame of a streamed reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamFrame {
    /// `{"msg_type", "payload"}`: one item.
    Item(Envelope),
    /// `{"error": {"kind", "message", "detail"?}}`: the stream failed.
    Error(WireError),
    /// `{"end": true}`: the end marker.
    End,
}

/// Why a body or frame could not be decoded. The text says what was wrong and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(String);

impl DecodeError {
    fn new(msg: impl Into<String>) -> DecodeError {
        DecodeError(msg.into())
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

impl From<DecodeError> for PulsingError {
    fn from(e: DecodeError) -> Self {
        PulsingError::BadMessage(e.0)
    }
}

/// An encoded body: `head` then `payload`, to be written in this order. `payload` is empty when it was
/// small enough to be copied into `head`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoded {
    /// Everything before the payload bytes (and the payload itself when it is small).
    pub head: Bytes,
    /// The payload, shared with the caller's buffer; empty if inlined.
    pub payload: Bytes,
}

impl Encoded {
    /// The whole body in one buffer (copies; for tests and small bodies).
    pub fn to_bytes(&self) -> Bytes {
        if self.payload.is_empty() {
            return self.head.clone();
        }
        let mut out = BytesMut::with_capacity(self.len());
        out.put_slice(&self.head);
        out.put_slice(&self.payload);
        out.freeze()
    }

    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.head.len() + self.payload.len()
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// ---------------------------------------------------------------------------------------------------
// Encoding. Writing into a `Vec` cannot fail, and every length we write is below `u32::MAX` (bodies are
// bounded by the message size limit), so the `rmp` results are infallible here.

const VEC_WRITE: &str = "writing msgpack into a Vec cannot fail";

fn put_map(out: &mut Vec<u8>, len: u32) {
    rmp::encode::write_map_len(out, len).expect(VEC_WRITE);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    rmp::encode::write_str(out, s).expect(VEC_WRITE);
}

/// Writes `"msg_type": .., "payload": <bin header>` and returns the payload to append (inlined when
/// small).
fn put_envelope_fields(out: &mut Vec<u8>, msg_type: &str, payload: &Bytes) -> Bytes {
    put_str(out, "msg_type");
    put_str(out, msg_type);
    put_str(out, "payload");
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    rmp::encode::write_bin_len(out, len).expect(VEC_WRITE);
    if payload.len() <= INLINE_PAYLOAD {
        out.extend_from_slice(payload);
        Bytes::new()
    } else {
        payload.clone()
    }
}

/// `{"msg_type": msg_type, "payload": payload}`, the request body of `POST /actor/{name}`.
pub fn encode_envelope(msg_type: &str, payload: &Bytes) -> Encoded {
    let mut out = Vec::with_capacity(32 + msg_type.len() + payload.len().min(INLINE_PAYLOAD));
    put_map(&mut out, 2);
    let payload = put_envelope_fields(&mut out, msg_type, payload);
    Encoded {
        head: out.into(),
        payload,
    }
}

/// `{"result": {"msg_type": .., "payload": ..}}`, the body of a single reply.
pub fn encode_result(msg_type: &str, payload: &Bytes) -> Encoded {
    let mut out = Vec::with_capacity(40 + msg_type.len() + payload.len().min(INLINE_PAYLOAD));
    put_map(&mut out, 1);
    put_str(&mut out, "result");
    put_map(&mut out, 2);
    let payload = put_envelope_fields(&mut out, msg_type, payload);
    Encoded {
        head: out.into(),
        payload,
    }
}

/// Writes `"msg_type": .., "payload": ..` with the payload always copied in (a link frame goes into
/// the link's send buffer whole).
fn put_envelope_fields_inline(out: &mut Vec<u8>, msg_type: &str, payload: &[u8]) {
    put_str(out, "msg_type");
    put_str(out, msg_type);
    put_str(out, "payload");
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    rmp::encode::write_bin_len(out, len).expect(VEC_WRITE);
    out.extend_from_slice(payload);
}

fn put_error(out: &mut Vec<u8>, e: &WireError) {
    put_map(out, 1);
    put_str(out, "error");
    put_error_map(out, e);
}

/// Writes the error object `{"kind", "message", "detail"?}`.
fn put_error_map(out: &mut Vec<u8>, e: &WireError) {
    put_map(out, if e.detail.is_some() { 3 } else { 2 });
    put_str(out, "kind");
    put_str(out, &e.kind);
    put_str(out, "message");
    put_str(out, &e.message);
    if let Some(detail) = &e.detail {
        put_str(out, "detail");
        put_str(out, detail);
    }
}

/// `{"error": {"kind": .., "message": .., "detail": ..}}`, the body of an error response; `detail` is
/// left out when it is `None`.
pub fn encode_error(e: &WireError) -> Bytes {
    let detail = e.detail.as_ref().map_or(0, |d| 8 + d.len());
    let mut out = Vec::with_capacity(32 + e.kind.len() + e.message.len() + detail);
    put_error(&mut out, e);
    out.into()
}

/// One stream frame with its 4-byte big-endian length prefix.
pub fn encode_frame(frame: &StreamFrame) -> Encoded {
    let mut out = vec![0u8; 4];
    let payload = match frame {
        StreamFrame::Item(e) => {
            put_map(&mut out, 2);
            put_envelope_fields(&mut out, &e.msg_type, &e.payload)
        }
        StreamFrame::Error(e) => {
            put_error(&mut out, e);
            Bytes::new()
        }
        StreamFrame::End => {
            put_map(&mut out, 1);
            put_str(&mut out, "end");
            rmp::encode::write_bool(&mut out, true).expect(VEC_WRITE);
            Bytes::new()
        }
    };
    let len = u32::try_from(out.len() - 4 + payload.len()).unwrap_or(u32::MAX);
    out[..4].copy_from_slice(&len.to_be_bytes());
    Encoded {
        head: out.into(),
        payload,
    }
}

// ---------------------------------------------------------------------------------------------------
// Decoding: a cursor over one `Bytes`, slicing strings and payloads out of it.

struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
}

/// `raw` as a string; `what` names it in the error.
fn utf8<'a>(raw: &'a [u8], what: &str) -> Result<&'a str, DecodeError> {
    std::str::from_utf8(raw).map_err(|_| DecodeError::new(format!("{what}: string is not UTF-8")))
}

impl<'a> Reader<'a> {
    fn new(buf: &'a Bytes) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::new(format!(
                "truncated msgpack: {what} needs {n} bytes, {} left",
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn take_bytes(&mut self, n: usize, what: &str) -> Result<Bytes, DecodeError> {
        let start = self.pos;
        self.take(n, what)?;
        Ok(self.buf.slice(start..start + n))
    }

    fn uint(&mut self, width: usize, what: &str) -> Result<usize, DecodeError> {
        let mut b = self.take(width, what)?;
        let v = match width {
            1 => u64::from(b.get_u8()),
            2 => u64::from(b.get_u16()),
            4 => u64::from(b.get_u32()),
            _ => b.get_u64(),
        };
        usize::try_from(v).map_err(|_| DecodeError::new(format!("{what}: length too large")))
    }

    fn marker(&mut self, what: &str) -> Result<Marker, DecodeError> {
        let b = self.take(1, what)?[0];
        Ok(Marker::from_u8(b))
    }

    fn map_len(&mut self, what: &str) -> Result<usize, DecodeError> {
        match self.marker(what)? {
            Marker::FixMap(n) => Ok(usize::from(n)),
            Marker::Map16 => self.uint(2, what),
            Marker::Map32 => self.uint(4, what),
            m => Err(DecodeError::new(format!(
                "{what}: expected a map, found {m:?}"
            ))),
        }
    }

    fn str_after(&mut self, m: Marker, what: &str) -> Result<Option<&'a str>, DecodeError> {
        let n = match m {
            Marker::FixStr(n) => usize::from(n),
            Marker::Str8 => self.uint(1, what)?,
            Marker::Str16 => self.uint(2, what)?,
            Marker::Str32 => self.uint(4, what)?,
            _ => return Ok(None),
        };
        let raw = self.take(n, what)?;
        utf8(raw, what).map(Some)
    }

    /// The bytes of a string, not checked for UTF-8. For map keys and frame types: matching them
    /// against known (ASCII) names needs no check, and only a name matching none is checked
    /// ([`utf8`]), so every string still has to be UTF-8 (the checks were about a fifth of a
    /// small link frame's decoding).
    fn raw_str(&mut self, what: &str) -> Result<&'a [u8], DecodeError> {
        let m = self.marker(what)?;
        let n = match m {
            Marker::FixStr(n) => usize::from(n),
            Marker::Str8 => self.uint(1, what)?,
            Marker::Str16 => self.uint(2, what)?,
            Marker::Str32 => self.uint(4, what)?,
            _ => {
                return Err(DecodeError::new(format!(
                    "{what}: expected a string, found {m:?}"
                )))
            }
        };
        self.take(n, what)
    }

    fn str(&mut self, what: &str) -> Result<&'a str, DecodeError> {
        let m = self.marker(what)?;
        self.str_after(m, what)?
            .ok_or_else(|| DecodeError::new(format!("{what}: expected a string, found {m:?}")))
    }

    /// A string, or `None` for `nil`.
    fn opt_str(&mut self, what: &str) -> Result<Option<&'a str>, DecodeError> {
        match self.marker(what)? {
            Marker::Null => Ok(None),
            m => self.str_after(m, what)?.map(Some).ok_or_else(|| {
                DecodeError::new(format!("{what}: expected a string or nil, found {m:?}"))
            }),
        }
    }

    /// `bin` (or, leniently, `str`) as a zero-copy slice.
    fn bin(&mut self, what: &str) -> Result<Bytes, DecodeError> {
        let m = self.marker(what)?;
        let n = match m {
            Marker::Bin8 | Marker::Str8 => self.uint(1, what)?,
            Marker::Bin16 | Marker::Str16 => self.uint(2, what)?,
            Marker::Bin32 | Marker::Str32 => self.uint(4, what)?,
            Marker::FixStr(n) => usize::from(n),
            m => {
                return Err(DecodeError::new(format!(
                    "{what}: expected bin, found {m:?}"
                )))
            }
        };
        self.take_bytes(n, what)
    }

    fn bool(&mut self, what: &str) -> Result<bool, DecodeError> {
        match self.marker(what)? {
            Marker::True => Ok(true),
            Marker::False => Ok(false),
            m => Err(DecodeError::new(format!(
                "{what}: expected a bool, found {m:?}"
            ))),
        }
    }

    /// Skips one value of any type, at most [`MAX_DEPTH`] levels deep.
    fn skip(&mut self, depth: usize) -> Result<(), DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::new("msgpack nested too deeply"));
        }
        let what = "value";
        let m = self.marker(what)?;
        if self.str_after(m, what)?.is_some() {
            return Ok(());
        }
        let (fixed, items) = match m {
            Marker::Null | Marker::True | Marker::False | Marker::FixPos(_) | Marker::FixNeg(_) => {
                (0, 0)
            }
            Marker::U8 | Marker::I8 => (1, 0),
            Marker::U16 | Marker::I16 => (2, 0),
            Marker::U32 | Marker::I32 | Marker::F32 => (4, 0),
            Marker::U64 | Marker::I64 | Marker::F64 => (8, 0),
            Marker::Bin8 => (self.uint(1, what)?, 0),
            Marker::Bin16 => (self.uint(2, what)?, 0),
            Marker::Bin32 => (self.uint(4, what)?, 0),
            Marker::FixExt1 => (2, 0),
            Marker::FixExt2 => (3, 0),
            Marker::FixExt4 => (5, 0),
            Marker::FixExt8 => (9, 0),
            Marker::FixExt16 => (17, 0),
            Marker::Ext8 => (self.uint(1, what)? + 1, 0),
            Marker::Ext16 => (self.uint(2, what)? + 1, 0),
            Marker::Ext32 => (self.uint(4, what)?.saturating_add(1), 0),
            Marker::FixArray(n) => (0, usize::from(n)),
            Marker::Array16 => (0, self.uint(2, what)?),
            Marker::Array32 => (0, self.uint(4, what)?),
            Marker::FixMap(n) => (0, 2 * usize::from(n)),
            Marker::Map16 => (0, 2 * self.uint(2, what)?),
            Marker::Map32 => (0, self.uint(4, what)?.saturating_mul(2)),
            m => return Err(DecodeError::new(format!("invalid msgpack marker {m:?}"))),
        };
        self.take(fixed, what)?;
        for _ in 0..items {
            // Each item takes at least one byte, so a huge declared count fails when the input ends.
            self.skip(depth + 1)?;
        }
        Ok(())
    }

    fn finish(&self, what: &str) -> Result<(), DecodeError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(DecodeError::new(format!(
                "{what}: {} trailing bytes after the msgpack value",
                self.remaining()
            )))
        }
    }
}

/// Remembers which keys of a map were seen, to refuse duplicates.
fn first_time(seen: &mut u8, bit: u8, key: &str) -> Result<(), DecodeError> {
    if *seen & bit != 0 {
        return Err(DecodeError::new(format!("duplicate key {key:?}")));
    }
    *seen |= bit;
    Ok(())
}

/// The `msg_type` and `payload` keys of a map being read (an envelope, or a stream item frame).
#[derive(Default)]
struct MessageKeys {
    /// Bit 1: `msg_type` seen; bit 2: `payload` seen; other bits are the caller's.
    seen: u8,
    msg_type: Option<String>,
    payload: Bytes,
}

impl MessageKeys {
    /// Reads the value of `key` if it is `msg_type` or `payload`; `Ok(false)` for any other key
    /// (its value still unread).
    fn read(&mut self, r: &mut Reader<'_>, key: &[u8]) -> Result<bool, DecodeError> {
        match key {
            b"msg_type" => {
                first_time(&mut self.seen, 1, "msg_type")?;
                self.msg_type = Some(r.str("msg_type")?.to_owned());
            }
            b"payload" => {
                first_time(&mut self.seen, 2, "payload")?;
                self.payload = r.bin("payload")?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Reads the fields of an envelope map whose length was already read.
fn envelope_fields(r: &mut Reader<'_>, n: usize, what: &str) -> Result<Envelope, DecodeError> {
    let mut keys = MessageKeys::default();
    for _ in 0..n {
        let key = r.raw_str("map key")?;
        if !keys.read(r, key)? {
            utf8(key, "map key")?;
            r.skip(1)?;
        }
    }
    let MessageKeys {
        msg_type, payload, ..
    } = keys;
    let msg_type =
        msg_type.ok_or_else(|| DecodeError::new(format!("{what}: missing key \"msg_type\"")))?;
    Ok(Envelope { msg_type, payload })
}

fn error_fields(r: &mut Reader<'_>) -> Result<WireError, DecodeError> {
    let n = r.map_len("error")?;
    let mut seen = 0u8;
    let (mut kind, mut message, mut detail) = (None, String::new(), None);
    for _ in 0..n {
        match r.str("map key")? {
            "kind" => {
                first_time(&mut seen, 1, "kind")?;
                kind = Some(r.str("kind")?.to_owned());
            }
            "message" => {
                first_time(&mut seen, 2, "message")?;
                message = r.str("message")?.to_owned();
            }
            "detail" => {
                first_time(&mut seen, 4, "detail")?;
                // A nil detail is read as none: what a client writing `None` for "no detail" sends.
                detail = r.opt_str("detail")?.map(str::to_owned);
            }
            _ => r.skip(1)?,
        }
    }
    let kind = kind.ok_or_else(|| DecodeError::new("error: missing key \"kind\""))?;
    Ok(WireError {
        kind,
        message,
        detail,
    })
}

/// Decodes the request body of `POST /actor/{name}`. The payload is a slice of `body`.
///
/// # Errors
///
/// [`DecodeError`] if `body` is not exactly one msgpack map with a `msg_type` string (protocol.md §2–3).
pub fn decode_envelope(body: &Bytes) -> Result<Envelope, DecodeError> {
    let mut r = Reader::new(body);
    let n = r.map_len("envelope")?;
    let env = envelope_fields(&mut r, n, "envelope")?;
    r.finish("envelope")?;
    Ok(env)
}

/// Decodes a single-reply body (`{"result": ..}`) or an error body (`{"error": ..}`).
///
/// # Errors
///
/// [`DecodeError`] if `body` is neither.
pub fn decode_reply(body: &Bytes) -> Result<Reply, DecodeError> {
    let mut r = Reader::new(body);
    let n = r.map_len("reply")?;
    let mut reply = None;
    for _ in 0..n {
        match r.str("map key")? {
            "result" if reply.is_none() => {
                let m = r.map_len("result")?;
                reply = Some(Reply::Result(envelope_fields(&mut r, m, "result")?));
            }
            "error" if reply.is_none() => reply = Some(Reply::Error(error_fields(&mut r)?)),
            "result" | "error" => return Err(DecodeError::new("reply: both result and error")),
            _ => r.skip(1)?,
        }
    }
    r.finish("reply")?;
    reply.ok_or_else(|| DecodeError::new("reply: neither \"result\" nor \"error\""))
}

/// Decodes the msgpack body of one stream frame (without its length prefix).
///
/// # Errors
///
/// [`DecodeError`] if `body` is not one of the three frame shapes of protocol.md §3.
pub fn decode_frame_body(body: &Bytes) -> Result<StreamFrame, DecodeError> {
    let mut r = Reader::new(body);
    let n = r.map_len("frame")?;
    let mut keys = MessageKeys::default();
    let mut other = None;
    for _ in 0..n {
        let key = r.str("map key")?;
        if keys.read(&mut r, key.as_bytes())? {
            continue;
        }
        match key {
            "error" => {
                first_time(&mut keys.seen, 4, "error")?;
                other = Some(StreamFrame::Error(error_fields(&mut r)?));
            }
            "end" => {
                first_time(&mut keys.seen, 8, "end")?;
                if !r.bool("end")? {
                    return Err(DecodeError::new("frame: \"end\" must be true"));
                }
                other = Some(StreamFrame::End);
            }
            _ => r.skip(1)?,
        }
    }
    r.finish("frame")?;
    let MessageKeys {
        seen,
        msg_type,
        payload,
    } = keys;
    match (msg_type, other) {
        (Some(msg_type), None) => Ok(StreamFrame::Item(Envelope { msg_type, payload })),
        (None, Some(frame)) if seen & 2 == 0 => Ok(frame),
        (None, None) => Err(DecodeError::new(
            "frame: none of \"msg_type\", \"error\", \"end\"",
        )),
        _ => Err(DecodeError::new("frame: mixes item, error and end keys")),
    }
}

/// Splits a stream body into frames as its chunks arrive.
///
/// Push chunks with [`push`](Self::push), then call [`next_frame`](Self::next_frame) until it returns
/// `Ok(None)` (needs more bytes). A frame announced longer than `max_frame` is an error as soon as its
/// length prefix is read, before any of it is buffered.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max_frame: usize,
}

impl FrameDecoder {
    /// A decoder refusing frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> FrameDecoder {
        FrameDecoder {
            buf: BytesMut::new(),
            max_frame,
        }
    }

    /// Appends a received chunk.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Whether bytes of an incomplete frame are buffered.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The next complete frame, or `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] for a frame over the limit or one that does not decode; the stream is broken
    /// then and the decoder should not be used further.
    pub fn next_frame(&mut self) -> Result<Option<StreamFrame>, DecodeError> {
        match split_frame(&mut self.buf, self.max_frame, "stream frame")? {
            Some(body) => decode_frame_body(&body).map(Some),
            None => Ok(None),
        }
    }
}

/// Takes one length-prefixed frame body (4-byte big-endian length, then the body) off the front of
/// `buf`, or `Ok(None)` while it is incomplete (reserving room for the rest). A length over `max`
/// is an error as soon as the prefix is read, before any of the body is buffered.
fn split_frame(buf: &mut BytesMut, max: usize, what: &str) -> Result<Option<Bytes>, DecodeError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > max {
        return Err(DecodeError::new(format!(
            "{what} of {len} bytes exceeds the limit of {max} bytes"
        )));
    }
    if buf.len() < 4 + len {
        buf.reserve(4 + len - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(len).freeze()))
}

pub mod link;

#[cfg(test)]
mod tests;
