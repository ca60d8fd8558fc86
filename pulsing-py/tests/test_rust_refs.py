"""Actor refs crossing between Rust and Python inside payloads (docs/protocol.md, "Actor refs
inside payloads"), against the Rust reference node ``examples/echo_node.rs`` in its own OS process:
a ref that a Rust actor sends decodes to a working Python ref, and a Python ref that Rust decodes
works from Rust.

The node is the built example binary (``make py-test`` builds it before running pytest).
Without it these tests fail, they do not skip: run ``cargo build --example echo_node``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pulsing.actor import (
    ActorError,
    ActorRef,
    Message,
    SystemConfig,
    as_actor,
    create_actor_system,
)

REPO = Path(__file__).resolve().parents[2]
SOURCES = (REPO / "examples" / "echo_node.rs", REPO / "examples" / "shared" / "echo.rs")
BUILD = "cargo build --example echo_node"
READY_WITHIN = 10.0
"""Seconds the node may take to print ``ready``."""
TEST_WITHIN = 8.0
"""Seconds each test's calls may take in all (under pytest-timeout's 60)."""


def echo_node_binary() -> Path:
    """The newest built ``echo_node`` example (debug or release); fails the test if there is none
    or if it is older than its sources."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    built = [
        p
        for p in (target / "debug/examples/echo_node", target / "release/examples/echo_node")
        if p.is_file()
    ]
    if not built:
        pytest.fail(f"no echo_node binary under {target}; run `{BUILD}` first", pytrace=False)
    binary = max(built, key=lambda p: p.stat().st_mtime)
    newest_source = max(s.stat().st_mtime for s in SOURCES)
    if binary.stat().st_mtime < newest_source:
        pytest.fail(f"{binary} is older than its sources; run `{BUILD}` again", pytrace=False)
    return binary


@dataclass
class EchoNode:
    """The Rust reference node, serving on ``addr`` (``"127.0.0.1:port"``)."""

    proc: subprocess.Popen[str]
    addr: str


@pytest.fixture(scope="module")
def echo_node() -> Iterator[EchoNode]:
    """``echo_node --addr 127.0.0.1:0`` until the module ends: waits (bounded) for its
    ``listening <addr>`` and ``ready`` lines, then kills it."""
    proc = subprocess.Popen(
        [str(echo_node_binary()), "--addr", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines: list[str] = []

        def read_until_ready() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line.strip())
                if line.strip() == "ready":
                    return

        reader = threading.Thread(target=read_until_ready, daemon=True)
        reader.start()
        reader.join(READY_WITHIN)
        listening = [line.split()[1] for line in lines if line.startswith("listening ")]
        if not lines or lines[-1] != "ready" or not listening:
            raise AssertionError(
                f"echo_node did not get ready within {READY_WITHIN}s; it printed {lines!r}"
                f" (exit status {proc.poll()})"
            )
        yield EchoNode(proc, listening[0])
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def run(test: Any, node: EchoNode) -> Any:
    """``await test(system, echo)`` on a fresh networked system, where ``echo`` is the node's
    ``echo`` actor; bounded by :data:`TEST_WITHIN`."""

    async def main() -> Any:
        async with await create_actor_system(SystemConfig.with_addr("127.0.0.1:0")) as system:
            echo = system.remote_ref(node.addr, "echo").with_timeout(TEST_WITHIN)
            return await test(system, echo)

    bounded: Coroutine[Any, Any, Any] = asyncio.wait_for(main(), TEST_WITHIN)
    return asyncio.run(bounded)


@as_actor
class Counter:
    def __init__(self) -> None:
        self.value = 0

    def increment(self, n: int = 1) -> int:
        self.value += n
        return self.value

    def get(self) -> int:
        return self.value


def test_a_ref_sent_by_a_rust_actor_is_a_working_python_ref(echo_node: EchoNode) -> None:
    async def test(system: Any, echo: ActorRef) -> None:
        ref = await echo.whoami()
        assert isinstance(ref, ActorRef), f"whoami returned {ref!r}"
        assert not ref.is_local
        assert ref.name == "echo"
        reply = await ref.ask(Message.single("ping", b"x"), timeout=TEST_WITHIN)
        assert (reply.msg_type, reply.payload) == ("echo", b"x")

    run(test, echo_node)


def test_a_python_ref_decoded_by_rust_is_called_back(echo_node: EchoNode) -> None:
    async def test(system: Any, echo: ActorRef) -> None:
        counter = Counter()
        counter_ref = await system.spawn(counter, "counter", public=True)
        assert await echo.call_back(counter_ref) == 1
        assert counter.value == 1
        assert await counter_ref.get() == 1

    run(test, echo_node)


def test_call_back_without_a_ref_is_a_handler_error(echo_node: EchoNode) -> None:
    async def test(system: Any, echo: ActorRef) -> None:
        with pytest.raises(ActorError) as err:
            await echo.call_back(5)
        assert err.value.type_name == "EchoError"

    run(test, echo_node)
