"""Pulsing: a distributed actor runtime with a Rust/Tokio core.

This package re-exports the native module :mod:`pulsing._pulsing` and adds the thin Pythonic
layer on top of it (:mod:`pulsing.actor`). Every error it raises derives from
:class:`PulsingError`.
"""

from __future__ import annotations

from pulsing._pulsing import __version__
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
    "__version__",
]
