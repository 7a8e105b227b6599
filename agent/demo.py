"""What the agent measured, decided and would send, told as it happens (wichtel run/demo).

An observer of the pipeline: it only reads what the pipeline tells it.
"""

import json
import sys
from typing import TextIO

from agent.core import gate
from agent.core.events import ANOMALY, CONSUMABLE, READING, SENSOR_FAULT, Event
from agent.core.gate import Decision
from agent.core.pipeline import ChannelRuntime

_WHY_KEPT = {
    gate.NO_CONSENT: "kept on the device: you have not switched on",
    gate.BEFORE_CONSENT: "kept on the device: it was recorded before you switched on",
    gate.OVER_BUDGET: "kept on the device: today's data budget is used up for",
    gate.UNKNOWN_CATEGORY: "dropped: the profile declares no data category",
    gate.TOO_LARGE: "dropped: the message would exceed its size limit for",
    gate.UNENCODABLE: "dropped: a value cannot be encoded (not a finite number) for",
    gate.LOCAL_ONLY: "shown on the local page only (your choice for reorders: remind me); nothing leaves",
}


def clock_text(t_ms: int) -> str:
    s = t_ms // 1000
    return "day %d %02d:%02d" % (s // 86400, s // 3600 % 24, s // 60 % 60)


class Narrator:
    """Prints a line per decision and a summary of the measurements every report_ms."""

    def __init__(self, profile: dict, report_ms: int = 3 * 3600 * 1000, out: TextIO | None = None) -> None:
        self.profile = profile
        self.report_ms = report_ms
        self.out = out or sys.stdout
        self.next_report = report_ms
        self.units = {ch["id"]: ch["unit"] for ch in profile["channels"]}
        self.purposes = {c["id"]: c["purpose"]["en"] for c in profile["data_categories"]}
        self.sent = 0  # events the gate let out, each printed once when decided
        self.delivered = 0  # messages the broker took: those events and the device's own (receipts, status)
        self._told: set = set()  # message ids printed when decided, not printed again when they leave
        self.kept = 0
        self.anomalies = 0
        self.latest: dict = {}
        self.now = 0
        self.phase = ""

    def say(self, text: str) -> None:
        print(text, file=self.out)

    def __call__(self, stage: str, a: object, b: object) -> None:
        if stage == "sample" and isinstance(a, ChannelRuntime):
            self.latest[a.id] = b
        elif stage == "tick" and isinstance(a, int) and isinstance(b, str):
            self.now, self.phase = a, b
            if self.now >= self.next_report:
                self.next_report += self.report_ms
                parts = ["%s %.2f %s" % (k, v, self.units[k]) for k, v in sorted(self.latest.items())]
                self.say("[%s] measured (phase %s): %s" % (clock_text(self.now), self.phase or "-", ", ".join(parts)))
        elif stage == "decision" and isinstance(a, Event) and isinstance(b, Decision):
            self._decision(a, b)
        elif stage == "sent" and isinstance(b, bytes):
            self.delivered += 1
            try:
                mid = json.loads(b).get("id")
            except ValueError:
                mid = None
            if mid in self._told:
                self._told.discard(mid)  # printed when it was decided: once is enough
            else:  # the device's own message (a consent receipt, its status): not shown before
                self.say("[%s] sent to %s: %s" % (clock_text(self.now), a, b.decode()))

    def _decision(self, e: Event, decision: Decision) -> None:
        f = e.fields
        head = "[%s] " % clock_text(e.t_ms)
        if e.kind == ANOMALY:
            self.anomalies += 1
            self.say(
                head
                + "decided: maintenance alert on %s, phase %s (%s, %.0f%% sure)\n      en: %s\n      de: %s"
                % (e.channel, e.phase, f["detector"], f["score"] * 100, f["explanation_en"], f["explanation_de"])
            )
        elif e.kind == CONSUMABLE:
            self.say(
                head
                + "decided: %s for %s (%.0f%% left)\n      en: %s\n      de: %s"
                % (f["event"].replace("_", " "), e.channel, f["level_pct"], f["explanation_en"], f["explanation_de"])
            )
        elif e.kind == SENSOR_FAULT and "value" in f:
            self.say(
                head
                + "decided: %s reads %.3g, outside its valid range %g..%g: sensor fault"
                % (e.channel, f["value"], f["low"], f["high"])
            )
        elif e.kind == SENSOR_FAULT:  # the driver had no reading (SensorError)
            self.say(head + "decided: %s gave no reading (%s): sensor fault" % (e.channel, f["reason"]))
        cat = e.category
        if decision.reason == gate.SENT:
            self.sent += 1
            if len(self._told) < 1000:  # bounded: one not matched later is printed twice, nothing worse
                self._told.add(decision.msg_id)
            self.say(
                "    would send to %s: %s\n      why: you switched on '%s' (%s)"
                % (decision.topic, decision.payload.decode(), cat, self.purposes[cat])
            )
        else:
            self.kept += 1
            if decision.reason == gate.LOCAL_ONLY:
                self.say("    " + _WHY_KEPT[decision.reason])
            elif e.kind != READING:
                self.say("    %s '%s'" % (_WHY_KEPT[decision.reason], cat))
