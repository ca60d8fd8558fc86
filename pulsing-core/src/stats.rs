//! Counters the runtime keeps, read by [`ActorSystem::stats`](crate::ActorSystem::stats) and exported
//! by transports (e.g. `GET /metrics`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::error::{ErrorKind, PulsingError};
use crate::membership::MemberState;

const KINDS: [ErrorKind; 14] = [
    ErrorKind::NotFound,
    ErrorKind::Timeout,
    ErrorKind::Overloaded,
    ErrorKind::Stopped,
    ErrorKind::ActorError,
    ErrorKind::BadRequest,
    ErrorKind::TooLarge,
    ErrorKind::Unreachable,
    ErrorKind::Shutdown,
    ErrorKind::StreamTruncated,
    ErrorKind::Config,
    ErrorKind::AlreadyExists,
    ErrorKind::Unauthorized,
    ErrorKind::Other,
];

fn kind_index(kind: ErrorKind) -> usize {
    KINDS
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KINDS.len() - 1)
}

/// System-wide counters. Per-actor message counts live in each actor's cell and are summed on read.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) in_flight_asks: AtomicU64,
    /// Messages handled by actors that have since stopped.
    pub(crate) retired_handled: AtomicU64,
    /// Asks skipped because their caller had already given up.
    pub(crate) expired_asks: AtomicU64,
    pub(crate) panics: AtomicU64,
    pub(crate) restarts: AtomicU64,
    /// Node-to-node links closed because the peer sent bytes that are not the link protocol.
    pub(crate) bad_links: AtomicU64,
    errors: [AtomicU64; KINDS.len()],
    dead_letters: [AtomicU64; KINDS.len()],
}

impl Counters {
    pub(crate) fn count_error(&self, err: &PulsingError) {
        self.errors[kind_index(err.kind())].fetch_add(1, Relaxed);
    }

    pub(crate) fn count_dead_letters(&self, err: &PulsingError, count: u64) {
        self.dead_letters[kind_index(err.kind())].fetch_add(count, Relaxed);
    }

    pub(crate) fn errors_by_kind(&self) -> Vec<(ErrorKind, u64)> {
        by_kind(&self.errors)
    }

    pub(crate) fn dead_letters_by_kind(&self) -> Vec<(ErrorKind, u64)> {
        by_kind(&self.dead_letters)
    }
}

fn by_kind(counts: &[AtomicU64; KINDS.len()]) -> Vec<(ErrorKind, u64)> {
    KINDS
        .iter()
        .zip(counts)
        .map(|(k, n)| (*k, n.load(Relaxed)))
        .collect()
}

/// Decrements the in-flight ask count when the ask ends, however it ends (reply, error, timeout, or
/// the caller dropping the future).
pub(crate) struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    pub(crate) fn enter(counter: &'a AtomicU64) -> InFlight<'a> {
        counter.fetch_add(1, Relaxed);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// A snapshot of the system's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SystemStats {
    /// Local actors running now.
    pub actors: usize,
    /// Messages handled by local actors since the system started.
    pub messages_handled: u64,
    /// Messages queued in local mailboxes now.
    pub queued: u64,
    /// Asks sent from this node that have not ended yet.
    pub in_flight_asks: u64,
    /// Asks dropped from a mailbox unhandled because their caller had already given up.
    pub expired_asks: u64,
    /// Handler panics.
    pub panics: u64,
    /// Restarts after a panic.
    pub restarts: u64,
    /// Errors returned to callers on this node, by wire kind (every kind listed, zeros included).
    pub errors: Vec<(ErrorKind, u64)>,
    /// Messages lost after their sender was told they were sent, by the kind of failure (every kind
    /// listed, zeros included): pipelined tells that a peer could not deliver (unknown actor, mailbox
    /// full past its bound, node shutting down), counted on the node that dropped them, and tells
    /// queued on a link that broke before they were written, counted on the sending node. See the
    /// delivery promise in the crate docs.
    pub dead_letters: Vec<(ErrorKind, u64)>,
    /// Node-to-node links this node closed because the peer sent something that is not the link
    /// protocol (a garbage or oversized frame).
    pub bad_links: u64,
    /// Cluster members known to this node, counted by state (states with no member are left out).
    pub members: Vec<(MemberState, usize)>,
}
