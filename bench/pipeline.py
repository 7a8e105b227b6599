"""Benchmark: pipeline throughput on CPython and MicroPython, the agent's heap, the core's flash size.

Prints a table and one JSON line. Figures from one run are compared as ratios; the
machine is shared, so absolute numbers vary. Usage: python bench/pipeline.py [--hours H]
"""

import argparse
import asyncio
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from agent import profile_loader  # noqa: E402
from tests import micropython  # noqa: E402
from tools import portability  # noqa: E402

# Runs unchanged on both runtimes: builds the washing-machine agent, measures heap
# before and after building it and after running it, and the run's time.
WORKLOAD = """
import gc, json, time
from agent.core import profile as core_profile
from agent.core.clock import ManualClock
from agent.core.compat import IS_MICROPYTHON, mem_alloc
from agent.core.consent import ConsentLedger
from agent.core.pipeline import Agent
from agent.sim.appliances import make
from agent.sim.engine import SimDriver

class Constant:
    def __init__(self, v):
        self.v = v
    def read(self, t):
        return self.v

async def bench(data_dir, hours, simulated):
    with open(data_dir + "/washing_machine.json") as f:
        prof = core_profile.validate(json.load(f))
    sim = make("washing_machine", 7, ["pump_clog"], 2, 2)
    if simulated:
        drivers = {ch["id"]: SimDriver(sim, ch["id"]) for ch in prof["channels"]}
    else:
        drivers = {ch["id"]: Constant(1.0) for ch in prof["channels"]}
    gc.collect()
    before = mem_alloc()
    consent = ConsentLedger(prof["data_categories"])
    consent.set("maintenance", True)
    agent = Agent(prof, "bench", drivers, ManualClock(), sim, None, consent)
    built = mem_alloc()
    t0 = time.ticks_ms() if IS_MICROPYTHON else time.perf_counter()
    await agent.run(int(hours * 3600000))
    t1 = time.ticks_ms() if IS_MICROPYTHON else time.perf_counter()
    seconds = time.ticks_diff(t1, t0) / 1000 if IS_MICROPYTHON else t1 - t0
    # Everything live after the run: imported modules, profile, simulator, learned state.
    total = mem_alloc()
    samples = agent.snapshot().samples
    return {"samples": samples, "seconds": seconds, "samples_per_s": samples / seconds,
            "heap_agent_bytes": built - before if before >= 0 else None,
            "heap_total_after_run_bytes": total if before >= 0 else None}
"""


def _cpython(data_dir: str, hours: float, simulated: bool) -> dict:
    scope: dict = {}
    exec(compile(WORKLOAD, "workload", "exec"), scope)
    result: dict = asyncio.run(scope["bench"](data_dir, hours, simulated))
    return result


def _micropython(data_dir: str, hours: float, simulated: bool) -> dict:
    code = WORKLOAD + "print('@@' + json.dumps(await bench('/data', %r, %r)))\n" % (hours, simulated)
    out = micropython.run(code, micropython.core_mounts(**{"/data": data_dir}), heap=256 * 1024)
    result: dict = json.loads(out.split("@@", 1)[1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hours", type=float, default=6.0, help="simulated hours per run (default 6)")
    args = parser.parse_args()
    results: dict = {"hours": args.hours}
    with tempfile.TemporaryDirectory() as data_dir:
        prof = profile_loader.load(profile_loader.example("washing_machine"))
        with open(os.path.join(data_dir, "washing_machine.json"), "wb") as f:
            f.write(profile_loader.compile_json(prof))
        for simulated in (False, True):
            key = "with_simulator" if simulated else "pipeline_only"
            cp = max((_cpython(data_dir, args.hours, simulated) for _ in range(3)), key=lambda r: r["samples_per_s"])
            mp = max(
                (_micropython(data_dir, args.hours, simulated) for _ in range(2)), key=lambda r: r["samples_per_s"]
            )
            results[key] = {
                "cpython": cp,
                "micropython_wasm": mp,
                "speed_ratio_cpython_over_mp": cp["samples_per_s"] / mp["samples_per_s"],
            }
    with tempfile.TemporaryDirectory() as tmp:
        sizes = {os.path.relpath(p, ROOT): portability.mpy_cross(p, tmp)[2] for p in portability.core_modules()}
    results["core_mpy_bytes"] = sum(sizes.values())
    results["core_modules"] = len(sizes)

    for key in ("pipeline_only", "with_simulator"):
        r = results[key]
        print(
            "%-15s CPython %9.0f samples/s   MicroPython (wasm) %9.0f samples/s   ratio %.1fx"
            % (
                key,
                r["cpython"]["samples_per_s"],
                r["micropython_wasm"]["samples_per_s"],
                r["speed_ratio_cpython_over_mp"],
            )
        )
    mp = results["pipeline_only"]["micropython_wasm"]
    print(
        "MicroPython heap: the washing-machine agent takes %d bytes when built; %d bytes are live in all "
        "(core and simulator modules compiled from source, profile, agent) after %.0f simulated hours"
        % (mp["heap_agent_bytes"], mp["heap_total_after_run_bytes"], args.hours)
    )
    print("core bytecode (mpy-cross): %d bytes in %d modules" % (results["core_mpy_bytes"], results["core_modules"]))
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
