"""Benchmark: the board's runtime (firmware/main.py) on the MicroPython unix port with a fixed
heap (-X heapsize), given the emulated board modules (hil_tests/emulated/): what it takes.

Figures (bytes of live heap, after a collection): imports_bytes (main.py and everything the
running board imports: agent core, uplink, page, Wi-Fi, NTP, watchdog; the emulated modules
apart), running_peak_bytes (sampled every 100 ms while the washer's agent runs on its
simulator with its TLS link to a local Mosquitto and its page, which this benchmark signs in
to and reads meanwhile), onboarding_peak_bytes (the setup page with no credentials stored,
its form read and a code checked), min_heap_bytes_day (the smallest -X heapsize with which a
simulated day of the running board completes, by bench/micropython.py's smallest_heap). The
modules are .mpy (tools/build_mpy.py, the page's templates compiled, microdot too) unless
--source.

usage: python bench/firmware_memory.py [--json] [--source] [--no-min-heap] [--seconds S]
"""

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from agent import setup_code  # noqa: E402
from bench.micropython import HEAP_LOW, smallest_heap  # noqa: E402
from bench.micropython_uplink import write_bundle  # noqa: E402
from firmware.wifi_credentials import CredentialStore  # noqa: E402
from provisioning.local_broker import Broker, free_port  # noqa: E402
from tests import micropython_unix, timeouts  # noqa: E402
from tools import build_mpy  # noqa: E402

_MARK = "@@FIRMWARE@@"
CODE = "K7M2P-9QXR4"
MEASURE_HEAP = 1024 * 1024
RUN_S = 8  # real seconds of a measured run
DAY_SPEED = 14_400  # a simulated day in 6 real seconds
CPU_S = 120

SCRIPT = (
    """
import gc, sys, json, time, asyncio
cfg = json.loads(open(sys.argv[1]).read())
gc.collect()
base = gc.mem_alloc()
from hil_tests.emulated import board, network, ntptime
gc.collect()
emulated = gc.mem_alloc() - base
from firmware import main, board_config, timesync, watchdog, wifi, recovery, wifi_credentials, flash_store
from agent.local_page import board as page_board
from agent.core import uplink, pipeline, outbox, consent, clock
if cfg["onboarding"]:
    from firmware import onboarding
gc.collect()
imports = gc.mem_alloc() - base - emulated
network.AIR.networks = {"HomeNet": "correct horse battery"}
peak = [0]

async def watch():
    while True:
        gc.collect()
        peak[0] = max(peak[0], gc.mem_alloc())
        await asyncio.sleep_ms(100)

async def both(env):
    task = asyncio.create_task(watch()) if cfg["measure"] else None
    try:
        return await main.main(env)
    finally:
        if task:
            task.cancel()

env = main.BoardEnv(board, network, ntptime, root=cfg["root"], page_port=cfg["port"], seconds=cfg["seconds"],
                    speed=cfg["speed"], report=lambda text: print("log: " + text))
try:
    result = asyncio.run(both(env))
except board.Reset:
    result = {"mode": "reset"}
gc.collect()
print(%r + json.dumps({"imports_bytes": imports, "emulated_bytes": emulated, "peak_bytes": peak[0],
                       "after_bytes": gc.mem_alloc(), "mode": result["mode"], "connects": result.get("connects"),
                       "made": result.get("made"), "page": result.get("page")}))
"""
    % _MARK
)


class Setup:
    """The module path (.mpy build or sources), a Mosquitto, a board directory with the bundle."""

    def __init__(self, tmp: str, source: bool) -> None:
        site = sysconfig.get_paths()["purelib"]
        self.tmp = tmp
        if source:
            self.path: tuple = (ROOT, site)
        else:
            out = os.path.join(tmp, "mpy")
            build_mpy.build(out)
            build_mpy.build_page(out)
            build_mpy.build(out, ("firmware",))
            microdot = os.path.join(site, "microdot")
            for name in sorted(os.listdir(microdot)):
                if name.endswith(".py"):
                    os.makedirs(os.path.join(out, "microdot"), exist_ok=True)
                    build_mpy._compile(build_mpy.mpy_cross(), "microdot/" + name, os.path.join(microdot, name),
                                       os.path.join(out, "microdot", name[:-3] + ".mpy"))  # fmt: skip
            self.path = (out, ROOT, site)
        os.makedirs(os.path.join(tmp, "broker"))
        self.broker = Broker(os.path.join(tmp, "broker"))
        self.broker.start()
        self.root = os.path.join(tmp, "board")
        write_bundle(self.root, self.broker, self.broker.port)
        setup_code.write_record(self.root, setup_code.hash_code(CODE))
        self.port = free_port()

    def run(self, heap: int, seconds: float, speed: float, measure: bool, onboarding: bool = False,
            visit: bool = False) -> dict:  # fmt: skip
        """One run of main on the unix port; MicroPythonUnixError (its output) if it fails."""
        store = CredentialStore(self.root)
        if onboarding:
            store.clear()
        else:
            store.save("HomeNet", "correct horse battery")
        cfg = os.path.join(self.tmp, "cfg.json")
        with open(cfg, "w") as f:
            json.dump({"root": self.root, "port": self.port, "seconds": seconds, "speed": speed, "measure": measure,
                       "onboarding": onboarding}, f)  # fmt: skip
        script = os.path.join(self.tmp, "bench_board.py")
        with open(script, "w") as f:
            f.write(SCRIPT)
        env = dict(os.environ, MICROPYPATH=os.pathsep.join((".frozen", *self.path)))
        out_path = os.path.join(self.tmp, "board.out")
        with open(out_path, "w") as out:
            proc = subprocess.Popen([micropython_unix.interpreter(), "-X", "heapsize=%d" % heap, script, cfg],
                                    stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)  # fmt: skip
        timeouts.limit_cpu(proc.pid, CPU_S)
        try:
            if visit:
                _visit(self.port, onboarding, proc)
            proc.wait(timeouts.wall_s(CPU_S))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        with open(out_path) as f:
            text = f.read()
        if proc.returncode != 0 or _MARK not in text:
            raise micropython_unix.MicroPythonUnixError("the board failed (exit %s):\n%s" % (proc.returncode,
                                                                                            text[-3000:]))  # fmt: skip
        result: dict = json.loads(text.split(_MARK, 1)[1].splitlines()[0])
        return result

    def close(self) -> None:
        self.broker.stop()


def _request(port: int, method: str, path: str, form: dict | None = None, cookie: str = "") -> tuple:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if form is not None else {}
    if cookie:
        headers["Cookie"] = cookie
    try:
        conn.request(method, path, body=urllib.parse.urlencode(form) if form is not None else None, headers=headers)
        res = conn.getresponse()
        return res.status, res.getheader("Set-Cookie") or "", res.read().decode()
    finally:
        conn.close()


def _visit(port: int, onboarding: bool, proc: subprocess.Popen) -> None:
    """What a user does on the page while the board runs: sign in and read the overview and
    privacy pages (running), or read the form and send a wrong code (onboarding)."""
    form_path = "/" if onboarding else "/login"
    deadline = time.monotonic() + 30
    while True:
        try:
            _, cookie, body = _request(port, "GET", form_path)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                return  # the run's own output says why
            time.sleep(0.1)
    nonce = re.search(r'name="nonce" value="([^"]+)"', body)
    fields = {"nonce": nonce.group(1) if nonce else "", "code": "AAAAA-BBBBB" if onboarding else CODE}
    if onboarding:
        fields.update({"ssid": "HomeNet", "password": "correct horse battery"})
    _, session, _ = _request(port, "POST", form_path, fields, cookie.split(";")[0])
    if not onboarding and session:
        for path in ("/", "/privacy", "/data", "/device"):
            _request(port, "GET", path, cookie=session.split(";")[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="end with the figures as one JSON line")
    parser.add_argument("--source", action="store_true", help="import the sources instead of .mpy modules")
    parser.add_argument("--no-min-heap", action="store_true", help="leave out the smallest heap (a dozen runs)")
    parser.add_argument("--seconds", type=float, default=RUN_S, help="real seconds of the measured runs (default 8)")
    args = parser.parse_args()
    missing = micropython_unix.available()
    if missing:
        print(missing, file=sys.stderr)
        return 1
    results: dict = {"modules": "source" if args.source else "mpy"}
    with tempfile.TemporaryDirectory() as tmp:
        setup = Setup(tmp, args.source)
        try:
            running = setup.run(MEASURE_HEAP, args.seconds, DAY_SPEED, True, visit=True)
            onboarding = setup.run(MEASURE_HEAP, args.seconds / 2, 1, True, onboarding=True, visit=True)
            results.update({"imports_bytes": running["imports_bytes"], "running_peak_bytes": running["peak_bytes"],
                            "running_connects": running["connects"], "page_served": running["page"]["served"],
                            "onboarding_imports_bytes": onboarding["imports_bytes"],
                            "onboarding_peak_bytes": onboarding["peak_bytes"]})  # fmt: skip
            if not args.no_min_heap:

                def completes(heap: int) -> bool:
                    try:
                        day = setup.run(heap, 86_400 / DAY_SPEED + 0.5, DAY_SPEED, False)
                    except micropython_unix.MicroPythonUnixError as e:
                        if "MemoryError" not in str(e) and "memory allocation failed" not in str(e):
                            raise
                        return False
                    return bool(day["connects"])

                hi, found = smallest_heap(completes, running["peak_bytes"] or HEAP_LOW)
                results.update({"min_heap_bytes_day": hi, "min_heap_settled_from": found})
        finally:
            setup.close()
    kb = 1024
    print("MicroPython unix port (64-bit), fixed heap; %s modules; firmware/main.py with emulated board modules"
          % results["modules"])  # fmt: skip
    print("  imports (running board)        %6.1f KB" % (results["imports_bytes"] / kb))
    print("  peak live, running with page   %6.1f KB   (TLS link up %d times, %d page requests served)"
          % (results["running_peak_bytes"] / kb, results["running_connects"], results["page_served"]))  # fmt: skip
    print("  peak live, onboarding page     %6.1f KB" % (results["onboarding_peak_bytes"] / kb))
    if "min_heap_bytes_day" in results:
        print("  smallest heap, a simulated day %6.1f KB   (bisection alone found %.1f KB)"
              % (results["min_heap_bytes_day"] / kb, results["min_heap_settled_from"] / kb))  # fmt: skip
    if args.json:
        print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
