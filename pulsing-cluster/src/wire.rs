//! The bytes of `POST /cluster/gossip` bodies: a version byte, a kind byte, then the body.
//!
//! ```text
//! packet  = version:u8 (=1) kind:u8 body
//! kind 1  FOCA     count:u16 (len:u32 foca-packet)*      SWIM packets (foca), see `FocaCodec`
//! kind 2  SYNC     from:id flags:u8 n:u32 (node:u64 version:u64)*
//!                  push-pull request; flags bit 0: "send me your members" (join)
//! kind 3  SYNCED   from:id flags:u8 [n:u32 member*] n:u32 entry* n:u32 node:u64*
//!                  answer: members (if asked), the registry entries the asker lacks, and the
//!                  owners whose entries the asker has newer ("want")
//! kind 4  ENTRIES  from:id n:u32 entry*                    registry entries pushed one way
//! id      = family:u8 (4|6) ip:4|16 port:u16 node:u64 boot:u64 gen:u32
//! member  = id incarnation:u16 state:u8 (0 alive, 1 suspect, 2 down)
//! entry   = owner:id version:u64 has_names:u8 [n:u32 (len:u8 utf8-name)*]
//! ```
//!
//! All integers are big-endian. Anything else — another version, an unknown kind, a truncated or
//! over-long body, an invalid actor name — is refused with [`PulsingError::BadMessage`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{Buf, BufMut};
use foca::{Header, Member, Message, State};
use pulsing_core::{ActorName, NodeId, PulsingError};

use crate::identity::Id;

/// The protocol version this crate speaks.
pub(crate) const VERSION: u8 = 1;
pub(crate) const KIND_FOCA: u8 = 1;
pub(crate) const KIND_SYNC: u8 = 2;
pub(crate) const KIND_SYNCED: u8 = 3;
pub(crate) const KIND_ENTRIES: u8 = 4;

/// A malformed packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct WireError(pub(crate) String);

impl WireError {
    fn new(what: impl fmt::Display) -> WireError {
        WireError(what.to_string())
    }
}

impl From<WireError> for PulsingError {
    fn from(e: WireError) -> PulsingError {
        PulsingError::BadMessage(format!("cluster packet: {}", e.0))
    }
}

/// Reads big-endian fields from a byte slice, failing instead of panicking.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError::new("truncated"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, WireError> {
        Ok(self.bytes(2)?.get_u16())
    }

    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        Ok(self.bytes(4)?.get_u32())
    }

    pub(crate) fn u64(&mut self) -> Result<u64, WireError> {
        Ok(self.bytes(8)?.get_u64())
    }

    /// A count of items at least `min_size` bytes each, checked against what is left so a forged
    /// count cannot make us allocate.
    pub(crate) fn count(&mut self, min_size: usize) -> Result<usize, WireError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size) > self.remaining() {
            return Err(WireError::new("count larger than the packet"));
        }
        Ok(n)
    }

    pub(crate) fn id(&mut self) -> Result<Id, WireError> {
        let ip = match self.u8()? {
            4 => IpAddr::V4(Ipv4Addr::from(self.u32()?)),
            6 => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(self.bytes(16)?);
                IpAddr::V6(Ipv6Addr::from(octets))
            }
            other => return Err(WireError::new(format!("address family {other}"))),
        };
        let port = self.u16()?;
        Ok(Id {
            addr: SocketAddr::new(ip, port),
            node: NodeId(self.u64()?),
            boot: self.u64()?,
            gen: self.u32()?,
        })
    }

    pub(crate) fn member(&mut self) -> Result<Member<Id>, WireError> {
        let id = self.id()?;
        let incarnation = self.u16()?;
        let state = match self.u8()? {
            0 => State::Alive,
            1 => State::Suspect,
            2 => State::Down,
            other => return Err(WireError::new(format!("member state {other}"))),
        };
        Ok(Member::new(id, incarnation, state))
    }

    pub(crate) fn name(&mut self) -> Result<ActorName, WireError> {
        let len = self.u8()? as usize;
        let raw = self.bytes(len)?;
        let text = std::str::from_utf8(raw).map_err(|_| WireError::new("name is not utf-8"))?;
        ActorName::new(text).map_err(WireError::new)
    }

    pub(crate) fn finish(&self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(WireError::new(format!("{} trailing bytes", self.buf.len())))
        }
    }
}

/// The encoded size of an [`Id`].
pub(crate) fn id_len(id: &Id) -> usize {
    let ip = if id.addr.is_ipv4() { 4 } else { 16 };
    1 + ip + 2 + 8 + 8 + 4
}

/// The smallest encoded [`Id`] (IPv4).
pub(crate) const MIN_ID_LEN: usize = 1 + 4 + 2 + 8 + 8 + 4;

pub(crate) fn put_id(buf: &mut impl BufMut, id: &Id) {
    match id.addr.ip() {
        IpAddr::V4(ip) => {
            buf.put_u8(4);
            buf.put_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            buf.put_u8(6);
            buf.put_slice(&ip.octets());
        }
    }
    buf.put_u16(id.addr.port());
    buf.put_u64(id.node.0);
    buf.put_u64(id.boot);
    buf.put_u32(id.gen);
}

pub(crate) fn put_member(buf: &mut impl BufMut, member: &Member<Id>) {
    put_id(buf, member.id());
    buf.put_u16(member.incarnation());
    buf.put_u8(match member.state() {
        State::Alive => 0,
        State::Suspect => 1,
        State::Down => 2,
    });
}

/// foca's [`Codec`](foca::Codec) for our identities: the `id`/`member` layouts above, and a header
/// of `src:id src_incarnation:u16 dst:id message`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FocaCodec;

const MSG_PING: u8 = 0;
const MSG_ACK: u8 = 1;
const MSG_PING_REQ: u8 = 2;
const MSG_INDIRECT_PING: u8 = 3;
const MSG_INDIRECT_ACK: u8 = 4;
const MSG_FORWARDED_ACK: u8 = 5;
const MSG_ANNOUNCE: u8 = 6;
const MSG_FEED: u8 = 7;
const MSG_GOSSIP: u8 = 8;
const MSG_BROADCAST: u8 = 9;
const MSG_TURN_UNDEAD: u8 = 10;

fn header_len(h: &Header<Id>) -> usize {
    let msg = match &h.message {
        Message::Ping(_) | Message::Ack(_) => 2,
        Message::PingReq { target: id, .. }
        | Message::IndirectPing { origin: id, .. }
        | Message::IndirectAck { target: id, .. }
        | Message::ForwardedAck { origin: id, .. } => 2 + id_len(id),
        _ => 1,
    };
    id_len(&h.src) + 2 + id_len(&h.dst) + msg
}

impl foca::Codec<Id> for FocaCodec {
    type Error = WireError;

    fn encode_header(&mut self, h: &Header<Id>, mut buf: impl BufMut) -> Result<(), WireError> {
        if buf.remaining_mut() < header_len(h) {
            return Err(WireError::new("no room for the header"));
        }
        put_id(&mut buf, &h.src);
        buf.put_u16(h.src_incarnation);
        put_id(&mut buf, &h.dst);
        let (tag, id, probe) = match &h.message {
            Message::Ping(n) => (MSG_PING, None, Some(*n)),
            Message::Ack(n) => (MSG_ACK, None, Some(*n)),
            Message::PingReq {
                target,
                probe_number,
            } => (MSG_PING_REQ, Some(target), Some(*probe_number)),
            Message::IndirectPing {
                origin,
                probe_number,
            } => (MSG_INDIRECT_PING, Some(origin), Some(*probe_number)),
            Message::IndirectAck {
                target,
                probe_number,
            } => (MSG_INDIRECT_ACK, Some(target), Some(*probe_number)),
            Message::ForwardedAck {
                origin,
                probe_number,
            } => (MSG_FORWARDED_ACK, Some(origin), Some(*probe_number)),
            Message::Announce => (MSG_ANNOUNCE, None, None),
            Message::Feed => (MSG_FEED, None, None),
            Message::Gossip => (MSG_GOSSIP, None, None),
            Message::Broadcast => (MSG_BROADCAST, None, None),
            Message::TurnUndead => (MSG_TURN_UNDEAD, None, None),
        };
        buf.put_u8(tag);
        if let Some(id) = id {
            put_id(&mut buf, id);
        }
        if let Some(n) = probe {
            buf.put_u8(n);
        }
        Ok(())
    }

    fn decode_header(&mut self, mut buf: impl Buf) -> Result<Header<Id>, WireError> {
        // foca hands us a contiguous slice; read it with the checked reader and advance by what
        // was used.
        let chunk = buf.chunk();
        let mut r = Reader::new(chunk);
        let src = r.id()?;
        let src_incarnation = r.u16()?;
        let dst = r.id()?;
        let message = match r.u8()? {
            MSG_PING => Message::Ping(r.u8()?),
            MSG_ACK => Message::Ack(r.u8()?),
            MSG_PING_REQ => {
                let target = r.id()?;
                Message::PingReq {
                    target,
                    probe_number: r.u8()?,
                }
            }
            MSG_INDIRECT_PING => {
                let origin = r.id()?;
                Message::IndirectPing {
                    origin,
                    probe_number: r.u8()?,
                }
            }
            MSG_INDIRECT_ACK => {
                let target = r.id()?;
                Message::IndirectAck {
                    target,
                    probe_number: r.u8()?,
                }
            }
            MSG_FORWARDED_ACK => {
                let origin = r.id()?;
                Message::ForwardedAck {
                    origin,
                    probe_number: r.u8()?,
                }
            }
            MSG_ANNOUNCE => Message::Announce,
            MSG_FEED => Message::Feed,
            MSG_GOSSIP => Message::Gossip,
            MSG_BROADCAST => Message::Broadcast,
            MSG_TURN_UNDEAD => Message::TurnUndead,
            other => return Err(WireError::new(format!("foca message type {other}"))),
        };
        let used = chunk.len() - r.remaining();
        buf.advance(used);
        Ok(Header {
            src,
            src_incarnation,
            dst,
            message,
        })
    }

    fn encode_member(
        &mut self,
        member: &Member<Id>,
        mut buf: impl BufMut,
    ) -> Result<(), WireError> {
        if buf.remaining_mut() < id_len(member.id()) + 3 {
            return Err(WireError::new("no room for the member"));
        }
        put_member(&mut buf, member);
        Ok(())
    }

    fn decode_member(&mut self, mut buf: impl Buf) -> Result<Member<Id>, WireError> {
        let chunk = buf.chunk();
        let mut r = Reader::new(chunk);
        let member = r.member()?;
        let used = chunk.len() - r.remaining();
        buf.advance(used);
        Ok(member)
    }
}

/// Splits a packet into its kind and body after checking the version.
pub(crate) fn open(packet: &[u8]) -> Result<(u8, Reader<'_>), WireError> {
    let mut r = Reader::new(packet);
    let version = r
        .u8()
        .map_err(|_| WireError::new("empty packet (expected a version byte)"))?;
    if version != VERSION {
        return Err(WireError::new(format!(
            "protocol version {version}; this node speaks version {VERSION}"
        )));
    }
    let kind = r.u8()?;
    Ok((kind, r))
}

/// Frames foca packets as one `FOCA` packet.
pub(crate) fn foca_batch<'a>(packets: impl ExactSizeIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    out.put_u8(VERSION);
    out.put_u8(KIND_FOCA);
    out.put_u16(packets.len().min(u16::MAX as usize) as u16);
    for p in packets.take(u16::MAX as usize) {
        out.put_u32(p.len() as u32);
        out.put_slice(p);
    }
    out
}

/// The foca packets of a `FOCA` body.
pub(crate) fn read_foca_batch<'a>(mut r: Reader<'a>) -> Result<Vec<&'a [u8]>, WireError> {
    let n = r.u16()? as usize;
    if n.saturating_mul(4) > r.remaining() {
        return Err(WireError::new("count larger than the packet"));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = r.u32()? as usize;
        out.push(r.bytes(len)?);
    }
    r.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Codec;

    fn id() -> Id {
        Id {
            addr: "127.0.0.1:7000".parse().unwrap(),
            node: NodeId(42),
            boot: 1234,
            gen: 2,
        }
    }

    #[test]
    fn headers_round_trip() {
        let h = Header {
            src: id(),
            src_incarnation: 7,
            dst: Id {
                addr: "[::1]:1".parse().unwrap(),
                ..id()
            },
            message: Message::PingReq {
                target: id(),
                probe_number: 3,
            },
        };
        let mut buf = Vec::new();
        FocaCodec.encode_header(&h, &mut buf).unwrap();
        assert_eq!(buf.len(), header_len(&h));
        let mut slice = &buf[..];
        assert_eq!(FocaCodec.decode_header(&mut slice).unwrap(), h);
        assert!(slice.is_empty());
    }

    #[test]
    fn another_version_is_refused_as_bad_message() {
        let err = PulsingError::from(open(&[9, 1]).err().unwrap());
        assert!(matches!(err, PulsingError::BadMessage(ref m) if m.contains("version 9")));
    }

    #[test]
    fn truncated_and_forged_counts_are_refused() {
        for packet in [&[][..], &[1], &[1, 1, 0], &[1, 1, 0xff, 0xff, 0, 0]] {
            let r = open(packet).and_then(|(_, r)| read_foca_batch(r));
            assert!(r.is_err(), "{packet:?}");
        }
    }
}
