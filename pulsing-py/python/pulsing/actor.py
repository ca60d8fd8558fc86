"""The actor API of the Remote Actors Guide.

This module will hold :class:`Actor`, :class:`ActorRef`, :class:`ActorSystem`,
:class:`Message`, :class:`SystemConfig`, :func:`create_actor_system` and the ``as_actor``
decorator, built over the native bindings in :mod:`pulsing._pulsing`. For now it re-exports the
exception hierarchy, so ``from pulsing.actor import AskTimeoutError`` already works and names
the same class as ``pulsing.AskTimeoutError``.
"""

from __future__ import annotations

from pulsing.exceptions import (
    ActorError,
    ActorNotFoundError,
    ActorStoppedError,
    AskTimeoutError,
    BadMessageError,
    MailboxFullError,
    NodeUnreachableError,
    PulsingError,
)

__all__ = [
    "ActorError",
    "ActorNotFoundError",
    "ActorStoppedError",
    "AskTimeoutError",
    "BadMessageError",
    "MailboxFullError",
    "NodeUnreachableError",
    "PulsingError",
]
