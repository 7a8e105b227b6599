"""Runs code on the official MicroPython WebAssembly port (tools/mpwasm) from pytest."""

import os
import shutil

from tests import timeouts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNTIME = os.path.join(ROOT, "tools", "mpwasm")
PACKAGE = os.path.join(RUNTIME, "node_modules", "@micropython", "micropython-webassembly-pyscript")


class MicroPythonError(Exception):
    """The code raised on MicroPython, or the runtime could not start."""


def available() -> str | None:
    """None if the runtime can run, else what is missing and how to get it."""
    if shutil.which("node") is None:
        return "node is not installed (make test installs everything it needs)"
    if not os.path.isdir(PACKAGE):
        return "the MicroPython runtime is not installed: run `make test` (npm ci --prefix tools/mpwasm)"
    return None


def run(code: str, mounts: dict[str, str], heap: int = 512 * 1024, cpu_s: float = 120) -> str:
    """Run code (top-level await allowed); return its stdout. mounts: host dir -> runtime dir.
    cpu_s: the runtime's CPU budget; its wall-clock limit follows (tests/timeouts.py)."""
    missing = available()
    if missing:
        raise MicroPythonError(missing)
    cmd = ["node", os.path.join(RUNTIME, "run.mjs"), "--heap", str(heap)]
    for host, target in mounts.items():
        cmd += ["--mount", host + ":" + target]
    proc = timeouts.run(cmd, cpu_s, input=code, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise MicroPythonError("MicroPython failed (exit %d):\n%s%s" % (proc.returncode, proc.stdout, proc.stderr))
    return proc.stdout


def core_mounts(**extra: str) -> dict[str, str]:
    """The agent package (core and simulator) at /lib/agent, plus extra host dirs."""
    mounts = {os.path.join(ROOT, "agent"): "/lib/agent"}
    for target, host in extra.items():
        mounts[host] = target
    return mounts
