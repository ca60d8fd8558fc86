"""A real network partition, from Python: three nodes A (the seed), B and C on hosts of the test's
own (network namespaces joined by a bridge in a namespace of its own, made with ``ip netns`` and
``ip link`` by the ``lan`` fixture, whose finalizer removes them). C's bridge port is set down
(packets dropped, sockets left open), then up again.

Calls from A to C raise ``NodeUnreachableError`` within 5 s of the cut, not by the 30 s ask
timeout, and the membership declares C down; within 5 s of the link's return calls to C succeed
again, and A and C see each other as members again (the membership is given longer, and the figures
are printed).

The test process stays in the host's namespace, where the nodes' addresses do not route, so each
node is this file run as a script inside its namespace::

    ip netns exec NS python test_partition.py --addr IP:PORT --name NAME [--seed ADDR]

It serves a public ``_peer.Counter`` named ``NAME``, prints ``READY <addr>``, then answers JSON
commands, one per stdin line, each with one JSON line on stdout carrying the command's ``id``
(``call``, ``members``, ``find``; handled concurrently), until its stdin closes.

Needs Linux, root and ``ip`` (iproute2); skipped otherwise, with the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import needs_network, stop_process

pytestmark = needs_network

NETNS_DIR = Path("/run/netns")
FAIL_WITHIN = 5.0
"""A call to the cut node raises within this (HTTP/2 keep-alive 1 s + 3 s; connect timeout 3 s)."""
DOWN_WITHIN = 15.0
"""The membership declares a silent node down in about 4 s; slack for a busy machine."""
RECOVER_WITHIN = 5.0
"""After the link returns, calls to C succeed within this."""
REJOIN_WITHIN = 15.0
"""After the link returns, A and C are members of each other's view within this (down members are
knocked on every 5 s, then rejoin and sync)."""
PROBE_TIMEOUT = 1.0
"""Each call while polling for the recovery waits at most this."""
CALL_CAP = 10.0
"""Any call a node makes for the test is abandoned after this (a hang shows as ``TimeoutError``)."""


# -- hosts of the test's own -----------------------------------------------------------------------


def ip(*args: str) -> None:
    """Runs ``ip *args``; raises ``RuntimeError`` with its stderr if it fails."""
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {out.stderr.strip()} (exit {out.returncode})")


@dataclass(frozen=True)
class Host:
    """A network namespace with one interface, ``eth0`` at ``ip``, plugged into bridge ``port``."""

    ns: str
    ip: str
    port: str


class Lan:
    """Hosts ``10.77.0.1``, ``10.77.0.2``, ... on one bridge, every interface inside a namespace
    of its own (so the fixed names and addresses clash with nothing). Namespace names carry this
    process's pid; :meth:`close` removes every namespace made."""

    _runs = itertools.count()

    def __init__(self, hosts: int) -> None:
        prefix = f"pls{os.getpid()}-py{next(Lan._runs)}"
        self.bridge_ns = f"{prefix}-br"
        self.hosts: list[Host] = []
        self.made: list[str] = []
        try:
            self._add_ns(self.bridge_ns)
        except RuntimeError as e:
            raise NoNamespacesError(f"`ip netns add` is not allowed here: {e}") from e
        try:
            ip("-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
            ip("-n", self.bridge_ns, "link", "set", "br0", "up")
            for i in range(hosts):
                host = Host(f"{prefix}-h{i}", f"10.77.0.{i + 1}", f"p{i}")
                self._add_ns(host.ns)
                br, ns, port = self.bridge_ns, host.ns, host.port
                ip(
                    "-n",
                    br,
                    "link",
                    "add",
                    port,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    ns,
                )
                ip("-n", br, "link", "set", port, "master", "br0", "up")
                ip("-n", ns, "addr", "add", f"{host.ip}/24", "dev", "eth0")
                ip("-n", ns, "link", "set", "eth0", "up")
                ip("-n", ns, "link", "set", "lo", "up")
                self.hosts.append(host)
        except RuntimeError as e:
            self.close()
            raise NoNamespacesError(f"cannot plug namespaces into a bridge with veths: {e}") from e

    def _add_ns(self, name: str) -> None:
        ip("netns", "add", name)
        self.made.append(name)

    def cut(self, host: Host) -> None:
        """Sets ``host``'s bridge port down: its ``eth0`` loses carrier (a pulled cable)."""
        ip("-n", self.bridge_ns, "link", "set", host.port, "down")

    def restore(self, host: Host) -> None:
        ip("-n", self.bridge_ns, "link", "set", host.port, "up")

    def close(self) -> None:
        """Removes every namespace made (with the interfaces in them), hosts first."""
        errors = []
        for ns in reversed(self.made):
            try:
                ip("netns", "del", ns)
            except RuntimeError as e:
                errors.append(str(e))
        self.made.clear()
        if errors:
            raise RuntimeError("; ".join(errors))


class NoNamespacesError(Exception):
    """The machine does not allow the namespaces a :class:`Lan` needs (the test is skipped)."""


def remove_stale() -> None:
    """Removes namespaces ``pls<pid>-...`` whose pid no longer runs: left by a run that was killed
    before its finalizer ran."""
    if not NETNS_DIR.is_dir():
        return
    for entry in NETNS_DIR.iterdir():
        pid, _, rest = entry.name.removeprefix("pls").partition("-")
        stale = entry.name.startswith("pls") and rest and pid.isdigit()
        if stale and not Path(f"/proc/{pid}").exists():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                ip("netns", "del", entry.name)


@pytest.fixture
def lan() -> Iterator[Lan]:
    """Three hosts on one bridge, removed after the test (also when it fails)."""
    if not sys.platform.startswith("linux"):
        pytest.skip(f"partition test: network namespaces need Linux, not {sys.platform}")
    if os.geteuid() != 0:
        pytest.skip(f"partition test: needs root to make network namespaces (euid {os.geteuid()})")
    if shutil.which("ip") is None:
        pytest.skip("partition test: needs `ip` (iproute2), which is not on PATH")
    remove_stale()
    try:
        made = Lan(3)
    except NoNamespacesError as e:
        pytest.skip(f"partition test: {e}")
    try:
        yield made
    finally:
        made.close()


# -- the nodes, driven over their stdin ------------------------------------------------------------


class Node:
    """This file running as a node inside a namespace; :meth:`request` sends it a command."""

    def __init__(self, proc: subprocess.Popen[str], name: str) -> None:
        self.proc = proc
        self.name = name
        self.addr = ""
        self._ids = itertools.count()
        self._ready: queue.Queue[str] = queue.Queue()
        self._replies: dict[int, dict[str, Any]] = {}
        self._arrived = threading.Condition()
        self._sending = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("READY "):
                self._ready.put(line.split()[1])
                continue
            reply = json.loads(line)
            with self._arrived:
                self._replies[reply["id"]] = reply
                self._arrived.notify_all()
        self._ready.put("")  # ended before (or after) READY

    def wait_ready(self, within: float) -> None:
        try:
            self.addr = self._ready.get(timeout=within)
        except queue.Empty:
            raise AssertionError(f"{self.name}: no READY line within {within} s") from None
        assert self.addr, f"{self.name}: exited before READY ({self.proc.poll()})"

    def send(self, op: str, **args: Any) -> int:
        """Sends command ``op``; returns its id, for :meth:`reply`."""
        cmd_id = next(self._ids)
        assert self.proc.stdin is not None
        with self._sending:
            self.proc.stdin.write(json.dumps({"id": cmd_id, "op": op, **args}) + "\n")
            self.proc.stdin.flush()
        return cmd_id

    def reply(self, cmd_id: int, within: float = CALL_CAP + 5) -> dict[str, Any]:
        """The reply to command ``cmd_id``, waiting at most ``within`` seconds."""
        deadline = time.monotonic() + within
        with self._arrived:
            while cmd_id not in self._replies:
                left = deadline - time.monotonic()
                assert left > 0, f"{self.name}: no reply to command {cmd_id} within {within} s"
                self._arrived.wait(left)
            return self._replies.pop(cmd_id)

    def request(self, op: str, **args: Any) -> dict[str, Any]:
        return self.reply(self.send(op, **args))

    def call(
        self, to: Node, method: str = "count", *args: Any, timeout: float = CALL_CAP
    ) -> dict[str, Any]:
        """Has this node call ``method`` of ``to``'s counter (``remote_ref``, ``wait_for``
        ``timeout``); the reply says ``ok``, the ``error`` class, ``delivery``, ``message``,
        ``seconds`` taken and ``ended`` (``time.monotonic()``, the same clock in every process)."""
        return self.request(
            "call", addr=to.addr, name=to.name, method=method, args=args, timeout=timeout
        )

    def state_of(self, other: Node) -> str | None:
        """``other``'s state in this node's view: ``"alive"`` if any entry at its address is (a
        renewed identity may sit beside its old, down one), else the first entry's, else None."""
        states = [m["state"] for m in self.request("members")["members"] if m["addr"] == other.addr]
        return "alive" if "alive" in states else (states[0] if states else None)

    def finds(self, other: Node) -> bool:
        """Whether this node's ``find`` returns ``other``'s counter."""
        return bool(self.request("find", name=other.name)["remote"])


@contextlib.contextmanager
def node_in(lan: Lan, host: Host, name: str, seed: Node | None = None) -> Iterator[Node]:
    """Runs this file as node ``name`` inside ``host`` until the block ends (then it is stopped:
    its stdin closes, it is killed after 10 s)."""
    argv = ["--addr", f"{host.ip}:7000", "--name", name]
    if seed is not None:
        argv += ["--seed", seed.addr]
    proc = subprocess.Popen(
        ["ip", "netns", "exec", host.ns, sys.executable, __file__, *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        node = Node(proc, name)
        node.wait_ready(20.0)
        yield node
    finally:
        stop_process(proc)


def eventually(what: str, within: float, done: Any) -> float:
    """Polls ``done()`` every 100 ms until it is true; fails after ``within`` seconds. Returns the
    time it took."""
    start = time.monotonic()
    while not done():
        assert time.monotonic() - start < within, f"{what}: not within {within} s"
        time.sleep(0.1)
    return time.monotonic() - start


def failed_fast(what: str, reply: dict[str, Any], took: float) -> float:
    """Checks that a call to the cut node raised NodeUnreachableError within FAIL_WITHIN."""
    print(f"partition: {what} failed in {took:.3f} s: {reply.get('error')}: {reply.get('message')}")
    assert not reply["ok"], f"{what}: the cut node answered: {reply}"
    assert reply["error"] == "NodeUnreachableError", f"{what}: {reply}"
    assert took < FAIL_WITHIN, f"{what}: failed after {took:.3f} s, not within {FAIL_WITHIN} s"
    return took


@pytest.mark.timeout(120)
def test_calls_to_a_node_cut_off_raise_fast_and_succeed_again_once_its_link_returns(
    lan: Lan,
) -> None:
    host_a, host_b, host_c = lan.hosts
    with contextlib.ExitStack() as nodes:
        a = nodes.enter_context(node_in(lan, host_a, "part-a"))
        b = nodes.enter_context(node_in(lan, host_b, "part-b", seed=a))
        c = nodes.enter_context(node_in(lan, host_c, "part-c", seed=a))

        formed = eventually(
            "the cluster forms",
            10.0,
            lambda: a.finds(c) and c.finds(a) and b.finds(c) and a.state_of(c) == "alive",
        )
        print(f"partition: the cluster formed {formed:.3f} s after C was ready")
        assert a.call(c)["ok"], "C answers A before the cut"

        # One call in flight as the link goes (the handler sleeps 1.5 s, the cut comes 300 ms
        # in); then one on the connection that was live a moment ago and one on a fresh one.
        in_flight = a.send(
            "call", addr=c.addr, name=c.name, method="slow", args=[1.5], timeout=CALL_CAP
        )
        time.sleep(0.3)
        lan.cut(host_c)
        cut = time.monotonic()
        # A's view is watched meanwhile, by a thread of its own.
        down: list[float] = []

        def watch() -> None:
            with contextlib.suppress(AssertionError):  # the test asserts on `down` below
                down.append(
                    eventually(
                        "A declares C down", DOWN_WITHIN, lambda: a.state_of(c) in ("down", None)
                    )
                )

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        r = a.reply(in_flight)
        took_in_flight = failed_fast("the call in flight at the cut", r, r["ended"] - cut)
        r = a.call(c)
        took_first = failed_fast("the first call after the cut", r, r["seconds"])
        r = a.call(c)
        took_second = failed_fast("the second call after the cut", r, r["seconds"])
        watcher.join(DOWN_WITHIN + 5)
        assert down, f"A did not declare C down within {DOWN_WITHIN} s: {a.state_of(c)}"
        print(f"partition: A declared C down {down[0]:.3f} s after the cut ({a.state_of(c)})")
        eventually("B declares C down", DOWN_WITHIN, lambda: b.state_of(c) in ("down", None))
        r = a.call(c)
        took_down = failed_fast("a call while C is down", r, r["seconds"])
        print(f"partition: the link was cut for {time.monotonic() - cut:.3f} s")

        lan.restore(host_c)
        up = time.monotonic()
        failures = []
        while True:
            r = a.call(c, timeout=PROBE_TIMEOUT)
            if r["ok"]:
                recovered = time.monotonic() - up
                break
            failures.append(f"{time.monotonic() - up:.3f} s: {r['error']}: {r['message']}")
            assert time.monotonic() - up < RECOVER_WITHIN, (
                f"no answer from C within {RECOVER_WITHIN} s of the link's return; "
                f"{len(failures)} failed calls: {failures}"
            )
            time.sleep(0.1)
        last = f", the last at {failures[-1]}" if failures else ""
        print(
            f"partition: C answered {recovered:.3f} s after the link returned "
            f"({len(failures)} calls failed first{last})"
        )

        eventually(
            "A and C see each other again",
            REJOIN_WITHIN,
            lambda: (
                a.state_of(c) == "alive" and c.state_of(a) == "alive" and a.finds(c) and c.finds(a)
            ),
        )
        rejoined = time.monotonic() - up
        print(f"partition: A and C saw each other again {rejoined:.3f} s after the link returned")

        # Healed for good: calls keep succeeding.
        for i in range(20):
            r = a.call(c, "bump", timeout=PROBE_TIMEOUT)
            assert r["ok"], f"call {i} after the heal ({time.monotonic() - up:.3f} s in): {r}"
        print(
            f"partition figures: calls failed in {took_in_flight:.3f} s (in flight), "
            f"{took_first:.3f} s, {took_second:.3f} s (after the cut), {took_down:.3f} s (C down); "
            f"C down after {down[0]:.3f} s; calls succeeded {recovered:.3f} s and members "
            f"rejoined {rejoined:.3f} s after the link returned"
        )


# -- the node (this file run as a script) ----------------------------------------------------------


async def answer(system: Any, req: dict[str, Any]) -> dict[str, Any]:
    """The reply to one command."""
    reply: dict[str, Any] = {"id": req["id"]}
    if req["op"] == "call":
        ref = system.remote_ref(req["addr"], req["name"])
        started = time.monotonic()
        try:
            value = await asyncio.wait_for(ref.call(req["method"], *req["args"]), req["timeout"])
            reply.update(ok=True, value=value)
        except Exception as e:  # the test reads what was raised
            reply.update(
                ok=False,
                error=type(e).__name__,
                message=str(e),
                delivery=getattr(e, "delivery", None),
            )
        ended = time.monotonic()
        reply.update(seconds=ended - started, ended=ended)
    elif req["op"] == "members":
        reply["members"] = [{"addr": m.addr, "state": m.state} for m in system.members()]
    elif req["op"] == "find":
        ref = await system.find(req["name"])
        reply["remote"] = ref is not None and not ref.is_local
    else:
        reply["error"] = f"unknown op {req['op']!r}"
    return reply


async def serve(argv: list[str]) -> None:
    from _peer import Counter
    from pulsing.actor import SystemConfig, create_actor_system

    parser = argparse.ArgumentParser()
    parser.add_argument("--addr", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--seed", action="append", default=[])
    args = parser.parse_args(argv)
    config = SystemConfig.with_addr(args.addr)
    if args.seed:
        config = config.with_seeds(args.seed)
    loop = asyncio.get_running_loop()
    async with await create_actor_system(config) as system:
        await system.spawn(Counter(), args.name, public=True)
        print("READY", system.addr, flush=True)
        pending: set[asyncio.Task[None]] = set()

        async def handle(line: str) -> None:
            reply = await answer(system, json.loads(line))
            print(json.dumps(reply), flush=True)

        while line := await loop.run_in_executor(None, sys.stdin.readline):
            task = asyncio.ensure_future(handle(line))
            pending.add(task)
            task.add_done_callback(pending.discard)
        for task in pending:
            task.cancel()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1:]))
