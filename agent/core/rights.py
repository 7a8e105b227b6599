"""The user's rights over what the device holds: consent (receipts, withdrawal), export
and erasure, each carried into the outbox as messages owed to the user.

DataRights does no I/O: the host stores receipts (agent/device.py) before apply_consent
puts them into effect, and the export as a file. The Agent builds one and exposes it.
"""

from agent.core.errors import OutboxFullError
from agent.core.outbox import ENTRY_PAYLOAD

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from agent.core.consent import ConsentLedger
    from agent.core.gate import PrivacyGate
    from agent.core.outbox import Outbox
    from agent.core.ring import RingBuffer

# What a consent receipt tells upstream (docs/asyncapi.yaml).
RECEIPT_FIELDS = ("category", "choice", "text_hash", "text_version")


class DataRights:
    """Consent, export and erasure for one device.

    consent, gate, outbox: the agent's parts these rights act on. local_events, sent_log:
    what the device keeps for the local page (exported, and wiped by erase). stock: the
    consumable runtimes (their learned models are exported and reset by erase). queue:
    the agent's way into the outbox, queue(decision, kind) (it wakes delivery).
    """

    def __init__(self, profile: dict, consent: "ConsentLedger", gate: "PrivacyGate", outbox: "Outbox",
                 local_events: "RingBuffer", sent_log: "RingBuffer", stock: list,
                 queue: "Callable[..., None]") -> None:  # fmt: skip
        self._profile = profile
        self._consent = consent
        self._gate = gate
        self._outbox = outbox
        self._local_events = local_events
        self._sent_log = sent_log
        self._stock = stock
        self._queue = queue

    def _send(self, kind: str, data: dict, t_ms: int) -> None:
        self._queue(self._gate.control(kind, data, t_ms, self._outbox.next_id), kind)

    def allows(self, category: str) -> bool:
        """Whether the user's consent lets this category out now."""
        return self._consent.allows(category)

    def set_consent(self, category: str, allowed: bool, t_ms: int, wall_s: int = 0) -> dict:
        """The user's choice, at once: a receipt goes upstream (essential); switching off
        purges that category's waiting messages and asks upstream to erase its data."""
        receipt = self.consent_receipt(category, allowed, t_ms, wall_s)
        self.apply_consent(receipt)
        return receipt

    def consent_receipt(self, category: str, allowed: bool, t_ms: int, wall_s: int = 0) -> dict:
        """The checked receipt of a choice, not yet in effect. OutboxFullError, before
        anything changes, when the outbox has no room for the receipt (and erasure
        request): receipts are never dropped, so the user is asked to try again later."""
        receipt = self._consent.receipt(category, allowed, t_ms, wall_s)
        self._room_for(1 if allowed else 2)
        return receipt

    def _room_for(self, critical: int) -> None:
        """OutboxFullError, before anything changes, unless the outbox takes `critical` more
        receipts or erasure requests (they are never dropped: the user tries again later)."""
        if self._outbox.critical_room() < critical:
            raise OutboxFullError(
                "the device holds %d messages that must reach the manufacturer first; try again later"
                % len(self._outbox)
            )

    def apply_consent(self, receipt: dict) -> bool:
        """Put a checked (and, on a device, already stored) receipt into effect. True if
        the ledger let old receipts go (ConsentLedger.apply): rewrite the stored journal
        with the receipts kept (Agent.snapshot().receipts)."""
        trimmed = self._consent.apply(receipt)
        category = receipt["category"]
        t_ms = receipt["t_ms"]
        self._send("consent_receipt", {k: receipt[k] for k in RECEIPT_FIELDS}, t_ms)
        if receipt["choice"] != "on":
            self._outbox.purge(category)
            self._send("erasure_request", {"category": category, "scope": "category"}, t_ms)
            self._outbox.sync()  # a withdrawal is durable at once: its "drop" records must not be lost
        return trimmed

    # enforce_consent, erase and export live in agent/core/rights_seldom.py, imported on
    # first use: a start after damage, or the user's erase or export. Until then a board
    # keeps their code out of its heap (about 2 KB of imports on the unix port, measured).
    def enforce_consent(self, consent_lost: bool, t_ms: int, outbox_damaged: bool = False) -> list:
        """At a start, before anything is sent: the waiting messages of optional categories
        that are off are deleted and upstream is asked to erase their data
        (rights_seldom.enforce_consent says exactly when). Returns what was done, in plain
        words."""
        from agent.core import rights_seldom

        return rights_seldom.enforce_consent(self, consent_lost, t_ms, outbox_damaged)

    def erase(self, t_ms: int) -> None:
        """Wipe what the device holds about its use and ask upstream to erase everything
        (rights_seldom.erase). OutboxFullError, with nothing wiped, when the erasure
        requests would not fit in the outbox."""
        from agent.core import rights_seldom

        rights_seldom.erase(self, t_ms)

    def use_pseudonym_key(self, key: bytes) -> None:
        """Pseudonymous data goes out under this key from now on (a fresh one after erase)."""
        self._gate.key = key

    def erasures_waiting(self) -> int:
        """How many erasure requests wait in the outbox to go upstream."""
        return len([e for e in self._outbox.pending if b'"erasure_request"' in e[ENTRY_PAYLOAD]])

    def learned(self) -> dict:
        """What the consumable trackers learned, by consumable id."""
        return {stock.tracker.id: stock.tracker.to_state() for stock in self._stock}

    def export(self) -> dict:
        """Everything the device holds about its use, as plain data (docs/export.md)."""
        from agent.core import rights_seldom

        return rights_seldom.export(self)
