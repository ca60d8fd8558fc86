//! The [`Actor`] trait, the [`Context`] a handler sees, and restart policies.

use std::future::Future;
use std::time::Duration;

use crate::actor_ref::ActorRef;
use crate::cell::Responder;
use crate::error::ActorError;
use crate::message::Message;
use crate::name::ActorName;
use crate::system::ActorSystem;

/// A unit of state that handles messages one at a time.
///
/// The runtime calls [`receive`](Self::receive) for each message in arrival order and never runs two
/// handlers of one actor at once, so `&mut self` needs no locking. A handler's reply may be a
/// [`Message::Stream`].
///
/// Methods are written as `async fn` in implementations; the trait spells them as `impl Future + Send`
/// so that an actor is driven without boxing a future per message.
///
/// # Failures
///
/// - `receive` returning `Err` answers that caller with [`PulsingError::Actor`](crate::PulsingError::Actor)
///   and the actor keeps its state and goes on with the next message.
/// - `receive` panicking answers that caller with
///   [`PulsingError::Panicked`](crate::PulsingError::Panicked); other actors and the system are not
///   affected; the actor is then restarted or stopped by its [`RestartPolicy`].
///
/// # Examples
///
/// ```
/// use pulsing_core::{Actor, ActorError, Context, Message};
///
/// struct Counter(u64);
///
/// impl Actor for Counter {
///     async fn receive(&mut self, msg: Message, _ctx: &mut Context) -> Result<Message, ActorError> {
///         match msg.msg_type() {
///             Some("inc") => {
///                 self.0 += 1;
///                 Ok(Message::single("value", self.0.to_string()))
///             }
///             other => Err(ActorError::new(format!("unknown message {other:?}"))),
///         }
///     }
/// }
/// ```
pub trait Actor: Send + 'static {
    /// Runs once before the first message (and again after each restart, on the new instance).
    /// An error here makes `spawn` fail (or, after a restart, stops the actor).
    fn on_start(
        &mut self,
        ctx: &mut Context,
    ) -> impl Future<Output = Result<(), ActorError>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Handles one message and returns the reply (ignored for a `tell`).
    fn receive(
        &mut self,
        msg: Message,
        ctx: &mut Context,
    ) -> impl Future<Output = Result<Message, ActorError>> + Send;

    /// Set to `true` by actors that take each message's reply slot with [`forward`](Self::forward)
    /// instead of answering from [`receive`](Self::receive). Read at compile time: actors that keep the
    /// default pay nothing for it.
    const FORWARDS: bool = false;

    /// Called instead of [`receive`](Self::receive) when [`FORWARDS`](Self::FORWARDS) is `true`: takes
    /// the message and its [`Responder`]; the actor answers through the responder whenever it is
    /// ready, possibly after later messages have been forwarded.
    ///
    /// This is for actors whose real handler runs elsewhere and keeps its own per-actor queue (the
    /// Python bindings hand messages to an asyncio loop this way, many per wake-up). Such an actor is
    /// then responsible for handling messages one at a time and in order.
    ///
    /// The runtime takes the next message only once the returned future completes, so a forwarding
    /// actor whose own queue is full waits here for room: meanwhile messages stay in this actor's
    /// bounded mailbox, and senders wait for room there at most the system's mailbox wait and then
    /// fail with [`PulsingError::MailboxFull`](crate::PulsingError::MailboxFull), exactly as for an
    /// actor that handles its messages itself. Return as soon as the message is handed over; the
    /// answer need not be given before.
    ///
    /// The wait is bounded like a handler's: a stop request lets it go on until the stop deadline,
    /// then the future is dropped and the responder (if it was not handed over) answers
    /// [`Stopped`](crate::PulsingError::Stopped). A panic counts as a handler panic (the actor's
    /// [`RestartPolicy`] applies) and the responder answers `Stopped`.
    fn forward(
        &mut self,
        msg: Message,
        reply: Responder,
        ctx: &mut Context,
    ) -> impl Future<Output = ()> + Send {
        let _ = (msg, ctx);
        reply.fail(crate::PulsingError::Config(
            "Actor::FORWARDS is set but forward() is not implemented".into(),
        ));
        async {}
    }

    /// Runs once when the actor stops (by `stop`, `Context::stop`, system shutdown, or after
    /// `on_start` of a restart failed), bounded by the system's shutdown timeout. It is not run on an
    /// instance whose handler panicked: that state may be broken.
    fn on_stop(&mut self, ctx: &mut Context) -> impl Future<Output = ()> + Send {
        let _ = ctx;
        async {}
    }
}

/// What happens to an actor whose handler panicked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RestartPolicy {
    /// Stop the actor. Messages still queued are answered with
    /// [`PulsingError::Stopped`](crate::PulsingError::Stopped). The default.
    #[default]
    Never,
    /// Build a fresh instance from the actor's factory and go on with the queued messages, at most
    /// `max_restarts` times over the actor's life, waiting `backoff` before each restart (the mailbox
    /// keeps accepting meanwhile). Once the budget is spent, the next panic stops the actor. Needs a
    /// factory: see [`ActorSystem::spawn_factory`](crate::ActorSystem::spawn_factory).
    OnFailure {
        /// How many restarts are allowed over the actor's life.
        max_restarts: u32,
        /// How long to wait before each restart.
        backoff: Duration,
    },
}

/// What a handler can see and do besides its message: its name, its own ref, the system.
#[derive(Debug)]
pub struct Context {
    pub(crate) name: ActorName,
    pub(crate) myself: ActorRef,
    pub(crate) system: ActorSystem,
    pub(crate) restarts: u32,
    pub(crate) stop_requested: bool,
}

impl Context {
    /// This actor's name; for an anonymous actor, its generated id.
    pub fn name(&self) -> &ActorName {
        &self.name
    }

    /// A ref to this actor (for handing out to others; asking yourself from a handler deadlocks until
    /// the ask times out, since handlers run one at a time).
    pub fn myself(&self) -> &ActorRef {
        &self.myself
    }

    /// The system this actor runs in.
    pub fn system(&self) -> &ActorSystem {
        &self.system
    }

    /// How many times this actor has been restarted after a panic.
    pub fn restart_count(&self) -> u32 {
        self.restarts
    }

    /// Stops this actor after the current message: later messages are answered with
    /// [`PulsingError::Stopped`](crate::PulsingError::Stopped) and [`Actor::on_stop`] runs.
    pub fn stop(&mut self) {
        self.stop_requested = true;
    }
}
