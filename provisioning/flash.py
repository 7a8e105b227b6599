"""Copying a firmware image and a device's MicroPython bundle to a board through mpremote.

The plan (what goes where) is computed without a board, so --dry-run and tests see it; an
image without an entry point, or over the board's flash budget, is refused before anything
is copied. The copy runs mpremote once per file and shows progress. No board, no mpremote:
a clear error, not a traceback. The image is a `wichtel firmware build` directory
(provisioning/firmware_build.py), given or built for the copy.
"""

import glob
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable

from provisioning import bundle, firmware_build
from provisioning.errors import FlashError

TIMEOUT_S = 120  # one file over a slow USB serial link


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


def plan(bundle_path: str, image: str) -> list[tuple[str, str]]:
    """(local file, path on the board) for a firmware image (a `wichtel firmware build`
    directory) and a device's bundle, in copy order: lib/ first, then the bundle, the entry
    points last, so a copy cut short leaves no new main.py starting a half-written board.
    FlashError, before anything is copied, for an image without main.py (a board would run
    nothing), one that holds a bundle already, or names the two share."""
    firmware = firmware_build.image_files(image)
    remotes = [remote for _, remote in firmware]
    if firmware_build.REQUIRED_ENTRY not in remotes:
        raise FlashError(
            "%s has no entry point: no %s at its root (found: %s), so the board would run nothing after a reset. "
            "Build the image with `wichtel firmware build` from a firmware/ that has main.py; nothing was copied."
            % (image, firmware_build.REQUIRED_ENTRY, ", ".join(r for r in remotes if "/" not in r) or "no files")
        )
    if bundle.BUNDLE_FILE in remotes:
        raise FlashError(
            "%s holds a device's bundle already (%s): give a firmware image built without BUNDLE, so the board gets "
            "exactly the bundle named here; nothing was copied." % (image, bundle.BUNDLE_FILE)
        )
    directory = mpy_dir(bundle_path)
    device = [(os.path.join(directory, name), name) for name in sorted(os.listdir(directory))]
    shared = sorted(set(remotes) & {remote for _, remote in device})
    if shared:
        raise FlashError("%s and %s both hold %s; nothing was copied." % (image, directory, ", ".join(shared)))
    entries = [step for step in firmware if step[1] in firmware_build.ENTRY_POINTS]
    return [step for step in firmware if step not in entries] + device + entries


def check_board(steps: list[tuple[str, str]], board: str) -> int:
    """The flash the steps take on the board's file system; FlashError with the figures when
    over the board's budget (firmware_build.BOARDS), or naming the modules whose machine
    code is for another architecture than the board's."""
    target = firmware_build.BOARDS[board]
    foreign = firmware_build.foreign_code(steps, target.arch)
    if foreign:
        raise FlashError(
            "the image holds machine code for another architecture than %s's (%s), which the board refuses to "
            "import: %s. Build the image with `wichtel firmware build --board %s`; nothing was copied."
            % (board, target.arch, ", ".join(foreign), board)
        )
    used = firmware_build.usage({remote: os.path.getsize(local) for local, remote in steps})
    if used > target.limit_bytes():
        raise FlashError(
            "firmware and bundle need %d bytes of %s's file system, %d more than the %d allowed (%s; less %d bytes "
            "kept for the device's data); nothing was copied."
            % (used, board, used - target.limit_bytes(), target.limit_bytes(), target.source,
               firmware_build.DATA_RESERVE_BYTES)
        )  # fmt: skip
    return used


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
