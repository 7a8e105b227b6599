"""Records the golden trace (hil_tests/golden/trace.csv) and the messages a device must make
from it (hil_tests/golden/expected_events.json). Run by hand when the format changes, and
read the difference before committing it: the test holds every target to these files.

    python -m hil_tests.record_golden [--trace] [--expected]

The trace: the washing machine simulator with a clogged drain pump from its first cycle
(`wichtel simulate --fault pump_clog --fault-onset 0 --fault-ramp 1`), hours 5 to 7.5 (the
first cycle and the idle time around it), thinned to a row a minute in active phases and
every ten minutes at idle (each row holds every channel's latest value; the device reads
the latest row at or before each sample time), with two readings a failing sensor gives
(motor current 40 A, heater -60 degrees: out of range).
"""

import argparse
import csv
import json
import os
import sys
import tempfile

from agent import host, profile_loader
from hil_tests import scenarios
from hil_tests.targets import SimTarget

FROM_MS, TO_MS = 18_000_000, 27_000_000
OUT_OF_RANGE = {1_800_000: ("motor_current", "40.0"), 3_600_000: ("heater_temp", "-60.0")}


def record_trace(path: str) -> int:
    profile = profile_loader.load(profile_loader.example("washing_machine"))
    with tempfile.TemporaryDirectory() as tmp:
        full = os.path.join(tmp, "full.csv")
        drivers, phases = host.simulated(profile, 1, ["pump_clog"], 0, 1)
        host.record(profile, drivers, phases, TO_MS, full)
        with open(full, newline="") as f:
            rows = list(csv.reader(f))
    head, body = rows[0], rows[1:]
    latest = [""] * (len(head) - 2)
    out = [head]
    before = ""
    for row in body:
        t = int(row[0])
        for j, cell in enumerate(row[2:]):
            latest[j] = cell or latest[j]
        changed, before = row[1] != before, row[1]
        if t < FROM_MS:
            continue
        if changed or t == FROM_MS or t % (60_000 if row[1] != "idle" else 600_000) == 0:
            cells = list(latest)
            if t - FROM_MS in OUT_OF_RANGE:
                channel, value = OUT_OF_RANGE[t - FROM_MS]
                cells[head.index(channel) - 2] = value
            out.append([str(t - FROM_MS), row[1], *cells])
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(out)
    return len(out) - 1


def record_expected(path: str) -> int:
    """The messages of the sim target for the golden trace, as the test compares them."""
    from hil_tests.testbed import Testbed
    from provisioning.local_broker import Broker

    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(tmp)
        broker.start()
        try:
            bed = Testbed(SimTarget(), broker, os.path.join(tmp, "work"))
            try:
                result = bed.start("--trace", scenarios.GOLDEN_TRACE, "--drain-s", "30").result()
                got = scenarios.device_events(bed.wait_for(scenarios._ids_complete(result["made"])))
            finally:
                bed.close()
        finally:
            broker.stop()
    with open(path, "w", encoding="utf-8") as f:
        json.dump(got, f, indent=1, sort_keys=True)
        f.write("\n")
    return len(got)


def main(argv: list) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trace", action="store_true", help="record the trace anew")
    parser.add_argument("--expected", action="store_true", help="record the expected messages anew")
    args = parser.parse_args(argv)
    if args.trace:
        print("%s: %d rows" % (scenarios.GOLDEN_TRACE, record_trace(scenarios.GOLDEN_TRACE)))
    if args.expected:
        print("%s: %d messages" % (scenarios.GOLDEN_EXPECTED, record_expected(scenarios.GOLDEN_EXPECTED)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
