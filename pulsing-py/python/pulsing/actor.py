"""The actor API of the Remote Actors Guide.

::

    from pulsing.actor import SystemConfig, create_actor_system, as_actor

    @as_actor
    class Counter:
        def __init__(self, init_value: int = 0):
            self.value = init_value

        def increment(self, n: int = 1) -> int:
            self.value += n
            return self.value

    async def main():
        async with await create_actor_system(SystemConfig.standalone()) as system:
            counter = await Counter.local(system, init_value=0)
            ref = await system.spawn(counter, "counter", public=True)
            assert await ref.increment(5) == 5

Handlers run on the asyncio loop that created the system, one message at a time per actor, in
order. Method calls on ``@as_actor`` actors are plain messages (``msg_type`` = method name,
``payload`` = ``msgpack([args, kwargs])``, reply = ``msgpack(value)``), so any language can call
a Python actor and a Python ref can call any actor that speaks the convention. Errors are the
classes of :mod:`pulsing.exceptions`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from pulsing import _codec
from pulsing import _pulsing as _native
from pulsing._local import LocalActor, MethodImpl, ReceiveImpl
from pulsing._message import Message
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
    "Actor",
    "ActorError",
    "ActorNotFoundError",
    "ActorRef",
    "ActorStoppedError",
    "ActorSystem",
    "AskTimeoutError",
    "BadMessageError",
    "MailboxFullError",
    "Message",
    "NodeUnreachableError",
    "PulsingError",
    "SystemConfig",
    "as_actor",
    "create_actor_system",
]

_T = TypeVar("_T")

DEFAULT_MAILBOX_CAPACITY = 1024
DEFAULT_MAILBOX_WAIT = 5.0


class _either:  # noqa: N801 - used like `classmethod`
    """A method callable on the class (acting on a default instance) or on an instance."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self._fn = fn
        self.__doc__ = fn.__doc__

    def __get__(self, obj: Any, owner: type) -> Callable[..., Any]:
        target = obj if obj is not None else owner()
        return self._fn.__get__(target, owner)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class SystemConfig:
    """How to start an :class:`ActorSystem`: standalone, or serving an address and joining seeds.

    ``SystemConfig.with_addr("0.0.0.0:8000")`` serves on that address (port 0 picks a free one; the
    bound address is ``system.addr``); ``.with_seeds(["host:port", ...])`` also joins the cluster
    through those nodes. ``SystemConfig.standalone()`` has no network. Each ``with_*`` returns a new
    config and works on the class or on an instance.
    """

    addr: str | None = None
    seeds: tuple[str, ...] = ()
    ask_timeout: float | None = None
    mailbox_capacity: int = DEFAULT_MAILBOX_CAPACITY

    @classmethod
    def standalone(cls) -> SystemConfig:
        """A config with no network: actors are reachable from this process only."""
        return cls()

    @_either
    def with_addr(self, addr: str) -> SystemConfig:
        """This config serving on ``addr`` (``"host:port"``, an IP host)."""
        return replace(self, addr=str(addr))

    @_either
    def with_seeds(self, seeds: list[str] | tuple[str, ...]) -> SystemConfig:
        """This config joining the cluster through ``seeds`` (``"host:port"`` each)."""
        if isinstance(seeds, str):
            seeds = [seeds]
        return replace(self, seeds=tuple(str(s) for s in seeds))

    @_either
    def with_ask_timeout(self, seconds: float) -> SystemConfig:
        """This config with a default ask timeout of ``seconds`` (default 30 s)."""
        return replace(self, ask_timeout=float(seconds))

    @_either
    def with_mailbox_capacity(self, capacity: int) -> SystemConfig:
        """This config with Python actors' mailboxes holding at most ``capacity`` messages."""
        return replace(self, mailbox_capacity=max(1, int(capacity)))


class Actor:
    """Base class of actors that handle raw :class:`Message` objects.

    Override :meth:`receive` (``def`` or ``async def``). It runs on the system's asyncio loop, one
    message at a time, in arrival order, and returns the reply: a :class:`Message` (possibly
    ``Message.stream(...)``) or ``None`` (an empty reply). An exception it raises reaches the
    caller as :class:`ActorError`; the actor keeps its state and goes on.
    """

    def receive(self, msg: Message) -> Message | None | Awaitable[Message | None]:
        """Handles one message and returns the reply."""
        raise NotImplementedError(f"{type(self).__name__} must override receive()")

    async def on_start(self) -> None:
        """Runs once when the actor is spawned, before its first message."""

    async def on_stop(self) -> None:
        """Runs once when the actor is stopped or its system shuts down."""


def as_actor(cls: type[_T]) -> type[_T]:
    """Makes the instances of ``cls`` spawnable actors whose public methods are called through refs.

    Adds ``await cls.local(system, *args, **kwargs)``, which builds an instance to pass to
    :meth:`ActorSystem.spawn`. On any :class:`ActorRef` to such an actor, ``await
    ref.method(*args, **kwargs)`` calls the method (``def`` or ``async def``) and returns its
    value; a (async) generator method streams: ``async for item in ref.method(...)``. Arguments and
    values are None, bool, int, float, str, bytes, list, tuple or dict.
    """
    if not isinstance(cls, type):
        raise TypeError("@as_actor decorates a class")

    async def local(owner: type[_T], system: ActorSystem, *args: Any, **kwargs: Any) -> _T:
        """An instance of this actor class, built with ``*args, **kwargs``, ready to spawn."""
        if not isinstance(system, ActorSystem):
            raise TypeError(f"local() takes an ActorSystem, not {type(system).__name__}")
        return owner(*args, **kwargs)

    local.__qualname__ = f"{cls.__qualname__}.local"
    cls.local = classmethod(local)  # type: ignore[attr-defined]
    cls.__pulsing_as_actor__ = True  # type: ignore[attr-defined]
    return cls


class _Call:
    """A method call on a ref: ``await`` it for the value, or ``async for`` over a streamed reply.

    It is also a coroutine (``send``/``throw``/``close``), so ``asyncio.gather`` and
    ``create_task`` run it as it is instead of wrapping it in one more coroutine. Nothing is sent
    until it is awaited or iterated.
    """

    __slots__ = ("_ref", "_name", "_payload", "_coro")

    def __init__(self, ref: ActorRef, name: str, payload: bytes) -> None:
        self._ref = ref
        self._name = name
        self._payload = payload
        self._coro: Any = None

    def _start(self) -> Any:
        coro = self._coro
        if coro is None:
            coro = self._coro = self._ref._invoke(self._name, self._payload)
        return coro

    def __await__(self) -> Any:
        return self._start().__await__()

    def send(self, value: Any) -> Any:
        """Coroutine protocol: runs the call (see :meth:`__await__`)."""
        return self._start().send(value)

    def throw(self, *exc: Any) -> Any:
        """Coroutine protocol: raises ``exc`` inside the running call."""
        return self._start().throw(*exc)

    def close(self) -> None:
        """Coroutine protocol: abandons the call."""
        if self._coro is not None:
            self._coro.close()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._ref._invoke_stream(self._name, self._payload)


Coroutine.register(_Call)


class _CoreCall(asyncio.Future):  # type: ignore[type-arg]
    """A method call through the core runtime (a remote actor, or any actor behind a core ref).

    It is an asyncio future: ``await`` it for the value, or hand it to ``asyncio.gather``,
    ``wait_for``, ``as_completed``, ``shield`` or ``ensure_future``, which take it as it is
    instead of wrapping it in a task; ``async for`` over it iterates a streamed reply. It also
    speaks the coroutine protocol, so ``create_task`` takes it too (and ``asyncio.wait``, which
    refuses coroutines, takes such a task). The call is sent when first awaited or handed to
    asyncio (a done-callback is added), not when created. The hub's drain resolves it with the
    decoded value, so awaiting it costs no step of its own.
    """

    __slots__ = ("_ref", "_name", "_payload", "_it")

    def __init__(self, ref: ActorRef, name: str, payload: bytes) -> None:
        super().__init__(loop=ref._system._loop)
        self._ref: ActorRef | None = ref
        self._name = name
        self._payload = payload
        self._it: Any = None

    def _send(self) -> None:
        ref = self._ref
        self._ref = None
        if ref is None or self.done():
            return
        system = ref._system
        try:
            if system._closed:
                raise ActorStoppedError("the actor system is shut down")
            ref._core().call(system._hub, self, self._name, self._payload, system._ask_timeout)
        except BaseException as exc:
            self.set_exception(exc)

    def __await__(self) -> Any:
        if self._ref is not None:
            self._send()
        return super().__await__()

    __iter__ = __await__

    def add_done_callback(self, fn: Callable[[Any], object], *, context: Any = None) -> None:
        """Future protocol: ``fn(self)`` once the call has finished; sends the call."""
        if self._ref is not None:
            self._send()
        super().add_done_callback(fn, context=context)

    # -- the coroutine protocol, for `create_task` ---------------------------------------------

    def send(self, value: Any) -> Any:
        """Coroutine protocol: runs the call (see :meth:`__await__`)."""
        it = self._it
        if it is None:
            it = self._it = self.__await__()
        return it.send(value)

    def throw(self, *exc: Any) -> Any:
        """Coroutine protocol: raises ``exc`` inside the waiting call."""
        it = self._it
        if it is None:
            it = self._it = self.__await__()
        return it.throw(*exc)

    def close(self) -> None:
        """Coroutine protocol: abandons the wait."""
        if self._it is not None:
            self._it.close()

    def __aiter__(self) -> AsyncIterator[Any]:
        return _iterate_call(self)

    def __repr__(self) -> str:
        state = "pending" if not self.done() else "done"
        return f"<call {self._name}() {state}>"


async def _iterate_call(call: _CoreCall) -> AsyncIterator[Any]:
    items = await call
    if not hasattr(items, "__aiter__"):
        raise TypeError(f"{call._name}() did not reply with a stream; await it instead")
    async for item in items:
        yield item


Coroutine.register(_CoreCall)


class _Method:
    __slots__ = ("_ref", "_name")

    def __init__(self, ref: ActorRef, name: str) -> None:
        self._ref = ref
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        ref = self._ref
        payload = _codec.encode_call(self._name, args, kwargs)
        local = ref._local
        if local is not None and not local.impl.may_stream(self._name):
            # A local method known not to stream: a plain coroutine, which `gather` and
            # `create_task` take without wrapping it.
            return _call_local(ref, local, self._name, payload)
        if local is None:
            return _CoreCall(ref, self._name, payload)
        return _Call(ref, self._name, payload)


async def _call_local(ref: ActorRef, local: LocalActor, name: str, payload: bytes) -> Any:
    """A method call on a local actor; runs the handler right here when the actor is idle, the
    method is synchronous and we are on the actor's loop (see ``pulsing._local``)."""
    if (
        not local.busy
        and not local.stopped
        and not local.impl.is_async(name)
        and asyncio.get_running_loop() is local.loop
    ):
        reply = local._run_inline(name, payload)
    else:
        reply = await ref._ask(name, payload, ref._system._ask_timeout)
    if reply._items is not None:
        return _decoded_items(reply)
    return _codec.decode_value(reply._payload)

    def __repr__(self) -> str:
        return f"<method {self._name} of {self._ref!r}>"


class ActorRef:
    """A handle to an actor, in this process or on another node, with one API for both.

    ``await ref.ask(msg)`` / ``await ref.tell(msg)`` send :class:`Message` objects; for an
    ``@as_actor`` actor, ``await ref.some_method(*args)`` calls a method (any attribute not
    defined here is taken as a method name; use :meth:`call` for names like ``ask``).
    """

    def __init__(self, system: ActorSystem, name: str, local: LocalActor | None, native: Any) -> None:
        self._system = system
        self._local = local
        self._native = native
        self.name = name
        """The actor's name."""

    @property
    def is_local(self) -> bool:
        """Whether the actor runs in this process."""
        return self._local is not None or bool(self._native is not None and self._native.is_local)

    def __getattr__(self, name: str) -> _Method:
        if name.startswith("_"):
            raise AttributeError(name)
        method = _Method(self, name)
        self.__dict__[name] = method
        return method

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``ref.call("name", *args)`` is ``ref.name(*args)``, for any method name."""
        return _Method(self, method)(*args, **kwargs)

    async def ask(self, msg: Message, timeout: float | None = None) -> Message:
        """Sends ``msg`` and returns the reply (``async for`` over it if ``reply.is_stream``).

        Waits at most ``timeout`` seconds (default: the system's ask timeout, 30 s).

        Raises:
            AskTimeoutError: no reply in time (the message may have been handled).
            ActorError: the handler raised.
            ActorNotFoundError, NodeUnreachableError, MailboxFullError, ActorStoppedError,
            BadMessageError: the message was not delivered.
        """
        if type(msg) is not Message:
            raise TypeError(f"ask takes a Message, not {type(msg).__name__}")
        if msg._items is not None:
            raise BadMessageError("a request must be a single message, not a stream")
        if timeout is None:
            timeout = self._system._ask_timeout
        return await self._ask(msg._msg_type, msg._payload, timeout)

    async def tell(self, msg: Message) -> None:
        """Queues ``msg`` without waiting for it to be handled; a handler error is only logged.

        Raises:
            ActorNotFoundError, NodeUnreachableError, MailboxFullError, ActorStoppedError: not
            delivered.
        """
        if type(msg) is not Message:
            raise TypeError(f"tell takes a Message, not {type(msg).__name__}")
        if msg._items is not None:
            raise BadMessageError("a request must be a single message, not a stream")
        local = self._local
        if local is not None and self._on_loop(local):
            await local.tell(msg._msg_type, msg._payload)
            return
        system = self._system
        if system._closed:
            raise ActorStoppedError("the actor system is shut down")
        fut = system._loop.create_future()
        self._core().tell(system._hub, fut, msg._msg_type, msg._payload)
        await fut

    def _on_loop(self, local: LocalActor) -> bool:
        try:
            return asyncio.get_running_loop() is local.loop
        except RuntimeError:
            return False

    def _core(self) -> Any:
        native = self._native if self._native is not None else self._local.native  # type: ignore[union-attr]
        if native is None:
            raise ActorStoppedError(f"actor {self.name} is not running")
        return native

    async def _ask(self, msg_type: str, payload: bytes, timeout: float) -> Message:
        local = self._local
        if local is not None:
            if asyncio.get_running_loop() is not local.loop:
                raise PulsingError(
                    f"actor {self.name} runs on another event loop; call it from the loop that "
                    "created its system"
                )
            return await local.ask(msg_type, payload, timeout)
        system = self._system
        if system._closed:
            raise ActorStoppedError("the actor system is shut down")
        fut = system._loop.create_future()
        self._core().ask(system._hub, fut, msg_type, payload, timeout)
        reply = await fut
        if type(reply) is tuple:
            return Message(reply[0], reply[1])
        return Message("", b"", _items=_native_items(system, reply))

    async def _invoke(self, name: str, payload: bytes) -> Any:
        # Calls through the core runtime are `_CoreCall`s; this is a local actor's (maybe
        # streaming) method.
        reply = await self._ask(name, payload, self._system._ask_timeout)
        if reply._items is not None:
            return _decoded_items(reply)
        return _codec.decode_value(reply._payload)

    async def _invoke_stream(self, name: str, payload: bytes) -> AsyncIterator[Any]:
        reply = await self._ask(name, payload, self._system._ask_timeout)
        async for item in reply:
            yield _codec.decode_value(item._payload)

    def __repr__(self) -> str:
        where = "local" if self._local is not None else repr(self._native)
        return f"ActorRef({self.name!r}, {where})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ActorRef):
            return NotImplemented
        if self._local is not None or other._local is not None:
            return self._local is other._local
        return repr(self._native) == repr(other._native)

    def __hash__(self) -> int:
        return hash(self.name)


async def _decoded_items(reply: Message) -> AsyncIterator[Any]:
    async for item in reply:
        yield _codec.decode_value(item._payload)


async def _native_items(system: ActorSystem, stream: Any) -> AsyncIterator[Message]:
    hub, loop = system._hub, system._loop
    while True:
        fut = loop.create_future()
        stream.next(hub, fut)
        item = await fut
        if item is None:
            return
        yield Message(item[0], item[1])


class ActorSystem:
    """A set of actors plus, when configured, the network that connects them to other nodes.

    Create one with ``await create_actor_system(config)`` on a running asyncio loop; Python actors
    spawned on it run on that loop. Use it as ``async with system:`` or call :meth:`shutdown`.
    """

    def __init__(self, config: SystemConfig, loop: asyncio.AbstractEventLoop) -> None:
        self._config = config
        self._loop = loop
        self._by_id: dict[int, LocalActor] = {}
        self._by_name: dict[str, LocalActor] = {}
        self._ids = itertools.count(1)
        self._hub = _native.Hub(self._deliver, _codec.decode_value, self._method_stream)
        self._native: Any = None
        self._ask_timeout = 30.0
        self._closed = False

    async def _start(self) -> None:
        loop = self._loop
        loop.add_reader(self._hub.fileno(), self._hub.drain)
        fut = loop.create_future()
        config = self._config
        try:
            _native.build_system(
                self._hub, fut, config.addr, list(config.seeds), config.ask_timeout
            )
            self._native = await fut
        except BaseException:
            self._close_hub()
            raise
        self._ask_timeout = self._native.ask_timeout

    def _method_stream(self, stream: Any) -> AsyncIterator[Any]:
        return _decoded_items(Message("", b"", _items=_native_items(self, stream)))

    def _deliver(self, actor_id: int, msg_type: str, payload: bytes, reply: Any) -> None:
        local = self._by_id.get(actor_id)
        if local is None:
            if reply is not None:
                reply.error("ActorStoppedError", "the Python actor is gone")
        else:
            local.deliver(msg_type, payload, reply)

    def _close_hub(self) -> None:
        if not self._closed:
            self._closed = True
            self._loop.remove_reader(self._hub.fileno())
            self._hub.close()

    @property
    def addr(self) -> str | None:
        """The address this node serves on (``"host:port"``), ``None`` when standalone."""
        return self._native.addr if self._native is not None else None

    @property
    def config(self) -> SystemConfig:
        """The config this system was created with."""
        return self._config

    async def _call(self, method: str, *args: Any) -> Any:
        if self._closed:
            raise ActorStoppedError("the actor system is shut down")
        fut = self._loop.create_future()
        getattr(self._native, method)(self._hub, fut, *args)
        return await fut

    async def spawn(self, actor: Any, name: str, *, public: bool = False) -> ActorRef:
        """Starts ``actor`` (an :class:`Actor` or an ``@as_actor`` instance) under ``name``.

        A public actor can be found and called from other nodes; a private one (the default) only
        from this process.

        Raises:
            TypeError: ``actor`` is neither kind.
            PulsingError: the name is taken (``"already exists"``) or invalid (BadMessageError).
            ActorStoppedError: the system is shut down.
        """
        if isinstance(actor, Actor):
            impl: ReceiveImpl | MethodImpl = ReceiveImpl(actor)
        elif getattr(type(actor), "__pulsing_as_actor__", False):
            impl = MethodImpl(actor)
        else:
            raise TypeError(
                f"spawn takes an Actor or an @as_actor instance, not {type(actor).__name__}"
            )
        if name in self._by_name:
            raise PulsingError(f"an actor named {name} already exists on this node")
        actor_id = next(self._ids)
        local = LocalActor(
            name,
            actor_id,
            impl,
            self._loop,
            self._hub,
            self._config.mailbox_capacity,
            DEFAULT_MAILBOX_WAIT,
        )
        if isinstance(actor, Actor):
            await actor.on_start()
        self._by_id[actor_id] = local
        try:
            local.native = await self._call("spawn", name, bool(public), actor_id)
        except BaseException:
            del self._by_id[actor_id]
            raise
        self._by_name[name] = local
        return ActorRef(self, name, local, None)

    async def find(self, name: str) -> ActorRef | None:
        """A ref to the actor ``name``: a local actor first, else a public actor of the cluster;
        ``None`` if there is none."""
        local = self._by_name.get(name)
        if local is not None:
            return ActorRef(self, name, local, None)
        if self._closed:
            return None
        native = await self._call("find", name)
        if native is None:
            return None
        return ActorRef(self, name, None, native)

    async def has_actor(self, name: str) -> bool:
        """Whether :meth:`find` would find ``name``; ``False`` for another node's private actor."""
        return await self.find(name) is not None

    def remote_ref(self, addr: str, name: str) -> ActorRef:
        """A ref to the actor ``name`` on the node serving ``addr``, without asking the cluster."""
        return ActorRef(self, name, None, self._native.remote_ref(addr, name))

    async def stop(self, name: str) -> None:
        """Stops the local actor ``name``; queued messages fail with :class:`ActorStoppedError`.

        Raises:
            ActorNotFoundError: no local actor has this name.
        """
        local = self._by_name.pop(name, None)
        if local is None:
            raise ActorNotFoundError(f"actor not found: {name}")
        await self._stop_local(local)
        await self._call("stop", name)

    async def _stop_local(self, local: LocalActor) -> None:
        local.stop()
        self._by_id.pop(local.actor_id, None)
        target = local.impl.target
        if isinstance(target, Actor):
            try:
                await target.on_stop()
            except Exception:  # an on_stop failure must not keep the others from stopping
                import logging

                logging.getLogger("pulsing").exception("actor %s: on_stop failed", local.name)

    async def shutdown(self) -> None:
        """Stops every actor, leaves the cluster and closes the network; calling it again does
        nothing. Calls still waiting fail with :class:`ActorStoppedError`."""
        if self._closed:
            return
        locals_ = list(self._by_name.values())
        self._by_name.clear()
        for local in locals_:
            await self._stop_local(local)
        try:
            await self._call("shutdown")
        finally:
            self._close_hub()

    async def __aenter__(self) -> ActorSystem:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    def __repr__(self) -> str:
        return f"ActorSystem(addr={self.addr!r}, actors={sorted(self._by_name)})"


async def create_actor_system(config: SystemConfig | None = None) -> ActorSystem:
    """Starts an actor system on the running asyncio loop (standalone when ``config`` is None).

    Raises:
        PulsingError: the config cannot be served (bad address, port taken, no transport in this
            build, seeds unreachable...).
    """
    if config is None:
        config = SystemConfig.standalone()
    system = ActorSystem(config, asyncio.get_running_loop())
    await system._start()
    return system
