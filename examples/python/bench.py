"""Calls per second of a counter actor's ``increment(1)``, printed as one JSON object.

    python examples/python/bench.py [--calls N]

Scenarios (each: ``sequential`` = one caller awaiting each call; ``in_flight_100`` = batches of 100
concurrent calls with ``asyncio.gather``):

- ``local``: the actor in this process, called from its own loop (the same-loop fast path);
- ``local_via_core``: the same actor through a core ref, i.e. through Tokio and the proxy actor
  and back, the path every message from another node takes, minus the network;
- ``remote``: the actor in another OS process, over the network (needs a transport in this
  build; otherwise the entry says why it was skipped);
- ``asyncio_tcp_floor``: no Pulsing at all, for scale: two processes exchanging 32-byte
  length-prefixed frames over one loopback TCP connection with plain asyncio streams, the same
  two patterns. No Python-to-Python remote call can beat it on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pulsing._pulsing as native
from pulsing.actor import ActorRef, ActorSystem, SystemConfig, as_actor, create_actor_system

EXAMPLE = Path(__file__).with_name("distributed_counter.py")


@as_actor
class Counter:
    def __init__(self) -> None:
        self.value = 0

    def increment(self, n: int = 1) -> int:
        self.value += n
        return self.value


async def measure(ref: ActorRef, calls: int) -> dict[str, float]:
    for _ in range(min(calls // 10, 2000)):  # warm-up
        await ref.increment(1)
    start = time.perf_counter()
    for _ in range(calls):
        await ref.increment(1)
    sequential = calls / (time.perf_counter() - start)
    batches = max(calls // 100, 1)
    start = time.perf_counter()
    for _ in range(batches):
        await asyncio.gather(*[ref.increment(1) for _ in range(100)])
    in_flight = batches * 100 / (time.perf_counter() - start)
    return {"sequential": round(sequential), "in_flight_100": round(in_flight)}


async def core_ref(system: ActorSystem, name: str) -> ActorRef:
    fut = asyncio.get_running_loop().create_future()
    system._native.find(system._hub, fut, name)
    return ActorRef(system, name, None, await fut)


async def local(calls: int) -> dict[str, Any]:
    async with await create_actor_system() as system:
        ref = await system.spawn(Counter(), "counter")
        out: dict[str, Any] = {"local": await measure(ref, calls)}
        out["local_via_core"] = await measure(await core_ref(system, "counter"), calls // 4)
        return out


async def remote(calls: int) -> dict[str, Any]:
    if not native.NETWORK_AVAILABLE:
        return {"skipped": "this build has no transport (_pulsing.NETWORK_AVAILABLE is False)"}
    child = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--seed", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline().strip()
        if not line.startswith("counter ready at "):
            return {"skipped": f"the seed process did not start: {line!r}"}
        seed = line.rsplit(" ", 1)[1]
        config = SystemConfig.with_addr("127.0.0.1:0").with_seeds([seed])
        async with await create_actor_system(config) as system:
            ref = None
            for _ in range(50):
                ref = await system.find("counter")
                if ref is not None:
                    break
                await asyncio.sleep(0.1)
            if ref is None:
                return {"skipped": "the remote counter was not found"}
            return await measure(ref, calls)
    finally:
        child.terminate()
        child.wait(10)


_FRAME = struct.Struct("!II")  # request id, body length


async def _floor_server() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                rid, n = _FRAME.unpack(await reader.readexactly(_FRAME.size))
                body = await reader.readexactly(n)
                writer.write(_FRAME.pack(rid, n) + body)
        except (asyncio.IncompleteReadError, ConnectionError):
            return

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(3600)


async def asyncio_tcp_floor(calls: int) -> dict[str, float]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--floor-server"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        loop = asyncio.get_running_loop()
        waiting: dict[int, asyncio.Future[bytes]] = {}

        async def read_replies() -> None:
            while True:
                rid, n = _FRAME.unpack(await reader.readexactly(_FRAME.size))
                waiting.pop(rid).set_result(await reader.readexactly(n))

        replies = asyncio.create_task(read_replies())
        ids = iter(range(1 << 62))

        async def call() -> bytes:
            rid = next(ids)
            fut = waiting[rid] = loop.create_future()
            writer.write(_FRAME.pack(rid, 32) + b"x" * 32)
            return await fut

        class Floor:
            def increment(self, _n: int) -> Any:
                return call()

        result = await measure(Floor(), calls)  # type: ignore[arg-type]
        replies.cancel()
        writer.close()
        return result
    finally:
        child.terminate()
        child.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50_000, help="calls per measurement")
    parser.add_argument("--floor-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_server:
        asyncio.run(_floor_server())
        return
    result = asyncio.run(local(args.calls))
    result["remote"] = asyncio.run(remote(args.calls // 2))
    result["asyncio_tcp_floor"] = asyncio.run(asyncio_tcp_floor(args.calls // 2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
