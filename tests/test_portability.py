"""The core stays portable: allowed imports only, compiles with mpy-cross, type-checks twice."""

import os
import shutil
import subprocess
import sys

import pytest

from tools import portability

MODULES = portability.core_modules()


def test_core_has_modules() -> None:
    assert len(MODULES) >= 10


@pytest.mark.parametrize("path", MODULES, ids=lambda p: os.path.relpath(p, portability.ROOT))
def test_core_module_imports_only_the_portable_subset(path: str) -> None:
    assert portability.import_problems(path) == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: os.path.relpath(p, portability.ROOT))
def test_core_module_compiles_with_mpy_cross(path: str, tmp_path: str) -> None:
    ok, message, size = portability.mpy_cross(path, str(tmp_path))
    assert ok, message
    assert size > 0


@pytest.mark.parametrize(
    "source",
    [
        "import dataclasses\n",
        "from typing import Protocol\n",
        "import logging as log\n",
        "from . import limits\n",
        "def f():\n    import pathlib\n",
    ],
)
def test_a_forbidden_import_in_the_core_is_caught(source: str, tmp_path: str) -> None:
    core = os.path.join(str(tmp_path), "core")
    shutil.copytree(portability.CORE, core)
    bad = os.path.join(core, "intruder.py")
    with open(bad, "w") as f:
        f.write('"""A module that breaks the rules."""\n' + source)
    problems = [p for path in portability.core_modules(core) for p in portability.import_problems(path)]
    assert len(problems) == 1, problems
    assert "intruder.py:" in problems[0]


def test_typing_is_allowed_only_for_type_checkers(tmp_path: str) -> None:
    path = os.path.join(str(tmp_path), "m.py")
    with open(path, "w") as f:
        f.write("TYPE_CHECKING = False\nif TYPE_CHECKING:\n    from typing import Protocol\n")
    assert portability.import_problems(path) == []


def test_code_micropython_cannot_compile_fails_mpy_cross(tmp_path: str) -> None:
    path = os.path.join(str(tmp_path), "walrus_in_comprehension.py")
    with open(path, "w") as f:
        f.write("async def f(xs):\n    return [await x for x in xs]\n")
    ok, message, _ = portability.mpy_cross(path, str(tmp_path))
    assert not ok and "SyntaxError" in message


def test_mypy_strict_on_cpython() -> None:
    proc = subprocess.run([sys.executable, "-m", "mypy"], capture_output=True, text=True, cwd=portability.ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_against_micropython_stubs() -> None:
    proc = portability.mypy_micropython(["agent/core"])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_against_micropython_stubs_catches_cpython_only_calls(tmp_path: str) -> None:
    path = os.path.join(str(tmp_path), "uses_cpython_clock.py")
    with open(path, "w") as f:
        f.write("import time\n\n\ndef now() -> int:\n    return time.monotonic_ns()\n")
    proc = portability.mypy_micropython([path])
    assert proc.returncode != 0 and "monotonic_ns" in proc.stdout
