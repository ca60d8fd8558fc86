"""``Message``: what ``ask`` and ``tell`` send and what a handler returns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

from pulsing.exceptions import BadMessageError

__all__ = ["Message"]

_BYTES_LIKE = (bytes, bytearray, memoryview)


class Message:
    """A message: one ``(msg_type, payload)`` pair, or a stream of such pairs.

    Build one with :meth:`single` or :meth:`stream`. A single message has a ``msg_type`` string
    the receiver dispatches on and an opaque ``payload`` of bytes. A streamed message (a handler
    may return one as its reply) is read with ``async for item in reply``, each item a single
    :class:`Message`; it can be read once.

    Example::

        reply = await ref.ask(Message.single("request", b"data"))
        print(reply.msg_type, reply.payload)
    """

    __slots__ = ("_items", "_msg_type", "_payload")

    def __init__(self, msg_type: str, payload: bytes = b"", *, _items: Any = None) -> None:
        self._msg_type = msg_type
        self._payload = payload
        self._items = _items

    @classmethod
    def single(cls, msg_type: str, payload: bytes | bytearray | memoryview = b"") -> Message:
        """A single message.

        Raises:
            TypeError: ``msg_type`` is not a str or ``payload`` is not bytes-like.
        """
        if type(msg_type) is not str:
            raise TypeError(f"msg_type must be a str, not {type(msg_type).__name__}")
        if type(payload) is not bytes:
            if not isinstance(payload, _BYTES_LIKE):
                raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
            payload = bytes(payload)
        return cls(msg_type, payload)

    @classmethod
    def stream(
        cls,
        msg_type: str,
        items: AsyncIterable[Message | bytes] | Iterable[Message | bytes],
    ) -> Message:
        """A streamed message whose items come from ``items`` (sync or async iterable).

        Each item is a single :class:`Message`, or bytes, which become
        ``Message.single(msg_type, item)``. An exception raised by ``items`` ends the stream with
        that error at the reader.
        """
        if type(msg_type) is not str:
            raise TypeError(f"msg_type must be a str, not {type(msg_type).__name__}")
        return cls(msg_type, b"", _items=_normalize(msg_type, items))

    @property
    def msg_type(self) -> str:
        """What kind of message this is (for a stream: the type given to :meth:`stream`)."""
        return self._msg_type

    @property
    def payload(self) -> bytes:
        """The body of a single message; ``b""`` for a stream (read its items instead)."""
        return self._payload

    @property
    def is_stream(self) -> bool:
        """Whether this message is a stream."""
        return self._items is not None

    def __aiter__(self) -> AsyncIterator[Message]:
        """The items of a stream; a single message reads as a stream of itself.

        Raises:
            BadMessageError: the stream was already read.
        """
        items = self._items
        if items is None:
            return _one(self)
        if items is _CONSUMED:
            raise BadMessageError("this streamed message was already read")
        self._items = _CONSUMED
        return items  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        if self._items is not None:
            return f"Message.stream({self._msg_type!r}, ...)"
        return f"Message.single({self._msg_type!r}, <{len(self._payload)} bytes>)"


_CONSUMED: Any = object()


async def _one(msg: Message) -> AsyncIterator[Message]:
    yield msg


def _item(msg_type: str, item: object) -> Message:
    if type(item) is Message:
        if item._items is not None:
            raise BadMessageError("a stream item cannot itself be a stream")
        return item
    if isinstance(item, _BYTES_LIKE):
        return Message(msg_type, bytes(item))
    raise TypeError(f"stream items must be Message or bytes, not {type(item).__name__}")


async def _normalize(msg_type: str, items: Any) -> AsyncIterator[Message]:
    if hasattr(items, "__aiter__"):
        async for item in items:
            yield _item(msg_type, item)
    else:
        for item in items:
            yield _item(msg_type, item)
            # A long synchronous producer still lets the loop breathe between items.
            await asyncio.sleep(0)
