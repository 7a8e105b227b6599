"""The outbox: messages the privacy gate let through, kept until they are delivered: most
until the broker acknowledged them, those owed to the user until the backend confirmed them.

Logic here, storage behind a small interface: files on the host (agent/outbox_files.py),
a memory store that stands for flash in tests, and a volatile store that keeps no log
(a board with no storage for it: the outbox lives in RAM only, its pending list).
Everything is one append-only log of journal records in segments: a message record
(id, priority, category, topic, payload), small "ack", "drop", "awaiting" and
"confirmed" records, and at the start of each segment a "next id" record. A segment
is deleted once nothing in it is pending.

Consent receipts and erasure requests (priority CRITICAL) are owed to the user. A broker
acknowledgement does not show that the backend has them (under MQTT 3.1.1 a broker
acknowledges a message its ACL denied), so such a message only moves to "awaiting
confirmation" then, and stays until the backend confirms its id (confirm()); it is offered
again, with the same id, after a wait that doubles each time (confirm_wait_ms) and
whenever the link is made again (reoffer()). Every other message is done once the broker
acknowledged it.

Bounded: at most `capacity` pending messages besides those awaiting confirmation, and at
most capacity + reserve (OUTBOX_CRITICAL_RESERVE by default) in all. When full, the oldest message of the
lowest priority goes (a "drop" record says so); messages owed to the user are never
dropped: when even the reserve is full, OutboxFullError says "try again later". Every
message has an id, increasing across restarts, so the receiver can deduplicate: delivery
is at least once.

Recovery replays the log. A write cut off at the very end of the log (a power cut before
the records were synced) loses only those unsynced records. Anything else is damage: a
record failing its check in the middle, an empty or missing segment, a record that
cannot be read, or fewer messages than the device knew it had written. Damage is said,
with how many waiting messages may be lost (counted from the ids around the gap); the
messages written before the damaged part may have lost their "ack" or "drop" records (a
withdrawal of consent drops messages), so only those of the essential categories (safe
to send twice) are kept; ids continue beyond anything the lost part could have held; and
the log is written anew, so the next start is clean.
"""

import json

from agent.core import journal, limits
from agent.core.compat import const
from agent.core.errors import InputError, OutboxFullError, StateError
from agent.core.ratelimit import doubling_ms

CRITICAL = 3  # consent receipts, erasure requests: never dropped
HIGH = 2  # maintenance alerts, status
NORMAL = 1
LOW = 0  # statistics
REPLY = -1  # command replies and what commands ask for: the first to go, they push out only each other
# What a data category's "priority" in the profile names. CRITICAL is not among them: it
# is for consent receipts and erasure requests, which are owed to the user.
CATEGORY_PRIORITIES = {"low": LOW, "normal": NORMAL, "high": HIGH}

# A pending message is a list read by these indexes, not an object with named attributes:
# on MicroPython an instance (even with __slots__, which it ignores) takes about a third
# more heap than a six-item list (136 against 104 bytes on the 64-bit unix port, measured),
# and the outbox holds up to capacity + reserve of them.
ENTRY_ID = const(0)  # the message id (increasing across restarts)
ENTRY_PRIORITY = const(1)  # CRITICAL .. LOW, or REPLY
ENTRY_CATEGORY = const(2)  # the data category (purged with its consent)
ENTRY_TOPIC = const(3)
ENTRY_PAYLOAD = const(4)  # bytes
ENTRY_SEGMENT = const(5)  # the log segment that holds its message record

SEGMENT_BYTES = 64 * 1024
# A segment never holds more records than this; after damage, ids skip this many, so no
# id the lost part may have given to a message (that the receiver may have) is used again.
ID_SKIP = SEGMENT_BYTES // journal.HEADER
# A segment file longer than this was not written by the outbox: reading stops there.
SEGMENT_READ_BYTES = SEGMENT_BYTES + journal.HEADER + journal.MAX_RECORD
# Damaged segments named one by one in the report; the rest are counted.
_DAMAGE_NAMED = 3

# Where a pending message stands (state_of), and what took() made of an acknowledged one.
WAITING = "waiting"  # not yet acknowledged by the broker
AWAITING = "awaiting confirmation"  # the broker took it; owed to the user, it waits for the backend's confirmation
DONE = "done"  # the broker took it, and that is all it needs: forgotten
GONE = "gone"  # no longer pending (confirmed, dropped or withdrawn meanwhile)


class ConfirmWait:
    """A message the broker took that waits for the backend's confirmation: how often it
    was offered since the broker first took it, and when it is offered again (None: at
    once). As small as a two-item list on MicroPython (measured), and named."""

    __slots__ = ("due", "offers")

    def __init__(self) -> None:
        self.offers = 0
        self.due: int | None = None


def confirm_wait_ms(offers: int) -> int:
    """How long a message awaiting confirmation waits before it is offered again, after
    `offers` offers since the first the broker took (0: after the first)."""
    return doubling_ms(limits.CONFIRM_WAIT_MS, offers, limits.CONFIRM_WAIT_CAP_MS)


class VolatileStore:
    """Keeps no log: the outbox lives in RAM only, as its pending list (a board with no
    storage for it). A restart loses what waits, as RAM does; nothing is said to be
    durable that is not. Holding the log in RAM as well would keep every message twice
    and every "ack" and "drop" record until its segment goes."""

    def segments(self) -> list:
        return []

    def read(self, seg: int) -> bytes:
        return b""

    def append(self, seg: int, data: bytes) -> None:
        pass

    def truncate(self, seg: int, length: int) -> None:
        pass

    def remove(self, seg: int) -> None:
        pass

    def sync(self) -> None:
        pass


class MemoryStore:
    """Segments in memory that stand for flash storage in tests (recovery, damage)."""

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


def _is_id(value: object) -> bool:
    return type(value) is int and value >= 1


def _parse(raw: bytes) -> list | None:
    """A record as the outbox writes it (payload as bytes), or None for anything else."""
    try:
        rec = json.loads(raw)
    except (ValueError, RuntimeError):  # RuntimeError: nested too deep (RecursionError on CPython)
        return None
    if not isinstance(rec, list) or not rec:
        return None
    kind = rec[0]
    try:
        if kind == "m" and len(rec) == 6 and _is_id(rec[1]) and type(rec[2]) is int and LOW <= rec[2] <= CRITICAL:
            if isinstance(rec[3], str) and isinstance(rec[4], str) and isinstance(rec[5], str):
                rec[3].encode()
                rec[4].encode()
                rec[5] = rec[5].encode()
                return rec
        elif kind in ("a", "d", "w", "c") and len(rec) == 2 and _is_id(rec[1]):
            return rec
        elif kind == "n" and len(rec) == 3 and _is_id(rec[1]) and _is_id(rec[2]) and rec[1] <= rec[2]:
            return rec
    except ValueError:  # a lone surrogate that cannot become UTF-8 (UnicodeError is a ValueError)
        return None
    return None


def _range(first: int, last: int) -> str:
    return str(first) if first == last else "%d to %d" % (first, last)


def _tail_words(empty: list, cut: tuple | None, damaged: bool) -> list:
    """What an empty segment or a cut-off last record means, in plain words."""
    out = []
    if cut is not None:
        seg, problem = cut[0], cut[2]
        if damaged:
            out.append("outbox segment %d: %s" % (seg, problem))
        else:
            out.append("outbox segment %d: %s; the records from there on had not reached the disk (a power cut or "
                       "a full disk) and are lost" % (seg, problem))  # fmt: skip
    if empty:
        segs = "segment %d is" % empty[0] if len(empty) == 1 else "segments %s are" % _range(empty[0], empty[-1])
        if damaged:
            out.append("outbox %s empty" % segs)
        else:
            out.append("outbox %s empty: what was written to it had not reached the disk (a power cut or a full "
                       "disk) and is lost; how much cannot be told" % segs)  # fmt: skip
    return out


def _lost(seen: dict, skipped: list, lo: int, hi: int) -> int:
    """How many ids from lo to hi no record accounts for: messages whose records were in
    the damaged part (some may have been delivered before: at most this many); -1 when
    no record is left to count from."""
    if not lo:
        return -1 if hi else 0
    if hi < lo:
        return 0
    accounted = 0
    for mid in seen:
        if lo <= mid <= hi:
            accounted += 1
    for first, end in skipped:
        accounted += max(0, min(end, hi + 1) - max(first, lo))
    return max(0, hi - lo + 1 - accounted)


class Outbox:
    def __init__(
        self,
        capacity: int = limits.OUTBOX_LEN,
        store: object = None,
        essential: tuple = (),
        known_last_id: int = 0,
        reserve: int = limits.OUTBOX_CRITICAL_RESERVE,
    ) -> None:
        """store: VolatileStore by default (RAM only). reserve: the room consent receipts
        and erasure requests have beyond the capacity. essential: the categories whose
        messages may be sent twice without harm (consent receipts, erasure requests,
        status); after damage only they are kept of what was written before the damaged
        part. known_last_id: the highest id the device knew it had used when it last
        stored its state (0: not known); ids up to it that the log no longer holds were
        lost."""
        self.capacity = capacity
        self.reserve = reserve
        self.store = store if store is not None else VolatileStore()
        self._volatile = isinstance(self.store, VolatileStore)  # no log to write: records are not even encoded
        self.essential = essential
        self.pending: list = []  # entries (read by the ENTRY_ indexes), oldest first
        # Pending messages the broker took that wait for the backend's confirmation: id ->
        # ConfirmWait. Times are milliseconds from any start that does not wrap (the
        # caller's; Agent's uptime).
        self.awaiting: dict = {}
        self.next_id = 1
        self.accepted = 0
        self.delivered = 0  # done at the broker's acknowledgement, or confirmed
        self.confirmed = 0  # confirmed by the backend
        self.unknown_confirms = 0  # confirmations of ids not pending (confirmed before, or never ours): no effect
        self.dropped = 0
        self.damaged = False  # the log was damaged: messages may be lost (see problems)
        self.lost = 0  # waiting messages that damage may have taken (at most)
        self.doubtful = 0  # waiting messages dropped after damage: their fate could not be told
        self.problems: list = []
        self.seg = 1
        self.seg_size = 0
        self._stored = True  # False once a write of this outbox failed
        self._floor = False  # the current segment starts with a "next id" record
        self._recover(known_last_id)

    def __len__(self) -> int:
        return len(self.pending)

    # -- recovery ---------------------------------------------------------------------------
    def _recover(self, known_last_id: int) -> None:
        by_id: dict = {}
        taken: dict = {}  # ids of "awaiting" records: the broker took them, the backend has not confirmed
        seen: dict = {}  # ids of message, ack, drop, awaiting and confirmed records (a dict: sets differ on the board)
        skipped: list = []  # [first, end) id ranges no message was given (after earlier damage)
        damage: list = []  # what is wrong, in plain words, in log order
        damaged_segs = 0
        lo = 0  # ids from here on were all written to the segments that exist
        hi = 0  # the highest id of a message, ack or drop record
        floor = 0  # the highest id below some "next id" record
        max_m = 0
        doubtful_through = 0  # messages up to this id were written before the last damage
        # The end of the log may hold what a power cut or a full disk kept from reaching
        # the disk: empty segments, and a record cut off at the end of the segment before.
        # Only if more follows (or the device knew of more) is that damage.
        empty: list = []
        cut = None  # (segment, good length, problem)
        segs = self.store.segments()  # type: ignore[attr-defined]
        broken = False  # the segment before was found damaged (its end is then no news)
        for n, seg in enumerate(segs):
            if n and seg != segs[n - 1] + 1:
                damage.append("outbox segment %s is missing" % _range(segs[n - 1] + 1, seg - 1))
                damaged_segs += seg - segs[n - 1] - 1
                doubtful_through = max_m
                broken = True
            data = self.store.read(seg)  # type: ignore[attr-defined]
            if not data:
                empty.append(seg)
                continue
            if empty or cut is not None:
                broken = True
                damaged_segs += len(empty) + (cut is not None)
                damage += _tail_words(empty, cut, True)
                doubtful_through = max_m
                empty = []
                cut = None
            records, good, problem = journal.decode(data[:SEGMENT_READ_BYTES])
            unreadable = 0
            floor_first = False
            for i, raw in enumerate(records):
                rec = _parse(raw)
                if rec is None:
                    unreadable += 1
                    doubtful_through = max_m
                    continue
                kind = rec[0]
                floor_first = floor_first or (not i and kind == "n")
                if kind == "n":
                    if n and not i and not broken and max(hi, floor) < rec[1] - 1:
                        # Every id below a segment's first "next id" was written before it: the
                        # segments before lost their end (cut at a record boundary, unseen by checksums).
                        damage.append("outbox segment %d ends early: messages %s are missing"
                                      % (segs[n - 1], _range(max(hi, floor) + 1, rec[1] - 1)))  # fmt: skip
                        damaged_segs += 1
                        doubtful_through = max_m
                    if rec[2] > rec[1]:
                        skipped.append((rec[1], rec[2]))
                    floor = max(floor, rec[2] - 1)
                    if n == 0 and i == 0:
                        lo = rec[1]
                    continue
                mid = rec[1]
                seen[mid] = True
                hi = max(hi, mid)
                if kind == "m":
                    by_id[mid] = [mid, rec[2], rec[3], rec[4], rec[5], seg]
                    max_m = max(max_m, mid)
                    if not lo or mid < lo:
                        lo = mid
                elif kind == "w":
                    taken[mid] = True
                else:
                    by_id.pop(mid, None)
                    taken.pop(mid, None)
            broken = False
            if unreadable:
                damage.append("outbox segment %d holds %d records that cannot be read" % (seg, unreadable))
                broken = True
            if len(data) > SEGMENT_READ_BYTES:
                damage.append("outbox segment %d is longer than a segment can be (%d bytes)" % (seg, len(data)))
                broken = True
            elif problem is not None:
                if "cut off" in problem and good + journal.HEADER + journal.MAX_RECORD >= len(data):
                    cut = (seg, good, problem)
                else:
                    damage.append("outbox segment %d: %s; the %d bytes from there on are cut off"
                                  % (seg, problem, len(data) - good))  # fmt: skip
                    broken = True
            if broken:
                damaged_segs += 1
                doubtful_through = max_m
            self.seg = seg
            self.seg_size = good
            self._floor = floor_first
        tail_open = bool(empty) or cut is not None or (damage and doubtful_through == max_m)
        if known_last_id > max(hi, floor):
            # The device had written more than the log holds: its end is gone (or all of it).
            held = "ends at message %d" % max(hi, floor) if max(hi, floor) else "holds nothing"
            damage.append("the outbox %s, but messages up to %d had been written" % (held, known_last_id))
            damage += _tail_words(empty, cut, True)
            damaged_segs += 1 + len(empty)
            doubtful_through = max_m
            tail_open = True
            empty = []
            cut = None
        self.pending = sorted(by_id.values(), key=lambda e: e[ENTRY_ID])
        for mid in taken:
            if mid in by_id and by_id[mid][ENTRY_PRIORITY] >= CRITICAL:
                self.awaiting[mid] = ConfirmWait()  # offered again at once: this is a new start
        self.next_id = max(hi, floor, known_last_id) + 1
        if damage:
            hi = max(hi, known_last_id)
            self.problems += _tail_words(empty, cut, False)
            self._after_damage(damage, damaged_segs, _lost(seen, skipped, lo, hi), hi if tail_open else 0,
                               doubtful_through, segs)  # fmt: skip
        elif empty or cut is not None:
            self.problems += _tail_words(empty, cut, False)
            for seg in empty:  # nothing to keep: the next start finds a clean end
                self.store.remove(seg)  # type: ignore[attr-defined]
            if cut is not None and cut[1]:
                self.store.truncate(cut[0], cut[1])  # type: ignore[attr-defined]
            elif cut is not None:  # nothing whole in it: gone, or the next start finds it empty
                self.store.remove(cut[0])  # type: ignore[attr-defined]
        while len(self.pending) - len(self.awaiting) > self.capacity:
            if not self._drop_one():
                break  # the rest is owed to the user: kept, within the reserve push() keeps
        self._collect()
        self.sync()  # what recovery wrote ("drop" records) is durable before anything else happens

    def _after_damage(self, damage: list, segments: int, lost: int, open_after: int, doubtful_through: int,
                      old: list) -> None:  # fmt: skip
        """Say what the damage means, keep only what can be vouched for, write the log anew."""
        self.problems += damage[:_DAMAGE_NAMED]
        if len(damage) > _DAMAGE_NAMED:
            self.problems.append("... and %d more damaged places in the outbox" % (len(damage) - _DAMAGE_NAMED))
        self.damaged = True
        self.lost = max(0, lost)
        if lost < 0:
            text = "how many waiting messages the damaged outbox lost cannot be told"
            if open_after:
                text += " (it had written up to message %d)" % open_after
        else:
            text = "no waiting message is known lost"
            if lost:
                text = "the damaged outbox lost up to %d waiting messages" % lost
            if open_after:
                text += ", and any written after message %d (how many cannot be told)" % open_after
        self.problems.append(text)
        keep = []
        counts: dict = {}
        for e in self.pending:
            if e[ENTRY_ID] <= doubtful_through and e[ENTRY_CATEGORY] not in self.essential:
                counts[e[ENTRY_CATEGORY]] = counts.get(e[ENTRY_CATEGORY], 0) + 1
            else:
                keep.append(e)
        self.pending = keep
        for mid in list(self.awaiting):
            if not [e for e in keep if e[ENTRY_ID] == mid]:
                del self.awaiting[mid]
        if counts:
            self.doubtful = sum(counts.values())
            named = ", ".join("%s %d" % (c, counts[c]) for c in sorted(counts))
            self.problems.append(
                "%d waiting messages written before the damaged part were deleted (%s): whether they had been "
                "sent, or withdrawn with a consent, cannot be told any more" % (self.doubtful, named)
            )
        while len(self.pending) - len(self.awaiting) > self.capacity:
            if not self._drop_one(CRITICAL, False):
                break
        # Ids go on beyond anything the lost parts may have given out: the receiver drops
        # a message whose id it has seen, so an id used twice would lose the new message.
        skip_from = self.next_id
        self.next_id += ID_SKIP * max(1, segments)
        self.seg = (old[-1] + 1) if old else 1
        self.seg_size = 0
        self._stored = True
        self._write(["n", skip_from, self.next_id])
        for e in self.pending:
            e[ENTRY_SEGMENT] = self._write(["m", e[ENTRY_ID], e[ENTRY_PRIORITY], e[ENTRY_CATEGORY], e[ENTRY_TOPIC],
                                            e[ENTRY_PAYLOAD].decode()])  # fmt: skip
            if e[ENTRY_ID] in self.awaiting:
                self._write(["w", e[ENTRY_ID]])
        self.sync()
        error = ""
        if self._stored:
            for seg in old:
                try:
                    self.store.remove(seg)  # type: ignore[attr-defined]
                except OSError as e:
                    error = str(e)
        if not self._stored or error:
            # The old segments are the only durable copy: the pending messages keep them.
            for entry in self.pending:
                entry[ENTRY_SEGMENT] = old[0] if old else entry[ENTRY_SEGMENT]
            self._problem("the damaged outbox could not be replaced (%s); its damage will be found again at the "
                          "next start" % (error or "see above"))  # fmt: skip

    # -- writing ------------------------------------------------------------------------------
    def _write(self, rec: list) -> int:
        if self._volatile:
            return self.seg
        data = journal.encode(json.dumps(rec).encode())
        if self.seg_size + len(data) > SEGMENT_BYTES and self.seg_size:
            self.seg += 1
            self.seg_size = 0
        if not self.seg_size:
            if rec[0] != "n":
                # Each segment starts with the next id: ids keep rising even after the
                # segments that held the highest ones were deleted.
                self._append(journal.encode(json.dumps(["n", self.next_id, self.next_id]).encode()))
            self._floor = True
        self._append(data)
        return self.seg

    def _append(self, data: bytes) -> None:
        try:
            self.store.append(self.seg, data)  # type: ignore[attr-defined]
        except OSError as e:
            # Storage failed (a full disk): the message stays in memory, and this is said.
            # The store wrote none of it, so the segment goes on where it was.
            self._stored = False
            self._problem("cannot store the outbox: %s; messages are kept in memory only" % e)
            return
        self.seg_size += len(data)

    def _problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)
            del self.problems[:-8]

    def push(self, topic: str, payload: bytes, category: str = "", priority: int = NORMAL, mid: int = 0) -> int:
        """Keep a message until delivered; returns its id. Call sync() to make it durable.
        mid: the id the message was made with (its body carries it), which must be the
        next id (StateError otherwise: the body would name another message).

        Consent receipts and erasure requests may use a reserve beyond the capacity
        (messages awaiting confirmation live there); when even that is full,
        OutboxFullError tells the caller to try again later."""
        if mid and mid != self.next_id:
            raise StateError("a message made for id %d cannot be kept: the outbox's next id is %d"
                             % (mid, self.next_id))  # fmt: skip
        room = self.capacity + self.reserve
        while len(self.pending) - len(self.awaiting) >= self.capacity or len(self.pending) >= room:
            if self._drop_one(priority):
                continue
            if priority >= CRITICAL and len(self.pending) < room:
                break
            raise OutboxFullError(
                "the outbox holds %d messages that may not be dropped; try again later" % len(self.pending)
            )
        mid = self.next_id
        seg = self._write(["m", mid, priority, category, topic, payload.decode()])
        self.next_id = mid + 1
        self.pending.append([mid, priority, category, topic, payload, seg])
        self.accepted += 1
        return mid

    def critical_room(self) -> int:
        """How many more CRITICAL messages push() takes now (others give way to them)."""
        critical = 0
        for e in self.pending:
            if e[ENTRY_PRIORITY] >= CRITICAL:
                critical += 1
        return self.capacity + self.reserve - critical

    def _drop_one(self, incoming: int = CRITICAL, write: bool = True) -> bool:
        """Drop the oldest message of the lowest priority below CRITICAL (and not above
        the incoming message's priority); False if nothing may go. write=False: the log
        is about to be written anew without it."""
        lowest = None
        for e in self.pending:
            prio = e[ENTRY_PRIORITY]
            if prio < CRITICAL and prio <= incoming and (lowest is None or prio < lowest[ENTRY_PRIORITY]):
                lowest = e
        if lowest is None:
            return False
        self.pending.remove(lowest)
        self.awaiting.pop(lowest[ENTRY_ID], None)
        if write:
            self._write(["d", lowest[ENTRY_ID]])
        self.dropped += 1
        return True

    def sync(self) -> bool:
        """Make what was written durable; False (and said) when the storage refused."""
        try:
            self.store.sync()  # type: ignore[attr-defined]
        except OSError as e:
            self._stored = False
            self._problem("cannot store the outbox: %s; messages are kept in memory only" % e)
            return False
        return True

    # -- reading and acknowledging --------------------------------------------------------------
    def peek(self) -> tuple:
        """The oldest waiting (topic, payload, category); IndexError when empty."""
        e = self.pending[0]
        return (e[ENTRY_TOPIC], e[ENTRY_PAYLOAD], e[ENTRY_CATEGORY])

    def ack(self, mid: int | None = None) -> None:
        """Forget a message (default: the oldest) as delivered, whatever it is owed."""
        if mid is None:
            mid = self.pending[0][ENTRY_ID]
        if not self._forget(mid, "a"):
            raise InputError("ack of message %d, which the outbox does not hold" % mid)

    def _forget(self, mid: int, kind: str) -> bool:
        for i, e in enumerate(self.pending):
            if e[ENTRY_ID] == mid:
                del self.pending[i]
                self.awaiting.pop(mid, None)
                self._write([kind, mid])
                self.delivered += 1
                self._collect()
                return True
        return False

    def took(self, mid: int, now_ms: int) -> str:
        """The broker acknowledged message mid at now_ms. DONE: forgotten. AWAITING:
        owed to the user, it stays until confirmed, and is offered again after
        confirm_wait_ms (doubling with each offer). GONE: not pending any more (confirmed,
        dropped or withdrawn while it was in flight)."""
        entry = None
        for e in self.pending:
            if e[ENTRY_ID] == mid:
                entry = e
                break
        if entry is None:
            return GONE
        if entry[ENTRY_PRIORITY] < CRITICAL:
            self._forget(mid, "a")
            return DONE
        state = self.awaiting.get(mid)
        if state is None:
            self._write(["w", mid])
            state = ConfirmWait()
            self.awaiting[mid] = state
        else:
            state.offers += 1
        state.due = now_ms + confirm_wait_ms(state.offers)
        return AWAITING

    def confirm(self, mid: int) -> bool:
        """The backend confirmed it holds message mid: forget it (True). An id that is not
        pending (confirmed before, or never given) changes nothing and is counted (False)."""
        if self._forget(mid, "c"):
            self.confirmed += 1
            return True
        self.unknown_confirms += 1
        return False

    def offerable(self, now_ms: int, limit: int) -> list:
        """Up to `limit` entries to offer at now_ms, oldest first: those the broker
        has not taken, and those awaiting confirmation whose wait is over."""
        out = []
        for e in self.pending:
            state = self.awaiting.get(e[ENTRY_ID])
            if state is None or state.due is None or now_ms >= state.due:
                out.append(e)
                if len(out) >= limit:
                    break
        return out

    def reoffer(self) -> int:
        """The link was made again: everything awaiting confirmation is offered again at
        once (its wait goes on doubling). Returns how many."""
        for state in self.awaiting.values():
            state.due = None
        return len(self.awaiting)

    def state_of(self, mid: int) -> str:
        """WAITING or AWAITING for a pending message, GONE otherwise."""
        if mid in self.awaiting:
            return AWAITING
        for e in self.pending:
            if e[ENTRY_ID] == mid:
                return WAITING
        return GONE

    def purge(self, category: str) -> int:
        """Remove every waiting message of a category (consent withdrawn); returns how many."""
        gone = [e for e in self.pending if e[ENTRY_CATEGORY] == category]
        if not gone:
            return 0
        for e in gone:
            self.pending.remove(e)
            self.awaiting.pop(e[ENTRY_ID], None)
            self._write(["d", e[ENTRY_ID]])
        self._collect()
        return len(gone)

    def items(self) -> list:
        return [(e[ENTRY_TOPIC], e[ENTRY_PAYLOAD], e[ENTRY_CATEGORY]) for e in self.pending]

    def _collect(self) -> None:
        """Delete whole segments older than the oldest pending message's (and not current)."""
        keep_from = min([e[ENTRY_SEGMENT] for e in self.pending] + [self.seg])
        if not self._floor and [seg for seg in self.store.segments() if seg < keep_from]:  # type: ignore[attr-defined]
            # The current segment (written by an older version) does not say which id comes
            # next: deleting the older ones could take the highest id with them. A new
            # segment that says it goes first, and must be on the disk before they go.
            if self.seg_size:
                self.seg += 1
                self.seg_size = 0
            self._write(["n", self.next_id, self.next_id])
            if not self.sync():
                return
            keep_from = min([e[ENTRY_SEGMENT] for e in self.pending] + [self.seg])
        for seg in self.store.segments():  # type: ignore[attr-defined]
            if seg < keep_from:
                self.store.remove(seg)  # type: ignore[attr-defined]
