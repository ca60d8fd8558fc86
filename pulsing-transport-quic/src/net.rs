//! The QUIC side: the endpoint, connections to peers (one per address, reused), link streams over
//! them ([`QuicDial`], [`QuicWriter`]), and gossip exchanges.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use pulsing_core::{Delivery, PulsingError, Security};
use pulsing_transport_http::link::{Dial, Dialing, LinkReader, LinkWriter};
use quinn_proto::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn_proto::{ConnectionError, IdleTimeout, VarInt};
use rustls::AlertDescription;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::Instant;

use crate::config::QuicConfig;
use crate::driver::{self, RecvStream, SendStream, StreamError};
use crate::sentinel;
use crate::tls::{ClusterTls, Tls, SERVER_NAME};

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

/// What the QUIC transport's parts share: settings, TLS, the endpoint, connections, and which
/// peers did not answer QUIC lately.
pub(crate) struct Net {
    pub(crate) config: QuicConfig,
    /// The TLS without a cluster secret: [`QuicConfig::tls`], else self-signed.
    tls: Tls,
    /// With a cluster secret ([`Net::secure`]): used instead of `tls`.
    cluster: OnceLock<ClusterTls>,
    endpoint: OnceLock<driver::Endpoint>,
    conns: Mutex<HashMap<SocketAddr, driver::Connection>>,
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
            cluster: OnceLock::new(),
            endpoint: OnceLock::new(),
            conns: Mutex::default(),
            no_quic: Mutex::default(),
        })
    }

    /// Uses certificates from the cluster CA of `security`'s secrets from now on (mandatory
    /// client certificates on the serving side). Called before the endpoint is bound.
    ///
    /// # Errors
    ///
    /// [`PulsingError::Config`] if [`QuicConfig::tls`] is set too (they conflict), this was
    /// already called, or the certificates cannot be made.
    pub(crate) fn secure(&self, security: &Security) -> Result<(), PulsingError> {
        if self.config.tls.is_some() {
            return Err(PulsingError::Config(
                "QuicConfig::tls and a cluster secret conflict: with a secret the QUIC transport \
                 makes its TLS from the cluster CA itself; set one or the other"
                    .into(),
            ));
        }
        self.cluster.set(ClusterTls::new(security)?).map_err(|_| {
            PulsingError::Config("this QuicTransport was already given a cluster secret".into())
        })
    }

    /// With a cluster secret: whether a peer that passed the handshake (its certificate is from an
    /// accepted CA) holds a **node** certificate, not a client certificate for HTTP calls. Without
    /// a secret: always (nothing is authenticated).
    pub(crate) fn is_node(&self, conn: &driver::Connection) -> bool {
        let Some(cluster) = self.cluster.get() else {
            return true;
        };
        conn.peer_identity()
            .and_then(|id| {
                id.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                    .ok()
            })
            .is_some_and(|chain| cluster.identity.is_node(&chain))
    }

    /// The TLS in use: the cluster's with a secret, else the default or the configured one.
    fn tls(&self) -> &Tls {
        self.cluster.get().map_or(&self.tls, |c| &c.quic)
    }

    fn transport_config(&self) -> Result<quinn_proto::TransportConfig, PulsingError> {
        let c = &self.config;
        let mut t = quinn_proto::TransportConfig::default();
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

    /// The server side of the endpoint's configuration. Connection attempts not yet handled
    /// (quinn-proto's `Incoming`) are bounded by [`QuicConfig::max_handshakes`], and what each may
    /// buffer by [`INCOMING_BUFFER`]: quinn-proto refuses the ones over the bound itself.
    pub(crate) fn server_config(&self) -> Result<quinn_proto::ServerConfig, PulsingError> {
        let crypto = QuicServerConfig::try_from(self.tls().server.clone())
            .map_err(|e| PulsingError::Config(format!("QUIC server TLS: {e}")))?;
        let mut server = quinn_proto::ServerConfig::with_crypto(Arc::new(crypto));
        let pending = self.config.max_handshakes.max(1);
        server
            .transport_config(Arc::new(self.transport_config()?))
            .max_incoming(pending)
            .incoming_buffer_size(INCOMING_BUFFER)
            .incoming_buffer_size_total(INCOMING_BUFFER.saturating_mul(pending as u64));
        Ok(server)
    }

    fn client_config(&self) -> Result<quinn_proto::ClientConfig, PulsingError> {
        let crypto = QuicClientConfig::try_from((*self.tls().client).clone())
            .map_err(|e| PulsingError::Config(format!("QUIC client TLS: {e}")))?;
        let mut client = quinn_proto::ClientConfig::new(Arc::new(crypto));
        client.transport_config(Arc::new(self.transport_config()?));
        Ok(client)
    }

    /// Binds the serving endpoint (UDP `addr`, or `socket` if already bound there).
    pub(crate) fn bind(
        &self,
        addr: SocketAddr,
        socket: Option<std::net::UdpSocket>,
    ) -> Result<driver::Endpoint, PulsingError> {
        let endpoint = self.make_endpoint(addr, socket, Some(self.server_config()?))?;
        let _ = self.endpoint.set(endpoint.clone());
        Ok(self.endpoint.get().cloned().unwrap_or(endpoint))
    }

    /// An endpoint on UDP `addr` (`socket`, if already bound; through the socket wrapper, if any).
    fn make_endpoint(
        &self,
        addr: SocketAddr,
        socket: Option<std::net::UdpSocket>,
        server: Option<quinn_proto::ServerConfig>,
    ) -> Result<driver::Endpoint, PulsingError> {
        let cannot =
            |e: io::Error| PulsingError::Config(format!("cannot bind UDP {addr} for QUIC: {e}"));
        let socket = match socket {
            Some(s) => s,
            None => std::net::UdpSocket::bind(addr).map_err(cannot)?,
        };
        // Not `runtime.wrap_udp_socket` on Linux: see `socket.rs` (two syscalls fewer per packet).
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let mut socket: Arc<dyn quinn::AsyncUdpSocket> =
            Arc::new(crate::socket::DrainingSocket::new(socket).map_err(cannot)?);
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let mut socket =
            quinn::Runtime::wrap_udp_socket(&quinn::TokioRuntime, socket).map_err(cannot)?;
        if let Some(wrap) = &self.config.socket_wrapper {
            socket = wrap(socket);
        }
        Ok(driver::Endpoint::new(socket, server))
    }

    /// The endpoint calls go out from: the serving one, or a client-only one made on first use.
    fn endpoint(&self, to: SocketAddr) -> Result<driver::Endpoint, PulsingError> {
        if let Some(e) = self.endpoint.get() {
            return Ok(e.clone());
        }
        let any: SocketAddr = if to.is_ipv4() {
            "0.0.0.0:0".parse().expect("an address")
        } else {
            "[::]:0".parse().expect("an address")
        };
        let endpoint = self.make_endpoint(any, None, None)?;
        let _ = self.endpoint.set(endpoint);
        Ok(self.endpoint.get().cloned().expect("just set"))
    }

    /// For a node asked to serve on port 0: a port free for both doors, and the UDP socket bound
    /// on it (kept, so nothing takes it before the endpoint does). The kernel picks the TCP port
    /// alone, and a UDP socket of another process (a QUIC caller's) may hold that number; so a
    /// few are tried. The TCP probe is let go before the HTTP door binds the port again.
    pub(crate) fn free_port(
        ip: std::net::IpAddr,
    ) -> Result<(u16, std::net::UdpSocket), PulsingError> {
        const TRIES: usize = 16;
        let mut last = None;
        for _ in 0..TRIES {
            let tcp = std::net::TcpListener::bind(SocketAddr::new(ip, 0))
                .map_err(|e| PulsingError::Config(format!("cannot bind TCP {ip}:0: {e}")))?;
            let port = tcp
                .local_addr()
                .map_err(|e| PulsingError::Config(e.to_string()))?
                .port();
            match std::net::UdpSocket::bind(SocketAddr::new(ip, port)) {
                Ok(udp) => return Ok((port, udp)),
                Err(e) => last = Some(e),
            }
        }
        Err(PulsingError::Config(format!(
            "no port of {ip} was free for both TCP and UDP in {TRIES} tries: {}",
            last.map_or_else(String::new, |e| e.to_string())
        )))
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
    ) -> Result<driver::Connection, PulsingError> {
        if let Some(c) = self.live(addr) {
            return Ok(c);
        }
        let endpoint = self.endpoint(addr)?;
        let connecting = endpoint
            .connect(self.client_config()?, addr, SERVER_NAME)
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
                if let Some(refused) = self.refusal(addr, &e) {
                    // The peer answers QUIC: it is not an HTTP-only node, and TCP would not help.
                    return Err(refused);
                }
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
            tokio::spawn(sentinel::watch(
                tcp,
                conn.clone(),
                self.config.http.max_message_size,
                self.cluster.get().map(|c| c.sentinel.clone()),
                self.config.http.tls_handshake_timeout,
            ));
        }
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.retain(|_, c| c.close_reason().is_none());
        Ok(conns.entry(addr).or_insert(conn).clone())
    }

    /// The error for a connection to `addr` that ended because this node or the peer refused the
    /// other's certificate (a TLS alert as QUIC's crypto error code, RFC 9001 §4.8); `None` for
    /// any other end. In TLS 1.3 the server checks the client's certificate after the client
    /// considers the handshake done, so the peer's refusal may end a connection already made.
    pub(crate) fn refusal(&self, addr: SocketAddr, e: &ConnectionError) -> Option<PulsingError> {
        let ours = self.cluster.get().is_some();
        let why = match e {
            // We refused the peer's certificate (the reason is rustls's).
            ConnectionError::TransportError(t) if refused_alert(t.code).is_some() => format!(
                "the node at {addr} presented a certificate that is not from this cluster's CA \
                 ({}): its cluster secret differs from this node's{}",
                t.reason,
                if ours { ", or it has none" } else { "" }
            ),
            ConnectionError::ConnectionClosed(c) => {
                let alert = refused_alert(c.error_code)?;
                if ours {
                    format!(
                        "the node at {addr} refused this node's certificate (TLS alert \
                         {alert:?}): its cluster secret differs from this node's"
                    )
                } else {
                    format!(
                        "the node at {addr} refused this node (TLS alert {alert:?}): it requires a \
                         certificate from its cluster CA, and this node has no cluster secret \
                         (every node of a cluster needs the same one)"
                    )
                }
            }
            _ => return None,
        };
        Some(PulsingError::Unauthorized(why))
    }

    fn live(&self, addr: SocketAddr) -> Option<driver::Connection> {
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
            // A connection that ends because the peer refused this node's certificate is
            // `unauthorized`; any other loss may have come after the packet was read.
            let lost = |e: &dyn std::fmt::Display, c: Option<&ConnectionError>| {
                c.and_then(|c| self.refusal(to, c)).unwrap_or_else(|| {
                    unreachable(to, format!("QUIC gossip: {e}"), Delivery::MaybeDelivered)
                })
            };
            let (mut send, mut recv) = conn.open_bi().await.map_err(|e| lost(&e, Some(&e)))?;
            let from = from.map(|a| a.to_string()).unwrap_or_default();
            let mut head = Vec::with_capacity(24 + from.len());
            head.extend_from_slice(GOSSIP_PREFACE);
            head.extend_from_slice(&(from.len() as u16).to_be_bytes());
            head.extend_from_slice(from.as_bytes());
            head.extend_from_slice(&(packet.len() as u32).to_be_bytes());
            send.write_all(&head)
                .await
                .map_err(|e| lost(&e, stream_lost(&e)))?;
            send.write_all(&packet)
                .await
                .map_err(|e| lost(&e, stream_lost(&e)))?;
            let _ = send.finish();
            let answer = recv
                .read_to_end(self.config.http.max_message_size)
                .await
                .map_err(|e| lost(&e, stream_lost(&e)))?;
            Ok(Bytes::from(answer))
        };
        tokio::time::timeout_at(by, exchange)
            .await
            .unwrap_or(Err(PulsingError::Timeout(timeout)))
    }
}

/// How long the TCP probe may take once the QUIC handshake finished.
const PROBE_GRACE: Duration = Duration::from_millis(200);

/// What one connection attempt not yet handled may buffer on the serving endpoint (the client's
/// first flights; a handshake needs a few KiB).
pub(crate) const INCOMING_BUFFER: u64 = 64 * 1024;

/// The TLS alert in a QUIC crypto error `code` (0x100 + alert) when it refuses a certificate:
/// none presented, or one from another CA, or not signed by its key.
fn refused_alert(code: quinn_proto::TransportErrorCode) -> Option<AlertDescription> {
    let code = u64::from(code);
    if !(0x100..0x200).contains(&code) {
        return None;
    }
    let alert = AlertDescription::from((code - 0x100) as u8);
    matches!(
        alert,
        AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::AccessDenied
            | AlertDescription::DecryptError
            | AlertDescription::CertificateRequired
    )
    .then_some(alert)
}

fn stream_lost(e: &StreamError) -> Option<&ConnectionError> {
    match e {
        StreamError::ConnectionLost(c) => Some(c),
        _ => None,
    }
}

/// A link stream's IO error that is the peer refusing this node's certificate, as the TLS error
/// the link layer reports as `unauthorized` naming the address (`handshake_error` of the HTTP
/// transport's security module); any other error as it is.
fn as_tls_refusal(e: io::Error) -> io::Error {
    let alert = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<StreamError>())
        .and_then(stream_lost)
        .and_then(|c| match c {
            ConnectionError::ConnectionClosed(c) => refused_alert(c.error_code),
            _ => None,
        });
    match alert {
        Some(alert) => io::Error::new(
            io::ErrorKind::PermissionDenied,
            rustls::Error::AlertReceived(alert),
        ),
        None => e,
    }
}

/// A QUIC receive stream as a link's reader (errors through [`as_tls_refusal`]).
pub(crate) struct QuicReader(pub(crate) RecvStream);

impl AsyncRead for QuicReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.0).poll_read(cx, buf) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(as_tls_refusal(e))),
            other => other,
        }
    }
}

/// Links over QUIC: each link is one bidirectional stream on the connection to its peer.
pub(crate) struct QuicDial(pub(crate) Arc<Net>);

impl Dial for QuicDial {
    fn dial(&self, addr: SocketAddr, by: Instant) -> Dialing<'_> {
        Box::pin(async move {
            let conn = self.0.connection(addr, by).await?;
            let (send, mut recv) = match tokio::time::timeout_at(by, conn.open_bi()).await {
                Ok(Ok(pair)) => pair,
                Ok(Err(e)) => {
                    if let Some(refused) = self.0.refusal(addr, &e) {
                        return Err(refused);
                    }
                    return Err(unreachable(
                        addr,
                        format!("opening a QUIC stream: {e}"),
                        Delivery::NotDelivered,
                    ));
                }
                Err(_) => {
                    return Err(unreachable(
                        addr,
                        "no QUIC stream could be opened in time (the peer's stream limit)",
                        Delivery::NotDelivered,
                    ))
                }
            };
            // The link reads it in a loop until it drops it (`RecvStream::reads_socket`).
            recv.reads_socket();
            Ok((
                Box::new(QuicReader(recv)) as LinkReader,
                Box::new(QuicWriter::new(send)) as Box<dyn LinkWriter>,
            ))
        })
    }
}

/// A QUIC send stream as a link's writer. The stream can be taken back when the link ends
/// ([`QuicWriter::handle`]), to finish it and wait until the peer read it all.
pub(crate) struct QuicWriter(Arc<Mutex<Option<SendStream>>>);

/// The stream of a [`QuicWriter`], kept by whoever opened it.
pub(crate) type StreamHandle = Arc<Mutex<Option<SendStream>>>;

impl QuicWriter {
    pub(crate) fn new(send: SendStream) -> QuicWriter {
        QuicWriter(Arc::new(Mutex::new(Some(send))))
    }

    /// A handle on the stream, to [`finish`] it once the link is done.
    pub(crate) fn handle(&self) -> StreamHandle {
        self.0.clone()
    }

    /// Writes what the stream takes now; when it takes nothing, `cx`'s waker (if any) is woken
    /// once it can.
    fn poll(&self, cx: Option<&mut Context<'_>>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match s.as_mut() {
            Some(s) => s
                .poll_write(cx, buf)
                .map_err(|e| as_tls_refusal(io::Error::from(e))),
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
        // Polled without a waker: if the stream cannot take bytes now, the outbox hands them to
        // its writer task, which polls again with its own.
        match self.poll(None, buf) {
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
                let n = std::future::poll_fn(|cx| self.poll(Some(cx), buf)).await?;
                buf = &buf[n..];
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_port_is_free_for_both_doors() {
        let ip: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        // The port it gives holds its UDP socket and still takes a TCP listener.
        let (port, udp) = Net::free_port(ip).unwrap();
        assert_eq!(udp.local_addr().unwrap().port(), port);
        std::net::TcpListener::bind(SocketAddr::new(ip, port)).expect("TCP free too");
    }

    fn closed_by_peer(code: quinn_proto::TransportErrorCode) -> ConnectionError {
        ConnectionError::ConnectionClosed(quinn_proto::ConnectionClose {
            error_code: code,
            frame_type: None,
            reason: Bytes::new(),
        })
    }

    #[test]
    fn only_certificate_alerts_are_refusals() {
        let crypto = quinn_proto::TransportErrorCode::crypto;
        assert_eq!(refused_alert(crypto(48)), Some(AlertDescription::UnknownCA));
        assert_eq!(
            refused_alert(crypto(116)),
            Some(AlertDescription::CertificateRequired)
        );
        // no_application_protocol: not a Pulsing peer, not a question of secrets.
        assert_eq!(refused_alert(crypto(120)), None);
        assert_eq!(
            refused_alert(quinn_proto::TransportErrorCode::CONNECTION_REFUSED),
            None
        );
    }

    #[test]
    fn a_peer_refusing_the_certificate_is_unauthorized_naming_it() {
        let net = Net::new(QuicConfig::default()).unwrap();
        let addr: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        let refused = closed_by_peer(quinn_proto::TransportErrorCode::crypto(116));
        let e = net.refusal(addr, &refused).expect("a refusal");
        assert!(matches!(e, PulsingError::Unauthorized(_)), "{e:?}");
        assert!(e.to_string().contains("127.0.0.1:7001"), "{e}");
        assert!(e.to_string().contains("no cluster secret"), "{e}");
        let refused_streams = closed_by_peer(quinn_proto::TransportErrorCode::CONNECTION_REFUSED);
        assert!(net.refusal(addr, &refused_streams).is_none());
        assert!(net.refusal(addr, &ConnectionError::TimedOut).is_none());
    }

    #[test]
    fn a_link_read_ended_by_a_refusal_reads_as_a_tls_alert() {
        let lost = StreamError::ConnectionLost(closed_by_peer(
            quinn_proto::TransportErrorCode::crypto(42),
        ));
        let e = as_tls_refusal(io::Error::from(lost));
        let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
        assert_eq!(
            inner,
            Some(&rustls::Error::AlertReceived(
                AlertDescription::BadCertificate
            ))
        );
        // What the link layer then reports.
        let addr: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        let reported = pulsing_transport_http::security::handshake_error(addr, &e);
        assert!(
            matches!(reported, PulsingError::Unauthorized(_)),
            "{reported:?}"
        );

        let other = as_tls_refusal(io::Error::from(StreamError::ConnectionLost(
            ConnectionError::TimedOut,
        )));
        assert!(other
            .get_ref()
            .and_then(|i| i.downcast_ref::<rustls::Error>())
            .is_none());
    }
}
