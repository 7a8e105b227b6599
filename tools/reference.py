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

from agent.core.errors import SensorError  # noqa: E402
from agent.core.pipeline import ChannelRuntime  # noqa: E402
from agent.core.processors import AnomalyProcessor, CycleFeatureProcessor  # noqa: E402
from agent.profile_loader import load  # noqa: E402
from agent.sim import profile_model  # noqa: E402
from fleet import reference  # noqa: E402

_HOUR_MS = 3_600_000


class _SimDriver:
    def __init__(self, sim: object, channel: str) -> None:
        self.sim = sim
        self.channel = channel

    def read(self, t_ms: int) -> float:
        return self.sim.read(self.channel, t_ms)  # type: ignore[attr-defined,no-any-return]


def unit_summaries(profile: dict, seed: int, hours: float) -> dict:
    """One healthy simulated unit's summaries: key channel/processor/phase -> [median,
    spread, count] of its cycle features and of its readings in each phase."""
    sim = profile_model.build(profile, seed, [])
    chans = [ChannelRuntime(c, _SimDriver(sim, c["id"]), profile) for c in profile["channels"]]
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
            for j, (proc, _) in enumerate(ch.procs):
                if isinstance(proc, AnomalyProcessor):
                    values.setdefault("%s/%d/%s" % (ch.id, j, phase), []).append(value)
                elif isinstance(proc, CycleFeatureProcessor) and proc.cycles != cycles.get((i, j), 0):
                    cycles[(i, j)] = proc.cycles
                    values.setdefault("%s/%d/%s" % (ch.id, j, proc.phase), []).append(proc.last_value)
    return {key: reference.summary(v) for key, v in values.items() if len(v) >= 5}


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile")
    parser.add_argument("--units", type=int, default=8, help="simulated healthy units (seeds 101, 102, ...)")
    parser.add_argument("--hours", type=float, default=120, help="simulated hours per unit")
    parser.add_argument("--json", metavar="OUT", help="write the combined reference as JSON")
    args = parser.parse_args(argv)
    profile = load(args.profile)
    units = [unit_summaries(profile, 101 + k, args.hours) for k in range(args.units)]
    ref = reference.combine(units)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(ref, fh, indent=1, sort_keys=True)
    for ch in profile["channels"]:
        for j, proc in enumerate(ch["processors"]):
            prefix = "%s/%d/" % (ch["id"], j)
            mine = {k[len(prefix) :]: v for k, v in ref.items() if k.startswith(prefix)}
            if mine:
                pairs = ", ".join("%s: [%.4g, %.4g]" % (p, v[0], v[1]) for p, v in mine.items())
                print("%s processors[%d] (%s): reference: {%s}" % (ch["id"], j, proc["kind"], pairs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
