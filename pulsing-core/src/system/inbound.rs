//! [`Inbound`]: the system as its transport sees it, serving calls from other nodes.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{ActorSystem, SystemInner};
use crate::actor_ref::{self, ActorRef};
use crate::cell::LocalCell;
use crate::error::PulsingError;
use crate::mailbox::{Envelope, ReplyTo, SinkReply};
use crate::message::Message;
use crate::name::ActorName;
use crate::stats::SystemStats;
use crate::transport::{InboundHandler, NodeId, PendingReply, ReplySink};

/// The system as the transport sees it. Holds a weak reference so the transport (owned by the system)
/// does not keep the system alive.
pub(super) struct Inbound(pub(super) Weak<SystemInner>);

impl Inbound {
    fn system(&self) -> Result<ActorSystem, PulsingError> {
        let inner = self.0.upgrade().ok_or(PulsingError::SystemShutdown)?;
        let system = ActorSystem { inner };
        system.check_running()?;
        Ok(system)
    }

    /// The actor `name` if it is served to other nodes (public or anonymous); a private actor is
    /// `NotFound`, exactly as an unknown name.
    fn served(&self, system: &ActorSystem, name: &str) -> Result<Arc<LocalCell>, PulsingError> {
        match system.local(name) {
            Some(cell) if cell.visibility.is_served_remotely() => Ok(cell),
            _ => Err(PulsingError::NotFound(name.to_owned())),
        }
    }

    /// The actor an ask from another node goes to ([`served`](Self::served)), and the ask's
    /// timeout: the caller's, else the system's ask timeout.
    fn ask_target(
        &self,
        name: &str,
        timeout: Option<Duration>,
    ) -> Result<(Arc<LocalCell>, Duration), PulsingError> {
        let system = self.system()?;
        let cell = self.served(&system, name)?;
        Ok((
            cell,
            timeout.unwrap_or(system.inner.shared.config.ask_timeout),
        ))
    }
}

#[async_trait]
impl InboundHandler for Inbound {
    fn node_id(&self) -> NodeId {
        self.0.upgrade().map_or(NodeId(0), |i| i.shared.node_id)
    }

    async fn ask(
        &self,
        name: &str,
        msg: Message,
        timeout: Option<Duration>,
    ) -> Result<Message, PulsingError> {
        let (cell, timeout) = self.ask_target(name, timeout)?;
        ActorRef::local(cell).ask_with_timeout(msg, timeout).await
    }

    async fn ask_queued(
        &self,
        name: &str,
        msg: Message,
        timeout: Option<Duration>,
    ) -> Result<PendingReply, PulsingError> {
        let (cell, timeout) = self.ask_target(name, timeout)?;
        let queued = actor_ref::queue_ask(&cell, msg, timeout).await?;
        let name = cell.name.clone();
        Ok(Box::pin(async move { queued.reply(&name).await }))
    }

    async fn ask_then(
        &self,
        name: &str,
        msg: Message,
        timeout: Option<Duration>,
        sink: ReplySink,
    ) -> Result<(), PulsingError> {
        let (cell, timeout) = self.ask_target(name, timeout)?;
        let reply = ReplyTo::Sink(SinkReply::new(sink, cell.name.clone()));
        match actor_ref::enqueue_ask(&cell, msg, reply, timeout).await {
            Ok(_) => Ok(()),
            Err((e, reply)) => {
                // Not queued: the caller answers with `e`, so the sink must not answer `Stopped`.
                if let Some(ReplyTo::Sink(s)) = reply {
                    s.defuse();
                }
                Err(e)
            }
        }
    }

    fn dead_letter(&self, to: &str, count: u64, err: &PulsingError) {
        tracing::debug!(to, count, error = %err, "dead letters: pipelined tells not delivered");
        if let Some(inner) = self.0.upgrade() {
            inner.shared.counters.count_dead_letters(err, count);
        }
    }

    fn bad_link(&self, peer: SocketAddr, why: &str) {
        tracing::debug!(%peer, why, "closed a link that broke the link protocol");
        if let Some(inner) = self.0.upgrade() {
            inner
                .shared
                .counters
                .bad_links
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    async fn tell(&self, name: &str, msg: Message) -> Result<(), PulsingError> {
        let system = self.system()?;
        let cell = self.served(&system, name)?;
        let wait = system.inner.shared.config.mailbox_wait;
        cell.mailbox
            .push(Envelope { msg, reply: None }, wait, &cell.name)
            .await
    }

    async fn gossip(&self, from: Option<SocketAddr>, packet: Bytes) -> Result<Bytes, PulsingError> {
        let system = self.system()?;
        system.inner.membership.handle_gossip(from, packet).await
    }

    fn public_actors(&self) -> Vec<ActorName> {
        self.system().map_or_else(
            |_| Vec::new(),
            |s| {
                s.local_actors()
                    .into_iter()
                    .filter(|(_, public)| *public)
                    .map(|(n, _)| n)
                    .collect()
            },
        )
    }

    fn stats(&self) -> SystemStats {
        self.0
            .upgrade()
            .map(|inner| ActorSystem { inner }.stats())
            .unwrap_or_default()
    }
}
