"""``ActorSystem``: spawns, finds and stops actors on one asyncio loop, and connects them to the
cluster through the native core; :func:`current_actor` / :func:`current_system` for handlers."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgpack

from pulsing import _codec
from pulsing import _pulsing as _native
from pulsing._call import decoded
from pulsing._config import SystemConfig
from pulsing._impl import Actor, impl_for
from pulsing._local import CURRENT, LocalActor
from pulsing._ref import ActorRef, _native_items
from pulsing._stats import SystemStats
from pulsing.exceptions import ActorNotFoundError, ActorStoppedError, PulsingError

__all__ = ["ActorSystem", "Member", "create_actor_system", "current_actor", "current_system"]

log = logging.getLogger("pulsing")


@dataclass(frozen=True)
class Member:
    """A member of the cluster as this node sees it."""

    addr: str
    """The address it serves on, ``"ip:port"``."""
    node_id: str
    """Its boot id, 16 hex digits (a restarted process is a new member)."""
    state: str
    """``"alive"``, ``"suspect"``, ``"down"`` or ``"left"``."""


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
        # Anonymous actors by generated id: not found by name, only through their refs.
        self._anon_by_name: dict[str, LocalActor] = {}
        self._ids = itertools.count(1)
        self._ext_hook = self._decode_ext
        # How this system writes values: for this node (any ref) and for other nodes (no refs to
        # private actors). One packer each, kept: packing is then ~3x faster than msgpack.packb.
        self._encode_local: _codec.Pack = msgpack.Packer(
            default=functools.partial(self._encode_ref, remote=False)
        ).pack
        self._encode_remote: _codec.Pack = msgpack.Packer(
            default=functools.partial(self._encode_ref, remote=True)
        ).pack
        decode = functools.partial(_codec.decode_value, ext_hook=self._ext_hook)
        self._hub = _native.Hub(self._deliver, decode, self._method_stream)
        self._native: Any = None
        self._node_id = ""
        self._ask_timeout = 30.0
        self._closed = False

    async def _start(self) -> None:
        loop = self._loop
        loop.add_reader(self._hub.fileno(), self._hub.drain)
        fut = loop.create_future()
        config = self._config
        started = False
        try:
            _native.build_system(
                self._hub,
                fut,
                config.addr,
                list(config.seeds),
                config.ask_timeout,
                config.mailbox_capacity,
                config.mailbox_wait,
                config.transport,
                list(config.secrets),
                list(config.api_tokens),
            )
            self._native = await fut
            started = True
        finally:
            if not started:  # failed, or cancelled: nothing else will close the hub
                self._close_hub()
        self._ask_timeout = self._native.ask_timeout
        self._node_id = self._native.node_id

    # -- what the hub calls --------------------------------------------------------------------

    def _method_stream(self, stream: Any) -> AsyncIterator[Any]:
        return decoded(_native_items(self, stream), self._ext_hook)

    def _deliver(self, actor_id: int, msg_type: str, payload: bytes, reply: Any) -> None:
        local = self._by_id.get(actor_id)
        if local is None:
            reply.stopped("the Python actor is gone")
        else:
            local.deliver(msg_type, payload, reply)

    def _close_hub(self) -> None:
        if not self._closed:
            self._closed = True
            self._loop.remove_reader(self._hub.fileno())
            self._hub.close()

    # -- refs inside payloads ------------------------------------------------------------------

    def _encode_ref(self, obj: object, remote: bool) -> msgpack.ExtType:
        if not isinstance(obj, ActorRef):
            raise TypeError(f"can not serialize {type(obj).__name__!r} object")
        local = obj._local
        if remote and local is not None and not local.public and not local.anonymous:
            raise TypeError(
                f"a ref to the private actor {local.name!r} cannot leave its node; spawn it "
                "public (spawn(actor, name, public=True)) or anonymous (spawn(actor)) to hand "
                "it to other nodes"
            )
        return msgpack.ExtType(_codec.REF_EXT_TYPE, obj._ext_data())

    def _decode_ext(self, code: int, data: bytes) -> Any:
        if code != _codec.REF_EXT_TYPE:
            return msgpack.ExtType(code, data)
        _addr, node, actor = msgpack.unpackb(data)
        if node == self._node_id:
            local = self._by_name.get(actor) or self._anon_by_name.get(actor)
            # An actor of this node that is gone: calls through the ref fail with
            # ActorStoppedError.
            return ActorRef(self, actor, local, None)
        return ActorRef(self, actor, None, self._native.decode_ref(data))

    # -- the API -------------------------------------------------------------------------------

    @property
    def addr(self) -> str | None:
        """The address this node serves on (``"host:port"``), ``None`` when standalone."""
        return self._native.addr if self._native is not None else None

    @property
    def node_id(self) -> str:
        """This node's boot id, 16 hex digits (new at every start)."""
        return self._node_id

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

    async def spawn(self, actor: Any, name: str | None = None, *, public: bool = False) -> ActorRef:
        """Starts ``actor`` (an :class:`Actor` or an ``@as_actor`` instance) under ``name``.

        A public actor can be found and called from other nodes; a private one (the default) only
        from this process. Without a name the actor is **anonymous**: it gets a generated id (128
        random bits, ``ref.name``), is not found by name, and other nodes reach it only through
        its ref (pass the ref in a call: the reply-to and worker-pool pattern).

        Raises:
            TypeError: ``actor`` is neither kind.
            ValueError: ``public=True`` without a name.
            PulsingError: the name is taken (``"already exists"``) or invalid (BadMessageError).
            ActorStoppedError: the system is shut down.
        """
        impl = impl_for(actor, self._ext_hook)
        if name is None and public:
            raise ValueError(
                "an anonymous actor cannot be public: public actors are found by name; give it a "
                "name, or pass its ref to whoever should call it"
            )
        if name is not None and name in self._by_name:
            raise PulsingError(f"an actor named {name} already exists on this node")
        actor_id = next(self._ids)
        credits = _native.Credits(self._config.mailbox_capacity)
        local = LocalActor(name or "", actor_id, bool(public), impl, self, credits)
        if isinstance(actor, Actor):
            await actor.on_start()
        self._by_id[actor_id] = local
        if self._closed:
            raise ActorStoppedError("the actor system is shut down")
        spawned = self._loop.create_future()
        self._native.spawn(self._hub, spawned, name, bool(public), actor_id, credits)
        try:
            # Shielded: a spawn that is cancelled half-way is undone below, once the core has
            # finished it, instead of leaving a proxy nobody answers behind.
            local.native = await asyncio.shield(spawned)
        except asyncio.CancelledError:
            spawned.add_done_callback(self._undo_spawn)
            raise
        finally:
            if local.native is None:  # failed, or cancelled
                del self._by_id[actor_id]
        if name is None:
            local.name = local.native.name
            local.anonymous = True
            local.tell_reply.actor = local.name
            self._anon_by_name[local.name] = local
        else:
            self._by_name[name] = local
        return ActorRef(self, local.name, local, None)

    def _undo_spawn(self, spawned: asyncio.Future[Any]) -> None:
        if spawned.cancelled() or spawned.exception() is not None or self._closed:
            return
        self._native.stop(self._hub, self._loop.create_future(), spawned.result().name)

    async def find(self, name: str) -> ActorRef | None:
        """A ref to the actor ``name``: a local actor first, else a public actor of the cluster;
        ``None`` if there is none. Anonymous actors are never found by name."""
        local = self._by_name.get(name)
        if local is not None:
            return ActorRef(self, name, local, None)
        if self._closed:
            return None
        native = await self._call("find", name)
        if native is None:
            return None
        return ActorRef(self, name, None, native)

    async def find_all(self, name: str) -> list[ActorRef]:
        """Every reachable instance of ``name``: this node's first, then public instances on
        other live nodes (in the order :meth:`find` prefers them)."""
        if self._closed:
            return []
        out = []
        for native in await self._call("find_all", name):
            local = self._by_name.get(name) if native.is_local else None
            out.append(ActorRef(self, name, local, None if local is not None else native))
        return out

    async def has_actor(self, name: str) -> bool:
        """Whether :meth:`find` would find ``name``; ``False`` for another node's private actor."""
        return await self.find(name) is not None

    def members(self) -> list[Member]:
        """The cluster's members as this node sees them (this node included), by address."""
        if self._closed or self._native is None:
            return []
        return [Member(addr, node, state) for addr, node, state in self._native.members()]

    def stats(self) -> SystemStats:
        """A snapshot of this node's counters (see :class:`SystemStats`), the ones ``GET /metrics``
        exports. Cheap and never waits: it reads counters. After :meth:`shutdown` it gives the
        final counts."""
        return SystemStats._from_native(self._native.stats())

    def local_actors(self) -> list[tuple[str, bool]]:
        """This node's named actors, each with whether it is public, sorted by name."""
        return sorted((n, a.public) for n, a in self._by_name.items())

    def remote_ref(self, addr: str, name: str) -> ActorRef:
        """A ref to the actor ``name`` on the node serving ``addr``, without asking the cluster."""
        return ActorRef(self, name, None, self._native.remote_ref(addr, name))

    async def stop(self, name: str) -> None:
        """Stops the local actor ``name``; queued messages fail with :class:`ActorStoppedError`.

        Raises:
            ActorNotFoundError: no local actor has this name.
        """
        local = self._by_name.pop(name, None) or self._anon_by_name.pop(name, None)
        if local is None:
            raise ActorNotFoundError(f"actor not found: {name}")
        await self._stop_local(local)
        try:
            await self._call("stop", name)
        finally:
            # Only now: until its proxy stopped, messages still reach the stopped actor, which
            # answers them and returns their credits.
            self._by_id.pop(local.actor_id, None)

    async def _stop_local(self, local: LocalActor) -> None:
        local.stop()
        target = local.impl.target
        if isinstance(target, Actor):
            try:
                await target.on_stop()
            except Exception:  # an on_stop failure must not keep the others from stopping
                log.exception("actor %s: on_stop failed", local.name)

    async def shutdown(self) -> None:
        """Stops every actor, leaves the cluster and closes the network; calling it again does
        nothing. Calls still waiting fail with :class:`ActorStoppedError`, here and at callers on
        other nodes."""
        if self._closed:
            return
        locals_ = list(self._by_name.values()) + list(self._anon_by_name.values())
        self._by_name.clear()
        self._anon_by_name.clear()
        for local in locals_:
            await self._stop_local(local)
        try:
            await self._call("shutdown")
        finally:
            self._by_id.clear()
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
        UnauthorizedError: a seed refused this node's identity (another cluster secret, or none;
            see :meth:`SystemConfig.with_secret`).
        PulsingError: the config cannot be served (bad address, port taken, no transport in this
            build, seeds unreachable, an empty ``PULSING_SECRET``, API tokens without a
            secret...).
    """
    if config is None:
        config = SystemConfig.standalone()
    system = ActorSystem(config, asyncio.get_running_loop())
    await system._start()
    return system


def _running(what: str) -> LocalActor:
    current = CURRENT.get()
    if current is None:
        raise RuntimeError(f"{what}() is only available inside an actor's handler")
    return current


def current_actor() -> ActorRef:
    """The ref of the actor whose handler is running (equal to the ref ``spawn`` returned).

    Raises:
        RuntimeError: not called from inside a handler.
    """
    local = _running("current_actor")
    return ActorRef(local.system, local.name, local, None)


def current_system() -> ActorSystem:
    """The system of the actor whose handler is running.

    Raises:
        RuntimeError: not called from inside a handler.
    """
    return _running("current_system").system
