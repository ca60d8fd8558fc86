"""The runtime's promises 1-6, each checked locally and from another OS process.

1. One message at a time per actor, streams included (a generator holds the turn until its stream
   ends, fails or is dropped; a stalled reader is cut off after the stream send timeout).
2. A call is sent when asyncio is handed it, remote as local; one never awaited warns, unsent.
3. An ask whose caller gave up is skipped, remote as local (and counted in ``/metrics``).
4. Typed errors cross the wire intact; a stopped actor's calls fail with ActorStoppedError.
5. A direct self-call fails at once instead of timing out.
6. Bounded mailboxes make every caller wait for room, local or remote.

"Remote" means the actor runs in a ``_peer.py`` process and the caller here joins it with
``SystemConfig.with_addr("127.0.0.1:0").with_seeds([addr])``.
"""

from __future__ import annotations

import asyncio
import gc
import http.client
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest

from _peer import BUILTIN_ERRORS, Counter, CustomError, Overlap, Raiser, SelfCaller, Watch
from conftest import Peer, eventually, found, needs_network, run_local, run_remote, start_peer
from pulsing.actor import (
    ActorError,
    ActorRef,
    ActorStoppedError,
    ActorSystem,
    MailboxFullError,
    Message,
    PulsingError,
    SystemConfig,
    as_actor,
    create_actor_system,
)

PEER_ARGS = ("--ask-timeout", "5")
TIMEOUTS = (TimeoutError, asyncio.TimeoutError)


# -- harness -------------------------------------------------------------------------------------


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def local_counter(system: ActorSystem, name: str) -> tuple[ActorRef, ActorRef]:
    """A counter and its watch, spawned here."""
    counter = Counter()
    ref = await system.spawn(counter, name)
    watch = await system.spawn(Watch(counter), f"{name}-watch")
    return ref, watch


async def remote_counter(system: ActorSystem) -> tuple[ActorRef, ActorRef]:
    return await found(system, "counter"), await found(system, "counter-watch")


async def occupy(ref: ActorRef, watch: ActorRef, seconds: float) -> asyncio.Task[Any]:
    """Starts ``ref.slow(seconds)`` and returns once the handler is running."""
    before = await watch.slow_started()
    task = asyncio.create_task(ref.slow(seconds))
    await eventually(watch.slow_started, equals=before + 1)
    return task


def http_call(addr: str, actor: str, method: str, *args: Any) -> tuple[int, Any]:
    """A method call over plain HTTP/1.1 (docs/protocol.md §3): ``(status, decoded body)``."""
    body = msgpack.packb({"msg_type": method, "payload": msgpack.packb([list(args), {}])})
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=20)
    try:
        conn.request(
            "POST", f"/actor/{actor}", body=body, headers={"content-type": "application/msgpack"}
        )
        resp = conn.getresponse()
        return resp.status, msgpack.unpackb(resp.read())
    finally:
        conn.close()


# -- 1. one message at a time, streams included --------------------------------------------------


async def overlap_scenario(ref: ActorRef) -> None:
    async def read_async() -> list[Any]:
        return [i async for i in ref.stream(20)]

    async def read_sync() -> list[Any]:
        return [i async for i in ref.sync_stream(50)]

    async def plain_calls() -> list[Any]:
        results = []
        for _ in range(10):
            results += await asyncio.gather(*[ref.plain() for _ in range(3)])
        return results

    a, b, plain = await asyncio.wait_for(
        asyncio.gather(read_async(), read_sync(), plain_calls()), 10
    )
    assert a == list(range(20)) and b == list(range(50)) and plain == ["plain"] * 30
    assert await ref.max_overlap() == 1, "another handler ran while a stream held the turn"


def test_a_local_stream_holds_the_actors_turn_until_it_ends() -> None:
    async def test(system: ActorSystem) -> None:
        await overlap_scenario(await system.spawn(Overlap(), "overlap"))

    run_local(test)


@needs_network
def test_a_remote_stream_holds_the_actors_turn_until_it_ends(module_peer: Peer) -> None:
    async def test(system: ActorSystem) -> None:
        await overlap_scenario(await found(system, "overlap"))

    run_remote(module_peer, test)


async def stalled_reader_scenario(ref: ActorRef, item_size: int) -> None:
    loop = asyncio.get_running_loop()
    items = aiter(ref.forever(item_size))
    assert len(await asyncio.wait_for(anext(items), 5)) == item_size
    # The reader stops here. The turn stays held until the producer has waited 1 s for room...
    plain = asyncio.create_task(ref.plain())
    await asyncio.sleep(0.3)
    assert not plain.done(), "a plain call ran while the stream held the turn"
    # ...and is then released: the stream is cut off, and the plain call runs.
    assert await asyncio.wait_for(plain, 10) == "plain"
    deadline = loop.time() + 10
    with pytest.raises(PulsingError):
        while True:
            try:
                await asyncio.wait_for(anext(items), 5)
            except StopAsyncIteration:
                pytest.fail("the stalled stream ended cleanly instead of with an error")
            assert loop.time() < deadline, "the stalled stream was never cut off"


def test_a_local_reader_that_stops_reading_is_cut_off_after_the_stream_send_timeout() -> None:
    async def test(system: ActorSystem) -> None:
        await stalled_reader_scenario(await system.spawn(Overlap(), "streamer"), 16)

    config = SystemConfig.standalone().with_stream_send_timeout(1)  # type: ignore[attr-defined]
    run_local(test, config)


@needs_network
def test_a_remote_reader_that_stops_reading_is_cut_off_after_the_stream_send_timeout() -> None:
    with start_peer("--stream-send-timeout", "1") as peer:

        async def test(system: ActorSystem) -> None:
            # Big items, so the network's buffers fill and the producer waits within a second.
            await stalled_reader_scenario(await found(system, "streamer"), 64 * 1024)

        run_remote(peer, test)


async def dropped_reader_scenario(ref: ActorRef) -> None:
    items = aiter(ref.forever(16))
    async for _ in items:
        break
    await items.aclose()  # type: ignore[attr-defined]
    started = time.monotonic()
    # The stream send timeout is the default 30 s here: only the drop can release the turn in time.
    assert await asyncio.wait_for(ref.plain(), 10) == "plain"
    assert time.monotonic() - started < 3.0
    assert await ref.max_overlap() == 1


def test_dropping_a_local_stream_early_releases_the_turn_promptly() -> None:
    async def test(system: ActorSystem) -> None:
        await dropped_reader_scenario(await system.spawn(Overlap(), "streamer"))

    run_local(test)


@needs_network
def test_dropping_a_remote_stream_early_releases_the_turn_promptly(module_peer: Peer) -> None:
    async def test(system: ActorSystem) -> None:
        await dropped_reader_scenario(await found(system, "streamer"))

    run_remote(module_peer, test)


# -- 2. a call is sent when asyncio is handed it -------------------------------------------------


class HandOver:
    """A hand-over scenario's view of the counter: ``handled(n, handles)`` waits (bounded) until
    ``n`` more calls were handled, without awaiting ``handles``, then collects them so that
    nothing is left pending."""

    def __init__(self, ref: ActorRef, before: int) -> None:
        self.ref = ref
        self.before = before

    async def handled(self, n: int, handles: list[Any] | None = None) -> int:
        await eventually(self.ref.count, equals=self.before + n)
        for handle in handles or []:
            await asyncio.wait_for(handle, 5)
        return n


async def hand_over_with_await(h: HandOver) -> int:
    await h.ref.bump()
    return 1


async def hand_over_with_create_task(h: HandOver) -> int:
    return await h.handled(2, [asyncio.create_task(h.ref.bump()) for _ in range(2)])


async def hand_over_with_ensure_future(h: HandOver) -> int:
    return await h.handled(2, [asyncio.ensure_future(h.ref.bump()) for _ in range(2)])


async def hand_over_with_gather(h: HandOver) -> int:
    return await h.handled(2, [asyncio.gather(h.ref.bump(), h.ref.bump())])


async def hand_over_with_shield(h: HandOver) -> int:
    return await h.handled(1, [asyncio.shield(h.ref.bump())])


async def hand_over_with_wait_for(h: HandOver) -> int:
    await asyncio.wait_for(h.ref.bump(), 5)
    return 1


async def hand_over_with_as_completed(h: HandOver) -> int:
    for fut in asyncio.as_completed([h.ref.bump(), h.ref.bump()], timeout=5):
        await fut
    return 2


async def hand_over_with_task_group(h: HandOver) -> int:
    async with asyncio.TaskGroup() as tg:  # type: ignore[attr-defined]
        tg.create_task(h.ref.bump())
        tg.create_task(h.ref.bump())
        # Sent while the group is still open, before anything awaits the tasks.
        await h.handled(2)
    return 2


async def hand_over_with_wait(h: HandOver) -> int:
    tasks = [asyncio.create_task(h.ref.bump()) for _ in range(2)]
    done, pending = await asyncio.wait(tasks, timeout=5)
    assert not pending and len(done) == 2
    return 2


HAND_OVERS = {
    "await": hand_over_with_await,
    "create_task": hand_over_with_create_task,
    "ensure_future": hand_over_with_ensure_future,
    "gather": hand_over_with_gather,
    "shield": hand_over_with_shield,
    "wait_for": hand_over_with_wait_for,
    "as_completed": hand_over_with_as_completed,
    "TaskGroup": hand_over_with_task_group,
    "wait": hand_over_with_wait,
}


def _hand_over_ids() -> list[Any]:
    params = []
    for name in HAND_OVERS:
        marks = []
        if name == "TaskGroup" and sys.version_info < (3, 11):
            marks.append(pytest.mark.skip(reason="asyncio.TaskGroup needs Python 3.11"))
        params.append(pytest.param(name, marks=marks, id=name))
    return params


async def hand_over_scenario(ref: ActorRef, how: str) -> None:
    before = await ref.count()
    n = await asyncio.wait_for(HAND_OVERS[how](HandOver(ref, before)), 10)
    await eventually(ref.count, equals=before + n)


@pytest.mark.parametrize("how", _hand_over_ids())
def test_a_local_call_handed_to_asyncio_is_sent(how: str) -> None:
    async def test(system: ActorSystem) -> None:
        await hand_over_scenario(await system.spawn(Counter(), "counter"), how)

    run_local(test)


@needs_network
@pytest.mark.parametrize("how", _hand_over_ids())
def test_a_remote_call_handed_to_asyncio_is_sent(module_peer: Peer, how: str) -> None:
    async def test(system: ActorSystem) -> None:
        await hand_over_scenario(await found(system, "counter"), how)

    run_remote(module_peer, test)


async def never_awaited_scenario(ref: ActorRef, name: str) -> None:
    before = await ref.count()
    call = ref.bump()
    with pytest.warns(RuntimeWarning, match=re.escape(f"call {name}.bump() was never awaited")):
        del call
        gc.collect()
    await asyncio.sleep(0.2)  # room for a wrongly sent call to land before we look
    assert await ref.count() == before, "a call never awaited was sent"


def test_a_local_call_never_awaited_warns_and_is_not_sent() -> None:
    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(Counter(), "lonely-counter")
        await never_awaited_scenario(ref, "lonely-counter")

    run_local(test)


@needs_network
def test_a_remote_call_never_awaited_warns_and_is_not_sent(module_peer: Peer) -> None:
    async def test(system: ActorSystem) -> None:
        await never_awaited_scenario(await found(system, "counter"), "counter")

    run_remote(module_peer, test)


# -- 3. an ask whose caller gave up is skipped ---------------------------------------------------


async def abandoned_scenario(ref: ActorRef, watch: ActorRef) -> None:
    before = await ref.count()
    slow = await occupy(ref, watch, 1.5)
    results = await asyncio.gather(
        *[asyncio.wait_for(ref.bump(), 0.2) for _ in range(5)], return_exceptions=True
    )
    assert all(isinstance(r, TIMEOUTS) for r in results), results
    assert await asyncio.wait_for(slow, 10) == "done"
    assert await ref.count() == before, "an ask whose caller had given up was handled"


def test_a_local_ask_whose_caller_gave_up_is_skipped() -> None:
    async def test(system: ActorSystem) -> None:
        await abandoned_scenario(*await local_counter(system, "counter"))

    run_local(test)


@needs_network
def test_a_remote_ask_whose_caller_gave_up_is_skipped_and_counted(module_peer: Peer) -> None:
    async def test(system: ActorSystem) -> None:
        expired_before = await in_thread(module_peer.metric, "pulsing_expired_asks_total")
        await abandoned_scenario(*await remote_counter(system))

        async def expired() -> bool:
            now = await in_thread(module_peer.metric, "pulsing_expired_asks_total")
            return now - expired_before >= 5

        await eventually(expired)

    run_remote(module_peer, test)


@needs_network
def test_an_ask_whose_caller_left_is_skipped_and_the_node_keeps_serving(module_peer: Peer) -> None:
    """A caller that shuts down while its asks wait in a busy remote actor: the serving node drops
    them (the one waiting is not handled, the reply of the one running goes nowhere) and goes on
    answering other callers."""

    async def test(system: ActorSystem) -> None:
        ref, _ = await remote_counter(system)
        before = await ref.count()
        config = SystemConfig.with_addr("127.0.0.1:0").with_seeds([module_peer.addr])
        leaving = await create_actor_system(config)
        far, far_watch = await remote_counter(leaving)
        slow = await occupy(far, far_watch, 1.0)
        bump = asyncio.create_task(far.bump())
        await asyncio.sleep(0.1)
        await leaving.shutdown()
        results = await asyncio.gather(slow, bump, return_exceptions=True)
        assert isinstance(results[1], BaseException), results
        assert await asyncio.wait_for(ref.count(), 10) == before, (
            "an ask of a caller gone was handled"
        )

    run_remote(module_peer, test)


# -- 4. typed errors cross the wire intact -------------------------------------------------------


def check_error(err: BaseException, type_name: str, raised_in: str) -> None:
    assert isinstance(err, ActorError)
    assert err.type_name == type_name
    tb = err.remote_traceback  # type: ignore[attr-defined]
    assert isinstance(tb, str) and "Traceback" in tb and raised_in in tb, tb
    if sys.version_info >= (3, 11):
        notes = "\n".join(getattr(err, "__notes__", []))
        assert tb.strip() in notes, f"the traceback is not among the notes: {notes!r}"


async def builtin_error_scenario(ref: ActorRef, kind: str) -> None:
    cls = BUILTIN_ERRORS[kind]
    for method in (ref.raise_builtin, ref.raise_builtin_async):
        with pytest.raises(cls) as info:
            await method(kind, "bad")
        check_error(info.value, kind, "explode")
        assert "bad" in str(info.value)
    assert await ref.ping() == "pong", "the actor goes on after an error"


async def custom_error_scenario(ref: ActorRef) -> None:
    with pytest.raises(ActorError) as info:
        await ref.raise_custom("mine")
    assert not isinstance(info.value, CustomError)
    check_error(info.value, "CustomError", "explode_custom")
    assert "mine" in str(info.value)


@pytest.mark.parametrize("kind", sorted(BUILTIN_ERRORS))
def test_a_builtin_exception_from_a_local_handler_is_both_actor_error_and_its_class(
    kind: str,
) -> None:
    async def test(system: ActorSystem) -> None:
        await builtin_error_scenario(await system.spawn(Raiser(), "errors"), kind)

    run_local(test)


@needs_network
@pytest.mark.parametrize("kind", sorted(BUILTIN_ERRORS))
def test_a_builtin_exception_from_a_remote_handler_is_both_actor_error_and_its_class(
    module_peer: Peer, kind: str
) -> None:
    async def test(system: ActorSystem) -> None:
        await builtin_error_scenario(await found(system, "errors"), kind)

    run_remote(module_peer, test)


def test_a_user_exception_from_a_local_handler_is_a_plain_actor_error_naming_it() -> None:
    async def test(system: ActorSystem) -> None:
        await custom_error_scenario(await system.spawn(Raiser(), "errors"))

    run_local(test)


@needs_network
def test_a_user_exception_from_a_remote_handler_is_a_plain_actor_error_naming_it(
    module_peer: Peer,
) -> None:
    async def test(system: ActorSystem) -> None:
        await custom_error_scenario(await found(system, "errors"))

    run_remote(module_peer, test)


@needs_network
def test_a_handler_error_over_plain_http_is_an_actor_error_with_the_traceback(
    module_peer: Peer,
) -> None:
    status, body = http_call(module_peer.addr, "errors", "raise_builtin", "ValueError", "bad")
    assert status == 500, body
    error = body["error"]
    assert error["kind"] == "actor_error"
    assert "ValueError" in error["message"] and "bad" in error["message"]
    assert isinstance(error.get("detail"), str), error
    assert "Traceback" in error["detail"] and "explode" in error["detail"]


@pytest.mark.parametrize("how", ["stop", "shutdown"])
def test_calls_queued_at_a_local_actor_that_stops_fail_with_actor_stopped_error(how: str) -> None:
    async def test(system: ActorSystem) -> None:
        ref, watch = await local_counter(system, "counter")
        slow = await occupy(ref, watch, 10.0)
        queued = [asyncio.create_task(ref.bump()) for _ in range(3)]
        await asyncio.sleep(0.1)  # the calls reach the mailbox (local: a few loop turns)
        if how == "stop":
            await system.stop("counter")
        else:
            await system.shutdown()
        results = await asyncio.wait_for(asyncio.gather(slow, *queued, return_exceptions=True), 10)
        for r in results:
            assert isinstance(r, ActorStoppedError) and not isinstance(r, ActorError), results

    run_local(test)


@needs_network
def test_calls_queued_at_a_remote_node_that_shuts_down_fail_with_actor_stopped_error() -> None:
    with start_peer("--ask-timeout", "20") as peer:

        async def test(system: ActorSystem) -> None:
            ref, watch = await remote_counter(system)
            control = await found(system, "control")
            slow = await occupy(ref, watch, 10.0)
            queued = [asyncio.create_task(ref.bump()) for _ in range(3)]
            over_http = asyncio.ensure_future(in_thread(http_call, peer.addr, "counter", "bump"))
            # The node shuts down a second from now: time for the calls above to reach its mailbox.
            assert await control.shutdown_soon(1.0) == "ok"
            results = await asyncio.wait_for(
                asyncio.gather(slow, *queued, return_exceptions=True), 15
            )
            for r in results:
                assert isinstance(r, ActorStoppedError) and not isinstance(r, ActorError), results
            status, body = await asyncio.wait_for(over_http, 15)
            assert (status, body["error"]["kind"]) == (503, "stopped"), body
            await in_thread(peer.proc.wait, 15)

        run_remote(peer, test)


# -- 5. a direct self-call fails at once ---------------------------------------------------------


def check_self_call(result: dict[str, Any]) -> None:
    assert result["actor_error"], result
    assert "would wait for itself" in result["message"], result
    assert result["seconds"] < 1.0, result


def test_a_local_actor_calling_itself_fails_at_once() -> None:
    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(SelfCaller(system, "self-caller"), "self-caller")
        check_self_call(await asyncio.wait_for(ref.via_current_actor(), 10))
        check_self_call(await asyncio.wait_for(ref.via_find(), 10))
        check_self_call(await asyncio.wait_for(ref.via_ref(ref), 10))
        assert await ref.ping() == "pong"

    run_local(test, SystemConfig.standalone().with_ask_timeout(3))


@needs_network
def test_a_remote_actor_calling_itself_fails_at_once(module_peer: Peer) -> None:
    async def test(system: ActorSystem) -> None:
        ref = await found(system, "self-caller")
        check_self_call(await asyncio.wait_for(ref.via_current_actor(), 10))
        check_self_call(await asyncio.wait_for(ref.via_find(), 10))
        # Its own ref, made here and passed over the wire.
        check_self_call(await asyncio.wait_for(ref.via_ref(ref), 10))
        assert await ref.ping() == "pong"

    run_remote(module_peer, test)


# -- 6. bounded mailboxes behave the same from every caller --------------------------------------


def test_a_local_tell_to_a_full_mailbox_waits_for_room() -> None:
    bump = Message.single("bump", msgpack.packb([[], {}]))

    async def test(system: ActorSystem) -> None:
        ref, watch = await local_counter(system, "counter")
        slow = await occupy(ref, watch, 1.5)
        await asyncio.wait_for(ref.tell(bump), 1)
        await asyncio.wait_for(ref.tell(bump), 1)
        third = asyncio.ensure_future(ref.tell(bump))
        await asyncio.sleep(0.3)
        assert not third.done(), "a tell to a full mailbox did not wait"
        await asyncio.wait_for(third, 5)
        assert await asyncio.wait_for(slow, 5) == "done"
        await eventually(ref.count, equals=3)

    run_local(test, SystemConfig.standalone().with_mailbox_capacity(2))


@pytest.fixture
def small_mailbox_peer() -> Iterator[Peer]:
    with start_peer("--mailbox-capacity", "2") as peer:
        yield peer


@needs_network
def test_remote_calls_to_a_full_mailbox_wait_for_room_instead_of_being_refused(
    small_mailbox_peer: Peer,
) -> None:
    async def test(system: ActorSystem) -> None:
        ref, watch = await remote_counter(system)
        before = await ref.count()
        slow = await occupy(ref, watch, 1.0)
        extra = [asyncio.create_task(ref.bump()) for _ in range(6)]
        results = await asyncio.wait_for(asyncio.gather(*extra, return_exceptions=True), 10)
        refused = [r for r in results if isinstance(r, MailboxFullError)]
        assert not refused, f"{len(refused)} of 6 calls were refused: {refused[0]!r}"
        assert all(isinstance(r, int) for r in results), results
        assert await asyncio.wait_for(slow, 5) == "done"
        assert await ref.count() == before + 6

    run_remote(small_mailbox_peer, test)


@as_actor
class Scheduler:
    """Hands calls to itself to asyncio from inside its handler, without awaiting them."""

    def __init__(self) -> None:
        self.later_calls = 0

    def later(self) -> None:
        self.later_calls += 1

    async def schedule_and_wait(self) -> str:
        from pulsing.actor import current_actor

        me = current_actor()
        self.tasks = [asyncio.create_task(me.later()), asyncio.ensure_future(me.later())]
        # The tasks start while this handler still runs: they wait their turn, they are no
        # self-call (nobody here awaits them).
        await asyncio.sleep(0.05)
        return "scheduled"

    def count(self) -> int:
        return self.later_calls


def test_calls_a_handler_hands_to_asyncio_for_its_own_actor_run_after_it() -> None:
    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(Scheduler(), "scheduler")
        assert await ref.schedule_and_wait() == "scheduled"
        assert await eventually(lambda: ref.count(), equals=2, within=2.0) == 2

    run_local(test)
