//! [`QuicConfig`]: the QUIC transport's settings, tuned for a LAN.

use std::sync::Arc;
use std::time::Duration;

use pulsing_transport_http::HttpConfig;

use crate::tls::Tls;

/// Wraps the endpoint's UDP socket (fault injection in tests: loss, delay): given quinn's socket,
/// returns the one the endpoint uses.
pub type SocketWrapper =
    Arc<dyn Fn(Arc<dyn quinn::AsyncUdpSocket>) -> Arc<dyn quinn::AsyncUdpSocket> + Send + Sync>;

/// Settings of a [`QuicTransport`](crate::QuicTransport).
///
/// | field | default | meaning |
/// |---|---|---|
/// | [`http`](Self::http) | `HttpConfig::default()` | the TCP door (HTTP v1, links to HTTP-only peers) and the link settings shared by both doors: message limit, keep-alive interval and timeout, link buffer, idle links |
/// | [`handshake_timeout`](Self::handshake_timeout) | 1 s | a QUIC handshake with a peer; a peer that does not answer is called over TCP (HTTP-only node) for [`fallback_for`](Self::fallback_for) |
/// | [`fallback_for`](Self::fallback_for) | 60 s | how long a peer that did not answer QUIC is called over TCP before QUIC is tried again |
/// | [`initial_rtt`](Self::initial_rtt) | 10 ms | the round trip assumed before one is measured: a lost handshake packet is resent after a few of these (quinn's default, 333 ms, resends after ~1 s, the whole handshake timeout) |
/// | [`idle_timeout`](Self::idle_timeout) | 4 s | a QUIC connection with no packet from the peer for this long is closed (its links fail) |
/// | [`keep_alive`](Self::keep_alive) | 1 s | QUIC PINGs on every connection (below the idle timeout, so a live peer's connection never idles out) |
/// | [`stream_window`](Self::stream_window) | 4 MiB | per-stream receive window |
/// | [`connection_window`](Self::connection_window) | 16 MiB | per-connection receive window |
/// | [`tcp_sentinel`](Self::tcp_sentinel) | on | a TCP connect to the peer's TCP door alongside each QUIC handshake (refused: nothing runs there, the call fails at once), kept open idle as a sentinel once the peer's TCP door answered it with a link hello (the peer's kernel closes it when its process dies: the QUIC connection ends at once); with a cluster secret it speaks TLS, as the door does. Off: nothing but QUIC between QUIC nodes; a refused address then fails by the handshake timeout and a killed peer by the idle timeout |
/// | [`max_streams`](Self::max_streams) | 256 | concurrent bidirectional streams a peer may open (one per link and per gossip exchange) |
/// | [`max_handshakes`](Self::max_handshakes) | 256 | the server: QUIC handshakes in progress (and connection attempts not yet handled, each buffering at most 64 KiB); more attempts are refused at once (QUIC `CONNECTION_REFUSED`; a Pulsing caller then uses the TCP door for [`fallback_for`](Self::fallback_for)). A handshake not finished within 3 × [`handshake_timeout`](Self::handshake_timeout) is dropped |
/// | [`max_connections`](Self::max_connections) | 4096 | the server: QUIC connections served at once, handshakes included; more attempts are refused at once |
/// | [`tls`](Self::tls) | none | TLS without a cluster secret: `None` is a self-signed certificate and any peer accepted ([`Tls::self_signed`]). With a cluster secret (`docs/security.md`) the transport makes its TLS from the cluster CA (both sides present a certificate from it, client certificates mandatory); setting this too is an error |
///
/// A silent peer (stopped process, cut link) fails the calls on its links by the link keep-alive
/// (interval + timeout of [`http`](Self::http), 4 s by default) or the QUIC idle timeout, whichever
/// comes first.
#[derive(Clone)]
#[non_exhaustive]
pub struct QuicConfig {
    /// The TCP door and the link settings.
    pub http: HttpConfig,
    /// Bound on a QUIC handshake.
    pub handshake_timeout: Duration,
    /// How long a peer that did not answer QUIC is called over TCP.
    pub fallback_for: Duration,
    /// The round trip assumed until one is measured.
    pub initial_rtt: Duration,
    /// QUIC idle timeout.
    pub idle_timeout: Duration,
    /// QUIC keep-alive interval.
    pub keep_alive: Duration,
    /// Per-stream receive window, bytes.
    pub stream_window: u32,
    /// Per-connection receive window, bytes.
    pub connection_window: u32,
    /// Concurrent bidirectional streams a peer may open.
    pub max_streams: u32,
    /// Whether to probe the peer's TCP door beside each handshake and keep that connection as a
    /// sentinel of the peer's process.
    pub tcp_sentinel: bool,
    /// QUIC handshakes in progress the server allows (at least 1).
    pub max_handshakes: usize,
    /// QUIC connections the server serves at once (at least 1).
    pub max_connections: usize,
    /// TLS without a cluster secret; `None`: a self-signed certificate made at start, any peer
    /// accepted ([`Tls::self_signed`]). Conflicts with a cluster secret.
    pub tls: Option<Tls>,
    /// Wraps the UDP socket (tests: packet loss); `None` in production.
    pub socket_wrapper: Option<SocketWrapper>,
}

impl std::fmt::Debug for QuicConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicConfig")
            .field("http", &self.http)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("fallback_for", &self.fallback_for)
            .field("initial_rtt", &self.initial_rtt)
            .field("idle_timeout", &self.idle_timeout)
            .field("keep_alive", &self.keep_alive)
            .field("stream_window", &self.stream_window)
            .field("connection_window", &self.connection_window)
            .field("max_streams", &self.max_streams)
            .field("tcp_sentinel", &self.tcp_sentinel)
            .field("max_handshakes", &self.max_handshakes)
            .field("max_connections", &self.max_connections)
            .field("tls", &self.tls)
            .field("socket_wrapper", &self.socket_wrapper.is_some())
            .finish()
    }
}

impl Default for QuicConfig {
    fn default() -> QuicConfig {
        QuicConfig {
            http: HttpConfig::default(),
            handshake_timeout: Duration::from_secs(1),
            fallback_for: Duration::from_secs(60),
            initial_rtt: Duration::from_millis(10),
            idle_timeout: Duration::from_secs(4),
            keep_alive: Duration::from_secs(1),
            stream_window: 4 * 1024 * 1024,
            connection_window: 16 * 1024 * 1024,
            max_streams: 256,
            tcp_sentinel: true,
            max_handshakes: 256,
            max_connections: 4096,
            tls: None,
            socket_wrapper: None,
        }
    }
}

impl QuicConfig {
    /// Sets [`http`](Self::http).
    pub fn http(mut self, http: HttpConfig) -> QuicConfig {
        self.http = http;
        self
    }

    /// Sets [`max_handshakes`](Self::max_handshakes) (at least 1).
    pub fn max_handshakes(mut self, n: usize) -> QuicConfig {
        self.max_handshakes = n.max(1);
        self
    }

    /// Sets [`max_connections`](Self::max_connections) (at least 1).
    pub fn max_connections(mut self, n: usize) -> QuicConfig {
        self.max_connections = n.max(1);
        self
    }

    /// Sets [`tls`](Self::tls) (not with a cluster secret).
    pub fn tls(mut self, tls: Tls) -> QuicConfig {
        self.tls = Some(tls);
        self
    }

    /// Sets [`tcp_sentinel`](Self::tcp_sentinel).
    pub fn tcp_sentinel(mut self, on: bool) -> QuicConfig {
        self.tcp_sentinel = on;
        self
    }

    /// Sets [`socket_wrapper`](Self::socket_wrapper).
    pub fn socket_wrapper(mut self, wrap: SocketWrapper) -> QuicConfig {
        self.socket_wrapper = Some(wrap);
        self
    }

    /// Sets [`handshake_timeout`](Self::handshake_timeout).
    pub fn handshake_timeout(mut self, timeout: Duration) -> QuicConfig {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets [`idle_timeout`](Self::idle_timeout).
    pub fn idle_timeout(mut self, timeout: Duration) -> QuicConfig {
        self.idle_timeout = timeout;
        self
    }
}
