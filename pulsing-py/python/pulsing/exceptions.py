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

import builtins

__all__ = [
    "ActorError",
    "ActorNotFoundError",
    "ActorStoppedError",
    "AskTimeoutError",
    "BadMessageError",
    "MailboxFullError",
    "NodeUnreachableError",
    "PulsingError",
    "UnauthorizedError",
    "actor_error_class",
    "make_actor_error",
]


class PulsingError(Exception):
    """Root of every error raised by Pulsing.

    :attr:`delivery` says whether the message reached the actor: ``"not_delivered"`` (safe to send
    again), ``"maybe_delivered"`` (it may have been handled) or ``"handled"`` (the handler ran and
    failed), as ``PulsingError::delivery()`` in Rust. Each class gives its usual value; an error
    from the core sets the exact one (a :class:`NodeUnreachableError` may be either of the first
    two).
    """

    delivery: str = "maybe_delivered"
    """Whether the message reached the actor (see the class docs)."""


class ActorNotFoundError(PulsingError):
    """No actor is registered under the given name or id."""

    delivery = "not_delivered"


class ActorError(PulsingError):
    """The actor's handler raised or returned an error while handling the message.

    Raised at the caller as ``ActorError(text, type_name, message)``: :attr:`type_name` is the
    class name of the exception the handler raised (``"ValueError"``), :attr:`message` its
    message, and ``str(err)`` reads ``"ValueError: message"``. :attr:`remote_traceback` is the
    handler's formatted traceback, also added as a note (PEP 678), when the handler was Python.

    When the handler raised a builtin exception (``ValueError``, ``KeyError``, ...), the error the
    caller gets is an instance of a class deriving from both :class:`ActorError` and that builtin
    (see :func:`actor_error_class`), so ``except ValueError`` works across nodes as in-process.
    Calling a method the actor does not have gives ``type_name == "AttributeError"``.
    """

    delivery = "handled"

    remote_traceback: str | None = None
    """The handler's formatted traceback (``None`` when the handler was not Python)."""

    def __init__(self, *args: object) -> None:
        # ActorError(text, type_name, message); kept as attributes too, since some builtin bases
        # (OSError) keep only part of `args`.
        super().__init__(*args)
        text = str(args[0]) if args else ""
        self._text = text
        self._type_name: str | None = args[1] if len(args) > 1 else None  # type: ignore[assignment]
        self._message = str(args[2]) if len(args) > 2 and args[2] is not None else text

    @property
    def type_name(self) -> str | None:
        """Class name of the exception the handler raised, when known."""
        return self._type_name

    @property
    def message(self) -> str:
        """The handler's error message, without the type name."""
        return self._message

    def __str__(self) -> str:
        return self._text


# Builtin classes that must not be mixed in: raising them means something to the interpreter
# (a StopIteration leaving a generator becomes a RuntimeError) rather than "this went wrong".
_NOT_MIXED = frozenset({"StopIteration", "StopAsyncIteration"})
_COMBINED: dict[str, type[ActorError]] = {}


def actor_error_class(type_name: str | None) -> type[ActorError]:
    """The class of the error a caller gets for a handler that raised ``type_name``.

    For the name of an exception class of :mod:`builtins` (an ``Exception`` subclass), a class
    deriving from both :class:`ActorError` and that builtin, named ``Remote<Name>`` and made once
    per name; for any other name (user classes, Rust errors), :class:`ActorError` itself.
    """
    if type_name is None:
        return ActorError
    cls = _COMBINED.get(type_name)
    if cls is not None:
        return cls
    cls = ActorError
    builtin = getattr(builtins, type_name, None)
    if (
        isinstance(builtin, type)
        and issubclass(builtin, Exception)
        and not issubclass(builtin, PulsingError)
        and type_name not in _NOT_MIXED
    ):
        try:
            cls = type(
                f"Remote{type_name}",
                (ActorError, builtin),
                {"__module__": __name__, "__doc__": f"An actor's handler raised {type_name}."},
            )
        except TypeError:  # the two layouts cannot be combined
            cls = ActorError
        # Cached for builtin names only: other names come from remote nodes, without bound.
        _COMBINED[type_name] = cls
    return cls


def make_actor_error(
    type_name: str | None, message: str, remote_traceback: str | None = None
) -> ActorError:
    """The error a caller gets for a handler that raised ``type_name(message)``.

    An instance of :func:`actor_error_class` ``(type_name)``, with
    :attr:`ActorError.remote_traceback` set and added as a note. Falls back to a plain
    :class:`ActorError` if the combined class cannot be built with these arguments (a builtin
    whose constructor wants other arguments).
    """
    text = f"{type_name}: {message}" if type_name else message
    cls = actor_error_class(type_name)
    try:
        err = cls(text, type_name, message)
    except Exception:  # e.g. UnicodeDecodeError wants five arguments
        err = ActorError(text, type_name, message)
    if remote_traceback:
        err.remote_traceback = remote_traceback
        note = "remote traceback:\n" + remote_traceback.rstrip("\n")
        add_note = getattr(err, "add_note", None)
        if add_note is not None:
            add_note(note)
        else:  # Python 3.10: no add_note, same attribute
            setattr(err, "__notes__", [note])  # noqa: B010 - unknown to 3.10 type stubs
    return err


class AskTimeoutError(PulsingError, TimeoutError):
    """An ``ask`` got no reply within its timeout."""


class NodeUnreachableError(PulsingError, ConnectionError):
    """The node that hosts the actor could not be reached."""


class MailboxFullError(PulsingError):
    """The actor's mailbox is at capacity and refused the message."""

    delivery = "not_delivered"


class BadMessageError(PulsingError):
    """The message could not be encoded, decoded, or was not understood by the actor."""

    delivery = "not_delivered"


class ActorStoppedError(PulsingError):
    """The actor stopped before it could handle the message."""


class UnauthorizedError(PulsingError, PermissionError):
    """A peer refused who we are, or we refused it (wire kind ``unauthorized``).

    A node with another cluster secret, or none, cannot join a cluster with a secret: its
    ``create_actor_system`` raises this, naming the seed that refused it. An HTTP client of such a
    node without a client certificate from the cluster CA or an API token gets it too (``401``).
    See ``docs/security.md``. Nothing was delivered.
    """

    delivery = "not_delivered"


def __getattr__(name: str) -> type[ActorError]:
    # `Remote<Builtin>` classes are made on first use; this makes them importable (and picklable)
    # by name as well.
    if name.startswith("Remote"):
        cls = actor_error_class(name[len("Remote") :])
        if cls is not ActorError:
            return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
