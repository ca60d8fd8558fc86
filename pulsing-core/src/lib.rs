//! The actor runtime of Pulsing: actors with bounded mailboxes, location-transparent refs, and the
//! [`Transport`] and [`Membership`] traits that the network and cluster crates implement.
//!
//! This crate runs a complete single-process system by itself ([`NoTransport`], [`Standalone`]). It
//! holds no network code: no hyper, no quinn, no gossip. The HTTP and QUIC transports live in
//! `pulsing-transport-http` / `pulsing-transport-quic`, the SWIM membership in `pulsing-cluster`, and the
//! `pulsing` facade composes them.
//!
//! # The pieces
//!
//! - [`Actor`]: state plus an `async fn receive`, run one message at a time, in arrival order.
//! - [`Message`]: a single `(msg_type, payload)` or a bounded [`MessageStream`] with an explicit end.
//! - [`ActorRef`]: `ask`, `ask_stream`, `tell`, `try_tell`; the same calls for local and remote actors.
//!   A ref can travel inside a msgpack payload as an extension value ([`WireRef`]).
//! - [`ActorSystem`]: `spawn` (public or private), `spawn_anonymous` (no name, reachable through its
//!   ref; see [`Visibility`]), `find`, `has_actor`, `stop`, `shutdown`.
//! - Mailboxes are bounded; see [`mailbox`] for the exact back-pressure contract.
//!
//! # Delivery promise
//!
//! - **At most once**: a message is handled once or not at all; nothing is retried once it may have
//!   left. An ask whose caller gave up (timeout, dropped future) before the actor reached it is skipped.
//! - **FIFO per sender→receiver pair**: messages a task sends to one actor, each send awaited before the
//!   next, are handled in that order.
//! - **Every ask ends** in a reply, an error or a timeout; no wait in the runtime is unbounded.
//! - Dropping an `ask` future abandons it: nothing stays registered, the reply (if any) is discarded.
//!
//! # Supervision
//!
//! - A handler that returns `Err` answers that caller with [`PulsingError::Actor`]; the actor keeps its
//!   state and goes on.
//! - A handler that panics answers that caller with [`PulsingError::Panicked`]; the panic is caught on
//!   the actor's task, so other actors and the system keep running. Then the actor's
//!   [`RestartPolicy`] applies: `Never` stops it (queued asks get [`PulsingError::Stopped`]);
//!   `OnFailure { max_restarts, backoff }` rebuilds its state with the factory given to
//!   [`ActorSystem::spawn_factory`] after `backoff`, keeps its mailbox (queued messages are handled by
//!   the new instance), and stops it once `max_restarts` restarts have been used.
//! - A panic in `on_start` fails `spawn`; a panic in `on_stop` is logged.
//! - Not caught: a handler that blocks its thread or loops forever without awaiting. Such an actor
//!   cannot be pre-empted; its callers time out and shutdown aborts its task after its bound.
//!
//! # Example
//!
//! ```
//! use pulsing_core::{Actor, ActorError, ActorSystem, Context, Message};
//!
//! struct Counter { value: i64 }
//!
//! impl Actor for Counter {
//!     async fn receive(&mut self, msg: Message, _ctx: &mut Context) -> Result<Message, ActorError> {
//!         let (ty, payload) = msg.into_single()?;
//!         match ty.as_str() {
//!             "increment" => {
//!                 let n: i64 = std::str::from_utf8(&payload)?.parse()?;
//!                 self.value += n;
//!                 Ok(Message::single("value", self.value.to_string()))
//!             }
//!             other => Err(ActorError::new(format!("unknown message type {other}"))),
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), pulsing_core::PulsingError> {
//! let system = ActorSystem::builder().build().await?;
//! let counter = system.spawn(Counter { value: 0 }, "counter").await?;
//! let reply = counter.ask(Message::single("increment", "5")).await?;
//! assert_eq!(reply.payload().unwrap().as_ref(), b"5");
//! system.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod actor;
mod actor_ref;
mod advertise;
mod builder;
mod cell;
mod error;
pub mod mailbox;
mod membership;
mod message;
mod name;
mod security;
mod stats;
mod system;
mod transport;
mod visibility;
mod wire_ref;

pub use actor::{Actor, Context, RestartPolicy};
pub use actor_ref::ActorRef;
pub use builder::{ActorSystemBuilder, DEFAULT_ASK_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT};
pub use cell::Responder;
pub use error::{ActorError, Delivery, ErrorKind, PulsingError, Result};
pub use mailbox::{TryTellError, DEFAULT_MAILBOX_CAPACITY, DEFAULT_MAILBOX_WAIT};
pub use membership::{
    ActorLocation, LocalNode, Member, MemberState, Membership, MembershipEvent, Standalone,
};
pub use message::{Message, MessageStream, StreamSender, DEFAULT_STREAM_SEND_TIMEOUT};
pub use name::{ActorName, MAX_NAME_LEN};
pub use security::{Secret, Security, SECRET_ENV};
pub use stats::SystemStats;
pub use system::{ActorSystem, SpawnOptions};
pub use transport::{
    InboundHandler, NoTransport, NodeId, PendingReply, RemoteTarget, ReplySink, Transport,
};
pub use visibility::{Visibility, ANONYMOUS_PREFIX};
pub use wire_ref::{WireRef, REF_EXT_TYPE};

/// Re-exported so implementors of [`Transport`] and [`Membership`] use the same version.
pub use async_trait::async_trait;
/// Re-exported: payloads are [`bytes::Bytes`].
pub use bytes;
