"""The exception hierarchy of Pulsing, rooted at :class:`PulsingError`.

Every error the runtime raises is a :class:`PulsingError`, so ``except pulsing.PulsingError``
catches them all. Where a builtin exception already names the failure, the Pulsing class also
derives from it: an :class:`AskTimeoutError` is a :class:`TimeoutError` and a
:class:`NodeUnreachableError` is a :class:`ConnectionError`, so code that knows nothing of
Pulsing still handles them.

The classes are defined here, in Python, because a class with two bases cannot be made with
PyO3's ``create_exception!``; the native module ``pulsing._pulsing`` imports these same objects
when it raises them.
"""

from __future__ import annotations

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


class PulsingError(Exception):
    """Root of every error raised by Pulsing."""


class ActorNotFoundError(PulsingError):
    """No actor is registered under the given name or id."""


class ActorError(PulsingError):
    """The actor's handler raised or returned an error while handling the message."""


class AskTimeoutError(PulsingError, TimeoutError):
    """An ``ask`` got no reply within its timeout."""


class NodeUnreachableError(PulsingError, ConnectionError):
    """The node that hosts the actor could not be reached."""


class MailboxFullError(PulsingError):
    """The actor's mailbox is at capacity and refused the message."""


class BadMessageError(PulsingError):
    """The message could not be encoded, decoded, or was not understood by the actor."""


class ActorStoppedError(PulsingError):
    """The actor stopped before it could handle the message."""
