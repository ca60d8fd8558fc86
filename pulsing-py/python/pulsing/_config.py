"""``SystemConfig``: how to start an :class:`~pulsing.actor.ActorSystem`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Concatenate, Generic, Literal, ParamSpec, TypeVar, get_args

from pulsing._security import _check_secret

__all__ = ["DEFAULT_MAILBOX_CAPACITY", "DEFAULT_MAILBOX_WAIT", "SystemConfig", "TransportName"]

DEFAULT_MAILBOX_CAPACITY = 1024
"""Messages a Python actor's mailbox holds by default (as the core's default)."""
DEFAULT_MAILBOX_WAIT = 5.0
"""Seconds a sender waits for room in a full mailbox before ``MailboxFullError``."""
DEFAULT_STREAM_SEND_TIMEOUT = 30.0
"""Seconds a streaming handler waits for its consumer to make room before the stream fails."""

TransportName = Literal["http", "quic"]
"""The transports a node can serve with (:meth:`SystemConfig.with_transport`)."""
_TRANSPORTS: tuple[TransportName, ...] = get_args(TransportName)

_P = ParamSpec("_P")
_R = TypeVar("_R")


class _either(Generic[_P, _R]):  # noqa: N801 - used like `classmethod`
    """A method callable on the class (acting on a default instance) or on an instance."""

    def __init__(self, fn: Callable[Concatenate[SystemConfig, _P], _R]) -> None:
        self._fn = fn
        self.__doc__ = fn.__doc__

    def __get__(self, obj: SystemConfig | None, owner: type[SystemConfig]) -> Callable[_P, _R]:
        target = obj if obj is not None else owner()
        return functools.partial(self._fn, target)


@dataclass(frozen=True)
class SystemConfig:
    """How to start an :class:`ActorSystem`: standalone, or serving an address and joining seeds.

    ``SystemConfig.with_addr("0.0.0.0:8000")`` serves on that address (port 0 picks a free one; the
    bound address is ``system.addr``); ``.with_seeds(["host:port", ...])`` also joins the cluster
    through those nodes; ``.with_transport("quic")`` serves and calls over QUIC instead of HTTP;
    ``.with_secret("...")`` admits only nodes and clients that hold the same cluster secret.
    ``SystemConfig.standalone()`` has no network. Each ``with_*`` returns a new config and works on
    the class or on an instance. Secrets and tokens are kept out of ``repr()``.
    """

    addr: str | None = None
    seeds: tuple[str, ...] = ()
    ask_timeout: float | None = None
    mailbox_capacity: int = DEFAULT_MAILBOX_CAPACITY
    mailbox_wait: float = DEFAULT_MAILBOX_WAIT
    stream_send_timeout: float = DEFAULT_STREAM_SEND_TIMEOUT
    transport: TransportName = "http"
    secrets: tuple[str, ...] = field(default=(), repr=False)
    api_tokens: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def standalone(cls) -> SystemConfig:
        """A config with no network: actors are reachable from this process only."""
        return cls()

    @_either
    def with_addr(self, addr: str) -> SystemConfig:
        """This config serving on ``addr`` (``"host:port"``, an IP host)."""
        return replace(self, addr=str(addr))

    @_either
    def with_seeds(self, seeds: list[str] | tuple[str, ...] | str) -> SystemConfig:
        """This config joining the cluster through ``seeds`` (``"host:port"`` each)."""
        if isinstance(seeds, str):
            seeds = [seeds]
        return replace(self, seeds=tuple(str(s) for s in seeds))

    @_either
    def with_transport(self, transport: TransportName) -> SystemConfig:
        """This config serving and calling other nodes over ``transport`` (default ``"http"``).

        ``"http"``: HTTP on TCP port P. ``"quic"``: QUIC on UDP port P and HTTP on TCP port P (so
        ``curl``, ``GET /health`` and ``/metrics`` work as with ``"http"``). A QUIC node calls a
        peer that does not answer QUIC (a node on ``"http"``) over TCP, after waiting up to 1 s
        for a QUIC answer, so a cluster may mix both. QUIC is encrypted with a self-signed
        certificate per node, not authenticated.

        Raises:
            ValueError: ``transport`` is neither ``"http"`` nor ``"quic"``.
        """
        if transport not in _TRANSPORTS:
            choices = " or ".join(repr(t) for t in _TRANSPORTS)
            raise ValueError(f"transport must be {choices}, got {transport!r}")
        return replace(self, transport=transport)

    @_either
    def with_ask_timeout(self, seconds: float) -> SystemConfig:
        """This config with a default ask timeout of ``seconds`` (default 30 s)."""
        return replace(self, ask_timeout=_positive("ask timeout", seconds))

    @_either
    def with_mailbox_capacity(self, capacity: int) -> SystemConfig:
        """This config with every actor's mailbox holding at most ``capacity`` messages
        (default 1024), for callers on this node and for messages from other nodes alike."""
        return replace(self, mailbox_capacity=max(1, int(capacity)))

    @_either
    def with_mailbox_wait(self, seconds: float) -> SystemConfig:
        """This config with senders waiting at most ``seconds`` for room in a full mailbox
        (default 5 s), then failing with ``MailboxFullError``."""
        return replace(self, mailbox_wait=_positive("mailbox wait", seconds))

    @_either
    def with_stream_send_timeout(self, seconds: float) -> SystemConfig:
        """This config with a streaming handler waiting at most ``seconds`` for its consumer to
        read (default 30 s); then the stream ends with an error and the actor goes on."""
        return replace(self, stream_send_timeout=_positive("stream send timeout", seconds))

    @_either
    def with_secret(self, secret: str) -> SystemConfig:
        """This config with the cluster secret ``secret`` (``docs/security.md``).

        Every node with the same secret derives the same cluster CA from it and gets a certificate
        from that CA at start. Links, gossip and QUIC are then mutual TLS: a node with another
        secret, or none, cannot join (its ``create_actor_system`` raises
        :class:`~pulsing.exceptions.UnauthorizedError`), gossip or call. The node's port speaks
        TLS only; HTTP clients need a client certificate (:func:`pulsing.client_certificate`) or
        one of the :meth:`with_api_tokens`; ``GET /health`` stays open. Use a random string
        (``openssl rand -hex 32``) and keep it out of the source.

        Without a secret, the node reads the environment variable ``PULSING_SECRET`` when it
        starts; without either, nothing is encrypted or authenticated.

        Raises:
            ValueError: ``secret`` is empty or only whitespace.
        """
        return replace(self, secrets=(_check_secret("secret", secret),))

    @_either
    def with_secrets(self, secrets: list[str] | tuple[str, ...] | str) -> SystemConfig:
        """This config with several cluster secrets, for rotating: the **first** is presented,
        **every one** is accepted (see :meth:`with_secret`).

        From secret A to B without an outage: restart the nodes one at a time with ``[A, B]``,
        then one at a time with ``[B, A]``, then (optionally) with ``[B]``.

        Raises:
            ValueError: no secret, or an empty one.
        """
        if isinstance(secrets, str):
            secrets = [secrets]
        checked = tuple(_check_secret("secret", s) for s in secrets)
        if not checked:
            raise ValueError("with_secrets needs at least one secret")
        return replace(self, secrets=checked)

    @_either
    def with_api_tokens(self, tokens: list[str] | tuple[str, ...] | str) -> SystemConfig:
        """This config accepting HTTP clients that send ``Authorization: Bearer <token>`` with one
        of ``tokens``, besides those with a client certificate. Tokens need a cluster secret
        (:meth:`with_secret` or ``PULSING_SECRET``): without one, ``create_actor_system`` raises
        :class:`~pulsing.exceptions.PulsingError`. A token opens ``POST /actor/{name}``,
        ``GET /actors`` and ``GET /metrics``, not links or gossip.

        Raises:
            ValueError: an empty token.
        """
        if isinstance(tokens, str):
            tokens = [tokens]
        return replace(self, api_tokens=tuple(_check_secret("API token", t) for t in tokens))


def _positive(what: str, seconds: float) -> float:
    value = float(seconds)
    if not value > 0:
        raise ValueError(f"{what} must be > 0 seconds, got {seconds!r}")
    return value
