//! [`TcpDial`]: the HTTP transport's own links, over TCP, and over TLS with a cluster secret.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::client::{late, Dial, Dialing, LinkReader};
use super::outbox::LinkWriter;
use crate::client::connect_tcp;
use crate::security::{NodeTls, TlsSlot, TlsWriter};

/// Links over TCP, bounded by `connect_timeout`, with `TCP_NODELAY`; over TLS (ALPN
/// `pulsing-link/1`, bounded by `tls_handshake_timeout`) when the transport has a cluster secret.
pub(crate) struct TcpDial {
    pub(crate) connect_timeout: Duration,
    pub(crate) tls_handshake_timeout: Duration,
    pub(crate) tls: TlsSlot,
}

impl Dial for TcpDial {
    fn dial(&self, addr: SocketAddr, by: Instant) -> Dialing<'_> {
        Box::pin(async move {
            let stream = connect_tcp(addr, self.connect_timeout, by)
                .await?
                .ok_or_else(|| late(addr))?;
            if let Some(tls) = self.tls.for_dial()? {
                let bound = self.tls_handshake_timeout;
                let io = NodeTls::connect(&tls.link, addr, stream, bound, by)
                    .await?
                    .ok_or_else(|| late(addr))?;
                return Ok(TlsWriter::split(io));
            }
            let (rd, wr) = stream.into_split();
            Ok((
                Box::new(rd) as LinkReader,
                Box::new(wr) as Box<dyn LinkWriter>,
            ))
        })
    }
}
