"""The API in one process: systems, spawning, finding, asks, tells, @as_actor, streams, errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack
import pytest

import pulsing
from pulsing.actor import (
    Actor,
    ActorError,
    ActorNotFoundError,
    ActorRef,
    ActorStoppedError,
    ActorSystem,
    AskTimeoutError,
    BadMessageError,
    Message,
    PulsingError,
    SystemConfig,
    as_actor,
    create_actor_system,
)


def run(test: Callable[[ActorSystem], Awaitable[Any]], config: SystemConfig | None = None) -> Any:
    async def main() -> Any:
        async with await create_actor_system(config) as system:
            return await test(system)

    return asyncio.run(main())


class Echo(Actor):
    async def receive(self, msg: Message) -> Message:
        return Message.single("reply", msg.payload)


class SyncEcho(Actor):
    def receive(self, msg: Message) -> Message:
        if msg.msg_type == "fail":
            raise ValueError("asked to fail")
        return Message.single(msg.msg_type, msg.payload.upper())


class Recorder(Actor):
    def __init__(self) -> None:
        self.seen: list[bytes] = []

    async def receive(self, msg: Message) -> Message | None:
        if msg.msg_type == "get":
            return Message.single("seen", b",".join(self.seen))
        self.seen.append(msg.payload)
        return None


class Streamer(Actor):
    async def receive(self, msg: Message) -> Message:
        n = int(msg.payload)

        async def items() -> Any:
            for i in range(n):
                yield Message.single("item", str(i).encode())

        return Message.stream("items", items())


@as_actor
class DistributedCounter:
    def __init__(self, init_value: int = 0):
        self.value = init_value

    def get(self) -> int:
        return self.value

    def increment(self, n: int = 1) -> int:
        self.value += n
        return self.value

    async def slow_add(self, n: int, delay: float) -> int:
        await asyncio.sleep(delay)
        self.value += n
        return self.value

    async def tokens(self, n: int) -> Any:
        for i in range(n):
            yield f"t{i}"

    def sync_tokens(self, n: int) -> Any:
        yield from range(n)

    def echo(self, *args: Any, **kwargs: Any) -> Any:
        return [list(args), kwargs]

    def fail(self) -> None:
        raise KeyError("missing")

    def unsendable(self) -> object:
        return object()

    def _private(self) -> int:
        return 1


# -- config and system -------------------------------------------------------------------------


def test_system_config_builders_work_on_the_class_and_on_instances() -> None:
    c = SystemConfig.with_addr("0.0.0.0:8001").with_seeds(["192.168.1.1:8000"])
    assert c.addr == "0.0.0.0:8001" and c.seeds == ("192.168.1.1:8000",)
    assert SystemConfig.with_seeds(["a:1"]).with_addr("127.0.0.1:0").seeds == ("a:1",)
    assert SystemConfig.standalone().addr is None
    assert SystemConfig.standalone().with_ask_timeout(2).ask_timeout == 2.0


def test_standalone_system_has_no_address_and_shuts_down_twice() -> None:
    async def main() -> None:
        system = await create_actor_system(SystemConfig.standalone())
        assert system.addr is None
        await system.shutdown()
        await system.shutdown()

    asyncio.run(main())


def test_async_with_shuts_the_system_down() -> None:
    async def main() -> None:
        async with await create_actor_system() as system:
            ref = await system.spawn(Echo(), "echo")
        with pytest.raises(ActorStoppedError):
            await ref.ask(Message.single("x", b""))
        assert await system.find("echo") is None

    asyncio.run(main())


# -- spawn, find, has_actor --------------------------------------------------------------------


def test_spawn_find_and_has_actor() -> None:
    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(Echo(), "worker", public=True)
        assert isinstance(ref, ActorRef) and ref.name == "worker" and ref.is_local
        found = await system.find("worker")
        assert found is not None and found == ref
        assert await system.has_actor("worker")
        assert await system.find("nobody") is None
        assert not await system.has_actor("nobody")
        await system.spawn(Echo(), "private-worker")
        assert await system.has_actor("private-worker")

    run(test)


def test_spawning_a_taken_name_fails() -> None:
    async def test(system: ActorSystem) -> None:
        await system.spawn(Echo(), "dup")
        with pytest.raises(PulsingError):
            await system.spawn(Echo(), "dup")

    run(test)


def test_spawning_a_bad_name_is_a_bad_message() -> None:
    async def test(system: ActorSystem) -> None:
        with pytest.raises(BadMessageError):
            await system.spawn(Echo(), "has space/slash")

    run(test)


def test_spawn_refuses_plain_objects() -> None:
    async def test(system: ActorSystem) -> None:
        with pytest.raises(TypeError):
            await system.spawn(object(), "x")

    run(test)


def test_stopped_actor_refuses_messages_and_disappears() -> None:
    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(Echo(), "e")
        await system.stop("e")
        assert await system.find("e") is None
        with pytest.raises(ActorStoppedError):
            await ref.ask(Message.single("x", b""))
        with pytest.raises(ActorNotFoundError):
            await system.stop("e")

    run(test)


# -- ask, tell, Message ------------------------------------------------------------------------


def test_message_single_and_its_fields() -> None:
    m = Message.single("request", b"data")
    assert (m.msg_type, m.payload, m.is_stream) == ("request", b"data", False)
    assert Message.single("t", bytearray(b"x")).payload == b"x"
    with pytest.raises(TypeError):
        Message.single("t", "not bytes")  # type: ignore[arg-type]


def test_ask_with_async_and_sync_receive() -> None:
    async def test(system: ActorSystem) -> None:
        echo = await system.spawn(Echo(), "echo")
        reply = await echo.ask(Message.single("request", b"data"), timeout=5.0)
        assert (reply.msg_type, reply.payload) == ("reply", b"data")
        up = await system.spawn(SyncEcho(), "up")
        reply = await up.ask(Message.single("t", b"abc"))
        assert reply.payload == b"ABC"

    run(test)


def test_tell_is_handled_in_order_before_a_later_ask() -> None:
    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(Recorder(), "rec")
        for i in range(50):
            await ref.tell(Message.single("event", str(i).encode()))
        reply = await ref.ask(Message.single("get", b""))
        assert reply.payload == b",".join(str(i).encode() for i in range(50))

    run(test)


def test_handler_error_reaches_the_caller_as_actor_error_and_the_actor_goes_on() -> None:
    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(SyncEcho(), "up")
        with pytest.raises(ActorError) as info:
            await ref.ask(Message.single("fail", b""))
        assert info.value.type_name == "ValueError"
        assert info.value.message == "asked to fail"
        assert "ValueError: asked to fail" in str(info.value)
        assert (await ref.ask(Message.single("ok", b"x"))).payload == b"X"

    run(test)


def test_ask_times_out_with_ask_timeout_error() -> None:
    class Sleeper(Actor):
        async def receive(self, msg: Message) -> Message:
            await asyncio.sleep(float(msg.payload))
            return Message.single("done", b"")

    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(Sleeper(), "sleeper")
        with pytest.raises(AskTimeoutError):
            await ref.ask(Message.single("sleep", b"2"), timeout=0.05)
        with pytest.raises(TimeoutError):
            await ref.ask(Message.single("sleep", b"2"), timeout=0.05)

    run(test)


def test_ask_refuses_a_stream_request() -> None:
    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(Echo(), "echo")
        with pytest.raises(BadMessageError):
            await ref.ask(Message.stream("s", [b"a"]))

    run(test)


def test_streamed_reply_is_read_with_async_for() -> None:
    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(Streamer(), "streamer")
        reply = await ref.ask(Message.single("go", b"4"))
        assert reply.is_stream
        got = [item.payload async for item in reply]
        assert got == [b"0", b"1", b"2", b"3"]
        with pytest.raises(BadMessageError):
            [item async for item in reply]

    run(test)


def test_single_reply_reads_as_a_one_item_stream() -> None:
    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(Echo(), "echo")
        reply = await ref.ask(Message.single("x", b"y"))
        assert [m.payload async for m in reply] == [b"y"]

    run(test)


def test_handlers_run_one_at_a_time_in_order() -> None:
    class Serial(Actor):
        def __init__(self) -> None:
            self.active = 0
            self.order: list[int] = []

        async def receive(self, msg: Message) -> Message:
            self.active += 1
            assert self.active == 1, "two handlers ran at once"
            await asyncio.sleep(0.001)
            self.order.append(int(msg.payload))
            self.active -= 1
            return Message.single("order", ",".join(map(str, self.order)).encode())

    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(Serial(), "serial")
        replies = await asyncio.gather(
            *[ref.ask(Message.single("n", str(i).encode())) for i in range(20)]
        )
        assert replies[-1].payload == ",".join(str(i) for i in range(20)).encode()

    run(test)


# -- @as_actor ---------------------------------------------------------------------------------


def test_guide_counter_locally() -> None:
    async def test(system: ActorSystem) -> None:
        counter = await DistributedCounter.local(system, init_value=0)
        await system.spawn(counter, "counter", public=True)
        ref = await system.find("counter")
        assert ref is not None
        assert await ref.get() == 0
        assert await ref.increment(5) == 5
        assert await ref.increment() == 6
        assert await ref.slow_add(4, delay=0.01) == 10

    run(test)


def test_method_values_round_trip_like_msgpack() -> None:
    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(DistributedCounter(), "c")
        got = await ref.echo(None, True, 1, 2.5, "s", b"b", [1], (2, 3), {"k": {1: 2}}, key="v")
        assert got == [[None, True, 1, 2.5, "s", b"b", [1], [2, 3], {"k": {1: 2}}], {"key": "v"}]

    run(test)


def test_unsendable_argument_is_a_type_error_at_the_caller_naming_it() -> None:
    async def test(system: ActorSystem) -> None:
        counter = DistributedCounter()
        ref = await system.spawn(counter, "c")
        with pytest.raises(TypeError, match="argument 1"):
            ref.echo(1, object())
        with pytest.raises(TypeError, match="argument 'when'"):
            ref.echo(when={1, 2})
        assert counter.value == 0

    run(test)


def test_unsendable_return_value_is_an_actor_error() -> None:
    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(DistributedCounter(), "c")
        with pytest.raises(ActorError) as info:
            await ref.unsendable()
        assert info.value.type_name == "TypeError"

    run(test)


def test_missing_and_private_methods_are_actor_errors_naming_them() -> None:
    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(DistributedCounter(), "c")
        with pytest.raises(ActorError, match="no_such_method") as info:
            await ref.no_such_method()
        assert info.value.type_name == "AttributeError"
        with pytest.raises(ActorError, match="_private"):
            await ref.call("_private")

    run(test)


def test_method_exception_is_an_actor_error_with_its_type() -> None:
    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(DistributedCounter(), "c")
        with pytest.raises(ActorError) as info:
            await ref.fail()
        assert info.value.type_name == "KeyError"
        assert await ref.increment(1) == 1

    run(test)


def test_generator_methods_stream() -> None:
    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(DistributedCounter(), "c")
        assert [t async for t in ref.tokens(3)] == ["t0", "t1", "t2"]
        assert [t async for t in ref.sync_tokens(4)] == [0, 1, 2, 3]
        items = await ref.tokens(2)
        assert [t async for t in items] == ["t0", "t1"]

    run(test)


def test_method_call_is_the_documented_wire_message() -> None:
    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(DistributedCounter(), "c")
        reply = await ref.ask(Message.single("increment", msgpack.packb([[7], {}])))
        assert msgpack.unpackb(reply.payload) == 7
        reply = await ref.ask(Message.single("get", b""))
        assert msgpack.unpackb(reply.payload) == 7
        with pytest.raises(ActorError, match="BadMessageError"):
            await ref.ask(Message.single("increment", b"\xc1not msgpack"))

    run(test)


def test_as_actor_methods_on_an_actor_subclass_ref() -> None:
    class Adder(Actor):
        def receive(self, msg: Message) -> Message:
            args, _ = msgpack.unpackb(msg.payload)
            return Message.single(msg.msg_type, msgpack.packb(sum(args)))

    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(Adder(), "adder")
        assert await ref.add(1, 2, 3) == 6

    run(test)


def test_concurrent_calls_keep_the_counter_exact() -> None:
    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(DistributedCounter(), "c")
        await asyncio.gather(*[ref.increment(1) for _ in range(500)])
        await asyncio.gather(*[ref.slow_add(1, 0) for _ in range(100)])
        assert await ref.get() == 600

    run(test)


def test_the_package_root_exposes_the_same_api() -> None:
    assert pulsing.as_actor is as_actor and pulsing.Message is Message
    assert pulsing.create_actor_system is create_actor_system


def test_a_spawn_cancelled_half_way_leaves_the_name_free() -> None:
    @as_actor
    class Pinger:
        def ping(self) -> str:
            return "pong"

    async def test(system: ActorSystem) -> None:
        spawning = asyncio.create_task(system.spawn(Pinger(), "pinger"))
        await asyncio.sleep(0)  # the core spawn is in flight
        spawning.cancel()
        with pytest.raises(asyncio.CancelledError):
            await spawning
        # Once the core has finished the spawn it is undone: the name is free again.
        for _ in range(100):
            try:
                ref = await system.spawn(Pinger(), "pinger")
                break
            except PulsingError:
                await asyncio.sleep(0.02)
        else:
            pytest.fail("the name stayed taken by the cancelled spawn's proxy")
        assert await ref.ping() == "pong"

    run(test)
