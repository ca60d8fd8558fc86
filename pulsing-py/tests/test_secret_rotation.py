"""The cluster secret under change and under attack (``docs/security.md``), as Python users see it.

1. Rotation without outage: three ``_peer.py`` nodes on secret A are moved to secret B by rolling
   restarts, one node at a time (``[A, B]``, then ``[B, A]``, then ``[B]``), while this process, a
   member too, keeps calling the running nodes and having them call each other: no call fails.
   Afterwards a node with A alone cannot join.
2. A flood of 5,000 connection attempts (garbage, and half TLS handshakes held open) leaves the
   node serving its members, drops every half handshake, and still lets a new member join.

Every node other than this process's runs in its own OS process on 127.0.0.1, and every wait is
bounded. (``tests/secret_processes.rs`` checks the same from Rust.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from _peer import Counter
from conftest import Peer, eventually, found, needs_network, start_peer
from pulsing.actor import (
    ActorRef,
    ActorSystem,
    PulsingError,
    SystemConfig,
    UnauthorizedError,
    create_actor_system,
)

SECRET_A = "rotation-secret-a-7e1f"
SECRET_B = "rotation-secret-b-2c94"

# Bound on one call made by a background caller: a failure, not a hang, if exceeded.
CALL_BOUND = 5.0
# Bound on cluster views settling after a join or a leave (gossip on loopback takes well under a
# second; this is only the failure bound).
SETTLE = 10.0
# How long a refused join may take: the cluster's join bound (join_timeout 5 s + 2 x join_retry
# 0.5 s, pulsing-cluster `ClusterConfig`), plus slack for a loaded machine.
JOIN_BOUND = 6.0 + 3.0


def child_env() -> dict[str, str]:
    """This process's environment without ``PULSING_SECRET``: a child's secrets are its flags."""
    return {k: v for k, v in os.environ.items() if k != "PULSING_SECRET"}


async def in_thread(fn: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def config(secrets: list[str], seed: str | None = None) -> SystemConfig:
    """A node of this process: presents ``secrets[0]``, accepts them all, joins ``seed``."""
    cfg = SystemConfig.with_addr("127.0.0.1:0").with_secrets(secrets).with_ask_timeout(CALL_BOUND)
    return cfg.with_seeds([seed]) if seed is not None else cfg


@dataclass
class Node:
    """A ``_peer.py`` node in another OS process, under the name ``name``."""

    name: str
    peer: Peer
    running: contextlib.AbstractContextManager[Peer]

    @property
    def addr(self) -> str:
        return self.peer.addr


async def start_node(name: str, secrets: list[str], seed: str | None = None) -> Node:
    """Starts a ``_peer.py`` node with ``secrets`` (joining ``seed`` if given) on a thread, so the
    loop keeps running; bounded by ``start_peer``'s ready bound."""
    argv = ["--ask-timeout", str(CALL_BOUND)]
    for secret in secrets:
        argv += ["--secret", secret]
    if seed is not None:
        argv += ["--seed", seed]
    running = start_peer(*argv, env=child_env())
    started = time.monotonic()
    peer: Peer = await in_thread(running.__enter__)
    print(f"{name}: ready at {peer.addr} in {time.monotonic() - started:.2f}s")
    return Node(name, peer, running)


async def stop_node(node: Node) -> None:
    """Stops ``node`` gracefully (stdin closed: it leaves and exits; killed after 10 s) and checks
    that it exited 0."""
    started = time.monotonic()
    await in_thread(node.running.__exit__, None, None, None)
    code = node.peer.proc.returncode
    print(f"{node.name}: left and exited ({code}) in {time.monotonic() - started:.2f}s")
    assert code == 0, f"{node.name} did not leave and exit cleanly: exit {code}"


async def alive_seen_by(system: ActorSystem, addr: str) -> set[str]:
    """The addresses the node at ``addr`` lists as alive (asked through ``system``)."""
    control = system.remote_ref(addr, "control").with_timeout(CALL_BOUND)
    members: list[dict[str, str]] = await control.members()
    return {m["addr"] for m in members if m["state"] == "alive"}


async def converged(system: ActorSystem, addrs: list[str]) -> float:
    """Waits until every node at ``addrs``, and ``system``, list exactly ``addrs`` and
    ``system.addr`` as alive; returns how long it took."""
    assert system.addr is not None
    expected = {*addrs, system.addr}
    started = time.monotonic()

    async def settled() -> bool:
        if {m.addr for m in system.members() if m.state == "alive"} != expected:
            return False
        for addr in addrs:
            if await alive_seen_by(system, addr) != expected:
                return False
        return True

    await eventually(settled, within=SETTLE)
    return time.monotonic() - started


# -- 1. rotation ---------------------------------------------------------------------------------


@dataclass
class Rotation:
    """What the background caller works with, and what it counted."""

    system: ActorSystem
    """This process's node, with secrets every running node accepts."""
    running: dict[str, str]
    """The nodes running and not being restarted: name -> address."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held for a round: a node leaves ``running`` only between rounds."""
    ok: int = 0
    failed: list[str] = field(default_factory=list)
    rounds: int = 0


async def bump(system: ActorSystem, name: str, addr: str) -> str | None:
    """This node bumps the counter of the node at ``addr``: None, or what went wrong."""
    try:
        got = await system.remote_ref(addr, "counter").with_timeout(CALL_BOUND).bump()
    except PulsingError as e:
        return f"-> {name}({addr}): {type(e).__name__}: {e}"
    return None if isinstance(got, int) else f"-> {name}({addr}): answered {got!r}"


async def relay(
    system: ActorSystem, source: tuple[str, str], target: tuple[str, str]
) -> str | None:
    """The node at ``source`` asks the node at ``target`` its address (``Holder.call_ref``, node
    to node): None, or what went wrong."""
    what = f"{source[0]}({source[1]}) -> {target[0]}({target[1]})"
    holder = system.remote_ref(source[1], "holder").with_timeout(CALL_BOUND)
    try:
        got = await holder.call_ref(system.remote_ref(target[1], "control"), "addr")
    except PulsingError as e:
        return f"{what}: {type(e).__name__}: {e}"
    return None if got == target[1] else f"{what}: answered {got!r}"


async def call_round(state: Rotation) -> None:
    """One round: this node bumps every running node's counter, and has every running node ask
    every other one its address (node to node, across the secrets they hold)."""
    async with state.lock:
        running = list(state.running.items())
        for source in running:
            problems = [await bump(state.system, *source)]
            problems += [await relay(state.system, source, t) for t in running if t != source]
            state.ok += problems.count(None)
            state.failed += [p for p in problems if p is not None]
        state.rounds += 1


async def keep_calling(state: Rotation, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await call_round(state)
        await asyncio.sleep(0.02)


# How long a restarted node stays away before it starts again (the two others keep calling).
AWAY = 0.3
# How long all three nodes call each other after a restart, before the next one.
BACK = 0.5


async def restart(state: Rotation, nodes: list[Node], i: int, secrets: list[str]) -> str:
    """Restarts ``nodes[i]`` with ``secrets``, joining through one of the others, and waits until
    every view has converged; the background caller leaves it alone meanwhile. Says how it went."""
    node = nodes[i]
    started = time.monotonic()
    async with state.lock:
        del state.running[node.name]
        ok_before = state.ok
    await stop_node(node)
    # The two others keep being called while this one is away.
    await asyncio.sleep(AWAY)
    others = [n.addr for n in nodes if n is not node]
    seed = others[i % len(others)]
    nodes[i] = await start_node(node.name, secrets, seed)
    took = await converged(state.system, [n.addr for n in nodes])
    async with state.lock:
        ok_away = state.ok - ok_before
        state.running[node.name] = nodes[i].addr
    assert ok_away > 0, f"no call succeeded while {node.name} was away"
    return (
        f"{node.name} {node.addr} -> {nodes[i].addr} via {seed}: {ok_away} calls ok while away, "
        f"converged {took:.2f}s after ready, restart {time.monotonic() - started:.2f}s in all"
    )


async def present_b(state: Rotation, nodes: list[Node]) -> None:
    """Replaces this process's node ([A, B], presenting A) by one with [B, A]: every node holds
    [B, A] now, so they accept it, and nodes with B alone will too."""
    new = await create_actor_system(config([SECRET_B, SECRET_A], nodes[0].addr))
    async with state.lock:
        old, state.system = state.system, new
    await old.shutdown()
    took = await converged(new, [n.addr for n in nodes])
    print(f"this node now presents B (with [B, A]): converged in {took:.2f}s")


async def rotate(state: Rotation, nodes: list[Node]) -> None:
    """Moves ``nodes`` from A to B, one node at a time: [A, B], then [B, A], then [B]."""
    phases = {"[A, B]": [SECRET_A, SECRET_B], "[B, A]": [SECRET_B, SECRET_A], "[B]": [SECRET_B]}
    for phase, secrets in phases.items():
        if secrets == [SECRET_B]:
            await present_b(state, nodes)
        for i in range(len(nodes)):
            done = await restart(state, nodes, i, secrets)
            # All three call each other, across the secrets they now hold, for a while.
            await asyncio.sleep(BACK)
            print(f"phase {phase}: {done}; so far {state.ok} ok, {len(state.failed)} failed")


async def a_alone_is_refused(system: ActorSystem, nodes: list[Node]) -> None:
    """A node with A alone cannot join the rotated cluster, and never becomes a member."""
    seed = nodes[0].addr
    started = time.monotonic()
    with pytest.raises(UnauthorizedError) as refused:
        stranger = await create_actor_system(config([SECRET_A], seed))
        await stranger.shutdown()
    elapsed = time.monotonic() - started
    print(f"after the rotation, [A] is refused in {elapsed:.2f}s: {refused.value}")
    assert elapsed <= JOIN_BOUND
    assert seed in str(refused.value), refused.value
    alive = await alive_seen_by(system, seed)
    assert alive == {*(n.addr for n in nodes), system.addr}, alive


@needs_network
@pytest.mark.timeout(35)
def test_rotation_without_outage() -> None:
    async def main() -> None:
        test_started = time.monotonic()
        nodes: list[Node] = []
        state: Rotation | None = None
        try:
            nodes.append(await start_node("n0", [SECRET_A]))
            for name in ("n1", "n2"):
                nodes.append(await start_node(name, [SECRET_A], nodes[0].addr))
            system = await create_actor_system(config([SECRET_A, SECRET_B], nodes[0].addr))
            state = Rotation(system, {n.name: n.addr for n in nodes})
            took = await converged(system, [n.addr for n in nodes])
            print(f"three nodes with [A] and this one with [A, B] converged in {took:.2f}s")
            stop = asyncio.Event()
            caller = asyncio.ensure_future(keep_calling(state, stop))
            try:
                await asyncio.sleep(0.3)
                await rotate(state, nodes)
                await asyncio.sleep(0.3)
            finally:
                stop.set()
                await caller
            print(
                f"rotation A -> B in {time.monotonic() - test_started:.1f}s: {state.rounds} "
                f"rounds, {state.ok} calls ok, {len(state.failed)} failed"
            )
            assert state.failed == [], f"failed calls to running nodes: {state.failed}"
            assert state.ok > 0
            await a_alone_is_refused(state.system, nodes)
        finally:
            if state is not None:
                await state.system.shutdown()
            for node in nodes:
                await stop_node(node)

    asyncio.run(main())


# -- 2. connection flood -------------------------------------------------------------------------

# Connection attempts in the flood.
FLOOD = 5_000
# Flood connections open at once: about twice the node's bound on handshakes in progress (256) in
# half handshakes, so the bound is reached and older half handshakes are closed to make room.
FLOOD_CONCURRENCY = 1_000
# How long a half handshake is held open at most (the node's handshake timeout is 5 s).
HOLD = 6.0
# A half handshake closed by the node within this long was closed for a newer one (the bound), not
# timed out (this process's loop is busy with a thousand connections: more slack than Rust's
# 100 ms).
AT_ONCE = 1.0
# The first bytes of a TLS ClientHello record, announcing far more than is sent.
PARTIAL_HELLO = bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC])


@dataclass
class Flood:
    """What became of the flood's connections."""

    connect_failed: int = 0
    garbage_sent: int = 0
    hello_closed_at_once: int = 0
    """Half handshakes closed by the node within ``AT_ONCE`` (the bound: newer ones took their
    place)."""
    hello_closed_later: int = 0
    """Half handshakes closed by the node later (the handshake timeout)."""
    hello_held: int = 0
    """Half handshakes still open when this test closed them, after ``HOLD``."""
    hello_longest: float = 0.0
    """The longest a half handshake stayed open before the node closed it, in seconds."""


async def until_closed(reader: asyncio.StreamReader) -> None:
    """Reads until the other end closes (EOF or a reset)."""
    with contextlib.suppress(OSError):
        while await reader.read(512):
            pass


async def flood_one(host: str, port: int, i: int, flood: Flood) -> None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 3.0)
    except (OSError, asyncio.TimeoutError):
        flood.connect_failed += 1
        return
    try:
        if i % 2 == 0:
            rng = random.Random(i)
            with contextlib.suppress(OSError):
                writer.write(rng.randbytes(16 + rng.randrange(496)))
                await writer.drain()
            flood.garbage_sent += 1
            return
        sent = time.monotonic()
        try:
            writer.write(PARTIAL_HELLO)
            await writer.drain()
        except OSError:
            flood.hello_closed_at_once += 1
            return
        try:
            await asyncio.wait_for(until_closed(reader), HOLD)
        except asyncio.TimeoutError:
            flood.hello_held += 1
            return
        open_for = time.monotonic() - sent
        if open_for < AT_ONCE:
            flood.hello_closed_at_once += 1
        else:
            flood.hello_closed_later += 1
            flood.hello_longest = max(flood.hello_longest, open_for)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def run_flood(addr: str, flood: Flood, started: asyncio.Event) -> Flood:
    """``FLOOD`` connection attempts to ``addr``, ``FLOOD_CONCURRENCY`` at a time; ``started`` is
    set once a quarter of them were made."""
    host, port = addr.rsplit(":", 1)
    permits = asyncio.Semaphore(FLOOD_CONCURRENCY)

    async def one(i: int) -> None:
        try:
            await flood_one(host, int(port), i, flood)
        finally:
            permits.release()

    tasks = []
    for i in range(FLOOD):
        if i == FLOOD // 4:
            started.set()
        await permits.acquire()
        tasks.append(asyncio.ensure_future(one(i)))
    await asyncio.gather(*tasks)
    return flood


@dataclass
class Service:
    """What the checks of the member's service counted."""

    ok: int = 0
    failed: list[str] = field(default_factory=list)
    slowest: float = 0.0


def served(got: Any, what: str) -> str | None:
    """None if ``got`` is a counter's answer, else what went wrong."""
    return None if isinstance(got, int) else f"{what} answered {got!r}"


async def keep_checking(
    system: ActorSystem, peer_addr: str, mine: ActorRef, stop: asyncio.Event
) -> Service:
    """Every ~20 ms: this node bumps the peer's counter; every tenth time the peer also calls this
    node's counter back and this node still sees the peer alive."""
    service = Service()
    counter = (await found(system, "counter")).with_timeout(CALL_BOUND)
    holder = (await found(system, "holder")).with_timeout(CALL_BOUND)
    n = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            problem = served(await counter.bump(), "the peer's counter")
            if n % 10 == 0:
                problem = problem or served(await holder.call_ref(mine), "the peer calling back")
                states = {m.addr: m.state for m in system.members()}
                if states.get(peer_addr) != "alive":
                    problem = problem or f"the peer is {states.get(peer_addr)}: {states}"
        except PulsingError as e:
            problem = f"after {time.monotonic() - started:.2f}s: {e!r}"
        if problem is None:
            service.ok += 1
        else:
            service.failed.append(problem)
        service.slowest = max(service.slowest, time.monotonic() - started)
        n += 1
        await asyncio.sleep(0.02)
    return service


@contextlib.contextmanager
def open_files_at_least(n: int) -> Iterator[None]:
    """Raises this process's soft limit on open files to ``n`` (at most the hard limit) for the
    block."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = n if hard == resource.RLIM_INFINITY else min(n, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@needs_network
@pytest.mark.timeout(20)
def test_connection_flood_leaves_members_served() -> None:
    async def main() -> None:
        peer = await start_node("peer", [SECRET_A])
        try:
            async with await create_actor_system(config([SECRET_A], peer.addr)) as system:
                mine = await system.spawn(Counter(), "mine", public=True)
                took = await converged(system, [peer.addr])
                print(f"this node joined the peer, views converged in {took:.2f}s")

                stop = asyncio.Event()
                checks = asyncio.ensure_future(keep_checking(system, peer.addr, mine, stop))
                started = time.monotonic()
                flood, under_way = Flood(), asyncio.Event()
                during: Node | None = None
                try:
                    flooding = asyncio.ensure_future(run_flood(peer.addr, flood, under_way))
                    await under_way.wait()
                    # A node joins while the peer's handshake places are taken by half handshakes.
                    joining = time.monotonic()
                    during = await start_node("during", [SECRET_A], peer.addr)
                    joined_in = time.monotonic() - joining
                    joined_while_flooding = not flooding.done()
                    await flooding
                    flood_took = time.monotonic() - started
                    # A moment after the flood, still served.
                    await asyncio.sleep(0.5)
                finally:
                    stop.set()
                    service = await checks
                try:
                    print(
                        f"flood of {FLOOD} connections ({FLOOD_CONCURRENCY} at a time) in "
                        f"{flood_took:.2f}s: {flood}"
                    )
                    print(
                        f"during the flood: {service.ok} checks ok, {len(service.failed)} "
                        f"failed, slowest {service.slowest:.3f}s"
                    )
                    assert service.failed == [], f"the member was not served: {service.failed}"
                    assert service.ok > 0
                    assert flood.hello_held == 0, f"half handshakes open after {HOLD}s: {flood}"
                    assert flood.hello_closed_at_once > 0, f"the bound was not reached: {flood}"
                    assert during is not None
                    print(
                        f"during the flood (still going: {joined_while_flooding}), a node joined "
                        f"in {joined_in:.2f}s"
                    )
                    await converged(system, [peer.addr, during.addr])
                finally:
                    if during is not None:
                        await stop_node(during)

                # A new member with the secret still joins the flooded node.
                joined_started = time.monotonic()
                late = await start_node("late", [SECRET_A], peer.addr)
                try:
                    took = await converged(system, [peer.addr, late.addr])
                    relay = system.remote_ref(late.addr, "holder").with_timeout(CALL_BOUND)
                    got = await relay.call_ref(system.remote_ref(peer.addr, "control"), "addr")
                    assert got == peer.addr
                    print(
                        f"after the flood, a new node joined and relays to the peer in "
                        f"{time.monotonic() - joined_started:.2f}s (views converged {took:.2f}s "
                        "after ready)"
                    )
                finally:
                    await stop_node(late)
        finally:
            await stop_node(peer)

    with open_files_at_least(FLOOD_CONCURRENCY + 1_000):
        asyncio.run(main())
