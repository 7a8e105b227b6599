"""Writes agent/local_page/reorder_figures.py from a consumables benchmark run: per
consumable and offered reminder setting, the share of household-years that ran out and the
days of supply left when a delivery arrived, which the local page shows beside the choice.

usage: python bench/consumables.py --json out.json
       python tools/reorder_figures.py out.json [--out agent/local_page/reorder_figures.py]
"""

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "agent", "local_page", "reorder_figures.py")
HEADER = '''"""What each reminder setting trades, measured per consumable by bench/consumables.py:
setting's risk -> (share of household-years that ran out, days of supply left when a delivery
arrived). Written by tools/reorder_figures.py; the consumables page shows it beside the choice.
Measured: %s.
"""

HOUSEHOLDS = %d  # simulated household-years per consumable
FIGURES = %s
'''


def figures(results: dict) -> dict:
    """consumable -> {"%g" % risk: (stockout_share, stock_left_days)} from the bench's JSON."""
    out = {}
    for name, r in sorted(results.items()):
        if name == "run":
            continue  # the run's own figures (households, seeds, time)
        settings = r.get("settings")
        if not isinstance(settings, dict):
            raise SystemExit("%s: no per-setting figures (`settings`) in the benchmark's output" % name)
        out[name] = {"%g" % s["risk"]: (round(s["stockout_share"], 4), round(s["stock_left_days"], 1))
                     for s in settings.values()}  # fmt: skip
    return out


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bench_json")
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--date", default="", help="when the benchmark ran, for the header")
    args = parser.parse_args(argv)
    with open(args.bench_json) as fh:
        results = json.load(fh)
    households = results.get("run", {}).get("households", 0)
    table = figures(results)
    lines = ["{"]
    for name, row in table.items():
        cells = ", ".join('"%s": (%r, %r)' % (k, v[0], v[1]) for k, v in sorted(row.items()))
        lines.append('    "%s": {%s},' % (name, cells))
    lines.append("}")
    with open(args.out, "w") as fh:
        fh.write(HEADER % (args.date or "one run", households, "\n".join(lines)))
    print("%s: %d consumables" % (args.out, len(table)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
