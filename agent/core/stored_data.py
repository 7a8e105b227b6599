"""The rules of a device's own data files, on both runtimes: consent journal, learned state
and sent log, pseudonym key; what damage to each means and how it is said.

StoredData holds the rules and does no I/O itself: a runtime's subclass gives it six file
operations (agent/device_data.py on the host, firmware/board_data.py on a board), so the
same files are read and written the same way everywhere. The consent journal is
append-only (agent/core/journal.py records); the state is a checked snapshot
(agent/core/state_file.py); the pseudonym key carries a checksum. Damage never turns into
more consent than was given: consent that can no longer be shown is reported as lost, and
agent/core/device.py treats it as a withdrawal. A write that fails (a full flash) leaves
the old file as it was, and is said too.
"""

import hashlib

from agent.core import journal, state_file
from agent.core.consent import ConsentLedger, last_receipt_seq
from agent.core.errors import InputError, StorageError
from agent.core.limits import CONSENT_HISTORY_LEN

JOURNAL = "consent.journal"
STATE = "state.json"
KEY = "pseudonym.key"

# pseudonym.key: a format mark, the key, and the first bytes of SHA-256 over both.
KEY_MAGIC = b"WPK1"
KEY_BYTES = 32
KEY_CHECK_BYTES = 8
KEY_FILE_BYTES = len(KEY_MAGIC) + KEY_BYTES + KEY_CHECK_BYTES
PROBLEMS_KEPT = 8  # storage problems kept for the user to see (the newest)
# The consent journal is read whole: it holds the receipts the ledger keeps, one more until it
# is shortened (CONSENT_HISTORY_LEN), each within journal.MAX_RECORD; a longer file is damage.
JOURNAL_MAX_BYTES = (CONSENT_HISTORY_LEN + 1) * (journal.HEADER + journal.MAX_RECORD)


def encode_key(key: bytes) -> bytes:
    if len(key) != KEY_BYTES:
        raise InputError("a pseudonym key has %d bytes, got %d" % (KEY_BYTES, len(key)))
    check: bytes = hashlib.sha256(KEY_MAGIC + key).digest()[:KEY_CHECK_BYTES]
    return KEY_MAGIC + key + check


def decode_key(data: bytes) -> tuple:
    """(key, None) for an intact key file; (None, why) for anything else."""
    if len(data) == KEY_BYTES:
        return None, "32 bytes without a checksum (an older format, or damage): it cannot be shown to be intact"
    if len(data) != KEY_FILE_BYTES:
        return None, "%d bytes, expected %d" % (len(data), KEY_FILE_BYTES)
    if data[: len(KEY_MAGIC)] != KEY_MAGIC:
        return None, "it does not start with %r" % KEY_MAGIC
    key = data[len(KEY_MAGIC) : len(KEY_MAGIC) + KEY_BYTES]
    if hashlib.sha256(KEY_MAGIC + key).digest()[:KEY_CHECK_BYTES] != data[len(KEY_MAGIC) + KEY_BYTES :]:
        return None, "it fails its checksum"
    return key, None


def why(e: OSError) -> str:
    """An OSError in words: its strerror on CPython; MicroPython's has none ("[Errno 28] ENOSPC")."""
    return getattr(e, "strerror", None) or str(e)


class StoredData:
    """A device's data files. The subclass gives the file operations (each raises OSError
    when the filesystem refuses): _read(name, limit) -> bytes, or None when there is no
    such file; _replace(name, data), atomic; _append(name, data), durable when it returns
    and nothing appended when it raises; _remove(name), quiet when missing;
    _exists(name); _random(n) -> n secret bytes. _where(name) names the file for the user.
    state_bytes: the largest state payload stored (a board's is smaller)."""

    state_bytes = state_file.MAX_BYTES

    def __init__(self) -> None:
        self.problems: list = []  # storage problems since the device was opened, newest last
        self._unsaved = False

    # -- the runtime's file operations ---------------------------------------------------
    def _where(self, name: str) -> str:
        raise NotImplementedError

    def _read(self, name: str, limit: int) -> "bytes | None":
        raise NotImplementedError

    def _replace(self, name: str, data: bytes) -> None:
        raise NotImplementedError

    def _append(self, name: str, data: bytes) -> None:
        raise NotImplementedError

    def _remove(self, name: str) -> None:
        raise NotImplementedError

    def _exists(self, name: str) -> bool:
        raise NotImplementedError

    def _random(self, n: int) -> bytes:
        raise NotImplementedError

    # -- the rules -------------------------------------------------------------------------
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
        return self._exists(JOURNAL) or self._exists(STATE)

    # -- consent -----------------------------------------------------------------------
    def load_consent(self, ledger: ConsentLedger, committed_seq: int = 0) -> tuple:
        """Rebuild the ledger from the journal: (problems, lost). lost is True when the
        stored consent can no longer be shown (unreadable, damaged, or receipts missing
        that the state says were stored: committed_seq): the ledger is then at the
        default, and the caller must treat that as a withdrawal. A missing journal is a
        first boot, unless receipts had been stored."""
        try:
            data = self._read(JOURNAL, JOURNAL_MAX_BYTES + 1)
        except OSError as e:
            return self._consent_lost(ledger, committed_seq, "cannot read the consent journal (%s)" % why(e))
        if data is None:
            if committed_seq > 0:
                return self._consent_lost(ledger, committed_seq,
                                          "the consent journal is missing, but receipt %d had been stored"
                                          % committed_seq)  # fmt: skip
            return [], False
        if len(data) > JOURNAL_MAX_BYTES:
            return self._consent_lost(ledger, committed_seq, "the consent journal is damaged (over %d bytes)"
                                      % JOURNAL_MAX_BYTES)  # fmt: skip
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

    def _consent_lost(self, ledger: ConsentLedger, committed_seq: int, reason: str) -> tuple:
        next_seq = max(ledger.next_seq, committed_seq + 1)
        ledger.reset()
        ledger.history = []
        ledger.next_seq = next_seq  # receipts go on numbering beyond any stored before
        problems = [reason + "; consent that cannot be shown counts as withdrawn: all optional categories are off"]
        try:
            self._replace(JOURNAL, b"")
        except OSError as e:
            problems.append("the damaged consent journal could not be replaced (%s); it is found again at the next "
                            "start" % why(e))  # fmt: skip
        return problems, True

    def append_receipt(self, receipt: dict) -> None:
        """Store a receipt before it takes effect; StorageError (and nothing stored) if
        the filesystem refuses it."""
        record = journal.encode(ConsentLedger.record(receipt))
        try:
            self._append(JOURNAL, record)
        except OSError as e:
            raise StorageError("%s: the consent change could not be stored (%s); nothing was changed"
                               % (self._where(JOURNAL), why(e))) from e  # fmt: skip

    def rewrite_consent(self, history: list) -> list:
        """Replace the journal by the receipts the ledger keeps (atomically); returns
        problems (a failure keeps the longer journal, which loads the same)."""
        try:
            self._replace(JOURNAL, b"".join(journal.encode(ConsentLedger.record(r)) for r in history))
        except OSError as e:
            return [self._problem("cannot shorten the consent journal (%s); it keeps older receipts" % why(e))]
        return []

    # -- learned state, sent log ---------------------------------------------------------
    def load_state(self) -> tuple:
        """(data, problem): (dict, None) when good; (None, None) when there is no file yet;
        (None, "why") when the file cannot be trusted."""
        try:
            raw = self._read(STATE, self.state_bytes * 2 + 1)
        except OSError as e:
            return None, "cannot read %s (%s)" % (self._where(STATE), why(e))
        if raw is None:
            return None, None
        return state_file.decode(raw, self._where(STATE), self.state_bytes)

    def save_state(self, data: dict) -> "str | None":
        """Store the state; returns a problem in plain words, or None. A failure keeps the
        state stored before (and the caller keeps the new one in memory, to try again)."""
        try:
            self._replace(STATE, state_file.encode(data, self.state_bytes))
        except (OSError, StorageError, MemoryError) as e:
            # MemoryError: a board's fragmented heap without a block for the file's text now;
            # said and tried again, never the end of the run.
            self._unsaved = True
            reason = why(e) if isinstance(e, OSError) else str(e) or "no memory for it now"
            return self._problem(
                "cannot store the learned state and the sent log (%s): the state stored before is kept, and what "
                "this run learned stays in memory until it can be stored" % reason
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
        try:
            data = self._read(KEY, KEY_FILE_BYTES + 1)
        except OSError as e:
            reason = "cannot read pseudonym.key (%s)" % why(e)
        else:
            if data is None:
                if not holds_data:
                    return self.new_pseudonym_key()  # first start
                reason = "pseudonym.key is missing although the device holds data"
            else:
                key, damage = decode_key(data)
                if key is not None:
                    return key, None
                reason = "pseudonym.key is damaged (%s)" % damage
        key, problem = self.new_pseudonym_key()
        text = (reason + ": it is not used. A new key was made: pseudonymous data (such as usage statistics) goes "
                "out under a new pseudonym from now on, which recipients cannot link to the old one")  # fmt: skip
        return key, self._problem(text + ("; " + problem if problem else ""))

    def new_pseudonym_key(self) -> tuple:
        """(a fresh key, problem or None): stored with its checksum if the filesystem allows."""
        key = self._random(KEY_BYTES)
        try:
            self._replace(KEY, encode_key(key))
        except OSError as e:
            return key, self._problem("the new pseudonym key could not be stored (%s): it is used until the agent "
                                      "stops, and the next start makes another" % why(e))  # fmt: skip
        return key, None

    def erase(self) -> None:
        """Wipe the personal data: consent history, learned state, sent log, pseudonym key.
        (Waiting messages, the erasure requests among them, stay in the outbox.)"""
        for name in (JOURNAL, STATE, KEY):
            self._remove(name)
