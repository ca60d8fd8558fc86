//! The QUIC transport of Pulsing: [`QuicTransport`] implements [`pulsing_core::Transport`] over
//! quinn-proto 0.11 (rustls, ring), driven by the transport itself (`src/driver`: one task per
//! endpoint for timers, writes sent by the writer and datagrams read by the link's reader that
//! wants them; quinn's own driver costs three task hops per round trip on each side).
//!
//! - **Same messages, same framing**: node-to-node asks and tells travel on links
//!   (`docs/protocol.md` §8), each link one bidirectional QUIC stream on the one connection to its
//!   peer; gossip exchanges use a stream each (§9). So a cluster whose nodes all use QUIC needs no
//!   TCP between them.
//! - **Both doors**: a QUIC node serves QUIC on UDP port P and the HTTP transport (HTTP v1, `curl`,
//!   `/health`, `/metrics`, TCP links) on TCP port P. Calls to a peer that does not answer a QUIC
//!   handshake within [`QuicConfig::handshake_timeout`] go over TCP for
//!   [`QuicConfig::fallback_for`], so a cluster mixing QUIC and HTTP-only nodes works.
//! - **TLS**: QUIC always encrypts. Without a cluster secret each node makes a self-signed
//!   certificate at start and accepts any peer's: encrypted, **not authenticated**
//!   ([`Tls::custom`] replaces both sides). With a cluster secret (the system builder's
//!   `.secret(..)`, `docs/security.md`) both sides present a certificate from the cluster CA and
//!   require one from the other (QUIC and the TCP door alike): a peer with another secret or none
//!   is refused, and calls to it fail with [`PulsingError::Unauthorized`] naming its address.
//! - **Limits**: handshakes in progress and connections served are bounded
//!   ([`QuicConfig::max_handshakes`], [`QuicConfig::max_connections`]); attempts over them are
//!   refused at once, and a handshake that does not finish in time is dropped.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), pulsing_core::PulsingError> {
//! use pulsing_core::ActorSystem;
//! use pulsing_transport_quic::{QuicConfig, QuicTransport};
//!
//! let system = ActorSystem::builder()
//!     .addr("127.0.0.1:0")
//!     .transport(QuicTransport::new(QuicConfig::default())?)
//!     .build()
//!     .await?;
//! println!("QUIC on udp/{0}, HTTP on tcp/{0}", system.addr().expect("serves"));
//! system.shutdown().await;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![deny(unsafe_code)]

mod config;
mod driver;
mod net;
mod sentinel;
mod serve;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod socket;
mod tls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use pulsing_core::{async_trait, InboundHandler, Message, PulsingError, RemoteTarget, Security};
use pulsing_transport_http::link::{Links, Unsent};
use pulsing_transport_http::HttpTransport;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{QuicConfig, SocketWrapper};
pub use pulsing_core::Transport;
/// quinn, re-exported so a [`SocketWrapper`] implements its `AsyncUdpSocket`.
pub use quinn;
pub use tls::{Tls, ALPN};

use net::{Net, QuicDial};

/// The QUIC transport: QUIC on UDP port P for node-to-node calls and gossip, the HTTP transport on
/// TCP port P for everything else (see the crate docs).
pub struct QuicTransport {
    net: Arc<Net>,
    links: Links,
    http: HttpTransport,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    bound: OnceLock<SocketAddr>,
    serving: AtomicBool,
    doors: Doors,
}

/// Calls (asks, tells, gossip exchanges) sent through each door.
#[derive(Default)]
struct Doors {
    quic: AtomicU64,
    tcp: AtomicU64,
}

/// How many calls (asks, tells, gossip exchanges) a [`QuicTransport`] sent over each door since it
/// was made ([`QuicTransport::calls_by_door`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DoorCounts {
    /// Sent over QUIC (a call that failed there counts too, unless it then went over TCP).
    pub quic: u64,
    /// Sent over TCP, to peers that did not answer QUIC.
    pub tcp: u64,
}

impl std::fmt::Debug for QuicTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicTransport")
            .field("config", &self.net.config)
            .field("bound", &self.bound.get())
            .finish_non_exhaustive()
    }
}

impl QuicTransport {
    /// A transport with `config`. Nothing is bound until the system calls [`Transport::serve`].
    ///
    /// # Errors
    ///
    /// [`PulsingError::Config`] if the TLS configuration cannot be made.
    pub fn new(config: QuicConfig) -> Result<QuicTransport, PulsingError> {
        let shutdown = CancellationToken::new();
        let http = HttpTransport::new(config.http.clone());
        let net = Arc::new(Net::new(config)?);
        let links = Links::new(
            net.config.http.clone(),
            Box::new(QuicDial(net.clone())),
            shutdown.clone(),
        );
        Ok(QuicTransport {
            net,
            links,
            http,
            shutdown,
            tasks: TaskTracker::new(),
            bound: OnceLock::new(),
            serving: AtomicBool::new(false),
            doors: Doors::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &QuicConfig {
        &self.net.config
    }

    /// The address served (UDP for QUIC, TCP for HTTP, same port), once [`Transport::serve`]
    /// returned.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.bound.get().copied()
    }

    /// Peers the transport keeps state for (QUIC links and connections, and the TCP door's pool);
    /// for tests and diagnostics.
    pub fn pooled_peers(&self) -> usize {
        self.links.pooled() + self.net.pooled() + self.http.pooled_peers()
    }

    /// Calls sent over each door so far: how a test (or an operator) sees that QUIC nodes talk QUIC.
    pub fn calls_by_door(&self) -> DoorCounts {
        DoorCounts {
            quic: self.doors.quic.load(Ordering::Relaxed),
            tcp: self.doors.tcp.load(Ordering::Relaxed),
        }
    }

    /// Sends `msg` by `quic` unless `addr` lately did not answer QUIC; then, or when `quic` gives
    /// `msg` back because the peer does not answer QUIC (nothing was sent), by `tcp` with the time
    /// left. The message is moved, not copied: `quic` hands it back when it could not send it.
    async fn either<M, T, Q, H>(
        &self,
        addr: SocketAddr,
        timeout: Duration,
        msg: M,
        quic: impl FnOnce(M) -> Q,
        tcp: impl FnOnce(M, Duration) -> H,
    ) -> Result<T, PulsingError>
    where
        Q: std::future::Future<Output = Result<T, Unsent<M>>>,
        H: std::future::Future<Output = Result<T, PulsingError>>,
    {
        let started = Instant::now();
        if self.net.prefers_tcp(addr) {
            self.doors.tcp.fetch_add(1, Ordering::Relaxed);
            return tcp(msg, timeout).await;
        }
        match quic(msg).await {
            Err(Unsent::Back(back))
                if self.net.prefers_tcp(addr)
                    && back.0.delivery() == pulsing_core::Delivery::NotDelivered =>
            {
                self.doors.tcp.fetch_add(1, Ordering::Relaxed);
                tcp(back.1, timeout.saturating_sub(started.elapsed())).await
            }
            r => {
                self.doors.quic.fetch_add(1, Ordering::Relaxed);
                r.map_err(Unsent::into_error)
            }
        }
    }
}

#[async_trait]
impl Transport for QuicTransport {
    fn name(&self) -> &'static str {
        "quic"
    }

    /// Serves HTTP on TCP `addr` and QUIC on UDP at the same address and port.
    ///
    /// # Errors
    ///
    /// [`PulsingError::Config`] if either cannot be bound or this transport already serves.
    async fn serve(
        &self,
        addr: SocketAddr,
        handler: Arc<dyn InboundHandler>,
    ) -> Result<SocketAddr, PulsingError> {
        if self.serving.swap(true, Ordering::AcqRel) {
            return Err(PulsingError::Config(
                "this QuicTransport already serves an address; use one transport per system".into(),
            ));
        }
        self.links.set_handler(handler.clone());
        // Port 0: one the kernel gave for TCP may be held for UDP by another socket.
        let (addr, udp) = if addr.port() == 0 {
            let (port, udp) = Net::free_port(addr.ip())?;
            (SocketAddr::new(addr.ip(), port), Some(udp))
        } else {
            (addr, None)
        };
        let bound = self.http.serve(addr, handler.clone()).await?;
        let endpoint = match self.net.bind(bound, udp) {
            Ok(e) => e,
            Err(e) => {
                // The UDP port of that number is taken: give the TCP door back too.
                self.http.shutdown().await;
                return Err(e);
            }
        };
        self.tasks.spawn(serve::accept_loop(
            endpoint,
            self.net.clone(),
            handler,
            self.shutdown.clone(),
            self.tasks.clone(),
        ));
        let _ = self.bound.set(bound);
        Ok(bound)
    }

    async fn ask(
        &self,
        target: &RemoteTarget,
        msg: Message,
        timeout: Duration,
    ) -> Result<Message, PulsingError> {
        // The message goes to one door only.
        self.either(
            target.addr,
            timeout,
            msg,
            |m| self.links.ask_or_back(target, m, timeout),
            |m, left| self.http.ask(target, m, left),
        )
        .await
    }

    async fn tell(
        &self,
        target: &RemoteTarget,
        msg: Message,
        timeout: Duration,
    ) -> Result<(), PulsingError> {
        self.either(
            target.addr,
            timeout,
            msg,
            |m| self.links.tell_or_back(target, m, timeout),
            |m, left| self.http.tell(target, m, left),
        )
        .await
    }

    async fn gossip(
        &self,
        to: SocketAddr,
        packet: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, PulsingError> {
        let from = self.local_addr();
        self.either(
            to,
            timeout,
            packet,
            // A packet is cheap to copy (shared bytes): kept for the TCP door whatever failed.
            |p: Bytes| async move {
                let spare = p.clone();
                self.net
                    .gossip(to, p, from, timeout)
                    .await
                    .map_err(|e| Unsent::Back(Box::new((e, spare))))
            },
            |p, left| self.http.gossip(to, p, left),
        )
        .await
    }

    /// Drains the QUIC side first (its links write the replies already given, up to 1.5 s), then
    /// shuts the TCP door (whose close also tells peers' sentinels this node is gone), then closes
    /// the endpoint.
    async fn shutdown(&self) {
        self.shutdown.cancel();
        self.links.clear();
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_millis(1500), self.tasks.wait()).await;
        self.http.shutdown().await;
        self.net.close();
    }

    /// Makes both doors authenticate with certificates from the cluster CA of `security`'s
    /// secrets (`docs/security.md`): the TCP door (and the TCP fallback) speak TLS only, as the
    /// HTTP transport does, and QUIC presents this node's certificate and requires a peer's from
    /// an accepted CA, both ways. A call to a node that refuses this node's certificate, or whose
    /// certificate is not from an accepted CA, fails with [`PulsingError::Unauthorized`] (not
    /// delivered) naming its address; it is not retried over TCP.
    ///
    /// # Errors
    ///
    /// [`PulsingError::Config`] if [`QuicConfig::tls`] is set (it conflicts with a secret), the
    /// transport already serves or was secured, or a certificate cannot be made.
    fn secure(&self, security: &Security) -> Result<(), PulsingError> {
        if self.serving.load(Ordering::Acquire) {
            return Err(PulsingError::Config(
                "secure() must be called before the transport serves".into(),
            ));
        }
        // QUIC first: it refuses a conflicting QuicConfig::tls before the TCP door changes.
        self.net.secure(security)?;
        self.http.secure(security)
    }

    fn peer_gone(&self, addr: SocketAddr, reason: &str) {
        self.links.peer_gone(addr, reason);
        self.http.peer_gone(addr, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulsing_core::ActorName;
    use pulsing_transport_http::HttpConfig;

    /// Each remote call boxes its future (the `Transport` trait is object-safe). glibc serves
    /// blocks up to 1,032 bytes from a per-thread cache; a larger one takes malloc's slow path
    /// both ways, ~0.7k instructions per QUIC tell when a tell's future was 1,224 bytes. What
    /// keeps them small: the link client boxes opening a link and waiting for room.
    #[tokio::test]
    async fn a_call_s_boxed_future_fits_in_malloc_s_thread_cache() {
        const CACHED: usize = 1032;
        let target = RemoteTarget {
            addr: "127.0.0.1:9".parse().unwrap(),
            name: ActorName::new("x").unwrap(),
            node: None,
        };
        let quic = QuicTransport::new(QuicConfig::default()).unwrap();
        let http = HttpTransport::new(HttpConfig::default());
        let msg = || Message::single("m", "p");
        let second = Duration::from_secs(1);
        let sizes = [
            (
                "quic tell",
                size_of_val(&*quic.tell(&target, msg(), second)),
            ),
            ("quic ask", size_of_val(&*quic.ask(&target, msg(), second))),
            (
                "http tell",
                size_of_val(&*http.tell(&target, msg(), second)),
            ),
            ("http ask", size_of_val(&*http.ask(&target, msg(), second))),
        ];
        for (call, size) in sizes {
            assert!(
                size <= CACHED,
                "a {call}'s future is {size} bytes, over {CACHED}"
            );
        }
    }
}
