//! The HTTP transport of Pulsing: [`HttpTransport`] implements [`pulsing_core::Transport`] over
//! hyper 1.x.
//!
//! - **Server**: one TCP port per node serves HTTP/1.1, HTTP/2 with prior knowledge (h2c) and
//!   node-to-node **links**, told apart from the first bytes of each connection: `POST
//!   /actor/{name}` (ask, tell, streamed replies), `POST /cluster/gossip`, `GET /health`, `GET
//!   /metrics`, `GET /actors`, and links (`docs/protocol.md` §8). Bodies and frames over
//!   [`HttpConfig::max_message_size`] are refused before they are buffered; slow clients are cut off
//!   by [`HttpConfig::header_read_timeout`] and [`HttpConfig::body_read_timeout`].
//! - **Client**: node-to-node asks and tells travel on one link per peer address: one TCP
//!   connection carrying length-prefixed msgpack frames in order, tells pipelined and batched, asks
//!   matched to their replies by id (`link` module). Gossip uses HTTP/2 with prior knowledge over a
//!   small pool of connections per peer, spoken with the `h2` crate directly. A call is never
//!   retried once its bytes may have left (see *Delivery and retries* below).
//!
//! - **With a cluster secret** ([`Transport::secure`], set by the system builder's `.secret(..)`):
//!   the port speaks TLS only (rustls; ALPN `h2`, `http/1.1`, `pulsing-link/1`), links and gossip
//!   are mutual TLS with node certificates from the cluster CA derived from the secret, HTTP
//!   clients need a client certificate from that CA or an API token (`401 unauthorized`), and
//!   plaintext gets `400` (`GET /health` excepted). See [`security`] and `docs/security.md`.
//!
//! The wire format is specified in `docs/protocol.md` (the one source of truth); [`codec`] encodes and
//! decodes its msgpack bodies, stream frames and link frames without IO, and [`protocol`] holds its
//! header names, status table and text bodies.
//!
//! This crate does **not** hold actor or membership logic (those are `pulsing-core` and
//! `pulsing-cluster`), and does not accept streamed *requests* (a request is one
//! message; replies may stream).
//!
//! # Delivery and retries
//!
//! At most once, FIFO per sender→receiver pair across tells and asks (one ordered link per peer).
//!
//! - A **tell** returns once it is queued on the link (the link buffer, [`HttpConfig::link_buffer`],
//!   full for longer than the system's mailbox wait: [`PulsingError::MailboxFull`], not sent). It
//!   reports what is known before it is queued: the node cannot be reached, the ref is for another
//!   run of the node, the message is over the peer's limit. What fails later is a dead letter,
//!   counted in `SystemStats::dead_letters`: on the peer (unknown or private actor, mailbox full past
//!   its bound, stopped actor, node shutting down), or here (tells still queued when the link closed).
//! - A refused connection, or a peer that accepts but never sends the link's hello, fails the call at
//!   once with [`PulsingError::NodeUnreachable`] whose `delivery` is
//!   [`Delivery::NotDelivered`](pulsing_core::Delivery::NotDelivered).
//! - A peer that stops answering (a stopped process, a hung host, a cut cable) fails the calls on its
//!   link with `NodeUnreachable` ([`Delivery::MaybeDelivered`](pulsing_core::Delivery::MaybeDelivered))
//!   once a keep-alive goes unanswered: within [`HttpConfig::keepalive_interval`] +
//!   [`HttpConfig::keepalive_timeout`] (4 s by default), or sooner when the membership declares it
//!   down ([`Transport::peer_gone`]); a peer that answers keep-alives but not the ask fails it by the
//!   call's timeout ([`PulsingError::Timeout`]).
//! - A peer shutting down says which asks it read (`bye`): the others fail at once as not delivered.

//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), pulsing_core::PulsingError> {
//! use pulsing_core::{ActorSystem, Message};
//! use pulsing_transport_http::{HttpConfig, HttpTransport};
//!
//! let system = ActorSystem::builder()
//!     .addr("127.0.0.1:0")
//!     .transport(HttpTransport::new(HttpConfig::default()))
//!     .build()
//!     .await?;
//! println!("serving on {}", system.addr().expect("a transport serves"));
//! system.shutdown().await;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod body;
mod client;
pub mod codec;
mod config;
pub mod link;
pub mod protocol;
pub mod security;
mod server;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use pulsing_core::{async_trait, InboundHandler, Message, PulsingError, RemoteTarget, Security};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{
    HttpConfig, DEFAULT_BODY_READ_TIMEOUT, DEFAULT_CONNECTIONS_PER_PEER, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_KEEPALIVE_INTERVAL, DEFAULT_KEEPALIVE_TIMEOUT,
    DEFAULT_LINK_BUFFER, DEFAULT_LINK_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HANDSHAKES, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_TLS_HANDSHAKE_TIMEOUT,
};
pub use pulsing_core::Transport;

/// The longest [`Transport::shutdown`] waits for served links to write replies already given
/// (a link waits 1 s for them, then closes).
pub const SHUTDOWN_DRAIN: Duration = Duration::from_millis(1500);

/// The HTTP transport: serves one address and calls other nodes over one link per peer (asks and
/// tells) and pooled HTTP/2 connections (gossip).
///
/// Build one per [`ActorSystem`](pulsing_core::ActorSystem) and hand it to the builder's
/// `.transport(..)`. [`Transport::serve`] may be called once.
///
/// # Cancel safety
///
/// Dropping an `ask` future abandons the call: a `cancel` frame tells the serving node, which skips
/// the ask if the actor has not reached it and drops the reply otherwise. Dropping a `tell` future
/// before it returned means the message was not queued. Dropping a `gossip` future resets its
/// HTTP/2 stream.
pub struct HttpTransport {
    config: HttpConfig,
    client: client::Client,
    links: link::Links,
    shutdown: CancellationToken,
    /// The served connections, awaited (briefly) at shutdown so replies already given get out.
    connections: TaskTracker,
    bound: OnceLock<SocketAddr>,
    serving: AtomicBool,
    /// Set by [`Transport::secure`]; the TLS state is made from it at serve.
    security: OnceLock<Security>,
    tls: security::TlsSlot,
}

impl HttpTransport {
    /// A transport with `config`. Nothing is bound until the system calls [`Transport::serve`].
    pub fn new(config: HttpConfig) -> HttpTransport {
        let shutdown = CancellationToken::new();
        let tls = security::TlsSlot::default();
        HttpTransport {
            client: client::Client::new(config.clone(), shutdown.clone(), tls.clone()),
            links: link::Links::tcp(config.clone(), shutdown.clone(), tls.clone()),
            config,
            shutdown,
            connections: TaskTracker::new(),
            bound: OnceLock::new(),
            serving: AtomicBool::new(false),
            security: OnceLock::new(),
            tls,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// The address served, once [`Transport::serve`] returned.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.bound.get().copied()
    }

    /// Peers the client keeps state for now: addresses with an open (or opening) link or pooled
    /// HTTP/2 connections. A peer leaves the pool when its link closes (the peer went away, stopped
    /// answering keep-alives, was declared down, or the link idled); for tests and diagnostics.
    pub fn pooled_peers(&self) -> usize {
        self.links.pooled() + self.client.pooled()
    }
}

impl Default for HttpTransport {
    fn default() -> HttpTransport {
        HttpTransport::new(HttpConfig::default())
    }
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("config", &self.config)
            .field("bound", &self.bound.get())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Transport for HttpTransport {
    fn name(&self) -> &'static str {
        "http"
    }

    /// Binds `addr` and serves it on a background task until [`shutdown`](Transport::shutdown).
    ///
    /// # Errors
    ///
    /// [`PulsingError::Config`] if the address cannot be bound or this transport already serves.
    async fn serve(
        &self,
        addr: SocketAddr,
        handler: Arc<dyn InboundHandler>,
    ) -> Result<SocketAddr, PulsingError> {
        if self.serving.swap(true, Ordering::AcqRel) {
            return Err(PulsingError::Config(
                "this HttpTransport already serves an address; use one transport per system".into(),
            ));
        }
        self.links.set_handler(handler.clone());
        if let Some(security) = self.security.get() {
            let tls = security::NodeTls::new(security, &[addr.ip()])?;
            tracing::info!(
                ca = tls.identity.presented_ca(),
                accepted = security.secrets().len(),
                "cluster secret set: this node speaks TLS only and authenticates its peers"
            );
            self.tls.set(Arc::new(tls));
        }
        let bound = server::serve(
            addr,
            handler,
            self.config.clone(),
            self.shutdown.clone(),
            self.connections.clone(),
            self.tls.current().cloned(),
        )
        .await?;
        let _ = self.bound.set(bound);
        Ok(bound)
    }

    /// Sends `msg` as an `ask` frame on the link to `target.addr` and waits for the reply (a stream
    /// if the actor streams), at most `timeout` in all (opening the link included).
    ///
    /// # Errors
    ///
    /// The remote error with its kind ([`PulsingError::from_wire`]); [`PulsingError::NodeUnreachable`]
    /// for a refused or lost connection; [`PulsingError::Timeout`] after `timeout`;
    /// [`PulsingError::BadMessage`] for a streamed `msg` (requests are single messages).
    async fn ask(
        &self,
        target: &RemoteTarget,
        msg: Message,
        timeout: Duration,
    ) -> Result<Message, PulsingError> {
        self.links.ask(target, msg, timeout).await
    }

    /// Queues `msg` as a `tell` frame on the link to `target.addr`; returns once it is queued,
    /// waiting at most `timeout` for the link to open or for room in its buffer.
    ///
    /// # Errors
    ///
    /// As for [`ask`](Transport::ask).
    async fn tell(
        &self,
        target: &RemoteTarget,
        msg: Message,
        timeout: Duration,
    ) -> Result<(), PulsingError> {
        self.links.tell(target, msg, timeout).await
    }

    /// `POST /cluster/gossip` with `x-pulsing-from` set to this node's address when it serves.
    ///
    /// # Errors
    ///
    /// As for [`ask`](Transport::ask).
    async fn gossip(
        &self,
        to: SocketAddr,
        packet: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, PulsingError> {
        self.client
            .gossip(to, packet, self.local_addr(), timeout)
            .await
    }

    /// Stops accepting, closes this node's links and connections, and waits (at most
    /// [`SHUTDOWN_DRAIN`]) for served links to write the replies already given.
    async fn shutdown(&self) {
        self.shutdown.cancel();
        self.links.clear();
        self.client.clear();
        self.connections.close();
        let _ = tokio::time::timeout(SHUTDOWN_DRAIN, self.connections.wait()).await;
    }

    /// Makes this transport speak TLS only, with certificates from the cluster CA of `security`'s
    /// secrets (`docs/security.md`): links and gossip need a member's certificate both ways; HTTP
    /// clients need a client certificate from the CA or one of the API tokens (else `401`);
    /// plaintext is refused with `400` (`GET /health` excepted).
    ///
    /// # Errors
    ///
    /// [`PulsingError::Config`] if this transport already serves or was secured, or a certificate
    /// cannot be made.
    fn secure(&self, security: &Security) -> Result<(), PulsingError> {
        if self.serving.load(Ordering::Acquire) {
            return Err(PulsingError::Config(
                "secure() must be called before the transport serves".into(),
            ));
        }
        // Derives the CAs now, so a bad secret fails the build before anything is bound (the
        // node's key and certificate are made at serve, with the bound address in it).
        if security.secrets().is_empty() {
            return Err(PulsingError::Config(
                "a cluster identity needs a secret".into(),
            ));
        }
        for secret in security.secrets() {
            security::ClusterCa::derive(secret)?;
        }
        self.tls.require();
        self.security.set(security.clone()).map_err(|_| {
            PulsingError::Config("this HttpTransport was already given a cluster secret".into())
        })
    }

    /// Pings the link and each pooled connection to `addr` and closes those not answering within
    /// 1 s: calls waiting on them fail with [`PulsingError::NodeUnreachable`] giving `reason`, and
    /// they leave the pool; the next call connects afresh. Those that answer (a node leaving
    /// gracefully) stay.
    fn peer_gone(&self, addr: SocketAddr, reason: &str) {
        self.links.peer_gone(addr, reason);
        self.client.peer_gone(addr, reason);
    }
}
