"""Where a handler's answer goes: one small protocol, :class:`Reply`, for every kind of sender.

Each message in a Python actor's mailbox carries a reply slot:

- :class:`FutureReply`: an ask (``ref.ask(msg)``) from a caller on the actor's own loop;
- ``pulsing._call.Call``: a method call from this loop, which is itself the future it resolves;
- :class:`TellReply`: a tell from this loop (nobody to answer; a failure is logged);
- ``pulsing._pulsing.ReplyHandle``: a message from the core system (another node, or a core ref),
  answered through Tokio.

All of them have the same methods, so the mailbox never asks which kind it holds. A streamed answer
is written through a :class:`StreamWriter`: :class:`LocalStream` (a bounded channel to a reader on
this loop) or :class:`NativeWriter` (a native stream to the core).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Protocol

from pulsing._message import Message
from pulsing.exceptions import (
    ActorStoppedError,
    AskTimeoutError,
    make_actor_error,
)

__all__ = ["FutureReply", "LocalStream", "NativeWriter", "Reply", "StreamWriter", "TellReply"]

log = logging.getLogger("pulsing")


class StreamWriter(Protocol):
    """The producing end of a streamed reply. Await each call before the next."""

    async def send(self, msg_type: str, payload: bytes) -> None:
        """Queues one item, waiting for room at most the stream send timeout.

        Raises:
            ActorStoppedError: the reader is gone (stop producing).
            AskTimeoutError: the reader made no room in time (the stream has failed).
        """

    async def end(self) -> None:
        """Ends the stream cleanly."""

    async def fail(self, type_name: str | None, message: str, detail: str | None) -> None:
        """Ends the stream with an error item."""


class Reply(Protocol):
    """A message's reply slot (see the module docs). Answer once; later answers are ignored."""

    @property
    def closed(self) -> bool:
        """Whether the sender has given up (answering is useless; the message may be skipped)."""

    @property
    def remote(self) -> bool:
        """Whether the answer may leave this node (refs to private actors then cannot be in it)."""

    def ok(self, msg_type: str, payload: bytes) -> object:
        """Answers with a single message."""

    def error(self, type_name: str | None, message: str, detail: str | None) -> object:
        """Answers with the handler's error: its class name, message and formatted traceback."""

    def stopped(self, message: str) -> object:
        """Answers that the actor stopped before (or while) handling the message."""

    def expire(self) -> None:
        """Drops the message unanswered because its sender gave up, counting it as expired."""

    def stream(self, capacity: int, timeout: float) -> Any:
        """Answers with a stream holding at most ``capacity`` unread items; returns its writer
        (``None`` for a tell, whose stream nobody reads)."""


class FutureReply:
    """An ask from the actor's own loop: resolves the caller's future with a :class:`Message`."""

    __slots__ = ("fut",)

    remote = False

    def __init__(self, fut: asyncio.Future[Message]) -> None:
        self.fut = fut

    @property
    def closed(self) -> bool:
        """Whether the caller gave up (timed out, cancelled)."""
        return self.fut.done()

    def ok(self, msg_type: str, payload: bytes) -> None:
        """Resolves the caller's future."""
        if not self.fut.done():
            self.fut.set_result(Message(msg_type, payload))

    def error(self, type_name: str | None, message: str, detail: str | None) -> None:
        """Fails the caller's future with the :class:`ActorError` for the handler's error."""
        if not self.fut.done():
            self.fut.set_exception(make_actor_error(type_name, message, detail))

    def stopped(self, message: str) -> None:
        """Fails the caller's future with :class:`ActorStoppedError`."""
        if not self.fut.done():
            self.fut.set_exception(ActorStoppedError(message))

    def expire(self) -> None:
        """Nothing to do: the caller already has its outcome."""

    def stream(self, capacity: int, timeout: float) -> LocalStream:
        """Resolves the caller's future with a streamed message read from a new channel."""
        chan = LocalStream(capacity, timeout)
        if not self.fut.done():
            self.fut.set_result(Message("", b"", _items=chan.reader()))
        else:
            chan.reader_gone = True
        return chan


class TellReply:
    """A tell from the actor's own loop: nothing to answer; a handler error is logged."""

    __slots__ = ("actor",)

    closed = False
    remote = False

    def __init__(self, actor: str) -> None:
        self.actor = actor

    def ok(self, msg_type: str, payload: bytes) -> None:
        """Nothing to do."""

    def error(self, type_name: str | None, message: str, detail: str | None) -> None:
        """Logs the failure: a teller never sees it."""
        log.warning("actor %s: a told message failed: %s: %s", self.actor, type_name, message)

    def stopped(self, message: str) -> None:
        """Nothing to do."""

    def expire(self) -> None:
        """Nothing to do."""

    def stream(self, capacity: int, timeout: float) -> None:
        """No reader: the handler's stream is not produced."""
        return None


_END: Any = object()


class LocalStream:
    """A bounded channel from a streaming handler to one reader on the same loop.

    The writer waits while ``capacity`` items are unread, at most ``timeout`` seconds; then the
    stream fails with :class:`AskTimeoutError` at the reader, after the items it has. A reader that
    stops (``break`` out of ``async for``, or drops the iterator) makes the next ``send`` raise
    :class:`ActorStoppedError`, so the handler stops producing and the actor goes on.
    """

    __slots__ = ("_capacity", "_items", "_reader_waits", "_timeout", "_writer_waits", "reader_gone")

    def __init__(self, capacity: int, timeout: float) -> None:
        self._items: deque[Any] = deque()
        self._capacity = capacity
        self._timeout = timeout
        self._reader_waits: asyncio.Future[None] | None = None
        self._writer_waits: asyncio.Future[None] | None = None
        self.reader_gone = False

    def _put(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._reader_waits
        if waiter is not None:
            self._reader_waits = None
            if not waiter.done():
                waiter.set_result(None)

    async def send(self, msg_type: str, payload: bytes) -> None:
        """Queues one item (see the class docs)."""
        if self.reader_gone:
            raise ActorStoppedError("the reader of the stream is gone")
        if len(self._items) >= self._capacity:
            loop = asyncio.get_running_loop()
            waiter = self._writer_waits = loop.create_future()
            try:
                await asyncio.wait_for(waiter, self._timeout)
            except (TimeoutError, asyncio.TimeoutError):
                err = AskTimeoutError(
                    f"the stream's reader made no room for {self._timeout}s; the stream ended"
                )
                self._put(err)
                raise err from None
            finally:
                self._writer_waits = None
            if self.reader_gone:
                raise ActorStoppedError("the reader of the stream is gone")
        self._put(Message(msg_type, payload))

    async def end(self) -> None:
        """Ends the stream cleanly."""
        self._put(_END)

    def put_error(self, err: BaseException) -> None:
        """Ends the stream with ``err`` at the reader, without waiting."""
        self._put(err)

    async def fail(self, type_name: str | None, message: str, detail: str | None) -> None:
        """Ends the stream with the handler's error."""
        self._put(make_actor_error(type_name, message, detail))

    def _wake_writer(self) -> None:
        waiter = self._writer_waits
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def reader(self) -> AsyncIterator[Message]:
        """The items, in order; raises the error that ended the stream."""
        items = self._items
        try:
            while True:
                while not items:
                    waiter = self._reader_waits = asyncio.get_running_loop().create_future()
                    await waiter
                item = items.popleft()
                self._wake_writer()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.reader_gone = True
            self._wake_writer()


class NativeWriter:
    """The writer of a stream to the core (another node or a core ref), over the hub."""

    __slots__ = ("_hub", "_loop", "_native")

    def __init__(self, hub: Any, loop: asyncio.AbstractEventLoop, native: Any) -> None:
        self._hub = hub
        self._loop = loop
        self._native = native

    async def send(self, msg_type: str, payload: bytes) -> None:
        """Queues one item (see :class:`StreamWriter`)."""
        fut = self._loop.create_future()
        self._native.send(self._hub, fut, msg_type, payload)
        await fut

    async def end(self) -> None:
        """Ends the stream cleanly."""
        fut = self._loop.create_future()
        self._native.end(self._hub, fut)
        await fut

    async def fail(self, type_name: str | None, message: str, detail: str | None) -> None:
        """Ends the stream with the handler's error."""
        fut = self._loop.create_future()
        self._native.fail(self._hub, fut, type_name, message, detail)
        await fut
