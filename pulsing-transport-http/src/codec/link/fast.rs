//! The frames a link carries most (`ask`, `tell`, `reply` with a result, `item`, `credit`),
//! decoded by matching the exact bytes this crate's encoder writes for them.
//!
//! The general decoder takes keys in any order, skips unknown ones and explains what is wrong;
//! that cost 2.6k instructions for a streamed item, more than half of what the item cost both
//! nodes together (4.6k over HTTP), and 3.5k for each frame of an ask's round trip (callgrind,
//! `bench --scenario remote_stream|remote_ask`). This path takes 1.0k and 1.2k, most of it the
//! owned strings a frame carries. Here a frame laid out as [`super::put_ask`] and its siblings write
//! it (a fixmap, `"t"` first, the keys in their order, the smallest integer and string forms
//! msgpack allows or any wider one) is read in one pass. Anything else (another order, an unknown
//! key, a form not listed, bytes left over, a string that is not UTF-8) gives `None`, and the
//! general decoder reads the frame, or says what is wrong with it. So this path only ever agrees
//! with the general one: `decode(b) == Some(f)` implies `decode_general(b) == Ok(f)` (checked by
//! the tests, over arbitrary and mutated frames).
//!
//! It reads with a cursor of its own, not the general decoder's `Reader`: built on `Reader`'s
//! methods (each returning a `Result` that names what it read), this same path took 2.2k
//! instructions per streamed item instead of 1.0k (callgrind, `--scenario remote_stream`).

use bytes::Bytes;

use super::{Envelope, LinkFrame};

/// A cursor over one frame body; every read is bounds-checked and `None` past the end.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Option<u8> {
        let v = *self.b.get(self.pos)?;
        self.pos += 1;
        Some(v)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// The exact bytes `s` (a key with its fixstr header).
    fn lit(&mut self, s: &[u8]) -> Option<()> {
        (self.take(s.len())? == s).then_some(())
    }

    /// A big-endian unsigned integer of `n` (≤ 8) bytes.
    fn be(&mut self, n: usize) -> Option<u64> {
        let s = self.take(n)?;
        Some(s.iter().fold(0, |v, &x| v << 8 | u64::from(x)))
    }

    fn len(&mut self, n: usize) -> Option<usize> {
        usize::try_from(self.be(n)?).ok()
    }

    /// A non-negative msgpack integer (positive fixint, uint 8/16/32/64).
    fn uint(&mut self) -> Option<u64> {
        match self.byte()? {
            b @ 0x00..=0x7f => Some(u64::from(b)),
            0xcc => self.be(1),
            0xcd => self.be(2),
            0xce => self.be(4),
            0xcf => self.be(8),
            _ => None,
        }
    }

    /// A msgpack string (fixstr, str 8/16/32) that is UTF-8.
    fn str(&mut self) -> Option<&'a str> {
        let n = match self.byte()? {
            b @ 0xa0..=0xbf => usize::from(b & 0x1f),
            0xd9 => self.len(1)?,
            0xda => self.len(2)?,
            0xdb => self.len(4)?,
            _ => return None,
        };
        std::str::from_utf8(self.take(n)?).ok()
    }

    /// `"id": uint`.
    fn id(&mut self) -> Option<u64> {
        self.lit(b"\xa2id")?;
        self.uint()
    }

    /// `"msg_type": str, "payload": bin`, the payload a slice of `body` (which `self` reads).
    fn envelope(&mut self, body: &Bytes) -> Option<Envelope> {
        self.lit(b"\xa8msg_type")?;
        let msg_type = self.str()?.to_owned();
        self.lit(b"\xa7payload")?;
        let n = match self.byte()? {
            0xc4 => self.len(1)?,
            0xc5 => self.len(2)?,
            0xc6 => self.len(4)?,
            _ => return None,
        };
        let start = self.pos;
        self.take(n)?;
        Some(Envelope {
            msg_type,
            payload: body.slice(start..start + n),
        })
    }
}

/// `body` as one of the frames above, if it is laid out as this crate writes them; `None`
/// otherwise (the general decoder then reads it).
pub(super) fn decode(body: &Bytes) -> Option<LinkFrame> {
    let mut c = Cursor { b: body, pos: 0 };
    let keys = match c.byte()? {
        b @ 0x80..=0x8f => b & 0x0f,
        _ => return None,
    };
    c.lit(b"\xa1t")?;
    let frame = match (c.str()?, keys) {
        ("ask", 5 | 6) => {
            let id = c.id()?;
            c.lit(b"\xa2to")?;
            let to = c.str()?.to_owned();
            let timeout_ms = if keys == 6 {
                c.lit(b"\xaatimeout_ms")?;
                Some(c.uint()?)
            } else {
                None
            };
            LinkFrame::Ask {
                id,
                to,
                timeout_ms,
                msg: c.envelope(body)?,
            }
        }
        ("reply", 3) => {
            let id = c.id()?;
            c.lit(b"\xa6result\x82")?;
            LinkFrame::Reply {
                id,
                result: Ok(c.envelope(body)?),
            }
        }
        ("item", 4) => {
            let id = c.id()?;
            LinkFrame::Item {
                id,
                msg: c.envelope(body)?,
            }
        }
        ("tell", 4) => {
            c.lit(b"\xa2to")?;
            let to = c.str()?.to_owned();
            LinkFrame::Tell {
                to,
                msg: c.envelope(body)?,
            }
        }
        ("credit", 3) => {
            let id = c.id()?;
            c.lit(b"\xa1n")?;
            let n = c.uint()?.min(u64::from(u32::MAX)) as u32;
            LinkFrame::Credit { id, n }
        }
        _ => return None,
    };
    (c.pos == body.len()).then_some(frame)
}
