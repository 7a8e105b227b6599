"""The outbox: messages the privacy gate let through, kept until the broker acknowledged them.

Logic here, storage behind a small interface (a memory store for tests and the board,
files on the host: agent/outbox_files.py). Everything is one append-only log of journal
records in segments: a message record (id, priority, category, topic, payload), and
small "ack" and "drop" records. Recovery replays the log and stops at the first torn
or corrupt record; a segment is deleted once nothing in it is pending.

Bounded: at most `capacity` pending messages. When full, the oldest message of the
lowest priority goes (a "drop" record says so); consent receipts and erasure requests
(priority CRITICAL) are never dropped. Every message has an id, increasing across
restarts, so the receiver can deduplicate: delivery is at least once.
"""

import json

from agent.core import journal, limits

CRITICAL = 3  # consent receipts, erasure requests: never dropped
HIGH = 2  # maintenance alerts, status
NORMAL = 1
LOW = 0  # statistics
REPLY = -1  # command replies and what commands ask for: the first to go, they push out only each other

SEGMENT_BYTES = 64 * 1024


class MemoryStore:
    """Segments in memory (tests, and boards before flash storage is set up)."""

    def __init__(self) -> None:
        self.data: dict = {}

    def segments(self) -> list:
        return sorted(self.data)

    def read(self, seg: int) -> bytes:
        return bytes(self.data.get(seg, b""))

    def append(self, seg: int, data: bytes) -> None:
        self.data.setdefault(seg, bytearray()).extend(data)

    def truncate(self, seg: int, length: int) -> None:
        del self.data[seg][length:]

    def remove(self, seg: int) -> None:
        self.data.pop(seg, None)

    def sync(self) -> None:
        pass


class Outbox:
    def __init__(self, capacity: int = limits.OUTBOX_LEN, store: object = None) -> None:
        self.capacity = capacity
        self.store = store if store is not None else MemoryStore()
        self.pending: list = []  # [id, priority, category, topic, payload, segment], oldest first
        self.next_id = 1
        self.accepted = 0
        self.delivered = 0
        self.dropped = 0
        self.purged = 0
        self.problems: list = []
        self.seg = 1
        self.seg_size = 0
        self._recover()

    def __len__(self) -> int:
        return len(self.pending)

    # -- recovery ---------------------------------------------------------------------------
    def _recover(self) -> None:
        by_id: dict = {}
        segs = self.store.segments()  # type: ignore[attr-defined]
        for n, seg in enumerate(segs):
            data = self.store.read(seg)  # type: ignore[attr-defined]
            records, good, problem = journal.decode(data)
            for raw in records:
                try:
                    rec = json.loads(raw)
                    kind = rec[0]
                    if kind == "m":
                        mid = rec[1]
                        by_id[mid] = [mid, rec[2], rec[3], rec[4], rec[5].encode(), seg]
                        self.next_id = max(self.next_id, mid + 1)
                    elif kind in ("a", "d"):
                        by_id.pop(rec[1], None)
                        # Ids must keep rising even when every message was delivered.
                        self.next_id = max(self.next_id, rec[1] + 1)
                except (ValueError, TypeError, IndexError, KeyError, AttributeError):
                    self.problems.append("outbox segment %d holds an unreadable record; it is skipped" % seg)
            if problem is not None:
                self.problems.append("outbox segment %d: %s; the rest of it is cut off" % (seg, problem))
                self.store.truncate(seg, good)  # type: ignore[attr-defined]
                # Later segments were written after the damage: keep what they hold.
            if n == len(segs) - 1:
                self.seg = seg
                self.seg_size = good if problem is not None else len(data)
        self.pending = sorted(by_id.values(), key=lambda e: e[0])
        while len(self.pending) > self.capacity:
            self._drop_one()
        self._collect()

    # -- writing ------------------------------------------------------------------------------
    def _write(self, rec: list) -> int:
        data = journal.encode(json.dumps(rec).encode())
        if self.seg_size + len(data) > SEGMENT_BYTES and self.seg_size:
            self.seg += 1
            self.seg_size = 0
        try:
            self.store.append(self.seg, data)  # type: ignore[attr-defined]
        except OSError as e:
            # Storage failed (a full disk): the message stays in memory, and this is said.
            self._problem("cannot store the outbox: %s; messages are kept in memory only" % e)
        self.seg_size += len(data)
        return self.seg

    def _problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)
            del self.problems[:-8]

    def push(self, topic: str, payload: bytes, category: str = "", priority: int = NORMAL) -> int:
        """Keep a message until acknowledged; returns its id. Call sync() to make it durable.

        Consent receipts and erasure requests may use a reserve beyond the capacity;
        when even that is full, OverflowError tells the caller to try again later."""
        while len(self.pending) >= self.capacity:
            if self._drop_one(priority):
                continue
            if priority >= CRITICAL and len(self.pending) < self.capacity + limits.OUTBOX_CRITICAL_RESERVE:
                break
            raise OverflowError(
                "the outbox holds %d messages that may not be dropped; try again later" % len(self.pending)
            )
        mid = self.next_id
        self.next_id += 1
        seg = self._write(["m", mid, priority, category, topic, payload.decode()])
        self.pending.append([mid, priority, category, topic, payload, seg])
        self.accepted += 1
        return mid

    def critical_room(self) -> int:
        """How many more CRITICAL messages push() takes now (others give way to them)."""
        critical = 0
        for e in self.pending:
            if e[1] >= CRITICAL:
                critical += 1
        return self.capacity + limits.OUTBOX_CRITICAL_RESERVE - critical

    def _drop_one(self, incoming: int = CRITICAL) -> bool:
        """Drop the oldest message of the lowest priority below CRITICAL (and not above
        the incoming message's priority); False if nothing may go."""
        lowest = None
        for e in self.pending:
            if e[1] < CRITICAL and e[1] <= incoming and (lowest is None or e[1] < lowest[1]):
                lowest = e
        if lowest is None:
            return False
        self.pending.remove(lowest)
        self._write(["d", lowest[0]])
        self.dropped += 1
        return True

    def sync(self) -> None:
        try:
            self.store.sync()  # type: ignore[attr-defined]
        except OSError as e:
            self._problem("cannot store the outbox: %s; messages are kept in memory only" % e)

    # -- reading and acknowledging --------------------------------------------------------------
    def peek(self) -> tuple:
        """The oldest waiting (topic, payload, category); IndexError when empty."""
        e = self.pending[0]
        return (e[3], e[4], e[2])

    def peek_entry(self) -> list:
        """The oldest waiting entry [id, priority, category, topic, payload, segment]."""
        return self.pending[0]  # type: ignore[no-any-return]

    def ack(self, mid: int | None = None) -> None:
        """The broker has the message (default: the oldest): forget it."""
        if mid is None:
            mid = self.pending[0][0]
        for i, e in enumerate(self.pending):
            if e[0] == mid:
                del self.pending[i]
                self._write(["a", mid])
                self.delivered += 1
                self._collect()
                return
        raise KeyError(mid)

    def purge(self, category: str) -> int:
        """Remove every waiting message of a category (consent withdrawn); returns how many."""
        gone = [e for e in self.pending if e[2] == category]
        for e in gone:
            self.pending.remove(e)
            self._write(["d", e[0]])
        self.purged += len(gone)
        self._collect()
        return len(gone)

    def items(self) -> list:
        return [(e[3], e[4], e[2]) for e in self.pending]

    def _collect(self) -> None:
        """Delete whole segments older than the oldest pending message's (and not current)."""
        keep_from = min([e[5] for e in self.pending] + [self.seg])
        for seg in self.store.segments():  # type: ignore[attr-defined]
            if seg < keep_from:
                self.store.remove(seg)  # type: ignore[attr-defined]
