//! The real transports a cluster test runs over: HTTP always, QUIC when the test is built with the
//! facade's `quic` feature (`make test` builds with it). [`over_each_transport!`] turns one
//! scenario into one test per transport.
#![allow(dead_code, unreachable_pub, unused_macros)]

use std::sync::Arc;
use std::time::Duration;

use pulsing::http::{HttpConfig, HttpTransport};
use pulsing::Transport;

/// A transport a node can serve and call over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// `pulsing::http::HttpTransport`: TCP port P.
    Http,
    /// `pulsing::quic::QuicTransport`: QUIC on UDP port P, HTTP on TCP port P.
    #[cfg(feature = "quic")]
    Quic,
}

impl TransportKind {
    /// Its name, also the value of `cluster_node --transport`.
    pub fn name(self) -> &'static str {
        match self {
            TransportKind::Http => "http",
            #[cfg(feature = "quic")]
            TransportKind::Quic => "quic",
        }
    }

    /// A transport of this kind with its default settings.
    pub fn transport(self) -> Arc<dyn Transport> {
        self.with_links(HttpConfig::default())
    }

    /// A transport of this kind whose links (keep-alives, limits) follow `http`; for QUIC that is
    /// `QuicConfig::http`, the other settings default.
    pub fn with_links(self, http: HttpConfig) -> Arc<dyn Transport> {
        match self {
            TransportKind::Http => Arc::new(HttpTransport::new(http)),
            #[cfg(feature = "quic")]
            TransportKind::Quic => Arc::new(
                pulsing::quic::QuicTransport::new(pulsing::quic::QuicConfig::default().http(http))
                    .expect("a QUIC transport"),
            ),
        }
    }

    /// A transport of this kind that never gives up on a silent peer by itself: link keep-alives
    /// off, and for QUIC an idle timeout of `idle` (QUIC's own liveness check) instead of 4 s. Only
    /// the membership's verdict (or the ask timeout) then ends a call to a silent peer. A QUIC
    /// connection idles out after the shorter of its two ends' timeouts: give the peers
    /// [`idle_timeout_flags`](Self::idle_timeout_flags) too.
    #[cfg_attr(not(feature = "quic"), allow(unused_variables))]
    pub fn without_keepalives(self, idle: Duration) -> Arc<dyn Transport> {
        let http = HttpConfig::default().keepalive_interval(Duration::ZERO);
        match self {
            TransportKind::Http => Arc::new(HttpTransport::new(http)),
            #[cfg(feature = "quic")]
            TransportKind::Quic => Arc::new(
                pulsing::quic::QuicTransport::new(
                    pulsing::quic::QuicConfig::default()
                        .http(http)
                        .idle_timeout(idle),
                )
                .expect("a QUIC transport"),
            ),
        }
    }

    /// The `cluster_node` flags that set its QUIC idle timeout to `idle` (none for HTTP).
    #[cfg_attr(not(feature = "quic"), allow(unused_variables))]
    pub fn idle_timeout_flags(self, idle: Duration) -> Vec<String> {
        match self {
            TransportKind::Http => Vec::new(),
            #[cfg(feature = "quic")]
            TransportKind::Quic => vec!["--quic-idle-timeout".into(), idle.as_secs().to_string()],
        }
    }

    /// How long a first call to a peer that does not answer may spend before this transport
    /// tries its TCP door: QUIC's handshake timeout, zero for HTTP (TCP only).
    pub fn handshake_detour(self) -> Duration {
        match self {
            TransportKind::Http => Duration::ZERO,
            #[cfg(feature = "quic")]
            TransportKind::Quic => pulsing::quic::QuicConfig::default().handshake_timeout,
        }
    }
}

/// `over_each_transport!(scenario);` for a `fn scenario(kind: TransportKind)`: a module `scenario`
/// with the tests `over_http` and (with the `quic` feature) `over_quic`, so `cargo test scenario`
/// runs both. Needs this module included as `transports`, with `#[macro_use]`.
macro_rules! over_each_transport {
    ($scenario:ident) => {
        mod $scenario {
            #[test]
            fn over_http() {
                super::$scenario($crate::transports::TransportKind::Http);
            }

            #[cfg(feature = "quic")]
            #[test]
            fn over_quic() {
                super::$scenario($crate::transports::TransportKind::Quic);
            }
        }
    };
}
