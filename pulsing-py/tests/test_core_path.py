"""Python actors reached through the core runtime: the path other nodes and Rust callers take
(proxy actor, hub, Tokio), exercised in one process with refs made by the core system."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from pulsing.actor import (
    Actor,
    ActorError,
    ActorRef,
    ActorStoppedError,
    ActorSystem,
    AskTimeoutError,
    MailboxFullError,
    Message,
    PulsingError,
    SystemConfig,
    as_actor,
    create_actor_system,
)


@as_actor
class Counter:
    def __init__(self) -> None:
        self.value = 0

    def increment(self, n: int = 1) -> int:
        self.value += n
        return self.value

    async def slow(self, delay: float) -> str:
        await asyncio.sleep(delay)
        return "done"

    async def tokens(self, n: int) -> Any:
        for i in range(n):
            yield f"t{i}"

    def broken_stream(self) -> Any:
        yield 1
        raise RuntimeError("stream broke")

    def fail(self) -> None:
        raise ValueError("nope")


async def core_ref(system: ActorSystem, name: str) -> ActorRef:
    """A ref through the core system, as another node would hold (not the same-loop fast path)."""
    native = await system._call("find", name)
    assert native is not None
    return ActorRef(system, name, None, native)


def run(test: Any, config: SystemConfig | None = None) -> Any:
    async def main() -> Any:
        async with await create_actor_system(config) as system:
            return await test(system)

    return asyncio.run(main())


def test_method_calls_and_errors_through_the_core() -> None:
    async def test(system: ActorSystem) -> None:
        await system.spawn(Counter(), "c", public=True)
        ref = await core_ref(system, "c")
        assert not ref._local and ref.is_local
        assert await ref.increment(5) == 5
        with pytest.raises(ActorError) as info:
            await ref.fail()
        assert info.value.type_name == "ValueError" and info.value.message == "nope"
        with pytest.raises(ActorError, match="missing"):
            await ref.missing()

    run(test)


def test_streams_through_the_core() -> None:
    async def test(system: ActorSystem) -> None:
        await system.spawn(Counter(), "c")
        ref = await core_ref(system, "c")
        assert [t async for t in ref.tokens(5)] == [f"t{i}" for i in range(5)]
        got = []
        with pytest.raises(ActorError, match="stream broke"):
            async for item in ref.broken_stream():
                got.append(item)
        assert got == [1]

    run(test)


def test_one_queue_for_local_and_core_callers() -> None:
    async def test(system: ActorSystem) -> None:
        local = await system.spawn(Counter(), "c")
        remote = await core_ref(system, "c")
        results = await asyncio.gather(
            *[(local if i % 2 else remote).increment(1) for i in range(200)]
        )
        assert sorted(results) == list(range(1, 201))
        assert await local.increment(0) == 200

    run(test)


def test_raw_messages_through_the_core() -> None:
    class Echo(Actor):
        async def receive(self, msg: Message) -> Message:
            return Message.single("reply", msg.payload)

    async def test(system: ActorSystem) -> None:
        await system.spawn(Echo(), "echo")
        ref = await core_ref(system, "echo")
        reply = await ref.ask(Message.single("request", b"data"))
        assert (reply.msg_type, reply.payload) == ("reply", b"data")
        await ref.tell(Message.single("event", b""))

    run(test)


def test_core_callers_in_flight_are_handled_in_order() -> None:
    async def test(system: ActorSystem) -> None:
        await system.spawn(Counter(), "c", public=True)
        ref = await core_ref(system, "c")
        # The proxy hands messages over without waiting for replies: many are in flight at once.
        values = await asyncio.gather(*[ref.increment(1) for _ in range(300)])
        assert sorted(values) == list(range(1, 301))
        assert await ref.increment(0) == 300

    run(test)


def test_core_callers_wait_for_room_in_a_full_mailbox() -> None:
    async def test(system: ActorSystem) -> None:
        await system.spawn(Counter(), "c", public=True)
        ref = await core_ref(system, "c")
        # Far more than the capacity of 2, all within the mailbox wait: they wait, none is refused.
        results = await asyncio.gather(*[ref.slow(0.05) for _ in range(12)])
        assert results == ["done"] * 12

    run(test, SystemConfig.standalone().with_mailbox_capacity(2))


def test_core_callers_are_refused_after_the_mailbox_wait() -> None:
    async def test(system: ActorSystem) -> None:
        await system.spawn(Counter(), "c", public=True)
        ref = await core_ref(system, "c")
        calls = [asyncio.ensure_future(ref.slow(0.3)) for _ in range(12)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        done = [r for r in results if r == "done"]
        full = [r for r in results if isinstance(r, MailboxFullError)]
        assert done and full and len(done) + len(full) == len(results)

    run(test, SystemConfig.standalone().with_mailbox_capacity(2).with_mailbox_wait(0.2))


def test_core_ask_times_out() -> None:
    async def test(system: ActorSystem) -> None:
        await system.spawn(Counter(), "c")
        ref = await core_ref(system, "c")
        with pytest.raises(AskTimeoutError):
            await ref.ask(Message.single("slow", b"\x92\x91\x01\x80"), timeout=0.05)

    run(test)


def test_shutdown_fails_calls_still_waiting() -> None:
    async def main() -> None:
        system = await create_actor_system()
        await system.spawn(Counter(), "c")
        ref = await core_ref(system, "c")
        call = asyncio.ensure_future(ref.slow(5.0))
        await asyncio.sleep(0.05)
        await system.shutdown()
        with pytest.raises((ActorStoppedError, ActorError)):
            await asyncio.wait_for(call, 10)
        with pytest.raises(ActorStoppedError):
            await ref.increment(1)

    asyncio.run(main())


def test_networked_config_without_a_transport_fails_with_a_clear_error() -> None:
    import pulsing._pulsing as native

    if native.NETWORK_AVAILABLE:
        pytest.skip("this build has a transport")

    async def main() -> None:
        with pytest.raises(PulsingError, match="transport"):
            await create_actor_system(SystemConfig.with_addr("127.0.0.1:0"))

    asyncio.run(main())


def test_a_core_call_works_with_every_asyncio_combinator() -> None:
    async def test(system: ActorSystem) -> None:
        await system.spawn(Counter(), "c", public=True)
        ref = await core_ref(system, "c")
        # Not sent until awaited or handed to asyncio; never started, it warns like a coroutine.
        unsent = ref.increment(100)
        assert await ref.increment(0) == 0
        with pytest.warns(RuntimeWarning, match=r"call c\.increment\(\) was never awaited"):
            del unsent
            gc.collect()
        assert await ref.increment(1) == 1
        assert await asyncio.wait_for(ref.increment(1), 5) == 2
        assert await asyncio.create_task(ref.increment(1)) == 3
        assert await asyncio.ensure_future(ref.increment(1)) == 4
        assert await asyncio.shield(ref.increment(1)) == 5
        # Like a coroutine, `wait` wants it in a task.
        both = [asyncio.create_task(ref.increment(1)) for _ in range(2)]
        done, pending = await asyncio.wait(both, timeout=5)
        assert not pending and sorted(f.result() for f in done) == [6, 7]
        seen = [await f for f in asyncio.as_completed([ref.increment(1), ref.increment(1)])]
        assert sorted(seen) == [8, 9]
        # A call that times out in `wait_for` is cancelled; the actor goes on.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ref.slow(1.0), 0.05)
        call = ref.increment(1)
        call.close()  # as for a coroutine: closed before it started, it is never sent
        del call
        gc.collect()
        assert await ref.increment(0) == 9, "a call closed before it was sent is never sent"
        # Errors arrive as exceptions of the call; streams are iterated with `async for`.
        with pytest.raises(ActorError, match="nope"):
            await ref.fail()
        assert [t async for t in ref.tokens(3)] == ["t0", "t1", "t2"]
        with pytest.raises(TypeError, match="did not reply with a stream"):
            async for _ in ref.increment(1):
                pass

    run(test)
