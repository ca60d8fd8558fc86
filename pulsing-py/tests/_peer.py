"""A peer node for the promise tests (test_promises.py, test_api.py), and the actors they use.

Run as a script, it serves on 127.0.0.1:0, spawns the actors below under fixed public names, prints
``READY <addr>`` and runs until its stdin closes (or until ``control.shutdown_soon()`` has shut it
down). The tests also import the actor classes to run the same actors in their own process.

Arguments (all optional)::

    --mailbox-capacity N         SystemConfig.with_mailbox_capacity(N)
    --stream-send-timeout SECS   SystemConfig.with_stream_send_timeout(SECS)
    --ask-timeout SECS           SystemConfig.with_ask_timeout(SECS)
    --seed ADDR                  join through ADDR (repeatable)
    --transport NAME             SystemConfig.with_transport(NAME): "http" or "quic"
    --secret S                   SystemConfig.with_secret(S); given twice or more,
                                 with_secrets([S1, S2, ...]) (test_secret.py)
    --api-token T                SystemConfig.with_api_tokens([T, ...]) (repeatable)
    --guide                      run the Remote Actors Guide's node 1 instead (test_quic.py): only
                                 its DistributedCounter, public as ``counter``

Public actors: ``overlap`` and ``streamer`` (:class:`Overlap`), ``counter`` (:class:`Counter`) with
``counter-watch`` (:class:`Watch` over it), ``sleeper`` (another :class:`Counter`), ``errors``
(:class:`Raiser`), ``self-caller`` (:class:`SelfCaller`), ``holder`` (:class:`Holder`), ``identity``
(:class:`Identity`), ``shared-name`` (a :class:`Counter`; the tests run one under the same name),
``control`` (:class:`Control`), ``recorder`` and ``pipeline`` (:class:`Recorder`). Private:
``private-counter`` (:class:`Counter`), ``private-recorder`` (:class:`Recorder`).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pulsing.actor import SystemConfig, as_actor, create_actor_system
from pulsing.exceptions import ActorError

# -- promise 1: one message at a time, streams included ------------------------------------------


@as_actor
class Overlap:
    """Counts how many of its handlers are active at once (generators count until they end)."""

    def __init__(self) -> None:
        self.active = 0
        self.most = 0

    def _enter(self) -> None:
        self.active += 1
        self.most = max(self.most, self.active)

    def _exit(self) -> None:
        self.active -= 1

    async def stream(self, n: int) -> Any:
        self._enter()
        try:
            for i in range(n):
                yield i
                await asyncio.sleep(0.01)
        finally:
            self._exit()

    def sync_stream(self, n: int) -> Any:
        self._enter()
        try:
            yield from range(n)
        finally:
            self._exit()

    async def forever(self, size: int) -> Any:
        """Streams ``size``-byte items until the reader goes away or the send times out."""
        self._enter()
        try:
            chunk = b"x" * size
            while True:
                yield chunk
                await asyncio.sleep(0)
        finally:
            self._exit()

    async def plain(self) -> str:
        self._enter()
        try:
            await asyncio.sleep(0)
            return "plain"
        finally:
            self._exit()

    def max_overlap(self) -> int:
        return self.most


# -- promises 2, 3, 6: counting calls ------------------------------------------------------------


@as_actor
class Counter:
    def __init__(self) -> None:
        self.value = 0
        self.slow_started = 0

    def bump(self) -> int:
        self.value += 1
        return self.value

    def count(self) -> int:
        return self.value

    async def slow(self, seconds: float) -> str:
        self.slow_started += 1
        await asyncio.sleep(seconds)
        return "done"


@as_actor
class Watch:
    """Reports from outside a :class:`Counter` whether its ``slow`` has started (the counter itself
    is busy then), so tests wait for that instead of sleeping."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    def slow_started(self) -> int:
        return self.counter.slow_started


# -- promise 4: errors ---------------------------------------------------------------------------


class CustomError(Exception):
    """A user-defined exception class: it crosses the wire as a plain ActorError."""


BUILTIN_ERRORS: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (ValueError, KeyError, TypeError, LookupError, RuntimeError, ZeroDivisionError)
}


def explode(kind: str, text: str) -> None:
    """The function that raises: its name must appear in the remote traceback."""
    raise BUILTIN_ERRORS[kind](text)


def explode_custom(text: str) -> None:
    raise CustomError(text)


@as_actor
class Raiser:
    def raise_builtin(self, kind: str, text: str) -> None:
        explode(kind, text)

    async def raise_builtin_async(self, kind: str, text: str) -> None:
        await asyncio.sleep(0)
        explode(kind, text)

    def raise_custom(self, text: str) -> None:
        explode_custom(text)

    def raise_cancelled(self) -> None:
        raise asyncio.CancelledError()

    async def raise_cancelled_async(self) -> None:
        await asyncio.sleep(0)
        raise asyncio.CancelledError()

    def ping(self) -> str:
        return "pong"


# -- promise 5: self-calls -----------------------------------------------------------------------


async def attempt(make_call: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    """What a call made inside a handler did: ``outcome`` is ``"returned"`` or the exception's
    class name, with ``actor_error`` (whether it is an ActorError), its text and the time taken."""
    started = time.monotonic()
    try:
        value = await make_call()
    except Exception as err:  # the test reads what happened
        return {
            "outcome": type(err).__name__,
            "actor_error": isinstance(err, ActorError),
            "message": str(err),
            "seconds": time.monotonic() - started,
        }
    return {
        "outcome": "returned",
        "actor_error": False,
        "message": repr(value),
        "seconds": time.monotonic() - started,
    }


@as_actor
class SelfCaller:
    """Calls itself from inside its own handler, three ways."""

    def __init__(self, system: Any, name: str) -> None:
        self.system = system
        self.name = name

    def ping(self) -> str:
        return "pong"

    async def via_current_actor(self) -> dict[str, Any]:
        from pulsing.actor import current_actor  # type: ignore[attr-defined]

        return await attempt(lambda: current_actor().ping())

    async def via_ref(self, ref: Any) -> dict[str, Any]:
        return await attempt(lambda: ref.ping())

    async def via_find(self) -> dict[str, Any]:
        ref = await self.system.find(self.name)
        return await attempt(lambda: ref.ping())


# -- promise 7: refs as values -------------------------------------------------------------------


def refs_in(value: Any) -> list[Any]:
    """Every ActorRef inside ``value`` (lists, tuples and dict values), in order."""
    from pulsing.actor import ActorRef

    if isinstance(value, ActorRef):
        return [value]
    if isinstance(value, (list, tuple)):
        return [r for item in value for r in refs_in(item)]
    if isinstance(value, dict):
        return [r for item in value.values() for r in refs_in(item)]
    return []


@as_actor
class Holder:
    """Receives refs and calls them; counts every call it gets."""

    def __init__(self, system: Any) -> None:
        self.system = system
        self.calls = 0

    def call_count(self) -> int:
        return self.calls

    async def call_ref(self, ref: Any, method: str = "bump") -> Any:
        self.calls += 1
        return await ref.call(method)

    async def call_all(self, value: Any, method: str = "bump") -> list[Any]:
        """Calls ``method`` on every ref inside ``value``; returns the results in order."""
        self.calls += 1
        return [await ref.call(method) for ref in refs_in(value)]

    def echo(self, value: Any) -> Any:
        self.calls += 1
        return value

    async def ref_to(self, name: str) -> Any:
        """A ref to this node's actor ``name``, as a return value."""
        self.calls += 1
        return await self.system.find(name)

    async def refs_to(self, names: list[str]) -> dict[str, Any]:
        self.calls += 1
        refs = [await self.system.find(n) for n in names]
        return {"list": refs, "tuple": tuple(refs), "nested": {"first": refs[0]}}

    async def can_find(self, name: str) -> bool:
        return await self.system.find(name) is not None


# -- promise 8: the running actor ----------------------------------------------------------------


@as_actor
class Identity:
    def __init__(self) -> None:
        self.me: Any = None
        self.system: Any = None

    async def whoami(self) -> dict[str, Any]:
        from pulsing.actor import current_actor, current_system  # type: ignore[attr-defined]

        self.me, self.system = current_actor(), current_system()
        return {"name": self.me.name, "addr": self.system.addr}

    def whoami_sync(self) -> dict[str, Any]:
        from pulsing.actor import current_actor, current_system  # type: ignore[attr-defined]

        self.me, self.system = current_actor(), current_system()
        return {"name": self.me.name, "addr": self.system.addr}

    async def my_ref(self) -> Any:
        from pulsing.actor import current_actor  # type: ignore[attr-defined]

        return current_actor()

    def ping(self) -> str:
        return "pong"


# -- the link: FIFO across tells and asks (test_link.py) -----------------------------------------


@as_actor
class Recorder:
    """Keeps the sequence numbers it is told, in the order it handles them."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def record(self, seq: int) -> None:
        self.seen.append(seq)

    def received(self) -> list[int]:
        """Every number recorded so far, in the order they were handled."""
        return self.seen


# -- the Remote Actors Guide's distributed counter (test_quic.py, --guide) -----------------------


@as_actor
class DistributedCounter:
    def __init__(self, init_value: int = 0):
        self.value = init_value

    def get(self) -> int:
        return self.value

    def increment(self, n: int = 1) -> int:
        self.value += n
        return self.value


async def guide_node_1(config: SystemConfig, done: asyncio.Event) -> None:
    """The guide's node 1, its code unchanged but for the config: serves the counter until
    ``done``."""
    system1 = await create_actor_system(config)
    try:
        counter1 = await DistributedCounter.local(system1, init_value=0)
        await system1.spawn(counter1, "counter", public=True)
        print("READY", system1.addr, flush=True)
        await done.wait()
    finally:
        await system1.shutdown()


# -- the node itself -----------------------------------------------------------------------------


@as_actor
class Control:
    """The node as seen by the tests: membership, identity, and a graceful shutdown on request."""

    def __init__(self, system: Any, done: asyncio.Event) -> None:
        self.system = system
        self.done = done
        self.shutting_down: asyncio.Task[None] | None = None

    def shutdown_soon(self, delay: float) -> str:
        """Shuts the node down gracefully (``await system.shutdown()``) ``delay`` seconds from now;
        the process then exits."""

        async def later() -> None:
            await asyncio.sleep(delay)
            try:
                await self.system.shutdown()
            finally:
                self.done.set()

        self.shutting_down = asyncio.get_running_loop().create_task(later())
        return "ok"

    def members(self) -> list[dict[str, str]]:
        return [
            {"addr": m.addr, "node_id": m.node_id, "state": m.state} for m in self.system.members()
        ]

    def node_id(self) -> str:
        return str(self.system.node_id)

    def addr(self) -> str:
        return str(self.system.addr)

    def stats(self) -> dict[str, Any]:
        """This node's ``system.stats()`` as a plain dict (``dataclasses.asdict``)."""
        return dataclasses.asdict(self.system.stats())


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mailbox-capacity", type=int)
    parser.add_argument("--stream-send-timeout", type=float)
    parser.add_argument("--ask-timeout", type=float)
    parser.add_argument("--seed", action="append", default=[])
    parser.add_argument("--transport", choices=["http", "quic"])
    parser.add_argument("--guide", action="store_true")
    parser.add_argument("--secret", action="append", default=[])
    parser.add_argument("--api-token", action="append", default=[])
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> SystemConfig:
    config = SystemConfig.with_addr("127.0.0.1:0")
    if args.seed:
        config = config.with_seeds(args.seed)
    if args.ask_timeout is not None:
        config = config.with_ask_timeout(args.ask_timeout)
    if args.mailbox_capacity is not None:
        config = config.with_mailbox_capacity(args.mailbox_capacity)
    if args.stream_send_timeout is not None:
        seconds = args.stream_send_timeout
        config = config.with_stream_send_timeout(seconds)  # type: ignore[attr-defined]
    if args.transport is not None:
        config = config.with_transport(args.transport)
    if len(args.secret) == 1:
        config = config.with_secret(args.secret[0])
    elif args.secret:
        config = config.with_secrets(args.secret)
    if args.api_token:
        config = config.with_api_tokens(args.api_token)
    return config


def _set_when_stdin_closes(loop: asyncio.AbstractEventLoop, done: asyncio.Event) -> None:
    sys.stdin.read()
    try:
        loop.call_soon_threadsafe(done.set)
    except RuntimeError:  # the loop is already closed: the node has shut down by itself
        pass


async def main(argv: list[str]) -> None:
    config = config_from(parse_args(argv))
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    threading.Thread(target=_set_when_stdin_closes, args=(loop, done), daemon=True).start()
    if parse_args(argv).guide:
        await guide_node_1(config, done)
        return
    system = await create_actor_system(config)
    try:
        counter = Counter()
        await system.spawn(Overlap(), "overlap", public=True)
        await system.spawn(Overlap(), "streamer", public=True)
        await system.spawn(counter, "counter", public=True)
        await system.spawn(Watch(counter), "counter-watch", public=True)
        await system.spawn(Counter(), "sleeper", public=True)
        await system.spawn(Raiser(), "errors", public=True)
        await system.spawn(SelfCaller(system, "self-caller"), "self-caller", public=True)
        await system.spawn(Holder(system), "holder", public=True)
        await system.spawn(Identity(), "identity", public=True)
        await system.spawn(Counter(), "shared-name", public=True)
        await system.spawn(Control(system, done), "control", public=True)
        await system.spawn(Counter(), "private-counter", public=False)
        await system.spawn(Recorder(), "recorder", public=True)
        await system.spawn(Recorder(), "pipeline", public=True)
        await system.spawn(Recorder(), "private-recorder", public=False)
        print("READY", system.addr, flush=True)
        await done.wait()
    finally:
        await system.shutdown()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
