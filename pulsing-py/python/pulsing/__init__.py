"""Pulsing: a distributed actor runtime with a Rust/Tokio core.

``import pulsing`` gives the same names as :mod:`pulsing.actor` (the API of the Remote Actors
Guide) plus ``__version__``. The native module :mod:`pulsing._pulsing` underneath is an
implementation detail. Every error Pulsing raises derives from :class:`PulsingError`.
"""

from __future__ import annotations

from pulsing._pulsing import __version__
from pulsing.actor import (
    Actor,
    ActorError,
    ActorNotFoundError,
    ActorRef,
    ActorStoppedError,
    ActorSystem,
    AskTimeoutError,
    BadMessageError,
    ClientCertificate,
    MailboxFullError,
    Member,
    Message,
    NodeUnreachableError,
    PulsingError,
    SystemConfig,
    SystemStats,
    UnauthorizedError,
    as_actor,
    client_certificate,
    create_actor_system,
    current_actor,
    current_system,
)

__all__ = [
    "Actor",
    "ActorError",
    "ActorNotFoundError",
    "ActorRef",
    "ActorStoppedError",
    "ActorSystem",
    "AskTimeoutError",
    "BadMessageError",
    "ClientCertificate",
    "MailboxFullError",
    "Member",
    "Message",
    "NodeUnreachableError",
    "PulsingError",
    "SystemConfig",
    "SystemStats",
    "UnauthorizedError",
    "__version__",
    "as_actor",
    "client_certificate",
    "create_actor_system",
    "current_actor",
    "current_system",
]
