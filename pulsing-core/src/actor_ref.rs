//! [`ActorRef`]: a location-transparent handle to an actor.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::cell::LocalCell;
use crate::error::PulsingError;
use crate::mailbox::{Envelope, ReplyTo, TryTellError};
use crate::message::{Message, MessageStream};
use crate::name::ActorName;
use crate::stats::InFlight;
use crate::system::Shared;
use crate::transport::{RemoteTarget, Transport};
use crate::visibility::{self, Visibility};
use crate::wire_ref::WireRef;

/// A handle to an actor, local or on another node, with one API for both.
///
/// Cloning is cheap (one reference count). A ref does not keep the actor alive: once the actor stops,
/// calls through the ref fail with [`PulsingError::Stopped`] (local) or
/// [`PulsingError::NotFound`] (remote).
///
/// # Delivery
///
/// - **At most once.** A message is handled once or not at all; nothing is retried after it may have
///   left.
/// - **FIFO per sender→receiver pair.** Messages one task sends to one actor, each send awaited before
///   the next, are handled in that order. (Asks whose caller has already given up may be skipped,
///   which keeps the order of the rest.)
/// - **Every ask ends**: in a reply, an error, or a timeout (the ref's default, see
///   [`ActorSystemBuilder::ask_timeout`](crate::ActorSystemBuilder::ask_timeout), or the one given to
///   [`ask_with_timeout`](Self::ask_with_timeout)).
#[derive(Clone)]
pub struct ActorRef {
    inner: RefInner,
}

#[derive(Clone)]
enum RefInner {
    Local(Arc<LocalCell>),
    Remote(Arc<RemoteActor>),
}

struct RemoteActor {
    target: RemoteTarget,
    transport: Arc<dyn Transport>,
    shared: Arc<Shared>,
}

impl ActorRef {
    pub(crate) fn local(cell: Arc<LocalCell>) -> ActorRef {
        ActorRef {
            inner: RefInner::Local(cell),
        }
    }

    pub(crate) fn remote(
        target: RemoteTarget,
        transport: Arc<dyn Transport>,
        shared: Arc<Shared>,
    ) -> ActorRef {
        ActorRef {
            inner: RefInner::Remote(Arc::new(RemoteActor {
                target,
                transport,
                shared,
            })),
        }
    }

    /// The actor's name; for an anonymous actor, its generated id.
    pub fn name(&self) -> &ActorName {
        match &self.inner {
            RefInner::Local(c) => &c.name,
            RefInner::Remote(r) => &r.target.name,
        }
    }

    /// Whether the actor runs in this process.
    pub fn is_local(&self) -> bool {
        matches!(self.inner, RefInner::Local(_))
    }

    /// Who can reach the actor. For a local actor, as it was spawned. A remote ref is to an actor
    /// served to other nodes: [`Visibility::Anonymous`] if its name is an anonymous id (`anon.`, a
    /// prefix no named actor may use), else [`Visibility::Public`].
    ///
    /// Callers that send refs to other nodes check this: a [`Visibility::Private`] ref works only in
    /// this process (another node would get `not_found`).
    pub fn visibility(&self) -> Visibility {
        match &self.inner {
            RefInner::Local(c) => c.visibility,
            RefInner::Remote(r) if visibility::is_anonymous_id(r.target.name.as_str()) => {
                Visibility::Anonymous
            }
            RefInner::Remote(_) => Visibility::Public,
        }
    }

    /// Whether the actor is anonymous (see
    /// [`ActorSystem::spawn_anonymous`](crate::ActorSystem::spawn_anonymous)).
    pub fn is_anonymous(&self) -> bool {
        self.visibility() == Visibility::Anonymous
    }

    /// The three fields that stand for this ref inside a payload (see [`WireRef`]): the advertise
    /// address and boot id of the actor's node, and its name or anonymous id.
    pub fn wire_ref(&self) -> WireRef {
        match &self.inner {
            RefInner::Local(c) => WireRef {
                addr: c.shared.advertised.get().copied(),
                node: Some(c.shared.node_id),
                id: c.name.clone(),
            },
            RefInner::Remote(r) => WireRef {
                addr: Some(r.target.addr),
                node: r.target.node,
                id: r.target.name.clone(),
            },
        }
    }

    /// The remote actor's node, `None` for a local actor.
    pub fn remote_target(&self) -> Option<&RemoteTarget> {
        match &self.inner {
            RefInner::Local(_) => None,
            RefInner::Remote(r) => Some(&r.target),
        }
    }

    /// The remote actor's node address, `None` for a local actor.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote_target().map(|t| t.addr)
    }

    fn shared(&self) -> &Shared {
        match &self.inner {
            RefInner::Local(c) => &c.shared,
            RefInner::Remote(r) => &r.shared,
        }
    }

    /// Sends `msg` and waits for the reply, at most the system's ask timeout.
    ///
    /// # Errors
    ///
    /// [`PulsingError::Timeout`] (may have been handled), [`PulsingError::MailboxFull`] and
    /// [`PulsingError::Stopped`] (not handled), [`PulsingError::Actor`] / [`PulsingError::Panicked`]
    /// (handled and failed), and for a remote actor [`PulsingError::NotFound`] and
    /// [`PulsingError::NodeUnreachable`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the ask: if the message is still queued when the actor reaches it,
    /// it is skipped; if it is being handled, the reply is discarded. Nothing stays registered on the
    /// caller's side.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pulsing_core::{Actor, ActorError, ActorSystem, Context, Message};
    /// # struct Echo;
    /// # impl Actor for Echo {
    /// #     async fn receive(&mut self, m: Message, _: &mut Context) -> Result<Message, ActorError> { Ok(m) }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), pulsing_core::PulsingError> {
    /// let system = ActorSystem::builder().build().await?;
    /// let echo = system.spawn(Echo, "echo").await?;
    /// let reply = echo.ask(Message::single("ping", "hi")).await?;
    /// assert_eq!(reply.msg_type(), Some("ping"));
    /// # system.shutdown().await; Ok(()) }
    /// ```
    pub async fn ask(&self, msg: Message) -> Result<Message, PulsingError> {
        self.ask_with_timeout(msg, self.shared().config.ask_timeout)
            .await
    }

    /// Like [`ask`](Self::ask) with an explicit timeout.
    ///
    /// # Errors
    ///
    /// As for [`ask`](Self::ask).
    ///
    /// # Cancel safety
    ///
    /// As for [`ask`](Self::ask).
    pub async fn ask_with_timeout(
        &self,
        msg: Message,
        timeout: Duration,
    ) -> Result<Message, PulsingError> {
        let shared = self.shared();
        let _in_flight = InFlight::enter(&shared.counters.in_flight_asks);
        let result = match &self.inner {
            RefInner::Local(cell) => ask_local(cell, msg, timeout).await,
            // The transport owns the deadline (its contract bounds every call by `timeout`): one
            // timer per remote ask, not one here and another there.
            RefInner::Remote(r) => r.transport.ask(&r.target, msg, timeout).await,
        };
        if let Err(e) = &result {
            shared.counters.count_error(e);
        }
        result
    }

    /// Asks and reads the reply as a stream: a streamed reply as it is, a single reply as a stream of
    /// one item. Waiting for each item is bounded by the same timeout as the ask.
    ///
    /// # Errors
    ///
    /// As for [`ask`](Self::ask), for the wait until the reply starts; later failures arrive as error
    /// items of the stream.
    ///
    /// # Cancel safety
    ///
    /// As for [`ask`](Self::ask); dropping the returned stream tells the producer to stop.
    pub async fn ask_stream(&self, msg: Message) -> Result<MessageStream, PulsingError> {
        let timeout = self.shared().config.ask_timeout;
        let reply = self.ask_with_timeout(msg, timeout).await?;
        Ok(reply.into_stream().with_item_timeout(timeout))
    }

    /// Queues `msg` without waiting for it to be handled. Waits for room while the mailbox is full, at
    /// most the system's mailbox wait bound.
    ///
    /// For a remote actor, `tell` returns once the message is queued on the link to its node (a
    /// bounded buffer, written in order with the asks on the same link): the remote mailbox has not
    /// seen it yet. What goes wrong later (the actor does not exist there, its mailbox stays full
    /// past the bound, the node shuts down, the link breaks before the message was written) is a
    /// **dead letter**: counted in [`SystemStats::dead_letters`](crate::SystemStats::dead_letters)
    /// and logged at debug, not reported here.
    ///
    /// A failure of the handler is not reported to the sender; it is counted in
    /// [`SystemStats::errors`](crate::SystemStats::errors) and logged.
    ///
    /// # Errors
    ///
    /// [`PulsingError::MailboxFull`] or [`PulsingError::Stopped`] (not delivered); for a remote actor,
    /// the transport's errors before the message is queued: the node cannot be reached
    /// ([`PulsingError::NodeUnreachable`], not delivered), the link's buffer stayed full past the
    /// mailbox wait bound ([`PulsingError::MailboxFull`], not sent), the ref is for an earlier run of
    /// the node ([`PulsingError::NotFound`]), the message is over the size limit.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped before it completes, the message was not queued.
    pub async fn tell(&self, msg: Message) -> Result<(), PulsingError> {
        let shared = self.shared();
        let result = match &self.inner {
            RefInner::Local(cell) => {
                cell.mailbox
                    .push(
                        Envelope { msg, reply: None },
                        shared.config.mailbox_wait,
                        &cell.name,
                    )
                    .await
            }
            // A remote tell waits for room on the link at most the mailbox wait bound, as a local
            // one waits for room in the mailbox; the transport owns that deadline.
            RefInner::Remote(r) => {
                r.transport
                    .tell(&r.target, msg, shared.config.mailbox_wait)
                    .await
            }
        };
        if let Err(e) = &result {
            shared.counters.count_error(e);
        }
        result
    }

    /// Queues `msg` only if the mailbox has room right now; never waits.
    ///
    /// # Errors
    ///
    /// [`TryTellError::Full`] or [`TryTellError::Stopped`] with the message given back; for a remote
    /// actor always [`TryTellError::Remote`] (use [`tell`](Self::tell)).
    pub fn try_tell(&self, msg: Message) -> Result<(), TryTellError> {
        match &self.inner {
            RefInner::Local(cell) => cell.mailbox.try_push(Envelope { msg, reply: None }),
            RefInner::Remote(_) => Err(TryTellError::Remote(msg)),
        }
    }

    /// Messages waiting in a local actor's mailbox, including those the actor already took out of it
    /// in a batch and has not handled yet (see [`mailbox`](crate::mailbox)); `None` for a remote actor.
    pub fn mailbox_len(&self) -> Option<usize> {
        match &self.inner {
            RefInner::Local(c) => Some(c.queued()),
            RefInner::Remote(_) => None,
        }
    }
}

async fn ask_local(
    cell: &LocalCell,
    msg: Message,
    timeout: Duration,
) -> Result<Message, PulsingError> {
    let queued = queue_ask(cell, msg, timeout).await?;
    queued.reply(&cell.name).await
}

/// An ask queued in a local mailbox: the reply to come and the time left for it.
pub(crate) struct QueuedAsk {
    rx: oneshot::Receiver<Result<Message, PulsingError>>,
    remaining: Duration,
    timeout: Duration,
}

impl QueuedAsk {
    /// Waits for the reply, at most the time left of the ask's timeout.
    pub(crate) async fn reply(self, name: &ActorName) -> Result<Message, PulsingError> {
        match tokio::time::timeout(self.remaining, self.rx).await {
            Ok(Ok(result)) => result,
            // The actor stopped and dropped the envelope without answering.
            Ok(Err(_)) => Err(PulsingError::Stopped(name.to_string())),
            Err(_) => Err(PulsingError::Timeout(self.timeout)),
        }
    }
}

/// Queues an ask in `cell`'s mailbox, waiting for room at most the mailbox wait bound (and never
/// longer than `timeout`).
pub(crate) async fn queue_ask(
    cell: &LocalCell,
    msg: Message,
    timeout: Duration,
) -> Result<QueuedAsk, PulsingError> {
    let (tx, rx) = oneshot::channel();
    let remaining = enqueue_ask(cell, msg, ReplyTo::Channel(tx), timeout)
        .await
        .map_err(|(e, _)| e)?;
    Ok(QueuedAsk {
        rx,
        remaining,
        timeout,
    })
}

/// Queues an ask whose reply goes to `reply`, waiting for room as [`queue_ask`] does; returns the
/// time left of `timeout`. Not queued, it gives `reply` back, unanswered.
pub(crate) async fn enqueue_ask(
    cell: &LocalCell,
    msg: Message,
    reply: ReplyTo,
    timeout: Duration,
) -> Result<Duration, (PulsingError, Option<ReplyTo>)> {
    let env = Envelope {
        msg,
        reply: Some(reply),
    };
    // Read the clock only when the mailbox is full: the common path costs one clock read (the reply
    // timer's).
    match cell.mailbox.try_push_env(env) {
        Ok(()) => Ok(timeout),
        Err(env) => {
            let queued_at = tokio::time::Instant::now();
            let wait = cell.shared.config.mailbox_wait.min(timeout);
            match cell.mailbox.push_or_return(env, wait, &cell.name).await {
                Ok(()) => Ok(timeout.saturating_sub(queued_at.elapsed())),
                Err((e, env)) => Err((e, env.reply)),
            }
        }
    }
}

impl fmt::Debug for ActorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            RefInner::Local(c) => write!(f, "ActorRef(local {})", c.name),
            RefInner::Remote(r) => write!(f, "ActorRef({}@{})", r.target.name, r.target.addr),
        }
    }
}

impl PartialEq for ActorRef {
    /// Two refs are equal when they point at the same actor incarnation (local) or the same target
    /// (remote).
    fn eq(&self, other: &ActorRef) -> bool {
        match (&self.inner, &other.inner) {
            (RefInner::Local(a), RefInner::Local(b)) => Arc::ptr_eq(a, b),
            (RefInner::Remote(a), RefInner::Remote(b)) => a.target == b.target,
            _ => false,
        }
    }
}
