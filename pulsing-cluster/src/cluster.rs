//! [`Cluster`]: the tokio driver around [`Node`] and the [`Membership`] implementation.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use pulsing_core::{
    async_trait, ActorLocation, ActorName, Delivery, LocalNode, Member, Membership,
    MembershipEvent, PulsingError, Transport,
};
use tokio::sync::{broadcast, watch, Notify};
use tokio::task::{AbortHandle, JoinSet};

use crate::config::ClusterConfig;
use crate::identity::Id;
use crate::node::{JoinState, Node, Transmit};

/// SWIM membership and the cluster-wide actor registry, as a [`Membership`] for an
/// [`ActorSystem`](pulsing_core::ActorSystem).
///
/// One `Cluster` serves one system: the builder calls [`start`](Membership::start) once. After
/// [`leave`](Membership::leave) it takes no further part.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulsing_cluster::{Cluster, ClusterConfig};
///
/// let cluster = Cluster::new(ClusterConfig {
///     suspicion_timeout: Duration::from_secs(5),
///     ..ClusterConfig::default()
/// });
/// // ActorSystem::builder().membership(cluster).seeds(["pulsing-0.pulsing:8000"])...
/// # drop(cluster);
/// ```
pub struct Cluster {
    shared: Arc<Shared>,
}

struct Shared {
    config: ClusterConfig,
    epoch: Instant,
    core: Mutex<Option<Node>>,
    events: broadcast::Sender<MembershipEvent>,
    join: watch::Sender<JoinState>,
    wake: Notify,
    transport: OnceLock<Arc<dyn Transport>>,
    driver: Mutex<Option<AbortHandle>>,
}

impl Default for Cluster {
    fn default() -> Cluster {
        Cluster::new(ClusterConfig::default())
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// A cluster membership with `config`; nothing runs until the system starts it.
    pub fn new(config: ClusterConfig) -> Cluster {
        let events = broadcast::channel(config.event_capacity.max(1)).0;
        Cluster {
            shared: Arc::new(Shared {
                epoch: Instant::now(),
                core: Mutex::new(None),
                events,
                join: watch::channel(JoinState::Joining).0,
                wake: Notify::new(),
                transport: OnceLock::new(),
                driver: Mutex::new(None),
                config,
            }),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &ClusterConfig {
        &self.shared.config
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(driver) = self.shared.driver_handle().take() {
            driver.abort();
        }
    }
}

impl Shared {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn core(&self) -> MutexGuard<'_, Option<Node>> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn driver_handle(&self) -> MutexGuard<'_, Option<AbortHandle>> {
        self.driver.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the node, publishes its events and wakes the driver to send what it queued.
    /// `None` before `start`.
    fn with_core<R>(&self, f: impl FnOnce(&mut Node, Duration) -> R) -> Option<R> {
        let mut guard = self.core();
        let node = guard.as_mut()?;
        let out = f(node, self.now());
        self.publish(node);
        drop(guard);
        self.wake.notify_one();
        Some(out)
    }

    fn publish(&self, node: &mut Node) {
        while let Some(event) = node.poll_event() {
            let _ = self.events.send(event);
        }
        let state = node.join_state();
        self.join.send_if_modified(|s| {
            let changed = *s != state;
            *s = state;
            changed
        });
    }

    /// One round of the driver: due timers, then the packets queued since the last round.
    fn round(&self) -> (Vec<Transmit>, Option<Duration>) {
        let mut guard = self.core();
        let Some(node) = guard.as_mut() else {
            return (Vec::new(), None);
        };
        node.handle_timeout(self.now());
        let mut sends = Vec::new();
        while let Some(t) = node.poll_transmit() {
            sends.push(t);
        }
        self.publish(node);
        (sends, node.poll_timeout())
    }
}

/// The driver task: owns the timers and hands packets to the transport, one task per packet
/// (each bounded by `gossip_timeout`).
async fn drive(shared: Arc<Shared>, transport: Arc<dyn Transport>) {
    loop {
        let (sends, deadline) = shared.round();
        for t in sends {
            let shared = shared.clone();
            let transport = transport.clone();
            tokio::spawn(async move {
                let timeout = shared.config.gossip_timeout;
                let reply = transport.gossip(t.to, t.payload, timeout).await;
                shared.with_core(|node, now| node.handle_reply(now, t.to, reply));
            });
        }
        let sleep = async {
            match deadline {
                Some(at) => {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(shared.epoch + at))
                        .await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = shared.wake.notified() => {}
            () = sleep => {}
        }
    }
}

/// Resolves every seed (`host:port`, host may be a DNS name naming several addresses).
async fn resolve(seeds: &[String], bound: Duration) -> (Vec<SocketAddr>, Vec<String>) {
    let mut addrs = Vec::new();
    let mut errors = Vec::new();
    for seed in seeds {
        match tokio::time::timeout(bound, tokio::net::lookup_host(seed.as_str())).await {
            Ok(Ok(found)) => {
                let before = addrs.len();
                addrs.extend(found);
                if addrs.len() == before {
                    errors.push(format!("{seed} (names no address)"));
                }
            }
            Ok(Err(e)) => errors.push(format!("{seed} ({e})")),
            Err(_) => errors.push(format!("{seed} (resolution timed out after {bound:?})")),
        }
    }
    (addrs, errors)
}

fn boot_millis() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[async_trait]
impl Membership for Cluster {
    /// Starts the driver and joins through `seeds`.
    ///
    /// Seeds are resolved (every address a DNS name gives is tried; our own address is skipped).
    /// With no seed left, this node is the first member and `start` returns at once. Otherwise it
    /// returns after the first push-pull sync with a seed (members and registry), asking every
    /// seed again each `join_retry`.
    ///
    /// # Errors
    ///
    /// - [`PulsingError::Config`] if `start` was already called, if seeds are given to a system
    ///   without an address, or if no seed resolves (the message lists each seed and why);
    /// - [`PulsingError::NodeUnreachable`] if no seed answered within `join_timeout` (the message
    ///   names every address tried and its last error).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves the driver running; the node may still join later.
    async fn start(
        &self,
        local: LocalNode,
        transport: Arc<dyn Transport>,
        seeds: Vec<String>,
    ) -> Result<(), PulsingError> {
        let shared = &self.shared;
        let Some(addr) = local.addr else {
            if seeds.is_empty() {
                return Ok(());
            }
            return Err(PulsingError::Config(
                "seeds need a node with an address: give the system a transport".into(),
            ));
        };
        if shared.core().is_some() {
            return Err(PulsingError::Config(
                "the cluster was already started".into(),
            ));
        }
        let cfg = &shared.config;
        let (resolved, errors) = resolve(&seeds, cfg.join_timeout).await;
        if !seeds.is_empty() && resolved.is_empty() {
            return Err(PulsingError::Config(format!(
                "no seed resolves to an address: {}",
                errors.join(", ")
            )));
        }
        let id = Id {
            addr,
            node: local.id,
            boot: boot_millis(),
            gen: 0,
        };
        let mut node = Node::new(id, cfg.clone(), local.id.0, shared.now());
        node.join(shared.now(), resolved);
        let tried: Vec<SocketAddr> = node.seeds().to_vec();
        *shared.core() = Some(node);
        let _ = shared.transport.set(transport.clone());
        let task = tokio::spawn(drive(shared.clone(), transport));
        *shared.driver_handle() = Some(task.abort_handle());
        shared.with_core(|_, _| ());
        let mut rx = shared.join.subscribe();
        let bound = cfg.join_timeout + cfg.join_retry * 2;
        let outcome = tokio::time::timeout(bound, rx.wait_for(|s| *s != JoinState::Joining)).await;
        if let Ok(Ok(state)) = outcome {
            if *state == JoinState::Joined {
                return Ok(());
            }
        }
        if let Some(driver) = shared.driver_handle().take() {
            driver.abort();
        }
        let errors = shared
            .core()
            .take()
            .map(|n| n.join_errors().clone())
            .unwrap_or_default();
        let reasons: Vec<String> = tried
            .iter()
            .map(|s| match errors.get(s) {
                Some(e) => format!("{s} ({e})"),
                None => format!("{s} (no answer)"),
            })
            .collect();
        if let Some((seed, PulsingError::Unauthorized(why))) = errors
            .iter()
            .find(|(_, e)| matches!(e, PulsingError::Unauthorized(_)))
        {
            let others = if tried.len() > 1 {
                format!(" (tried {})", reasons.join(", "))
            } else {
                String::new()
            };
            return Err(PulsingError::Unauthorized(format!(
                "the seed {seed} refused this node's identity, or is not in its cluster: {why}; \
                 every node of a cluster needs the same cluster secret{others}"
            )));
        }
        Err(PulsingError::NodeUnreachable {
            addr: seeds.join(", "),
            reason: format!(
                "no seed answered the join sync within {:?}; tried {}",
                cfg.join_timeout,
                reasons.join(", ")
            ),
            // Some seed may have received the join and answered too late.
            delivery: Delivery::MaybeDelivered,
        })
    }

    fn members(&self) -> Vec<Member> {
        self.shared
            .core()
            .as_ref()
            .map(Node::members)
            .unwrap_or_default()
    }

    async fn register(&self, name: &ActorName) -> Result<(), PulsingError> {
        self.shared.with_core(|node, now| node.register(now, name));
        Ok(())
    }

    async fn unregister(&self, name: &ActorName) {
        self.shared
            .with_core(|node, now| node.unregister(now, name));
    }

    /// Instances on other live nodes (alive or suspect), ordered by boot id. Answers from local
    /// state; never waits on the network.
    fn lookup(&self, name: &str) -> Vec<ActorLocation> {
        self.shared
            .core()
            .as_ref()
            .map(|n| n.lookup(name))
            .unwrap_or_default()
    }

    fn subscribe(&self) -> broadcast::Receiver<MembershipEvent> {
        self.shared.events.subscribe()
    }

    /// Handles one `POST /cluster/gossip` body; the answer is the response body.
    ///
    /// # Errors
    ///
    /// [`PulsingError::BadMessage`] for a packet that does not decode;
    /// [`PulsingError::NotFound`] before `start`; [`PulsingError::SystemShutdown`] after `leave`.
    async fn handle_gossip(
        &self,
        _from: Option<SocketAddr>,
        packet: Bytes,
    ) -> Result<Bytes, PulsingError> {
        self.shared
            .with_core(|node, now| node.handle_packet(now, &packet))
            .unwrap_or_else(|| {
                Err(PulsingError::NotFound(
                    "cluster membership of this node is not started".into(),
                ))
            })
    }

    /// Announces the leave to `indirect_probes` members and waits for them to take it, at most
    /// `timeout` (and at most `gossip_timeout`). Peers drop the node at once, without suspicion.
    async fn leave(&self, timeout: Duration) {
        let shared = &self.shared;
        if let Some(driver) = shared.driver_handle().take() {
            driver.abort();
        }
        let mut sends = Vec::new();
        {
            let mut guard = shared.core();
            let Some(node) = guard.as_mut() else { return };
            node.leave(shared.now());
            while let Some(t) = node.poll_transmit() {
                sends.push(t);
            }
            shared.publish(node);
        }
        let Some(transport) = shared.transport.get().cloned() else {
            return;
        };
        let bound = timeout.min(shared.config.gossip_timeout);
        let mut set = JoinSet::new();
        for t in sends {
            let transport = transport.clone();
            set.spawn(async move { transport.gossip(t.to, t.payload, bound).await });
        }
        let _ =
            tokio::time::timeout(bound, async { while set.join_next().await.is_some() {} }).await;
    }
}
