"""The guide's walk-through across two real OS processes, and what happens when the peer dies.

Skipped, with the reason, while this build has no transport (``_pulsing.NETWORK_AVAILABLE``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import needs_network, stop_process
from pulsing.actor import (
    ActorError,
    ActorNotFoundError,
    AskTimeoutError,
    NodeUnreachableError,
    SystemConfig,
    create_actor_system,
)

pytestmark = needs_network

NODE = Path(__file__).with_name("_node.py")


@pytest.fixture
def peer() -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A seed node in another process; yields ``(process, addr)``."""
    proc = subprocess.Popen(
        [sys.executable, str(NODE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # bounded by the test timeout
        assert line.startswith("READY "), f"peer did not start: {line!r}"
        yield proc, line.split()[1]
    finally:
        stop_process(proc)


def joining(seed: str) -> SystemConfig:
    return SystemConfig.with_addr("127.0.0.1:0").with_seeds([seed]).with_ask_timeout(10)


@pytest.mark.parametrize("wait_for_sync", [True, False], ids=["with-sleep", "without-sleep"])
def test_guide_walkthrough_across_two_processes(peer: tuple[object, str], wait_for_sync: bool) -> None:
    _, seed = peer

    async def main() -> None:
        async with await create_actor_system(joining(seed)) as system2:
            assert system2.addr is not None and system2.addr != seed
            if wait_for_sync:
                await asyncio.sleep(1.0)
            assert await system2.has_actor("counter")
            remote_counter = await system2.find("counter")
            assert remote_counter is not None and not remote_counter.is_local
            assert await remote_counter.get() == 0
            assert await remote_counter.increment(5) == 5
            assert [t async for t in remote_counter.tokens(3)] == ["t0", "t1", "t2"]
            with pytest.raises(ActorError) as info:
                await remote_counter.fail()
            assert info.value.type_name == "ValueError"
            with pytest.raises(ActorError, match="nope"):
                await remote_counter.nope()

    asyncio.run(main())


def test_private_actor_is_invisible_from_another_node(peer: tuple[object, str]) -> None:
    _, seed = peer

    async def main() -> None:
        async with await create_actor_system(joining(seed)) as system2:
            await asyncio.sleep(1.0)
            assert await system2.has_actor("counter")
            assert not await system2.has_actor("private-counter")
            assert await system2.find("private-counter") is None
            with pytest.raises(ActorNotFoundError):
                await system2.remote_ref(seed, "private-counter").get()

    asyncio.run(main())


def test_killed_peer_fails_calls_quickly(peer: tuple[subprocess.Popen[str], str]) -> None:
    proc, seed = peer

    async def main() -> None:
        async with await create_actor_system(joining(seed)) as system2:
            remote_counter = await system2.find("counter")
            assert remote_counter is not None
            assert await remote_counter.increment(1) == 1
            proc.kill()
            proc.wait()
            started = time.monotonic()
            with pytest.raises((NodeUnreachableError, ActorNotFoundError)) as info:
                await remote_counter.get()
            assert not isinstance(info.value, AskTimeoutError)
            assert time.monotonic() - started < 5.0

    asyncio.run(main())


def test_a_refused_connection_is_not_delivered_and_says_so() -> None:
    async def main() -> None:
        async with await create_actor_system(SystemConfig.with_addr("127.0.0.1:0")) as system:
            # A port nobody listens on (this system's own port + a bind that was closed).
            probe = await create_actor_system(SystemConfig.with_addr("127.0.0.1:0"))
            gone = str(probe.addr)
            await probe.shutdown()
            with pytest.raises(NodeUnreachableError) as info:
                await system.remote_ref(gone, "counter").get()
            assert info.value.delivery == "not_delivered"

    asyncio.run(main())
