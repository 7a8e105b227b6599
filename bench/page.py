"""Benchmark: the local page's rendering: time per page on CPython and on the MicroPython
unix port, and the heap the page's views take there (import, one render of the overview).
On the unix port twice: from the sources (templates compiled at import) and from the
board's build (tools/build_mpy.py --page: .mpy modules, templates compiled ahead of time).

The same script runs on both runtimes: the washer agent with consent receipts, alerts and
a full sent log, every page rendered ROUNDS times. Memory (unix port, fixed heap):
views_import_bytes (live after importing the views and their templates, over the agent
already built), overview_alloc_bytes (everything one render of the overview allocates,
the collector held off: an upper bound of what it needs at once), overview_bytes (its
length). The machine is shared: compare figures of one run, not across runs.
usage: python bench/page.py [--rounds N] [--json OUT] [--no-micropython] [--no-build]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from agent import profile_loader  # noqa: E402
from tests import micropython_unix  # noqa: E402
from tools import build_mpy  # noqa: E402

HEAP = 768 * 1024  # the page test's heap (tests/test_local_page_micropython.py), for the board's build
# From the sources the interpreter compiles each module at import (blocks of 20 KB and more,
# which a fragmented 768 KB heap may lack); tests/test_local_page_templates.py gives it 1 MB too.
SOURCE_HEAP = 1024 * 1024
PAGES = ("login", "overview", "privacy", "data", "consumables", "device", "erase", "error")

# Runs unchanged on both runtimes. argv: profile path, rounds.
WORKLOAD = """
import gc, json, sys, time
from agent.core import profile as core_profile
from agent.core.clock import ManualClock
from agent.core.compat import IS_MICROPYTHON, mem_alloc
from agent.core.consent import ConsentLedger
from agent.core.events import ANOMALY, Event
from agent.core.pipeline import Agent

def now():
    return time.ticks_us() / 1e6 if IS_MICROPYTHON else time.perf_counter()

path, rounds = sys.argv[1], int(sys.argv[2])
with open(path, "rb") as f:
    prof = core_profile.from_json(f.read())
prof["cycle_model"] = None  # the pages show nothing of it (bench/micropython.py measures its heap)
class Still:
    def read(self, t):
        return 0.0

drivers = {ch["id"]: Still() for ch in prof["channels"]}
agent = Agent(prof, "bench-1", drivers, ManualClock(), None, None, ConsentLedger(prof["data_categories"], "bench-1"))
for i, cat in enumerate(c for c in prof["data_categories"] if not c["essential"]):
    for on in (True, False, True):
        agent.rights.apply_consent(agent.rights.consent_receipt(cat["id"], on, 1000 * i, 1700000000 + i))
# Recent alerts and a sent log, as a device brings them back from its stored state.
saved = agent.save()
saved["events"] = [Event(ANOMALY, "maintenance", "drain_pump", 60000 * i, "drain",
                         {"explanation_en": "The pump <took> longer", "explanation_de": "Die Pumpe & mehr"}).as_dict()
                   for i in range(20)]
saved["sent"] = [{"t_ms": 1000 * i, "id": i, "category": "maintenance", "topic": "t/%d" % i, "size": 40,
                  "content": '{"n": %d, "text": "<b>&</b>"}' % i, "status": "confirmed"} for i in range(64)]
agent.restore(saved)
del saved
gc.collect()
before = mem_alloc()
from agent.local_page import views
gc.collect()
views_import = mem_alloc() - before
en = views.View("en", "csrf-token-x", "/")
de = views.View("de", "csrf-token-x", "/privacy", "Gespeichert <ok>")
pages = {
    "login": lambda v: views.login(v, "nonce-1", "Falscher Code"),
    "overview": lambda v: views.overview(agent, v),
    "privacy": lambda v: views.privacy(agent, v),
    "data": lambda v: views.my_data(agent, v, not IS_MICROPYTHON),
    "consumables": lambda v: views.consumables(agent, v),
    "device": lambda v: views.device(agent, v),
    "erase": lambda v: views.erase_confirm(v),
    "error": lambda v: views.error(v, 404, "Nicht gefunden", True),
}
figures = {}
for name in ("login", "overview", "privacy", "data", "consumables", "device", "erase", "error"):
    render = pages[name]
    render(en)
    t0 = now()
    for i in range(rounds):
        render(en if i % 2 else de)
    figures[name + "_ms"] = (now() - t0) * 1000 / rounds
gc.collect()
gc.disable()
start = gc.mem_alloc() if IS_MICROPYTHON else 0
html = pages["overview"](en)
alloc = gc.mem_alloc() - start if IS_MICROPYTHON else 0
gc.enable()
figures["overview_bytes"] = len(html)
if IS_MICROPYTHON:
    figures["views_import_bytes"] = views_import
    figures["overview_alloc_bytes"] = alloc
print("@@PAGE@@" + json.dumps(figures))
"""


def _run(argv: list, env: dict) -> dict:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, cwd=ROOT, env=env)
    if proc.returncode != 0:
        raise RuntimeError("the page benchmark failed:\n" + proc.stdout[-3000:] + proc.stderr[-3000:])
    line = next(x for x in proc.stdout.splitlines() if x.startswith("@@PAGE@@"))
    return dict(json.loads(line[len("@@PAGE@@") :]))


def measure(rounds: int, micropython: bool, built: bool = True) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        prof = os.path.join(tmp, "washing_machine.json")
        with open(prof, "wb") as f:
            f.write(profile_loader.compile_json(profile_loader.load(profile_loader.example("washing_machine"))))
        script = os.path.join(tmp, "page_bench.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(WORKLOAD)
        env = dict(os.environ, PYTHONPATH=ROOT)
        out = {"cpython": _run([sys.executable, script, prof, str(rounds)], env)}
        if micropython:
            env["MICROPYPATH"] = os.pathsep.join((".frozen", ROOT))
            exe = micropython_unix.interpreter()
            mp_argv = [exe, "-X", "heapsize=%d" % SOURCE_HEAP, script, prof, str(max(1, rounds // 4))]
            out["micropython"] = _run(mp_argv, env)
            mp_argv[2] = "heapsize=%d" % HEAP
            if built:
                build = os.path.join(tmp, "mpy")
                build_mpy.build(build)
                build_mpy.build_page(build)
                env["MICROPYPATH"] = os.pathsep.join((".frozen", build))
                out["micropython_mpy"] = _run(mp_argv, env)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--rounds", type=int, default=400, help="renders of each page on CPython (a quarter on MicroPython)"
    )
    parser.add_argument("--json", metavar="OUT", help="write the figures as JSON to OUT")
    parser.add_argument("--no-micropython", action="store_true", help="CPython only")
    parser.add_argument("--no-build", action="store_true", help="the unix port from the sources only")
    args = parser.parse_args()
    figures = measure(args.rounds, not args.no_micropython, not args.no_build)
    for runtime, values in figures.items():
        print(runtime)
        for name in PAGES:
            print("  %-12s %8.3f ms per render" % (name, values[name + "_ms"]))
        for key in ("overview_bytes", "views_import_bytes", "overview_alloc_bytes"):
            if key in values:
                print("  %-22s %8d" % (key, values[key]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=1, sort_keys=True)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
