//! The QUIC side: the endpoint, connections to peers (one per address, reused), link streams over
//! them ([`QuicDial`], [`QuicWriter`]), and gossip exchanges.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use pulsing_core::{Delivery, PulsingError};
use pulsing_transport_http::codec::link::{self, LINK_PREFACE};
use pulsing_transport_http::link::{Dial, Dialing, LinkReader, LinkWriter};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, VarInt};
use tokio::io::AsyncWrite;
use tokio::time::Instant;

use crate::config::QuicConfig;
use crate::tls::{Tls, SERVER_NAME};

/// The first bytes of a gossip exchange on a QUIC stream (a link stream starts with the link
/// preface instead).
pub(crate) const GOSSIP_PREFACE: &[u8; 16] = b"PULSING-GOSS/1\r\n";

pub(crate) fn unreachable(
    addr: SocketAddr,
    reason: impl Into<String>,
    d: Delivery,
) -> PulsingError {
    PulsingError::NodeUnreachable {
        addr: addr.to_string(),
        reason: reason.into(),
        delivery: d,
    }
}

/// What the QUIC transport's parts share: settings, the endpoint, connections, and which peers
/// did not answer QUIC lately.
pub(crate) struct Net {
    pub(crate) config: QuicConfig,
    tls: Tls,
    endpoint: OnceLock<quinn::Endpoint>,
    conns: Mutex<HashMap<SocketAddr, quinn::Connection>>,
    /// Peers that did not answer a QUIC handshake, until when they are called over TCP.
    no_quic: Mutex<HashMap<SocketAddr, Instant>>,
}

impl Net {
    pub(crate) fn new(config: QuicConfig) -> Result<Net, PulsingError> {
        let tls = match &config.tls {
            Some(t) => t.clone(),
            None => Tls::self_signed()?,
        };
        Ok(Net {
            config,
            tls,
            endpoint: OnceLock::new(),
            conns: Mutex::default(),
            no_quic: Mutex::default(),
        })
    }

    fn transport_config(&self) -> Result<quinn::TransportConfig, PulsingError> {
        let c = &self.config;
        let mut t = quinn::TransportConfig::default();
        t.max_concurrent_bidi_streams(VarInt::from_u32(c.max_streams))
            .max_concurrent_uni_streams(VarInt::from_u32(0))
            .stream_receive_window(VarInt::from_u32(c.stream_window))
            .receive_window(VarInt::from_u32(c.connection_window))
            .send_window(u64::from(c.connection_window))
            .keep_alive_interval(Some(c.keep_alive))
            // A LAN's round trip, not quinn's Internet default (333 ms): a lost handshake packet
            // is resent after tens of milliseconds, well within the handshake timeout.
            .initial_rtt(c.initial_rtt)
            .max_idle_timeout(Some(IdleTimeout::try_from(c.idle_timeout).map_err(
                |e| PulsingError::Config(format!("QUIC idle timeout {:?}: {e}", c.idle_timeout)),
            )?));
        Ok(t)
    }

    /// The server side of the endpoint's configuration.
    pub(crate) fn server_config(&self) -> Result<quinn::ServerConfig, PulsingError> {
        let crypto = QuicServerConfig::try_from(self.tls.server.clone())
            .map_err(|e| PulsingError::Config(format!("QUIC server TLS: {e}")))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(Arc::new(self.transport_config()?));
        Ok(server)
    }

    fn client_config(&self) -> Result<quinn::ClientConfig, PulsingError> {
        let crypto = QuicClientConfig::try_from((*self.tls.client).clone())
            .map_err(|e| PulsingError::Config(format!("QUIC client TLS: {e}")))?;
        let mut client = quinn::ClientConfig::new(Arc::new(crypto));
        client.transport_config(Arc::new(self.transport_config()?));
        Ok(client)
    }

    /// Binds the serving endpoint (UDP `addr`).
    pub(crate) fn bind(&self, addr: SocketAddr) -> Result<quinn::Endpoint, PulsingError> {
        let endpoint = self.make_endpoint(addr, Some(self.server_config()?))?;
        let _ = self.endpoint.set(endpoint.clone());
        Ok(self.endpoint.get().cloned().unwrap_or(endpoint))
    }

    /// An endpoint on UDP `addr` (through the socket wrapper, if any).
    fn make_endpoint(
        &self,
        addr: SocketAddr,
        server: Option<quinn::ServerConfig>,
    ) -> Result<quinn::Endpoint, PulsingError> {
        let cannot =
            |e: io::Error| PulsingError::Config(format!("cannot bind UDP {addr} for QUIC: {e}"));
        let runtime: Arc<dyn quinn::Runtime> = Arc::new(quinn::TokioRuntime);
        let socket = std::net::UdpSocket::bind(addr).map_err(cannot)?;
        let mut socket = runtime.wrap_udp_socket(socket).map_err(cannot)?;
        if let Some(wrap) = &self.config.socket_wrapper {
            socket = wrap(socket);
        }
        quinn::Endpoint::new_with_abstract_socket(
            quinn::EndpointConfig::default(),
            server,
            socket,
            runtime,
        )
        .map_err(cannot)
    }

    /// The endpoint calls go out from: the serving one, or a client-only one made on first use.
    fn endpoint(&self, to: SocketAddr) -> Result<quinn::Endpoint, PulsingError> {
        if let Some(e) = self.endpoint.get() {
            return Ok(e.clone());
        }
        let any: SocketAddr = if to.is_ipv4() {
            "0.0.0.0:0".parse().expect("an address")
        } else {
            "[::]:0".parse().expect("an address")
        };
        let endpoint = self.make_endpoint(any, None)?;
        let _ = self.endpoint.set(endpoint);
        Ok(self.endpoint.get().cloned().expect("just set"))
    }

    /// Whether `addr` did not answer QUIC lately (call it over TCP).
    pub(crate) fn prefers_tcp(&self, addr: SocketAddr) -> bool {
        let mut no = self.no_quic.lock().unwrap_or_else(|p| p.into_inner());
        match no.get(&addr) {
            Some(until) if Instant::now() < *until => true,
            Some(_) => {
                no.remove(&addr);
                false
            }
            None => false,
        }
    }

    /// A live connection to `addr`, made (handshake bounded) if needed.
    pub(crate) async fn connection(
        &self,
        addr: SocketAddr,
        by: Instant,
    ) -> Result<quinn::Connection, PulsingError> {
        if let Some(c) = self.live(addr) {
            return Ok(c);
        }
        let endpoint = self.endpoint(addr)?;
        let connecting = endpoint
            .connect_with(self.client_config()?, addr, SERVER_NAME)
            .map_err(|e| unreachable(addr, format!("QUIC connect: {e}"), Delivery::NotDelivered))?;
        let bound = (Instant::now() + self.config.handshake_timeout).min(by);
        // A QUIC node also listens on TCP at the same port. UDP says nothing when no one listens,
        // so a TCP connect alongside the handshake tells a refused address at once (nothing
        // there: fail now) from one that is up (wait for the handshake, else use TCP).
        let handshake = async {
            tokio::pin!(connecting);
            let probing = self.config.tcp_sentinel;
            let probe = async move {
                if probing {
                    tokio::net::TcpStream::connect(addr).await
                } else {
                    std::future::pending().await
                }
            };
            tokio::pin!(probe);
            let mut sentinel = None;
            loop {
                tokio::select! {
                    r = &mut connecting => {
                        // The handshake may win the race: give the probe a moment, it is local.
                        if sentinel.is_none() && probing {
                            if let Ok(Ok(s)) = tokio::time::timeout(PROBE_GRACE, &mut probe).await {
                                sentinel = Some(s);
                            }
                        }
                        return Ok((r, sentinel));
                    }
                    r = &mut probe, if sentinel.is_none() => match r {
                        Ok(s) => sentinel = Some(s),
                        Err(e) => return Err(e),
                    },
                }
            }
        };
        let (conn, sentinel) = match tokio::time::timeout_at(bound, handshake).await {
            Ok(Err(refused)) => {
                return Err(unreachable(
                    addr,
                    format!("connect failed: {refused}"),
                    Delivery::NotDelivered,
                ))
            }
            Ok(Ok((r, sentinel))) => (Ok(r), sentinel),
            Err(e) => (Err(e), None),
        };
        let conn = match conn {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                self.mark_no_quic(addr);
                return Err(unreachable(
                    addr,
                    format!("QUIC handshake failed: {e}"),
                    Delivery::NotDelivered,
                ));
            }
            Err(_) => {
                self.mark_no_quic(addr);
                return Err(unreachable(
                    addr,
                    format!(
                        "no QUIC answer within {:?} (not a QUIC node, or not answering)",
                        self.config.handshake_timeout
                    ),
                    Delivery::NotDelivered,
                ));
            }
        };
        if let Some(tcp) = sentinel {
            tokio::spawn(watch(tcp, conn.clone(), self.config.http.max_message_size));
        }
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.retain(|_, c| c.close_reason().is_none());
        Ok(conns.entry(addr).or_insert(conn).clone())
    }

    fn live(&self, addr: SocketAddr) -> Option<quinn::Connection> {
        let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns
            .get(&addr)
            .filter(|c| c.close_reason().is_none())
            .cloned()
    }

    fn mark_no_quic(&self, addr: SocketAddr) {
        let until = Instant::now() + self.config.fallback_for;
        self.no_quic
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(addr, until);
    }

    /// Peers with a QUIC connection.
    pub(crate) fn pooled(&self) -> usize {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.retain(|_, c| c.close_reason().is_none());
        conns.len()
    }

    /// Closes every connection and the endpoint.
    pub(crate) fn close(&self) {
        for (_, c) in self.conns.lock().unwrap_or_else(|p| p.into_inner()).drain() {
            c.close(VarInt::from_u32(0), b"shutdown");
        }
        if let Some(e) = self.endpoint.get() {
            e.close(VarInt::from_u32(0), b"shutdown");
        }
    }

    /// One gossip exchange on a fresh stream: preface, sender's address, packet; the answer is the
    /// rest of the stream.
    pub(crate) async fn gossip(
        &self,
        to: SocketAddr,
        packet: Bytes,
        from: Option<SocketAddr>,
        timeout: Duration,
    ) -> Result<Bytes, PulsingError> {
        let by = Instant::now() + timeout;
        let exchange = async {
            let conn = self.connection(to, by).await?;
            let lost = |e: &dyn std::fmt::Display| {
                unreachable(to, format!("QUIC gossip: {e}"), Delivery::MaybeDelivered)
            };
            let (mut send, mut recv) = conn.open_bi().await.map_err(|e| lost(&e))?;
            let from = from.map(|a| a.to_string()).unwrap_or_default();
            let mut head = Vec::with_capacity(24 + from.len());
            head.extend_from_slice(GOSSIP_PREFACE);
            head.extend_from_slice(&(from.len() as u16).to_be_bytes());
            head.extend_from_slice(from.as_bytes());
            head.extend_from_slice(&(packet.len() as u32).to_be_bytes());
            send.write_all(&head).await.map_err(|e| lost(&e))?;
            send.write_all(&packet).await.map_err(|e| lost(&e))?;
            let _ = send.finish();
            let answer = recv
                .read_to_end(self.config.http.max_message_size)
                .await
                .map_err(|e| lost(&e))?;
            Ok(Bytes::from(answer))
        };
        tokio::time::timeout_at(by, exchange)
            .await
            .unwrap_or(Err(PulsingError::Timeout(timeout)))
    }
}

/// How long the TCP probe may take once the QUIC handshake finished.
const PROBE_GRACE: Duration = Duration::from_millis(200);

/// Keeps the TCP connection opened alongside a QUIC handshake as a **sentinel**: an idle link to the
/// peer's TCP door. UDP says nothing when the peer's process dies, but its kernel closes the TCP
/// connection: the QUIC connection is closed then (its links fail at once) instead of by the idle
/// timeout. Ends with the QUIC connection.
async fn watch(mut tcp: tokio::net::TcpStream, conn: quinn::Connection, max: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tcp.set_nodelay(true);
    let mut opening = LINK_PREFACE.to_vec();
    link::put_hello(&mut opening, None, Some(max as u64));
    if tcp.write_all(&opening).await.is_err() {
        return;
    }
    let mut sink = [0u8; 512];
    let peer_gone = async {
        // The peer's hello, then nothing: the link is never used.
        loop {
            match tcp.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::select! {
        _ = peer_gone => conn.close(VarInt::from_u32(0), b"the peer's process is gone"),
        _ = conn.closed() => {}
    }
}

/// Links over QUIC: each link is one bidirectional stream on the connection to its peer.
pub(crate) struct QuicDial(pub(crate) Arc<Net>);

impl Dial for QuicDial {
    fn dial(&self, addr: SocketAddr, by: Instant) -> Dialing<'_> {
        Box::pin(async move {
            let conn = self.0.connection(addr, by).await?;
            let (send, recv) = match tokio::time::timeout_at(by, conn.open_bi()).await {
                Ok(Ok(pair)) => pair,
                Ok(Err(e)) => {
                    return Err(unreachable(
                        addr,
                        format!("opening a QUIC stream: {e}"),
                        Delivery::NotDelivered,
                    ))
                }
                Err(_) => {
                    return Err(unreachable(
                        addr,
                        "no QUIC stream could be opened in time (the peer's stream limit)",
                        Delivery::NotDelivered,
                    ))
                }
            };
            Ok((
                Box::new(recv) as LinkReader,
                Box::new(QuicWriter::new(send)) as Box<dyn LinkWriter>,
            ))
        })
    }
}

/// A QUIC send stream as a link's writer. The stream can be taken back when the link ends
/// ([`QuicWriter::handle`]), to finish it and wait until the peer read it all.
pub(crate) struct QuicWriter(Arc<Mutex<Option<quinn::SendStream>>>);

/// The stream of a [`QuicWriter`], kept by whoever opened it.
pub(crate) type StreamHandle = Arc<Mutex<Option<quinn::SendStream>>>;

impl QuicWriter {
    pub(crate) fn new(send: quinn::SendStream) -> QuicWriter {
        QuicWriter(Arc::new(Mutex::new(Some(send))))
    }

    /// A handle on the stream, to [`finish`] it once the link is done.
    pub(crate) fn handle(&self) -> StreamHandle {
        self.0.clone()
    }

    fn poll(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match s.as_mut() {
            Some(s) => AsyncWrite::poll_write(Pin::new(s), cx, buf),
            None => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }
}

/// Finishes the stream of a link that ended and waits (at most `bound`) until the peer has read
/// it to the end, so what was written reaches it before the connection closes.
pub(crate) async fn finish(handle: &StreamHandle, bound: Duration) {
    let taken = handle.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(mut send) = taken {
        let _ = send.finish();
        let _ = tokio::time::timeout(bound, send.stopped()).await;
    }
}

impl LinkWriter for QuicWriter {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        // Polled with a waker that does nothing: if the stream cannot take bytes now, the outbox
        // hands them to its writer task, which polls again with its own waker.
        let mut cx = Context::from_waker(Waker::noop());
        match self.poll(&mut cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn write_all<'a>(
        &'a self,
        mut buf: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'a>> {
        Box::pin(async move {
            while !buf.is_empty() {
                let n = std::future::poll_fn(|cx| self.poll(cx, buf)).await?;
                buf = &buf[n..];
            }
            Ok(())
        })
    }
}
