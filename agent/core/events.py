"""Typed events that processors emit and the privacy gate judges.

An event belongs to one data category; only the gate decides whether and how it leaves.
"""

# Event kinds. Strings, not enums: the portable subset has no enum module.
READING = "reading"  # a periodic aggregate of a channel
ANOMALY = "anomaly"  # a detector found something unusual
SENSOR_FAULT = "sensor_fault"  # a reading outside the physically valid range
CONSUMABLE = "consumable"  # a consumable level or forecast changed
KINDS = (READING, ANOMALY, SENSOR_FAULT, CONSUMABLE)


class Event:
    """One thing the device learned. fields holds the kind-specific values."""

    __slots__ = ("category", "channel", "fields", "kind", "phase", "t_ms")

    def __init__(self, kind: str, category: str, channel: str, t_ms: int, phase: str, fields: dict) -> None:
        self.kind = kind
        self.category = category
        self.channel = channel
        self.t_ms = t_ms
        self.phase = phase
        self.fields = fields

    def as_dict(self) -> dict:
        """All of the event as plain data (for the local store and the demo)."""
        return {
            "kind": self.kind,
            "category": self.category,
            "channel": self.channel,
            "t_ms": self.t_ms,
            "phase": self.phase,
            "fields": self.fields,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Event":
        return cls(d["kind"], d["category"], d["channel"], d["t_ms"], d["phase"], d["fields"])

    def __repr__(self) -> str:
        return "Event(" + self.kind + ", " + self.channel + ", t=" + str(self.t_ms) + ")"
