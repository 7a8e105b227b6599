"""Benchmark: several sensors together (agent/core/multivariate.py) against one cycle feature
at a time (processors.CycleFeatureProcessor), on the simulated appliances.

For each built-in appliance, with the feature list below (FEATURES, reusable in profiles):
the heap of one PcaMonitor on MicroPython (WebAssembly port, gc.mem_alloc), the time per
judged cycle on CPython and on MicroPython, and per built-in fault, over SEEDS: detected
or not and cycles to detection (from the fault's onset) for the model and for each single
feature, with the fault present from install (onset 0, the model seeded with a reference
fitted on healthy simulated units of the other seeds) and from a later cycle (no
reference: learned online); and false alarms on healthy runs of the same seeds.

usage: python bench/multivariate.py [--json OUT] [--seeds N]
"""

import argparse
import copy
import json
import math
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from agent.core import multivariate, processors  # noqa: E402
from agent.core.errors import SensorError  # noqa: E402
from agent.sim import appliances, engine  # noqa: E402

# Per appliance: the channels read, the features (kind, channel id or None, phase), the
# sample period in a cycle and in the rest phase (seconds; a washer's idle is read once a
# minute: it only has to show a leak, and a cycle's first phase is not a feature). Features are ones a fault of
# the appliance moves, and some it does not (a healthy cycle's spread).
FEATURES = {
    "washing_machine": {
        "channels": ["motor_current", "drum_vibration", "inlet_flow", "heater_temp"],
        "features": [
            ("mean", "motor_current", "drain"),
            ("duration", None, "drain"),
            ("peak", "heater_temp", "heat"),
            ("duration", None, "heat"),
            ("mean", "drum_vibration", "spin"),
            ("mean", "drum_vibration", "wash"),
            ("mean", "inlet_flow", "fill"),
            ("mean", "inlet_flow", "idle"),
        ],
        "period_s": 5,
        "rest_period_s": 60,
    },
    "coffee_machine": {
        "channels": ["pump_pressure", "boiler_temp"],
        "features": [
            ("duration", None, "heatup"),
            ("peak", "boiler_temp", "heatup"),
            ("mean", "pump_pressure", "brew"),
            ("peak", "pump_pressure", "brew"),
            ("mean", "boiler_temp", "brew"),
        ],
        "period_s": 1,
        "rest_period_s": 1,  # a cycle's heat-up may last only seconds: it must not be missed
    },
    "dishwasher": {
        "channels": ["inlet_flow", "heater_temp"],
        "features": [
            ("duration", None, "drain"),
            ("duration", None, "heat"),
            ("peak", "heater_temp", "heat"),
            ("mean", "heater_temp", "wash"),
            ("mean", "inlet_flow", "fill"),
            ("mean", "inlet_flow", "idle"),
        ],
        "period_s": 5,
        "rest_period_s": 60,
    },
}
SEEDS = 3
LATE_ONSET = 34  # cycles learned before a fault starts: the model judges from cycle 30
LATE_CYCLES = 48  # cycles of a late-onset or healthy run
EARLY_CYCLES = 14  # cycles of a run with the fault from install
RAMP = 3  # cycles a fault takes to reach full severity
# The built-in faults at their full size, and at a third of it (a fault as it begins).
SEVERITIES = (1.0, 0.33)


def phases_of(kind: str) -> list:
    """The simulated appliance's phases, the rest phase first (as a profile lists them)."""
    out = ["idle"]
    for step in appliances.MODELS[kind]["program"]:
        if step[0] not in out:
            out.append(step[0])
    return out


def specs_of(kind: str) -> list:
    """The feature specs of an appliance for multivariate.CycleFeatures (channel indexes)."""
    spec = FEATURES[kind]
    out = []
    for feature, channel, phase in spec["features"]:
        if channel is None:
            out.append((feature, phase))
        else:
            out.append((feature, spec["channels"].index(channel), phase))
    return out


def feature_extractor(kind: str) -> multivariate.CycleFeatures:
    return multivariate.CycleFeatures(specs_of(kind), phases_of(kind), FEATURES[kind]["channels"])


def single_feature_processors(kind: str) -> list:
    """One CycleFeatureProcessor per feature (default settings), as a profile would build
    it: (channel index it is fed from, processor)."""
    spec = FEATURES[kind]
    phases = phases_of(kind)
    out = []
    for feature, channel, phase in spec["features"]:
        ch = channel or spec["channels"][0]  # a duration: any channel read in every phase
        info = processors.ChannelInfo({"id": ch, "unit": ""}, phases, {}, None)
        proc = processors.CycleFeatureProcessor(info, phase, feature, 12, 3, 4.0, 15, 5)
        out.append((spec["channels"].index(ch), proc))
    return out


class Run:
    """A simulated appliance fed to the feature extractor and the single-feature
    processors, cycle by cycle; copied (copy.deepcopy) to branch runs that share a start."""

    def __init__(self, kind: str, seed: int, faults: list) -> None:
        spec = FEATURES[kind]
        self.sim = engine.ApplianceSim(appliances.MODELS[kind], seed, faults)
        self.extractor = feature_extractor(kind)
        self.singles = single_feature_processors(kind)
        self.channels = spec["channels"]
        self.period = spec["period_s"] * 1000
        self.rest_period = spec["rest_period_s"] * 1000
        self.vectors: list = []  # per cycle: its vector, or None for a skipped cycle
        self.alerts: list = [[] for _ in self.singles]  # per single feature: the cycles it alerted at
        self.t = 0

    def until(self, cycles: int) -> "Run":
        """Runs on until `cycles` cycles have ended."""
        extractor = self.extractor
        while extractor.cycles < cycles:
            t = self.t
            phase = self.sim.phase(t)
            for ci in range(len(self.channels)):
                try:
                    value = self.sim.read(self.channels[ci], t)
                except SensorError:
                    continue
                vec = extractor.sample(ci, t, value, phase)
                if extractor.cycles > len(self.vectors):
                    self.vectors.append(vec)
                for j, (fed, proc) in enumerate(self.singles):
                    if fed == ci and proc.feed(t, value, phase) is not None:
                        self.alerts[j].append(extractor.cycles - 1)
            self.t += self.rest_period if phase == extractor.rest else self.period
        return self


def fault(name: str, onset: int, severity: float) -> engine.Fault:
    """A built-in fault (appliances.FAULTS) with its effects scaled by severity."""
    effects = {}
    for kind, table in appliances.FAULTS[name][1].items():
        effects[kind] = {key: value * severity for key, value in table.items()}
    return engine.Fault(name, effects, onset, RAMP)


def reference_from(vectors: list) -> dict:
    """A manufacturer's reference from healthy units' cycle vectors: mean, sd and the
    correlations above the diagonal, row by row (PcaMonitor's reference format)."""
    rows = [v for v in vectors if v is not None]
    n = len(rows)
    p = len(rows[0])
    mean = [sum(r[i] for r in rows) / n for i in range(p)]
    cov = [[sum((r[i] - mean[i]) * (r[j] - mean[j]) for r in rows) / (n - 1) for j in range(p)] for i in range(p)]
    sd = [math.sqrt(cov[i][i]) for i in range(p)]
    corr = []
    for i in range(p):
        for j in range(i + 1, p):
            corr.append(cov[i][j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else 0.0)
    return {"mean": mean, "sd": sd, "corr": corr}


def monitor_run(vectors: list, reference: dict | None) -> tuple:
    """(cycle indexes with an ALARM verdict, judged cycles, seconds spent judging them)."""
    model = multivariate.PcaMonitor(len(next(v for v in vectors if v is not None)), reference=reference)
    alarms = []
    judged = 0
    spent = 0.0
    for cycle, vec in enumerate(vectors):
        if vec is None:
            continue
        t0 = time.perf_counter()
        verdict = model.judge(vec)
        if verdict.status != multivariate.LEARNING:
            spent += time.perf_counter() - t0
            judged += 1
        if verdict.status == multivariate.ALARM:
            alarms.append(cycle)
    return alarms, judged, spent


def _first_at_or_after(cycles: list, onset: int) -> int | None:
    later = [c - onset for c in cycles if c >= onset]
    return later[0] if later else None


# Runs on MicroPython: the heap of a model of each size (built with its reference, so
# fitted once), and the time per judged cycle on the healthy vectors given (the
# reference-seeded model judges every one, and refits after each normal one).
MP_CODE = """
import gc, json, time
from agent.core.multivariate import PcaMonitor
cases = json.loads(%r)
out = {}
for name in cases:
    case = cases[name]
    model = None
    gc.collect()
    before = gc.mem_alloc()
    model = PcaMonitor(case["p"], reference=case["reference"])
    gc.collect()
    heap = gc.mem_alloc() - before
    verdicts = []
    t0 = time.ticks_us()
    for vec in case["vectors"]:
        verdicts.append(model.judge(vec).status)
    us = time.ticks_diff(time.ticks_us(), t0) / max(1, len(case["vectors"]))
    out[name] = {"heap_bytes": heap, "us_per_cycle": us, "verdicts": verdicts}
print("@@MV@@" + json.dumps(out))
"""


def micropython_figures(cases: dict) -> dict:
    """The figures on the WebAssembly port (tests/micropython.py) and on the unix port with
    a fixed heap (tests/micropython_unix.py). The WebAssembly port's gc.collect() leaves
    much of the garbage of float arithmetic live (a 12-feature model "grows" by about
    18 KB per fit there, and not on the unix port): its heap figures are upper bounds."""
    from tests import micropython, micropython_unix

    code = MP_CODE % json.dumps(cases)
    wasm = micropython.run(code, micropython.core_mounts(), heap=1024 * 1024)
    unix = micropython_unix.run(code, heap=1024 * 1024)
    return {
        "wasm": json.loads(wasm.split("@@MV@@", 1)[1]),
        "unix": json.loads(unix.split("@@MV@@", 1)[1]),
    }


def synthetic_case(p: int) -> dict:
    """A model of p features with a reference, and healthy vectors for it (for 8 and 12)."""
    import random

    rng = random.Random(p)
    ref = {"mean": [10.0] * p, "sd": [1.0] * p, "corr": [0.5] * (p * (p - 1) // 2)}
    vectors = []
    for _ in range(20):
        common = rng.gauss(0, 1)
        vectors.append([10.0 + math.sqrt(0.5) * common + math.sqrt(0.5) * rng.gauss(0, 1) for _ in range(p)])
    return {"p": p, "reference": ref, "vectors": vectors}


def cpython_case(case: dict) -> float:
    """Microseconds per judged cycle on CPython for a case of MP_CODE (the same loop)."""
    model = multivariate.PcaMonitor(case["p"], reference=case["reference"])
    t0 = time.perf_counter()
    for vec in case["vectors"]:
        model.judge(vec)
    return (time.perf_counter() - t0) / max(1, len(case["vectors"])) * 1e6


def _detections(run: Run, onset: int, reference: dict | None) -> dict:
    alarms, _, _ = monitor_run(run.vectors, reference)
    return {
        "model": _first_at_or_after(alarms, onset),
        "model_before_onset": len([c for c in alarms if c < onset]),
        "single": [_first_at_or_after(c, onset) for c in run.alerts],
        "single_before_onset": sum(len([c for c in a if c < onset]) for a in run.alerts),
    }


def bench_appliance(kind: str, seeds: int, severities: tuple) -> dict:
    names = [feature_extractor(kind).name(i) for i in range(len(FEATURES[kind]["features"]))]
    result: dict = {"features": names, "faults": {}}
    # Healthy runs, each branched at LATE_ONSET into the same unit with a fault from then on.
    healthy = {}
    at_onset = {}
    for seed in range(1, seeds + 1):
        at_onset[seed] = Run(kind, seed, []).until(LATE_ONSET)
        healthy[seed] = copy.deepcopy(at_onset[seed]).until(LATE_CYCLES)
    spent = 0.0
    judged = 0
    refs = {}
    fa = {"learned": 0, "reference": 0, "single": [0] * len(names)}
    for seed in healthy:
        others = [v for s in healthy if s != seed for v in healthy[s].vectors[:30]]
        refs[seed] = reference_from(others)
        alarms, n, sec = monitor_run(healthy[seed].vectors, None)
        fa["learned"] += len(alarms)
        spent += sec
        judged += n
        alarms, n, sec = monitor_run(healthy[seed].vectors, refs[seed])
        fa["reference"] += len(alarms)
        spent += sec
        judged += n
        for j, cycles in enumerate(healthy[seed].alerts):
            fa["single"][j] += len(cycles)
    result["healthy"] = {"runs": seeds, "cycles_per_run": LATE_CYCLES, "false_alarms": fa}
    for name in appliances.faults_of(kind):
        for severity in severities:
            entry: dict = {"from_install": [], "later": []}
            for seed in healthy:
                early = Run(kind, seed, [fault(name, 0, severity)]).until(EARLY_CYCLES)
                entry["from_install"].append(_detections(early, 0, refs[seed]))
                late = copy.deepcopy(at_onset[seed])
                late.sim.faults = [fault(name, LATE_ONSET, severity)]
                entry["later"].append(_detections(late.until(LATE_CYCLES), LATE_ONSET, None))
            result["faults"]["%s@%g" % (name, severity)] = entry
    result["cpython_us_per_cycle"] = spent / max(1, judged) * 1e6
    result["mp_case"] = {"p": len(names), "reference": refs[1],
                         "vectors": [list(v) for v in healthy[1].vectors if v is not None]}  # fmt: skip
    return result


def _summary(found: list) -> str:
    hits = [c for c in found if c is not None]
    if not hits:
        return "0/%d" % len(found)
    return "%d/%d (%.1f cycles)" % (len(hits), len(found), sum(hits) / len(hits))


def _best_single(run: dict) -> int | None:
    found = [c for c in run["single"] if c is not None]
    return min(found) if found else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", metavar="OUT")
    parser.add_argument("--seeds", type=int, default=SEEDS)
    args = parser.parse_args()
    t0 = time.perf_counter()
    figures: dict = {}
    cases = {"synthetic_8": synthetic_case(8), "synthetic_12": synthetic_case(12)}
    for kind in FEATURES:
        figures[kind] = bench_appliance(kind, args.seeds, SEVERITIES)
        cases[kind] = figures[kind].pop("mp_case")
    mp = micropython_figures(cases)
    figures["micropython"] = {
        port: {name: {"heap_bytes": mp[port][name]["heap_bytes"], "us_per_cycle": mp[port][name]["us_per_cycle"]}
               for name in mp[port]}
        for port in mp
    }  # fmt: skip
    figures["same_verdicts_on_micropython"] = mp["wasm"] == mp["unix"] or all(
        mp["wasm"][name]["verdicts"] == mp["unix"][name]["verdicts"] for name in cases
    )
    for kind in FEATURES:
        f = figures[kind]
        print("%s (%d features: %s)" % (kind, len(f["features"]), ", ".join(f["features"])))
        print("  per model: heap %d B (unix port), %d B (WebAssembly port); per judged cycle %.0f us CPython, "
              "%.0f us unix port, %.0f us WebAssembly port"
              % (mp["unix"][kind]["heap_bytes"], mp["wasm"][kind]["heap_bytes"], f["cpython_us_per_cycle"],
                 mp["unix"][kind]["us_per_cycle"], mp["wasm"][kind]["us_per_cycle"]))  # fmt: skip
        fa = f["healthy"]["false_alarms"]
        print("  healthy, %d runs of %d cycles: false alarms of the model learned %d, with a reference %d; "
              "of single features %s" % (f["healthy"]["runs"], LATE_CYCLES, fa["learned"], fa["reference"],
                                         fa["single"]))  # fmt: skip
        for name, entry in f["faults"].items():
            early = entry["from_install"]
            late = entry["later"]
            print(
                "  %-18s from install (reference): model %-18s best single %-18s"
                % (name, _summary([r["model"] for r in early]), _summary([_best_single(r) for r in early]))
            )
            print(
                "  %-18s from cycle %d (learned):  model %-18s best single %-18s before onset: %d / %d"
                % (
                    "",
                    LATE_ONSET,
                    _summary([r["model"] for r in late]),
                    _summary([_best_single(r) for r in late]),
                    sum(r["model_before_onset"] for r in late),
                    sum(r["single_before_onset"] for r in late),
                )
            )
    for name in ("synthetic_8", "synthetic_12"):
        figures["micropython"]["unix"][name]["cpython_us_per_cycle"] = cpython_case(cases[name])
        print("%s: %.0f us per judged cycle on CPython" % (name, cpython_case(cases[name])))
        print(
            "%s: heap %d B per model (unix port), %d B (WebAssembly port); %.0f us per judged cycle (unix port), "
            "%.0f us (WebAssembly port)"
            % (
                name,
                mp["unix"][name]["heap_bytes"],
                mp["wasm"][name]["heap_bytes"],
                mp["unix"][name]["us_per_cycle"],
                mp["wasm"][name]["us_per_cycle"],
            )
        )
    figures["seconds"] = time.perf_counter() - t0
    print("took %.1f s" % figures["seconds"])
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
