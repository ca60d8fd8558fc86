"""The cluster secret (``docs/security.md``) as Python users see it.

1. ``SystemConfig.with_secret`` / ``with_secrets`` / ``with_api_tokens``: what they hold, what they
   refuse, and that ``repr()`` never shows a secret or a token.
2. ``pulsing.client_certificate(secret)``: PEMs that ``ssl`` loads, the same CA for the same secret,
   and ``write(directory)`` for ``curl --cert client.pem --key client.key --cacert ca.pem``.
3. The Remote Actors Guide's distributed counter with ``.with_secret("...")`` added on both nodes,
   two OS processes, over HTTP and over QUIC.
4. A node with another secret, or none, cannot join: its ``create_actor_system`` fails within the
   join bound (``UnauthorizedError`` for another secret) and the cluster's ``members()`` never
   lists it.
5. HTTP clients of a node with a secret (``docs/protocol.md`` §1, "TLS"): a client certificate or
   a bearer token over https gets ``200``; neither gets ``401 unauthorized``; ``GET /health`` is
   open; plaintext ``POST`` gets ``400``.
6. ``PULSING_SECRET`` in a node's environment is its secret when the code gives none.

Every network test runs the other node in its own OS process (``_peer.py``, ``_joiner.py``) on
127.0.0.1, and every wait is bounded. The children get this process's environment without
``PULSING_SECRET`` unless a test sets it.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import msgpack
import pulsing._pulsing as native
import pytest
from _peer import Counter
from conftest import Peer, eventually, found, needs_network, start_peer
from pulsing import ClientCertificate, client_certificate
from pulsing.actor import (
    PulsingError,
    SystemConfig,
    UnauthorizedError,
    create_actor_system,
)

SECRET = "3f6c0a9e1b7d4e2f8a5c6b0d9e1f2a3b-test-cluster"
OTHER_SECRET = "another-cluster-entirely-5d2e"
TOKEN = "test-api-token-9c1d"

JOINER_SCRIPT = Path(__file__).with_name("_joiner.py")
# How long a refused join may take: the cluster's join bound (join_timeout 5 s + 2 x join_retry
# 0.5 s, pulsing-cluster `ClusterConfig`), plus slack for a loaded machine.
JOIN_BOUND = 6.0 + 3.0

Transport = Literal["http", "quic"]
TRANSPORTS: list[Transport] = ["http", "quic"]


def child_env(secret: str | None = None) -> dict[str, str]:
    """This process's environment for a child node, with ``PULSING_SECRET`` set to ``secret``
    (removed when None)."""
    env = {k: v for k, v in os.environ.items() if k != "PULSING_SECRET"}
    if secret is not None:
        env["PULSING_SECRET"] = secret
    return env


async def in_thread(fn: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


# -- 1. the config -------------------------------------------------------------------------------


def test_with_secret_works_on_the_class_and_on_an_instance() -> None:
    assert SystemConfig.standalone().secrets == ()
    assert SystemConfig.with_secret(SECRET).secrets == (SECRET,)
    config = SystemConfig.with_addr("127.0.0.1:0").with_secret(SECRET).with_transport("quic")
    assert (config.addr, config.secrets, config.transport) == ("127.0.0.1:0", (SECRET,), "quic")
    assert config.with_secret(OTHER_SECRET).secrets == (OTHER_SECRET,), "the last one wins"


def test_with_secrets_keeps_their_order_the_first_being_presented() -> None:
    config = SystemConfig.with_secrets([OTHER_SECRET, SECRET])
    assert config.secrets == (OTHER_SECRET, SECRET)
    assert SystemConfig.with_secrets((SECRET,)).secrets == (SECRET,)
    assert SystemConfig.with_secrets(SECRET).secrets == (SECRET,), "a str is one secret"


def test_with_api_tokens_keeps_the_tokens() -> None:
    config = SystemConfig.with_secret(SECRET).with_api_tokens([TOKEN, "second"])
    assert config.api_tokens == (TOKEN, "second")
    assert config.secrets == (SECRET,)
    assert SystemConfig.with_api_tokens(TOKEN).api_tokens == (TOKEN,)
    assert SystemConfig.with_api_tokens([]).api_tokens == ()


@pytest.mark.parametrize("blank", ["", "   ", "\n"])
def test_an_empty_secret_or_token_is_refused_at_once(blank: str) -> None:
    with pytest.raises(ValueError, match="secret may not be empty"):
        SystemConfig.with_secret(blank)
    with pytest.raises(ValueError, match="secret may not be empty"):
        SystemConfig.with_secrets([SECRET, blank])
    with pytest.raises(ValueError, match="API token may not be empty"):
        SystemConfig.with_api_tokens([blank])


def test_with_secrets_needs_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        SystemConfig.with_secrets([])


def test_a_secret_must_be_a_str() -> None:
    with pytest.raises(TypeError, match="must be a str, got bytes"):
        SystemConfig.with_secret(b"bytes")  # type: ignore[arg-type]


def test_the_repr_of_a_config_never_shows_its_secrets_or_tokens() -> None:
    config = (
        SystemConfig.with_addr("127.0.0.1:0")
        .with_secrets([SECRET, OTHER_SECRET])
        .with_api_tokens([TOKEN])
    )
    for text in (repr(config), str(config), f"{config!r:}", repr([config])):
        assert SECRET not in text and OTHER_SECRET not in text and TOKEN not in text, text
    assert "127.0.0.1:0" in repr(config), "the rest is still shown"


@pytest.mark.timeout(15)
def test_a_standalone_system_with_a_secret_starts_and_runs_actors() -> None:
    # No network, so nothing to encrypt: the secret is only checked.
    async def main() -> None:
        async with await create_actor_system(SystemConfig.with_secret(SECRET)) as system:
            assert system.addr is None
            ref = await system.spawn(Counter(), "counter")
            assert await ref.bump() == 1
            assert SECRET not in repr(system)

    asyncio.run(main())


@pytest.mark.timeout(15)
def test_api_tokens_without_a_secret_fail_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULSING_SECRET", raising=False)

    async def main() -> None:
        with pytest.raises(PulsingError, match="API tokens need a cluster secret") as info:
            await create_actor_system(SystemConfig.with_api_tokens([TOKEN]))
        assert not isinstance(info.value, UnauthorizedError)
        assert TOKEN not in str(info.value)

    asyncio.run(main())


@pytest.mark.timeout(15)
def test_an_empty_pulsing_secret_fails_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    # An empty variable is a mistake, not a choice of no security (docs/security.md).
    monkeypatch.setenv("PULSING_SECRET", "")

    async def main() -> None:
        with pytest.raises(PulsingError, match="may not be empty"):
            await create_actor_system(SystemConfig.standalone())

    asyncio.run(main())


# -- 2. client certificates ----------------------------------------------------------------------


def test_client_certificate_gives_the_three_pems() -> None:
    cert = client_certificate(SECRET)
    assert isinstance(cert, ClientCertificate)
    assert cert.cert_pem.startswith("-----BEGIN CERTIFICATE-----")
    assert cert.key_pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert cert.ca_pem.startswith("-----BEGIN CERTIFICATE-----")
    assert cert.key_pem not in repr(cert), "the key stays out of repr()"
    with pytest.raises(AttributeError):
        cert.cert_pem = ""  # type: ignore[misc]


def test_the_ca_is_the_secrets_and_each_certificate_is_new() -> None:
    a, b = client_certificate(SECRET), client_certificate(SECRET)
    assert a.ca_pem == b.ca_pem, "every holder of the secret derives the same CA"
    assert a.cert_pem != b.cert_pem and a.key_pem != b.key_pem, "a fresh key each time"
    assert client_certificate(OTHER_SECRET).ca_pem != a.ca_pem


@pytest.mark.parametrize("blank", ["", "  "])
def test_client_certificate_refuses_an_empty_secret(blank: str) -> None:
    with pytest.raises(ValueError, match="secret may not be empty"):
        client_certificate(blank)


def test_write_puts_the_files_curl_takes(tmp_path: Path) -> None:
    cert = client_certificate(SECRET)
    written = cert.write(tmp_path / "creds")
    assert written == (
        tmp_path / "creds" / "client.pem",
        tmp_path / "creds" / "client.key",
        tmp_path / "creds" / "ca.pem",
    )
    pem, key, ca = written
    assert (pem.read_text(), key.read_text(), ca.read_text()) == (
        cert.cert_pem,
        cert.key_pem,
        cert.ca_pem,
    )
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    # What a client does with them: the key matches the certificate, and the CA loads.
    tls = ssl.create_default_context(cafile=str(ca))
    tls.load_cert_chain(str(pem), str(key))
    subjects = [str(c["subject"]) for c in tls.get_ca_certs()]
    assert any("Pulsing cluster CA " in s for s in subjects), subjects


def test_write_replaces_files_and_narrows_an_open_key_file(tmp_path: Path) -> None:
    key = tmp_path / "client.key"
    key.write_text("old")
    key.chmod(0o644)
    client_certificate(SECRET).write(str(tmp_path))
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")


# -- 3. the guide with a secret ------------------------------------------------------------------


@needs_network
@pytest.mark.timeout(40)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_guides_distributed_counter_runs_with_a_secret_across_two_processes(
    transport: Transport,
) -> None:
    args = ("--guide", "--transport", transport, "--secret", SECRET)
    with start_peer(*args, env=child_env()) as peer:

        async def node_2() -> None:
            # The guide's node 2, unchanged but for a free local port, the transport and the one
            # line the security guide adds.
            system2 = await create_actor_system(
                SystemConfig.with_addr("127.0.0.1:0")
                .with_seeds([peer.addr])
                .with_transport(transport)
                .with_secret(SECRET)
            )
            async with system2:
                await asyncio.sleep(1.0)

                remote_counter = await system2.find("counter")
                assert remote_counter is not None and not remote_counter.is_local
                value = await remote_counter.get()
                assert value == 0
                value = await remote_counter.increment(5)
                assert value == 5
                members = {m.addr: m.state for m in system2.members()}
                assert members.get(peer.addr) == "alive"

        asyncio.run(node_2())


# -- 4. another secret, or none, cannot join -----------------------------------------------------


def run_joiner(seed: str, transport: Transport, secret: str | None) -> dict[str, Any]:
    """Runs ``_joiner.py`` against ``seed`` (no ``PULSING_SECRET`` in its environment) and returns
    its report; bounded by the join bound plus the interpreter's start."""
    argv = [sys.executable, str(JOINER_SCRIPT), "--seed", seed, "--transport", transport]
    if secret is not None:
        argv += ["--secret", secret]
    done = subprocess.run(
        argv,
        input="",
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=JOIN_BOUND + 20,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"the joiner printed nothing (exit {done.returncode}): {done.stderr[-2000:]}"
    report: dict[str, Any] = json.loads(lines[-1])
    return report


@needs_network
@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("joiner_secret", [OTHER_SECRET, None], ids=["wrong-secret", "no-secret"])
def test_a_node_with_another_secret_or_none_cannot_join(
    transport: Transport, joiner_secret: str | None
) -> None:
    async def main() -> dict[str, Any]:
        config = SystemConfig.with_addr("127.0.0.1:0").with_transport(transport)
        async with await create_actor_system(config.with_secret(SECRET)) as system:
            await system.spawn(Counter(), "counter", public=True)
            assert system.addr is not None
            seen: set[str] = set()
            joining = asyncio.ensure_future(
                in_thread(run_joiner, system.addr, transport, joiner_secret)
            )
            # While the stranger tries, and a while after, this node's members are itself alone.
            while not joining.done():
                seen.update(m.addr for m in system.members())
                await asyncio.sleep(0.05)
            report: dict[str, Any] = await joining
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                seen.update(m.addr for m in system.members())
                await asyncio.sleep(0.05)
            assert seen == {system.addr}, f"a stranger became a member: {seen}"
            # This node still serves its own.
            assert await (await found(system, "counter")).bump() == 1
        return report

    report = asyncio.run(main())
    print(f"\n{transport} joiner with {'another' if joiner_secret else 'no'} secret: {report}")
    assert report["ok"] is False, f"the node joined: {report}"
    assert report["pulsing_error"], report
    assert report["elapsed"] <= JOIN_BOUND, f"refused only after {report['elapsed']:.1f}s"
    if joiner_secret is not None:
        assert report["unauthorized"], f"expected UnauthorizedError, got {report}"
        assert report["type"] == "UnauthorizedError"
        assert "refused this node's identity" in report["message"], report
    else:
        assert re.search(r"tls|secret|unauthorized", report["message"], re.I), report
    assert SECRET not in report["message"] and OTHER_SECRET not in report["message"]


# -- 5. HTTP clients -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def secure_peer() -> Iterator[Peer]:
    """A ``_peer.py`` node with the secret and the token ``TOKEN`` (HTTP transport)."""
    if not native.NETWORK_AVAILABLE:
        pytest.skip("needs networking (see needs_network)")
    with start_peer("--secret", SECRET, "--api-token", TOKEN, env=child_env()) as peer:
        yield peer


@pytest.fixture(scope="module")
def creds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """``client.pem``, ``client.key``, ``ca.pem`` for ``SECRET``, written once."""
    return client_certificate(SECRET).write(tmp_path_factory.mktemp("creds"))


def tls_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """What ``curl --cacert ca [--cert cert --key key]`` (or httpx) does: verify the node with the
    cluster CA, present the certificate if given, offer ALPN ``http/1.1``."""
    tls = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        tls.load_cert_chain(str(cert), str(key) if key is not None else None)
    tls.set_alpn_protocols(["http/1.1"])
    return tls


def request(
    addr: str,
    method: str,
    path: str,
    *,
    tls: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, bytes]:
    """One HTTP/1.1 request, over TLS with ``tls``, else plaintext: ``(status, body)``."""
    host, port = addr.rsplit(":", 1)
    conn: http.client.HTTPConnection
    if tls is not None:
        conn = http.client.HTTPSConnection(host, int(port), timeout=20, context=tls)
    else:
        conn = http.client.HTTPConnection(host, int(port), timeout=20)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def call_counter(
    addr: str, *, tls: ssl.SSLContext | None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """``POST /actor/counter`` of the method ``count``: ``(status, decoded body)``."""
    body = msgpack.packb({"msg_type": "count", "payload": msgpack.packb([[], {}])})
    status, raw = request(
        addr,
        "POST",
        "/actor/counter",
        tls=tls,
        headers={"content-type": "application/msgpack", **(headers or {})},
        body=body,
    )
    return status, msgpack.unpackb(raw)


def assert_counted(status: int, body: Any) -> None:
    assert status == 200, body
    assert body["result"]["msg_type"] == "count"
    assert isinstance(msgpack.unpackb(body["result"]["payload"]), int)


@needs_network
@pytest.mark.timeout(30)
def test_a_client_certificate_calls_an_actor_over_https(
    secure_peer: Peer, creds: tuple[Path, Path, Path]
) -> None:
    pem, key, ca = creds
    assert_counted(*call_counter(secure_peer.addr, tls=tls_context(ca, pem, key)))


@needs_network
@pytest.mark.timeout(30)
def test_a_bearer_token_calls_an_actor_over_https(
    secure_peer: Peer, creds: tuple[Path, Path, Path]
) -> None:
    auth = {"authorization": f"Bearer {TOKEN}"}
    assert_counted(*call_counter(secure_peer.addr, tls=tls_context(creds[2]), headers=auth))


@needs_network
@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer not-the-token"}, {"authorization": TOKEN}],
    ids=["no-credentials", "wrong-token", "token-without-bearer"],
)
def test_a_call_without_valid_credentials_gets_401_unauthorized(
    secure_peer: Peer, creds: tuple[Path, Path, Path], headers: dict[str, str]
) -> None:
    status, body = call_counter(secure_peer.addr, tls=tls_context(creds[2]), headers=headers)
    assert status == 401, body
    assert body["error"]["kind"] == "unauthorized", body
    assert TOKEN not in str(body) and SECRET not in str(body)


@needs_network
@pytest.mark.timeout(30)
def test_a_client_certificate_from_another_secret_is_refused(
    secure_peer: Peer, tmp_path: Path
) -> None:
    pem, key, _ = client_certificate(OTHER_SECRET).write(tmp_path)
    _, _, ca = client_certificate(SECRET).write(tmp_path / "ca")
    try:
        status, body = call_counter(secure_peer.addr, tls=tls_context(ca, pem, key))
    except (ssl.SSLError, ConnectionError) as e:  # refused in the handshake
        print(f"\nrefused in the TLS handshake: {e!r}")
        return
    assert status == 401, body
    assert body["error"]["kind"] == "unauthorized", body


@needs_network
@pytest.mark.timeout(30)
def test_the_node_is_not_verified_with_another_clusters_ca(
    secure_peer: Peer, tmp_path: Path
) -> None:
    # The node's certificate chains to SECRET's CA only: a client trusting another CA refuses it.
    _, _, other_ca = client_certificate(OTHER_SECRET).write(tmp_path)
    with pytest.raises(ssl.SSLCertVerificationError):
        request(secure_peer.addr, "GET", "/health", tls=tls_context(other_ca))


@needs_network
@pytest.mark.timeout(30)
def test_health_needs_no_credentials_over_https_or_plaintext(
    secure_peer: Peer, creds: tuple[Path, Path, Path]
) -> None:
    assert request(secure_peer.addr, "GET", "/health", tls=tls_context(creds[2]))[0] == 200
    assert request(secure_peer.addr, "GET", "/health")[0] == 200


@needs_network
@pytest.mark.timeout(30)
def test_a_plaintext_call_to_a_node_with_a_secret_gets_400(secure_peer: Peer) -> None:
    # Even with a valid token: a token is only taken over TLS.
    auth = {"authorization": f"Bearer {TOKEN}"}
    status, body = call_counter(secure_peer.addr, tls=None, headers=auth)
    assert status == 400, body
    assert body["error"]["kind"] == "unauthorized", body
    assert re.search(r"\bTLS\b", body["error"]["message"], re.I), body


# -- 6. PULSING_SECRET ---------------------------------------------------------------------------


@needs_network
@pytest.mark.timeout(40)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_pulsing_secret_in_a_childs_environment_is_its_secret(transport: Transport) -> None:
    async def main() -> None:
        config = SystemConfig.with_addr("127.0.0.1:0").with_transport(transport)
        async with await create_actor_system(config.with_secret(SECRET)) as system:
            mine = await system.spawn(Counter(), "parent-counter", public=True)
            assert system.addr is not None
            # The child: `_peer.py` given no --secret, with PULSING_SECRET in its environment.
            peer_cm = start_peer(
                "--seed", system.addr, "--transport", transport, env=child_env(SECRET)
            )
            peer: Peer = await in_thread(peer_cm.__enter__)
            try:

                def peer_state() -> str | None:
                    return {m.addr: m.state for m in system.members()}.get(peer.addr)

                await eventually(peer_state, equals="alive", within=10)
                # Calls go both ways.
                counter = await found(system, "counter")
                assert not counter.is_local
                assert await counter.bump() == 1
                holder = await found(system, "holder")
                assert await holder.call_ref(mine) == 1
            finally:
                await in_thread(peer_cm.__exit__, None, None, None)

    asyncio.run(main())
