"""A peer node for the two-process tests: serves on 127.0.0.1:0 with a public ``counter`` and a
private ``private-counter``, prints ``READY <addr>``, and runs until its stdin closes."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from pulsing.actor import SystemConfig, as_actor, create_actor_system


@as_actor
class DistributedCounter:
    def __init__(self, init_value: int = 0):
        self.value = init_value

    def get(self) -> int:
        return self.value

    def increment(self, n: int = 1) -> int:
        self.value += n
        return self.value

    async def tokens(self, n: int) -> Any:
        for i in range(n):
            yield f"t{i}"

    def fail(self) -> None:
        raise ValueError("remote failure")


async def main() -> None:
    config = SystemConfig.with_addr("127.0.0.1:0")
    if len(sys.argv) > 1:
        config = config.with_seeds(sys.argv[1:])
    async with await create_actor_system(config) as system:
        counter = await DistributedCounter.local(system, init_value=0)
        await system.spawn(counter, "counter", public=True)
        await system.spawn(DistributedCounter(), "private-counter", public=False)
        print("READY", system.addr, flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main())
