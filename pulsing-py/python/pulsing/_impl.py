"""How a Python object handles a message: :class:`Actor` subclasses (``receive``) and ``@as_actor``
classes (a method per message type), behind one small interface, :class:`Impl`.

``@as_actor`` builds each class's method table once, when the class is decorated: whether each
public method is a coroutine function and whether it streams (a generator function). The mailbox
(``pulsing._local``) asks the table whether a message may run inline and whether its reply may be
a stream, without inspecting anything per message.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable
from types import AsyncGeneratorType, CoroutineType, GeneratorType
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from pulsing import _codec
from pulsing._codec import ExtHook, Pack
from pulsing._message import Message
from pulsing.exceptions import BadMessageError

if TYPE_CHECKING:
    from pulsing._system import ActorSystem

__all__ = ["Actor", "Impl", "MethodImpl", "ReceiveImpl", "as_actor", "impl_for"]

_T = TypeVar("_T")


class Actor:
    """Base class of actors that handle raw :class:`Message` objects.

    Override :meth:`receive` (``def`` or ``async def``). It runs on the system's asyncio loop, one
    message at a time, in arrival order, and returns the reply: a :class:`Message` (possibly
    ``Message.stream(...)``, which holds the actor's turn until the stream ends) or ``None`` (an
    empty reply). An exception it raises reaches the caller as :class:`ActorError`; the actor keeps
    its state and goes on.
    """

    def receive(self, msg: Message) -> Message | Awaitable[Message | None] | None:
        """Handles one message and returns the reply."""
        raise NotImplementedError(f"{type(self).__name__} must override receive()")

    async def on_start(self) -> None:
        """Runs once when the actor is spawned, before its first message."""

    async def on_stop(self) -> None:
        """Runs once when the actor is stopped or its system shuts down."""


class _Kind(NamedTuple):
    """How one method runs."""

    is_async: bool
    """A coroutine function: handling it awaits, so it needs the actor's runner task."""
    streams: bool
    """A generator function: the reply is a stream."""


_METHODS = "__pulsing_methods__"


def _method_table(cls: type) -> dict[str, _Kind]:
    table: dict[str, _Kind] = {}
    for name in dir(cls):
        if name.startswith("_"):
            continue
        fn = inspect.getattr_static(cls, name)
        if isinstance(fn, (staticmethod, classmethod)):
            fn = fn.__func__
        if not inspect.isfunction(fn):
            continue
        table[name] = _Kind(
            is_async=inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn),
            streams=inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn),
        )
    return table


def as_actor(cls: type[_T]) -> type[_T]:
    """Makes the instances of ``cls`` spawnable actors whose public methods are called through refs.

    Adds ``await cls.local(system, *args, **kwargs)``, which builds an instance to pass to
    :meth:`ActorSystem.spawn`. On any :class:`ActorRef` to such an actor, ``await
    ref.method(*args, **kwargs)`` calls the method (``def`` or ``async def``) and returns its
    value; a (async) generator method streams: ``async for item in ref.method(...)``. Arguments and
    values are None, bool, int, float, str, bytes, list, tuple, dict or :class:`ActorRef`.
    """
    if not isinstance(cls, type):
        raise TypeError("@as_actor decorates a class")

    async def local(owner: type[_T], system: ActorSystem, *args: Any, **kwargs: Any) -> _T:
        """An instance of this actor class, built with ``*args, **kwargs``, ready to spawn."""
        from pulsing._system import ActorSystem

        if not isinstance(system, ActorSystem):
            raise TypeError(f"local() takes an ActorSystem, not {type(system).__name__}")
        return owner(*args, **kwargs)

    local.__qualname__ = f"{cls.__qualname__}.local"
    cls.local = classmethod(local)  # type: ignore[attr-defined]
    setattr(cls, _METHODS, _method_table(cls))
    return cls


def method_kinds(cls: type) -> dict[str, _Kind] | None:
    """The method table of an ``@as_actor`` class, ``None`` for other classes."""
    table = cls.__dict__.get(_METHODS)
    if table is None:
        # A subclass of a decorated class: its own table, built once.
        parent = getattr(cls, _METHODS, None)
        if parent is None:
            return None
        table = _method_table(cls)
        setattr(cls, _METHODS, table)
    return table


class ReceiveImpl:
    """Adapts an :class:`Actor` (``receive(msg) -> Message``)."""

    __slots__ = ("_is_async", "_receive", "target")

    def __init__(self, actor: Actor) -> None:
        self.target = actor
        self._receive = actor.receive
        self._is_async = inspect.iscoroutinefunction(self._receive)

    def is_async(self, msg_type: str) -> bool:
        """Whether handling ``msg_type`` awaits (and so needs the runner task)."""
        return self._is_async

    def may_stream(self, msg_type: str) -> bool:
        """Whether the reply to ``msg_type`` may be a stream (always, for ``receive``)."""
        return True

    def handle(self, msg_type: str, payload: bytes) -> Any:
        """The handler's result, or a coroutine that returns it."""
        result = self._receive(Message(msg_type, payload))
        if not self._is_async and inspect.isawaitable(result):
            return _awaited(result)
        return result

    def single(self, msg_type: str, result: Any, pack: Pack) -> Message:
        """The reply message for ``result`` (not a stream)."""
        if type(result) is Message:
            return result
        if result is None:
            return Message("", b"")
        raise BadMessageError(f"receive must return a Message or None, not {type(result).__name__}")

    def items(self, msg_type: str, result: Any, pack: Pack) -> AsyncIterator[Message] | None:
        """The items of a streamed reply, ``None`` if ``result`` is not a stream."""
        if type(result) is Message and result._items is not None:
            return aiter(result)
        return None


async def _awaited(result: Awaitable[Any]) -> Any:
    return await result


class MethodImpl:
    """Adapts an ``@as_actor`` instance: ``msg_type`` names the method, the payload holds
    ``msgpack([args, kwargs])``, the reply holds ``msgpack(value)``; a generator method's reply is a
    stream of ``msgpack(item)``."""

    __slots__ = ("_cls_name", "_ext_hook", "_kinds", "target")

    def __init__(self, obj: Any, kinds: dict[str, _Kind], ext_hook: ExtHook) -> None:
        self.target = obj
        self._kinds = kinds
        self._cls_name = type(obj).__name__
        self._ext_hook = ext_hook

    def is_async(self, msg_type: str) -> bool:
        """Whether the method ``msg_type`` is a coroutine (or async generator) function."""
        kind = self._kinds.get(msg_type)
        if kind is not None:
            return kind.is_async
        fn = self._lookup(msg_type)
        return fn is not None and inspect.iscoroutinefunction(fn)

    def may_stream(self, msg_type: str) -> bool:
        """Whether the method ``msg_type`` may reply with a stream: a generator function, or a
        name the class does not define as a plain method (decided by the call)."""
        kind = self._kinds.get(msg_type)
        return kind is None or kind.streams

    def _lookup(self, name: str) -> Any:
        fn = None if name.startswith("_") else getattr(self.target, name, None)
        return fn if callable(fn) else None

    def handle(self, msg_type: str, payload: bytes) -> Any:
        """The method's result, or the coroutine that returns it."""
        fn = self._lookup(msg_type)
        if fn is None:
            raise AttributeError(f"actor {self._cls_name!r} has no method {msg_type!r}")
        args, kwargs = _codec.decode_call(payload, self._ext_hook)
        result = fn(*args, **kwargs)
        kind = self._kinds.get(msg_type)
        if kind is not None and not kind.is_async and is_coroutine(result):
            # The same answer whether the actor was idle (the call runs inline, where nothing can
            # be awaited) or busy.
            result.close()
            raise TypeError(f"method {msg_type!r} returned a coroutine; declare it async def")
        return result

    def single(self, msg_type: str, result: Any, pack: Pack) -> Message:
        """The reply message for ``result``, a value (not a stream)."""
        return Message(msg_type, _codec.encode_value(result, f"return value of {msg_type}()", pack))

    def items(self, msg_type: str, result: Any, pack: Pack) -> AsyncIterator[Message] | None:
        """The encoded items of a generator method's reply, ``None`` for any other method (a
        plain method returning a generator is refused when its value is encoded, idle or busy)."""
        if not self.may_stream(msg_type):
            return None
        kind = type(result)
        if kind is GeneratorType or kind is AsyncGeneratorType:
            return _encoded_items(msg_type, result, pack)
        return None


async def _encoded_items(name: str, items: Any, pack: Pack) -> AsyncIterator[Message]:
    what = f"item streamed by {name}()"
    try:
        if type(items) is AsyncGeneratorType:
            async for item in items:
                yield Message(name, _codec.encode_value(item, what, pack))
        else:
            for item in items:
                yield Message(name, _codec.encode_value(item, what, pack))
    finally:
        # Ends the handler's generator now (its `finally` runs), not whenever it is collected.
        if type(items) is AsyncGeneratorType:
            await items.aclose()
        else:
            items.close()


Impl = ReceiveImpl | MethodImpl
"""What the mailbox runs."""


def impl_for(actor: object, ext_hook: ExtHook) -> Impl:
    """The :data:`Impl` for ``actor``.

    Raises:
        TypeError: ``actor`` is neither an :class:`Actor` nor an ``@as_actor`` instance.
    """
    if isinstance(actor, Actor):
        return ReceiveImpl(actor)
    kinds = method_kinds(type(actor))
    if kinds is None:
        raise TypeError(
            f"spawn takes an Actor or an @as_actor instance, not {type(actor).__name__}"
        )
    return MethodImpl(actor, kinds, ext_hook)


def is_coroutine(value: object) -> bool:
    """Whether a handler's result must be awaited (a coroutine it returned)."""
    return isinstance(value, CoroutineType)
