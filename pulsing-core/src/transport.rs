//! The [`Transport`] trait: how messages and gossip cross the network, and [`InboundHandler`], what a
//! transport calls when a message arrives. [`NoTransport`] is the standalone implementation.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{Delivery, PulsingError};
use crate::message::Message;
use crate::name::ActorName;
use crate::security::Security;
use crate::stats::SystemStats;

/// Identifies one run of a node: a fresh random value each time a system starts (the boot id).
///
/// A node restarted on the same address gets a new id, so a ref made for the old process can be told
/// apart from one for the new process: a transport refuses a call whose [`RemoteTarget::node`] does not
/// match the serving node's id with [`PulsingError::NotFound`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u64);

impl NodeId {
    /// A fresh random id, from the standard library's per-process random hasher keys mixed with the
    /// clock and the process id (no `rand` dependency for one number per boot).
    pub fn random() -> NodeId {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.write_u32(std::process::id());
        NodeId(h.finish())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for NodeId {
    type Err = PulsingError;

    /// Parses the form [`Display`](fmt::Display) writes: exactly 16 hex digits, either case.
    ///
    /// # Errors
    ///
    /// [`PulsingError::BadMessage`] for anything else.
    fn from_str(s: &str) -> Result<NodeId, PulsingError> {
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PulsingError::BadMessage(format!(
                "a node id is 16 hex digits, got {:?}",
                s.chars().take(40).collect::<String>()
            )));
        }
        u64::from_str_radix(s, 16)
            .map(NodeId)
            .map_err(|e| PulsingError::BadMessage(format!("node id {s:?}: {e}")))
    }
}

/// An actor on another node: where to send, and which run of that node is meant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemoteTarget {
    /// The node's address.
    pub addr: SocketAddr,
    /// The actor's name on that node.
    pub name: ActorName,
    /// The run of the node the ref was made for; `None` accepts whichever run answers at `addr`.
    pub node: Option<NodeId>,
}

/// Moves messages and gossip between nodes.
///
/// Implementations: the HTTP transport (`pulsing-transport-http`), the QUIC transport
/// (`pulsing-transport-quic`), and [`NoTransport`] for a standalone system.
///
/// # Contract
///
/// - Every call is bounded by the `timeout` it is given (connect, send and wait for the reply, all
///   included) and then fails with [`PulsingError::Timeout`].
/// - A peer that cannot be reached fails with [`PulsingError::NodeUnreachable`]; a refused connection
///   fails at once, not by the timeout. Its `delivery` is [`Delivery::NotDelivered`] when nothing was
///   sent, [`Delivery::MaybeDelivered`] once the request may have left.
/// - Errors that the remote node reports keep their kind ([`PulsingError::from_wire`]).
/// - An ask is never retried once its bytes may have left: delivery is at most once. A transport may
///   retry only when it knows nothing was sent (e.g. connect failed).
/// - Messages sent by one task to one actor over one transport reach the actor's mailbox in the order
///   their calls returned, tells and asks mixed (FIFO per sender→receiver pair): a task that tells an
///   actor 1,000 times and then asks it gets the reply after all 1,000 were handled.
/// - A tell may return once the message is queued for sending (bounded: waiting for room at most
///   the `timeout` given, then [`PulsingError::MailboxFull`], not sent). What fails after that is
///   reported to the system as a dead letter ([`InboundHandler::dead_letter`]), not to the caller.
/// - A transport that drives an ordered stream of messages from a task it owns must not leave an
///   actor it woke stuck behind itself (see the HTTP transport's link reader).
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// A short name for logs and benchmarks (`"http"`, `"quic"`, `"none"`).
    fn name(&self) -> &'static str;

    /// Starts serving at `addr` (port 0 picks a free port), routing inbound calls to `handler`, and
    /// returns the bound address once connections are accepted. Called once, by the system builder.
    ///
    /// # Errors
    ///
    /// [`PulsingError::Config`] if the address cannot be bound (in use, not local).
    async fn serve(
        &self,
        addr: SocketAddr,
        handler: Arc<dyn InboundHandler>,
    ) -> Result<SocketAddr, PulsingError>;

    /// Sends `msg` to `target` and waits for the reply, which may be a stream.
    async fn ask(
        &self,
        target: &RemoteTarget,
        msg: Message,
        timeout: Duration,
    ) -> Result<Message, PulsingError>;

    /// Sends `msg` to `target` without waiting for it to be handled: returns once it is queued on
    /// the way to `target` (a pipelining transport) or once the remote mailbox accepted it, waiting
    /// at most `timeout` for room or for the connection to open.
    async fn tell(
        &self,
        target: &RemoteTarget,
        msg: Message,
        timeout: Duration,
    ) -> Result<(), PulsingError>;

    /// Delivers a membership packet to the node at `to` and returns its answer (possibly empty).
    async fn gossip(
        &self,
        to: SocketAddr,
        packet: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, PulsingError>;

    /// Stops serving and closes connections. Calls in progress fail.
    async fn shutdown(&self);

    /// Turns on encryption and authentication with `security` (`docs/security.md`): called by the
    /// system builder once, before [`serve`](Self::serve), when a cluster secret is set. From then
    /// on the transport accepts only peers with a certificate from a cluster CA derived from one of
    /// the secrets, presents one from the first, and refuses HTTP clients without such a
    /// certificate or one of the API tokens.
    ///
    /// # Errors
    ///
    /// [`PulsingError::Config`] if the transport cannot authenticate (the default) or the
    /// certificates cannot be made.
    fn secure(&self, security: &Security) -> Result<(), PulsingError> {
        let _ = security;
        Err(PulsingError::Config(format!(
            "the {} transport cannot use a cluster secret; use the HTTP or QUIC transport",
            self.name()
        )))
    }

    /// Told that the node at `addr` is gone: the membership declared it down or it left. A transport
    /// that keeps connections checks those to `addr` and ends the ones that no longer answer (a
    /// leaving node still draining keeps its connections), so calls in flight to a dead or hung node
    /// fail promptly with [`PulsingError::NodeUnreachable`] carrying `reason` and
    /// [`Delivery::MaybeDelivered`] instead of waiting for their timeout; later calls connect afresh.
    ///
    /// Must not block: it is called from the system's membership-event task. The default does
    /// nothing (a transport without connections, or one that detects silent peers by itself).
    fn peer_gone(&self, addr: SocketAddr, reason: &str) {
        let _ = (addr, reason);
    }
}

/// The reply to an ask already queued in the actor's mailbox ([`InboundHandler::ask_queued`]).
pub type PendingReply =
    Pin<Box<dyn Future<Output = Result<Message, PulsingError>> + Send + 'static>>;

/// Where a transport wants the reply to an ask written ([`InboundHandler::ask_then`]): a function
/// called once with the outcome, on whichever thread answers (the actor's task, or a thread of the
/// Python module's), so that no task of the transport's waits for each reply.
///
/// The function must not block: write the reply to a buffer, or spawn what has to wait (a stream's
/// items). Its `cancelled` flag, set by the transport when the caller gives up, and its deadline,
/// the caller's (see [`until`](Self::until)), let a mailbox that has not reached the ask skip it
/// (at-most-once).
pub struct ReplySink {
    cancelled: Arc<AtomicBool>,
    deadline: Option<std::time::Instant>,
    write: Box<dyn FnOnce(Result<Message, PulsingError>) + Send>,
}

impl ReplySink {
    /// A sink calling `write` with the reply; `cancelled`, once set, marks the ask as given up.
    pub fn new(
        cancelled: Arc<AtomicBool>,
        write: impl FnOnce(Result<Message, PulsingError>) + Send + 'static,
    ) -> ReplySink {
        ReplySink {
            cancelled,
            deadline: None,
            write: Box::new(write),
        }
    }

    /// The caller gives up at `deadline`: from then on the ask counts as given up, even before the
    /// caller's word of it arrives.
    pub fn until(mut self, deadline: std::time::Instant) -> ReplySink {
        self.deadline = Some(deadline);
        self
    }

    /// Whether the transport marked the ask as given up, or its deadline passed.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
            || self
                .deadline
                .is_some_and(|d| std::time::Instant::now() >= d)
    }

    /// Writes the reply.
    pub fn send(self, result: Result<Message, PulsingError>) {
        (self.write)(result);
    }
}

impl fmt::Debug for ReplySink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplySink")
            .field("cancelled", &self.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// What a transport calls for inbound traffic. The actor system implements it.
///
/// Only **public** and **anonymous** actors are reachable through it (see
/// [`Visibility`](crate::Visibility)): a private actor's name answers [`PulsingError::NotFound`],
/// exactly as an unknown name does.
#[async_trait]
pub trait InboundHandler: Send + Sync + 'static {
    /// This node's boot id; a call addressed to another id is answered with `not_found`.
    fn node_id(&self) -> NodeId;

    /// Hands `msg` to the public or anonymous actor `name` and waits for its reply, at most `timeout` (or the
    /// system's ask timeout if `None`).
    async fn ask(
        &self,
        name: &str,
        msg: Message,
        timeout: Option<Duration>,
    ) -> Result<Message, PulsingError>;

    /// Queues `msg` in the public or anonymous actor `name`'s mailbox (waiting for room with the system's bound).
    async fn tell(&self, name: &str, msg: Message) -> Result<(), PulsingError>;

    /// Queues `msg` for the public or anonymous actor `name` as an ask (waiting for room with the
    /// system's bound) and returns, once it is queued, the reply to come, bounded by `timeout` (or
    /// the system's ask timeout if `None`).
    ///
    /// What an ordered link needs: a transport that serves messages from one connection in order
    /// awaits this for each ask before it takes the next message, so a tell after an ask is queued
    /// after it, and waits for the reply elsewhere. Dropping the returned future abandons the ask (a
    /// mailbox that has not reached it skips it).
    async fn ask_queued(
        &self,
        name: &str,
        msg: Message,
        timeout: Option<Duration>,
    ) -> Result<PendingReply, PulsingError>;

    /// As [`ask_queued`](Self::ask_queued), but the reply goes to `sink` instead of a future to
    /// await: once queued, the ask is answered by calling `sink` (with the actor's reply, or an
    /// error such as [`PulsingError::Stopped`]) exactly once. `Err` means it was not queued: `sink`
    /// was not called and will not be; the caller answers with the error.
    ///
    /// The system's handler puts `sink` in the mailbox, so the actor's own task writes the reply;
    /// it sets no timer of its own (the caller bounds its ask, and says when it gave up with the
    /// sink's flag). The default awaits [`ask_queued`](Self::ask_queued)'s reply on a task.
    async fn ask_then(
        &self,
        name: &str,
        msg: Message,
        timeout: Option<Duration>,
        sink: ReplySink,
    ) -> Result<(), PulsingError> {
        let reply = self.ask_queued(name, msg, timeout).await?;
        tokio::spawn(async move { sink.send(reply.await) });
        Ok(())
    }

    /// Records `count` dead letters: messages to `to` (an actor name, or a node address when the
    /// link to it broke) whose sender had already been told they were sent (pipelined tells) and
    /// that cannot be delivered, because of `err`. Counted by kind in
    /// [`SystemStats::dead_letters`], logged at debug. The default only logs.
    fn dead_letter(&self, to: &str, count: u64, err: &PulsingError) {
        tracing::debug!(actor = to, count, error = %err, "dead letters");
    }

    /// Records that a node-to-node link from `peer` was closed because it carried something that
    /// is not the link protocol (`why`). Counted in [`SystemStats::bad_links`]. The default only logs.
    fn bad_link(&self, peer: SocketAddr, why: &str) {
        tracing::debug!(%peer, why, "closed a bad link");
    }

    /// Hands a membership packet to the cluster layer and returns its answer.
    async fn gossip(&self, from: Option<SocketAddr>, packet: Bytes) -> Result<Bytes, PulsingError>;

    /// Names of the public actors on this node (anonymous ones are not listed).
    fn public_actors(&self) -> Vec<ActorName>;

    /// A snapshot of this node's counters.
    fn stats(&self) -> SystemStats;
}

/// The transport of a standalone system: serves nothing, reaches nobody.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTransport;

impl NoTransport {
    fn unreachable(addr: impl fmt::Display) -> PulsingError {
        PulsingError::NodeUnreachable {
            addr: addr.to_string(),
            reason:
                "this system has no transport (standalone); build it with a transport to reach \
                     other nodes"
                    .into(),
            delivery: Delivery::NotDelivered,
        }
    }
}

#[async_trait]
impl Transport for NoTransport {
    fn name(&self) -> &'static str {
        "none"
    }

    async fn serve(
        &self,
        _addr: SocketAddr,
        _handler: Arc<dyn InboundHandler>,
    ) -> Result<SocketAddr, PulsingError> {
        Err(PulsingError::Config(
            "a standalone system cannot serve an address; configure a transport".into(),
        ))
    }

    async fn ask(
        &self,
        t: &RemoteTarget,
        _: Message,
        _: Duration,
    ) -> Result<Message, PulsingError> {
        Err(NoTransport::unreachable(t.addr))
    }

    async fn tell(&self, t: &RemoteTarget, _: Message, _: Duration) -> Result<(), PulsingError> {
        Err(NoTransport::unreachable(t.addr))
    }

    async fn gossip(&self, to: SocketAddr, _: Bytes, _: Duration) -> Result<Bytes, PulsingError> {
        Err(NoTransport::unreachable(to))
    }

    async fn shutdown(&self) {}
}
