"""The device's own storage on the host: consent journal, learned state, sent log, keys.

One directory per device, made 0700; every file in it is written 0600 through
agent/files.py. The consent journal is append-only (agent/core/journal.py records, each
write synced); the learned state is a checked snapshot (state_store); the pseudonym key
carries a checksum. Damage is said in plain words and never turns into more consent than
was given: consent that can no longer be shown is reported as lost, and agent/device.py
treats it as a withdrawal. A write that fails (a full disk) leaves the old file as it
was, and is said too.
"""

import hashlib
import json
import os

from agent import files, state_store
from agent.core import journal
from agent.core.consent import ConsentLedger, last_receipt_seq
from agent.core.errors import InputError, StorageError

JOURNAL = "consent.journal"
STATE = "state.json"
KEY = "pseudonym.key"

# pseudonym.key: a format mark, the key, and the first bytes of SHA-256 over both.
KEY_MAGIC = b"WPK1"
KEY_BYTES = 32
KEY_CHECK_BYTES = 8
KEY_FILE_BYTES = len(KEY_MAGIC) + KEY_BYTES + KEY_CHECK_BYTES
PROBLEMS_KEPT = 8  # storage problems kept for the user to see (the newest)


def encode_key(key: bytes) -> bytes:
    if len(key) != KEY_BYTES:
        raise InputError("a pseudonym key has %d bytes, got %d" % (KEY_BYTES, len(key)))
    return KEY_MAGIC + key + hashlib.sha256(KEY_MAGIC + key).digest()[:KEY_CHECK_BYTES]


def decode_key(data: bytes) -> tuple:
    """(key, None) for an intact key file; (None, why) for anything else."""
    if len(data) == KEY_BYTES:
        return None, "32 bytes without a checksum (an older format, or damage): it cannot be shown to be intact"
    if len(data) != KEY_FILE_BYTES:
        return None, "%d bytes, expected %d" % (len(data), KEY_FILE_BYTES)
    if not data.startswith(KEY_MAGIC):
        return None, "it does not start with %r" % KEY_MAGIC
    key = data[len(KEY_MAGIC) : len(KEY_MAGIC) + KEY_BYTES]
    if hashlib.sha256(KEY_MAGIC + key).digest()[:KEY_CHECK_BYTES] != data[len(KEY_MAGIC) + KEY_BYTES :]:
        return None, "it fails its checksum"
    return key, None


class DeviceData:
    def __init__(self, root: str) -> None:
        self.root = root
        files.private_dir(root)
        self.problems: list[str] = []  # storage problems since the device was opened, newest last
        self._unsaved = False

    def _path(self, name: str) -> str:
        return os.path.join(self.root, name)

    @property
    def unsaved(self) -> bool:
        """True while the last attempt to store the state failed."""
        return self._unsaved

    def _problem(self, text: str) -> str:
        if text not in self.problems:
            self.problems.append(text)
            del self.problems[:-PROBLEMS_KEPT]
        return text

    def holds_data(self) -> bool:
        """Whether the device stored consent or state before (so a missing key is a loss)."""
        return os.path.exists(self._path(JOURNAL)) or os.path.exists(self._path(STATE))

    # -- consent -----------------------------------------------------------------------
    def load_consent(self, ledger: ConsentLedger, committed_seq: int = 0) -> tuple:
        """Rebuild the ledger from the journal: (problems, lost). lost is True when the
        stored consent can no longer be shown (unreadable, damaged, or receipts missing
        that the state says were stored: committed_seq): the ledger is then at the
        default, and the caller must treat that as a withdrawal. A missing journal is a
        first boot, unless receipts had been stored."""
        try:
            with open(self._path(JOURNAL), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            if committed_seq > 0:
                return self._consent_lost(ledger, committed_seq,
                                          "the consent journal is missing, but receipt %d had been stored"
                                          % committed_seq)  # fmt: skip
            return [], False
        except OSError as e:
            return self._consent_lost(ledger, committed_seq, "cannot read the consent journal (%s)" % e.strerror)
        records, good, problem = journal.decode(data)
        torn = None
        if problem is not None:
            if good + journal.HEADER + journal.MAX_RECORD >= len(data) and "cut off" in problem:
                torn = problem  # a write that a power cut interrupted: that change never happened
            else:
                return self._consent_lost(ledger, committed_seq, "the consent journal is damaged (%s)" % problem)
        invalid = ledger.replay(records)
        if invalid:
            return self._consent_lost(ledger, committed_seq, "the consent journal is damaged (%s)" % invalid[0])
        last = last_receipt_seq(ledger.history)
        if last < committed_seq:
            # Cut at a record boundary, or emptied: the checksums cannot see it, the count can.
            return self._consent_lost(ledger, committed_seq, "the consent journal ends at receipt %d, but receipt %d "
                                      "had been stored" % (last, committed_seq))  # fmt: skip
        problems = []
        if torn is not None:
            problems.append("the last consent change was not completely written (%s) and is ignored" % torn)
        if torn is not None or len(ledger.history) < len(records):  # older receipts let go (CONSENT_HISTORY_LEN)
            problems += self.rewrite_consent(ledger.history)
        return problems, False

    def _consent_lost(self, ledger: ConsentLedger, committed_seq: int, why: str) -> tuple:
        next_seq = max(ledger.next_seq, committed_seq + 1)
        ledger.reset()
        ledger.history = []
        ledger.next_seq = next_seq  # receipts go on numbering beyond any stored before
        problems = [why + "; consent that cannot be shown counts as withdrawn: all optional categories are off"]
        try:
            self._rewrite([])
        except OSError as e:
            problems.append("the damaged consent journal could not be replaced (%s); it is found again at the next "
                            "start" % e.strerror)  # fmt: skip
        return problems, True

    def append_receipt(self, receipt: dict) -> None:
        """Store a receipt before it takes effect; StorageError (and nothing stored) if
        the disk refuses it."""
        path = self._path(JOURNAL)
        record = journal.encode(ConsentLedger.record(receipt))
        try:
            with files.open_append(path) as f:
                size = os.fstat(f.fileno()).st_size
                files.write_all(f, record, size)
                try:
                    os.fsync(f.fileno())
                except OSError:
                    os.ftruncate(f.fileno(), size)  # not known to be stored: not stored
                    raise
        except OSError as e:
            raise StorageError("%s: the consent change could not be stored (%s); nothing was changed"
                               % (path, e.strerror or e)) from e  # fmt: skip

    def rewrite_consent(self, history: list) -> list:
        """Replace the journal by the receipts the ledger keeps (atomically); returns
        problems (a failure keeps the longer journal, which loads the same)."""
        try:
            self._rewrite([ConsentLedger.record(r) for r in history])
        except OSError as e:
            return [self._problem("cannot shorten the consent journal (%s); it keeps older receipts" % e.strerror)]
        return []

    def _rewrite(self, records: list) -> None:
        files.write_atomic(self._path(JOURNAL), b"".join(journal.encode(rec) for rec in records))

    # -- learned state, sent log ---------------------------------------------------------
    def load_state(self) -> tuple:
        return state_store.load(self._path(STATE))

    def save_state(self, data: dict) -> str | None:
        """Store the state; returns a problem in plain words, or None. A failure keeps the
        state stored before (and the caller keeps the new one in memory, to try again)."""
        try:
            state_store.save(self._path(STATE), data)
        except (OSError, StorageError) as e:
            self._unsaved = True
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            return self._problem(
                "cannot store the learned state and the sent log (%s): the state stored before is kept, and what "
                "this run learned stays in memory until it can be stored" % why
            )
        if self._unsaved:
            self._unsaved = False
            return self._problem("the learned state and the sent log are stored again")
        return None

    # -- pseudonym key -------------------------------------------------------------------
    def load_pseudonym_key(self, holds_data: bool = False) -> tuple:
        """(key, problem or None): the per-device secret for pseudonymous ids, checked. A
        key that is unreadable or damaged (or missing on a device that holds data) is
        never used: a new one is made, and the problem says what that means."""
        path = self._path(KEY)
        try:
            with open(path, "rb") as f:
                data = f.read(KEY_FILE_BYTES + 1)
        except FileNotFoundError:
            if not holds_data:
                return self.new_pseudonym_key()  # first start
            why = "pseudonym.key is missing although the device holds data"
        except OSError as e:
            why = "cannot read pseudonym.key (%s)" % e.strerror
        else:
            key, damage = decode_key(data)
            if key is not None:
                return key, None
            why = "pseudonym.key is damaged (%s)" % damage
        key, problem = self.new_pseudonym_key()
        text = (why + ": it is not used. A new key was made: pseudonymous data (such as usage statistics) goes out "
                "under a new pseudonym from now on, which recipients cannot link to the old one")  # fmt: skip
        return key, self._problem(text + ("; " + problem if problem else ""))

    def new_pseudonym_key(self) -> tuple:
        """(a fresh key, problem or None): stored with its checksum if the disk allows."""
        key = os.urandom(KEY_BYTES)
        try:
            files.write_atomic(self._path(KEY), encode_key(key))
        except OSError as e:
            return key, self._problem("the new pseudonym key could not be stored (%s): it is used until the agent "
                                      "stops, and the next start makes another" % e.strerror)  # fmt: skip
        return key, None

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
