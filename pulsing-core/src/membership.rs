//! The [`Membership`] trait: which nodes form the cluster and where public actors live.
//! [`Standalone`] is the single-node implementation.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::broadcast;

use crate::error::PulsingError;
use crate::name::ActorName;
use crate::transport::{NodeId, Transport};

/// This node, as the membership layer needs to know it.
#[derive(Debug, Clone)]
pub struct LocalNode {
    /// This run's boot id.
    pub id: NodeId,
    /// The address the transport serves on; `None` for a system without a transport.
    pub addr: Option<SocketAddr>,
}

/// How a member is seen from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Missed probes; declared down unless it refutes in time.
    Suspect,
    /// Declared failed; its actors are forgotten.
    Down,
    /// Left on purpose (graceful shutdown).
    Left,
}

/// A node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its boot id.
    pub id: NodeId,
    /// Its address.
    pub addr: SocketAddr,
    /// Its state as seen here.
    pub state: MemberState,
}

/// Where an instance of a public actor lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActorLocation {
    /// The node's boot id.
    pub node: NodeId,
    /// The node's address.
    pub addr: SocketAddr,
}

/// A change in membership, as seen by this node.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MembershipEvent {
    /// A node joined or came back.
    MemberUp(Member),
    /// A node is suspected.
    MemberSuspect(Member),
    /// A node was declared down or left.
    MemberDown(Member),
}

/// Cluster membership and the registry of public actors.
///
/// Implementations: `pulsing-cluster` (SWIM via foca + gossiped registry) and [`Standalone`].
///
/// # Contract
///
/// - [`start`](Self::start) is called once by the system builder after the transport serves. With seeds
///   it returns only after a first sync with a reachable seed, or fails within a bounded time with an
///   error saying which seeds were tried.
/// - [`lookup`](Self::lookup) answers from local state; it never waits on the network.
/// - A node declared down or gone has no entries in `lookup` any more.
#[async_trait]
pub trait Membership: Send + Sync + 'static {
    /// Joins the cluster through `seeds` (addresses or DNS names with port) using `transport` for
    /// packets.
    async fn start(
        &self,
        local: LocalNode,
        transport: Arc<dyn Transport>,
        seeds: Vec<String>,
    ) -> Result<(), PulsingError>;

    /// The members known now, this node included.
    fn members(&self) -> Vec<Member>;

    /// Publishes that the public actor `name` runs on this node.
    async fn register(&self, name: &ActorName) -> Result<(), PulsingError>;

    /// Withdraws `name` from this node's public actors.
    async fn unregister(&self, name: &ActorName);

    /// Where instances of the public actor `name` live on **other** live nodes, in the order
    /// `find` should prefer them.
    fn lookup(&self, name: &str) -> Vec<ActorLocation>;

    /// A receiver of membership changes from now on.
    fn subscribe(&self) -> broadcast::Receiver<MembershipEvent>;

    /// Handles a membership packet from `from` and returns the answer to send back.
    async fn handle_gossip(
        &self,
        from: Option<SocketAddr>,
        packet: Bytes,
    ) -> Result<Bytes, PulsingError>;

    /// Announces that this node leaves, waiting at most `timeout`.
    async fn leave(&self, timeout: Duration);
}

/// Membership of a node alone: no peers, no gossip; `lookup` finds nothing remote.
#[derive(Debug)]
pub struct Standalone {
    local: std::sync::OnceLock<LocalNode>,
    events: broadcast::Sender<MembershipEvent>,
}

impl Default for Standalone {
    fn default() -> Standalone {
        Standalone {
            local: std::sync::OnceLock::new(),
            events: broadcast::channel(1).0,
        }
    }
}

#[async_trait]
impl Membership for Standalone {
    async fn start(
        &self,
        local: LocalNode,
        _transport: Arc<dyn Transport>,
        seeds: Vec<String>,
    ) -> Result<(), PulsingError> {
        if !seeds.is_empty() {
            return Err(PulsingError::Config(
                "seeds need a cluster membership: enable the `cluster` feature of `pulsing` or pass \
                 .membership(..) to the builder"
                    .into(),
            ));
        }
        let _ = self.local.set(local);
        Ok(())
    }

    fn members(&self) -> Vec<Member> {
        match self.local.get() {
            Some(LocalNode {
                id,
                addr: Some(addr),
            }) => vec![Member {
                id: *id,
                addr: *addr,
                state: MemberState::Alive,
            }],
            _ => Vec::new(),
        }
    }

    async fn register(&self, _name: &ActorName) -> Result<(), PulsingError> {
        Ok(())
    }

    async fn unregister(&self, _name: &ActorName) {}

    fn lookup(&self, _name: &str) -> Vec<ActorLocation> {
        Vec::new()
    }

    fn subscribe(&self) -> broadcast::Receiver<MembershipEvent> {
        self.events.subscribe()
    }

    async fn handle_gossip(
        &self,
        _from: Option<SocketAddr>,
        _packet: Bytes,
    ) -> Result<Bytes, PulsingError> {
        Err(PulsingError::NotFound(
            "this node is standalone: it takes part in no cluster".into(),
        ))
    }

    async fn leave(&self, _timeout: Duration) {}
}
