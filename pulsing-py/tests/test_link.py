"""Node-to-node links (docs/protocol.md §8) as Python sees them, and ``ActorSystem.stats()``.

1. FIFO per sender and receiver holds across tells and asks: a task that tells an actor 1,000
   times and then asks it sees all 1,000 handled first, in order, remote as local.
2. Remote tells are pipelined: a tell returns once queued on the link, so 10,000 of them go
   through, all handled.
3. What the receiving node cannot deliver (an unknown actor, a private one) is a dead letter there:
   the tell succeeds at the sender and is counted in the receiver's ``stats().dead_letters`` and
   ``pulsing_dead_letters_total{kind}``, not at the sender.
4. ``stats()`` is a frozen :class:`pulsing.SystemStats` listing every error kind.

"Remote" means the actor runs in a ``_peer.py`` process and the caller here joins it with
``SystemConfig.with_addr("127.0.0.1:0").with_seeds([addr])``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import pickle
from typing import Any

import msgpack
import pytest

from _peer import Recorder
from conftest import Peer, eventually, found, needs_network, run_local, run_remote, start_peer
from pulsing import SystemStats
from pulsing.actor import ActorRef, ActorSystem, Message, NodeUnreachableError, SystemConfig

# The wire kinds of docs/protocol.md §5, as ErrorKind::as_str() names them.
KINDS = {
    "not_found",
    "timeout",
    "overloaded",
    "stopped",
    "actor_error",
    "bad_request",
    "too_large",
    "unreachable",
    "shutdown",
    "stream_truncated",
    "config",
    "already_exists",
    "unauthorized",
    "other",
}
MEMBER_STATES = {"alive", "suspect", "down", "left"}


def record(seq: int) -> Message:
    """The tell of ``Recorder.record(seq)`` (a method call as a plain message)."""
    return Message.single("record", msgpack.packb([[seq], {}]))


async def tell_then_ask(ref: ActorRef, n: int, within: float) -> list[int]:
    """Tells ``ref`` to record 0..n-1, one after the other from this task, then asks what it
    received; all of it within ``within`` seconds."""

    async def run() -> list[int]:
        for seq in range(n):
            assert await ref.tell(record(seq)) is None
        return await ref.received()  # type: ignore[no-any-return]

    return await asyncio.wait_for(run(), within)


async def in_thread(fn: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


# -- 1. FIFO across tells and asks ---------------------------------------------------------------


def test_a_local_ask_after_1000_tells_sees_them_all_handled_in_order() -> None:
    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(Recorder(), "recorder")
        assert await tell_then_ask(ref, 1_000, 20) == list(range(1_000))

    run_local(test)


@needs_network
def test_a_remote_ask_after_1000_tells_sees_them_all_handled_in_order(module_peer: Peer) -> None:
    async def test(system: ActorSystem) -> None:
        ref = await found(system, "recorder")
        assert not ref.is_local
        assert await tell_then_ask(ref, 1_000, 30) == list(range(1_000))

    run_remote(module_peer, test)


# -- 2. remote tells are pipelined ---------------------------------------------------------------


@needs_network
def test_10000_remote_tells_go_through_and_are_all_handled(module_peer: Peer) -> None:
    async def test(system: ActorSystem) -> None:
        ref = await found(system, "pipeline")
        assert await tell_then_ask(ref, 10_000, 45) == list(range(10_000))
        stats = await found(system, "control")
        assert (await stats.stats())["dead_letters"] == dict.fromkeys(KINDS, 0)

    run_remote(module_peer, test)


# -- 3. dead letters -----------------------------------------------------------------------------


def dead_letter_lines(text: str) -> dict[str, float]:
    """``pulsing_dead_letters_total`` of a ``/metrics`` text, by kind."""
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        prefix, suffix = 'pulsing_dead_letters_total{kind="', '"}'
        if name.startswith(prefix) and name.endswith(suffix):
            out[name[len(prefix) : -len(suffix)]] = float(value)
    return out


def dead_letter_scenario(peer: Peer, actor: str) -> None:
    """A tell to ``actor`` on ``peer`` succeeds here and becomes one ``not_found`` dead letter
    there (and none here)."""

    async def scenario(system: ActorSystem) -> None:
        control = await found(system, "control")
        before = await control.stats()
        assert before["dead_letters"] == dict.fromkeys(KINDS, 0)

        ref = system.remote_ref(peer.addr, actor)
        assert await asyncio.wait_for(ref.tell(record(1)), 5) is None

        async def not_found() -> int:
            return (await control.stats())["dead_letters"]["not_found"]  # type: ignore[no-any-return]

        await eventually(not_found, equals=1, within=5)
        after = await control.stats()
        assert after["dead_letters"] == {**dict.fromkeys(KINDS, 0), "not_found": 1}
        assert after["bad_links"] == 0
        # Counted where the message was dropped, not by the sender, which was told it was sent.
        assert system.stats().dead_letters == dict.fromkeys(KINDS, 0)

        text = await in_thread(peer.metrics)
        assert 'pulsing_dead_letters_total{kind="not_found"} 1' in text.splitlines()
        assert dead_letter_lines(text) == {**dict.fromkeys(KINDS, 0.0), "not_found": 1.0}

    async def test(system: ActorSystem) -> None:
        await asyncio.wait_for(scenario(system), 30)

    run_remote(peer, test)


@needs_network
def test_a_tell_to_an_unknown_remote_actor_is_a_not_found_dead_letter_on_the_peer() -> None:
    with start_peer() as peer:
        dead_letter_scenario(peer, "no-such-actor")


@needs_network
def test_a_tell_to_a_private_remote_actor_is_a_not_found_dead_letter_on_the_peer() -> None:
    with start_peer() as peer:
        dead_letter_scenario(peer, "private-recorder")


# -- 4. stats() ----------------------------------------------------------------------------------


def test_a_fresh_system_has_no_dead_letters_and_lists_every_kind() -> None:
    async def test(system: ActorSystem) -> None:
        stats = system.stats()
        assert isinstance(stats, SystemStats)
        assert stats.dead_letters == dict.fromkeys(KINDS, 0)
        assert stats.errors == dict.fromkeys(KINDS, 0)
        assert set(stats.members) == MEMBER_STATES
        assert stats.actors == 0
        assert stats.bad_links == stats.panics == stats.restarts == stats.expired_asks == 0
        assert stats.in_flight_asks == stats.queued == 0
        with pytest.raises(dataclasses.FrozenInstanceError):
            stats.bad_links = 1  # type: ignore[misc]
        assert pickle.loads(pickle.dumps(stats)) == stats
        assert dataclasses.asdict(stats)["dead_letters"] == dict.fromkeys(KINDS, 0)

        await system.spawn(Recorder(), "recorder")
        assert system.stats().actors == 1

    run_local(test)


@needs_network
def test_stats_counts_errors_by_wire_kind_and_still_answers_after_shutdown() -> None:
    async def test(system: ActorSystem) -> ActorSystem:
        ref = system.remote_ref("127.0.0.1:1", "nobody")  # nothing serves there
        with pytest.raises(NodeUnreachableError):
            await asyncio.wait_for(ref.ask(Message.single("x")), 10)
        assert system.stats().errors == {**dict.fromkeys(KINDS, 0), "unreachable": 1}
        return system

    system = run_local(test, SystemConfig.with_addr("127.0.0.1:0"))
    assert system.stats().errors["unreachable"] == 1
    assert system.stats().dead_letters == dict.fromkeys(KINDS, 0)
