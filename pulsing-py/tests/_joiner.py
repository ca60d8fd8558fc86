"""A node that tries to join a cluster and says how it went, for test_secret.py.

Serves on 127.0.0.1:0 and calls ``create_actor_system`` with the seed, then prints one JSON line:
``{"ok": true, "addr": ...}`` (and runs until its stdin closes), or, when the call raised,
``{"ok": false, "type": ..., "message": ..., "unauthorized": ..., "pulsing_error": ...,
"elapsed": ...}``, ``elapsed`` being the seconds ``create_actor_system`` took, and exits.

Arguments::

    --seed ADDR         the seed to join through (required)
    --secret S          SystemConfig.with_secret(S); without it the node reads PULSING_SECRET
    --transport NAME    SystemConfig.with_transport(NAME): "http" (default) or "quic"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from pulsing.actor import PulsingError, SystemConfig, UnauthorizedError, create_actor_system


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seed", required=True)
    parser.add_argument("--secret")
    parser.add_argument("--transport", choices=["http", "quic"], default="http")
    args = parser.parse_args(argv)
    config = (
        SystemConfig.with_addr("127.0.0.1:0").with_seeds([args.seed]).with_transport(args.transport)
    )
    if args.secret is not None:
        config = config.with_secret(args.secret)
    started = time.monotonic()
    try:
        system = await create_actor_system(config)
    except Exception as e:  # reported to the test, whatever it is
        report = {
            "ok": False,
            "type": type(e).__name__,
            "message": str(e),
            "unauthorized": isinstance(e, UnauthorizedError),
            "pulsing_error": isinstance(e, PulsingError),
            "elapsed": time.monotonic() - started,
        }
        print(json.dumps(report), flush=True)
        return
    async with system:
        print(json.dumps({"ok": True, "addr": system.addr}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
