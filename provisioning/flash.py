"""Copying firmware and a device's MicroPython bundle to a board through mpremote.

The plan (what goes where) is computed without a board, so --dry-run and tests see it;
the copy runs mpremote once per file and shows progress. No board, no mpremote: a clear
error, not a traceback.
"""

import glob
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable

from provisioning import bundle
from provisioning.errors import FlashError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 120  # one file over a slow USB serial link
# The board runtime: firmware/*.py at the board's root (boot.py, main.py: to come with the
# firmware), the portable core under /lib/agent/core.
FIRMWARE = (("firmware", "*.py", ""), ("agent", "__init__.py", "lib/agent/"), ("agent/core", "*.py", "lib/agent/core/"))


def mpy_dir(path: str) -> str:
    """The flat MicroPython set of a device directory (or the set itself), checked whole
    against its own root (`provision verify --pki` is the check against the manufacturer's)."""
    candidate = os.path.join(path, bundle.MPY)
    directory = candidate if os.path.isdir(candidate) else path
    doc = bundle.verify(directory, bundle.own_root(directory))
    if doc.get("layout") != bundle.MPY:
        raise FlashError(
            "%s is a %r bundle; a board takes the flat %r set (devices/<id>/mpy)."
            % (directory, doc.get("layout"), bundle.MPY)
        )
    return directory


def plan(bundle_path: str) -> list[tuple[str, str]]:
    """(local file, path on the board) for firmware and bundle, in copy order."""
    out = []
    for where, pattern, remote in FIRMWARE:
        for path in sorted(glob.glob(os.path.join(ROOT, where, pattern))):
            out.append((path, remote + os.path.basename(path)))
    directory = mpy_dir(bundle_path)
    for name in sorted(os.listdir(directory)):
        out.append((os.path.join(directory, name), name))
    return out


def mpremote() -> list[str]:
    """The command that runs mpremote, or FlashError saying how to get it."""
    exe = shutil.which("mpremote")
    if exe:
        return [exe]
    if importlib.util.find_spec("mpremote") is not None:
        return [sys.executable, "-m", "mpremote"]
    raise FlashError(
        "mpremote is not installed, so nothing can be copied to a board. Install it with `pip install mpremote` "
        "(it is in the dev extras: pip install -e '.[dev]'); --dry-run shows the plan without it."
    )


def serial_ports() -> list[str]:
    return sorted(glob.glob("/dev/ttyUSB*") + glob.glob("/dev/ttyACM*"))


def check_port(port: str) -> None:
    if port.startswith("/dev/") and not os.path.exists(port):
        present = serial_ports()
        raise FlashError(
            "No board at %s: that serial port does not exist, so no board is attached there. Connect the board by "
            "USB and give its port with --port (serial ports present now: %s)."
            % (port, ", ".join(present) if present else "none")
        )


def run(port: str, steps: list[tuple[str, str]], say: Callable[[str], None]) -> None:
    """Copy each file with mpremote, saying which; FlashError on the first failure."""
    cmd = mpremote()
    check_port(port)
    dirs = sorted({os.path.dirname(remote) for _, remote in steps if os.path.dirname(remote)})
    make_dirs = (
        "import os\nfor d in %r:\n    p = ''\n    for part in d.split('/'):\n        p += '/' + part\n"
        "        try:\n            os.mkdir(p)\n        except OSError:\n            pass\n" % dirs
    )
    _call(cmd + ["connect", port, "exec", make_dirs], port)
    total = sum(os.path.getsize(local) for local, _ in steps)
    sent = 0
    for i, (local, remote) in enumerate(steps, 1):
        _call(cmd + ["connect", port, "fs", "cp", local, ":" + remote], port)
        sent += os.path.getsize(local)
        say("[%d/%d] %3d%%  %s -> :%s" % (i, len(steps), sent * 100 // max(total, 1), os.path.basename(local), remote))


def _call(cmd: list[str], port: str) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise FlashError("mpremote on %s did not finish in %d s: is the board in its REPL?" % (port, TIMEOUT_S)) from e
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise FlashError(
            "mpremote on %s failed (exit %d): %s. Is a MicroPython board attached at %s and no other program using "
            "the port?" % (port, proc.returncode, lines[-1] if lines else "no output", port)
        )
