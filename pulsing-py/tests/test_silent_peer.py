"""A peer that stops answering without closing its sockets (SIGSTOP): calls to it raise
``NodeUnreachableError`` within the HTTP/2 keep-alive bound (interval 1 s + timeout 3 s), not by the
30 s ask timeout; after SIGCONT the same ref answers again.

The peer is a ``_peer.py`` process; the caller here joins it (``run_remote``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from typing import Any

import pytest

from conftest import found, needs_network, run_remote, start_peer
from pulsing import NodeUnreachableError

pytestmark = [
    needs_network,
    pytest.mark.skipif(sys.platform == "win32", reason="needs SIGSTOP / SIGCONT"),
]

FAIL_WITHIN = 5.0


async def timed(call: Any) -> tuple[BaseException | None, float]:
    """Awaits ``call``; returns what it raised (``None`` if it returned) and when it ended."""
    try:
        await call
    except Exception as e:  # noqa: BLE001 - the test inspects the exception
        return e, time.monotonic()
    return None, time.monotonic()


def test_calls_to_a_stopped_peer_raise_node_unreachable_and_work_again_after_sigcont() -> None:
    with start_peer() as peer:
        pid = peer.proc.pid
        stopped = False
        try:

            async def test(system: Any) -> None:
                nonlocal stopped
                sleeper = await found(system, "sleeper")
                await sleeper.count()

                # In flight when the peer stops: the handler sleeps 2 s, the stop comes 300 ms in.
                in_flight = asyncio.ensure_future(timed(sleeper.slow(2.0)))
                await asyncio.sleep(0.3)
                os.kill(pid, signal.SIGSTOP)
                stopped = True
                stop = time.monotonic()

                # Sent after the stop.
                await asyncio.sleep(0.1)
                sent = time.monotonic()
                after, after_end = await timed(sleeper.count())
                after_took = after_end - sent

                err, ended = await asyncio.wait_for(in_flight, 10)
                in_flight_took = ended - stop
                print(f"SIGSTOP: in-flight call failed {in_flight_took:.3f} s after the stop: {err}")
                print(f"SIGSTOP: call sent after the stop failed in {after_took:.3f} s: {after}")
                assert isinstance(err, NodeUnreachableError), repr(err)
                assert err.delivery == "maybe_delivered", "it was sent before the stop"
                assert in_flight_took < FAIL_WITHIN, in_flight_took
                assert isinstance(after, NodeUnreachableError), repr(after)
                assert after.delivery == "maybe_delivered", "sent on the silent connection"
                assert after_took < FAIL_WITHIN, after_took

                os.kill(pid, signal.SIGCONT)
                stopped = False
                resumed = time.monotonic()
                while True:
                    try:
                        await asyncio.wait_for(sleeper.count(), 1)
                        break
                    except (NodeUnreachableError, TimeoutError, asyncio.TimeoutError):
                        assert time.monotonic() - resumed < FAIL_WITHIN, "no answer after SIGCONT"
                        await asyncio.sleep(0.1)
                print(f"SIGCONT: answering again after {time.monotonic() - resumed:.3f} s")

            run_remote(peer, test)
        finally:
            if stopped:
                os.kill(pid, signal.SIGCONT)
