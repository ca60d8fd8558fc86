"""Type stub for the native module ``pulsing._pulsing`` (kept by hand; see src/lib.rs).

The exception classes are the ones defined in :mod:`pulsing.exceptions`; the native module
re-exports the same objects. The other names are the internals that :mod:`pulsing.actor` builds
the public API on; users call :mod:`pulsing.actor`, not these.

Calls that can wait take the system's :class:`Hub` and an asyncio future, return at once, and
complete the future later from the hub's :meth:`Hub.drain` (on the loop thread).
"""

import asyncio
import collections.abc
import typing

from pulsing.exceptions import ActorError as ActorError
from pulsing.exceptions import ActorNotFoundError as ActorNotFoundError
from pulsing.exceptions import ActorStoppedError as ActorStoppedError
from pulsing.exceptions import AskTimeoutError as AskTimeoutError
from pulsing.exceptions import BadMessageError as BadMessageError
from pulsing.exceptions import MailboxFullError as MailboxFullError
from pulsing.exceptions import NodeUnreachableError as NodeUnreachableError
from pulsing.exceptions import PulsingError as PulsingError
from pulsing.exceptions import UnauthorizedError as UnauthorizedError

__version__: str
NETWORK_AVAILABLE: bool
"""Whether ``pulsing::system_builder().addr("127.0.0.1:0")`` builds here (found at import)."""

_Fut = asyncio.Future[typing.Any]
# NativeSystem.stats(): the core's SystemStats field by field (see `StatsTuple` in src/native.rs).
_Stats = tuple[
    int,
    int,
    int,
    int,
    int,
    int,
    int,
    list[tuple[str, int]],
    list[tuple[str, int]],
    int,
    list[tuple[str, int]],
]

@typing.final
class Hub:
    """Carries results and inbound messages from Tokio to one asyncio loop, in batches."""

    def __init__(
        self,
        deliver: collections.abc.Callable[[int, str, bytes, ReplyHandle], None],
        decode: collections.abc.Callable[[bytes], typing.Any],
        stream: collections.abc.Callable[[NativeStream], typing.Any],
    ) -> None: ...
    def fileno(self) -> int:
        """The descriptor the loop watches with ``add_reader``."""
    def drain(self) -> None:
        """Resolves finished calls and delivers inbound messages; never blocks."""
    def cancel(self, id: int) -> None:
        """Abandons the call ``id`` (resets a remote request)."""
    def close(self) -> None:
        """Refuses later events and fails waiting futures with ActorStoppedError."""

def build_system(
    hub: Hub,
    fut: _Fut,
    addr: str | None = None,
    seeds: list[str] = ...,
    ask_timeout: float | None = None,
    mailbox_capacity: int | None = None,
    mailbox_wait: float | None = None,
    transport: typing.Literal["http", "quic"] = "http",
    secrets: list[str] = ...,
    api_tokens: list[str] = ...,
) -> None:
    """Builds a system with ``pulsing::system_builder()``; ``fut`` gets a NativeSystem.

    A system with ``addr`` or ``seeds`` serves over ``transport``; ValueError for another name.
    ``secrets`` (first presented, all accepted; none: ``PULSING_SECRET``) and ``api_tokens`` go to
    the builder's ``.secrets(..)`` and ``.api_tokens(..)``."""

def client_certificate(secret: str) -> tuple[str, str, str]:
    """``(cert_pem, key_pem, ca_pem)``: a fresh client certificate from the CA of ``secret``.

    PulsingError for an empty secret."""

@typing.final
class NativeSystem:
    """A running core actor system."""

    @property
    def addr(self) -> str | None:
        """The bound address, None when standalone."""
    @property
    def ask_timeout(self) -> float:
        """The default ask timeout in seconds."""
    @property
    def node_id(self) -> str:
        """This run's boot id, 16 hex digits."""
    def members(self) -> list[tuple[str, str, str]]:
        """``(addr, node_id, state)`` of each member."""
    def stats(self) -> _Stats:
        """The core's counters: ``(actors, messages_handled, queued, in_flight_asks,
        expired_asks, panics, restarts, errors, dead_letters, bad_links, members)``, the counts
        by kind or state as ``(name, count)`` pairs."""
    def spawn(
        self,
        hub: Hub,
        fut: _Fut,
        name: str | None,
        public: bool,
        actor_id: int,
        credits: Credits,
    ) -> None:
        """Registers the proxy of Python actor ``actor_id`` (anonymous without a name); ``fut``
        gets its NativeRef."""
    def find(self, hub: Hub, fut: _Fut, name: str) -> None:
        """``fut`` gets a NativeRef or None."""
    def find_all(self, hub: Hub, fut: _Fut, name: str) -> None:
        """``fut`` gets a list of NativeRef."""
    def decode_ref(self, data: bytes) -> NativeRef:
        """The ref that extension data ``[addr, node, id]`` names."""
    def stop(self, hub: Hub, fut: _Fut, name: str) -> None:
        """Stops a local actor."""
    def shutdown(self, hub: Hub, fut: _Fut) -> None:
        """Shuts the system down."""
    def remote_ref(self, addr: str, name: str) -> NativeRef:
        """A ref to ``name`` at ``addr`` without asking the membership."""

@typing.final
class NativeRef:
    """A core actor ref (remote, or local through the core runtime)."""

    @property
    def name(self) -> str:
        """The actor's name."""
    @property
    def is_local(self) -> bool:
        """Whether the actor runs in this process."""
    @property
    def remote_addr(self) -> str | None:
        """The remote node's address."""
    @property
    def node_id(self) -> str | None:
        """The boot id the ref is pinned to, if any."""
    def ext_data(self) -> bytes:
        """This ref as msgpack extension data ``[addr, node, id]``."""
    def ask(self, hub: Hub, fut: _Fut, msg_type: str, payload: bytes, timeout: float) -> int:
        """``fut`` gets ``(msg_type, payload)`` or a NativeStream; returns the call's number."""
    def call(self, hub: Hub, fut: _Fut, method: str, payload: bytes, timeout: float) -> int:
        """``fut`` gets the decoded reply value, or the hub's ``stream(...)`` of a streamed one;
        returns the call's number."""
    def tell(self, hub: Hub, fut: _Fut, msg_type: str, payload: bytes) -> None:
        """``fut`` gets None once the message is queued."""

@typing.final
class NativeStream:
    """A streamed reply read item by item."""

    def next(self, hub: Hub, fut: _Fut) -> None:
        """``fut`` gets ``(msg_type, payload)``, None at the end, or the error that ended it."""

@typing.final
class Credits:
    """How many messages a proxy may hand to Python before Python takes them out of its mailbox."""

    def __init__(self, capacity: int) -> None: ...
    def release(self, n: int) -> None:
        """Returns ``n`` credits."""

@typing.final
class ReplyHandle:
    """The reply slot of a message delivered to a Python actor by the core system."""

    @property
    def closed(self) -> bool:
        """Whether the asker gave up."""
    @property
    def remote(self) -> bool:
        """Always True: the answer may leave this node."""
    def ok(self, msg_type: str, payload: bytes) -> bool:
        """Answers with a single message."""
    def error(self, type_name: str | None, message: str, detail: str | None = None) -> bool:
        """Answers with a handler error."""
    def stopped(self, message: str) -> bool:
        """Answers that the actor stopped: the sender gets ActorStoppedError."""
    def expire(self) -> None:
        """Drops the message because its asker gave up, counting it as expired."""
    def stream(self, capacity: int = 32, timeout: float = 30.0) -> StreamWriter | None:
        """Answers with a stream and returns its writer (None for a tell)."""

@typing.final
class StreamWriter:
    """The producing end of a streamed reply."""

    def send(self, hub: Hub, fut: _Fut, msg_type: str, payload: bytes) -> None:
        """Queues one item."""
    def end(self, hub: Hub, fut: _Fut) -> None:
        """Ends the stream cleanly."""
    def fail(
        self,
        hub: Hub,
        fut: _Fut,
        type_name: str | None,
        message: str,
        detail: str | None = None,
    ) -> None:
        """Ends the stream with an error item."""
