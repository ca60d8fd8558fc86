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
    """The actor's handler raised or returned an error while handling the message.

    Raised at the caller as ``ActorError(text, type_name, message)``: :attr:`type_name` is the
    class name of the exception the remote handler raised (``"ValueError"``), :attr:`message` its
    message, and ``str(err)`` reads ``"ValueError: message"``. Calling a method the actor does not
    have gives ``type_name == "AttributeError"``.
    """

    @property
    def type_name(self) -> str | None:
        """Class name of the exception the handler raised, when known."""
        return self.args[1] if len(self.args) > 1 else None

    @property
    def message(self) -> str:
        """The handler's error message, without the type name."""
        if len(self.args) > 2:
            return str(self.args[2])
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


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
