"""The privacy gate: the one place that decides what may leave the device.

An event leaves only if its data category is consented to (and the event is not from
before the consent), and then only the fields that category allowlists, minimized as
the category declares: values rounded to its steps, time coarsened to its grain, a
pseudonymous id where the purpose allows, within its daily
byte budget. Every message is tagged with its category (topic and body) and carries
the id the outbox keeps it under ("id"), by which the receiver drops duplicates and the
backend confirms what it received.
"""

import binascii
import hashlib

from agent.core import limits
from agent.core.consent import ConsentLedger
from agent.core.encoding import encode, round_sig
from agent.core.errors import EncodingError, PayloadTooLargeError
from agent.core.events import Event

# Reasons for a decision, stable strings for the local page and the demo.
SENT = "sent"
NO_CONSENT = "no_consent"
BEFORE_CONSENT = "before_consent"  # recorded before the category was switched on
UNKNOWN_CATEGORY = "unknown_category"
TOO_LARGE = "too_large"
UNENCODABLE = "unencodable"
OVER_BUDGET = "over_budget"  # the category's bytes for the day are used up
LOCAL_ONLY = "local_only"  # meant for the local page alone (category "")

DAY_MS = 86_400_000


class Decision:
    """What the gate did with one event, and why."""

    __slots__ = ("category", "msg_id", "payload", "reason", "topic")

    def __init__(self, reason: str, topic: str = "", payload: bytes = b"", category: str = "", msg_id: int = 0) -> None:
        self.reason = reason
        self.topic = topic
        self.payload = payload
        self.category = category
        self.msg_id = msg_id  # the id in the body: the outbox must keep the message under it


class PrivacyGate:
    """Consent check and minimization between events and the outbox."""

    # The daily byte share of command replies (and what commands ask for), apart from
    # every category's budget; its key in `spent` (no category id has brackets).
    COMMAND_SHARE = "(commands)"

    def __init__(self, profile: dict, device_id: str, consent: ConsentLedger, pseudonym_key: bytes = b"") -> None:
        self.consent = consent
        # One topic tree per device: the broker's ACL lets a device write only below it.
        self.root = profile["uplink"]["topic_prefix"] + "/v1/" + device_id + "/"
        self.device_id = device_id
        self.max_payload = profile["uplink"]["max_payload"]
        self.cats = {c["id"]: c for c in profile["data_categories"]}
        self.essential = next((c["id"] for c in profile["data_categories"] if c["essential"]), "")
        self.key = pseudonym_key or device_id.encode()
        self.seq = 0
        self.spent: dict = {}  # category (or COMMAND_SHARE) -> [day, bytes]

    def pseudonym(self, category: str) -> str:
        """For a pseudonymous category: an id that is the same for this device and
        category but links to nothing else. The message carries it as "pid"; the
        operator's broker forwards such categories to their recipients without the
        topic's device id (docs/asyncapi.yaml)."""
        digest = hashlib.sha256(self.key + b"/" + category.encode()).digest()
        return binascii.hexlify(digest[:8]).decode()

    def judge(self, event: Event, msg_id: int) -> Decision:
        """What may leave of an event, as the message with id msg_id (the outbox's next)."""
        if event.category == "":
            return Decision(LOCAL_ONLY)
        cat = self.cats.get(event.category)
        if cat is None:
            return Decision(UNKNOWN_CATEGORY)
        if not self.consent.allows(event.category):
            return Decision(NO_CONSENT)
        if event.t_ms < self.consent.since_ms(event.category):
            return Decision(BEFORE_CONSENT)
        body = {}
        for name in cat["fields"]:
            value = self._field(event, name, cat)
            if value is not None:
                body[name] = value
        return self._message(event.category, event.kind, body, event.t_ms, msg_id)

    def control(self, kind: str, data: dict, t_ms: int, msg_id: int, on_request: bool = False) -> Decision:
        """A message of the essential category: consent receipts, erasure requests, status,
        command replies. Receipts and erasure requests are owed to the user: no daily budget
        stops them. Command replies, and what a command asks for (on_request), are charged to
        a daily share of their own (COMMAND_SHARE): no flood of commands can use up the
        budget the device's own status needs."""
        if kind in ("consent_receipt", "erasure_request"):
            return self._message(self.essential, kind, data, t_ms, msg_id, budget=None)
        if on_request or kind == "command_reply":
            return self._message(self.essential, kind, data, t_ms, msg_id, budget=self.COMMAND_SHARE)
        return self._message(self.essential, kind, data, t_ms, msg_id)

    def _message(self, category: str, kind: str, body: dict, t_ms: int, msg_id: int,
                 budget: str | None = "") -> Decision:  # fmt: skip
        """budget: "" the category's own daily budget, COMMAND_SHARE the commands' share, None none."""
        msg = {"v": 1, "id": msg_id, "seq": self.seq + 1, "cat": category, "kind": kind, "data": body}
        if self.cats[category]["pseudonymous"]:
            msg["pid"] = self.pseudonym(category)
        try:
            payload = encode(msg, self.max_payload)
        except PayloadTooLargeError:
            return Decision(TOO_LARGE)
        except EncodingError:
            return Decision(UNENCODABLE)
        topic = self.root + category
        if len(topic) > limits.MAX_TOPIC_LEN:
            return Decision(TOO_LARGE)
        day = t_ms // DAY_MS
        key = budget or category
        spent = self.spent.get(key)
        if spent is None or spent[0] != day:
            spent = [day, 0]
            self.spent[key] = spent
        if budget == self.COMMAND_SHARE:
            allowed = limits.COMMAND_REPLY_DAILY_BYTES
        else:
            allowed = self.cats[category]["daily_budget_bytes"]
        if budget is not None and spent[1] + len(payload) > allowed:
            return Decision(OVER_BUDGET)
        spent[1] += len(payload)
        self.seq += 1
        return Decision(SENT, topic, payload, category, msg_id)

    @staticmethod
    def _field(event: Event, name: str, cat: dict) -> object:
        if name == "channel":
            return event.channel
        if name == "phase":
            return event.phase
        if name == "time":
            grain = cat["time_grain_s"]
            return event.t_ms // 1000 // grain * grain
        value = event.fields.get(name)
        if isinstance(value, float):
            step = cat["round"].get(name)
            if step:
                return round(value / step) * step
            return round_sig(value, 3)
        return value
