"""The privacy gate: the one place that decides what may leave the device.

An event leaves only if its data category is consented to, and then only the fields
that category declares, coarsened. Nothing optional is allowed by default.
"""

from agent.core import limits
from agent.core.encoding import encode, round_sig
from agent.core.errors import EncodingError, PayloadTooLargeError
from agent.core.events import Event

# Reasons for a decision, stable strings for the local page and the demo.
SENT = "sent"
NO_CONSENT = "no_consent"
UNKNOWN_CATEGORY = "unknown_category"
TOO_LARGE = "too_large"
UNENCODABLE = "unencodable"
LOCAL_ONLY = "local_only"  # meant for the local page alone (category "")

# Time upstream is coarsened to whole minutes: exact sample times tell about a household.
TIME_GRAIN_MS = 60_000


class ConsentView:
    """Which data categories may leave now. The consent issue backs this by a ledger.

    Required (non-optional) categories are on; every optional category is off until
    the user switches it on.
    """

    def __init__(self, categories: list) -> None:
        self._allowed = {}
        for cat in categories:
            self._allowed[cat["id"]] = not cat["optional"]

    def allows(self, category: str) -> bool:
        return self._allowed.get(category, False)

    def set(self, category: str, allowed: bool) -> None:
        if category not in self._allowed:
            raise KeyError(category)
        self._allowed[category] = allowed


class Decision:
    """What the gate did with one event, and why."""

    __slots__ = ("payload", "reason", "topic")

    def __init__(self, reason: str, topic: str = "", payload: bytes = b"") -> None:
        self.reason = reason
        self.topic = topic
        self.payload = payload


class PrivacyGate:
    """Consent check and minimization between events and the outbox."""

    def __init__(self, profile: dict, device_id: str, consent: ConsentView) -> None:
        self.consent = consent
        self.prefix = profile["uplink"]["topic_prefix"] + "/" + device_id + "/"
        self.max_payload = profile["uplink"]["max_payload"]
        self.fields = {}
        for cat in profile["data_categories"]:
            self.fields[cat["id"]] = cat["fields"]
        self.seq = 0

    def judge(self, event: Event) -> Decision:
        if event.category == "":
            return Decision(LOCAL_ONLY)
        allowed_fields = self.fields.get(event.category)
        if allowed_fields is None:
            return Decision(UNKNOWN_CATEGORY)
        if not self.consent.allows(event.category):
            return Decision(NO_CONSENT)
        body = {}
        for name in allowed_fields:
            value = self._field(event, name)
            if value is not None:
                body[name] = value
        self.seq += 1
        msg = {"v": 1, "seq": self.seq, "kind": event.kind, "data": body}
        try:
            payload = encode(msg, self.max_payload)
        except PayloadTooLargeError:
            self.seq -= 1
            return Decision(TOO_LARGE)
        except EncodingError:
            self.seq -= 1
            return Decision(UNENCODABLE)
        topic = self.prefix + event.category
        if len(topic) > limits.MAX_TOPIC_LEN:
            self.seq -= 1
            return Decision(TOO_LARGE)
        return Decision(SENT, topic, payload)

    @staticmethod
    def _field(event: Event, name: str) -> object:
        if name == "channel":
            return event.channel
        if name == "phase":
            return event.phase
        if name == "time_min":
            return event.t_ms // TIME_GRAIN_MS
        value = event.fields.get(name)
        if isinstance(value, float):
            return round_sig(value, 3)
        return value
