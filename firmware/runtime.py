"""The board runtime: a device's bundle files -> TLS context, portable uplink and agent, run.

A platform adapter around the unchanged agent/core, nothing more: it reads the MicroPython
layout of a bundle (bundle.json, profile.json, ca.pem, device.crt, device.key) through
board_config.py, and runs the agent with simulated sensors for a given time (a board runs
main.py, which builds the same parts). The same file runs on the MicroPython unix port and on CPython:

    micropython -X heapsize=512K firmware/runtime.py --bundle DIR [--seconds S] [--speed X]
        [--receipts-every-ms MS] [--burst N] [--drain-s S] [--outbox N] [--data-dir DIR] [--keepalive S]
        [--trace FILE] [--consent all|none|CAT+CAT] [--clock-jumps AT:DELTA,...] [--board pi|esp32]

--trace, --consent and --clock-jumps are the hooks of the hardware-in-the-loop suite
(hil_tests/): sensors and phases from a recorded trace (agent/sim/trace.py) on a clock
that runs as fast as the device computes, so every runtime makes the same messages
(--speed 0 runs the simulator so, for --seconds of appliance time);
which categories the user agrees to at this start (consent lives in the heap here: a
restart starts with none but these); jumps put into the device's clock.

Its last line is RESULT_MARK and a JSON object (what was made, sent, left, the link's history,
the heap on MicroPython); lines before it are what the agent and the uplink said.
"""

import asyncio
import json
import sys

from agent.core import limits
from agent.core.clock import ManualClock, ScaledClock
from agent.core.compat import IS_MICROPYTHON, const, mem_alloc, sleep_ms, ticks_diff, ticks_ms
from agent.core.consent import ConsentLedger
from agent.core.errors import ConfigError, OutboxFullError
from agent.core.events import ANOMALY, Event
from agent.core.outbox import Outbox
from agent.core.pipeline import Agent
from agent.core.uplink import PortableUplink
from agent.sim.engine import SimDriver
from agent.sim.profile_model import build
from firmware.board_config import read_bundle, read_profile, tls_context_factory
from firmware.flash_store import FlashStore

RESULT_MARK = "WICHTEL-RESULT "
_HEAP_SAMPLE_MS = const(500)  # how often the live heap is looked at (each look is a collection)

GC_THRESHOLD = const(16 * 1024)
MAX_CLOCK_JUMPS = const(8)  # --clock-jumps: a test's handful


def clock_jumps(spec: str) -> list:
    """[(at_ms, delta_ms), ...] from "AT:DELTA,AT:DELTA" (appliance milliseconds, delta
    may be negative), in time order; ConfigError naming the part that is not one."""
    jumps = []
    for part in spec.split(",") if spec else ():
        at, _, delta = part.partition(":")
        try:
            jumps.append((int(at), int(delta)))
        except ValueError as e:
            raise ConfigError("--clock-jumps %r: expected AT:DELTA (whole milliseconds)" % part) from e
        if jumps[-1][0] < 0:
            raise ConfigError("--clock-jumps %r: the time of a jump must be >= 0" % part)
    if len(jumps) > MAX_CLOCK_JUMPS:
        raise ConfigError("--clock-jumps: %d jumps; expected at most %d" % (len(jumps), MAX_CLOCK_JUMPS))
    return sorted(jumps)


class JumpingClock:
    """A clock whose time jumps: from the inner clock's time at_ms on, it reads delta_ms
    later (earlier when negative), as a clock set anew does (an RTC written by NTP, a
    counter reset). The hardware-in-the-loop suite's clock-jump scenario runs the agent
    on it; a board's own clock is the monotonic tick counter."""

    def __init__(self, inner: object, jumps: list) -> None:
        self.inner = inner
        self.jumps = jumps

    def _offset(self, raw: int) -> int:
        return sum(delta for at, delta in self.jumps if raw >= at)

    def now_ms(self) -> int:
        raw = self.inner.now_ms()  # type: ignore[attr-defined]
        return raw + self._offset(raw)

    async def sleep_until(self, t_ms: int) -> None:
        """Until now_ms() >= t_ms: in steps that end at each jump, since a jump moves the
        goal (a jump back lengthens the wait, one forward ends it)."""
        while True:
            now = self.now_ms()
            if now >= t_ms:
                return
            raw = self.inner.now_ms()  # type: ignore[attr-defined]
            target = raw + t_ms - now
            for at, _ in self.jumps:
                if raw < at < target:
                    target = at
            await self.inner.sleep_until(target)  # type: ignore[attr-defined]
            if self.inner.now_ms() < target:  # type: ignore[attr-defined]
                await sleep_ms(1)  # a scaled clock's sleep is rounded down to whole real ms


def consent_choices(spec: str, categories: list) -> list:
    """The categories the user agrees to at this start: "all" (every one that is not
    essential), "none", or ids joined by "+"; ConfigError naming an unknown one."""
    optional = [c["id"] for c in categories if not c.get("essential")]
    if spec == "all":
        return optional
    if spec == "none":
        return []
    chosen = spec.split("+")
    for cat in chosen:
        if cat not in optional:
            raise ConfigError("--consent %r: %r is not an optional category (%s)" % (spec, cat, ", ".join(optional)))
    return chosen


class HeapWatch:
    """The live heap's peak, sampled every _HEAP_SAMPLE_MS after a collection (MicroPython only)."""

    def __init__(self) -> None:
        self.start = mem_alloc()  # the agent built, before the link: code, profile, models
        self.peak = self.start
        self.total = -1
        if IS_MICROPYTHON:
            import gc

            self.total = gc.mem_alloc() + gc.mem_free()

    async def watch(self) -> None:
        while IS_MICROPYTHON:
            self.peak = max(self.peak, mem_alloc())
            await sleep_ms(_HEAP_SAMPLE_MS)


def _burst_event(i: int) -> Event:
    fields = {"detector": "anomaly", "value": 0.5 + i % 7, "baseline": 0.45, "score": 0.9}
    return Event(ANOMALY, "maintenance", "motor_current", i, "drain", fields)


async def _wait_connected(uplink: PortableUplink, seconds: int) -> bool:
    t0 = ticks_ms()
    while uplink.connects == 0 and ticks_diff(ticks_ms(), t0) < seconds * 1000:
        await sleep_ms(20)
    return uplink.connects > 0


async def _receipts(agent: Agent, every_ms: int, made: list) -> None:
    """The user says "yes" to maintenance again every every_ms: consent receipts, which stay
    in the outbox until the backend confirms them (so the inbound command path must work)."""
    while True:
        await sleep_ms(every_ms)
        try:
            agent.rights.set_consent("maintenance", True, agent.clock.now_ms())
            made[0] += 1
        except OutboxFullError:
            pass  # the device holds receipts the backend has not confirmed yet: the user tries later


async def run(directory: str, seconds: float = 5, speed: float = 20000, receipts_every_ms: int = 0, burst: int = 0,
              drain_s: int = 60, outbox_len: int = 256, data_dir: str = "", keepalive: int = 0,
              trace: str = "", consent: str = "all", clock_jumps_spec: str = "", board: str = limits.PI,
              say: object = print) -> dict:  # fmt: skip
    """Run the device of the bundle in directory for `seconds` of real time, then until its
    outbox is empty (at most drain_s more); returns what happened as plain data.

    burst: N maintenance messages put into the outbox before the uplink starts, budgets
    lifted (the rate of the uplink, not of the appliance); seconds 0 then runs no appliance.
    data_dir: where the outbox keeps its log (FlashStore), as on a board; "" keeps it in
    the heap (MemoryStore). keepalive: seconds (0: the profile's). trace: a recorded trace
    (agent/sim/trace.py) in place of the simulator, replayed to its end on a clock as fast
    as the device computes (seconds and speed are then unused). speed 0: the simulator on
    that clock, for `seconds` of appliance time. consent: what the user
    agrees to at the start (consent_choices). clock_jumps_spec: jumps put into the clock
    (clock_jumps). board: what the agent keeps in memory is sized for it (limits.BOARD_SIZES;
    the outbox keeps outbox_len)."""
    bundle = read_bundle(directory)
    prof = read_profile(directory)
    device_id = bundle["device_id"]
    chosen = consent_choices(consent, prof["data_categories"])
    jumps = clock_jumps(clock_jumps_spec)
    if trace:
        from agent.sim.trace import TraceReader

        sim = TraceReader(trace, tuple(prof["phases"]))
        drivers = {ch["id"]: sim.driver(ch["id"]) for ch in prof["channels"]}
    else:
        sim = build(prof, 1)  # the appliance simulated from its profile (a built-in kind: its model)
        drivers = {ch["id"]: SimDriver(sim, ch["id"]) for ch in prof["channels"]}
    ledger = ConsentLedger(prof["data_categories"], device_id)
    box: list = []
    uplink = PortableUplink(bundle["host"], bundle["port"], device_id, tls_context_factory(directory),
                            root=bundle["topic_prefix"], keepalive=keepalive or prof["uplink"]["keepalive_s"],
                            on_command=lambda t, p: box[0].on_command(t, p), report=say)  # fmt: skip
    clock = ManualClock() if trace or speed == 0 else ScaledClock(speed)
    if jumps:
        clock = JumpingClock(clock, jumps)
    # The essential categories are safe to send twice: after damage to the log they are
    # what is kept of the messages written before the damaged part.
    outbox = Outbox(outbox_len + burst, FlashStore(data_dir) if data_dir else None, tuple(ledger.essential))
    for problem in outbox.problems:
        say("storage: " + problem)
    agent = Agent(prof, device_id, drivers, clock, sim, uplink, ledger, outbox=outbox, board=board)
    box.append(agent)
    agent.report_to(say)  # type: ignore[arg-type]
    heap = HeapWatch()
    watcher = asyncio.create_task(heap.watch())
    receipts = [0]
    result: dict = {"runtime": sys.implementation.name, "device": device_id}
    if burst:
        for cat in prof["data_categories"]:
            cat["daily_budget_bytes"] = 1 << 30  # the path is measured, not the appliance's budget
        ledger.set("maintenance", True)  # no receipt: the burst is all that is in the outbox
        for i in range(burst):
            agent.judge(_burst_event(i))
    else:
        for cat in chosen:
            agent.rights.set_consent(cat, True, clock.now_ms())
            receipts[0] += 1
    uplink.start()
    helpers = [watcher]
    try:
        if burst:
            if not await _wait_connected(uplink, drain_s):
                raise ConfigError("no link to %s:%d within %d s (%s)" % (bundle["host"], bundle["port"], drain_s,
                                                                         uplink.last_error))  # fmt: skip
            t0 = ticks_ms()
            deliver = asyncio.create_task(agent.deliver())
            helpers.append(deliver)
            while agent.waiting_messages() and ticks_diff(ticks_ms(), t0) < drain_s * 1000:
                await sleep_ms(5)
            ms = ticks_diff(ticks_ms(), t0)
            result["burst"] = burst
            result["burst_ms"] = ms
            result["burst_msgs_per_s"] = (burst - agent.waiting_messages()) * 1000 / max(1, ms)
        if seconds > 0:
            if receipts_every_ms:
                helpers.append(asyncio.create_task(_receipts(agent, receipts_every_ms, receipts)))
            await agent.run(sim.end_ms() if trace else int(seconds * 1000 * (speed or 1)))
            if receipts_every_ms:
                helpers[-1].cancel()
        # What is left (and receipts awaiting the backend's confirmation) goes now.
        deliver = asyncio.create_task(agent.deliver())
        helpers.append(deliver)
        t0 = ticks_ms()
        while agent.waiting_messages() and ticks_diff(ticks_ms(), t0) < drain_s * 1000:
            await sleep_ms(50)
    finally:
        for task in helpers:
            task.cancel()
        await uplink.stop()
        if trace:
            sim.close()
    snap = agent.snapshot()
    result.update({
        "made": snap.made, "left": snap.waiting + snap.awaiting, "dropped": snap.dropped,
        "receipts": receipts[0], "sent_log": len(snap.sent), "connects": uplink.connects,
        "failures": uplink.failures, "last_error": uplink.last_error, "waits_ms": uplink.waits_ms,
        "inbound_faults": snap.inbound_faults, "delivery_faults": snap.delivery_faults,
        "samples": snap.samples, "clock_ms": clock.now_ms(),
        "storage_problems": outbox.problems, "storage_damaged": outbox.damaged, "consent": chosen,
    })  # fmt: skip
    del snap  # not part of what the agent keeps
    result.update({"heap_total_bytes": heap.total, "heap_start_bytes": heap.start, "heap_peak_bytes": heap.peak,
                   "heap_after_bytes": mem_alloc()})  # fmt: skip
    return result


def _args(argv: list) -> dict:
    """--name value pairs (MicroPython has no argparse); ConfigError for anything else."""
    known = {"--bundle": str, "--seconds": float, "--speed": float, "--receipts-every-ms": int, "--burst": int,
             "--drain-s": int, "--outbox": int, "--data-dir": str,
             "--keepalive": int, "--trace": str, "--consent": str, "--clock-jumps": str,
             "--board": str}  # fmt: skip
    out: dict = {}
    if len(argv) % 2:
        raise ConfigError("arguments %r: expected --name value pairs" % (argv,))
    for i in range(0, len(argv), 2):
        name, value = argv[i], argv[i + 1]
        if name not in known:
            raise ConfigError("argument %r; expected one of %s" % (name, ", ".join(sorted(known))))
        try:
            out[name[2:].replace("-", "_")] = known[name](value)
        except ValueError as e:
            raise ConfigError("argument %s %r: %s" % (name, value, e)) from e
    if "bundle" not in out:
        raise ConfigError("--bundle DIR is required")
    return out


def main(argv: list) -> int:
    if IS_MICROPYTHON:
        import gc

        # Collect after every GC_THRESHOLD bytes allocated rather than when the heap is full:
        # garbage then stays low in the heap instead of scattering long-lived objects over
        # all of it, so the blocks of several KB a TLS connection needs stay free.
        gc.threshold(GC_THRESHOLD)

    def say(text: str) -> None:
        print("log: " + text)

    try:
        args = _args(argv)
        directory = args.pop("bundle")
        if "outbox" in args:
            args["outbox_len"] = args.pop("outbox")
        if "clock_jumps" in args:
            args["clock_jumps_spec"] = args.pop("clock_jumps")
        result = asyncio.run(run(directory, say=say, **args))
    except ConfigError as e:
        # A damaged bundle or a wrong argument: one line that names it, and exit 2 (the
        # board's main decides what to do then), not a traceback.
        print("wichtel: " + str(e))
        return 2
    print(RESULT_MARK + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
