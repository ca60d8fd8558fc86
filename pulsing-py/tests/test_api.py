"""The API's promises 7-11, each checked locally and, where a second node matters, from another
OS process (a ``_peer.py`` node, joined with
``SystemConfig.with_addr("127.0.0.1:0").with_seeds([addr])``).

7. Refs are values: arguments, return values, inside lists/tuples/dicts, across nodes; anonymous
   actors are reachable only through their ref; a named private actor's ref never leaves its node.
8. ``pulsing.actor.current_actor()`` / ``current_system()`` inside a handler, RuntimeError outside.
9. ``ref.with_timeout(seconds)``: a view of the ref whose calls and asks use that timeout.
10. Introspection: ``system.members()``, ``system.node_id``, ``find_all``, ``local_actors()``.
11. Fixes: an informative ``repr`` of a ref's method; a CancelledError raised in a handler is not
    turned into an ActorError reply.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import msgpack
import pytest

import pulsing.actor
from _peer import Counter, Holder, Identity, Raiser
from conftest import Peer, eventually, found, needs_network, run_local, run_remote
from pulsing.actor import (
    ActorError,
    ActorRef,
    ActorSystem,
    AskTimeoutError,
    Message,
)

PEER_ARGS = ("--ask-timeout", "5")
ANON_NAME = re.compile(r"anon\.[0-9a-f]{32}")
NODE_ID = re.compile(r"[0-9a-f]{16}")
MEMBER_STATES = {"alive", "suspect", "down", "left"}


# -- 7. refs are values --------------------------------------------------------------------------


def test_a_ref_passed_as_an_argument_to_a_local_actor_can_be_called() -> None:
    async def test(system: ActorSystem) -> None:
        counter = await system.spawn(Counter(), "counter")
        holder = await system.spawn(Holder(system), "holder")
        assert await holder.call_ref(counter) == 1
        assert await counter.count() == 1

    run_local(test)


def test_a_ref_returned_by_a_local_actor_can_be_called() -> None:
    async def test(system: ActorSystem) -> None:
        counter = await system.spawn(Counter(), "counter")
        holder = await system.spawn(Holder(system), "holder")
        back = await holder.echo(counter)
        assert isinstance(back, ActorRef)
        assert await back.bump() == 1
        made_there = await holder.ref_to("counter")
        assert isinstance(made_there, ActorRef) and await made_there.bump() == 2

    run_local(test)


def test_refs_inside_lists_tuples_and_dicts_work_locally() -> None:
    async def test(system: ActorSystem) -> None:
        a = await system.spawn(Counter(), "a")
        b = await system.spawn(Counter(), "b")
        holder = await system.spawn(Holder(system), "holder")
        nested = {"list": [a, b], "tuple": (a,), "dict": {"k": b}}
        assert await holder.call_all(nested) == [1, 1, 2, 2]
        back = await holder.refs_to(["a", "b"])
        assert await back["list"][1].bump() == 3
        assert await back["tuple"][0].bump() == 3
        assert await back["nested"]["first"].bump() == 4

    run_local(test)


@needs_network
def test_a_ref_to_an_actor_here_passed_to_another_node_can_call_it_back(module_peer: Peer) -> None:
    async def test(system: ActorSystem) -> None:
        counter = await system.spawn(Counter(), "callback-counter", public=True)
        holder = await found(system, "holder")
        assert await holder.call_ref(counter) == 1
        assert await holder.call_all([counter, (counter,), {"k": counter}]) == [2, 3, 4]
        assert await counter.count() == 4

    run_remote(module_peer, test)


@needs_network
def test_a_ref_returned_by_another_node_can_be_called_here(module_peer: Peer) -> None:
    async def test(system: ActorSystem) -> None:
        holder = await found(system, "holder")
        remote_counter = await holder.ref_to("counter")
        assert isinstance(remote_counter, ActorRef) and not remote_counter.is_local
        before = await remote_counter.count()
        assert await remote_counter.bump() == before + 1
        back = await holder.refs_to(["counter", "holder"])
        assert await back["list"][0].bump() == before + 2
        assert await back["tuple"][0].bump() == before + 3
        assert await back["nested"]["first"].count() == before + 3
        # A ref that went there and came back still works.
        echoed = await holder.echo(remote_counter)
        assert await echoed.bump() == before + 4

    run_remote(module_peer, test)


def test_an_anonymous_actor_has_an_anon_name_and_cannot_be_found() -> None:
    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(Counter())
        assert ANON_NAME.fullmatch(ref.name), ref.name
        assert await system.find(ref.name) is None
        assert await ref.bump() == 1
        other = await system.spawn(Counter())
        assert other.name != ref.name

    run_local(test)


def test_spawning_an_anonymous_actor_public_is_a_value_error() -> None:
    async def test(system: ActorSystem) -> None:
        with pytest.raises(ValueError):
            await system.spawn(Counter(), public=True)

    run_local(test)


@needs_network
def test_an_anonymous_actor_is_reachable_from_another_node_only_through_its_ref(
    module_peer: Peer,
) -> None:
    async def test(system: ActorSystem) -> None:
        reply_to = await system.spawn(Counter())
        holder = await found(system, "holder")
        assert not await holder.can_find(reply_to.name)
        assert await holder.call_ref(reply_to) == 1
        assert await reply_to.count() == 1

    run_remote(module_peer, test)


@needs_network
def test_passing_a_named_private_actors_ref_to_another_node_is_a_type_error_before_sending(
    module_peer: Peer,
) -> None:
    async def test(system: ActorSystem) -> None:
        secret = await system.spawn(Counter(), "my-secret")
        holder = await found(system, "holder")
        calls_before = await holder.call_count()
        for arg in (secret, [secret], {"k": (secret,)}):
            with pytest.raises(TypeError) as info:
                await holder.call_all(arg)
            text = str(info.value)
            assert "my-secret" in text and "public" in text and "anonymous" in text, text
        assert await holder.call_count() == calls_before, "a refused call reached the other node"
        assert await secret.count() == 0
        # The same holds the other way: that node may not hand out a ref to its private actor.
        with pytest.raises(TypeError, match="private-counter"):
            await holder.ref_to("private-counter")

    run_remote(module_peer, test)


def test_a_named_private_actors_ref_can_be_passed_to_a_local_actor() -> None:
    async def test(system: ActorSystem) -> None:
        secret = await system.spawn(Counter(), "my-secret", public=False)
        holder = await system.spawn(Holder(system), "holder")
        assert await holder.call_ref(secret) == 1
        assert await holder.call_all([secret, {"k": secret}]) == [2, 3]

    run_local(test)


# -- 8. current_actor() and current_system() -----------------------------------------------------


def test_current_actor_and_current_system_inside_a_handler_are_its_own_ref_and_system() -> None:
    async def test(system: ActorSystem) -> None:
        identity = Identity()
        ref = await system.spawn(identity, "identity")
        for whoami in (ref.whoami, ref.whoami_sync):
            identity.me = identity.system = None
            assert await whoami() == {"name": "identity", "addr": None}
            assert identity.me == ref
            assert identity.system is system
        assert await identity.me.ping() == "pong"

    run_local(test)


def test_current_actor_and_current_system_raise_runtime_error_outside_a_handler() -> None:
    current_actor = pulsing.actor.current_actor  # type: ignore[attr-defined]
    current_system = pulsing.actor.current_system  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError):
        current_actor()
    with pytest.raises(RuntimeError):
        current_system()

    async def test(system: ActorSystem) -> None:
        await system.spawn(Identity(), "identity")
        with pytest.raises(RuntimeError):
            current_actor()
        with pytest.raises(RuntimeError):
            current_system()

    run_local(test)


@needs_network
def test_current_actor_inside_a_remote_handler_is_that_actors_ref(module_peer: Peer) -> None:
    async def test(system: ActorSystem) -> None:
        identity = await found(system, "identity")
        assert await identity.whoami() == {"name": "identity", "addr": module_peer.addr}
        assert await identity.whoami_sync() == {"name": "identity", "addr": module_peer.addr}
        me = await identity.my_ref()
        assert isinstance(me, ActorRef) and me.name == "identity"
        assert await me.ping() == "pong"

    run_remote(module_peer, test)


# -- 9. one call's timeout -----------------------------------------------------------------------


async def with_timeout_scenario(ref: ActorRef) -> None:
    assert hasattr(ActorRef, "with_timeout"), "ActorRef has no with_timeout()"
    quick = ref.with_timeout(0.2)
    started = time.monotonic()
    with pytest.raises(AskTimeoutError):
        await asyncio.wait_for(quick.slow(2.0), 10)
    assert time.monotonic() - started < 1.0
    started = time.monotonic()
    with pytest.raises(AskTimeoutError):
        slow = Message.single("slow", msgpack.packb([[2.0], {}]))
        await asyncio.wait_for(quick.ask(slow), 10)
    assert time.monotonic() - started < 1.0


def test_with_timeout_bounds_one_local_call() -> None:
    async def test(system: ActorSystem) -> None:
        await with_timeout_scenario(await system.spawn(Counter(), "sleeper"))

    run_local(test)


@needs_network
def test_with_timeout_bounds_one_remote_call(module_peer: Peer) -> None:
    async def test(system: ActorSystem) -> None:
        await with_timeout_scenario(await found(system, "sleeper"))

    run_remote(module_peer, test)


# -- 10. introspection ---------------------------------------------------------------------------


def check_member(member: Any) -> None:
    assert isinstance(member.addr, str) and re.fullmatch(r"[0-9.]+:\d+", member.addr), member.addr
    assert isinstance(member.node_id, str) and NODE_ID.fullmatch(member.node_id), member.node_id
    assert member.state in MEMBER_STATES, member.state


@needs_network
def test_members_lists_both_nodes_alive_after_joining(module_peer: Peer) -> None:
    async def test(system: ActorSystem) -> None:
        def both_alive() -> bool:
            alive = {m.addr for m in system.members() if m.state == "alive"}
            return {system.addr, module_peer.addr} <= alive

        await eventually(both_alive)
        for member in system.members():
            check_member(member)
        assert isinstance(system.node_id, str) and NODE_ID.fullmatch(system.node_id)

    run_remote(module_peer, test)


@needs_network
def test_node_id_is_what_the_other_node_sees_for_this_member(module_peer: Peer) -> None:
    async def test(system: ActorSystem) -> None:
        control = await found(system, "control")

        async def me_as_seen_there() -> list[dict[str, str]]:
            return [m for m in await control.members() if m["addr"] == system.addr]

        [me] = await eventually(me_as_seen_there)
        assert me["node_id"] == system.node_id
        [peer_here] = [m for m in system.members() if m.addr == module_peer.addr]
        assert peer_here.node_id == await control.node_id()
        assert peer_here.node_id != system.node_id

    run_remote(module_peer, test)


@needs_network
def test_find_all_lists_the_local_actor_first_then_the_remote_one(module_peer: Peer) -> None:
    async def test(system: ActorSystem) -> None:
        await system.spawn(Counter(), "shared-name", public=True)
        refs = await system.find_all("shared-name")
        assert all(isinstance(r, ActorRef) for r in refs)
        assert [r.is_local for r in refs] == [True, False], refs
        assert await refs[0].bump() == 1
        assert await refs[1].count() >= 0
        assert await system.find_all("no-such-actor") == []

    run_remote(module_peer, test)


def test_local_actors_lists_named_actors_with_their_visibility_and_not_anonymous_ones() -> None:
    async def test(system: ActorSystem) -> None:
        await system.spawn(Counter(), "shown", public=True)
        await system.spawn(Counter(), "hidden")
        anon = await system.spawn(Counter())
        listed = system.local_actors()
        assert isinstance(listed, list)
        assert {("shown", True), ("hidden", False)} <= set(listed), listed
        assert all(isinstance(e, tuple) and len(e) == 2 for e in listed), listed
        assert not [name for name, _ in listed if name.startswith("anon.")], listed
        assert anon.name not in {name for name, _ in listed}

    run_local(test)


# -- 11. fixes -----------------------------------------------------------------------------------


def test_the_repr_of_a_local_refs_method_names_it() -> None:
    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(Counter(), "counter")
        assert "bump" in repr(ref.bump)

    run_local(test)


@needs_network
def test_the_repr_of_a_remote_refs_method_names_it(module_peer: Peer) -> None:
    async def test(system: ActorSystem) -> None:
        assert "bump" in repr((await found(system, "counter")).bump)

    run_remote(module_peer, test)


@pytest.mark.parametrize("method", ["raise_cancelled", "raise_cancelled_async"])
def test_a_cancelled_error_raised_in_a_handler_is_not_turned_into_an_actor_error_reply(
    method: str,
) -> None:
    async def test(system: ActorSystem) -> None:
        ref = await system.spawn(Raiser(), "raiser")
        call = asyncio.ensure_future(ref.call(method))
        done, _ = await asyncio.wait([call], timeout=5)
        assert done, "the call never ended"
        if not call.cancelled():
            err = call.exception()
            assert err is not None and not isinstance(err, ActorError), repr(err)

    run_local(test)
