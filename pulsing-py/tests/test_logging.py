"""The Rust core's ``tracing`` events reach :mod:`logging` under ``pulsing.*`` loggers, at the level
the Python loggers allow, or as ``RUST_LOG`` says when it is set (see ``pulsing-py/src/log.rs``).

The event used is deterministic: bytes that are not HTTP sent to a serving system make the HTTP
server log ``connection ended with an error`` at DEBUG, under ``pulsing.transport_http.server``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from conftest import needs_network
from pulsing.actor import SystemConfig, create_actor_system

pytestmark = needs_network

SERVER_LOGGER = "pulsing.transport_http.server"
SERVER_EVENT = "connection ended with an error"

no_rust_log = pytest.mark.skipif(
    bool(os.environ.get("RUST_LOG", "").strip()),
    reason="RUST_LOG is set in this process, so it, not the Python levels, decides what is logged",
)


class Collect(logging.Handler):
    """Keeps every record it is handed."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def pulsing_logger(level: int) -> Iterator[Collect]:
    """A handler on the ``pulsing`` logger, set to ``level``; both undone on exit."""
    logger = logging.getLogger("pulsing")
    old = logger.level
    handler = Collect()
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


async def send_garbage(addr: str) -> None:
    """Sends bytes that are not HTTP to ``addr``; waits (at most 5 s) until the server hangs up."""
    host, port = addr.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"NOT HTTP\x00\r\n\r\n")
        await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        await writer.wait_closed()


def is_server_event(record: logging.LogRecord) -> bool:
    return record.name == SERVER_LOGGER and SERVER_EVENT in record.getMessage()


async def wait_for(
    handler: Collect, pred: Callable[[logging.LogRecord], bool], bound: float
) -> list[logging.LogRecord]:
    """The records matching ``pred`` once there is one, or after ``bound`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    while True:
        found = [r for r in handler.records if pred(r)]
        if found or loop.time() >= deadline:
            return found
        await asyncio.sleep(0.01)


@no_rust_log
def test_a_core_debug_event_reaches_its_pulsing_logger_when_the_logger_allows_debug() -> None:
    async def main() -> list[logging.LogRecord]:
        with pulsing_logger(logging.DEBUG) as handler:
            async with await create_actor_system(SystemConfig.with_addr("127.0.0.1:0")) as system:
                assert system.addr is not None
                await send_garbage(system.addr)
                return await wait_for(handler, is_server_event, 5)

    found = asyncio.run(main())
    assert found, f"no {SERVER_EVENT!r} record under {SERVER_LOGGER} within 5 s"
    record = found[0]
    assert record.levelno == logging.DEBUG
    assert record.pathname.endswith("server.rs")
    assert record.lineno > 0
    assert record.threadName == "pulsing-tokio"
    assert "peer=127.0.0.1:" in record.getMessage()


@no_rust_log
def test_debug_events_are_not_recorded_while_the_logger_allows_only_warnings() -> None:
    async def main() -> tuple[list[logging.LogRecord], list[logging.LogRecord]]:
        with pulsing_logger(logging.WARNING) as handler:
            async with await create_actor_system(SystemConfig.with_addr("127.0.0.1:0")) as system:
                assert system.addr is not None
                await send_garbage(system.addr)
                # The server logs right after it hangs up; give a queued record time to arrive.
                await asyncio.sleep(0.5)
                quiet = [r for r in handler.records if r.levelno < logging.WARNING]
            # The same with DEBUG allowed, read when the next system is created, does arrive.
            logging.getLogger("pulsing").setLevel(logging.DEBUG)
            async with await create_actor_system(SystemConfig.with_addr("127.0.0.1:0")) as system:
                assert system.addr is not None
                await send_garbage(system.addr)
                return quiet, await wait_for(handler, is_server_event, 5)

    quiet, found = asyncio.run(main())
    assert quiet == []
    assert found, "the control with DEBUG allowed got no record"


@no_rust_log
def test_a_level_set_on_a_child_logger_lets_its_events_through() -> None:
    async def main() -> list[logging.LogRecord]:
        child = logging.getLogger(SERVER_LOGGER)
        with pulsing_logger(logging.WARNING) as handler:
            child.setLevel(logging.DEBUG)
            try:
                async with await create_actor_system(
                    SystemConfig.with_addr("127.0.0.1:0")
                ) as system:
                    assert system.addr is not None
                    await send_garbage(system.addr)
                    return await wait_for(handler, is_server_event, 5)
            finally:
                child.setLevel(logging.NOTSET)

    assert asyncio.run(main())


# Run with RUST_LOG set: a handler on `pulsing`, the loggers' levels left alone (WARNING, from the
# root), non-HTTP bytes sent to a serving system; waits at most 0.5 s for the event named by
# argv[1], then prints the records as JSON.
RUST_LOG_SCRIPT = """
import asyncio, json, logging, sys
from pulsing.actor import SystemConfig, create_actor_system

records = []
class Collect(logging.Handler):
    def emit(self, record):
        records.append([record.name, record.levelno, record.getMessage()])
logging.getLogger("pulsing").addHandler(Collect())

async def main():
    async with await create_actor_system(SystemConfig.with_addr("127.0.0.1:0")) as system:
        host, port = system.addr.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"NOT HTTP\\x00\\r\\n\\r\\n")
        await asyncio.wait_for(reader.read(), 5)
        writer.close()
        await writer.wait_closed()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 0.5
        while loop.time() < deadline and not any(sys.argv[1] in r[2] for r in records):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)

asyncio.run(main())
print(json.dumps(records))
"""


def run_with_rust_log(rust_log: str) -> list[tuple[str, int, str]]:
    env = dict(os.environ, RUST_LOG=rust_log)
    out = subprocess.run(
        [sys.executable, "-c", RUST_LOG_SCRIPT, SERVER_EVENT],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    return [(str(name), int(level), str(message)) for name, level, message in rows]


@pytest.mark.parametrize(
    ("rust_log", "expected"),
    [
        ("debug", True),
        ("warn,pulsing_transport_http=debug", True),
        ("debug,pulsing_transport_http::server=warn", False),
        ("error", False),
    ],
)
def test_rust_log_decides_which_events_reach_the_handlers(rust_log: str, expected: bool) -> None:
    records = run_with_rust_log(rust_log)
    found = [r for r in records if r[0] == SERVER_LOGGER and SERVER_EVENT in r[2]]
    assert bool(found) == expected, records
    assert all(level == logging.DEBUG for _, level, _ in found)


def test_a_bad_rust_log_directive_is_reported_once_a_system_runs() -> None:
    records = run_with_rust_log("debug,pulsing_core[span]=trace")
    assert any(
        name == "pulsing"
        and level == logging.WARNING
        and "pulsing_core[span]=trace" in message
        for name, level, message in records
    ), records


EXPOSED_EVENT = "without a cluster secret"


def is_exposed_warning(record: logging.LogRecord) -> bool:
    return record.levelno == logging.WARNING and EXPOSED_EVENT in record.getMessage()


@no_rust_log
@pytest.mark.skipif(
    bool(os.environ.get("PULSING_SECRET")),
    reason="PULSING_SECRET is set in this process: every node has a secret",
)
def test_a_node_exposed_without_a_secret_warns_once_at_start() -> None:
    """Bound to a non-loopback address without a secret, a node warns once that anyone who can
    reach it can call and join it; with a secret, or on loopback, it does not."""

    async def main() -> tuple[list[logging.LogRecord], list[logging.LogRecord]]:
        with pulsing_logger(logging.WARNING) as handler:
            async with await create_actor_system(SystemConfig.with_addr("0.0.0.0:0")):
                first = await wait_for(handler, is_exposed_warning, 5)
            secured = SystemConfig.with_addr("0.0.0.0:0").with_secret("exposed-test-secret")
            async with await create_actor_system(secured):
                await asyncio.sleep(0.3)
            async with await create_actor_system(SystemConfig.with_addr("127.0.0.1:0")):
                await asyncio.sleep(0.3)
            return first, [r for r in handler.records if is_exposed_warning(r)]

    first, every = asyncio.run(main())
    assert first, f"no warning {EXPOSED_EVENT!r} within 5 s"
    assert "PULSING_SECRET" in first[0].getMessage()
    assert len(every) == 1, [r.getMessage() for r in every]
