"""A method call on a ref: :class:`Method` (``ref.increment``) makes a :class:`Call`
(``ref.increment(1)``).

A call behaves like a coroutine, for local and remote actors alike:

- nothing is sent when it is made; it is sent when it is awaited, iterated (``async for``) or handed
  to asyncio (``create_task``, ``ensure_future``, ``gather``, ``wait_for``, ``shield``,
  ``as_completed``, ``TaskGroup``, ``asyncio.wait`` over tasks...);
- a call that is never sent emits ``RuntimeWarning: call <actor>.<method>() was never awaited``
  when it is collected;
- cancelling it (``call.cancel()``, its task cancelled, even before the task's first step,
  ``wait_for`` timing out) abandons it: a call not sent yet is never sent; a remote call is
  cancelled at its node at once, which skips the message if the actor has not reached it yet; a
  local one is skipped by the mailbox.

How: a call is an asyncio future whose result is the decoded reply. asyncio recognises a future by
reading its ``_asyncio_future_blocking`` attribute (``asyncio.isfuture``), which every API above
does before anything else; a call sends itself on that first read, on ``await``, on
``add_done_callback`` and on its first coroutine step. Being a future, a call handed to ``gather``
or ``wait_for`` needs no task of its own, and the hub (remote) or the actor's mailbox (local)
resolves it directly: no extra loop step per call.

Until it is sent a call is also a coroutine (``create_task`` and ``TaskGroup`` take only
coroutines); once sent it is only a future (its class becomes :class:`_Sent`, which has no
``close``), because ``ensure_future`` hands a future back as it is and ``asyncio.wait`` refuses
coroutines: ``asyncio.wait([asyncio.ensure_future(call)])`` must see a future, as it sees a task
for a coroutine.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any

from pulsing import _codec
from pulsing._local import self_call_error
from pulsing._message import Message
from pulsing._reply import LocalStream
from pulsing.exceptions import (
    ActorStoppedError,
    AskTimeoutError,
    PulsingError,
    make_actor_error,
)

if TYPE_CHECKING:
    from pulsing._local import LocalActor
    from pulsing._ref import ActorRef

__all__ = ["Call", "Method"]

_Future = asyncio.Future
# The C future's own attribute, which the property of `Call` wraps.
_BLOCKING: Any = _Future.__dict__["_asyncio_future_blocking"]
_future_init = _Future.__init__
_future_del: Callable[[Any], None] = _Future.__dict__["__del__"]
_future_cancel = _Future.cancel
_future_add_done_callback = _Future.add_done_callback


def _get_blocking(call: Call) -> bool:
    if call._ref is not None:
        call._send()
    return _BLOCKING.__get__(call)  # type: ignore[no-any-return]


def _set_blocking(call: Call, value: bool) -> None:
    _BLOCKING.__set__(call, value)


class Call(_Future):  # type: ignore[type-arg]
    """One method call (see the module docs): ``await`` it for the value, or ``async for`` over
    a streamed reply. Made as an :class:`_Unsent` call; a :class:`_Sent` one once sent."""

    __slots__ = ("_id", "_it", "_name", "_payload", "_ref", "_system", "_timer")

    def __init__(self, ref: ActorRef, name: str, payload: bytes) -> None:
        system = ref._system
        _future_init(self, loop=system._loop)
        self._system = system
        self._ref: ActorRef | None = ref  # None once sent
        self._name = name
        self._payload = payload
        self._id: int | None = None  # the hub's number of a remote call in flight
        self._timer: asyncio.TimerHandle | None = None
        self._it: Any = None

    _asyncio_future_blocking = property(_get_blocking, _set_blocking)

    # -- sending -------------------------------------------------------------------------------

    def _send(self, awaited: bool = False) -> None:
        """Sends the call, once; ``awaited``: the caller's task waits for it right now."""
        ref = self._ref
        if ref is None:
            return
        self._ref = None
        self.__class__ = _Sent
        if self.done():  # cancelled before it was sent
            return
        try:
            local = ref._local
            if local is not None:
                self._send_local(ref, local, awaited)
                return
            system = self._system
            if system._closed:
                raise ActorStoppedError("the actor system is shut down")
            self._id = ref._core().call(
                system._hub, self, self._name, self._payload, ref._timeout_s()
            )
        except Exception as exc:
            self.set_exception(exc)

    def _send_local(self, ref: ActorRef, local: LocalActor, awaited: bool) -> None:
        if local.stopped:
            raise ActorStoppedError(f"actor {local.name} stopped")
        if asyncio.get_running_loop() is not local.loop:
            raise PulsingError(
                f"actor {local.name} runs on another event loop; call it from the loop that "
                "created its system"
            )
        name = self._name
        impl = local.impl
        if local.busy:
            # Awaited from the actor's own handler, the reply could only come after the handler
            # returns. (Handed to a task instead, the call just waits its turn.)
            if awaited and local.calls_itself():
                raise self_call_error(local.name, name)
        elif not impl.is_async(name) and not impl.may_stream(name):
            # Fast path: the actor is idle and the handler synchronous; running it now is
            # indistinguishable from queueing it (nothing else could run in between).
            reply = local.run_inline(name, self._payload)
            self.set_result(_codec.decode_value(reply._payload, self._system._ext_hook))
            return
        timeout = ref._timeout_s()
        self._timer = local.loop.call_later(timeout, _expire, self, timeout)
        local.submit(name, self._payload, self)

    def __await__(self) -> Generator[Any, None, Any]:
        if self._ref is not None:
            self._send(awaited=True)
        return _Future.__await__(self)

    __iter__ = __await__

    def add_done_callback(self, fn: Callable[[Any], object], *, context: Any = None) -> None:
        """Future protocol: ``fn(self)`` once the call has finished; sends the call."""
        if self._ref is not None:
            self._send()
        _future_add_done_callback(self, fn, context=context)

    def cancel(self, msg: Any = None) -> bool:
        """Future protocol: abandons the call; a remote one is cancelled at its node at once,
        and one not sent yet is never sent."""
        if self._ref is not None:
            self._ref = None
            self.__class__ = _Sent
        if not _future_cancel(self, msg):
            return False
        self._finished()
        if self._id is not None:
            hub_id, self._id = self._id, None
            self._system._hub.cancel(hub_id)
        return True

    def __aiter__(self) -> AsyncIterator[Any]:
        """The items of a streamed reply (a generator method's)."""
        return _iterate(self)

    # -- the reply protocol (pulsing._reply.Reply), for a call queued at a local actor ---------

    @property
    def closed(self) -> bool:
        """Whether the caller gave up (timed out, cancelled)."""
        return self.done()

    remote = False

    def ok(self, msg_type: str, payload: bytes) -> None:
        """Resolves the call with the decoded reply."""
        if not self.done():
            self._finished()
            try:
                value = _codec.decode_value(payload, self._system._ext_hook)
            except Exception as exc:
                self.set_exception(exc)
            else:
                self.set_result(value)

    def error(self, type_name: str | None, message: str, detail: str | None) -> None:
        """Fails the call with the :class:`ActorError` for the handler's error."""
        if not self.done():
            self._finished()
            self.set_exception(make_actor_error(type_name, message, detail))

    def stopped(self, message: str) -> None:
        """Fails the call with :class:`ActorStoppedError`."""
        if not self.done():
            self._finished()
            self.set_exception(ActorStoppedError(message))

    def expire(self) -> None:
        """Nothing to do: the caller already has its outcome."""

    def stream(self, capacity: int, timeout: float) -> LocalStream:
        """Resolves the call with the decoded items of a new channel."""
        chan = LocalStream(capacity, timeout)
        if self.done():
            chan.reader_gone = True
        else:
            self._finished()
            items = Message("", b"", _items=chan.reader())
            self.set_result(decoded(items, self._system._ext_hook))
        return chan

    def _finished(self) -> None:
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.cancel()

    # -- the rest ------------------------------------------------------------------------------

    def __del__(self) -> None:
        ref = self._ref
        if ref is not None:
            warnings.warn(
                f"call {ref.name}.{self._name}() was never awaited",
                RuntimeWarning,
                stacklevel=2,
            )
        _future_del(self)

    def __repr__(self) -> str:
        state = "not sent" if self._ref is not None else ("done" if self.done() else "pending")
        return f"<call {self._name}() {state}>"

    # The coroutine protocol's steps, for a task driving the call (`create_task`, `TaskGroup`).

    def send(self, value: Any) -> Any:
        """Coroutine protocol: sends the call on the first step, then waits for its reply."""
        it = self._it
        if it is None:
            # Sent from a task of its own, which the running handler may not be waiting for:
            # not a self-call even when made from that handler.
            self._send()
            it = self._it = _Future.__await__(self)
        return it.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        """Coroutine protocol: raises the exception inside the waiting call. Thrown in before the
        first step (a task cancelled before it started), the call is never sent, as a coroutine
        never runs then."""
        exc = typ if val is None else val
        it = self._it
        if it is None:
            if self._ref is not None:
                self._ref = None
                self.__class__ = _Sent
                _future_cancel(self)
            raise exc
        return it.throw(exc)


class _Unsent(Call):
    """A call not sent yet: a future and a coroutine."""

    __slots__ = ()

    def close(self) -> None:
        """Coroutine protocol: abandons the call, which is then never sent (nor warned of)."""
        self._ref = None
        self.__class__ = _Sent  # type: ignore[assignment]
        _future_cancel(self)


class _Sent(Call):
    """A call sent: only a future (no ``close``, so not a coroutine to asyncio)."""

    __slots__ = ()


Coroutine.register(_Unsent)


class Method:
    """``ref.name``: calling it makes a :class:`Call` of the actor's method ``name``."""

    __slots__ = ("_name", "_ref")

    def __init__(self, ref: ActorRef, name: str) -> None:
        self._ref = ref
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Call:
        ref = self._ref
        return _Unsent(ref, self._name, _codec.encode_call(self._name, args, kwargs, ref._encode))

    def __repr__(self) -> str:
        return f"<method {self._name} of {self._ref!r}>"


def _expire(call: Call, timeout: float) -> None:
    if not call.done():
        call._timer = None
        call.set_exception(
            AskTimeoutError(f"ask timed out after {timeout}s; the message may have been delivered")
        )


async def decoded(items: AsyncIterable[Message], ext_hook: Any) -> AsyncIterator[Any]:
    """The values of a streamed reply's items (each ``msgpack(value)``), decoded with
    ``ext_hook``."""
    async for item in items:
        yield _codec.decode_value(item._payload, ext_hook)


async def _iterate(call: Call) -> AsyncIterator[Any]:
    items = await call
    if not hasattr(items, "__aiter__"):
        raise TypeError(f"{call._name}() did not reply with a stream; await it instead")
    try:
        async for item in items:
            yield item
    finally:
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()
