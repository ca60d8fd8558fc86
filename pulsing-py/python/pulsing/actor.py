"""The actor API of the Remote Actors Guide.

::

    from pulsing.actor import SystemConfig, create_actor_system, as_actor

    @as_actor
    class Counter:
        def __init__(self, init_value: int = 0):
            self.value = init_value

        def increment(self, n: int = 1) -> int:
            self.value += n
            return self.value

    async def main():
        async with await create_actor_system(SystemConfig.standalone()) as system:
            counter = await Counter.local(system, init_value=0)
            ref = await system.spawn(counter, "counter", public=True)
            assert await ref.increment(5) == 5

Handlers run on the asyncio loop that created the system, one message at a time per actor
(streams included: a generator method holds the actor until its stream ends), in order. Method
calls on ``@as_actor`` actors are plain messages (``msg_type`` = method name, ``payload`` =
``msgpack([args, kwargs])``, reply = ``msgpack(value)``), so any language can call a Python actor
and a Python ref can call any actor that speaks the convention. Errors are the classes of
:mod:`pulsing.exceptions`.

The implementation is split by concept: ``_config`` (SystemConfig), ``_call`` (method calls),
``_ref`` (ActorRef), ``_system`` (ActorSystem), ``_stats`` (SystemStats), ``_impl`` (how an
object handles a message), ``_local`` (the mailbox), ``_reply`` (where answers go), ``_security``
(client certificates for HTTP clients of a node with a cluster secret).
"""

from __future__ import annotations

from pulsing._config import SystemConfig
from pulsing._impl import Actor, as_actor
from pulsing._message import Message
from pulsing._ref import ActorRef
from pulsing._security import ClientCertificate, client_certificate
from pulsing._stats import SystemStats
from pulsing._system import (
    ActorSystem,
    Member,
    create_actor_system,
    current_actor,
    current_system,
)
from pulsing.exceptions import (
    ActorError,
    ActorNotFoundError,
    ActorStoppedError,
    AskTimeoutError,
    BadMessageError,
    MailboxFullError,
    NodeUnreachableError,
    PulsingError,
    UnauthorizedError,
)

__all__ = [
    "Actor",
    "ActorError",
    "ActorNotFoundError",
    "ActorRef",
    "ActorStoppedError",
    "ActorSystem",
    "AskTimeoutError",
    "BadMessageError",
    "ClientCertificate",
    "MailboxFullError",
    "Member",
    "Message",
    "NodeUnreachableError",
    "PulsingError",
    "SystemConfig",
    "SystemStats",
    "UnauthorizedError",
    "as_actor",
    "client_certificate",
    "create_actor_system",
    "current_actor",
    "current_system",
]
