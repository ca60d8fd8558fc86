"""Python actors on the asyncio loop: one mailbox per actor, handlers run one at a time, in order.

A Python actor lives on the loop that created its system. Its mailbox (:class:`LocalActor`) is a
deque on that loop and is the only queue the actor has: local callers on the loop append to it
directly (no thread hop), and messages from the core system (other nodes, Rust callers) arrive
through the hub's ``drain`` and are appended to the same deque. So messages from every source are
handled in one order, one at a time.

Fast path: when the actor is idle and the handler is synchronous, a caller on the loop runs it
right away in its own task, which is indistinguishable from queueing it (nothing else could run on
the loop in between) and costs no scheduling at all.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from types import AsyncGeneratorType, CoroutineType, GeneratorType
from typing import Any

from pulsing import _codec
from pulsing._message import Message
from pulsing.exceptions import (
    ActorError,
    ActorStoppedError,
    AskTimeoutError,
    BadMessageError,
    MailboxFullError,
)

__all__ = ["LocalActor", "MethodImpl", "ReceiveImpl", "actor_error"]

log = logging.getLogger("pulsing")

_Future = asyncio.Future


def actor_error(exc: BaseException) -> ActorError:
    """The :class:`ActorError` a caller sees for ``exc`` raised by a handler."""
    if isinstance(exc, ActorError) and exc.type_name is not None:
        return exc
    type_name = type(exc).__name__
    message = str(exc)
    return ActorError(f"{type_name}: {message}", type_name, message)


class ReceiveImpl:
    """Adapts an :class:`~pulsing.actor.Actor` (``receive(msg) -> Message``)."""

    __slots__ = ("_receive", "_is_async", "target")

    def __init__(self, actor: Any) -> None:
        self.target = actor
        self._receive = actor.receive
        self._is_async = inspect.iscoroutinefunction(self._receive)

    def is_async(self, msg_type: str) -> bool:
        """Whether handling ``msg_type`` may await (and so needs a task)."""
        return self._is_async

    def may_stream(self, msg_type: str) -> bool:
        """Whether the reply to ``msg_type`` may be a stream (always, for ``receive``)."""
        return True

    def handle(self, msg_type: str, payload: bytes) -> Any:
        """The reply :class:`Message`, or a coroutine that returns it."""
        result = self._receive(Message(msg_type, payload))
        if self._is_async or inspect.isawaitable(result):
            return _finish_receive(result)
        return _as_reply(result)


async def _finish_receive(result: Any) -> Message:
    return _as_reply(await result)


def _as_reply(result: object) -> Message:
    if type(result) is Message:
        return result
    if result is None:
        return Message("", b"")
    raise BadMessageError(f"receive must return a Message or None, not {type(result).__name__}")


# Per-class cache of how each method runs: True if it is a coroutine function.
_ASYNC_METHODS: dict[type, dict[str, bool]] = {}
# Per-class cache: whether a method may reply with a stream.
_STREAMING: dict[type, dict[str, bool]] = {}


class MethodImpl:
    """Adapts an ``@as_actor`` instance: ``msg_type`` names the method, the payload holds
    ``msgpack([args, kwargs])``, the reply holds ``msgpack(value)``; a generator method's reply is a
    stream of ``msgpack(item)``."""

    __slots__ = ("target", "_kinds", "_cls_name")

    def __init__(self, obj: Any) -> None:
        self.target = obj
        cls = type(obj)
        self._kinds = _ASYNC_METHODS.setdefault(cls, {})
        self._cls_name = cls.__name__

    def is_async(self, msg_type: str) -> bool:
        """Whether the method ``msg_type`` is a coroutine function."""
        kind = self._kinds.get(msg_type)
        if kind is None:
            fn = getattr(self.target, msg_type, None) if not msg_type.startswith("_") else None
            kind = inspect.iscoroutinefunction(fn)
            if fn is not None:
                self._kinds[msg_type] = kind
        return kind

    def may_stream(self, msg_type: str) -> bool:
        """Whether the method ``msg_type`` may reply with a stream: a generator function, or a
        name this class does not define plainly (decided by the call)."""
        kind = _STREAMING.get(type(self.target), {}).get(msg_type)
        if kind is None:
            fn = getattr(type(self.target), msg_type, None)
            kind = fn is None or not inspect.isfunction(fn) or (
                inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)
            )
            _STREAMING.setdefault(type(self.target), {})[msg_type] = kind
        return kind

    def method(self, name: str) -> Any:
        """The bound public method ``name``; an ``AttributeError`` naming it if there is none."""
        fn = None if name.startswith("_") else getattr(self.target, name, None)
        if fn is None or not callable(fn):
            raise AttributeError(f"actor {self._cls_name!r} has no method {name!r}")
        return fn

    def handle(self, msg_type: str, payload: bytes) -> Any:
        """The reply :class:`Message`, or a coroutine that returns it."""
        fn = self.method(msg_type)
        args, kwargs = _codec.decode_call(payload)
        result = fn(*args, **kwargs)
        if type(result) is CoroutineType:
            return _finish_method(msg_type, result)
        return method_reply(msg_type, result)


async def _finish_method(name: str, coro: Any) -> Message:
    return method_reply(name, await coro)


def method_reply(name: str, value: object) -> Message:
    """The reply message for a method's return value (a stream for a generator)."""
    kind = type(value)
    if kind is GeneratorType or kind is AsyncGeneratorType:
        return Message(name, b"", _items=_encoded_items(name, value))
    return Message(name, _codec.encode_value(value, f"return value of {name}()"))


async def _encoded_items(name: str, items: Any) -> Any:
    what = f"item streamed by {name}()"
    if inspect.isasyncgen(items):
        async for item in items:
            yield Message(name, _codec.encode_value(item, what))
    else:
        for item in items:
            yield Message(name, _codec.encode_value(item, what))


class LocalActor:
    """The mailbox and runner of one Python actor (see the module docs).

    Each queued entry is ``(msg_type, payload, reply)`` where ``reply`` is an asyncio future (a
    local ask), a native ``ReplyHandle`` (a message from the core system) or ``None`` (a tell).
    """

    __slots__ = (
        "name",
        "actor_id",
        "impl",
        "loop",
        "hub",
        "native",
        "queue",
        "busy",
        "stopped",
        "capacity",
        "mailbox_wait",
        "_room",
        "_task",
    )

    def __init__(
        self,
        name: str,
        actor_id: int,
        impl: ReceiveImpl | MethodImpl,
        loop: asyncio.AbstractEventLoop,
        hub: Any,
        capacity: int,
        mailbox_wait: float,
    ) -> None:
        self.name = name
        self.actor_id = actor_id
        self.impl = impl
        self.loop = loop
        self.hub = hub
        self.native: Any = None
        self.queue: deque[tuple[str, bytes, Any]] = deque()
        # True while a handler runs or a runner is scheduled; the queue is empty when it is False.
        self.busy = False
        self.stopped = False
        self.capacity = capacity
        self.mailbox_wait = mailbox_wait
        self._room: deque[_Future[None]] = deque()
        # The runner task while an asynchronous handler runs; cancelled by `stop`.
        self._task: asyncio.Task[None] | None = None

    # -- sending -------------------------------------------------------------------------------

    async def ask(self, msg_type: str, payload: bytes, timeout: float) -> Message:
        """Handles ``(msg_type, payload)`` and returns the reply, waiting at most ``timeout``.

        Must be called on :attr:`loop`. Raises the handler's error as :class:`ActorError`.
        """
        if self.stopped:
            raise ActorStoppedError(f"actor {self.name} stopped")
        if not self.busy and not self.impl.is_async(msg_type):
            return self._run_inline(msg_type, payload)
        if len(self.queue) >= self.capacity:
            await self._wait_for_room()
        loop = self.loop
        fut: _Future[Message] = loop.create_future()
        self._push(msg_type, payload, fut)
        timer = loop.call_later(timeout, _expire, fut, timeout)
        try:
            return await fut
        finally:
            timer.cancel()

    async def tell(self, msg_type: str, payload: bytes) -> None:
        """Queues ``(msg_type, payload)`` without waiting for it to be handled."""
        if self.stopped:
            raise ActorStoppedError(f"actor {self.name} stopped")
        if len(self.queue) >= self.capacity:
            await self._wait_for_room()
        self._push(msg_type, payload, None)

    def deliver(self, msg_type: str, payload: bytes, reply: Any) -> None:
        """Queues a message from the core system (called by the hub's drain, on the loop)."""
        if self.stopped:
            if reply is not None:
                reply.error("ActorStoppedError", f"actor {self.name} stopped")
            return
        if len(self.queue) >= self.capacity:
            # The core hands messages over without waiting for their replies, so this is where a
            # flood from other nodes meets the mailbox's bound: refuse rather than queue without end.
            what = f"mailbox of actor {self.name} is full; the message was not delivered"
            if reply is None:
                log.warning("actor %s: a told %r was dropped: %s", self.name, msg_type, what)
            else:
                reply.full(what)
            return
        self.queue.append((msg_type, payload, reply))
        if not self.busy:
            # Already in a loop callback (the drain): handle it now rather than one turn later.
            self.busy = True
            self._pump()

    def _push(self, msg_type: str, payload: bytes, reply: Any) -> None:
        self.queue.append((msg_type, payload, reply))
        if not self.busy:
            self.busy = True
            self.loop.call_soon(self._pump)

    async def _wait_for_room(self) -> None:
        deadline = self.loop.time() + self.mailbox_wait
        while len(self.queue) >= self.capacity:
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                raise MailboxFullError(
                    f"mailbox of actor {self.name} is full; the message was not delivered"
                )
            fut: _Future[None] = self.loop.create_future()
            self._room.append(fut)
            timer = self.loop.call_later(remaining, _wake, fut)
            try:
                await fut
            finally:
                timer.cancel()
            if self.stopped:
                raise ActorStoppedError(f"actor {self.name} stopped")

    # -- running -------------------------------------------------------------------------------

    def _run_inline(self, msg_type: str, payload: bytes) -> Message:
        self.busy = True
        try:
            reply = self.impl.handle(msg_type, payload)
        except BaseException as exc:
            self._release()
            raise actor_error(exc) from None
        if inspect.iscoroutine(reply):
            # A synchronous-looking handler returned an awaitable: finish it on the runner, in order.
            reply.close()
            self._release()
            raise actor_error(
                TypeError(f"handler for {msg_type!r} returned a coroutine; declare it async")
            )
        self._release()
        return reply  # type: ignore[no-any-return]

    def _release(self) -> None:
        if self.queue:
            self.loop.call_soon(self._pump)
        else:
            self.busy = False

    def _next(self) -> tuple[str, bytes, Any] | None:
        queue = self.queue
        while queue:
            entry = queue.popleft()
            if self._room:
                _wake(self._room.popleft())
            reply = entry[2]
            # A local ask whose caller gave up (timeout, cancelled) is skipped.
            if type(reply) is _Future and reply.done():
                continue
            return entry
        return None

    def _pump(self) -> None:
        """Handles queued messages with synchronous handlers; hands over to a task at the first
        asynchronous one."""
        impl = self.impl
        while self.queue:
            if impl.is_async(self.queue[0][0]):
                self._task = self.loop.create_task(self._run())
                return
            entry = self._next()
            if entry is None:
                break
            pending = self._handle(entry)
            if pending is not None:
                self._task = self.loop.create_task(self._run(entry, pending))
                return
        self.busy = False

    async def _run(self, current: Any = None, pending: Any = None) -> None:
        try:
            if current is not None:
                await self._finish(current, pending)
            while True:
                entry = self._next()
                if entry is None:
                    break
                pending = self._handle(entry)
                if pending is not None:
                    await self._finish(entry, pending)
        finally:
            self._task = None
            self.busy = False
            if self.queue and not self.stopped:
                self.busy = True
                self.loop.call_soon(self._pump)

    def _handle(self, entry: tuple[str, bytes, Any]) -> Any:
        """Runs the handler for ``entry`` and answers it, unless the handler returned a coroutine:
        that is returned, for the caller to finish with :meth:`_finish`."""
        msg_type, payload, reply = entry
        try:
            result = self.impl.handle(msg_type, payload)
        except BaseException as exc:
            self._fail(reply, msg_type, exc)
            return None
        if inspect.iscoroutine(result):
            return result
        self._answer(reply, result)
        return None

    async def _finish(self, entry: tuple[str, bytes, Any], coro: Any) -> None:
        try:
            result = await coro
        except asyncio.CancelledError:
            self._fail(entry[2], entry[0], ActorStoppedError(f"actor {self.name} stopped"))
            raise
        except BaseException as exc:
            self._fail(entry[2], entry[0], exc)
            return
        self._answer(entry[2], result)

    def _answer(self, reply: Any, msg: Message) -> None:
        if reply is None:
            return
        if type(reply) is _Future:
            if not reply.done():
                reply.set_result(msg)
        elif msg._items is not None:
            writer = reply.stream()
            self.loop.create_task(_pump_stream(self.hub, self.loop, writer, msg))
        else:
            reply.ok(msg._msg_type, msg._payload)

    def _fail(self, reply: Any, msg_type: str, exc: BaseException) -> None:
        if reply is None:
            log.warning("actor %s: handler for %r failed on a tell: %r", self.name, msg_type, exc)
            return
        err = actor_error(exc)
        if type(reply) is _Future:
            if not reply.done():
                reply.set_exception(err)
        else:
            reply.error(err.type_name, err.message)

    # -- stopping ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Refuses new messages, fails the queued ones with :class:`ActorStoppedError` and cancels a
        handler still running (its caller gets :class:`ActorStoppedError` too)."""
        self.stopped = True
        if self._task is not None:
            self._task.cancel()
        while self.queue:
            _, _, reply = self.queue.popleft()
            err = ActorStoppedError(f"actor {self.name} stopped before handling the message")
            if reply is None:
                continue
            if type(reply) is _Future:
                if not reply.done():
                    reply.set_exception(err)
            else:
                reply.error("ActorStoppedError", str(err))
        while self._room:
            _wake(self._room.popleft())


def _expire(fut: _Future[Any], timeout: float) -> None:
    if not fut.done():
        fut.set_exception(
            AskTimeoutError(f"ask timed out after {timeout}s; the message may have been delivered")
        )


def _wake(fut: _Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _pump_stream(hub: Any, loop: asyncio.AbstractEventLoop, writer: Any, msg: Message) -> None:
    """Copies a streamed reply into a native stream, item by item, keeping its back-pressure."""
    try:
        async for item in msg:
            fut = loop.create_future()
            writer.send(hub, fut, item._msg_type, item._payload)
            await fut
    except ActorStoppedError:
        return  # the reader went away: stop producing
    except Exception as exc:
        err = actor_error(exc)
        fut = loop.create_future()
        writer.fail(hub, fut, err.type_name, err.message)
        await fut
        return
    fut = loop.create_future()
    writer.end(hub, fut)
    await fut
