"""Edge cases a review found (cancellation, stopping, mailbox room, self-calls, refs, streams),
each kept as a bounded regression test: a regression fails within seconds instead of hanging.

The local tests run on a standalone system; the ones marked ``needs_network`` reach an actor of
their own system through the core (``system.remote_ref(system.addr, name)``), the path a remote
caller takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import warnings
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
from conftest import eventually, needs_network, run_local
from pulsing.actor import (
    ActorError,
    ActorRef,
    ActorStoppedError,
    ActorSystem,
    MailboxFullError,
    Message,
    SystemConfig,
    as_actor,
    current_actor,
)

TIMEOUTS = (TimeoutError, asyncio.TimeoutError)
NO_ARGS = msgpack.packb([[], {}])


def network_config() -> SystemConfig:
    return SystemConfig.with_addr("127.0.0.1:0")


@contextlib.contextmanager
def no_runtime_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Records every warning inside the block (and from objects collected at its end); fails if
    there was a RuntimeWarning (a coroutine or call "never awaited")."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
        gc.collect()
    runtime = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert not runtime, f"unexpected RuntimeWarnings: {runtime}"


# -- actors --------------------------------------------------------------------------------------


@as_actor
class Tally:
    """Counts how often its handlers ran; ``slow`` and ``hold`` keep it busy."""

    def __init__(self, release: asyncio.Event | None = None) -> None:
        self.n = 0
        self.marks: list[str] = []
        self.busy_started = 0
        self.release = release

    def inc(self) -> int:
        self.n += 1
        return self.n

    async def ainc(self) -> int:
        self.n += 1
        return self.n

    def get(self) -> int:
        return self.n

    def mark(self, tag: str) -> None:
        self.marks.append(tag)

    def quick(self) -> int:
        return 1

    async def slow(self, seconds: float) -> str:
        self.busy_started += 1
        await asyncio.sleep(seconds)
        return "done"

    async def hold(self) -> str:
        """Busy until the test sets ``release``."""
        self.busy_started += 1
        assert self.release is not None
        await self.release.wait()
        return "released"


@as_actor
class Gen:
    def gen(self, n: int) -> Any:
        yield from range(n)

    async def agen(self, n: int) -> Any:
        for i in range(n):
            yield i


@as_actor
class Canceller:
    """Sync handlers whose body raises CancelledError without being cancelled itself."""

    def boom(self) -> None:
        fut = asyncio.get_running_loop().create_future()
        fut.cancel()
        fut.result()  # raises CancelledError

    def ok(self) -> str:
        return "ok"

    async def slow(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "done"


@as_actor
class Selfish:
    def __init__(self) -> None:
        self.helper: asyncio.Task[Any] | None = None

    def ping(self) -> str:
        return "pong"

    async def direct(self) -> str:
        return await current_actor().ping()  # type: ignore[no-any-return]

    async def kick(self) -> str:
        me = current_actor()

        async def helper() -> Any:  # not awaited by the handler: it only needs its own turn
            return await me.ping()

        self.helper = asyncio.create_task(helper())
        await asyncio.sleep(0.05)  # still inside this handler's turn
        return "kicked"

    async def helper_result(self) -> str:
        assert self.helper is not None
        return await self.helper  # type: ignore[no-any-return]


async def later() -> int:
    return 42


@as_actor
class Misdeclared:
    async def slow(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def coro(self) -> Any:
        return later()  # a plain def returning a coroutine

    def gen(self) -> Any:
        return (i for i in range(3))  # a plain def returning a generator


@as_actor
class Sink:
    def take(self, value: Any) -> str:
        return repr(value)


# -- r1: cancelled before its first step ---------------------------------------------------------


def test_a_task_cancelled_before_its_first_step_never_sends_its_call() -> None:
    """A call whose task is cancelled before it ever ran is not sent (sync and async handler)."""

    async def test(system: ActorSystem) -> None:
        tally = Tally()
        ref = await system.spawn(tally, "tally")
        tasks = [asyncio.create_task(ref.inc()), asyncio.create_task(ref.ainc())]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, 2)
        await asyncio.sleep(0.1)  # room for a wrongly sent call to land
        # One at a time, in order: a call sent before this one would have run first.
        assert await asyncio.wait_for(ref.get(), 2) == 0
        assert tally.n == 0

    run_local(test)


# -- r2, r3: stopping an actor that streams ------------------------------------------------------


async def read_all(items: Any, got: list[Any]) -> None:
    async for item in items:
        got.append(item)


@pytest.mark.parametrize("method", ["gen", "agen"])
def test_stopping_an_actor_right_after_its_stream_reply_was_handed_over_still_ends_the_stream(
    method: str,
) -> None:
    """A stream whose actor stops before its runner's first step ends at the reader (no hang)."""

    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(Gen(), "g")
        with no_runtime_warnings():
            call = asyncio.ensure_future(ref.call(method, 3))  # queued; the pump is scheduled
            stopper = asyncio.create_task(system.stop("g"))  # runs before the runner's 1st step
            try:
                items = await asyncio.wait_for(call, 2)
            except ActorStoppedError:
                # An async generator is not handed over by the pump: stopped before it ran.
                assert method == "agen", "the sync generator's stream was not handed over"
                await asyncio.wait_for(stopper, 2)
                return
            await asyncio.wait_for(stopper, 2)
            got: list[Any] = []
            try:
                await asyncio.wait_for(read_all(items, got), 2)
            except ActorStoppedError:
                pass
            except TIMEOUTS:
                pytest.fail(f"the reader hung after {got!r}: no end, no ActorStoppedError")
            assert got == list(range(len(got))) and len(got) <= 3

    run_local(test)


def test_a_stop_while_the_stream_waits_for_room_gives_the_reader_its_items_then_stopped() -> None:
    """A local reader gets the buffered items, then ActorStoppedError, when the producer stops."""

    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(Gen(), "g")
        items = aiter(await ref.gen(100))
        got = [await asyncio.wait_for(anext(items), 2)]
        await asyncio.sleep(0.1)  # the producer fills the stream's buffer and waits for room
        await asyncio.wait_for(system.stop("g"), 2)
        with pytest.raises(ActorStoppedError):
            try:
                await asyncio.wait_for(read_all(items, got), 2)
            except TIMEOUTS:
                pytest.fail(f"the reader hung after {len(got)} items")
        assert got == list(range(len(got)))
        assert 1 < len(got) < 100, f"got {len(got)} items"

    run_local(test)


# -- r4: a sync handler raising CancelledError ---------------------------------------------------


def test_a_sync_handler_raising_cancelled_error_answers_stopped_and_the_actor_keeps_serving() -> (
    None
):
    """CancelledError from a sync handler answers ActorStoppedError and does not wedge the actor."""

    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(Canceller(), "c")
        # An ask, idle.
        with pytest.raises(ActorStoppedError):
            await asyncio.wait_for(ref.boom(), 2)
        assert await asyncio.wait_for(ref.ok(), 2) == "ok"
        # An ask queued behind another call.
        busy = asyncio.ensure_future(ref.slow(0.05))
        queued = asyncio.ensure_future(ref.boom())
        assert await asyncio.wait_for(busy, 2) == "done"
        with pytest.raises(ActorStoppedError):
            await asyncio.wait_for(queued, 2)
        assert await asyncio.wait_for(ref.ok(), 2) == "ok"
        # A tell, then more calls (the actor used to stay busy for good after this).
        assert await asyncio.wait_for(ref.tell(Message.single("boom", NO_ARGS)), 2) is None
        await asyncio.sleep(0.05)
        for _ in range(3):
            assert await asyncio.wait_for(ref.with_timeout(1).ok(), 2) == "ok"

    run_local(test)


# -- r5: a timed-out room waiter -----------------------------------------------------------------


def test_a_sender_whose_wait_for_room_timed_out_does_not_take_the_next_senders_wake_up() -> None:
    """After sender A gave up waiting for room, sender B is woken as soon as room appears."""

    async def test(system: ActorSystem) -> None:
        release = asyncio.Event()
        tally = Tally(release)
        ref = await system.spawn(tally, "a")
        busy = asyncio.ensure_future(ref.hold())
        await eventually(lambda: tally.busy_started, equals=1, within=2)
        quick = Message.single("quick", NO_ARGS)
        await asyncio.wait_for(ref.tell(quick), 2)  # fills the mailbox (capacity 1)
        started = time.monotonic()
        with pytest.raises(MailboxFullError):  # sender A waits 1 s for room, then gives up
            await asyncio.wait_for(ref.tell(quick), 3)
        assert time.monotonic() - started > 0.5, "sender A did not wait for room"
        b_started = time.monotonic()
        sender_b = asyncio.ensure_future(ref.tell(quick))
        await asyncio.sleep(0.15)
        assert not sender_b.done(), "sender B got in while the mailbox was full"
        release.set()  # room appears ~0.15 s into B's 1 s wait
        await asyncio.wait_for(sender_b, 1.5)
        took = time.monotonic() - b_started
        assert took < 0.7, f"sender B was delivered only after {took:.2f}s (its own deadline)"
        assert await asyncio.wait_for(busy, 2) == "released"

    config = SystemConfig.standalone().with_mailbox_capacity(1).with_mailbox_wait(1.0)
    run_local(test, config)


# -- r6, r11: self-calls -------------------------------------------------------------------------


def test_a_handler_that_directly_awaits_a_call_to_its_own_actor_fails_at_once() -> None:
    """A direct self-call fails at once with ActorError "would wait for itself"."""

    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(Selfish(), "s")
        started = time.monotonic()
        with pytest.raises(ActorError, match="would wait for itself"):
            await asyncio.wait_for(ref.with_timeout(2.5).direct(), 2.5)
        assert time.monotonic() - started < 1.0
        assert await asyncio.wait_for(ref.ping(), 2) == "pong"

    run_local(test, SystemConfig.standalone().with_ask_timeout(2.5))


def test_a_helper_task_a_handler_starts_may_call_its_own_actor_and_is_answered_later() -> None:
    """A task a handler starts without awaiting it is not refused: it gets its reply later."""

    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(Selfish(), "s")
        assert await asyncio.wait_for(ref.kick(), 2) == "kicked"
        assert await asyncio.wait_for(ref.helper_result(), 2) == "pong"

    run_local(test, SystemConfig.standalone().with_ask_timeout(2.5))


# -- r7: an abandoned ask through the core -------------------------------------------------------


@needs_network
@pytest.mark.parametrize("how", ["ask", "call"])
def test_an_ask_through_a_core_ref_abandoned_while_the_actor_is_busy_is_skipped(how: str) -> None:
    """An ask (Message or method call) through the core whose caller gave up is never handled."""

    async def test(system: ActorSystem) -> None:
        tally = Tally()
        await system.spawn(tally, "c", public=True)
        ref = system.remote_ref(system.addr, "c")
        assert not ref.is_local
        busy = asyncio.ensure_future(ref.slow(0.6))
        await eventually(lambda: tally.busy_started, equals=1, within=2)
        if how == "ask":
            abandoned = ref.ask(Message.single("mark", msgpack.packb([["abandoned"], {}])))
        else:
            abandoned = ref.mark("abandoned")
        with pytest.raises(TIMEOUTS):
            await asyncio.wait_for(abandoned, 0.2)
        assert await asyncio.wait_for(busy, 2) == "done"
        await asyncio.wait_for(ref.mark("after"), 2)
        await asyncio.sleep(0.1)
        assert tally.marks == ["after"], "the abandoned ask was handled"

    run_local(test, network_config())


# -- r8: the ref of a stopped anonymous actor ----------------------------------------------------


@needs_network
def test_the_ref_of_a_stopped_anonymous_actor_can_still_be_passed_as_an_argument() -> None:
    """A stopped anonymous actor's ref stays anonymous: it may still leave the node."""

    async def test(system: ActorSystem) -> None:
        await system.spawn(Sink(), "sink", public=True)
        sink = system.remote_ref(system.addr, "sink")
        private = await system.spawn(Sink(), "private-sink")
        with pytest.raises(TypeError, match="private"):  # the path really checks
            await asyncio.wait_for(sink.take(private), 2)
        anon = await system.spawn(Sink())
        assert anon.name in await asyncio.wait_for(sink.take(anon), 2)
        await asyncio.wait_for(system.stop(anon.name), 2)
        assert anon.name in await asyncio.wait_for(sink.take(anon), 2)
        assert anon.name in await asyncio.wait_for(sink.take([anon, {"r": anon}]), 2)

    run_local(test, network_config())


# -- r9: stopping with core messages queued ------------------------------------------------------


@needs_network
def test_stopping_an_actor_with_core_messages_queued_behind_a_slow_call_is_prompt() -> None:
    """Stop returns promptly with calls queued through the core; those get ActorStoppedError."""

    async def test(system: ActorSystem) -> None:
        tally = Tally()
        await system.spawn(tally, "c", public=True)
        ref = system.remote_ref(system.addr, "c")
        busy = asyncio.ensure_future(ref.slow(5))
        await eventually(lambda: tally.busy_started, equals=1, within=2)
        calls = [asyncio.ensure_future(ref.quick()) for _ in range(12)]
        await asyncio.sleep(0.2)
        assert not any(c.done() for c in calls), "a call got through while the actor was busy"
        started = time.monotonic()
        await asyncio.wait_for(system.stop("c"), 2.5)
        took = time.monotonic() - started
        assert took < 2.0, f"stop took {took:.2f}s"
        results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 2)
        kinds = {type(r).__name__ for r in results}
        assert kinds == {"ActorStoppedError"}, kinds
        busy_result = await asyncio.wait_for(asyncio.gather(busy, return_exceptions=True), 2)
        assert isinstance(busy_result[0], ActorStoppedError), busy_result

    run_local(test, network_config().with_mailbox_capacity(2))


# -- r10: a plain method returning a coroutine or a generator ------------------------------------


async def refusal(ref: ActorRef, method: str, busy: bool) -> ActorError:
    """The error ``ref.<method>()`` answers with, sent while the actor is idle or busy."""
    occupied = asyncio.ensure_future(ref.slow(0.1)) if busy else None
    try:
        reply = await asyncio.wait_for(ref.call(method), 2)
        if hasattr(reply, "__aiter__"):
            reply = [x async for x in reply]
        pytest.fail(f"{method}() {'busy' if busy else 'idle'} answered {reply!r}")
    except ActorError as err:
        return err
    finally:
        if occupied is not None:
            await asyncio.wait_for(occupied, 2)


@pytest.mark.parametrize("method", ["coro", "gen"])
def test_a_plain_method_returning_a_coroutine_or_generator_is_refused_idle_and_busy_alike(
    method: str,
) -> None:
    """A plain def returning a coroutine/generator fails with the same TypeError idle or busy."""

    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(Misdeclared(), "m")
        with no_runtime_warnings():
            idle = await refusal(ref, method, busy=False)
            busy = await refusal(ref, method, busy=True)
        for err in (idle, busy):
            assert isinstance(err, TypeError), repr(err)
            assert err.type_name == "TypeError"
        assert type(idle) is type(busy)

    run_local(test)


# -- r12: a remote stream read after shutdown ----------------------------------------------------


@needs_network
def test_reading_a_remote_stream_after_the_local_system_shut_down_raises_stopped() -> None:
    """A remote stream read after this system shut down fails with ActorStoppedError at once."""

    async def test(system: ActorSystem) -> None:
        await system.spawn(Gen(), "g", public=True)
        ref = system.remote_ref(system.addr, "g")
        items = aiter(await asyncio.wait_for(ref.agen(3), 2))  # a remote stream, not read yet
        await asyncio.wait_for(system.shutdown(), 2.5)
        with pytest.raises(ActorStoppedError):
            try:
                await asyncio.wait_for(anext(items), 2)
            except TIMEOUTS:
                pytest.fail("reading the stream after shutdown hung")

    run_local(test, network_config())


# -- r13: cancelling a call never sent -----------------------------------------------------------


def test_cancelling_a_call_never_sent_does_not_warn_and_never_sends_it() -> None:
    """``call.cancel()`` on an unsent call emits no "never awaited" warning and sends nothing."""

    async def test(system: ActorSystem) -> None:
        tally = Tally()
        ref = await system.spawn(tally, "c")
        with no_runtime_warnings():
            call = ref.inc()
            assert call.cancel() is True
            del call
        await asyncio.sleep(0.1)
        assert await asyncio.wait_for(ref.get(), 2) == 0
        assert tally.n == 0

    run_local(test)
