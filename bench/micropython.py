"""Benchmark: the agent on the MicroPython unix port with a fixed heap (-X heapsize), where
memory is enforced: what its imports, the built agent and a simulated week take.

Each measurement is a function of the set-up and the figures so far, returning a dict;
the JSON is their union. Memory:
imports_bytes (live after importing what the washer agent needs, the simulator apart;
the profile's validation code is dropped once the profile is checked: released_bytes),
built_bytes (the built Agent), peak_bytes_week (the most live at any 10 simulated
minutes of a week), min_heap_bytes_week (the smallest -X heapsize with which the week
completes, by bisection on real runs, and with which the next SETTLE_STEPS heaps complete
too: running out is not monotonic in the heap size; min_heap_settled_from is what the
bisection alone found). The modules are .mpy (tools/build_mpy.py) unless
--source. The week: the washing machine driven by its simulator (a clogging drain
pump), maintenance and usage statistics allowed, no uplink (the outbox holds its bound).
Uplink (bench/micropython_uplink.py): uplink_msgs_per_s (the board runtime on the unix
port, mutual TLS to a local Mosquitto) and cpython_uplink_msgs_per_s (the same script on
CPython, the same broker, the same run); --no-uplink leaves them out.

usage: python bench/micropython.py [--json] [--days D] [--board esp32|pi] [--source] [--no-uplink]
"""

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from agent import profile_loader  # noqa: E402
from tests import micropython_unix  # noqa: E402
from tools import build_mpy  # noqa: E402

_MARK = "@@WEEK@@"
WEEK_DAYS = 7.0
# Bisection bounds for the smallest heap (see min_heap); steps of 4 KB.
HEAP_LOW = 32 * 1024
HEAP_HIGH = 2 * 1024 * 1024
HEAP_STEP = 4 * 1024
# Running out is not monotonic in the heap size (fragmentation: a week once completed in
# 220 KB and not in 228 KB), so the smallest heap is one whose next SETTLE_STEPS steps
# complete as well.
SETTLE_STEPS = 3

# Runs on the unix port. argv: profile path, days, board, measure (1: collect and note the
# live heap every 10 simulated minutes; 0: run as a device would, to find the smallest heap).
WEEK = (
    """
import gc, sys, json, asyncio
path, days, board, measure = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
gc.collect()
base = gc.mem_alloc()
# As a board starts: check the profile first, drop the validation code, then import the rest.
from agent.core import profile as core_profile
gc.collect()
checker = gc.mem_alloc()
with open(path, "rb") as f:
    prof = core_profile.from_json(f.read())
gc.collect()
loaded = gc.mem_alloc()
core_profile.release()
del core_profile
gc.collect()
released = loaded - gc.mem_alloc()
from agent.core.clock import ManualClock
from agent.core.pipeline import Agent
gc.collect()
profile_bytes = loaded - checker
imports = gc.mem_alloc() - base - profile_bytes
from agent.sim.appliances import make
from agent.sim.engine import SimDriver
gc.collect()
sim_imports = gc.mem_alloc() - base - profile_bytes - imports
sim = make("washing_machine", 7, ["pump_clog"], 5, 2)
# The other appliances' models are not needed: the simulator keeps the washer's.
del make
sys.modules.pop("agent.sim.appliances")
import agent.sim
delattr(agent.sim, "appliances")
drivers = {}
for ch in prof["channels"]:
    drivers[ch["id"]] = SimDriver(sim, ch["id"])
gc.collect()
before = gc.mem_alloc()
agent = Agent(prof, "dev-7", drivers, ManualClock(), sim, board=board)
gc.collect()
built = gc.mem_alloc() - before
for category in ("maintenance", "usage_statistics"):
    agent.rights.set_consent(category, True, 0)
peak = [gc.mem_alloc()]
due = [0]

def observe(stage, a, b):
    if stage == "tick" and a >= due[0]:
        due[0] = a + 600000
        gc.collect()
        peak[0] = max(peak[0], gc.mem_alloc())

if measure:
    agent.observer = observe
asyncio.run(agent.run(int(days * 86400000)))
gc.collect()
after = gc.mem_alloc()
snap = agent.snapshot()
print(%r + json.dumps({
    "imports_bytes": imports, "sim_imports_bytes": sim_imports, "profile_bytes": profile_bytes,
    "released_bytes": released, "built_bytes": built, "peak_bytes_week": peak[0] if measure else None,
    "after_week_bytes": after, "samples": snap.samples,
    "outbox": snap.waiting + snap.awaiting, "outbox_dropped": snap.dropped, "decisions": snap.decisions}))
"""
    % _MARK
)


class Setup:
    """What every measurement needs: the compiled profile and the module path (a .mpy
    build, or the sources)."""

    def __init__(self, tmp: str, days: float, board: str, source: bool) -> None:
        self.days = days
        self.board = board
        self.source = source
        self.profile = os.path.join(tmp, "washing_machine.json")
        with open(self.profile, "wb") as f:
            f.write(profile_loader.compile_json(profile_loader.load(profile_loader.example("washing_machine"))))
        if source:
            self.path: tuple = (ROOT,)
            self.mpy_bytes = 0
        else:
            out = os.path.join(tmp, "mpy")
            self.mpy_bytes = sum(build_mpy.build(out).values())
            self.path = (out,)


def run_week(setup: Setup, heap: int, measure: bool) -> dict:
    """One simulated run on the unix port with this heap; MicroPythonUnixError if it fails."""
    args = "%r, %r, %r, %r" % (setup.profile, setup.days, setup.board, "1" if measure else "0")
    code = WEEK.replace("sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]", args)
    out = micropython_unix.run(code, heap=heap, path=setup.path, cpu_s=600)
    result: dict = json.loads(out.split(_MARK, 1)[1])
    return result


def memory(setup: Setup, so_far: dict) -> dict:
    """imports_bytes, built_bytes, peak_bytes_week (and what goes with them), in a 1 MB heap."""
    result = run_week(setup, 1024 * 1024, True)
    result["mpy_bytes"] = setup.mpy_bytes
    return result


def min_heap(setup: Setup, so_far: dict) -> dict:
    """min_heap_bytes_week: the smallest heap with which the week completes (smallest_heap),
    starting from the live peak (so_far["peak_bytes_week"], when measured)."""

    def completes(heap: int) -> bool:
        try:
            run_week(setup, heap, False)
        except micropython_unix.MicroPythonUnixError as e:
            if "MemoryError" not in str(e):
                raise
            return False
        return True

    hi, found = smallest_heap(completes, so_far.get("peak_bytes_week") or HEAP_LOW)
    return {"min_heap_bytes_week": hi, "min_heap_settled_from": found}


def smallest_heap(completes: "Callable[[int], bool]", peak: int) -> tuple:
    """(smallest heap, what the bisection alone found): the smallest heap (to HEAP_STEP) with
    which completes(heap) is true, and with which the next SETTLE_STEPS larger heaps complete
    too, by bisection. It starts from the live peak: a heap that size fails (its allocation
    table takes part of it); twice that, doubled until it completes, is the upper end. Then
    the steps above it are run; one that fails moves the figure above it. completes raises
    for a failure other than running out of memory (not taken for a small heap)."""
    lo = peak // HEAP_STEP * HEAP_STEP  # fails
    hi = lo * 2  # completes, once checked
    while not completes(hi):
        lo = hi
        hi *= 2
        if hi > HEAP_HIGH:
            raise micropython_unix.MicroPythonUnixError("the run does not complete even in a %d-byte heap" % lo)
    while hi - lo > HEAP_STEP:
        mid = (lo + hi) // 2 // HEAP_STEP * HEAP_STEP
        if completes(mid):
            hi = mid
        else:
            lo = mid
    found = hi
    step = 1  # hi + step * HEAP_STEP is run next; hi itself (step 0) after a move
    while step <= SETTLE_STEPS:
        heap = hi + step * HEAP_STEP
        if heap > HEAP_HIGH:
            raise micropython_unix.MicroPythonUnixError("the run does not complete even in a %d-byte heap" % heap)
        if completes(heap):
            step += 1
        else:
            hi, step = heap + HEAP_STEP, 0  # the figure moves above the heap that failed
    return hi, found


def uplink(setup: "Setup", so_far: dict) -> dict:
    from bench import micropython_uplink

    return micropython_uplink.measure()


MEASUREMENTS = (memory, min_heap)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="end with the figures as one JSON line")
    parser.add_argument("--days", type=float, default=WEEK_DAYS, help="simulated days (default 7: a week)")
    parser.add_argument("--board", default="esp32", help="the board whose sizes the agent takes (default esp32)")
    parser.add_argument("--source", action="store_true", help="import the sources instead of .mpy modules")
    parser.add_argument("--no-uplink", action="store_true", help="memory only: no uplink rates (no Mosquitto needed)")
    args = parser.parse_args()
    missing = micropython_unix.available()
    if missing:
        print(missing, file=sys.stderr)
        return 1
    results: dict = {"days": args.days, "board": args.board, "modules": "source" if args.source else "mpy"}
    with tempfile.TemporaryDirectory() as tmp:
        setup = Setup(tmp, args.days, args.board, args.source)
        for measurement in MEASUREMENTS if args.no_uplink else (*MEASUREMENTS, uplink):
            results.update(measurement(setup, results))
    kb = 1024
    print("MicroPython unix port (64-bit), fixed heap; %s modules; board sizes %r; %.3g simulated days"
          % (results["modules"], args.board, args.days))  # fmt: skip
    print("  imports (agent core)       %6.1f KB   (+ simulator %.1f KB)"
          % (results["imports_bytes"] / kb, results["sim_imports_bytes"] / kb))  # fmt: skip
    print("  compiled profile, parsed   %6.1f KB   (then the validation code is dropped: -%.1f KB)"
          % (results["profile_bytes"] / kb, results["released_bytes"] / kb))  # fmt: skip
    print("  built agent                %6.1f KB" % (results["built_bytes"] / kb))
    print("  peak live over the run     %6.1f KB" % (results["peak_bytes_week"] / kb))
    print("  smallest heap that runs it %6.1f KB   (-X heapsize; and the next %d steps of %d KB; bisection "
          "alone found %.1f KB)" % (results["min_heap_bytes_week"] / kb, SETTLE_STEPS, HEAP_STEP // 1024,
                                    results["min_heap_settled_from"] / kb))  # fmt: skip
    if "uplink_msgs_per_s" in results:
        print("  uplink, mutual TLS, %d messages: %.0f msgs/s on the unix port (heap %d KB), %.0f on CPython"
              % (results["uplink_messages"], results["uplink_msgs_per_s"], results["uplink_heap_bytes"] // kb,
                 results["cpython_uplink_msgs_per_s"]))  # fmt: skip
    if args.json:
        print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
