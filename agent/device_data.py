"""The device's own storage on the host: consent journal, learned state, sent log, keys.

One directory per device. The consent journal is append-only (agent/core/journal.py
records, each write synced); everything else is a checked snapshot (state_store).
Problems are reported in plain words and never turn into more consent than was given.
"""

import json
import os

from agent import state_store
from agent.core import journal
from agent.core.consent import ConsentLedger

JOURNAL = "consent.journal"
STATE = "state.json"
KEY = "pseudonym.key"


class DeviceData:
    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root, exist_ok=True)

    def _path(self, name: str) -> str:
        return os.path.join(self.root, name)

    # -- consent -----------------------------------------------------------------------
    def load_consent(self, ledger: ConsentLedger) -> list:
        """Rebuild the ledger from the journal; returns problems (a missing journal is a
        first boot, not a problem)."""
        try:
            with open(self._path(JOURNAL), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        except OSError as e:
            ledger.reset()
            return ["cannot read the consent journal (%s); all optional categories are off" % e]
        records, good, problem = journal.decode(data)
        problems = []
        if problem is not None:
            if good + journal.HEADER + journal.MAX_RECORD >= len(data) and "cut off" in problem:
                # A write that a power cut interrupted: that change never happened.
                problems.append("the last consent change was not completely written (%s) and is ignored" % problem)
            else:
                ledger.reset()
                self._rewrite([])
                return ["the consent journal is damaged (%s); all optional categories are off" % problem]
            self._rewrite(records)
        replayed = ledger.replay(records)
        if not replayed and len(ledger.history) < len(records):
            self.rewrite_consent(ledger.history)  # older receipts let go (CONSENT_HISTORY_LEN)
        return problems + replayed

    def append_receipt(self, receipt: dict) -> None:
        with open(self._path(JOURNAL), "ab") as f:
            f.write(journal.encode(ConsentLedger.record(receipt)))
            f.flush()
            os.fsync(f.fileno())

    def rewrite_consent(self, history: list) -> None:
        """Replace the journal by the receipts the ledger keeps (atomically)."""
        self._rewrite([ConsentLedger.record(r) for r in history])

    def _rewrite(self, records: list) -> None:
        tmp = self._path(JOURNAL + ".tmp")
        with open(tmp, "wb") as f:
            for rec in records:
                f.write(journal.encode(rec))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._path(JOURNAL))

    # -- learned state, sent log ---------------------------------------------------------
    def load_state(self) -> tuple:
        return state_store.load(self._path(STATE))

    def save_state(self, data: dict) -> None:
        state_store.save(self._path(STATE), data)

    def pseudonym_key(self) -> bytes:
        """A random per-device secret for pseudonymous ids, made once (and anew on erase)."""
        path = self._path(KEY)
        try:
            with open(path, "rb") as f:
                key = f.read(64)
            if len(key) == 32:
                return key
        except FileNotFoundError:
            pass
        key = os.urandom(32)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return key

    def factory_reset(self) -> list:
        """erase(), and the device's identity material (identity/) too, except the files
        that provisioning lists as permanent in identity/permanent.json. Returns what was
        removed from identity/."""
        self.erase()
        ident = os.path.join(self.root, "identity")
        if not os.path.isdir(ident):
            return []
        keep = {"permanent.json"}
        try:
            with open(os.path.join(ident, "permanent.json"), encoding="utf-8") as f:
                listed = json.load(f)
            keep |= {name for name in listed if isinstance(name, str)}
        except (OSError, ValueError, TypeError):
            pass  # no (readable) list: nothing but the list itself is permanent
        removed = []
        for name in sorted(os.listdir(ident)):
            if name not in keep:
                os.remove(os.path.join(ident, name))
                removed.append(name)
        return removed

    def erase(self) -> None:
        """Wipe the personal data: consent history, learned state, sent log, pseudonym key.
        (Waiting messages, the erasure requests among them, stay in the outbox.)"""
        for name in (JOURNAL, STATE, KEY):
            try:
                os.remove(self._path(name))
            except FileNotFoundError:
                pass
