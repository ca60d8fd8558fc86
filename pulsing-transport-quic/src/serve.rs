//! The serving side of QUIC: accepts connections (ALPN `pulsing/1` only; with a cluster secret,
//! only peers with a certificate from the cluster CA), then streams; a stream starting with the
//! link preface is served as a link, one starting with the gossip preface as a gossip exchange,
//! anything else is refused. Handshakes in progress and connections are bounded
//! ([`QuicConfig::max_handshakes`](crate::QuicConfig::max_handshakes),
//! [`QuicConfig::max_connections`](crate::QuicConfig::max_connections)): attempts over either
//! bound are refused at once.

use std::net::SocketAddr;
use std::sync::Arc;

use pulsing_core::InboundHandler;
use pulsing_transport_http::codec::link::LINK_PREFACE;
use pulsing_transport_http::link::{serve_link, LinkReader, LinkWriter};
use quinn_proto::VarInt;
use tokio::io::AsyncReadExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::driver::{self, RecvStream, SendStream};
use crate::net::{self, Net, QuicWriter, GOSSIP_PREFACE};
use crate::tls::ALPN;

/// Accepts connections on `endpoint` until `shutdown`.
pub(crate) async fn accept_loop(
    endpoint: driver::Endpoint,
    net: Arc<Net>,
    handler: Arc<dyn InboundHandler>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let handshakes = Arc::new(Semaphore::new(net.config.max_handshakes.max(1)));
    let connections = Arc::new(Semaphore::new(net.config.max_connections.max(1)));
    loop {
        let incoming = tokio::select! {
            _ = shutdown.cancelled() => return,
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => return,
            },
        };
        let permits = connections
            .clone()
            .try_acquire_owned()
            .and_then(|c| Ok((c, handshakes.clone().try_acquire_owned()?)));
        let Ok((connection, handshake)) = permits else {
            tracing::debug!(
                peer = %incoming.remote_address(),
                "too many QUIC handshakes or connections; refused"
            );
            incoming.refuse();
            continue;
        };
        tasks.spawn(serve_connection(
            incoming,
            Permits {
                _connection: connection,
                handshake,
            },
            net.clone(),
            handler.clone(),
            shutdown.clone(),
            tasks.clone(),
        ));
    }
}

/// A served connection's places: one among the connections for its life, one among the handshakes
/// until its handshake ends.
struct Permits {
    _connection: OwnedSemaphorePermit,
    handshake: OwnedSemaphorePermit,
}

async fn serve_connection(
    incoming: driver::Incoming,
    permits: Permits,
    net: Arc<Net>,
    handler: Arc<dyn InboundHandler>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let peer = incoming.remote_address();
    let Permits {
        _connection: _held,
        handshake,
    } = permits;
    let handshook = match incoming.accept() {
        Ok(connecting) => tokio::time::timeout(net.config.handshake_timeout * 3, connecting).await,
        Err(e) => Ok(Err(e)),
    };
    drop(handshake);
    let conn = match handshook {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            // With a cluster secret this is also a peer without a certificate from its CA.
            tracing::debug!(%peer, error = %e, "QUIC handshake refused or failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "QUIC handshake did not finish in time");
            return;
        }
    };
    let alpn = conn
        .handshake_data()
        .and_then(|d| {
            d.downcast::<quinn_proto::crypto::rustls::HandshakeData>()
                .ok()
        })
        .and_then(|d| d.protocol);
    if alpn.as_deref() != Some(ALPN) {
        conn.close(VarInt::from_u32(1), b"ALPN pulsing/1 required");
        return;
    }
    if !net.is_node(&conn) {
        // A client certificate of the cluster's CA: for HTTP calls, not links or gossip.
        handler.bad_link(
            peer,
            "a QUIC connection without a node certificate from the cluster CA",
        );
        conn.close(
            VarInt::from_u32(2),
            b"a node certificate from the cluster CA required",
        );
        return;
    }
    loop {
        let (send, recv) = tokio::select! {
            _ = shutdown.cancelled() => return,
            s = conn.accept_bi() => match s {
                Ok(pair) => pair,
                Err(_) => return,
            },
        };
        tasks.spawn(serve_stream(
            send,
            recv,
            peer,
            net.clone(),
            handler.clone(),
            shutdown.clone(),
        ));
    }
}

async fn serve_stream(
    mut send: SendStream,
    mut recv: RecvStream,
    peer: SocketAddr,
    net: Arc<Net>,
    handler: Arc<dyn InboundHandler>,
    shutdown: CancellationToken,
) {
    let http = &net.config.http;
    let mut head = [0u8; 16];
    let read = tokio::time::timeout(http.header_read_timeout, recv.read_exact(&mut head)).await;
    if !matches!(read, Ok(Ok(_))) {
        let _ = recv.stop(VarInt::from_u32(1));
        return;
    }
    if &head == LINK_PREFACE {
        // The link reads it in a loop until it drops it (`RecvStream::reads_socket`).
        recv.reads_socket();
        // The link reads its preface itself: give it back in front of the stream.
        let rd: LinkReader = Box::new(std::io::Cursor::new(head).chain(recv));
        let writer = QuicWriter::new(send);
        let stream = writer.handle();
        let wr: Box<dyn LinkWriter> = Box::new(writer);
        serve_link(rd, wr, peer, handler, http.clone(), shutdown).await;
        // What the link wrote last (replies drained at shutdown, its bye) reaches the peer
        // before the connection closes.
        net::finish(&stream, std::time::Duration::from_secs(1)).await;
    } else if &head == GOSSIP_PREFACE {
        let max = http.max_message_size;
        let exchange = async {
            let mut len = [0u8; 2];
            recv.read_exact(&mut len).await.ok()?;
            let mut from = vec![0u8; usize::from(u16::from_be_bytes(len))];
            recv.read_exact(&mut from).await.ok()?;
            let mut len = [0u8; 4];
            recv.read_exact(&mut len).await.ok()?;
            let len = u32::from_be_bytes(len) as usize;
            if len > max {
                return None;
            }
            let mut packet = vec![0u8; len];
            recv.read_exact(&mut packet).await.ok()?;
            let from = std::str::from_utf8(&from)
                .ok()
                .and_then(|s| s.parse::<SocketAddr>().ok())
                .unwrap_or(peer);
            let answer = handler.gossip(Some(from), packet.into()).await.ok()?;
            send.write_all(&answer).await.ok()?;
            send.finish().ok()
        };
        if tokio::time::timeout(http.body_read_timeout, exchange)
            .await
            .ok()
            .flatten()
            .is_none()
        {
            let _ = send.reset(VarInt::from_u32(1));
        }
    } else {
        let _ = send.reset(VarInt::from_u32(1));
        let _ = recv.stop(VarInt::from_u32(1));
    }
}
