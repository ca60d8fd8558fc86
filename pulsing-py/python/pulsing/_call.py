"""A method call on a ref: :class:`Method` (``ref.increment``) makes a :class:`Call`
(``ref.increment(1)``).

A call behaves exactly like a coroutine, for local and remote actors alike:

- nothing is sent when it is made; it is sent when it is awaited, iterated (``async for``) or handed
  to asyncio (``create_task``, ``ensure_future``, ``gather``, ``wait_for``, ``shield``,
  ``as_completed``, ``TaskGroup``...: all of them wrap it in a task, which starts it);
- a call that is never started emits ``RuntimeWarning: call <actor>.<method>() was never awaited``
  when it is collected, and was never sent;
- cancelling it (task cancelled, ``wait_for`` timing out) abandons it: a remote call's request is
  reset at once, so the serving node skips the message if the actor has not reached it yet.

For speed it is its own iterator (``__await__`` returns ``self``) and, for a remote actor, waits on
the asyncio future that the hub resolves with the decoded reply: no task and no extra coroutine.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator, Coroutine, Generator
from typing import TYPE_CHECKING, Any

from pulsing import _codec
from pulsing._message import Message
from pulsing.exceptions import ActorStoppedError

if TYPE_CHECKING:
    from pulsing._local import LocalActor
    from pulsing._ref import ActorRef

__all__ = ["Call", "Method"]

_NOT_STARTED: Any = None
_CLOSED: Any = iter(())


class Call:
    """One method call (see the module docs): ``await`` it for the value, or ``async for`` over
    a streamed reply."""

    __slots__ = ("_id", "_it", "_name", "_payload", "_ref")

    def __init__(self, ref: ActorRef, name: str, payload: bytes) -> None:
        self._ref = ref
        self._name = name
        self._payload = payload
        self._it: Any = _NOT_STARTED
        self._id: int | None = None

    def _start(self) -> Any:
        ref = self._ref
        local = ref._local
        if local is not None:
            return _call_local(ref, local, self._name, self._payload).__await__()
        system = ref._system
        fut = system._loop.create_future()
        if system._closed:
            self._it = _CLOSED
            raise ActorStoppedError("the actor system is shut down")
        self._id = ref._core().call(system._hub, fut, self._name, self._payload, ref._timeout_s())
        return fut.__await__()

    # -- the coroutine protocol ----------------------------------------------------------------

    def __await__(self) -> Generator[Any, None, Any]:
        return self

    def __iter__(self) -> Call:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def send(self, value: Any) -> Any:
        """Coroutine protocol: starts the call on the first step, then waits for its reply."""
        it = self._it
        if it is None:
            it = self._it = self._start()
        return it.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        """Coroutine protocol: raises the exception inside the waiting call; a cancellation
        abandons a remote call at once (its request is reset)."""
        exc = typ if val is None else val
        if isinstance(exc, type):
            exc = exc()
        it = self._it
        if it is None:
            self._it = _CLOSED
            raise exc
        if self._id is not None and isinstance(exc, asyncio.CancelledError):
            self._ref._system._hub.cancel(self._id)
            self._id = None
        return it.throw(exc)

    def close(self) -> None:
        """Coroutine protocol: abandons the call (a call never started is then not warned of)."""
        it = self._it
        self._it = _CLOSED
        if it is not None and it is not _CLOSED:
            close = getattr(it, "close", None)
            if close is not None:
                close()
        if self._id is not None:
            self._ref._system._hub.cancel(self._id)
            self._id = None

    def __aiter__(self) -> AsyncIterator[Any]:
        """The items of a streamed reply (a generator method's)."""
        self._it = _CLOSED
        return _iterate(self._ref, self._name, self._payload)

    def __del__(self) -> None:
        if self._it is None:
            warnings.warn(
                f"call {self._ref.name}.{self._name}() was never awaited",
                RuntimeWarning,
                stacklevel=2,
            )

    def __repr__(self) -> str:
        state = "not started" if self._it is None else "started"
        return f"<call {self._ref.name}.{self._name}() {state}>"


Coroutine.register(Call)


class Method:
    """``ref.name``: calling it makes a :class:`Call` of the actor's method ``name``."""

    __slots__ = ("_name", "_ref")

    def __init__(self, ref: ActorRef, name: str) -> None:
        self._ref = ref
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        ref = self._ref
        return Call(ref, self._name, _codec.encode_call(self._name, args, kwargs, ref._default()))

    def __repr__(self) -> str:
        return f"<method {self._name} of {self._ref!r}>"


async def _call_local(ref: ActorRef, local: LocalActor, name: str, payload: bytes) -> Any:
    """A method call on an actor of this process; runs the handler right here when the actor is
    idle, the method is synchronous and does not stream, and we are on the actor's loop (see
    ``pulsing._local``)."""
    if (
        not local.busy
        and not local.stopped
        and not local.impl.is_async(name)
        and not local.impl.may_stream(name)
        and asyncio.get_running_loop() is local.loop
    ):
        reply = local.run_inline(name, payload)
    else:
        reply = await ref._ask(name, payload, ref._timeout_s())
    if reply._items is not None:
        return _decoded_items(ref, reply)
    return _codec.decode_value(reply._payload, ref._system._ext_hook)


async def _decoded_items(ref: ActorRef, reply: Message) -> AsyncIterator[Any]:
    hook = ref._system._ext_hook
    async for item in reply:
        yield _codec.decode_value(item._payload, hook)


async def _iterate(ref: ActorRef, name: str, payload: bytes) -> AsyncIterator[Any]:
    if ref._local is not None:
        items = await _call_local(ref, ref._local, name, payload)
    else:
        items = await Call(ref, name, payload)
    if not hasattr(items, "__aiter__"):
        raise TypeError(f"{name}() did not reply with a stream; await it instead")
    try:
        async for item in items:
            yield item
    finally:
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()
