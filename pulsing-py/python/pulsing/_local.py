"""Python actors on the asyncio loop: one mailbox per actor, handlers run one at a time, in order.

A Python actor lives on the loop that created its system. Its mailbox (:class:`LocalActor`) is a
deque on that loop and is the only queue the actor has: local callers on the loop append to it
directly (no thread hop), and messages from the core system (other nodes, Rust callers) arrive
through the hub's ``drain`` and are appended to the same deque. So messages from every source are
handled in one order, one at a time.

**One at a time includes streams**: a handler whose reply is a stream (a generator method, or a
``Message.stream``) holds the actor's turn until the stream ends, fails or its reader goes away.
A reader that stops reading therefore holds the actor; the stream send timeout bounds that, after
which the stream fails at the reader and the actor goes on.

**Bounds**: the deque holds at most ``capacity`` messages from callers on this loop (a full
mailbox makes them wait up to the mailbox wait, then ``MailboxFullError``). Messages from the core
come through the actor's proxy, which may hand over at most ``capacity`` of them before Python has
taken them out of the deque (credits, returned in one call per batch taken): beyond that they wait
in the proxy's core mailbox, where senders wait for room exactly as for a Rust actor.

**Skipped when abandoned**: a message whose sender gave up (timeout, cancellation) before the actor
reached it is skipped; a core one is counted as expired.

Fast path: when the actor is idle and the handler is synchronous, a caller on the loop runs it
right away in its own task, which is indistinguishable from queueing it (nothing else could run on
the loop in between) and costs no scheduling at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import traceback
from collections import deque
from typing import TYPE_CHECKING, Any

from pulsing import _pulsing as _native
from pulsing._codec import Pack
from pulsing._impl import Impl, is_coroutine
from pulsing._message import Message
from pulsing._reply import FutureReply, LocalStream, NativeWriter, Reply, TellReply, log
from pulsing.exceptions import (
    ActorError,
    ActorStoppedError,
    AskTimeoutError,
    MailboxFullError,
    make_actor_error,
)

if TYPE_CHECKING:
    from pulsing._system import ActorSystem

__all__ = ["CURRENT", "LocalActor", "describe"]

_Entry = tuple[str, bytes, Reply]
_CoreReply = _native.ReplyHandle

CURRENT: contextvars.ContextVar[LocalActor | None] = contextvars.ContextVar(
    "pulsing_current_actor", default=None
)
"""The actor whose handler is running in this context (what ``current_actor()`` returns)."""


def describe(exc: BaseException) -> tuple[str, str, str]:
    """``(type_name, message, formatted traceback)`` of a handler's exception."""
    if isinstance(exc, ActorError) and exc.type_name is not None:
        # An error from an actor this handler called: passed on as it came.
        return exc.type_name, exc.message, exc.remote_traceback or ""
    return (
        type(exc).__name__,
        str(exc),
        "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    )


class LocalActor:
    """The mailbox and runner of one Python actor (see the module docs).

    Each queued entry is ``(msg_type, payload, reply)``, ``reply`` following the
    :class:`~pulsing._reply.Reply` protocol.
    """

    __slots__ = (
        "_local_default",
        "_remote_default",
        "_room",
        "_task",
        "_waiting",
        "actor_id",
        "anonymous",
        "busy",
        "capacity",
        "credits",
        "hub",
        "impl",
        "loop",
        "mailbox_wait",
        "name",
        "native",
        "owed",
        "public",
        "queue",
        "stopped",
        "stream_timeout",
        "system",
        "tell_reply",
    )

    def __init__(  # noqa: PLR0917 - built in one place, by ActorSystem.spawn
        self,
        name: str,
        actor_id: int,
        public: bool,
        impl: Impl,
        system: ActorSystem,
        credits: Any,
    ) -> None:
        config = system.config
        self.name = name
        self.actor_id = actor_id
        self.public = public
        self.impl = impl
        self.system = system
        self.loop = system._loop
        self.hub = system._hub
        self.native: Any = None
        self.credits = credits
        # Credits of core messages taken out of the mailbox and not returned yet (see _repay).
        self.owed = 0
        self.queue: deque[_Entry] = deque()
        # True while a handler runs or a runner is scheduled; the queue is empty when it is False.
        self.busy = False
        self.stopped = False
        # Spawned without a name: reachable only through its ref (so its ref may leave the node).
        self.anonymous = False
        self.capacity = config.mailbox_capacity
        self.mailbox_wait = config.mailbox_wait
        self.stream_timeout = config.stream_send_timeout
        self.tell_reply = TellReply(name)
        self._room: deque[asyncio.Future[None]] = deque()
        # Tasks of calls waiting for room in a full mailbox (kept so they are not collected).
        self._waiting: set[asyncio.Task[None]] = set()
        # The runner task while an asynchronous handler or a stream runs; cancelled by `stop`.
        self._task: asyncio.Task[None] | None = None
        self._local_default: Pack = system._encode_local
        self._remote_default: Pack = system._encode_remote

    # -- sending -------------------------------------------------------------------------------

    def calls_itself(self) -> bool:
        """Whether the running code is this actor's own (asynchronous) handler, which would wait
        forever for a reply from this actor: only the runner task can deadlock on itself."""
        return self.busy and self._task is not None and asyncio.current_task() is self._task

    async def ask(self, msg_type: str, payload: bytes, timeout: float) -> Message:
        """Handles ``(msg_type, payload)`` and returns the reply, waiting at most ``timeout``.

        Must be called on :attr:`loop`. Raises the handler's error as :class:`ActorError`.
        """
        if self.stopped:
            raise ActorStoppedError(f"actor {self.name} stopped")
        if self.busy and self.calls_itself():
            raise self_call_error(self.name, msg_type)
        impl = self.impl
        if not self.busy and not impl.is_async(msg_type) and not impl.may_stream(msg_type):
            return self.run_inline(msg_type, payload)
        if len(self.queue) >= self.capacity:
            await self._wait_for_room()
        loop = self.loop
        fut: asyncio.Future[Message] = loop.create_future()
        self._push(msg_type, payload, FutureReply(fut))
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
        self._push(msg_type, payload, self.tell_reply)

    def submit(self, msg_type: str, payload: bytes, call: Any) -> None:
        """Queues a method call made on this loop (``call`` is a ``pulsing._call.Call``, which
        speaks the reply protocol); a full mailbox makes it wait for room in a task of its own."""
        if len(self.queue) < self.capacity:
            self._push(msg_type, payload, call)
            return
        task = self.loop.create_task(self._submit_when_room(msg_type, payload, call))
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)

    async def _submit_when_room(self, msg_type: str, payload: bytes, call: Any) -> None:
        try:
            await self._wait_for_room()
        except (MailboxFullError, ActorStoppedError) as exc:
            if not call.done():
                call._finished()
                call.set_exception(exc)
            return
        if not call.done():
            self._push(msg_type, payload, call)

    def deliver(self, msg_type: str, payload: bytes, reply: Reply) -> None:
        """Queues a message from the core system (called by the hub's drain, on the loop)."""
        if self.stopped:
            self.credits.release(1)
            reply.stopped(f"actor {self.name} stopped before handling the message")
            return
        self.queue.append((msg_type, payload, reply))
        if not self.busy:
            # Already in a loop callback (the drain): handle it now rather than one turn later.
            self.busy = True
            self._pump()

    def _push(self, msg_type: str, payload: bytes, reply: Reply) -> None:
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
            fut: asyncio.Future[None] = self.loop.create_future()
            self._room.append(fut)
            timer = self.loop.call_later(remaining, _wake, fut)
            try:
                await fut
            finally:
                timer.cancel()
                if not fut.done() or fut in self._room:
                    # Timed out or cancelled: a later room must wake the next waiter, not this one.
                    with contextlib.suppress(ValueError):
                        self._room.remove(fut)
            if self.stopped:
                raise ActorStoppedError(f"actor {self.name} stopped")

    # -- running -------------------------------------------------------------------------------

    def run_inline(self, msg_type: str, payload: bytes) -> Message:
        """Runs a synchronous, non-streaming handler now, for a caller on the loop (fast path)."""
        self.busy = True
        token = CURRENT.set(self)
        try:
            result = self.impl.handle(msg_type, payload)
            return self.impl.single(msg_type, result, self._local_default)
        except Exception as exc:
            raise make_actor_error(*describe(exc)) from None
        except asyncio.CancelledError:
            # Raised by the handler itself (nothing cancels a synchronous handler): no reply.
            raise ActorStoppedError(_interrupted(self.name, msg_type)) from None
        finally:
            CURRENT.reset(token)
            self._release()

    def _release(self) -> None:
        if self.queue:
            self.loop.call_soon(self._pump)
        else:
            self.busy = False

    def _next(self) -> _Entry | None:
        queue = self.queue
        while queue:
            entry = queue.popleft()
            if self._room:
                _wake(self._room.popleft())
            reply = entry[2]
            if type(reply) is _CoreReply:
                self.owed += 1
            if reply.closed:
                # The sender gave up (timeout, cancelled) before the actor reached the message.
                reply.expire()
                continue
            return entry
        return None

    def _repay(self) -> None:
        """Returns the credits of the core messages taken out of the mailbox, in one call."""
        if self.owed:
            self.credits.release(self.owed)
            self.owed = 0

    def _pump(self) -> None:
        """Handles queued messages with synchronous handlers; hands over to the runner task at
        the first one that awaits (an async handler or a streamed reply)."""
        impl = self.impl
        try:
            while self.queue:
                if impl.is_async(self.queue[0][0]):
                    self._task = self.loop.create_task(self._run(None))
                    return
                entry = self._next()
                if entry is None:
                    break
                pending = self._handle(entry)
                if pending is not None:
                    self._task = self.loop.create_task(self._run(pending))
                    return
            self.busy = False
        except (KeyboardInterrupt, SystemExit):
            # A handler stopped the program: leave the mailbox as it should be, then let it.
            self._release()
            raise
        finally:
            self._repay()

    async def _run(self, pending: Any) -> None:
        """The runner: finishes ``pending`` (from :meth:`_handle`), then handles queued messages
        until the queue is empty."""
        try:
            if pending is not None:
                await pending
            while True:
                entry = self._next()
                if entry is None:
                    break
                pending = self._handle(entry)
                if pending is not None:
                    self._repay()
                    await pending
        finally:
            self._repay()
            self._task = None
            self.busy = False
            if self.queue and not self.stopped:
                self.busy = True
                self.loop.call_soon(self._pump)

    def _handle(self, entry: _Entry) -> Any:
        """Runs the handler for ``entry`` and answers it, unless answering must await (an async
        handler or a streamed reply): that coroutine is returned for the runner to await."""
        msg_type, _, reply = entry
        token = CURRENT.set(self)
        try:
            result = self.impl.handle(msg_type, entry[1])
        except Exception as exc:
            reply.error(*describe(exc))
            return None
        except asyncio.CancelledError:
            # Raised by the handler itself (nothing cancels a synchronous handler): no reply.
            reply.stopped(_interrupted(self.name, msg_type))
            return None
        except (KeyboardInterrupt, SystemExit):
            reply.stopped(_interrupted(self.name, msg_type))
            raise
        finally:
            CURRENT.reset(token)
        if is_coroutine(result):
            return self._finish(entry, result)
        return self._answer(msg_type, reply, result)

    async def _finish(self, entry: _Entry, coro: Any) -> None:
        msg_type, _, reply = entry
        token = CURRENT.set(self)
        try:
            result = await coro
        except asyncio.CancelledError:
            reply.stopped(_interrupted(self.name, msg_type))
            if self.stopped or _cancel_requested():  # the runner is being cancelled: end it
                raise
            return  # the handler raised it itself: the actor goes on
        except Exception as exc:
            reply.error(*describe(exc))
            return
        except (KeyboardInterrupt, SystemExit):
            reply.stopped(_interrupted(self.name, msg_type))
            raise
        finally:
            CURRENT.reset(token)
        pending = self._answer(msg_type, reply, result)
        if pending is not None:
            await pending

    def _answer(self, msg_type: str, reply: Reply, result: Any) -> Any:
        """Answers ``reply`` with ``result``; for a stream, returns the coroutine that produces
        it (the actor's turn lasts until it ends)."""
        default = self._remote_default if reply.remote else self._local_default
        impl = self.impl
        try:
            items = impl.items(msg_type, result, default)
            if items is None:
                msg = impl.single(msg_type, result, default)
        except Exception as exc:
            reply.error(*describe(exc))
            return None
        if items is not None:
            writer = reply.stream(32, self.stream_timeout)
            if writer is None:  # a tell: nobody reads the stream
                return _close(items)
            if type(writer) is not LocalStream:
                writer = NativeWriter(self.hub, self.loop, writer)
            return self._stream(writer, items)
        reply.ok(msg._msg_type, msg._payload)
        return None

    async def _stream(self, writer: Any, items: Any) -> None:
        """Copies a streamed reply into ``writer``, item by item, holding the actor's turn."""
        token = CURRENT.set(self)
        ended = False  # the reader has, or will get, the stream's end or its error
        try:
            while True:
                try:
                    item = await items.__anext__()
                except StopAsyncIteration:
                    ended = True
                    await writer.end()
                    return
                except Exception as exc:
                    ended = True
                    await writer.fail(*describe(exc))
                    return
                try:
                    await writer.send(item._msg_type, item._payload)
                except ActorStoppedError:
                    ended = True
                    return  # the reader went away: stop producing
                except AskTimeoutError as exc:  # the reader made no room in time
                    ended = True
                    if type(writer) is not LocalStream:
                        await writer.fail("TimeoutError", str(exc), None)
                    return
        finally:
            CURRENT.reset(token)
            if not ended and type(writer) is LocalStream:
                # Cut short (the actor stopped, the handler was interrupted): a native reader sees
                # the stream truncated; a local one is told here.
                writer.put_error(ActorStoppedError(f"actor {self.name} stopped; the stream ended"))
            await _close(items)

    # -- stopping ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Refuses new messages, fails the queued ones with :class:`ActorStoppedError` and cancels a
        handler still running (its caller gets :class:`ActorStoppedError` too)."""
        self.stopped = True
        if self._task is not None:
            # One loop step later: a runner created by this very iteration has not started yet, and
            # cancelling it now would skip the `finally` that answers what it was handed.
            self.loop.call_soon(self._task.cancel)
        while self.queue:
            _, _, reply = self.queue.popleft()
            if type(reply) is _CoreReply:
                self.credits.release(1)
            reply.stopped(f"actor {self.name} stopped before handling the message")
        while self._room:
            _wake(self._room.popleft())


def self_call_error(actor: str, method: str) -> ActorError:
    """The error of a handler that waits for a reply from its own actor."""
    return ActorError(
        f"actor {actor} would wait for itself: its handler called {method}() on its own ref and "
        "awaited the reply, but an actor handles one message at a time, so that reply could only "
        "come after the handler returned; call the method directly on self, or use tell",
        "ActorError",
        f"actor {actor} would wait for itself",
    )


def _cancel_requested() -> bool:
    """Whether the running task was asked to cancel (Python 3.11+; on 3.10, never known)."""
    cancelling = getattr(asyncio.current_task(), "cancelling", None)
    return cancelling is not None and cancelling() > 0


def _interrupted(actor: str, msg_type: str) -> str:
    return f"the handler of actor {actor} for {msg_type!r} was interrupted before it replied"


async def _close(items: Any) -> None:
    aclose = getattr(items, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:  # a generator failing while closing: nobody to tell but the log
            log.warning("a streaming handler failed while closing", exc_info=True)


def _expire(fut: asyncio.Future[Any], timeout: float) -> None:
    if not fut.done():
        fut.set_exception(
            AskTimeoutError(f"ask timed out after {timeout}s; the message may have been delivered")
        )


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
