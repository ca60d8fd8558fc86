"""The call convention of ``@as_actor`` actors, in msgpack, shared with every other language.

A method call is the message ``msg_type = <method name>``, ``payload = msgpack([args, kwargs])``;
the reply (and each streamed item) is ``msgpack(value)``. Values are None, bool, int, float, str,
bytes, list, tuple and dict (tuples arrive as lists); anything else is refused with a
:class:`TypeError` at the sender, naming the argument, before anything is sent.
"""

from __future__ import annotations

from typing import Any

import msgpack

from pulsing.exceptions import BadMessageError

__all__ = ["decode_call", "decode_value", "encode_call", "encode_value"]

_ALLOWED = "None, bool, int, float, str, bytes, list, tuple and dict"
_packb = msgpack.packb
_unpackb = msgpack.unpackb


def _refusal(what: str, value: object, err: Exception) -> TypeError:
    return TypeError(
        f"{what} cannot be sent to an actor: {type(value).__name__} is not one of {_ALLOWED} "
        f"({err})"
    )


def encode_call(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """``msgpack([args, kwargs])`` for a call of ``method``.

    Raises:
        TypeError: an argument (named in the message) holds a value outside the convention.
    """
    try:
        return _packb([args, kwargs])
    except (TypeError, ValueError, OverflowError) as err:
        for i, arg in enumerate(args):
            try:
                _packb(arg)
            except (TypeError, ValueError, OverflowError) as e:
                raise _refusal(f"{method}(): argument {i}", arg, e) from None
        for key, arg in kwargs.items():
            try:
                _packb(arg)
            except (TypeError, ValueError, OverflowError) as e:
                raise _refusal(f"{method}(): argument {key!r}", arg, e) from None
        raise TypeError(f"{method}(): arguments cannot be sent to an actor: {err}") from None


def encode_value(value: object, what: str) -> bytes:
    """``msgpack(value)``; ``what`` names the value in the error.

    Raises:
        TypeError: ``value`` holds something outside the convention.
    """
    try:
        return _packb(value)
    except (TypeError, ValueError, OverflowError) as err:
        raise _refusal(what, value, err) from None


def decode_value(payload: bytes) -> Any:
    """The value in a reply or streamed item.

    Raises:
        BadMessageError: ``payload`` is not msgpack.
    """
    try:
        return _unpackb(payload, strict_map_key=False)
    except Exception as err:  # msgpack raises several unrelated classes
        raise BadMessageError(f"reply is not msgpack: {err}") from None


def decode_call(payload: bytes) -> tuple[list[Any], dict[str, Any]]:
    """``(args, kwargs)`` from a call's payload; an empty payload is a call without arguments.

    Raises:
        BadMessageError: ``payload`` is not ``msgpack([list, dict])``.
    """
    if not payload:
        return [], {}
    try:
        call = _unpackb(payload, strict_map_key=False)
        args, kwargs = call
        if isinstance(args, list) and isinstance(kwargs, dict):
            return args, kwargs
    except Exception:  # msgpack raises several unrelated classes
        pass
    raise BadMessageError("a method call's payload must be msgpack([args: list, kwargs: dict])")
