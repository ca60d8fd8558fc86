"""``SystemConfig.with_transport("quic")``: the Remote Actors Guide's distributed counter over QUIC
across two OS processes, the QUIC node's HTTP door on TCP at the same port, and clusters that mix
QUIC and HTTP nodes, calling both ways.

The peer is a ``_peer.py`` node (``--transport quic|http``; ``--guide`` runs the guide's node 1).
Where the machine lists its sockets in ``/proc/net`` (Linux), the tests also check that a QUIC node
binds UDP at its port and that two QUIC nodes keep no TCP connection between them but the idle
sentinel each keeps to the other's TCP door (``QuicConfig::tcp_sentinel``).
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from pathlib import Path
from typing import Literal

import pytest

from _peer import Counter
from conftest import eventually, found, needs_network, start_peer
from pulsing.actor import SystemConfig, create_actor_system

pytestmark = needs_network


# -- the config ----------------------------------------------------------------------------------


def test_with_transport_defaults_to_http_and_takes_quic() -> None:
    assert SystemConfig.standalone().transport == "http"
    assert SystemConfig.with_transport("quic").transport == "quic"
    config = SystemConfig.with_addr("127.0.0.1:0").with_transport("quic").with_transport("http")
    assert config.transport == "http"
    assert config.addr == "127.0.0.1:0"


@pytest.mark.parametrize("name", ["tcp", "QUIC", "", "udp"])
def test_with_transport_refuses_another_name_and_names_the_choices(name: str) -> None:
    with pytest.raises(ValueError, match=r"transport must be 'http' or 'quic', got "):
        SystemConfig.with_transport(name)  # type: ignore[arg-type]


@pytest.mark.timeout(15)
@pytest.mark.parametrize("addr", [None, "127.0.0.1:0"], ids=["standalone", "networked"])
def test_a_config_built_directly_with_another_transport_fails_to_start(addr: str | None) -> None:
    config = SystemConfig(addr=addr, transport="tcp")  # type: ignore[arg-type]

    async def main() -> None:
        with pytest.raises(ValueError, match=r"transport must be 'http' or 'quic', got \"tcp\""):
            await create_actor_system(config)

    asyncio.run(main())


@pytest.mark.timeout(15)
def test_a_standalone_system_on_quic_has_no_network() -> None:
    async def main() -> None:
        async with await create_actor_system(SystemConfig.with_transport("quic")) as system:
            assert system.addr is None
            counter = await system.spawn(Counter(), "counter")
            assert await counter.bump() == 1

    asyncio.run(main())


# -- the guide over QUIC -------------------------------------------------------------------------


@pytest.mark.timeout(40)
def test_the_guides_distributed_counter_runs_over_quic_across_two_processes() -> None:
    with start_peer("--guide", "--transport", "quic") as peer:

        async def node_2() -> None:
            # The guide's node 2, unchanged but for a free local port and `.with_transport("quic")`.
            system2 = await create_actor_system(
                SystemConfig.with_addr("127.0.0.1:0").with_seeds([peer.addr]).with_transport("quic")
            )
            async with system2:
                await asyncio.sleep(1.0)

                remote_counter = await system2.find("counter")
                assert remote_counter is not None and not remote_counter.is_local
                value = await remote_counter.get()
                assert value == 0
                value = await remote_counter.increment(5)
                assert value == 5

                assert system2.addr is not None
                ports = {port_of(peer.addr), port_of(system2.addr)}
                listed = udp_ports()
                if listed is not None:
                    assert ports <= listed, "both QUIC nodes bind UDP at their port"
                    # Calls and gossip ride QUIC. What TCP stays is the sentinel each node keeps
                    # to the other's TCP door, idle, to learn at once when its process dies: at
                    # most one connection per direction, two ends each.
                    await eventually(lambda: established_tcp(ports) <= 4)

        asyncio.run(node_2())


# -- the HTTP door -------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_a_quic_node_answers_health_over_tcp_at_the_same_port() -> None:
    with start_peer("--transport", "quic") as peer:
        with urllib.request.urlopen(f"http://{peer.addr}/health", timeout=5) as resp:
            assert resp.status == 200
            assert resp.read() == b"ok\n"
        assert "pulsing_actors " in peer.metrics()
        listed = udp_ports()
        if listed is not None:
            assert port_of(peer.addr) in listed, "QUIC on UDP at the same port"


@pytest.mark.timeout(30)
def test_an_http_node_binds_no_udp() -> None:
    with start_peer("--transport", "http") as peer:
        listed = udp_ports()
        if listed is None:
            pytest.skip("this machine does not list its sockets in /proc/net")
        assert port_of(peer.addr) not in listed


# -- mixed clusters ------------------------------------------------------------------------------


@pytest.mark.timeout(40)
@pytest.mark.parametrize(
    ("peer_transport", "local_transport"),
    [("quic", "http"), ("http", "quic")],
    ids=["quic-seed-http-joiner", "http-seed-quic-joiner"],
)
def test_a_quic_node_and_an_http_node_call_each_other(
    peer_transport: Literal["http", "quic"], local_transport: Literal["http", "quic"]
) -> None:
    with start_peer("--transport", peer_transport, "--ask-timeout", "10") as peer:

        async def main() -> None:
            config = (
                SystemConfig.with_addr("127.0.0.1:0")
                .with_seeds([peer.addr])
                .with_transport(local_transport)
                .with_ask_timeout(10)
            )
            async with await create_actor_system(config) as system:
                # This node calls the peer...
                counter = await found(system, "counter")
                assert await counter.bump() == 1
                assert await counter.count() == 1
                # ...and the peer calls this node: with a ref it is given, and by name.
                mine = await system.spawn(Counter(), "mixed-counter", public=True)
                holder = await found(system, "holder")
                assert await holder.call_ref(mine) == 1
                await eventually(lambda: holder.can_find("mixed-counter"), within=10)
                assert await mine.count() == 1
                members = {m.addr: m.state for m in system.members()}
                assert members.get(peer.addr) == "alive"

        asyncio.run(main())


# -- helpers -------------------------------------------------------------------------------------


def port_of(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])


def _proc_net(kind: str) -> list[list[str]] | None:
    """The rows of ``/proc/net/<kind>`` and ``<kind>6`` (fields split), None without them."""
    rows: list[list[str]] = []
    found_any = False
    for name in (kind, f"{kind}6"):
        with contextlib.suppress(OSError):
            lines = Path("/proc/net", name).read_text().splitlines()[1:]
            found_any = True
            rows.extend(line.split() for line in lines)
    return rows if found_any else None


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1], 16)


def udp_ports() -> set[int] | None:
    """The local ports of this machine's UDP sockets, None where ``/proc/net`` is missing."""
    rows = _proc_net("udp")
    return None if rows is None else {_port(r[1]) for r in rows}


def established_tcp(ports: set[int]) -> int:
    """How many established TCP sockets have either end at one of ``ports``."""
    rows = _proc_net("tcp") or []
    return sum(1 for r in rows if r[3] == "01" and (_port(r[1]) in ports or _port(r[2]) in ports))


def test_helpers_parse_proc_net() -> None:
    assert port_of("127.0.0.1:8000") == 8000
    assert _port("0100007F:1F40") == 8000
