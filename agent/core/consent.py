"""The consent ledger: the user's current choice per data category and its history.

Privacy by default: the essential category is always on, every optional one starts off.
Each change yields a consent receipt (category, choice, time, version and hash of the
text the user saw, device id). The ledger is rebuilt from its receipts; persistence is
the host's job (agent/core/journal.py gives the record format).
"""

import binascii
import hashlib
import json

from agent.core.encoding import encode
from agent.core.errors import ConfigError
from agent.core.limits import CONSENT_HISTORY_LEN

ON = "on"
OFF = "off"


# What the local page's claims about a category are made of (agent/local_page/claims.py):
# a change to any of them changes what the user is told, and so the receipt's hash.
CLAIMED = ("fields", "time_grain_s", "round", "pseudonymous", "recipients", "retention_days",
           "upstream_retention_days", "daily_budget_bytes", "legal_basis")  # fmt: skip


def text_hash(category: dict) -> str:
    """SHA-256 of what the user is shown about the category: title and purpose in both
    languages, and what the page's claims are made of (CLAIMED, encoded the same on CPython
    and MicroPython)."""
    h = hashlib.sha256()
    for lang in ("en", "de"):
        h.update(category["title"][lang].encode())
        h.update(b"\n")
        h.update(category["purpose"][lang].encode())
        h.update(b"\n")
    claimed = {}
    for key in CLAIMED:
        claimed[key] = category.get(key)
    h.update(encode(claimed, 1 << 16))
    return binascii.hexlify(h.digest()).decode()


def last_receipt_seq(history: list) -> int:
    """The highest receipt number in a consent history (0 for none)."""
    seqs = [r.get("seq") for r in history]
    return max([s for s in seqs if type(s) is int] + [0])


class ConsentLedger:
    """Current consent per category, from which the privacy gate decides."""

    def __init__(self, categories: list, device_id: str = "") -> None:
        self.device_id = device_id
        self.categories = {}
        for cat in categories:
            self.categories[cat["id"]] = cat
        self.essential = [c["id"] for c in categories if c.get("essential")]
        self.history: list = []
        self.next_seq = 1
        self.reset()

    def reset(self) -> None:
        """Privacy by default: essential on, everything optional off (first boot, factory
        reset, a ledger that cannot be read)."""
        self._on = {}
        self._since = {}
        for cid in self.categories:
            self._on[cid] = cid in self.essential
            self._since[cid] = 0

    def allows(self, category: str) -> bool:
        return self._on.get(category, False)

    def since_ms(self, category: str) -> int:
        """When the category was last switched on (data from before must not leave)."""
        return self._since.get(category, 0)

    def choices(self) -> dict:
        return {cid: (ON if on else OFF) for cid, on in self._on.items()}

    def set(self, category: str, allowed: bool, t_ms: int = 0, wall_s: int = 0) -> dict:
        """Record the user's choice; returns its receipt. Raises ConfigError for an
        unknown category or for switching off the essential one."""
        receipt = self.receipt(category, allowed, t_ms, wall_s)
        self.apply(receipt)
        return receipt

    def receipt(self, category: str, allowed: bool, t_ms: int = 0, wall_s: int = 0) -> dict:
        """The receipt of a choice, checked but not yet in effect (so it can be stored
        first: a power cut then loses nothing the user was told)."""
        cat = self.categories.get(category)
        if cat is None:
            raise ConfigError("no data category " + repr(category) + "; known: " + ", ".join(sorted(self.categories)))
        if category in self.essential and not allowed:
            raise ConfigError("the essential category " + repr(category) + " keeps the device safe and cannot be off")
        receipt = {
            "category": category,
            "choice": ON if allowed else OFF,
            "t_ms": t_ms,
            "time": wall_s,
            "text_version": cat.get("version", 1),
            "text_hash": text_hash(cat),
            "device": self.device_id,
            "seq": self.next_seq,
        }
        return receipt

    def apply(self, receipt: dict) -> bool:
        """Put a receipt into effect and keep it; True if older receipts were let go to
        stay within CONSENT_HISTORY_LEN (then the stored journal should be rewritten)."""
        self._apply(receipt)
        self.history.append(receipt)
        return self._bound()

    def _bound(self) -> bool:
        """Keep the newest receipts and, whatever their age, each category's latest one
        (so a replay of the kept history gives the same choices)."""
        if len(self.history) <= CONSENT_HISTORY_LEN:
            return False
        recent = CONSENT_HISTORY_LEN - len(self.categories)
        keep: list = []
        seen: dict = {}
        for i in range(len(self.history) - 1, -1, -1):
            r = self.history[i]
            if len(keep) < recent or r["category"] not in seen:
                keep.append(r)
            seen[r["category"]] = True
        keep.reverse()
        self.history = keep
        return True

    def _apply(self, receipt: dict) -> None:
        seq = receipt.get("seq", 0)
        if isinstance(seq, int) and seq >= self.next_seq:
            self.next_seq = seq + 1
        cid = receipt["category"]
        on = receipt["choice"] == ON
        if on and not self._on.get(cid):
            self._since[cid] = receipt["t_ms"]
        self._on[cid] = on or cid in self.essential

    def replay(self, records: list) -> list:
        """Rebuild from stored receipts (JSON bytes), oldest first; returns problems.
        Any problem resets to privacy by default: a doubtful ledger never grants."""
        self.reset()
        self.history = []
        self.next_seq = 1
        for i, raw in enumerate(records):
            try:
                receipt = json.loads(raw)
                ok = (isinstance(receipt, dict) and receipt["category"] in self.categories
                      and receipt["choice"] in (ON, OFF) and type(receipt.get("t_ms")) is int)  # fmt: skip
            except (ValueError, KeyError, TypeError, RuntimeError):  # RuntimeError: nested too deep
                ok = False
            if not ok:
                self.reset()
                self.history = []
                return ["consent record %d is not valid; all optional categories are off" % (i + 1)]
            self._apply(receipt)
            self.history.append(receipt)
        self._bound()
        # Those choices were made before this start: this run's data all comes after.
        for cid in self._since:
            self._since[cid] = 0
        return []

    @staticmethod
    def record(receipt: dict) -> bytes:
        """A receipt as journal payload."""
        return json.dumps(receipt).encode()
