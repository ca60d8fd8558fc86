"""The call convention of ``@as_actor`` actors, in msgpack, shared with every other language.

A method call is the message ``msg_type = <method name>``, ``payload = msgpack([args, kwargs])``;
the reply (and each streamed item) is ``msgpack(value)``. Values are None, bool, int, float, str,
bytes, list, tuple and dict (tuples arrive as lists), and actor refs; anything else is refused with
a :class:`TypeError` at the sender, naming the argument, before anything is sent.

An :class:`~pulsing.actor.ActorRef` travels as the msgpack extension type :data:`REF_EXT_TYPE`
holding ``msgpack([addr, node, id])`` (docs/protocol.md): the system that encodes or decodes passes
its own ``pack`` (a ``msgpack.Packer``'s, whose ``default`` encodes refs) and ``ext_hook`` (see
``pulsing._system``), since turning that back into a working ref needs a system. A packer kept per
system packs about three times faster than ``msgpack.packb``, which makes one per call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack

from pulsing.exceptions import BadMessageError

__all__ = ["REF_EXT_TYPE", "decode_call", "decode_value", "encode_call", "encode_value"]

REF_EXT_TYPE = 1
"""The msgpack extension type code of an actor ref (docs/protocol.md)."""

Pack = Callable[[Any], bytes]
"""``msgpack.Packer(...).pack``: how a system encodes values (refs included)."""
ExtHook = Callable[[int, bytes], Any] | None

_ALLOWED = "None, bool, int, float, str, bytes, list, tuple, dict and ActorRef"
_packb: Callable[..., bytes] = msgpack.packb
_unpackb: Callable[..., Any] = msgpack.unpackb


def _refusal(what: str, value: object, err: Exception) -> TypeError:
    if isinstance(err, TypeError) and "private" in str(err):
        return TypeError(f"{what} cannot be sent: {err}")
    return TypeError(
        f"{what} cannot be sent to an actor: {type(value).__name__} is not one of {_ALLOWED} "
        f"({err})"
    )


def encode_call(
    method: str, args: tuple[Any, ...], kwargs: dict[str, Any], pack: Pack = _packb
) -> bytes:
    """``msgpack([args, kwargs])`` for a call of ``method``, written by ``pack``.

    Raises:
        TypeError: an argument (named in the message) holds a value outside the convention.
    """
    try:
        return pack([args, kwargs])
    except (TypeError, ValueError, OverflowError) as err:
        for i, arg in enumerate(args):
            try:
                pack(arg)
            except (TypeError, ValueError, OverflowError) as e:
                raise _refusal(f"{method}(): argument {i}", arg, e) from None
        for key, arg in kwargs.items():
            try:
                pack(arg)
            except (TypeError, ValueError, OverflowError) as e:
                raise _refusal(f"{method}(): argument {key!r}", arg, e) from None
        raise TypeError(f"{method}(): arguments cannot be sent to an actor: {err}") from None


def encode_value(value: object, what: str, pack: Pack = _packb) -> bytes:
    """``msgpack(value)``, written by ``pack``; ``what`` names the value in the error.

    Raises:
        TypeError: ``value`` holds something outside the convention.
    """
    try:
        return pack(value)
    except (TypeError, ValueError, OverflowError) as err:
        raise _refusal(what, value, err) from None


def decode_value(payload: bytes, ext_hook: ExtHook = None) -> Any:
    """The value in a reply or streamed item; ``ext_hook`` decodes refs.

    Raises:
        BadMessageError: ``payload`` is not msgpack.
    """
    try:
        if ext_hook is None:
            return _unpackb(payload, strict_map_key=False)
        return _unpackb(payload, strict_map_key=False, ext_hook=ext_hook)
    except Exception as err:  # msgpack raises several unrelated classes
        raise BadMessageError(f"reply is not msgpack: {err}") from None


def decode_call(payload: bytes, ext_hook: ExtHook = None) -> tuple[list[Any], dict[str, Any]]:
    """``(args, kwargs)`` from a call's payload; an empty payload is a call without arguments;
    ``ext_hook`` decodes refs.

    Raises:
        BadMessageError: ``payload`` is not ``msgpack([list, dict])``.
    """
    if not payload:
        return [], {}
    try:
        if ext_hook is None:
            call = _unpackb(payload, strict_map_key=False)
        else:
            call = _unpackb(payload, strict_map_key=False, ext_hook=ext_hook)
        args, kwargs = call
        if isinstance(args, list) and isinstance(kwargs, dict):
            return args, kwargs
    except Exception:  # msgpack raises several unrelated classes
        pass
    raise BadMessageError("a method call's payload must be msgpack([args: list, kwargs: dict])")
