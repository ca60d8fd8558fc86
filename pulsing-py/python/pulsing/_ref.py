"""``ActorRef``: a handle to an actor in this process or on another node, with one API for both."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import msgpack

from pulsing._call import Method
from pulsing._codec import Pack
from pulsing._message import Message
from pulsing.exceptions import ActorStoppedError, BadMessageError, PulsingError

if TYPE_CHECKING:
    from pulsing._local import LocalActor
    from pulsing._system import ActorSystem

__all__ = ["ActorRef"]


class ActorRef:
    """A handle to an actor, in this process or on another node, with one API for both.

    ``await ref.ask(msg)`` / ``await ref.tell(msg)`` send :class:`Message` objects; for an
    ``@as_actor`` actor, ``await ref.some_method(*args)`` calls a method (any attribute not
    defined here is taken as a method name; use :meth:`call` for names like ``ask``).

    A ref is a value: it may be an argument or a return value of a method call, also inside a
    list, tuple or dict, and the receiving node gets a working ref. A ref to a named *private*
    actor cannot leave its node (``TypeError`` at the sender): spawn the actor public, or
    anonymous (``await system.spawn(actor)``), to hand it to other nodes.
    """

    def __init__(
        self,
        system: ActorSystem,
        name: str,
        local: LocalActor | None,
        native: Any,
        timeout: float | None = None,
    ) -> None:
        self._system = system
        self._local = local
        self._native = native
        self._timeout = timeout
        self.name = name
        """The actor's name (for an anonymous actor, its generated id)."""
        # How refs inside calls to this actor are encoded: a ref to a private actor may not leave
        # this node.
        here = local is not None or (native is not None and native.is_local)
        self._encode: Pack = system._encode_local if here else system._encode_remote

    @property
    def is_local(self) -> bool:
        """Whether the actor runs in this process."""
        return self._local is not None or bool(self._native is not None and self._native.is_local)

    def with_timeout(self, seconds: float) -> ActorRef:
        """A view of this ref whose method calls and asks wait at most ``seconds`` for the reply
        (then :class:`AskTimeoutError`): ``await ref.with_timeout(2.0).increment(1)``."""
        seconds = float(seconds)
        if not seconds > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {seconds!r}")
        return ActorRef(self._system, self.name, self._local, self._native, seconds)

    def __getattr__(self, name: str) -> Method:
        if name.startswith("_"):
            raise AttributeError(name)
        method = Method(self, name)
        self.__dict__[name] = method
        return method

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``ref.call("name", *args)`` is ``ref.name(*args)``, for any method name."""
        return Method(self, method)(*args, **kwargs)

    async def ask(self, msg: Message, timeout: float | None = None) -> Message:
        """Sends ``msg`` and returns the reply (``async for`` over it if ``reply.is_stream``).

        Waits at most ``timeout`` seconds (default: this ref's timeout, see :meth:`with_timeout`,
        else the system's ask timeout, 30 s).

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
        return await self._ask(msg._msg_type, msg._payload, timeout or self._timeout_s())

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

    # -- internals -----------------------------------------------------------------------------

    def _timeout_s(self) -> float:
        return self._timeout if self._timeout is not None else self._system._ask_timeout

    def _on_loop(self, local: LocalActor) -> bool:
        try:
            return asyncio.get_running_loop() is local.loop
        except RuntimeError:
            return False

    def _core(self) -> Any:
        native = self._native if self._native is not None else getattr(self._local, "native", None)
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
        call_id = self._core().ask(system._hub, fut, msg_type, payload, timeout)
        try:
            reply = await fut
        except asyncio.CancelledError:
            system._hub.cancel(call_id)  # cancels a remote call at its node, which skips it
            raise
        if type(reply) is tuple:
            return Message(reply[0], reply[1])
        return Message("", b"", _items=_native_items(system, reply))

    def _ext_data(self) -> bytes:
        """This ref as msgpack extension data ``[addr, node, id]`` (docs/protocol.md)."""
        native = self._native if self._native is not None else getattr(self._local, "native", None)
        if native is not None:
            return native.ext_data()  # type: ignore[no-any-return]
        return msgpack.packb(list(self._wire()))  # type: ignore[no-any-return]

    def _wire(self) -> tuple[str, str, str]:
        """``(addr, node, id)``: where this ref points, as an ext value carries it."""
        system = self._system
        if self._local is not None or self._native is None or self._native.is_local:
            return system.addr or "", system.node_id, self.name
        native = self._native
        return native.remote_addr or "", native.node_id or "", self.name

    def __repr__(self) -> str:
        where = "local" if self._local is not None else repr(self._native)
        return f"ActorRef({self.name!r}, {where})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ActorRef):
            return NotImplemented
        if self._local is not None or other._local is not None:
            return self._local is other._local
        return self._wire() == other._wire()

    def __hash__(self) -> int:
        return hash(self.name)


async def _native_items(system: ActorSystem, stream: Any) -> AsyncIterator[Message]:
    hub, loop = system._hub, system._loop
    while True:
        fut = loop.create_future()
        stream.next(hub, fut)
        item = await fut
        if item is None:
            return
        yield Message(item[0], item[1])
