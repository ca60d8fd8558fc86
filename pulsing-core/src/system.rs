//! [`ActorSystem`]: spawns, finds and stops actors, and ties the transport and membership together.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::actor::{Actor, Context, RestartPolicy};
use crate::actor_ref::ActorRef;
use crate::builder::{ActorSystemBuilder, Config};
use crate::cell::{self, LocalCell, Source};
use crate::error::PulsingError;
use crate::mailbox::mailbox;
use crate::membership::{Member, MemberState, Membership, MembershipEvent};
use crate::name::ActorName;
use crate::stats::{Counters, SystemStats};
use crate::transport::{InboundHandler, NodeId, RemoteTarget, Transport};

mod inbound;
use crate::visibility::{self, Visibility};
use inbound::Inbound;

/// Configuration, counters and identity shared by the system, its actors and its refs.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) counters: Counters,
    /// This run's boot id.
    pub(crate) node_id: NodeId,
    /// The address peers reach this node at, set once the transport serves; unset when standalone.
    /// Here rather than on the system so that a ref can name its node (see `wire_ref`).
    pub(crate) advertised: OnceLock<SocketAddr>,
}

/// How to spawn an actor: visibility, mailbox size, restart policy.
///
/// # Examples
///
/// ```
/// use pulsing_core::{RestartPolicy, SpawnOptions};
/// use std::time::Duration;
/// let opts = SpawnOptions::new()
///     .public(true)
///     .mailbox_capacity(64)
///     .restart(RestartPolicy::OnFailure { max_restarts: 3, backoff: Duration::from_millis(10) });
/// ```
#[derive(Debug, Clone, Default)]
pub struct SpawnOptions {
    public: bool,
    mailbox_capacity: Option<usize>,
    restart: RestartPolicy,
}

impl SpawnOptions {
    /// Private, the system's mailbox capacity, [`RestartPolicy::Never`].
    pub fn new() -> SpawnOptions {
        SpawnOptions::default()
    }

    /// Whether other nodes can find and call the actor (default: `false`, local only).
    pub fn public(mut self, public: bool) -> SpawnOptions {
        self.public = public;
        self
    }

    /// The mailbox capacity for this actor (at least 1).
    pub fn mailbox_capacity(mut self, capacity: usize) -> SpawnOptions {
        self.mailbox_capacity = Some(capacity.max(1));
        self
    }

    /// What to do when a handler panics. Anything but [`RestartPolicy::Never`] needs
    /// [`ActorSystem::spawn_factory`].
    pub fn restart(mut self, policy: RestartPolicy) -> SpawnOptions {
        self.restart = policy;
        self
    }
}

/// Validates the name of a named actor: the rules of [`ActorName`], and not in the namespace of
/// anonymous ids (so that an `anon.` id always means an actor nobody can find by name).
fn named(name: &str) -> Result<ActorName, PulsingError> {
    let name = ActorName::new(name)?;
    if visibility::is_anonymous_id(name.as_str()) {
        return Err(PulsingError::InvalidName {
            name: name.to_string(),
            reason: "names starting with \"anon.\" are reserved for anonymous actors",
        });
    }
    Ok(name)
}

struct Entry {
    cell: Arc<LocalCell>,
    task: Option<AbortHandle>,
}

pub(crate) struct SystemInner {
    pub(crate) shared: Arc<Shared>,
    addr: OnceLock<SocketAddr>,
    transport: Arc<dyn Transport>,
    membership: Arc<dyn Membership>,
    actors: RwLock<HashMap<ActorName, Entry>>,
    next_actor_id: AtomicU64,
    shutting_down: AtomicBool,
    /// The task that tells the transport about members gone ([`watch_members`]); aborted by
    /// shutdown.
    member_watch: OnceLock<AbortHandle>,
}

/// A set of local actors plus the transport and membership that connect them to other nodes.
///
/// Cheap to clone (one reference count); clones are the same system. Build one with
/// [`ActorSystem::builder`]. Actors keep running until stopped or until [`shutdown`](Self::shutdown):
/// dropping every handle does not stop them, so call `shutdown` when done.
///
/// # Examples
///
/// ```
/// use pulsing_core::{Actor, ActorError, ActorSystem, Context, Message, SpawnOptions};
///
/// struct Echo;
/// impl Actor for Echo {
///     async fn receive(&mut self, msg: Message, _: &mut Context) -> Result<Message, ActorError> {
///         Ok(msg)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), pulsing_core::PulsingError> {
/// let system = ActorSystem::builder().build().await?;
/// system.spawn_with(Echo, "echo", SpawnOptions::new().public(true)).await?;
/// let echo = system.find("echo").await.expect("spawned above");
/// assert!(system.has_actor("echo").await);
/// echo.tell(Message::single("ping", "")).await?;
/// system.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ActorSystem {
    pub(crate) inner: Arc<SystemInner>,
}

impl ActorSystem {
    /// A builder; `ActorSystem::builder().build().await` is a standalone system with defaults.
    pub fn builder() -> ActorSystemBuilder {
        ActorSystemBuilder::default()
    }

    pub(crate) async fn start(
        config: Config,
        bind: Option<SocketAddr>,
        seeds: Vec<String>,
        transport: Arc<dyn Transport>,
        membership: Arc<dyn Membership>,
    ) -> Result<ActorSystem, PulsingError> {
        let node_id = NodeId::random();
        let inner = Arc::new(SystemInner {
            shared: Arc::new(Shared {
                config,
                counters: Counters::default(),
                node_id,
                advertised: OnceLock::new(),
            }),
            addr: OnceLock::new(),
            transport: transport.clone(),
            membership: membership.clone(),
            actors: RwLock::new(HashMap::new()),
            next_actor_id: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
            member_watch: OnceLock::new(),
        });
        let mut addr = None;
        if let Some(bind) = bind {
            let handler: Arc<dyn InboundHandler> = Arc::new(Inbound(Arc::downgrade(&inner)));
            let bound = transport.serve(bind, handler).await?;
            let _ = inner.addr.set(bound);
            if !inner.shared.config.security.is_enabled() && !bound.ip().is_loopback() {
                tracing::warn!(
                    addr = %bound,
                    "this node serves a non-loopback address without a cluster secret: anyone who \
                     can reach the port can call its public actors and join its cluster; set a \
                     secret (.secret(..), SystemConfig.with_secret(..), or PULSING_SECRET; see \
                     docs/security.md)"
                );
            }
            let advertised = match inner.shared.config.advertise_addr {
                Some(a) => a,
                None => crate::advertise::advertise_for(bound, &seeds).await,
            };
            let _ = inner.shared.advertised.set(advertised);
            addr = Some(advertised);
        }
        let system = ActorSystem { inner };
        // Keeps one timer due within 250 ms registered at all times. Tokio re-arms (and, with an IO
        // driver, wakes through an eventfd write) the parked timer thread whenever a newly registered
        // timer becomes the earliest one; every ask registers its timeout timer, so without an earlier
        // timer each ask would pay that wake-up. Ends when the system is dropped or shut down.
        let weak = Arc::downgrade(&system.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                match weak.upgrade() {
                    Some(inner) if !inner.shutting_down.load(Ordering::Acquire) => {}
                    _ => return,
                }
            }
        });
        // Subscribed before the join, so a member declared down meanwhile is not missed.
        let watch = tokio::spawn(watch_members(
            membership.subscribe(),
            Arc::downgrade(&system.inner),
        ));
        let _ = system.inner.member_watch.set(watch.abort_handle());
        let local = crate::membership::LocalNode { id: node_id, addr };
        if let Err(e) = membership.start(local, transport.clone(), seeds).await {
            watch.abort();
            transport.shutdown().await;
            return Err(e);
        }
        Ok(system)
    }

    /// The address this node serves on; `None` for a standalone system.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.inner.addr.get().copied()
    }

    /// The address peers use to reach this node: the one given to
    /// [`ActorSystemBuilder::advertise_addr`](crate::ActorSystemBuilder::advertise_addr), else the bound
    /// address, except that a wildcard bind (`0.0.0.0`, `[::]`) is replaced by the local address of the
    /// route to the first seed, else by the first non-loopback address of the host name, else by
    /// loopback. `None` for a standalone system.
    pub fn advertise_addr(&self) -> Option<SocketAddr> {
        self.inner.shared.advertised.get().copied()
    }

    /// This run's boot id.
    pub fn node_id(&self) -> NodeId {
        self.inner.shared.node_id
    }

    /// The default ask timeout of refs made by this system.
    pub fn ask_timeout(&self) -> Duration {
        self.inner.shared.config.ask_timeout
    }

    fn check_running(&self) -> Result<(), PulsingError> {
        if self.inner.shutting_down.load(Ordering::Acquire) {
            Err(PulsingError::SystemShutdown)
        } else {
            Ok(())
        }
    }

    /// Spawns a private actor with default options. See [`spawn_with`](Self::spawn_with).
    ///
    /// # Errors
    ///
    /// As for [`spawn_with`](Self::spawn_with).
    pub async fn spawn<A: Actor>(&self, actor: A, name: &str) -> Result<ActorRef, PulsingError> {
        self.spawn_with(actor, name, SpawnOptions::new()).await
    }

    /// Spawns `actor` under `name` and returns once its `on_start` has run (bounded by the ask timeout)
    /// and, for a public actor, once its name is registered with the membership.
    ///
    /// # Errors
    ///
    /// - [`PulsingError::InvalidName`] for a name outside the rules of [`ActorName`], or one starting
    ///   with `anon.` (reserved for [`spawn_anonymous`](Self::spawn_anonymous));
    /// - [`PulsingError::AlreadyExists`] if a local actor already has this name;
    /// - [`PulsingError::Config`] for a restart policy other than `Never` (use
    ///   [`spawn_factory`](Self::spawn_factory));
    /// - the error `on_start` returned, or [`PulsingError::Timeout`] if it did not finish in time;
    /// - [`PulsingError::SystemShutdown`] after [`shutdown`](Self::shutdown).
    pub async fn spawn_with<A: Actor>(
        &self,
        actor: A,
        name: &str,
        opts: SpawnOptions,
    ) -> Result<ActorRef, PulsingError> {
        if opts.restart != RestartPolicy::Never {
            return Err(PulsingError::Config(format!(
                "actor {name}: restarting needs a way to rebuild its state; use spawn_factory"
            )));
        }
        let name = named(name)?;
        self.spawn_source(actor, Source::Instance, name, opts).await
    }

    /// Spawns `actor` without a name: it gets a generated id, `anon.` followed by 32 lowercase hex
    /// digits (128 bits from the OS random source), which stands for its name everywhere (its
    /// [`ActorRef::name`], [`Context::name`], the `POST /actor/{id}` path).
    ///
    /// An anonymous actor is in no registry: [`find`](Self::find), [`find_all`](Self::find_all),
    /// [`has_actor`](Self::has_actor) and [`local_actors`](Self::local_actors) never return it (see
    /// [`anonymous_actors`](Self::anonymous_actors)). Whoever holds its ref reaches it, from this node
    /// or another one: transports serve it like a public actor, and the id is not guessable.
    /// [`stop`](Self::stop) takes its id.
    ///
    /// # Errors
    ///
    /// - [`PulsingError::Config`] for `opts.public(true)` (an anonymous actor has no name to be found
    ///   by), for a restart policy other than `Never`, or if the OS random source fails;
    /// - the error `on_start` returned, or [`PulsingError::Timeout`] if it did not finish in time;
    /// - [`PulsingError::SystemShutdown`] after [`shutdown`](Self::shutdown).
    ///
    /// # Examples
    ///
    /// ```
    /// # use pulsing_core::{Actor, ActorError, ActorSystem, Context, Message, SpawnOptions};
    /// # struct Echo;
    /// # impl Actor for Echo {
    /// #     async fn receive(&mut self, m: Message, _: &mut Context) -> Result<Message, ActorError> { Ok(m) }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), pulsing_core::PulsingError> {
    /// let system = ActorSystem::builder().build().await?;
    /// let echo = system.spawn_anonymous(Echo, SpawnOptions::new()).await?;
    /// assert!(echo.name().as_str().starts_with("anon."));
    /// assert!(system.find(echo.name().as_str()).await.is_none());
    /// echo.ask(Message::single("ping", "")).await?;
    /// # system.shutdown().await; Ok(()) }
    /// ```
    pub async fn spawn_anonymous<A: Actor>(
        &self,
        actor: A,
        opts: SpawnOptions,
    ) -> Result<ActorRef, PulsingError> {
        if opts.public {
            return Err(PulsingError::Config(
                "anonymous actors cannot be public: they have no name to be found by; spawn with a \
                 name to make an actor public"
                    .into(),
            ));
        }
        if opts.restart != RestartPolicy::Never {
            return Err(PulsingError::Config(
                "an anonymous actor cannot be restarted: spawn_anonymous takes one instance".into(),
            ));
        }
        let id = visibility::anonymous_id()?;
        self.spawn_cell(actor, Source::Instance, id, Visibility::Anonymous, opts)
            .await
    }

    /// Spawns an actor whose state is built by `factory`, once now and again after each panic that
    /// its [`RestartPolicy`] allows to restart.
    ///
    /// # Errors
    ///
    /// As for [`spawn_with`](Self::spawn_with), but any restart policy is accepted.
    pub async fn spawn_factory<A, F>(
        &self,
        mut factory: F,
        name: &str,
        opts: SpawnOptions,
    ) -> Result<ActorRef, PulsingError>
    where
        A: Actor,
        F: FnMut() -> A + Send + 'static,
    {
        let name = named(name)?;
        let first = factory();
        self.spawn_source(first, Source::Factory(Box::new(factory)), name, opts)
            .await
    }

    async fn spawn_source<A: Actor>(
        &self,
        actor: A,
        source: Source<A>,
        name: ActorName,
        opts: SpawnOptions,
    ) -> Result<ActorRef, PulsingError> {
        let visibility = if opts.public {
            Visibility::Public
        } else {
            Visibility::Private
        };
        self.spawn_cell(actor, source, name, visibility, opts).await
    }

    async fn spawn_cell<A: Actor>(
        &self,
        actor: A,
        source: Source<A>,
        name: ActorName,
        visibility: Visibility,
        opts: SpawnOptions,
    ) -> Result<ActorRef, PulsingError> {
        self.check_running()?;
        let inner = &self.inner;
        let capacity = opts
            .mailbox_capacity
            .unwrap_or(inner.shared.config.mailbox_capacity);
        let (tx, rx) = mailbox(capacity);
        let id = inner.next_actor_id.fetch_add(1, Ordering::Relaxed);
        let cell = Arc::new(LocalCell::new(
            id,
            name.clone(),
            visibility,
            tx,
            inner.shared.clone(),
        ));
        {
            let mut actors = inner.actors.write().unwrap_or_else(|p| p.into_inner());
            if actors.contains_key(&name) {
                return Err(PulsingError::AlreadyExists(name.to_string()));
            }
            actors.insert(
                name.clone(),
                Entry {
                    cell: cell.clone(),
                    task: None,
                },
            );
        }
        let myself = ActorRef::local(cell.clone());
        let ctx = Context {
            name: name.clone(),
            myself: myself.clone(),
            system: self.clone(),
            restarts: 0,
            stop_requested: false,
        };
        let (started_tx, started_rx) = oneshot::channel();
        let task = tokio::spawn(cell::run(
            actor,
            source,
            rx,
            cell.clone(),
            ctx,
            opts.restart,
            started_tx,
        ));
        if let Some(entry) = inner
            .actors
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&name)
            .filter(|e| e.cell.id == id)
        {
            entry.task = Some(task.abort_handle());
        }
        let bound = inner.shared.config.ask_timeout;
        let started = match tokio::time::timeout(bound, started_rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(PulsingError::Stopped(name.to_string())),
            Err(_) => {
                cell.request_stop(Instant::now());
                Err(PulsingError::Timeout(bound))
            }
        };
        if let Err(e) = started {
            // Gone from the registry before the caller hears of it (the actor's task would
            // remove it too, a moment later): a `find` right after sees no actor.
            self.forget_actor(&cell);
            return Err(e);
        }
        if visibility == Visibility::Public {
            if let Err(e) = inner.membership.register(&name).await {
                cell.request_stop(Instant::now());
                return Err(e);
            }
        }
        Ok(myself)
    }

    /// Called by an actor's task as it stops: removes it from the registry if it is still the one
    /// registered under its name, and says whether it was.
    pub(crate) fn forget_actor(&self, cell: &LocalCell) -> bool {
        let removed = {
            let mut actors = self.inner.actors.write().unwrap_or_else(|p| p.into_inner());
            match actors.get(&cell.name) {
                Some(e) if e.cell.id == cell.id => actors.remove(&cell.name).is_some(),
                _ => false,
            }
        };
        if removed {
            let handled = cell.progress.handled.load(Ordering::Relaxed);
            self.inner
                .shared
                .counters
                .retired_handled
                .fetch_add(handled, Ordering::Relaxed);
        }
        removed
    }

    /// Withdraws a stopped public actor's name from the membership.
    pub(crate) async fn unpublish(&self, name: &ActorName) {
        self.inner.membership.unregister(name).await;
    }

    /// The local actor `name`, anonymous ones included.
    pub(crate) fn local(&self, name: &str) -> Option<Arc<LocalCell>> {
        let actors = self.inner.actors.read().unwrap_or_else(|p| p.into_inner());
        actors.get(name).map(|e| e.cell.clone())
    }

    /// The local named actor `name`: what `find` sees (anonymous actors are in no registry).
    fn local_named(&self, name: &str) -> Option<Arc<LocalCell>> {
        self.local(name)
            .filter(|c| c.visibility != Visibility::Anonymous)
    }

    /// Finds an actor by name: a local actor (public or private) first, else a public actor on
    /// another live node, as ordered by the membership. `None` if there is none, if `name` is not a
    /// valid name, or after shutdown. Anonymous actors are never found, not even by their id.
    pub async fn find(&self, name: &str) -> Option<ActorRef> {
        if self.check_running().is_err() {
            return None;
        }
        if let Some(cell) = self.local_named(name) {
            return Some(ActorRef::local(cell));
        }
        let name = ActorName::new(name).ok()?;
        let loc = self
            .inner
            .membership
            .lookup(name.as_str())
            .into_iter()
            .next()?;
        Some(self.make_remote(RemoteTarget {
            addr: loc.addr,
            name,
            node: Some(loc.node),
        }))
    }

    /// Every reachable instance of `name`: the local actor (if any) first, then public instances on
    /// other live nodes in the membership's order. Empty after shutdown or for an invalid name;
    /// anonymous actors are never listed.
    pub async fn find_all(&self, name: &str) -> Vec<ActorRef> {
        if self.check_running().is_err() {
            return Vec::new();
        }
        let mut out: Vec<ActorRef> = self
            .local_named(name)
            .map(ActorRef::local)
            .into_iter()
            .collect();
        if let Ok(name) = ActorName::new(name) {
            out.extend(
                self.inner
                    .membership
                    .lookup(name.as_str())
                    .into_iter()
                    .map(|loc| {
                        self.make_remote(RemoteTarget {
                            addr: loc.addr,
                            name: name.clone(),
                            node: Some(loc.node),
                        })
                    }),
            );
        }
        out
    }

    /// Whether [`find`](Self::find) would find `name`.
    pub async fn has_actor(&self, name: &str) -> bool {
        self.find(name).await.is_some()
    }

    /// A ref to the actor `name` served at `addr`, without asking the membership; whichever run of the
    /// node answers at `addr` is accepted.
    ///
    /// # Errors
    ///
    /// [`PulsingError::InvalidName`] for a bad name.
    pub fn remote_ref(&self, addr: SocketAddr, name: &str) -> Result<ActorRef, PulsingError> {
        Ok(self.make_remote(RemoteTarget {
            addr,
            name: ActorName::new(name)?,
            node: None,
        }))
    }

    pub(crate) fn make_remote(&self, target: RemoteTarget) -> ActorRef {
        ActorRef::remote(
            target,
            self.inner.transport.clone(),
            self.inner.shared.clone(),
        )
    }

    /// Names of the local named actors with whether each is public, sorted. Anonymous actors are left
    /// out (see [`anonymous_actors`](Self::anonymous_actors)).
    pub fn local_actors(&self) -> Vec<(ActorName, bool)> {
        let actors = self.inner.actors.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<_> = actors
            .iter()
            .filter(|(_, e)| e.cell.visibility != Visibility::Anonymous)
            .map(|(n, e)| (n.clone(), e.cell.visibility == Visibility::Public))
            .collect();
        out.sort();
        out
    }

    /// Ids of the local anonymous actors, sorted.
    pub fn anonymous_actors(&self) -> Vec<ActorName> {
        let actors = self.inner.actors.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<_> = actors
            .iter()
            .filter(|(_, e)| e.cell.visibility == Visibility::Anonymous)
            .map(|(n, _)| n.clone())
            .collect();
        out.sort();
        out
    }

    /// The cluster's members as seen from this node.
    pub fn members(&self) -> Vec<Member> {
        self.inner.membership.members()
    }

    /// Stops the local actor `name` (for an anonymous actor, its id): its mailbox closes, queued messages are handled for at most the
    /// shutdown timeout and the rest answered with [`PulsingError::Stopped`], then `on_stop` runs.
    /// Returns once the actor is gone (bounded by twice the shutdown timeout; a task still running then
    /// is aborted).
    ///
    /// # Errors
    ///
    /// [`PulsingError::NotFound`] if no local actor has this name.
    pub async fn stop(&self, name: &str) -> Result<(), PulsingError> {
        let entry = {
            let actors = self.inner.actors.read().unwrap_or_else(|p| p.into_inner());
            actors.get(name).map(|e| (e.cell.clone(), e.task.clone()))
        };
        let Some((cell, task)) = entry else {
            return Err(PulsingError::NotFound(name.to_owned()));
        };
        let bound = self.inner.shared.config.shutdown_timeout;
        cell.request_stop(Instant::now() + bound);
        await_stopped(&cell, task, Instant::now() + bound * 2).await;
        Ok(())
    }

    /// Shuts the system down: refuses new spawns and inbound calls, announces leaving the cluster,
    /// stops every actor as [`stop`](Self::stop) does (all in parallel, one shared deadline), then
    /// closes the transport. Bounded by about twice the shutdown timeout plus the leave announcement.
    /// Calling it again does nothing.
    pub async fn shutdown(&self) {
        if self.inner.shutting_down.swap(true, Ordering::AcqRel) {
            return;
        }
        let bound = self.inner.shared.config.shutdown_timeout;
        if let Some(watch) = self.inner.member_watch.get() {
            watch.abort();
        }
        self.inner.membership.leave(bound).await;
        let entries: Vec<_> = {
            let actors = self.inner.actors.read().unwrap_or_else(|p| p.into_inner());
            actors
                .values()
                .map(|e| (e.cell.clone(), e.task.clone()))
                .collect()
        };
        let drain_until = Instant::now() + bound;
        for (cell, _) in &entries {
            cell.request_stop(drain_until);
        }
        let hard_deadline = drain_until + bound;
        futures_util::future::join_all(
            entries
                .into_iter()
                .map(|(cell, task)| async move { await_stopped(&cell, task, hard_deadline).await }),
        )
        .await;
        self.inner.transport.shutdown().await;
    }

    /// Whether [`shutdown`](Self::shutdown) has been called.
    pub fn is_shut_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    /// A snapshot of this node's counters.
    pub fn stats(&self) -> SystemStats {
        let c = &self.inner.shared.counters;
        let actors = self.inner.actors.read().unwrap_or_else(|p| p.into_inner());
        let live_handled: u64 = actors
            .values()
            .map(|e| e.cell.progress.handled.load(Ordering::Relaxed))
            .sum();
        let queued: u64 = actors.values().map(|e| e.cell.queued() as u64).sum();
        let mut members = Vec::new();
        for m in self.inner.membership.members() {
            match members.iter_mut().find(|(state, _)| *state == m.state) {
                Some((_, n)) => *n += 1,
                None => members.push((m.state, 1)),
            }
        }
        SystemStats {
            actors: actors.len(),
            members,
            messages_handled: live_handled + c.retired_handled.load(Ordering::Relaxed),
            queued,
            in_flight_asks: c.in_flight_asks.load(Ordering::Relaxed),
            expired_asks: c.expired_asks.load(Ordering::Relaxed),
            panics: c.panics.load(Ordering::Relaxed),
            restarts: c.restarts.load(Ordering::Relaxed),
            errors: c.errors_by_kind(),
            dead_letters: c.dead_letters_by_kind(),
            bad_links: c.bad_links.load(Ordering::Relaxed),
        }
    }
}

/// Why calls in flight to a member declared down fail (the transport adds that the message may have
/// been delivered).
const MEMBER_DOWN: &str = "member declared down by the cluster";

/// Tells the transport about every member declared down or gone (the membership reports a graceful
/// leave as down too), so calls in flight to it fail at once instead of by their timeout. Ends
/// when the system is shut down (aborted) or dropped, or the membership closes its channel.
async fn watch_members(
    mut events: tokio::sync::broadcast::Receiver<MembershipEvent>,
    system: Weak<SystemInner>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let event = events.recv().await;
        let Some(inner) = system.upgrade() else {
            return;
        };
        let members = match event {
            Ok(MembershipEvent::MemberDown(m)) => vec![m],
            Ok(_) => continue,
            // Some events were missed: act on the members the view holds as down now.
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "membership events missed; checking the view");
                inner
                    .membership
                    .members()
                    .into_iter()
                    .filter(|m| matches!(m.state, MemberState::Down | MemberState::Left))
                    .collect()
            }
            Err(RecvError::Closed) => return,
        };
        let view = inner.membership.members();
        for gone in members {
            // A process restarted at the same address is a new member: its calls are not ended.
            let replaced = view.iter().any(|m| {
                m.addr == gone.addr
                    && m.id != gone.id
                    && matches!(m.state, MemberState::Alive | MemberState::Suspect)
            });
            if !replaced && Some(gone.addr) != inner.shared.advertised.get().copied() {
                inner.transport.peer_gone(gone.addr, MEMBER_DOWN);
            }
        }
    }
}

async fn await_stopped(cell: &LocalCell, task: Option<AbortHandle>, deadline: Instant) {
    if tokio::time::timeout_at(deadline, cell.stopped.wait())
        .await
        .is_err()
    {
        tracing::warn!(actor = %cell.name, "actor did not stop in time; aborting its task");
        if let Some(task) = task {
            task.abort();
        }
    }
}

impl fmt::Debug for ActorSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActorSystem")
            .field("node_id", &self.inner.shared.node_id)
            .field("addr", &self.inner.addr.get())
            .field("transport", &self.inner.transport.name())
            .finish_non_exhaustive()
    }
}
