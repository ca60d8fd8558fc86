"""The package type-checks for its users: ``mypy --strict`` on a user's program with the
``pulsing.mypy`` plugin accepts the guide's API, including ``await Counter.local(system)``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("mypy", reason="mypy is installed by `make venv`")

USER_PROGRAM = '''
import asyncio

from pulsing.actor import ActorRef, SystemConfig, as_actor, create_actor_system, current_actor


@as_actor
class Counter:
    def __init__(self, init_value: int = 0) -> None:
        self.value = init_value

    def increment(self, n: int = 1) -> int:
        self.value += n
        return self.value

    def me(self) -> ActorRef:
        return current_actor()


async def main() -> None:
    system = await create_actor_system(SystemConfig.standalone().with_mailbox_capacity(8))
    counter: Counter = await Counter.local(system, init_value=0)
    ref = await system.spawn(counter, "counter", public=False)
    assert await ref.with_timeout(2.0).increment(5) == 5
    names: list[tuple[str, bool]] = system.local_actors()
    print(names, system.node_id, [m.state for m in system.members()])
    await system.shutdown()


asyncio.run(main())
'''

WRONG_PROGRAM = '''
from pulsing.actor import ActorSystem, as_actor


@as_actor
class Counter:
    pass


async def main(system: ActorSystem) -> None:
    counter: int = await Counter.local(system)
'''


def _mypy(tmp_path: Path, program: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "user.py").write_text(textwrap.dedent(program))
    (tmp_path / "mypy.ini").write_text("[mypy]\nplugins = pulsing.mypy\n")
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "user.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.timeout(150)
def test_a_users_program_with_as_actor_local_type_checks_strictly(tmp_path: Path) -> None:
    result = _mypy(tmp_path, USER_PROGRAM)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(150)
def test_the_plugin_gives_local_the_class_instance_type(tmp_path: Path) -> None:
    result = _mypy(tmp_path, WRONG_PROGRAM)
    assert result.returncode == 1
    assert 'Incompatible types in assignment (expression has type "Counter"' in result.stdout
