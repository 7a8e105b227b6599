"""NAB benchmark: a Wichtel detector over the Numenta Anomaly Benchmark corpus.

Scores with bench/nabscore.py (NAB's published scoring, our implementation) for the
profiles standard, reward_low_FP and reward_low_FN, beside NAB's published scoreboard,
and measures the detector's cost: microseconds per sample on CPython, bytes of state
per channel (CPython and MicroPython), and microseconds per sample on MicroPython.

usage: python bench/nab.py [--detector NAME] [--json out.json] [--data DIR] [--no-micropython]
"""

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from agent.core.detectors import DETECTORS, SeriesScorer  # noqa: E402
from bench import nabdata, nabscore  # noqa: E402

# NAB README scoreboard, v1.0 corpus: (standard, reward_low_FP, reward_low_FN).
PUBLISHED = [
    ("ARTime", (74.9, 65.1, 80.4)),
    ("Numenta HTM", (70.5, 62.6, 75.2)),
    ("CAD OSE", (69.9, 67.0, 73.2)),
    ("Random Cut Forest", (51.7, 38.4, 59.7)),
]
PROFILE_NAMES = ("standard", "reward_low_FP", "reward_low_FN")
MP_FILE = "realKnownCause/machine_temperature_system_failure.csv"
MP_DETECTORS = 100


def deep_size(obj: object, seen: set | None = None) -> int:
    """Bytes reachable from obj on CPython (sys.getsizeof of everything, once)."""
    seen = seen if seen is not None else set()
    if id(obj) in seen or isinstance(obj, type):
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, (list, tuple, set)):
        size += sum(deep_size(v, seen) for v in obj)
    elif hasattr(obj, "__dict__"):
        size += deep_size(vars(obj), seen)
    return size


def run_detector(name: str, files: list) -> tuple:
    """Scores per file, and the detection time in seconds."""
    scores = []
    elapsed = 0.0
    for f in files:
        scorer = SeriesScorer(name)
        out = [0.0] * len(f.values)
        t0 = time.perf_counter()
        for i, (t, v) in enumerate(zip(f.t_ms, f.values, strict=True)):
            out[i] = scorer(t, v)
        elapsed += time.perf_counter() - t0
        scores.append(out)
    return scores, elapsed


def micropython_costs(name: str, data: nabdata.DataFile, cpython_scores: list) -> dict:
    """Heap per detector and time per sample on the MicroPython WebAssembly runtime, and
    whether its scores equal CPython's on one NAB file."""
    from tests import micropython

    with_values = os.path.join(ROOT, ".bench-mp")
    os.makedirs(with_values, exist_ok=True)
    try:
        with open(os.path.join(with_values, "series.json"), "w") as fh:
            json.dump({"t": data.t_ms, "v": data.values}, fh)
        code = """
import gc, json, time
from agent.core.detectors import DETECTORS, SeriesScorer
with open('/series/series.json') as f:
    d = json.load(f)
ts, vs = d['t'], d['v']
d = None
gc.collect()
before = gc.mem_alloc()
many = [DETECTORS[%(name)r]() for _ in range(%(n)d)]
gc.collect()
per = (gc.mem_alloc() - before) // %(n)d
many = None
s = SeriesScorer(%(name)r)
out = []
t0 = time.ticks_ms()
for i in range(len(vs)):
    out.append(s(ts[i], vs[i]))
ms = time.ticks_diff(time.ticks_ms(), t0)
print('@@' + json.dumps({'heap_bytes_per_detector': per, 'us_per_sample': ms * 1000 / len(vs), 'scores': out}))
""" % {"name": name, "n": MP_DETECTORS}
        out = micropython.run(code, micropython.core_mounts(**{"/series": with_values}), heap=4 * 1024 * 1024)
    finally:
        for leftover in os.listdir(with_values):
            os.remove(os.path.join(with_values, leftover))
        os.rmdir(with_values)
    result: dict = json.loads(out.split("@@", 1)[1])
    mp_scores = result.pop("scores")
    worst = max(abs(a - b) for a, b in zip(mp_scores, cpython_scores, strict=True))
    result["max_score_difference_vs_cpython"] = worst
    result["file"] = data.name
    return result


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score a Wichtel detector on the NAB corpus.")
    parser.add_argument("--detector", default="wichtel", choices=sorted(DETECTORS))
    parser.add_argument("--json", metavar="OUT", help="write per-file and total scores as JSON")
    parser.add_argument("--data", default=nabdata.DEFAULT_ROOT, help="NAB root (with data/ and labels/)")
    parser.add_argument("--no-micropython", action="store_true", help="skip the MicroPython cost figures")
    args = parser.parse_args(argv)

    t_start = time.perf_counter()
    files = nabdata.load(args.data)
    layouts = [nabscore.layout(f.name, len(f.values), f.windows) for f in files]
    scores, elapsed = run_detector(args.detector, files)
    rows = sum(len(f.values) for f in files)

    totals: dict = {}
    per_file: dict = {f.name: {} for f in files}
    for pname in PROFILE_NAMES:
        prof = nabscore.PROFILES[pname]
        threshold, raw = nabscore.optimise_threshold(layouts, scores, prof)
        null, perfect = nabscore.null_and_perfect(layouts, prof)
        totals[pname] = {
            "score": nabscore.normalised(raw, null, perfect),
            "threshold": threshold, "raw": raw, "null": null, "perfect": perfect,
        }  # fmt: skip
        for lay, sc in zip(layouts, scores, strict=True):
            per_file[lay.name][pname] = nabscore.file_score(lay, sc, threshold, prof)

    detector = SeriesScorer(args.detector).detector
    state_cpython = deep_size(detector)
    costs: dict = {
        "us_per_sample": elapsed / rows * 1e6,
        "state_bytes_per_channel": None,
        "state_bytes_cpython_deep_sizeof": state_cpython,
        "state_bytes_by_content": detector.state_bytes() if hasattr(detector, "state_bytes") else None,
    }
    if not args.no_micropython:
        names = [f.name for f in files]
        idx = names.index(MP_FILE) if MP_FILE in names else 0
        mp = micropython_costs(args.detector, files[idx], scores[idx])
        costs["micropython"] = mp
        costs["state_bytes_per_channel"] = mp["heap_bytes_per_detector"]
    else:
        costs["state_bytes_per_channel"] = state_cpython

    print("NAB v1.0 corpus: %d files, %d rows, %d windows; detector %r" % (
        len(files), rows, sum(len(lay.windows) for lay in layouts), args.detector))  # fmt: skip
    print("%-22s %9s %14s %14s" % ("detector", "standard", "reward_low_FP", "reward_low_FN"))
    ours = tuple(totals[p]["score"] for p in PROFILE_NAMES)
    print("%-22s %9.1f %14.1f %14.1f   (this run)" % (("Wichtel " + args.detector,) + ours))
    for name, vals in PUBLISHED:
        print("%-22s %9.1f %14.1f %14.1f   (published)" % ((name,) + vals))
    print("cost: %.2f us per sample on CPython; state %s bytes per channel%s" % (
        costs["us_per_sample"], costs["state_bytes_per_channel"],
        " (MicroPython heap)" if not args.no_micropython else " (CPython deep sizeof)"))  # fmt: skip
    if "micropython" in costs:
        mp = costs["micropython"]
        print("MicroPython (wasm): %.2f us per sample, %d heap bytes per detector, "
              "max score difference vs CPython %.2g" % (
            mp["us_per_sample"], mp["heap_bytes_per_detector"], mp["max_score_difference_vs_cpython"]))  # fmt: skip
    print(
        "CPython deep size of one detector: %d bytes; whole run %.1f s" % (state_cpython, time.perf_counter() - t_start)
    )

    result = {
        "detector": args.detector,
        "scores": {p: totals[p]["score"] for p in PROFILE_NAMES},
        "totals": totals,
        "files": per_file,
        "published": {name: dict(zip(PROFILE_NAMES, vals, strict=True)) for name, vals in PUBLISHED},
        "rows": rows,
        **costs,
    }
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1, sort_keys=True)
    print(json.dumps({k: result[k] for k in ("detector", "scores", "us_per_sample", "state_bytes_per_channel")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
