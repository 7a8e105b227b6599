"""Appliance fault benchmark: the example appliances with their built-in faults and a generic
sensor fault set, at random onsets including the first cycle, over many seeds.

Each run simulates one appliance (its example profile, agent/sim) with one fault and feeds
every reading through the device's channel processors (agent/core/pipeline.ChannelRuntime:
detectors, cycle features, the profile's reference, sensor checks, the alert lifecycle) and
its cycle model (agent/core/cycle_model.py: several channels together). An
alert is an episode raised (an anomaly or sensor-fault event of state "raised"); updates,
reminders and clearings of an episode are counted apart. Reported:

- detected_share: fault runs with an alert raised at or after the onset, within OBSERVE_H;
- detected_share_from_install: the same, of the runs whose fault is there from the first cycle;
- median_hours_to_detect: from the onset to that first alert, over the detected runs;
- false_alerts_per_1000h: alerts raised in healthy running (healthy runs, and fault runs
  before their onset), per 1,000 hours of it;
- alerts_per_episode: alerts raised per detected fault run (a persistent fault should be
  one alert, however long it lasts); messages_per_episode counts what of it goes upstream
  (the raising, findings that join it, updates, reminders, clearings) within OBSERVE_H.
- by_source: the same figures counting only the per-channel detectors' alerts, or only the
  cycle model's: what each finds on its own.

Generic faults (agent/sim/engine.SensorFault) hit a channel with an anomaly processor, sized
from the channel's range: drift DRIFT_PER_H of it per hour, a step of STEP, noise of standard
deviation NOISE, stuck at the last reading before the onset, dropout of DROPOUT of the
readings.

usage: python bench/faults.py [--seeds N] [--healthy-seeds N] [--healthy-hours H] [--observe-h H]
                             [--appliances A,B] [--faults F,G] [--json OUT] [--workers N] [--quick]
"""

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from agent import profile_loader  # noqa: E402
from agent.core.alerts import JOINED, RAISED, AlertBook  # noqa: E402
from agent.core.cycle_model import CHANNEL as CYCLE_MODEL  # noqa: E402
from agent.core.cycle_model import CycleModelRuntime  # noqa: E402
from agent.core.events import ANOMALY, SENSOR_FAULT, Event  # noqa: E402
from agent.core.pipeline import ChannelRuntime  # noqa: E402
from agent.sim import profile_model  # noqa: E402
from agent.sim.appliances import FAULTS, faults_of  # noqa: E402
from agent.sim.engine import ApplianceSim, Fault, SensorFault, SimDriver  # noqa: E402
from bench import report  # noqa: E402

APPLIANCES = ("washing_machine", "coffee_machine", "dishwasher")
GENERIC = ("drift", "step", "stuck", "noise", "dropout")
DRIFT_PER_H = 0.002  # of the channel's range, per hour
STEP = 0.02
NOISE = 0.01
DROPOUT = 0.5
RAMP = 2  # cycles a built-in fault takes to reach full severity
LATEST_ONSET = 8  # a later onset is a cycle from 1 to this
OBSERVE_H = 96.0  # hours a fault run goes on after its onset
_HOUR_MS = 3_600_000


def _profile(kind: str) -> dict:
    return profile_loader.load(os.path.join(ROOT, "agent", "profiles", kind + ".yaml"))


def _generic_channel(profile: dict, seed: int) -> dict:
    """The channel a generic fault hits: one with an anomaly processor, by seed."""
    chans = [c for c in profile["channels"] if any(p["kind"] == "anomaly" for p in c["processors"])]
    return chans[seed % len(chans)]


def _sim(profile: dict, fault: str | None, onset: int, seed: int) -> ApplianceSim:
    model = profile_model.model(profile)
    effects: list = []
    sensors: list = []
    if fault in FAULTS:
        effects.append(Fault(fault, FAULTS[fault][1], onset, RAMP))
    elif fault is not None:
        ch = _generic_channel(profile, seed)
        span = ch["range"][1] - ch["range"][0]
        size = {"drift": DRIFT_PER_H * span, "step": STEP * span, "noise": NOISE * span, "dropout": DROPOUT}
        sensors.append(SensorFault(fault, fault, ch["id"], size.get(fault), None, onset, None, seed))
    return ApplianceSim(model, seed, effects, 0, sensors)


class SimulatedDevice:
    """The device's own processing of a simulated appliance, wired as Agent wires it (the
    channels' processors and sensor checks, the cycle model, one alert book), without the
    privacy gate and the uplink. tick(t_ms, emit) takes the readings due at t_ms (a tick a
    second), feeds them and returns how many it took."""

    def __init__(self, profile: dict, sim: ApplianceSim) -> None:
        self.sim = sim
        book = AlertBook()  # the device's: findings of one fault in several places are one alert
        self.channels = [ChannelRuntime(c, SimDriver(sim, c["id"]), profile, book) for c in profile["channels"]]
        spec = profile.get("cycle_model")
        self.model = CycleModelRuntime(spec, profile, book) if spec else None
        self.periods = [max(1, int(1000 / c["sample_hz"])) for c in profile["channels"]]

    def tick(self, t: int, emit: "Callable[[Event], None]") -> int:
        phase = self.sim.phase(t)
        taken = 0
        for i, ch in enumerate(self.channels):
            if t % self.periods[i] == 0:
                value, valid = ch.sample(t, phase, emit)
                if valid and self.model is not None:
                    self.model.sample(i, t, value, phase, emit)
                taken += 1
        return taken


def run(job: tuple) -> dict:
    """One simulated appliance: (kind, fault or None, onset cycle, seed, hours for a healthy
    run, hours a fault run goes on after its onset). Returns the alerts it raised and when the
    fault began."""
    kind, fault, onset, seed, healthy_h, observe_h = job
    t0 = time.perf_counter()
    profile = _profile(kind)
    sim = _sim(profile, fault, onset, seed)
    device = SimulatedDevice(profile, sim)
    events: list = []
    onset_ms = -1 if fault is not None else None
    end_ms = int(healthy_h * _HOUR_MS) if fault is None else None
    t = 0
    samples = 0
    while end_ms is None or t < end_ms:
        samples += device.tick(t, events.append)
        if onset_ms == -1 and sim.cycle >= onset:
            onset_ms = t
            end_ms = t + int(observe_h * _HOUR_MS)
        t += 1000
    # (t_ms, channel, state, detector, whether it goes upstream: a worse kept on the device does not)
    alerts = [(e.t_ms, e.channel, e.fields.get("state"), e.fields.get("detector") or e.kind, e.category != "")
              for e in events if e.kind in (ANOMALY, SENSOR_FAULT)]  # fmt: skip
    return {"kind": kind, "fault": fault, "onset": onset, "seed": seed, "onset_ms": onset_ms, "end_ms": t,
            "alerts": alerts, "samples": samples, "seconds": time.perf_counter() - t0}  # fmt: skip


def jobs(seeds: int, healthy_seeds: int, healthy_h: float, observe_h: float = OBSERVE_H,
         appliances: tuple = APPLIANCES, faults: tuple | None = None) -> list:  # fmt: skip
    """The runs: per appliance each fault (of `faults`, all when None) `seeds` times, every
    other one from install (onset at the first cycle), and `healthy_seeds` healthy runs."""
    out: list = []
    for kind in appliances:
        for fault in faults_of(kind) + list(GENERIC):
            if faults is not None and fault not in faults:
                continue
            for s in range(seeds):
                seed = 1000 + 17 * s + len(out)
                onset = 0 if s % 2 == 0 else 1 + seed % LATEST_ONSET
                out.append((kind, fault, onset, seed, 0.0, observe_h))
        for s in range(healthy_seeds):
            out.append((kind, None, 0, 500 + s, healthy_h, 0.0))
    return out


def figures(results: list, source: str = "") -> dict:
    """The benchmark's figures over all runs; source "per_channel" or "cycle_model" counts only
    the alerts of the channels' processors and sensor checks, or of the cycle model."""
    healthy_h = 0.0
    false_alerts = 0
    detected = []
    install = []
    hours = []
    per_episode = []
    messages = []
    by_fault: dict = {}
    for r in results:
        alerts = r["alerts"]
        if source:
            alerts = [a for a in alerts if (a[1] == CYCLE_MODEL) == (source == CYCLE_MODEL)]
        # Counting one source alone, its findings are its alerts (a joined one would have been raised).
        raised = [a for a in alerts if a[2] == RAISED or (source and a[2] == JOINED)]
        if r["fault"] is None:
            healthy_h += r["end_ms"] / _HOUR_MS
            false_alerts += len(raised)
            continue
        healthy_h += r["onset_ms"] / _HOUR_MS
        false_alerts += sum(1 for a in raised if a[0] < r["onset_ms"])
        after = [a for a in raised if a[0] >= r["onset_ms"]]
        found = bool(after)
        detected.append(found)
        if r["onset"] == 0:
            install.append(found)
        key = r["kind"] + ":" + r["fault"]
        row = by_fault.setdefault(key, {"runs": 0, "detected": 0, "hours": [], "alerts": []})
        row["runs"] += 1
        if found:
            row["detected"] += 1
            h = (after[0][0] - r["onset_ms"]) / _HOUR_MS
            hours.append(h)
            row["hours"].append(h)
            per_episode.append(len(after))
            row["alerts"].append(len(after))
            messages.append(sum(1 for a in alerts if a[0] >= r["onset_ms"] and a[4]))
    for row in by_fault.values():
        row["median_hours"] = statistics.median(row["hours"]) if row["hours"] else None
        row["alerts_per_episode"] = statistics.mean(row["alerts"]) if row["alerts"] else None
        del row["hours"], row["alerts"]
    return {
        "detected_share": sum(detected) / len(detected) if detected else None,
        "detected_share_from_install": sum(install) / len(install) if install else None,
        "median_hours_to_detect": statistics.median(hours) if hours else None,
        "false_alerts_per_1000h": false_alerts / healthy_h * 1000 if healthy_h else None,
        "alerts_per_episode": statistics.mean(per_episode) if per_episode else None,
        "messages_per_episode": statistics.mean(messages) if messages else None,
        "fault_runs": len(detected),
        "healthy_hours": healthy_h,
        "false_alerts": false_alerts,
        "by_fault": by_fault,
    }


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description="Appliance fault benchmark (detection, delay, false alerts).")
    parser.add_argument("--seeds", type=int, default=4, help="runs per fault (every other one from install)")
    parser.add_argument("--healthy-seeds", type=int, default=4, help="healthy runs per appliance")
    parser.add_argument("--healthy-hours", type=float, default=250.0, help="hours of each healthy run")
    parser.add_argument("--observe-h", type=float, default=OBSERVE_H, help="hours a fault run goes on after its onset")
    parser.add_argument("--appliances", default=",".join(APPLIANCES), help="comma-separated appliance kinds")
    parser.add_argument("--faults", help="comma-separated fault names (default: all that apply)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="2 seeds, 1 healthy run of 100 h per appliance")
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.healthy_seeds, args.healthy_hours = 2, 1, 100.0
    t0 = time.perf_counter()
    kinds = tuple(k for k in args.appliances.split(",") if k)
    unknown = [k for k in kinds if k not in APPLIANCES]
    if unknown:
        parser.error("unknown appliance %s; known: %s" % (", ".join(unknown), ", ".join(APPLIANCES)))
    chosen = tuple(f for f in args.faults.split(",") if f) if args.faults else None
    todo = jobs(args.seeds, args.healthy_seeds, args.healthy_hours, args.observe_h, kinds, chosen)
    if not any(j[1] is not None for j in todo):
        parser.error("no fault of %s applies to %s" % (args.faults, ", ".join(kinds)))
    # The longest runs first, so that the workers end together.
    todo.sort(key=lambda j: (j[0] != "washing_machine", j[1] is not None))
    if args.workers > 1:
        with multiprocessing.Pool(args.workers) as pool:
            results = pool.map(run, todo, chunksize=1)
    else:
        results = [run(j) for j in todo]
    out = figures(results)
    # The same runs, counting the per-channel detectors' alerts only and the cycle model's only.
    out["by_source"] = {}
    for source in ("per_channel", CYCLE_MODEL):
        part = figures(results, source)
        del part["by_fault"]
        out["by_source"][source] = part
    out["seconds"] = time.perf_counter() - t0
    out["settings"] = {"seeds": args.seeds, "healthy_seeds": args.healthy_seeds, "healthy_hours": args.healthy_hours,
                       "observe_h": args.observe_h, "latest_onset": LATEST_ONSET, "appliances": list(kinds),
                       "faults": list(chosen) if chosen else "all"}  # fmt: skip
    print("%-34s %5s %9s %9s %9s" % ("fault", "runs", "detected", "median h", "alerts"))
    for key, row in sorted(out["by_fault"].items()):
        med = "-" if row["median_hours"] is None else "%.1f" % row["median_hours"]
        ape = "-" if row["alerts_per_episode"] is None else "%.2f" % row["alerts_per_episode"]
        print("%-34s %5d %9d %9s %9s" % (key, row["runs"], row["detected"], med, ape))
    print("detected %.3f (from install %.3f), median %.1f h to detect, %.2f false alerts per 1000 h "
          "(%d in %.0f h), %.2f alerts per episode, %.1f s" % (
              out["detected_share"], out["detected_share_from_install"], out["median_hours_to_detect"] or -1,
              out["false_alerts_per_1000h"], out["false_alerts"], out["healthy_hours"], out["alerts_per_episode"] or -1,
              out["seconds"]))  # fmt: skip
    for source, part in out["by_source"].items():
        print("  %-12s alone: detected %.3f (from install %.3f), median %.1f h, %.2f false alerts per 1000 h" % (
            source, part["detected_share"] or 0, part["detected_share_from_install"] or 0,
            part["median_hours_to_detect"] if part["median_hours_to_detect"] is not None else -1,
            part["false_alerts_per_1000h"] or 0))  # fmt: skip
    report.emit(out, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
