//! [`HttpConfig`]: limits and timeouts of the HTTP transport.

use std::time::Duration;

/// Default [`HttpConfig::max_message_size`]: 64 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;
/// Default [`HttpConfig::connect_timeout`]: 3 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default [`HttpConfig::header_read_timeout`]: 10 s.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`HttpConfig::body_read_timeout`]: 30 s.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`HttpConfig::connections_per_peer`]: 2.
pub const DEFAULT_CONNECTIONS_PER_PEER: usize = 2;
/// Default [`HttpConfig::keepalive_interval`]: 1 s.
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// Default [`HttpConfig::keepalive_timeout`]: 3 s.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Default [`HttpConfig::link_buffer`]: 1 MiB.
pub const DEFAULT_LINK_BUFFER: usize = 1024 * 1024;
/// Default [`HttpConfig::link_idle_timeout`]: 60 s.
pub const DEFAULT_LINK_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Default [`HttpConfig::max_connections`]: 4096.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default [`HttpConfig::max_handshakes`]: 256.
pub const DEFAULT_MAX_HANDSHAKES: usize = 256;
/// Default [`HttpConfig::tls_handshake_timeout`]: 5 s.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Limits and timeouts of an [`HttpTransport`](crate::HttpTransport), for its server and its client.
///
/// | field | default | applies to |
/// |---|---|---|
/// | [`max_message_size`](Self::max_message_size) | 64 MiB | request bodies served (413 above it, refused before buffering); reply bodies and stream frames received |
/// | [`connect_timeout`](Self::connect_timeout) | 3 s | the client's TCP connect (also bounded by the call's own timeout) |
/// | [`header_read_timeout`](Self::header_read_timeout) | 10 s | the server: a connection's first request head (and each HTTP/1.1 request head) must arrive within it |
/// | [`body_read_timeout`](Self::body_read_timeout) | 30 s | the server: a request body must arrive whole within it (then `408`) |
/// | [`connections_per_peer`](Self::connections_per_peer) | 2 | the client: HTTP/2 connections opened to one peer address for gossip; requests are spread over them round-robin |
/// | [`keepalive_interval`](Self::keepalive_interval) | 1 s | the client: pause between the last PING's answer and the next PING on each link and HTTP/2 connection (`Duration::ZERO`: no keep-alives) |
/// | [`keepalive_timeout`](Self::keepalive_timeout) | 3 s | the client: a PING unanswered this long closes its link or connection, failing the calls on it with `NodeUnreachable` |
/// | [`link_buffer`](Self::link_buffer) | 1 MiB | the client: unsent bytes queued on the link to one peer; a tell or ask finding it full waits for room (a tell at most the mailbox wait bound, then `MailboxFull`, not sent) |
/// | [`link_idle_timeout`](Self::link_idle_timeout) | 60 s | the client: a link that carried no call for this long is closed and leaves the pool (`Duration::ZERO`: never) |
/// | [`max_connections`](Self::max_connections) | 4096 | the server: connections served at once; more are accepted and closed at once. With a cluster secret, a quarter of them at most are callers without a node certificate |
/// | [`max_handshakes`](Self::max_handshakes) | 256 | the server, with a cluster secret: TLS handshakes in progress; a connection over it closes the oldest one in progress and takes its place |
/// | [`tls_handshake_timeout`](Self::tls_handshake_timeout) | 5 s | with a cluster secret: a TLS handshake not finished by then is dropped (the server's; a client waits at most the keep-alive timeout, 3 s, as for a link's hello) |
///
/// With keep-alives, a peer that stops answering without closing its sockets (a stopped process, a
/// hung host) fails every call in flight to it within `keepalive_interval + keepalive_timeout`
/// (4 s by default) instead of by the call's timeout. PINGs are answered by the peer's transport
/// (its link reader, its HTTP/2 layer), not by actor code, so a peer busy in a handler is not
/// dropped as long as its runtime runs.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulsing_transport_http::{HttpConfig, HttpTransport};
/// let config = HttpConfig::default()
///     .max_message_size(1 << 20)
///     .body_read_timeout(Duration::from_secs(5));
/// let transport = HttpTransport::new(config);
/// # drop(transport);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Largest message body accepted, in bytes.
    pub max_message_size: usize,
    /// Bound on opening a TCP connection to a peer.
    pub connect_timeout: Duration,
    /// Bound on receiving a request head.
    pub header_read_timeout: Duration,
    /// Bound on receiving a whole request body, from its head.
    pub body_read_timeout: Duration,
    /// HTTP/2 connections per peer address (at least 1).
    pub connections_per_peer: usize,
    /// Pause between a PING's answer and the next PING on each client connection; `Duration::ZERO`
    /// turns keep-alives off (a silent peer then fails calls only by their timeout).
    pub keepalive_interval: Duration,
    /// Bound on the answer to a PING; without one in time the connection is dropped and every
    /// call in flight on it fails with `NodeUnreachable` with `Delivery::MaybeDelivered`.
    pub keepalive_timeout: Duration,
    /// Unsent bytes a link to one peer holds before senders wait for room.
    pub link_buffer: usize,
    /// A link without calls for this long is closed; `Duration::ZERO`: never.
    pub link_idle_timeout: Duration,
    /// Connections the server serves at once (at least 1).
    pub max_connections: usize,
    /// TLS handshakes the server runs at once (at least 1); a newer one closes the oldest.
    pub max_handshakes: usize,
    /// Bound on a TLS handshake.
    pub tls_handshake_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            connections_per_peer: DEFAULT_CONNECTIONS_PER_PEER,
            keepalive_interval: DEFAULT_KEEPALIVE_INTERVAL,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            link_buffer: DEFAULT_LINK_BUFFER,
            link_idle_timeout: DEFAULT_LINK_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            tls_handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
        }
    }
}

impl HttpConfig {
    /// Sets [`max_message_size`](Self::max_message_size).
    pub fn max_message_size(mut self, bytes: usize) -> HttpConfig {
        self.max_message_size = bytes;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> HttpConfig {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`header_read_timeout`](Self::header_read_timeout).
    pub fn header_read_timeout(mut self, timeout: Duration) -> HttpConfig {
        self.header_read_timeout = timeout;
        self
    }

    /// Sets [`body_read_timeout`](Self::body_read_timeout).
    pub fn body_read_timeout(mut self, timeout: Duration) -> HttpConfig {
        self.body_read_timeout = timeout;
        self
    }

    /// Sets [`connections_per_peer`](Self::connections_per_peer) (at least 1).
    pub fn connections_per_peer(mut self, n: usize) -> HttpConfig {
        self.connections_per_peer = n.max(1);
        self
    }

    /// Sets [`keepalive_interval`](Self::keepalive_interval); `Duration::ZERO` turns keep-alives off.
    pub fn keepalive_interval(mut self, interval: Duration) -> HttpConfig {
        self.keepalive_interval = interval;
        self
    }

    /// Sets [`keepalive_timeout`](Self::keepalive_timeout).
    pub fn keepalive_timeout(mut self, timeout: Duration) -> HttpConfig {
        self.keepalive_timeout = timeout;
        self
    }

    /// Sets [`link_buffer`](Self::link_buffer) (at least 64 KiB).
    pub fn link_buffer(mut self, bytes: usize) -> HttpConfig {
        self.link_buffer = bytes.max(64 * 1024);
        self
    }

    /// Sets [`link_idle_timeout`](Self::link_idle_timeout); `Duration::ZERO`: never.
    pub fn link_idle_timeout(mut self, timeout: Duration) -> HttpConfig {
        self.link_idle_timeout = timeout;
        self
    }

    /// Sets [`max_connections`](Self::max_connections) (at least 1).
    pub fn max_connections(mut self, n: usize) -> HttpConfig {
        self.max_connections = n.max(1);
        self
    }

    /// Sets [`max_handshakes`](Self::max_handshakes) (at least 1).
    pub fn max_handshakes(mut self, n: usize) -> HttpConfig {
        self.max_handshakes = n.max(1);
        self
    }

    /// Sets [`tls_handshake_timeout`](Self::tls_handshake_timeout).
    pub fn tls_handshake_timeout(mut self, timeout: Duration) -> HttpConfig {
        self.tls_handshake_timeout = timeout;
        self
    }

    /// How long a client waits for a peer's TLS handshake: [`tls_handshake_timeout`], and no
    /// longer than it waits for a link's hello (the keep-alive timeout, or the connect timeout
    /// without keep-alives), since a peer's transport answers both at once: a stopped peer then
    /// fails a call as fast with TLS as without.
    ///
    /// [`tls_handshake_timeout`]: Self::tls_handshake_timeout
    pub(crate) fn client_handshake_bound(&self) -> Duration {
        let hello = if self.keepalive_interval.is_zero() {
            self.connect_timeout
        } else {
            self.keepalive_timeout
        };
        self.tls_handshake_timeout.min(hello)
    }
}
