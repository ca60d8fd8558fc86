"""Shared helpers: plain ``asyncio.run`` (no plugin), and the network capability check."""

from __future__ import annotations

import pytest

import pulsing._pulsing as native

needs_network = pytest.mark.skipif(
    not native.NETWORK_AVAILABLE,
    reason=(
        "needs networking: pulsing::system_builder().addr(\"127.0.0.1:0\") does not build in this "
        "build (the facade has no transport wired in yet, so _pulsing.NETWORK_AVAILABLE is False)"
    ),
)


# -- peer processes for the promise tests (test_promises.py, test_api.py) ----------------------

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import inspect  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import urllib.request  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

PEER_SCRIPT = Path(__file__).with_name("_peer.py")


@dataclass
class Peer:
    """A ``_peer.py`` node in another OS process, serving on ``addr`` (``"127.0.0.1:port"``)."""

    proc: subprocess.Popen[str]
    addr: str

    def metrics(self) -> str:
        """The node's ``GET /metrics`` text (blocking; call it from a thread inside a loop)."""
        with urllib.request.urlopen(f"http://{self.addr}/metrics", timeout=5) as resp:
            return resp.read().decode()

    def metric(self, name: str) -> float:
        """The value of the unlabelled metric ``name`` (0 when the node does not list it)."""
        for line in self.metrics().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == name:
                return float(parts[1])
        return 0.0


@contextlib.contextmanager
def start_peer(
    *argv: str, ready_within: float = 20.0, env: dict[str, str] | None = None
) -> Iterator[Peer]:
    """Runs ``_peer.py *argv`` until the block ends: waits (bounded) for its ``READY <addr>`` line,
    yields a :class:`Peer`, then closes its stdin (it exits) and kills it if it lingers. ``env``:
    the process's whole environment (default: this one's)."""
    proc = subprocess.Popen(
        [sys.executable, str(PEER_SCRIPT), *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line: list[str] = []
        reader = threading.Thread(
            target=lambda: line.append(proc.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(ready_within)
        if not line or not line[0].startswith("READY "):
            proc.kill()
            got = line[0] if line else f"nothing within {ready_within}s"
            raise AssertionError(f"peer {' '.join(argv)} did not start: {got!r}")
        yield Peer(proc, line[0].split()[1])
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[str]) -> None:
    """Ends a peer started with piped stdin/stdout: closing stdin asks it to exit; after 10 s it
    is killed. Its pipes are closed either way."""
    if proc.poll() is None:
        try:
            proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None and not pipe.closed:
            pipe.close()


@pytest.fixture(scope="module")
def module_peer(request: pytest.FixtureRequest) -> Iterator[Peer]:
    """One ``_peer.py`` node shared by a test module, started with the module's ``PEER_ARGS``
    (a tuple of argv strings, default none). Tests that share it compare counts before and after."""
    if not native.NETWORK_AVAILABLE:
        pytest.skip("needs networking (see needs_network)")
    with start_peer(*getattr(request.module, "PEER_ARGS", ())) as peer:
        yield peer


def run_local(test: Any, config: Any = None) -> Any:
    """``asyncio.run`` of ``await test(system)`` on a fresh system (standalone by default)."""
    from pulsing.actor import SystemConfig, create_actor_system

    async def main() -> Any:
        async with await create_actor_system(config or SystemConfig.standalone()) as system:
            return await test(system)

    return asyncio.run(main())


def run_remote(peer: Peer, test: Any) -> Any:
    """``asyncio.run`` of ``await test(system)`` on a system here that joined ``peer``."""
    from pulsing.actor import SystemConfig, create_actor_system

    async def main() -> Any:
        config = SystemConfig.with_addr("127.0.0.1:0").with_seeds([peer.addr])
        async with await create_actor_system(config) as system:
            return await test(system)

    return asyncio.run(main())


async def found(system: Any, name: str) -> Any:
    """``await system.find(name)``, which must find it."""
    ref = await system.find(name)
    assert ref is not None, f"{name} is not visible from here"
    return ref


_TRUTHY: Any = object()


async def eventually(probe: Any, *, equals: Any = _TRUTHY, within: float = 5.0) -> Any:
    """Polls ``probe()`` (sync or async) until its value equals ``equals`` (default: until it is
    truthy), failing after ``within`` seconds; returns the value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        got = probe()
        if inspect.isawaitable(got):
            got = await got
        if (bool(got) if equals is _TRUTHY else got == equals):
            return got
        wanted = "something truthy" if equals is _TRUTHY else repr(equals)
        assert loop.time() < deadline, f"still {got!r} after {within}s, expected {wanted}"
        await asyncio.sleep(0.02)


# -- the partition test's skips, said in the summary (test_partition.py) -----------------------


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Says why the partition test was skipped, also under ``-q`` (``make py-test``): it runs only
    where the machine allows network namespaces (Linux, root, ``ip``)."""
    for report in terminalreporter.stats.get("skipped", []):
        if "test_partition.py" in report.nodeid and isinstance(report.longrepr, tuple):
            terminalreporter.write_line(f"SKIPPED {report.nodeid}: {report.longrepr[2]}")
