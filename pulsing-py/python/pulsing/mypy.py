"""A mypy plugin that teaches mypy what ``@as_actor`` adds to a class.

``@as_actor`` adds the classmethod ``local(system, *args, **kwargs)``, which mypy cannot see from
the decorator's signature. Enable the plugin in the project's mypy configuration::

    [tool.mypy]
    plugins = ["pulsing.mypy"]

and ``counter = await Counter.local(system, init_value=0)`` type-checks, ``counter`` being a
``Counter``. Only this module imports mypy; the rest of the package does not need it.
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.nodes import ARG_POS, ARG_STAR, ARG_STAR2, Argument, Var
from mypy.plugin import ClassDefContext, Plugin
from mypy.plugins.common import add_method_to_class
from mypy.types import AnyType, Type, TypeOfAny
from mypy.typevars import fill_typevars

__all__ = ["plugin"]

_AS_ACTOR = "pulsing._impl.as_actor"
_SYSTEM = "pulsing._system.ActorSystem"


def _add_local(ctx: ClassDefContext) -> None:
    any_t = AnyType(TypeOfAny.explicit)
    system_t: Type = ctx.api.named_type_or_none(_SYSTEM) or any_t
    instance = fill_typevars(ctx.cls.info)
    returns = ctx.api.named_type("typing.Coroutine", [any_t, any_t, instance])
    args = [
        Argument(Var("system", system_t), system_t, None, ARG_POS),
        Argument(Var("args", any_t), any_t, None, ARG_STAR),
        Argument(Var("kwargs", any_t), any_t, None, ARG_STAR2),
    ]
    add_method_to_class(ctx.api, ctx.cls, "local", args, returns, is_classmethod=True)


class _PulsingPlugin(Plugin):
    def get_class_decorator_hook(self, fullname: str) -> Callable[[ClassDefContext], None] | None:
        return _add_local if fullname == _AS_ACTOR else None


def plugin(version: str) -> type[Plugin]:
    """The entry point mypy calls."""
    return _PulsingPlugin
