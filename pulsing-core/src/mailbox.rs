//! Bounded mailboxes: the queue in front of each local actor.
//!
//! A mailbox is a bounded FIFO ([`tokio::sync::mpsc`]); there is no unbounded queue anywhere in the
//! runtime. Its contract:
//!
//! - Capacity is [`DEFAULT_MAILBOX_CAPACITY`] unless set per system
//!   ([`ActorSystemBuilder::mailbox_capacity`](crate::ActorSystemBuilder::mailbox_capacity)) or per spawn
//!   ([`SpawnOptions::mailbox_capacity`](crate::SpawnOptions::mailbox_capacity)).
//! - `ask` and `tell` wait for room while the mailbox is full, at most the system's mailbox wait bound
//!   ([`DEFAULT_MAILBOX_WAIT`], and never longer than the ask's own timeout); then they fail with
//!   [`PulsingError::MailboxFull`] and the message was not delivered.
//! - `try_tell` never waits: when the mailbox is full it hands the message back in
//!   [`TryTellError::Full`], like `tokio::sync::mpsc`'s `TrySendError::Full`.
//! - Once the actor stops, the mailbox is closed: sends fail with [`PulsingError::Stopped`] and queued
//!   asks are answered with the same error.
//! - Messages from one sender are handled in the order that sender's sends completed (FIFO per
//!   sender→receiver pair).
//! - While messages are queued, the actor takes them out of the mailbox in small batches (at most an
//!   eighth of its capacity, and at most [`MAX_TAKE`]; one at a time for mailboxes under 16): one lock
//!   per batch instead of one per message. Taken messages still count as queued in
//!   [`SystemStats::queued`](crate::SystemStats::queued) and are handled before anything queued after
//!   them, so an actor holds at most `capacity + capacity / 8` messages.

use std::fmt;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::error::PulsingError;
use crate::message::Message;
use crate::name::ActorName;
use crate::transport::ReplySink;

/// Default mailbox capacity, in messages.
pub const DEFAULT_MAILBOX_CAPACITY: usize = 1024;

/// The most messages an actor takes out of its mailbox at once.
pub const MAX_TAKE: usize = 32;

/// Default bound on how long `ask`/`tell` wait for room in a full mailbox.
pub const DEFAULT_MAILBOX_WAIT: Duration = Duration::from_secs(5);

/// Where the reply to an ask goes.
pub(crate) enum ReplyTo {
    /// A caller waiting on this node (a local ask, or a transport awaiting a
    /// [`PendingReply`](crate::PendingReply)). Dropped unanswered, the caller sees the actor stopped.
    Channel(oneshot::Sender<Result<Message, PulsingError>>),
    /// A transport's writer ([`InboundHandler::ask_then`](crate::InboundHandler::ask_then)), called
    /// on whichever thread answers, so no task waits for the reply.
    Sink(SinkReply),
}

impl ReplyTo {
    /// Answers the ask.
    pub(crate) fn send(self, result: Result<Message, PulsingError>) {
        match self {
            ReplyTo::Channel(tx) => {
                let _ = tx.send(result);
            }
            ReplyTo::Sink(mut s) => {
                if let Some(sink) = s.sink.take() {
                    sink.send(result);
                }
            }
        }
    }

    /// Whether the caller gave up, so the answer would be dropped.
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            ReplyTo::Channel(tx) => tx.is_closed(),
            ReplyTo::Sink(s) => s.sink.as_ref().is_none_or(ReplySink::is_cancelled),
        }
    }
}

/// A [`ReplySink`] in a mailbox: dropped unanswered (the actor stopped, the envelope was discarded),
/// it answers [`PulsingError::Stopped`], as a dropped [`ReplyTo::Channel`] does: from a task, as
/// the waiter of a channel would, so a runtime torn down (a crash, as far as its peers can tell)
/// answers nothing.
pub(crate) struct SinkReply {
    sink: Option<ReplySink>,
    actor: ActorName,
}

impl SinkReply {
    pub(crate) fn new(sink: ReplySink, actor: ActorName) -> SinkReply {
        SinkReply {
            sink: Some(sink),
            actor,
        }
    }

    /// Drops the sink unanswered (the ask was not queued after all: the caller answers).
    pub(crate) fn defuse(mut self) {
        self.sink = None;
    }
}

impl Drop for SinkReply {
    fn drop(&mut self) {
        if let Some(sink) = self.sink.take() {
            let err = PulsingError::Stopped(self.actor.to_string());
            match tokio::runtime::Handle::try_current() {
                // A runtime shutting down drops the task unrun.
                Ok(rt) => drop(rt.spawn(async move { sink.send(Err(err)) })),
                Err(_) => sink.send(Err(err)),
            }
        }
    }
}

/// A message in a mailbox, with the channel for its reply (`None` for a tell).
pub(crate) struct Envelope {
    pub(crate) msg: Message,
    pub(crate) reply: Option<ReplyTo>,
}

/// The sending side of an actor's mailbox.
#[derive(Clone)]
pub(crate) struct MailboxSender {
    tx: mpsc::Sender<Envelope>,
}

/// Creates a mailbox holding at most `capacity` messages (at least 1).
pub(crate) fn mailbox(capacity: usize) -> (MailboxSender, Inbox) {
    let capacity = capacity.max(1);
    let (tx, rx) = mpsc::channel(capacity);
    let inbox = Inbox {
        rx,
        taken: Vec::new(),
        take: (capacity / 8).clamp(1, MAX_TAKE),
    };
    (MailboxSender { tx }, inbox)
}

/// The receiving side of an actor's mailbox, owned by the actor's task.
///
/// Messages are taken out of the channel in batches (`recv_many`: the channel's semaphore lock is
/// taken once per batch rather than once per message, worth ~30% of `tell` throughput) and handed out
/// one by one, oldest first.
pub(crate) struct Inbox {
    rx: mpsc::Receiver<Envelope>,
    /// Taken out of the channel, not yet handed out; the oldest last.
    taken: Vec<Envelope>,
    /// How many to take at once.
    take: usize,
}

impl Inbox {
    /// The next message if one was already taken out of the channel.
    pub(crate) fn next_taken(&mut self) -> Option<Envelope> {
        self.taken.pop()
    }

    /// The next message without waiting, if there is one.
    pub(crate) fn try_recv(&mut self) -> Option<Envelope> {
        self.taken.pop().or_else(|| self.rx.try_recv().ok())
    }

    /// The next message; `None` once the mailbox is closed and empty. Cancel safe.
    pub(crate) async fn recv(&mut self) -> Option<Envelope> {
        if let Some(env) = self.taken.pop() {
            return Some(env);
        }
        // `recv_many` is cancel safe, and nothing below awaits.
        if self.rx.recv_many(&mut self.taken, self.take).await == 0 {
            return None;
        }
        self.taken.reverse();
        self.taken.pop()
    }

    /// How many messages were taken out of the channel and not handed out yet.
    pub(crate) fn taken_len(&self) -> usize {
        self.taken.len()
    }

    /// Closes the mailbox: sends fail from now on; what is queued can still be received.
    pub(crate) fn close(&mut self) {
        self.rx.close();
    }
}

impl MailboxSender {
    /// Queues `env`, waiting at most `wait` for room.
    ///
    /// # Errors
    ///
    /// [`PulsingError::MailboxFull`] after `wait`, [`PulsingError::Stopped`] if the mailbox is closed; in
    /// both cases the message was not queued.
    pub(crate) async fn push(
        &self,
        env: Envelope,
        wait: Duration,
        name: &ActorName,
    ) -> Result<(), PulsingError> {
        self.push_or_return(env, wait, name)
            .await
            .map_err(|(e, _)| e)
    }

    /// As [`push`](Self::push), but a message that was not queued comes back with the error.
    pub(crate) async fn push_or_return(
        &self,
        env: Envelope,
        wait: Duration,
        name: &ActorName,
    ) -> Result<(), (PulsingError, Envelope)> {
        // Fast path: no timer when there is room.
        match self.tx.try_send(env) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(env)) => {
                Err((PulsingError::Stopped(name.to_string()), env))
            }
            Err(mpsc::error::TrySendError::Full(env)) => {
                // Waits for a slot, not with the envelope, so a wait that fails still has it.
                match tokio::time::timeout(wait, self.tx.reserve()).await {
                    Ok(Ok(permit)) => {
                        permit.send(env);
                        Ok(())
                    }
                    Ok(Err(_)) => Err((PulsingError::Stopped(name.to_string()), env)),
                    Err(_) => Err((PulsingError::MailboxFull(name.to_string()), env)),
                }
            }
        }
    }

    /// Queues `env` if there is room now; otherwise gives the envelope back (closed mailboxes too:
    /// [`push`](Self::push) then reports why).
    pub(crate) fn try_push_env(&self, env: Envelope) -> Result<(), Envelope> {
        self.tx.try_send(env).map_err(|e| match e {
            mpsc::error::TrySendError::Full(env) | mpsc::error::TrySendError::Closed(env) => env,
        })
    }

    /// Queues `env` if there is room now; otherwise gives the message back.
    pub(crate) fn try_push(&self, env: Envelope) -> Result<(), TryTellError> {
        match self.tx.try_send(env) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(env)) => Err(TryTellError::Full(env.msg)),
            Err(mpsc::error::TrySendError::Closed(env)) => Err(TryTellError::Stopped(env.msg)),
        }
    }

    /// Messages queued now.
    pub(crate) fn len(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

/// Why [`ActorRef::try_tell`](crate::ActorRef::try_tell) did not queue a message; each variant gives the
/// message back.
#[non_exhaustive]
pub enum TryTellError {
    /// The mailbox is full right now.
    Full(Message),
    /// The actor has stopped.
    Stopped(Message),
    /// The actor is on another node: whether its mailbox has room cannot be known without a round trip,
    /// so use `tell`, which waits for room with a bound.
    Remote(Message),
}

impl TryTellError {
    /// The message that was not sent.
    pub fn into_message(self) -> Message {
        match self {
            TryTellError::Full(m) | TryTellError::Stopped(m) | TryTellError::Remote(m) => m,
        }
    }

    /// Whether the mailbox was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TryTellError::Full(_))
    }
}

impl fmt::Debug for TryTellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for TryTellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TryTellError::Full(_) => "mailbox full; the message was not delivered",
            TryTellError::Stopped(_) => "actor stopped; the message was not delivered",
            TryTellError::Remote(_) => {
                "try_tell needs a local actor; use tell for a remote one (the message was not sent)"
            }
        })
    }
}

impl std::error::Error for TryTellError {}
