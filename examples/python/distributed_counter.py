"""The Remote Actors Guide's distributed counter, as two OS processes.

    python examples/python/distributed_counter.py --seed 8000            # node 1: serves the counter
    python examples/python/distributed_counter.py --join 127.0.0.1:8000  # node 2: finds it, adds 5
    python examples/python/distributed_counter.py                        # both: node 1 as a child
    python examples/python/distributed_counter.py --transport quic       # both, over QUIC

Node 1 prints ``counter ready at <addr>`` once it serves (``--seed 0`` picks a free port) and
runs until interrupted (or ``--for SECONDS``). Node 2 joins, waits for the cluster to sync as the
guide does, reads the counter and increments it by 5. ``--transport quic`` (default ``http``) adds
``.with_transport("quic")`` to the node's config, the only change to the guide's code; node 1
started by the demo gets the same transport.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from typing import Literal

from pulsing.actor import SystemConfig, as_actor, create_actor_system

TransportName = Literal["http", "quic"]


@as_actor
class DistributedCounter:
    def __init__(self, init_value: int = 0):
        self.value = init_value

    def get(self) -> int:
        return self.value

    def increment(self, n: int = 1) -> int:
        self.value += n
        return self.value


async def seed(port: int, duration: float | None, transport: TransportName) -> None:
    system1 = await create_actor_system(
        SystemConfig.with_addr(f"127.0.0.1:{port}").with_transport(transport)
    )
    async with system1:
        counter1 = await DistributedCounter.local(system1, init_value=0)
        await system1.spawn(counter1, "counter", public=True)
        print(f"counter ready at {system1.addr} ({transport})", flush=True)
        if duration is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(duration)


async def join(seed_addr: str, transport: TransportName) -> int:
    system2 = await create_actor_system(
        SystemConfig.with_addr("127.0.0.1:0").with_seeds([seed_addr]).with_transport(transport)
    )
    async with system2:
        await asyncio.sleep(1.0)  # wait for cluster sync, as the guide does
        remote_counter = await system2.find("counter")
        if remote_counter is None:
            print("counter not found", file=sys.stderr)
            return 1
        print("get() ->", await remote_counter.get())
        value = await remote_counter.increment(5)
        print("increment(5) ->", value)
        return 0 if value >= 5 else 1


def demo(transport: TransportName) -> int:
    child = subprocess.Popen(
        [sys.executable, __file__, "--seed", "0", "--transport", transport],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline().strip()
        print(f"node 1: {line}")
        if not line.startswith("counter ready at "):
            return 1
        return asyncio.run(join(line.split()[3], transport))
    finally:
        child.terminate()
        child.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--seed", type=int, metavar="PORT", help="run node 1 on 127.0.0.1:PORT")
    group.add_argument("--join", metavar="SEED_ADDR", help="run node 2, joining SEED_ADDR")
    parser.add_argument("--for", dest="duration", type=float, help="node 1: stop after SECONDS")
    parser.add_argument(
        "--transport", choices=["http", "quic"], default="http", help="the nodes' transport"
    )
    args = parser.parse_args()
    try:
        if args.seed is not None:
            asyncio.run(seed(args.seed, args.duration, args.transport))
            return 0
        if args.join is not None:
            return asyncio.run(join(args.join, args.transport))
        return demo(args.transport)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
