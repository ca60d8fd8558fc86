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

/// Limits and timeouts of an [`HttpTransport`](crate::HttpTransport), for its server and its client.
///
/// | field | default | applies to |
/// |---|---|---|
/// | [`max_message_size`](Self::max_message_size) | 64 MiB | request bodies served (413 above it, refused before buffering); reply bodies and stream frames received |
/// | [`connect_timeout`](Self::connect_timeout) | 3 s | the client's TCP connect (also bounded by the call's own timeout) |
/// | [`header_read_timeout`](Self::header_read_timeout) | 10 s | the server: a connection's first request head (and each HTTP/1.1 request head) must arrive within it |
/// | [`body_read_timeout`](Self::body_read_timeout) | 30 s | the server: a request body must arrive whole within it (then `408`) |
/// | [`connections_per_peer`](Self::connections_per_peer) | 2 | the client: HTTP/2 connections opened to one peer address; requests are spread over them round-robin |
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
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            connections_per_peer: DEFAULT_CONNECTIONS_PER_PEER,
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
}
