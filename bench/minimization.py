"""Minimization benchmark: what leaves the home, against raw streaming and 300-s telemetry.

For each example appliance, one simulated week. Bytes are MQTT PUBLISH sizes (fixed
header 2, topic length 2, topic, payload). Raw streaming sends every sample of every
channel as its own message; 300-s telemetry sends all channels' latest values every
300 s (as Tasmota does by default); Wichtel sends what its privacy gate lets out with
(a) only the essential category and (b) every category on. Then, for each fault the
simulator can inject, a week with maintenance consent only: did an alert about it
reach upstream?

usage: python bench/minimization.py [--json out.json] [--days N]
"""

import argparse
import asyncio
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from agent import host, profile_loader  # noqa: E402
from agent.core.clock import ManualClock  # noqa: E402
from agent.core.consumables import SHARE, ReorderChoice  # noqa: E402
from agent.core.encoding import encode  # noqa: E402
from agent.core.pipeline import Agent  # noqa: E402
from agent.sim.appliances import FAULTS  # noqa: E402
from bench import report  # noqa: E402

KINDS = ("washing_machine", "coffee_machine", "dishwasher")
DEVICE = "dev-0001"
# The channel whose alert shows each fault.
FAULT_CHANNEL = {
    ("washing_machine", "pump_clog"): "motor_current",
    ("dishwasher", "pump_clog"): "inlet_flow",
    ("washing_machine", "heater_fail"): "heater_temp",
    ("dishwasher", "heater_fail"): "heater_temp",
    ("washing_machine", "bearing_wear"): "drum_vibration",
    ("washing_machine", "leak_idle"): "inlet_flow",
    ("dishwasher", "leak_idle"): "inlet_flow",
    ("coffee_machine", "scale_buildup"): "pump_pressure",
}


def mqtt_size(topic: str, payload: bytes) -> int:
    return 2 + 2 + len(topic.encode()) + len(payload)


class CountingUplink:
    connects = 1

    def __init__(self) -> None:
        self.bytes = 0
        self.messages: list = []

    async def publish(self, topic: str, payload: bytes, msg_id: int = 0) -> bool:
        self.bytes += mqtt_size(topic, payload)
        self.messages.append((topic, payload))
        return True


class RawMeter:
    """Observer that prices raw streaming and 300-s telemetry from the same samples."""

    def __init__(self) -> None:
        self.raw = 0
        self.telemetry = 0
        self.latest: dict = {}
        self.next_report = 0
        self.now = 0

    def __call__(self, stage: str, a: object, b: object) -> None:
        if stage == "tick" and isinstance(a, int):
            self.now = a
            while self.now >= self.next_report:
                if self.latest:
                    body = dict(self.latest, t=self.next_report // 1000)
                    self.telemetry += mqtt_size("tele/" + DEVICE + "/SENSOR", encode(body, 4096))
                self.next_report += 300_000
        elif stage == "sample":
            channel = a.id  # type: ignore[attr-defined]
            value = b if isinstance(b, float) else 0.0
            self.latest[channel] = value
            self.raw += mqtt_size("raw/" + DEVICE + "/" + channel, encode({"t": self.now, "v": value}, 256))


def week(kind: str, days: float, consent: list, faults: list, meter: object = None) -> tuple:
    prof = profile_loader.load(profile_loader.example(kind))
    drivers, sim = host.simulated(prof, 11, faults, 8, 4)
    uplink = CountingUplink()
    choices = {c["id"]: ReorderChoice(SHARE, "a brand the user picked", "a shop the user picked")
               for c in prof["consumables"]} if "consumables" in consent else None  # fmt: skip
    agent = Agent(prof, DEVICE, drivers, ManualClock(), sim, uplink, None, meter, choices)  # type: ignore[arg-type]
    for cat in consent:
        agent.set_consent(cat, True, 0)
    asyncio.run(agent.run(int(days * 86_400_000)))
    return uplink, agent


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description="Bytes upstream: raw, 300-s telemetry and Wichtel.")
    parser.add_argument("--json", metavar="OUT")
    parser.add_argument("--days", type=float, default=7.0)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    results = {}
    for kind in KINDS:
        prof = profile_loader.load(profile_loader.example(kind))
        optional = [c["id"] for c in prof["data_categories"] if not c["essential"]]
        meter = RawMeter()
        essential, _ = week(kind, args.days, [], [], meter)
        everything, _ = week(kind, args.days, optional, [])
        faults = [f for f in sorted(FAULTS) if kind in FAULTS[f][0]]
        delivered = []
        for fault in faults:
            uplink, _ = week(kind, args.days, ["maintenance"], [fault])
            channel = FAULT_CHANNEL[(kind, fault)]
            hit = any(
                t.endswith("/maintenance") and b'"channel":"%s"' % channel.encode() in p for t, p in uplink.messages
            )
            if hit:
                delivered.append(fault)
        results[kind] = {
            "days": args.days,
            "raw_bytes": meter.raw,
            "telemetry_300s_bytes": meter.telemetry,
            "essential_bytes": essential.bytes,
            "all_bytes": everything.bytes,
            "all_messages": len(everything.messages),
            "raw_over_all": meter.raw / max(1, everything.bytes),
            "faults_injected": len(faults),
            "faults_delivered": len(delivered),
            "faults": {f: f in delivered for f in faults},
        }
    print("one simulated week per appliance; bytes as MQTT PUBLISH (header, topic, payload)")
    print("%-16s %12s %12s %10s %10s %9s %8s" % ("appliance", "raw", "300-s tele", "essential", "all on",
                                                 "raw/all", "faults"))  # fmt: skip
    for kind, r in results.items():
        sizes = (r["raw_bytes"], r["telemetry_300s_bytes"], r["essential_bytes"], r["all_bytes"], r["raw_over_all"])
        print("%-16s %12d %12d %10d %10d %8.0fx" % ((kind,) + sizes) + " %5d/%d" % (r["faults_delivered"],
              r["faults_injected"]))  # fmt: skip
    print("run time %.0f s" % (time.perf_counter() - t0))
    report.emit(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
