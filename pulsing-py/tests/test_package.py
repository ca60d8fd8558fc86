"""The package scaffolding: import, version, exception hierarchy, re-exports and stubs."""

from __future__ import annotations

import ast
import importlib.resources
import pickle
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

import pulsing
import pulsing._pulsing as native
import pulsing.actor
import pulsing.exceptions

WORKSPACE_CARGO_TOML = Path(__file__).resolve().parent.parent.parent / "Cargo.toml"

EXCEPTION_NAMES = [
    "PulsingError",
    "ActorNotFoundError",
    "ActorError",
    "AskTimeoutError",
    "NodeUnreachableError",
    "MailboxFullError",
    "BadMessageError",
    "ActorStoppedError",
    "UnauthorizedError",
]


def _public_names(module: object) -> set[str]:
    return {n for n in dir(module) if not n.startswith("__") or n == "__version__"}


def test_native_module_is_the_compiled_extension() -> None:
    assert Path(native.__file__).suffix in {".so", ".pyd"}
    assert pulsing._pulsing is native


def test_version_matches_the_workspace_cargo_toml() -> None:
    with WORKSPACE_CARGO_TOML.open("rb") as f:
        cargo = tomllib.load(f)
    expected = cargo["workspace"]["package"]["version"]
    assert pulsing.__version__ == expected
    assert native.__version__ == expected


@pytest.mark.parametrize("name", EXCEPTION_NAMES)
def test_every_exception_derives_from_pulsing_error(name: str) -> None:
    cls = getattr(pulsing, name)
    assert issubclass(cls, pulsing.PulsingError)
    assert issubclass(cls, Exception)
    assert cls.__module__ == "pulsing.exceptions"
    assert cls.__doc__


def test_pulsing_error_is_a_plain_exception() -> None:
    assert pulsing.PulsingError.__bases__ == (Exception,)


def test_ask_timeout_is_also_a_builtin_timeout_error() -> None:
    assert issubclass(pulsing.AskTimeoutError, TimeoutError)
    with pytest.raises(TimeoutError):
        raise pulsing.AskTimeoutError("no reply in 5s")


def test_node_unreachable_is_also_a_builtin_connection_error() -> None:
    assert issubclass(pulsing.NodeUnreachableError, ConnectionError)
    with pytest.raises(ConnectionError):
        raise pulsing.NodeUnreachableError("127.0.0.1:1 refused")


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in EXCEPTION_NAMES
        if n not in ("AskTimeoutError", "NodeUnreachableError", "UnauthorizedError")
    ],
)
def test_other_exceptions_are_not_os_errors(name: str) -> None:
    cls = getattr(pulsing, name)
    assert not issubclass(cls, OSError)


@pytest.mark.parametrize("name", EXCEPTION_NAMES)
def test_exceptions_survive_pickling(name: str) -> None:
    err = getattr(pulsing, name)("boom")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert back.args == ("boom",)


@pytest.mark.parametrize("name", EXCEPTION_NAMES)
def test_native_module_exports_the_python_classes(name: str) -> None:
    # Resolving these attributes runs the Rust `import_exception!` path.
    assert getattr(native, name) is getattr(pulsing.exceptions, name)


API_NAMES = [
    "Actor",
    "ActorRef",
    "ActorSystem",
    "ClientCertificate",
    "Member",
    "Message",
    "SystemConfig",
    "SystemStats",
    "as_actor",
    "client_certificate",
    "create_actor_system",
    "current_actor",
    "current_system",
]


def test_package_exports_exactly_its_all() -> None:
    assert sorted(pulsing.__all__) == sorted([*EXCEPTION_NAMES, *API_NAMES, "__version__"])
    for name in pulsing.__all__:
        assert hasattr(pulsing, name)


def test_actor_module_reexports_the_same_objects() -> None:
    assert set(pulsing.actor.__all__) == {*EXCEPTION_NAMES, *API_NAMES}
    for name in pulsing.actor.__all__:
        assert getattr(pulsing.actor, name) is getattr(pulsing, name)


@pytest.mark.parametrize("name", API_NAMES)
def test_every_public_name_has_a_docstring(name: str) -> None:
    obj = getattr(pulsing.actor, name)
    assert obj.__doc__
    if isinstance(obj, type):
        for attr, value in vars(obj).items():
            if not attr.startswith("_") and callable(value):
                assert value.__doc__, f"{name}.{attr} has no docstring"


def test_stub_declares_every_name_the_native_module_exports() -> None:
    stub = importlib.resources.files("pulsing").joinpath("_pulsing.pyi").read_text()
    declared: set[str] = set()
    for node in ast.parse(stub).body:
        if isinstance(node, ast.ImportFrom):
            declared.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            declared.add(node.target.id)
        elif isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            declared.add(node.name)
    assert declared == _public_names(native)


def test_package_ships_the_typing_marker() -> None:
    assert importlib.resources.files("pulsing").joinpath("py.typed").is_file()


def test_unauthorized_is_also_a_builtin_permission_error() -> None:
    assert issubclass(pulsing.UnauthorizedError, PermissionError)
    with pytest.raises(PermissionError):
        raise pulsing.UnauthorizedError("the seed 127.0.0.1:1 refused this node's identity")


def test_every_error_class_says_whether_the_message_was_delivered() -> None:
    assert pulsing.ActorNotFoundError("x").delivery == "not_delivered"
    assert pulsing.UnauthorizedError("x").delivery == "not_delivered"
    assert pulsing.MailboxFullError("x").delivery == "not_delivered"
    assert pulsing.BadMessageError("x").delivery == "not_delivered"
    assert pulsing.ActorError("x").delivery == "handled"
    assert pulsing.AskTimeoutError("x").delivery == "maybe_delivered"
    assert pulsing.ActorStoppedError("x").delivery == "maybe_delivered"
