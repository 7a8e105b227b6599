"""Measures a profile's reference on simulated healthy units, as the fleet would from real
ones (fleet/reference.py): each unit's summaries, combined, printed as each processor's
`reference` for the profile (YAML), or written into a copy of it.

usage: python tools/reference.py PROFILE.yaml [--units 8] [--hours 120] [--json OUT]
"""

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from agent.core.cycle_model import CycleModelRuntime  # noqa: E402
from agent.core.errors import SensorError  # noqa: E402
from agent.core.pipeline import ChannelRuntime  # noqa: E402
from agent.core.processors import AnomalyProcessor, CycleFeatureProcessor  # noqa: E402
from agent.profile_loader import load  # noqa: E402
from agent.sim import profile_model  # noqa: E402
from agent.sim.engine import SimDriver  # noqa: E402
from fleet import reference  # noqa: E402

_HOUR_MS = 3_600_000


def unit_summaries(profile: dict, seed: int, hours: float) -> tuple:
    """One healthy simulated unit's summaries: key channel/processor/phase -> [median,
    spread, count] of its cycle features and of its readings in each phase; and the moments
    of its cycle model's feature vectors (None for a profile without a cycle model)."""
    sim = profile_model.build(profile, seed, [])
    model = None
    vectors: list = []
    if profile.get("cycle_model") is not None:
        model = CycleModelRuntime(profile["cycle_model"], profile).features
    chans = [ChannelRuntime(c, SimDriver(sim, c["id"]), profile) for c in profile["channels"]]
    periods = [max(1, int(1000 / c["sample_hz"])) for c in profile["channels"]]
    values: dict = {}
    cycles = {}
    for t in range(0, int(hours * _HOUR_MS), 1000):
        phase = sim.phase(t)
        for i, ch in enumerate(chans):
            if t % periods[i]:
                continue
            try:
                value = sim.read(ch.id, t)
            except SensorError:
                continue
            ch.process(t, value, phase, lambda event: None)
            if model is not None and ch.lo <= value <= ch.hi:
                vec = model.sample(i, t, value, phase)
                if vec is not None:
                    vectors.append(list(vec))
            for j, (proc, _) in enumerate(ch.procs):
                if isinstance(proc, AnomalyProcessor):
                    values.setdefault("%s/%d/%s" % (ch.id, j, phase), []).append(value)
                elif isinstance(proc, CycleFeatureProcessor) and proc.cycles != cycles.get((i, j), 0):
                    cycles[(i, j)] = proc.cycles
                    values.setdefault("%s/%d/%s" % (ch.id, j, proc.phase), []).append(proc.last_value)
    summaries = {key: reference.summary(v) for key, v in values.items() if len(v) >= 5}
    return summaries, (reference.moments(vectors) if len(vectors) >= 2 else None)


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile")
    parser.add_argument("--units", type=int, default=8, help="simulated healthy units (seeds 101, 102, ...)")
    parser.add_argument("--hours", type=float, default=120, help="simulated hours per unit")
    parser.add_argument("--json", metavar="OUT", help="write the combined reference as JSON")
    args = parser.parse_args(argv)
    profile = load(args.profile)
    units = [unit_summaries(profile, 101 + k, args.hours) for k in range(args.units)]
    ref = reference.combine([u[0] for u in units])
    cycle = None
    if all(u[1] is not None for u in units):
        cycle = reference.combine_moments([u[1] for u in units])
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"processors": ref, "cycle_model": cycle}, fh, indent=1, sort_keys=True)
    for ch in profile["channels"]:
        for j, proc in enumerate(ch["processors"]):
            prefix = "%s/%d/" % (ch["id"], j)
            mine = {k[len(prefix) :]: v for k, v in ref.items() if k.startswith(prefix)}
            if mine:
                pairs = ", ".join("%s: [%.4g, %.4g]" % (p, v[0], v[1]) for p, v in mine.items())
                print("%s processors[%d] (%s): reference: {%s}" % (ch["id"], j, proc["kind"], pairs))
    if cycle is not None:
        print("cycle_model: reference: {mean: %s, sd: %s, corr: %s}" % tuple(
            "[" + ", ".join("%.4g" % x for x in cycle[k]) + "]" for k in ("mean", "sd", "corr")))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
