//! Actor refs as values inside payloads: a msgpack extension value of type [`REF_EXT_TYPE`] whose data
//! is the array `[addr, node, id]` (`docs/protocol.md`, "Actor refs inside payloads").
//!
//! The runtime treats payloads as opaque bytes; this module is for the layers that do write msgpack
//! payloads (the Python bindings) so that a ref sent to another node arrives as a working ref:
//! [`ActorRef::encode_ext`] on the sending side, [`ActorSystem::decode_ref`] on the receiving one.

use std::net::SocketAddr;

use rmp::Marker;

use crate::actor_ref::ActorRef;
use crate::error::{Delivery, PulsingError};
use crate::name::ActorName;
use crate::system::ActorSystem;
use crate::transport::{NodeId, RemoteTarget};

/// The msgpack extension type code of an actor ref.
pub const REF_EXT_TYPE: i8 = 1;

/// The fields that stand for an [`ActorRef`] inside a payload.
///
/// Encoded as the msgpack array `[addr, node, id]` of three strings: `addr` the node's advertise
/// address `"ip:port"` (`""` for a standalone system), `node` its boot id as 16 lowercase hex digits
/// (`""` for a ref made with [`ActorSystem::remote_ref`], which accepts whichever run answers at
/// `addr`), `id` the actor's name or anonymous id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WireRef {
    /// Where the actor's node serves; `None` for a standalone system (nothing reaches it).
    pub addr: Option<SocketAddr>,
    /// The run of the node the ref was made for; `None` accepts whichever run answers at `addr`.
    pub node: Option<NodeId>,
    /// The actor's name, or for an anonymous actor its generated id.
    pub id: ActorName,
}

const VEC_WRITE: &str = "writing msgpack into a Vec cannot fail";

impl WireRef {
    /// The extension data: the msgpack array `[addr, node, id]`.
    pub fn encode_data(&self) -> Vec<u8> {
        let addr = self.addr.map(|a| a.to_string()).unwrap_or_default();
        let node = self.node.map(|n| n.to_string()).unwrap_or_default();
        let mut out = Vec::with_capacity(8 + addr.len() + node.len() + self.id.as_str().len());
        rmp::encode::write_array_len(&mut out, 3).expect(VEC_WRITE);
        for s in [addr.as_str(), node.as_str(), self.id.as_str()] {
            rmp::encode::write_str(&mut out, s).expect(VEC_WRITE);
        }
        out
    }

    /// The complete msgpack extension value (header with [`REF_EXT_TYPE`], then
    /// [`encode_data`](Self::encode_data)), to embed in a msgpack payload.
    pub fn encode_ext(&self) -> Vec<u8> {
        let data = self.encode_data();
        let mut out = Vec::with_capacity(6 + data.len());
        // The data is a few hundred bytes at most (an address, 16 digits, a name of at most 128).
        let len = u32::try_from(data.len()).expect("ref data is small");
        rmp::encode::write_ext_meta(&mut out, len, REF_EXT_TYPE).expect(VEC_WRITE);
        out.extend_from_slice(&data);
        out
    }

    /// Reads extension data written by [`encode_data`](Self::encode_data) or by any msgpack writer:
    /// every length encoding of arrays and strings is accepted, and `node` may also be an unsigned
    /// integer.
    ///
    /// # Errors
    ///
    /// [`PulsingError::BadMessage`] unless `data` is exactly one array of three elements: an address
    /// that is `""` or `ip:port`, a node that is `""` or 16 hex digits, and a valid actor name.
    pub fn decode_data(data: &[u8]) -> Result<WireRef, PulsingError> {
        let mut r = Cursor(data);
        let n = r.array_len()?;
        if n != 3 {
            return Err(bad(format!("expected [addr, node, id], got {n} elements")));
        }
        let addr = match r.str("addr")? {
            "" => None,
            a => Some(
                a.parse::<SocketAddr>()
                    .map_err(|_| bad(format!("addr {a:?} is not ip:port")))?,
            ),
        };
        let node = r.node()?;
        let id = ActorName::new(r.str("id")?).map_err(|e| bad(format!("id: {e}")))?;
        if !r.0.is_empty() {
            return Err(bad(format!("{} bytes after the array", r.0.len())));
        }
        Ok(WireRef { addr, node, id })
    }
}

fn bad(what: String) -> PulsingError {
    PulsingError::BadMessage(format!("actor ref: {what}"))
}

/// A msgpack reader over the few shapes a ref uses.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], PulsingError> {
        if n > self.0.len() {
            return Err(bad(format!("truncated at {what}")));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn marker(&mut self, what: &str) -> Result<Marker, PulsingError> {
        Ok(Marker::from_u8(self.take(1, what)?[0]))
    }

    /// A big-endian unsigned integer of `width` bytes.
    fn uint(&mut self, width: usize, what: &str) -> Result<u64, PulsingError> {
        Ok(self
            .take(width, what)?
            .iter()
            .fold(0u64, |v, b| (v << 8) | u64::from(*b)))
    }

    fn len(&mut self, width: usize, what: &str) -> Result<usize, PulsingError> {
        let n = self.uint(width, what)?;
        usize::try_from(n).map_err(|_| bad(format!("{what}: length too large")))
    }

    fn array_len(&mut self) -> Result<usize, PulsingError> {
        match self.marker("array")? {
            Marker::FixArray(n) => Ok(usize::from(n)),
            Marker::Array16 => self.len(2, "array"),
            Marker::Array32 => self.len(4, "array"),
            m => Err(bad(format!("expected an array, found {m:?}"))),
        }
    }

    fn str_after(&mut self, m: Marker, what: &str) -> Result<&'a str, PulsingError> {
        let n = match m {
            Marker::FixStr(n) => usize::from(n),
            Marker::Str8 => self.len(1, what)?,
            Marker::Str16 => self.len(2, what)?,
            Marker::Str32 => self.len(4, what)?,
            m => return Err(bad(format!("{what}: expected a string, found {m:?}"))),
        };
        std::str::from_utf8(self.take(n, what)?)
            .map_err(|_| bad(format!("{what}: string is not UTF-8")))
    }

    fn str(&mut self, what: &str) -> Result<&'a str, PulsingError> {
        let m = self.marker(what)?;
        self.str_after(m, what)
    }

    fn node(&mut self) -> Result<Option<NodeId>, PulsingError> {
        let id = match self.marker("node")? {
            Marker::FixPos(n) => u64::from(n),
            Marker::U8 => self.uint(1, "node")?,
            Marker::U16 => self.uint(2, "node")?,
            Marker::U32 => self.uint(4, "node")?,
            Marker::U64 => self.uint(8, "node")?,
            m => {
                return match self.str_after(m, "node")? {
                    "" => Ok(None),
                    s => s
                        .parse()
                        .map(Some)
                        .map_err(|_| bad(format!("node {s:?} is not 16 hex digits"))),
                }
            }
        };
        Ok(Some(NodeId(id)))
    }
}

impl ActorRef {
    /// This ref as msgpack extension data, `[addr, node, id]` (see [`WireRef`]); what a msgpack
    /// library's extension hook returns next to the type code [`REF_EXT_TYPE`].
    pub fn ext_data(&self) -> Vec<u8> {
        self.wire_ref().encode_data()
    }

    /// This ref as a complete msgpack extension value of type [`REF_EXT_TYPE`], to embed in a
    /// payload. A receiving node turns it back into a ref with [`ActorSystem::decode_ref`].
    ///
    /// Any ref encodes; whether the receiver can use it depends on its
    /// [`visibility`](Self::visibility): a private actor's ref works only on its own node.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pulsing_core::{Actor, ActorError, ActorSystem, Context, Message, REF_EXT_TYPE};
    /// # struct Echo;
    /// # impl Actor for Echo {
    /// #     async fn receive(&mut self, m: Message, _: &mut Context) -> Result<Message, ActorError> { Ok(m) }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), pulsing_core::PulsingError> {
    /// let system = ActorSystem::builder().build().await?;
    /// let echo = system.spawn(Echo, "echo").await?;
    /// let ext = echo.encode_ext();
    /// assert_eq!(ext[2] as i8, REF_EXT_TYPE); // an ext8 header: marker, length, type
    /// assert_eq!(system.decode_ref(&echo.ext_data())?, echo);
    /// # system.shutdown().await; Ok(()) }
    /// ```
    pub fn encode_ext(&self) -> Vec<u8> {
        self.wire_ref().encode_ext()
    }
}

impl ActorSystem {
    /// Turns msgpack extension data of type [`REF_EXT_TYPE`] back into a ref: the local actor `id`
    /// when `node` is this system's boot id, else a remote ref to `id` at `addr` for that run of the
    /// node (`node: ""` accepts whichever run answers).
    ///
    /// # Errors
    ///
    /// - [`PulsingError::BadMessage`] for malformed data (see [`WireRef::decode_data`]);
    /// - [`PulsingError::NotFound`] for a ref to this node whose actor is no longer running;
    /// - [`PulsingError::NodeUnreachable`] for a ref from another, standalone system (`addr: ""`):
    ///   nothing can reach that actor from here.
    pub fn decode_ref(&self, ext_data: &[u8]) -> Result<ActorRef, PulsingError> {
        let r = WireRef::decode_data(ext_data)?;
        if r.node == Some(self.node_id()) {
            return self
                .local(r.id.as_str())
                .map(ActorRef::local)
                .ok_or_else(|| PulsingError::NotFound(r.id.to_string()));
        }
        let Some(addr) = r.addr else {
            return Err(PulsingError::NodeUnreachable {
                addr: String::new(),
                reason: format!(
                    "the ref to {} comes from a standalone system (it has no address); it works only \
                     in that system",
                    r.id
                ),
                delivery: Delivery::NotDelivered,
            });
        };
        Ok(self.make_remote(RemoteTarget {
            addr,
            name: r.id,
            node: r.node,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> WireRef {
        WireRef {
            addr: Some("10.0.0.7:8000".parse().unwrap()),
            node: Some(NodeId(0x00ab_cdef_0123_4567)),
            id: ActorName::new("worker").unwrap(),
        }
    }

    #[test]
    fn the_data_is_an_array_of_three_strings_as_protocol_md_shows() {
        let data = sample().encode_data();
        let mut want = vec![0x93, 0xad];
        want.extend_from_slice(b"10.0.0.7:8000");
        want.push(0xb0);
        want.extend_from_slice(b"00abcdef01234567");
        want.push(0xa6);
        want.extend_from_slice(b"worker");
        assert_eq!(data, want);
        assert_eq!(WireRef::decode_data(&data).unwrap(), sample());
    }

    #[test]
    fn the_ext_value_carries_type_1_and_the_data() {
        let ext = sample().encode_ext();
        let data = sample().encode_data();
        // The header of the example in protocol.md: ext8, 39 bytes, type 1.
        assert_eq!(ext[..3], [0xc7, 39, 1]);
        assert_eq!(&ext[3..], &data[..]);
    }

    #[test]
    fn empty_addr_and_node_mean_standalone_and_any_run() {
        let r = WireRef {
            addr: None,
            node: None,
            id: ActorName::new("x").unwrap(),
        };
        let data = r.encode_data();
        assert_eq!(data, b"\x93\xa0\xa0\xa1x");
        assert_eq!(WireRef::decode_data(&data).unwrap(), r);
    }

    #[test]
    fn wider_encodings_and_an_integer_node_are_accepted() {
        // array16, str8, str16, str32; then a u64 node.
        let mut data = vec![0xdc, 0, 3, 0xd9, 11];
        data.extend_from_slice(b"[::1]:65535");
        data.extend_from_slice(&[0xda, 0, 16]);
        data.extend_from_slice(b"00ABCDEF01234567");
        data.extend_from_slice(&[0xdb, 0, 0, 0, 1, b'a']);
        let r = WireRef::decode_data(&data).unwrap();
        assert_eq!(r.addr, Some("[::1]:65535".parse().unwrap()));
        assert_eq!(r.node, Some(NodeId(0x00ab_cdef_0123_4567)));
        assert_eq!(r.id.as_str(), "a");
        let int_node = [0x93, 0xa0, 0xcf, 0, 0, 0, 0, 0, 0, 1, 2, 0xa1, b'a'];
        assert_eq!(
            WireRef::decode_data(&int_node).unwrap().node,
            Some(NodeId(0x0102))
        );
        assert_eq!(
            WireRef::decode_data(&[0x93, 0xa0, 0x07, 0xa1, b'a'])
                .unwrap()
                .node,
            Some(NodeId(7))
        );
    }

    #[test]
    fn malformed_data_is_a_bad_message() {
        let cases: &[&[u8]] = &[
            b"",
            b"\x92\xa0\xa0",                         // two elements
            b"\x94\xa0\xa0\xa1x\xa0",                // four elements
            b"\x93\xa0\xa0",                         // truncated
            b"\x93\xa3abc\xa0\xa1x",                 // addr not ip:port
            b"\x93\xa0\xa3abc\xa1x",                 // node not 16 hex digits
            b"\x93\xa0\xa0\xa3a/b",                  // id not a name
            b"\x93\xa0\xa0\xa0",                     // empty id
            b"\x93\xa0\xa0\xa1x\x00",                // trailing byte
            b"\x93\xa0\xd0\x01\xa1x",                // negative-capable int node
            b"\x93\xa0\xa0\xa2\xff\xfe",             // not UTF-8
            b"\x83\xa0\xa0\xa0\xa0\xa0\xa0",         // a map
            b"\x93\xa0\xa0\xdb\xff\xff\xff\xff\xa1", // str32 declaring 4 GiB
        ];
        for case in cases {
            let e = WireRef::decode_data(case).unwrap_err();
            assert!(
                matches!(e, PulsingError::BadMessage(_)),
                "{case:?} -> {e:?}"
            );
        }
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        fn wire_ref() -> impl Strategy<Value = WireRef> {
            (
                // An ip and a port: what an advertise address holds (no IPv6 flow info).
                proptest::option::of(
                    (any::<std::net::IpAddr>(), any::<u16>()).prop_map(SocketAddr::from),
                ),
                proptest::option::of(any::<u64>().prop_map(NodeId)),
                "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}",
            )
                .prop_map(|(addr, node, id)| WireRef {
                    addr,
                    node,
                    id: ActorName::new(&id).unwrap(),
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn refs_round_trip(r in wire_ref()) {
                prop_assert_eq!(WireRef::decode_data(&r.encode_data()).unwrap(), r);
            }

            #[test]
            fn arbitrary_bytes_decode_to_a_ref_or_a_bad_message(
                data in proptest::collection::vec(any::<u8>(), 0..96),
            ) {
                match WireRef::decode_data(&data) {
                    Ok(r) => prop_assert_eq!(WireRef::decode_data(&r.encode_data()).unwrap(), r),
                    Err(e) => prop_assert!(matches!(e, PulsingError::BadMessage(_)), "{e:?}"),
                }
            }
        }
    }
}
