"""Provisioning benchmark: devices per second in a factory batch with host-generated keys.

A fresh PKI and one batch (default 1,000 devices) into a temp directory on the local
disk, as `wichtel provision batch` runs it: key pair, certificate, setup code and its
PBKDF2 hash (the default iterations), both bundle layouts written, verified, synced and
recorded. Target: >= 50 devices/s. The machine may be shared: the load average at the
start is reported beside the figure.

usage: python bench/provisioning.py [--count N] [--jobs N] [--json out.json]
"""

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from agent import profile_loader, setup_code  # noqa: E402
from bench import report  # noqa: E402
from provisioning import authority, batch, serials  # noqa: E402

TARGET = 50.0


def main() -> None:
    parser = argparse.ArgumentParser(description="Devices provisioned per second in a batch.")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args()
    profile = profile_loader.compile_json(profile_loader.load(profile_loader.example("washing_machine")))
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=os.environ.get("WICHTEL_BENCH_DIR")) as tmp:
        authority.init(os.path.join(tmp, "pki"), "Bench Appliances", None)
        auth = authority.open_authority(os.path.join(tmp, "pki"), None)
        wanted = serials.counted("B", 1, args.count)
        t0 = time.perf_counter()
        summary = batch.run(auth, profile, wanted, os.path.join(tmp, "out"), "mqtt.example.net", 8883, jobs=args.jobs)
        wall = time.perf_counter() - t0
    rate = args.count / wall
    print("%d devices in %.1f s: %.1f devices/s (target >= %.0f) with %d jobs, PBKDF2 %d iterations; load %.1f on "
          "%d CPUs at the start" % (args.count, wall, rate, TARGET, args.jobs, setup_code.DEFAULT_ITERATIONS, load,
                                    os.cpu_count() or 1))  # fmt: skip
    report.emit({"devices_per_s": round(rate, 1), "devices": args.count, "seconds": round(wall, 2),
                 "jobs": args.jobs, "pbkdf2_iterations": setup_code.DEFAULT_ITERATIONS, "target_devices_per_s": TARGET,
                 "load_avg_1m_at_start": round(load, 2), "cpus": os.cpu_count() or 1,
                 "batch_new": summary.new}, args.json)  # fmt: skip


if __name__ == "__main__":
    main()
