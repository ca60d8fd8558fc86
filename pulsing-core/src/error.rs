//! Errors: [`PulsingError`] for everything the runtime reports, [`ActorError`] for what a handler returns,
//! [`ErrorKind`], the stable name of each error that crosses the wire, and [`Delivery`], whether the
//! failed message was delivered.
//!
//! Every error says whether its message reached the actor, as a field callers match on:
//! [`PulsingError::delivery`]. A [`Delivery::NotDelivered`] message can be sent again without risk of
//! handling it twice; a [`Delivery::MaybeDelivered`] one only if handling it twice is harmless.
//!
//! ```
//! use pulsing_core::{Delivery, PulsingError};
//! let err = PulsingError::MailboxFull("worker".into());
//! assert_eq!(err.delivery(), Delivery::NotDelivered);
//! ```

use std::fmt;
use std::time::Duration;

/// The result type of the runtime's fallible calls.
pub type Result<T, E = PulsingError> = std::result::Result<T, E>;

/// Whether the message of a failed call reached the actor ([`PulsingError::delivery`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Delivery {
    /// The message never reached the actor: nothing was handled, and sending it again cannot make it
    /// handled twice.
    NotDelivered,
    /// The message may have reached the actor and may have been handled (in part or whole); the caller
    /// cannot tell.
    MaybeDelivered,
    /// The message was delivered and the handler ran: it returned an error or panicked.
    Handled,
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Delivery::NotDelivered => "the message was not delivered",
            Delivery::MaybeDelivered => "the message may have been delivered",
            Delivery::Handled => "the message was delivered and handled",
        })
    }
}

/// An error from the actor runtime.
///
/// Each variant says whether the message was delivered, as [`PulsingError::delivery`]. Callers usually branch on the predicates
/// ([`is_timeout`](Self::is_timeout), [`is_not_found`](Self::is_not_found), ...), which map one-to-one onto
/// the Python exception classes and onto the wire `kind` ([`PulsingError::kind`]). An error received from a
/// remote node is rebuilt with [`PulsingError::from_wire`], so a remote `not_found` is a local
/// [`PulsingError::NotFound`], not a string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PulsingError {
    /// No actor with this name is reachable (unknown, stopped and removed, or private to another node).
    /// The message was not delivered.
    #[error("actor not found: {0}")]
    NotFound(String),
    /// No reply came within the ask timeout. The message may have been delivered and handled.
    #[error("ask timed out after {0:?}; the message may have been delivered")]
    Timeout(Duration),
    /// The actor's mailbox stayed full for the whole wait bound. The message was not delivered.
    #[error("mailbox of actor {0} is full; the message was not delivered")]
    MailboxFull(String),
    /// The actor stopped (or the system shut down) before it handled the message. The message was not
    /// handled; for an ask whose handler was interrupted by shutdown it may have been partly handled,
    /// and the error does not say which, so its [`delivery`](Self::delivery) is
    /// [`Delivery::MaybeDelivered`].
    #[error("actor {0} stopped before handling the message")]
    Stopped(String),
    /// The handler returned an error. The message was delivered and handled; the actor keeps running.
    /// The [`ActorError`] keeps its type name and detail across the wire.
    #[error("actor error: {0}")]
    Actor(ActorError),
    /// The handler panicked. The message was delivered; the actor was restarted or stopped according to
    /// its [`RestartPolicy`](crate::RestartPolicy).
    #[error("actor {actor} panicked: {message}")]
    Panicked {
        /// The actor whose handler panicked.
        actor: String,
        /// The panic payload, when it was a string.
        message: String,
    },
    /// A name that does not follow the naming rules (see [`ActorName`](crate::ActorName)).
    #[error("invalid actor name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// An actor with this name already runs on this node. Nothing was spawned.
    #[error("an actor named {0} already exists on this node; stop it first or pick another name")]
    AlreadyExists(String),
    /// The message or request was malformed. It was not delivered.
    #[error("bad message: {0}")]
    BadMessage(String),
    /// The message is larger than the receiving node accepts. It was not delivered.
    #[error("message too large: {0}")]
    TooLarge(String),
    /// The node holding the actor could not be reached (connection refused or reset, no transport).
    /// Whether the message was delivered is the `delivery` field: before any byte was sent it was not.
    #[error("node {addr} unreachable: {reason}; {delivery}")]
    NodeUnreachable {
        /// The address that was tried.
        addr: String,
        /// What went wrong.
        reason: String,
        /// Whether the message was delivered: [`Delivery::NotDelivered`] when the connection failed
        /// before the request was handed over, [`Delivery::MaybeDelivered`] when it was lost after.
        delivery: Delivery,
    },
    /// The local actor system is shutting down or has shut down. The message was not delivered.
    #[error("actor system is shut down")]
    SystemShutdown,
    /// The remote node's wait for the actor (or for the request) timed out, as reported by that node
    /// with the wire kind `timeout`. The message may have been delivered and handled.
    #[error("remote timeout: {0}")]
    RemoteTimeout(String),
    /// A streamed reply ended without its end marker: the producer stopped or the connection broke.
    /// The message may have been handled, in whole or in part.
    #[error("stream ended without its end marker: {0}")]
    StreamTruncated(String),
    /// A misconfiguration detected when building the system or spawning an actor.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The peer refused who we are, or we refused it: no certificate from the cluster's CA (another
    /// cluster secret, or none), or an HTTP client without a token or client certificate
    /// (`docs/security.md`). Nothing was delivered.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// An error kind this version does not know, received from a newer peer. The message may have been
    /// delivered.
    #[error("{kind}: {message}")]
    Other {
        /// The wire kind as received.
        kind: String,
        /// The message as received.
        message: String,
    },
}

/// The stable name of an error, as written in the `kind` field on the wire (see `docs/protocol.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `not_found`
    NotFound,
    /// `timeout`
    Timeout,
    /// `overloaded` (mailbox full)
    Overloaded,
    /// `stopped`
    Stopped,
    /// `actor_error` (handler returned an error or panicked)
    ActorError,
    /// `bad_request` (bad message, bad name)
    BadRequest,
    /// `too_large`
    TooLarge,
    /// `unreachable`
    Unreachable,
    /// `shutdown`
    Shutdown,
    /// `stream_truncated`
    StreamTruncated,
    /// `config`
    Config,
    /// `already_exists`
    AlreadyExists,
    /// `unauthorized` (no or wrong credentials: cluster certificate, token)
    Unauthorized,
    /// Any other kind.
    Other,
}

impl ErrorKind {
    /// The wire name of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Stopped => "stopped",
            ErrorKind::ActorError => "actor_error",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Shutdown => "shutdown",
            ErrorKind::StreamTruncated => "stream_truncated",
            ErrorKind::Config => "config",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PulsingError {
    /// The wire kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PulsingError::NotFound(_) => ErrorKind::NotFound,
            PulsingError::Timeout(_) | PulsingError::RemoteTimeout(_) => ErrorKind::Timeout,
            PulsingError::MailboxFull(_) => ErrorKind::Overloaded,
            PulsingError::Stopped(_) => ErrorKind::Stopped,
            PulsingError::Actor(_) | PulsingError::Panicked { .. } => ErrorKind::ActorError,
            PulsingError::InvalidName { .. } | PulsingError::BadMessage(_) => ErrorKind::BadRequest,
            PulsingError::TooLarge(_) => ErrorKind::TooLarge,
            PulsingError::NodeUnreachable { .. } => ErrorKind::Unreachable,
            PulsingError::SystemShutdown => ErrorKind::Shutdown,
            PulsingError::StreamTruncated(_) => ErrorKind::StreamTruncated,
            PulsingError::Config(_) => ErrorKind::Config,
            PulsingError::AlreadyExists(_) => ErrorKind::AlreadyExists,
            PulsingError::Unauthorized(_) => ErrorKind::Unauthorized,
            PulsingError::Other { .. } => ErrorKind::Other,
        }
    }

    /// Whether the message of the failed call reached the actor.
    ///
    /// | error | delivery |
    /// |---|---|
    /// | `NotFound`, `MailboxFull`, `BadMessage`, `TooLarge`, `InvalidName`, `AlreadyExists`, `SystemShutdown`, `Config`, `Unauthorized` | [`NotDelivered`](Delivery::NotDelivered) |
    /// | `Timeout`, `RemoteTimeout`, `Stopped`, `StreamTruncated`, `Other` | [`MaybeDelivered`](Delivery::MaybeDelivered) |
    /// | `Actor`, `Panicked` | [`Handled`](Delivery::Handled) |
    /// | `NodeUnreachable` | its `delivery` field |
    pub fn delivery(&self) -> Delivery {
        match self {
            PulsingError::NotFound(_)
            | PulsingError::MailboxFull(_)
            | PulsingError::BadMessage(_)
            | PulsingError::TooLarge(_)
            | PulsingError::InvalidName { .. }
            | PulsingError::AlreadyExists(_)
            | PulsingError::SystemShutdown
            | PulsingError::Config(_)
            | PulsingError::Unauthorized(_) => Delivery::NotDelivered,
            PulsingError::Timeout(_)
            | PulsingError::RemoteTimeout(_)
            | PulsingError::Stopped(_)
            | PulsingError::StreamTruncated(_)
            | PulsingError::Other { .. } => Delivery::MaybeDelivered,
            PulsingError::Actor(_) | PulsingError::Panicked { .. } => Delivery::Handled,
            PulsingError::NodeUnreachable { delivery, .. } => *delivery,
        }
    }

    /// The human-readable part of this error as sent on the wire: the payload of the variant, without
    /// the prefix that [`Display`](fmt::Display) adds.
    pub fn wire_message(&self) -> String {
        match self {
            PulsingError::NotFound(s)
            | PulsingError::MailboxFull(s)
            | PulsingError::Stopped(s)
            | PulsingError::BadMessage(s)
            | PulsingError::TooLarge(s)
            | PulsingError::StreamTruncated(s)
            | PulsingError::Config(s)
            | PulsingError::AlreadyExists(s)
            | PulsingError::Unauthorized(s)
            | PulsingError::RemoteTimeout(s) => s.clone(),
            PulsingError::Actor(e) => e.to_string(),
            // Without the delivery words: the receiver states its own view of delivery.
            PulsingError::NodeUnreachable { addr, reason, .. } => {
                format!("node {addr} unreachable: {reason}")
            }
            PulsingError::Other { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// The free-text detail sent with this error on the wire (protocol.md §5): the
    /// [`ActorError::detail`] of a handler error, `None` for every other error.
    pub fn wire_detail(&self) -> Option<&str> {
        match self {
            PulsingError::Actor(e) => e.detail(),
            _ => None,
        }
    }

    /// Rebuilds an error received from a peer as `{"kind": kind, "message": message}`.
    ///
    /// `actor_error` becomes [`PulsingError::Actor`] whose [`ActorError::type_name`] is the part of the
    /// message before the first `": "` when it looks like a type name (the form [`ActorError`] displays
    /// itself in). `timeout` becomes [`PulsingError::RemoteTimeout`], and `unreachable` a
    /// [`PulsingError::NodeUnreachable`] that [`Delivery::MaybeDelivered`] (the wire does not say whether
    /// the remote node had sent it on). Unknown kinds become [`PulsingError::Other`] so nothing is lost.
    pub fn from_wire(kind: &str, message: impl Into<String>) -> PulsingError {
        PulsingError::from_wire_detail(kind, message, None)
    }

    /// Like [`from_wire`](Self::from_wire), for an error that came with the optional `detail` field.
    ///
    /// The detail is kept on an `actor_error` (as [`ActorError::detail`]), the one kind that carries
    /// it; for any other kind it is dropped, as those errors have no place for it.
    pub fn from_wire_detail(
        kind: &str,
        message: impl Into<String>,
        detail: Option<String>,
    ) -> PulsingError {
        let message = message.into();
        if kind == "actor_error" {
            let mut e = ActorError::parse_display(&message);
            e.detail = detail;
            return PulsingError::Actor(e);
        }
        match kind {
            "not_found" => PulsingError::NotFound(message),
            // A remote timeout keeps its text; the local caller's own timer is a separate matter.
            "timeout" => PulsingError::RemoteTimeout(message),
            "overloaded" => PulsingError::MailboxFull(message),
            "stopped" => PulsingError::Stopped(message),
            "bad_request" => PulsingError::BadMessage(message),
            "too_large" => PulsingError::TooLarge(message),
            "unreachable" => PulsingError::NodeUnreachable {
                addr: String::new(),
                reason: message,
                delivery: Delivery::MaybeDelivered,
            },
            "shutdown" => PulsingError::SystemShutdown,
            "stream_truncated" => PulsingError::StreamTruncated(message),
            "config" => PulsingError::Config(message),
            "already_exists" => PulsingError::AlreadyExists(message),
            "unauthorized" => PulsingError::Unauthorized(message),
            _ => PulsingError::Other {
                kind: kind.to_owned(),
                message,
            },
        }
    }

    /// The ask (or a wait it contains) timed out: locally, or on the remote node.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            PulsingError::Timeout(_) | PulsingError::RemoteTimeout(_)
        )
    }
    /// No such actor is reachable.
    pub fn is_not_found(&self) -> bool {
        matches!(self, PulsingError::NotFound(_))
    }
    /// The mailbox was full for the whole wait bound.
    pub fn is_mailbox_full(&self) -> bool {
        matches!(self, PulsingError::MailboxFull(_))
    }
    /// The actor or the whole system stopped before handling the message.
    pub fn is_stopped(&self) -> bool {
        matches!(
            self,
            PulsingError::Stopped(_) | PulsingError::SystemShutdown
        )
    }
    /// The handler returned an error or panicked.
    pub fn is_actor_error(&self) -> bool {
        matches!(self, PulsingError::Actor(_) | PulsingError::Panicked { .. })
    }
    /// The handler panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, PulsingError::Panicked { .. })
    }
    /// The target node could not be reached.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, PulsingError::NodeUnreachable { .. })
    }
    /// The input was refused as malformed (bad message or bad name).
    pub fn is_bad_message(&self) -> bool {
        matches!(
            self,
            PulsingError::BadMessage(_) | PulsingError::InvalidName { .. }
        )
    }
    /// The message exceeded the size limit.
    pub fn is_too_large(&self) -> bool {
        matches!(self, PulsingError::TooLarge(_))
    }

    /// A peer refused this node's identity, or a peer's was refused (`docs/security.md`).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, PulsingError::Unauthorized(_))
    }
}

/// What a handler returns when it fails: a message and, optionally, the name of the error's type and
/// a free-text detail (such as a traceback).
///
/// The actor keeps running after a handler returns an error; the caller receives
/// [`PulsingError::Actor`]. Any `std::error::Error` converts into it, so `?` works inside handlers:
///
/// ```
/// use pulsing_core::ActorError;
/// fn parse(input: &str) -> Result<u32, ActorError> {
///     Ok(input.parse::<u32>()?)
/// }
/// let err = parse("x").unwrap_err();
/// assert_eq!(err.message(), "invalid digit found in string");
/// ```
///
/// (Like `anyhow::Error`, `ActorError` does not itself implement `std::error::Error`, which is what makes
/// that blanket conversion possible; [`PulsingError`] does.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorError {
    type_name: Option<String>,
    message: String,
    detail: Option<String>,
}

impl ActorError {
    /// An error with just a message.
    pub fn new(message: impl Into<String>) -> ActorError {
        ActorError {
            type_name: None,
            message: message.into(),
            detail: None,
        }
    }

    /// An error that names its type, e.g. a Python exception class (`"ValueError"`).
    pub fn with_type(type_name: impl Into<String>, message: impl Into<String>) -> ActorError {
        ActorError {
            type_name: Some(type_name.into()),
            message: message.into(),
            detail: None,
        }
    }

    /// The error's type name, if the handler gave one.
    pub fn type_name(&self) -> Option<&str> {
        self.type_name.as_deref()
    }

    /// The error's message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// This error with a free-text `detail`, e.g. the handler's traceback. The detail crosses the wire
    /// next to the message (the `detail` field of protocol.md §5), so a remote caller sees it too; it
    /// is not part of [`Display`](fmt::Display), which stays one line.
    ///
    /// # Examples
    ///
    /// ```
    /// use pulsing_core::ActorError;
    /// let e = ActorError::with_type("ValueError", "bad input").with_detail("Traceback ...");
    /// assert_eq!(e.detail(), Some("Traceback ..."));
    /// assert_eq!(e.to_string(), "ValueError: bad input");
    /// ```
    pub fn with_detail(mut self, detail: impl Into<String>) -> ActorError {
        self.detail = Some(detail.into());
        self
    }

    /// The free-text detail, if the handler gave one (see [`with_detail`](Self::with_detail)).
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// Parses the `Type: message` form written by `Display`; a prefix counts as a type name only if it
    /// is a non-empty run of identifier characters and dots.
    fn parse_display(s: &str) -> ActorError {
        if let Some((head, tail)) = s.split_once(": ") {
            let looks_like_type = !head.is_empty()
                && head
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            if looks_like_type {
                return ActorError::with_type(head, tail);
            }
        }
        ActorError::new(s)
    }
}

impl fmt::Display for ActorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.type_name {
            Some(t) => write!(f, "{t}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl<E: std::error::Error> From<E> for ActorError {
    fn from(e: E) -> ActorError {
        ActorError::new(e.to_string())
    }
}

impl From<ActorError> for PulsingError {
    fn from(e: ActorError) -> PulsingError {
        PulsingError::Actor(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_the_wire_form() {
        let errors = [
            PulsingError::NotFound("a".into()),
            PulsingError::MailboxFull("a".into()),
            PulsingError::Stopped("a".into()),
            PulsingError::Actor(ActorError::with_type("ValueError", "bad: value")),
            PulsingError::Actor(ActorError::new("plain message")),
            PulsingError::BadMessage("x".into()),
            PulsingError::TooLarge("x".into()),
            PulsingError::StreamTruncated("x".into()),
            PulsingError::AlreadyExists("a".into()),
            PulsingError::Unauthorized("no token".into()),
            PulsingError::RemoteTimeout("x".into()),
        ];
        for e in errors {
            let back = PulsingError::from_wire(e.kind().as_str(), e.wire_message());
            assert_eq!(back, e, "kind {}", e.kind());
        }
    }

    #[test]
    fn a_detail_round_trips_on_actor_errors_only() {
        let e =
            PulsingError::Actor(ActorError::with_type("KeyError", "k").with_detail("trace\nback"));
        assert_eq!(e.wire_detail(), Some("trace\nback"));
        let back = PulsingError::from_wire_detail(
            e.kind().as_str(),
            e.wire_message(),
            e.wire_detail().map(str::to_owned),
        );
        assert_eq!(back, e);
        let not_found = PulsingError::from_wire_detail("not_found", "a", Some("ignored".into()));
        assert_eq!(not_found, PulsingError::NotFound("a".into()));
        assert_eq!(not_found.wire_detail(), None);
        assert_eq!(
            PulsingError::from_wire("actor_error", "x").wire_detail(),
            None
        );
    }

    #[test]
    fn predicates_survive_the_wire() {
        let t = PulsingError::Timeout(Duration::from_secs(1));
        assert!(PulsingError::from_wire(t.kind().as_str(), t.wire_message()).is_timeout());
        let p = PulsingError::Panicked {
            actor: "a".into(),
            message: "boom".into(),
        };
        assert!(PulsingError::from_wire(p.kind().as_str(), p.wire_message()).is_actor_error());
        let u = PulsingError::NodeUnreachable {
            addr: "127.0.0.1:1".into(),
            reason: "refused".into(),
            delivery: Delivery::NotDelivered,
        };
        assert!(PulsingError::from_wire(u.kind().as_str(), u.wire_message()).is_unreachable());
        assert!(PulsingError::from_wire("shutdown", "").is_stopped());
    }

    #[test]
    fn every_variant_says_whether_it_was_delivered() {
        use Delivery::*;
        let unreachable = |delivery| PulsingError::NodeUnreachable {
            addr: "127.0.0.1:1".into(),
            reason: "r".into(),
            delivery,
        };
        let cases = [
            (PulsingError::NotFound("a".into()), NotDelivered),
            (
                PulsingError::Timeout(Duration::from_secs(1)),
                MaybeDelivered,
            ),
            (PulsingError::RemoteTimeout("x".into()), MaybeDelivered),
            (PulsingError::MailboxFull("a".into()), NotDelivered),
            (PulsingError::Stopped("a".into()), MaybeDelivered),
            (PulsingError::Actor(ActorError::new("x")), Handled),
            (
                PulsingError::Panicked {
                    actor: "a".into(),
                    message: "boom".into(),
                },
                Handled,
            ),
            (
                PulsingError::InvalidName {
                    name: "".into(),
                    reason: "empty",
                },
                NotDelivered,
            ),
            (PulsingError::AlreadyExists("a".into()), NotDelivered),
            (PulsingError::BadMessage("x".into()), NotDelivered),
            (PulsingError::TooLarge("x".into()), NotDelivered),
            (unreachable(NotDelivered), NotDelivered),
            (unreachable(MaybeDelivered), MaybeDelivered),
            (PulsingError::SystemShutdown, NotDelivered),
            (PulsingError::StreamTruncated("x".into()), MaybeDelivered),
            (PulsingError::Config("x".into()), NotDelivered),
            (PulsingError::Unauthorized("x".into()), NotDelivered),
            (
                PulsingError::from_wire("quota_exceeded", "x"),
                MaybeDelivered,
            ),
        ];
        for (e, delivery) in cases {
            assert_eq!(e.delivery(), delivery, "{e:?}");
        }
    }

    #[test]
    fn a_remote_timeout_keeps_its_kind_and_delivery() {
        let t = PulsingError::Timeout(Duration::from_secs(1));
        let back = PulsingError::from_wire(t.kind().as_str(), t.wire_message());
        assert_eq!(back, PulsingError::RemoteTimeout(t.to_string()));
        assert_eq!(back.kind(), ErrorKind::Timeout);
        assert!(back.is_timeout());
        assert_eq!(back.delivery(), Delivery::MaybeDelivered);
        let again = PulsingError::from_wire(back.kind().as_str(), back.wire_message());
        assert_eq!(again, back);
    }

    #[test]
    fn a_remote_unreachable_keeps_its_kind_and_may_have_been_delivered() {
        for delivery in [Delivery::NotDelivered, Delivery::MaybeDelivered] {
            let u = PulsingError::NodeUnreachable {
                addr: "127.0.0.1:1".into(),
                reason: "refused".into(),
                delivery,
            };
            let back = PulsingError::from_wire(u.kind().as_str(), u.wire_message());
            assert_eq!(back.kind(), ErrorKind::Unreachable);
            // The wire does not carry delivery: a relayed unreachable is the cautious answer.
            assert_eq!(back.delivery(), Delivery::MaybeDelivered);
            // The text states the delivery once, the receiver's.
            assert_eq!(
                back.to_string(),
                "node  unreachable: node 127.0.0.1:1 unreachable: refused; the message may have been \
                 delivered"
            );
        }
    }

    #[test]
    fn unreachable_text_follows_its_delivery_field() {
        let u = PulsingError::NodeUnreachable {
            addr: "127.0.0.1:1".into(),
            reason: "connect failed".into(),
            delivery: Delivery::NotDelivered,
        };
        assert_eq!(
            u.to_string(),
            "node 127.0.0.1:1 unreachable: connect failed; the message was not delivered"
        );
    }

    #[test]
    fn unknown_kind_is_kept_verbatim() {
        let e = PulsingError::from_wire("quota_exceeded", "try later");
        assert_eq!(e.kind(), ErrorKind::Other);
        assert_eq!(e.to_string(), "quota_exceeded: try later");
    }

    #[test]
    fn question_mark_converts_std_errors_into_actor_errors() {
        fn f() -> Result<i32, ActorError> {
            Ok("12x".parse::<i32>()?)
        }
        assert!(f().unwrap_err().message().contains("invalid digit"));
    }
}
