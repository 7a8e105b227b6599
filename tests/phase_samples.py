"""A washer-dryer profile no built-in code knows, with a phase_source and a metered water
filter, and a scripted appliance that drives its channels: for the phase and meter tests."""

import copy

from agent.core import profile

PHASES = ["idle", "fill", "heating", "spin", "drain"]

BASE: dict = {
    "wichtel_profile": 1,
    "appliance": {"maker": "Testwerk", "model": "WT 1", "hardware_revision": "A", "kind": "washer_dryer"},
    "phases": PHASES,
    "channels": [
        {"id": "heater_current", "unit": "A", "driver": "sim", "sample_hz": 1, "range": [0, 16],
         "processors": [{"kind": "cycle_feature", "category": "maintenance",
                         "settings": {"phase": "heating", "feature": "duration", "history": 5, "recent": 1}}]},
        {"id": "motor_current", "unit": "A", "driver": "sim", "sample_hz": 1, "range": [0, 16],
         "processors": [{"kind": "cycle_feature", "category": "maintenance",
                         "settings": {"phase": "spin", "feature": "duration", "history": 5, "recent": 1}}]},
        {"id": "drum_vibration", "unit": "g", "driver": "sim", "sample_hz": 1, "range": [0, 8]},
        {"id": "water_flow", "unit": "l/min", "driver": "sim", "sample_hz": 1, "range": [0, 30],
         "processors": [{"kind": "cycle_feature", "category": "maintenance",
                         "settings": {"phase": "fill", "feature": "duration", "history": 5, "recent": 1}}]},
    ],
    "data_categories": [
        {"id": "essential", "essential": True, "title": {"en": "E", "de": "E"}, "purpose": {"en": "E", "de": "E"},
         "fields": ["status", "firmware", "update", "category", "choice", "text_hash", "text_version", "scope"],
         "retention_days": 365},
        {"id": "maintenance", "title": {"en": "M", "de": "M"}, "purpose": {"en": "M", "de": "M"},
         "fields": ["channel", "phase", "feature", "value", "baseline", "change_pct", "reason", "time"],
         "retention_days": 90},
        {"id": "consumables", "title": {"en": "C", "de": "C"}, "purpose": {"en": "C", "de": "C"},
         "fields": ["consumable", "event", "level_pct", "days_left", "time"], "retention_days": 30},
    ],
    "uplink": {"host": "mqtt.example.net", "port": 8883},
    "phase_source": {
        "debounce_s": 2,
        "silence_s": 10,
        "rules": [
            {"phase": "heating", "when": [{"channel": "heater_current", "above": 8, "leave_below": 6}]},
            {"phase": "spin", "when": [{"channel": "motor_current", "above": 2, "leave_below": 1.5},
                                       {"channel": "drum_vibration", "above": 0.3, "leave_below": 0.2}]},
            {"phase": "fill", "when": [{"channel": "water_flow", "above": 1, "leave_below": 0.5}]},
        ],
    },
    "consumables": [
        {"id": "water_filter", "name": {"en": "Water filter", "de": "Wasserfilter"}, "unit": "l", "capacity": 1500,
         "source": "meter", "channel": "water_flow", "phases": ["fill"], "lead_time_days": 3},
    ],
}  # fmt: skip


def doc(**changes: object) -> dict:
    """A copy of the profile document with top-level keys replaced (None removes one)."""
    out = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def validated(**changes: object) -> dict:
    return profile.validate(doc(**changes))


class Washer:
    """A scripted appliance: a cycle every period_s, starting at start_s: fill (fill_s at
    flow l/min), heating (heat_s of the cycle's list, 9 A), spin (spin_s, 3 A and 0.5 g),
    then rest. heat_s: one duration per cycle, the last repeated."""

    def __init__(self, heat_s: list, period_s: int = 1200, start_s: int = 100, fill_s: int = 60, spin_s: int = 120,
                 flow: float = 12.0) -> None:  # fmt: skip
        self.heat_s = heat_s
        self.period_ms = period_s * 1000
        self.start_ms = start_s * 1000
        self.fill_ms = fill_s * 1000
        self.spin_ms = spin_s * 1000
        self.flow = flow

    def state(self, t_ms: int) -> str:
        """The true phase at t_ms."""
        if t_ms < self.start_ms:
            return "idle"
        n = (t_ms - self.start_ms) // self.period_ms
        at = (t_ms - self.start_ms) % self.period_ms
        heat_ms = int(self.heat_s[min(n, len(self.heat_s) - 1)] * 1000)
        if at < self.fill_ms:
            return "fill"
        if at < self.fill_ms + heat_ms:
            return "heating"
        if at < self.fill_ms + heat_ms + self.spin_ms:
            return "spin"
        return "idle"

    def value(self, channel: str, t_ms: int) -> float:
        phase = self.state(t_ms)
        if channel == "heater_current":
            return 9.0 if phase == "heating" else 0.1
        if channel == "motor_current":
            return 3.0 if phase == "spin" else (0.5 if phase == "heating" else 0.0)
        if channel == "drum_vibration":
            return 0.5 if phase == "spin" else 0.02
        if channel == "water_flow":
            return self.flow if phase == "fill" else 0.0
        raise KeyError(channel)

    def drivers(self, profile_doc: dict) -> dict:
        return {ch["id"]: _Driver(self, ch["id"]) for ch in profile_doc["channels"]}


class _Driver:
    def __init__(self, washer: Washer, channel: str) -> None:
        self.washer = washer
        self.channel = channel
        self.broken: tuple = ()  # (from_ms, to_ms): raises SensorError then

    def read(self, t_ms: int) -> float:
        if self.broken and self.broken[0] <= t_ms < self.broken[1]:
            from agent.core.errors import SensorError

            raise SensorError("absent", "unplugged in the test")
        return self.washer.value(self.channel, t_ms)
