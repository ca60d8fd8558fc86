"""``SystemStats``: a snapshot of one node's counters, as :meth:`ActorSystem.stats` returns it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pulsing._pulsing import _Stats

__all__ = ["SystemStats"]


@dataclass(frozen=True)
class SystemStats:
    """A snapshot of this node's counters, the same ones ``GET /metrics`` exports.

    Counters marked *since start* only grow while the system runs; the others are the value now.
    Each snapshot has mappings of its own (plain dicts, typed read-only), so
    ``dataclasses.asdict(stats)`` and ``pickle`` work. Error kinds are the wire names of
    ``docs/protocol.md``: ``"not_found"``, ``"timeout"``, ``"overloaded"``, ``"stopped"``,
    ``"actor_error"``, ``"bad_request"``, ``"too_large"``, ``"unreachable"``, ``"shutdown"``,
    ``"stream_truncated"``, ``"config"``, ``"already_exists"``, ``"unauthorized"``, ``"other"``.
    """

    actors: int
    """Local actors running now, Python actors included."""
    messages_handled: int
    """Messages that local actors took from the core's mailboxes, since start. For a Python actor
    these are the messages from other nodes (and through refs of the core); a call between two
    actors of this process goes straight to the Python mailbox and is not counted."""
    queued: int
    """Messages waiting in the core's mailboxes now (as for ``messages_handled``, not those in a
    Python actor's own mailbox)."""
    in_flight_asks: int
    """Asks sent from this node that have not ended yet."""
    expired_asks: int
    """Asks dropped from a mailbox unhandled because their caller had already given up, since
    start."""
    panics: int
    """Handler panics of Rust actors, since start."""
    restarts: int
    """Restarts of Rust actors after a panic, since start."""
    errors: Mapping[str, int]
    """Errors returned to callers on this node, by kind (every kind present), since start."""
    dead_letters: Mapping[str, int]
    """Messages lost after their sender was told they were sent, by kind (every kind present),
    since start: tells from other nodes that this node could not deliver (an unknown or private
    actor is ``"not_found"``, a mailbox full past its wait bound ``"overloaded"``, this node
    shutting down ``"shutdown"``), and tells of this node queued on a link that broke before they
    were written."""
    bad_links: int
    """Node-to-node links this node closed because the peer broke the link protocol (a garbage or
    oversized frame), since start."""
    members: Mapping[str, int]
    """Cluster members this node knows of (itself included), by state: ``"alive"``,
    ``"suspect"``, ``"down"``, ``"left"`` (every state present)."""

    @classmethod
    def _from_native(cls, native: _Stats) -> SystemStats:
        (
            actors,
            handled,
            queued,
            in_flight,
            expired,
            panics,
            restarts,
            errors,
            dead_letters,
            bad_links,
            members,
        ) = native
        return cls(
            actors=actors,
            messages_handled=handled,
            queued=queued,
            in_flight_asks=in_flight,
            expired_asks=expired,
            panics=panics,
            restarts=restarts,
            errors=dict(errors),
            dead_letters=dict(dead_letters),
            bad_links=bad_links,
            members=dict(members),
        )
