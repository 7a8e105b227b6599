"""Time limits for the runtimes tests start (MicroPython, benchmarks, the CLI): they count
the child's own CPU time, so a busy machine slows a child down without failing it.

A child that runs away (an endless loop) uses CPU: RLIMIT_CPU stops it after `cpu_s`
seconds of its own work, however busy the machine is. A child that hangs (waits on a
socket that never answers) uses none: the wall-clock limit catches it, and that one is
scaled by how busy the machine is when the child starts (the 1-minute load average per
core, at least 1) and by WICHTEL_TIMEOUT_SCALE (default 1) for a slower machine.
"""

import os
import resource
import subprocess

# How many times the CPU budget a child may take in wall time on an idle machine: a child
# waits for sockets, the broker and the other tests' processes too.
WALL_PER_CPU = 4


def busy_factor() -> float:
    """How much slower than idle the machine runs now: load average per core, at least 1."""
    try:
        load = os.getloadavg()[0]
    except OSError:  # no load average on this system: assume idle
        return 1.0
    return max(1.0, load / (os.cpu_count() or 1))


def user_scale() -> float:
    """WICHTEL_TIMEOUT_SCALE: a multiplier for a machine slower than the ones the limits were set on."""
    raw = os.environ.get("WICHTEL_TIMEOUT_SCALE", "1")
    try:
        scale = float(raw)
    except ValueError:
        raise ValueError("WICHTEL_TIMEOUT_SCALE must be a number such as 2; got %r" % raw) from None
    if not scale > 0:
        raise ValueError("WICHTEL_TIMEOUT_SCALE must be above 0; got %r" % raw)
    return scale


def wall_s(cpu_s: float) -> float:
    """The wall-clock limit for a child with a CPU budget of cpu_s seconds, started now."""
    return cpu_s * WALL_PER_CPU * busy_factor() * user_scale()


def limit_cpu(pid: int, cpu_s: float) -> None:
    """Give a started child a CPU budget of cpu_s seconds (times WICHTEL_TIMEOUT_SCALE;
    SIGXCPU ends it past the budget, SIGKILL 5 s later). Set right after the start
    (prlimit), not in a preexec_fn, which is unsafe in a process with threads. A child
    already gone is left to its exit status."""
    seconds = max(1, int(cpu_s * user_scale()))
    try:
        resource.prlimit(pid, resource.RLIMIT_CPU, (seconds, seconds + 5))
    except (ProcessLookupError, PermissionError):
        pass


def run(cmd: list, cpu_s: float, **kwargs: object) -> subprocess.CompletedProcess:
    """subprocess.run(cmd, **kwargs) with a CPU budget of cpu_s seconds (times
    WICHTEL_TIMEOUT_SCALE; SIGXCPU ends the child past it) and the wall-clock limit
    wall_s(cpu_s) (TimeoutExpired past it), as limit_cpu sets it."""
    text = kwargs.pop("input", None)
    if kwargs.pop("capture_output", False):
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    with subprocess.Popen(cmd, stdin=subprocess.PIPE if text is not None else None, **kwargs) as proc:  # type: ignore[call-overload]
        limit_cpu(proc.pid, cpu_s)
        try:
            out, err = proc.communicate(text, timeout=wall_s(cpu_s))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
