"""Damaged storage on the host: every damage is said, and nothing unconsented leaves.

A real device directory (a run with consent, a withdrawal and a new consent) is damaged
file by file in many ways (cut, zeroed, bytes flipped, emptied, another format, random
bytes, deleted); then the device is opened and everything it would send is taken by a
recording uplink, and those bytes are checked. Property tests throw arbitrary damage at
the decoders (journal, consent ledger, outbox recovery, state, pseudonym key).
"""

import asyncio
import copy
import hashlib
import json
import os
import random
import shutil
import tempfile

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agent import profile_loader
from agent.cli import main
from agent.core import journal, state_file
from agent.core.consent import ConsentLedger
from agent.core.errors import InputError, OutboxFullError
from agent.core.outbox import CRITICAL, ID_SKIP, LOW, NORMAL, SEGMENT_BYTES, SEGMENT_READ_BYTES, MemoryStore, Outbox
from agent.device import open_device, set_consent
from agent.device_data import (
    JOURNAL,
    KEY,
    KEY_FILE_BYTES,
    PROBLEMS_KEPT,
    STATE,
    DeviceData,
    decode_key,
    encode_key,
)
from agent.outbox_files import FileStore
from tests import backend
from tests.test_asyncapi import KIND_TO_MESSAGE, validator

WASHER = profile_loader.example("washing_machine")
PROFILE = profile_loader.load(WASHER)
DEVICE = "dev-1"
OPTIONAL = sorted(c["id"] for c in PROFILE["data_categories"] if not c["essential"])
SEGMENT = os.path.join("outbox", "outbox-000001.log")


# -- a real device, damaged -------------------------------------------------------------
def _records(data: bytes) -> list:
    return journal.decode(data)[0]


def _cut_last_record(data: bytes) -> bytes:
    """Cut at a record boundary: no checksum can see it."""
    records, good, _ = journal.decode(data)
    return data[: good - len(journal.encode(records[-1]))]


DAMAGE = {
    "cut-in-half": lambda b: b[: len(b) // 2],
    "cut-last-byte": lambda b: b[:-1],
    "cut-last-record": _cut_last_record,
    "zeroed": lambda b: bytes(len(b)),
    "zeroed-inside": lambda b: b[: len(b) // 2] + bytes(16) + b[len(b) // 2 + 16 :],
    "flipped-byte": lambda b: b[: len(b) // 2] + bytes([b[len(b) // 2] ^ 0x5A]) + b[len(b) // 2 + 1 :],
    "flipped-first-byte": lambda b: bytes([b[0] ^ 1]) + b[1:],
    "empty": lambda b: b"",
    "other-format": lambda b: b'{"format": 1, "sha256": "", "data": "{}"}\n',
    "random-bytes": lambda b: random.Random(len(b)).randbytes(len(b)),
    "deleted": None,
}


def _damage(path: str, how: str) -> bytes:
    with open(path, "rb") as f:
        original = f.read()
    fn = DAMAGE[how]
    if fn is None:
        os.remove(path)
    else:
        with open(path, "wb") as f:
            f.write(fn(original))
    return original


class Recorder:
    """An uplink that takes everything: what it holds is what would have left."""

    connects = 1

    def __init__(self) -> None:
        self.sent: list = []

    async def publish(self, topic: str, payload: bytes, msg_id: int = 0) -> bool:
        self.sent.append((topic, payload, msg_id))
        return True


def _send_all(agent: object) -> list:
    rec = Recorder()
    agent.uplink = rec  # type: ignore[attr-defined]
    assert asyncio.run(agent.flush())  # type: ignore[attr-defined]
    agent.outbox.sync()  # type: ignore[attr-defined]  # as close_device does: the acks are stored
    return rec.sent


def _pending(root: str) -> list:
    """What the outbox holds on disk: [id, priority, category, topic, payload, segment]."""
    box = Outbox(10_000, FileStore(os.path.join(root, "outbox")))
    box.sync()
    return list(box.pending)


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A device that queued statistics with consent, had them withdrawn (deleted, an
    erasure request queued), got consent again and queued new ones; nothing sent."""
    root = str(tmp_path_factory.mktemp("golden") / "device")
    base = ["--profile", WASHER, "--data-dir", root, "--device-id", DEVICE]
    run = ["run", *base, "--simulate", "--hours", "14"]
    assert main([*run, "--consent", "usage_statistics", "--consent", "maintenance"]) == 0
    withdrawn = {e[0] for e in _pending(root) if e[2] == "usage_statistics"}
    assert withdrawn
    assert main(["consent", "set", "usage_statistics", "off", *base]) == 0
    assert main(["consent", "set", "usage_statistics", "on", *base]) == 0
    assert main([*run, "--seed", "2"]) == 0
    pending = _pending(root)
    assert not {e[0] for e in pending} & withdrawn
    assert [e for e in pending if e[2] == "usage_statistics"]  # consented again, queued again
    with open(os.path.join(root, KEY), "rb") as f:
        key = decode_key(f.read())[0]
    saved, _ = DeviceData(root).load_state()
    return {"root": root, "withdrawn": withdrawn, "pending": pending, "key": key, "last_id": saved["outbox_last_id"]}


@pytest.fixture(scope="module")
def contract() -> dict:
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "asyncapi.yaml")) as f:
        doc: dict = yaml.safe_load(f)
    return doc


def _copy(golden: dict, tmp_path: object) -> str:
    root = os.path.join(str(tmp_path), "device")
    shutil.copytree(golden["root"], root)
    return root


def _bodies(sent: list) -> list:
    return [json.loads(p) for _, p, _ in sent]


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_a_damaged_consent_journal_is_a_withdrawal_and_nothing_optional_leaves(
    golden: dict, contract: dict, tmp_path: object, how: str
) -> None:
    root = _copy(golden, tmp_path)
    _damage(os.path.join(root, JOURNAL), how)
    agent, _, messages = open_device(PROFILE, root, DEVICE)
    said = [m for m in messages if m.startswith("Consent: ")]
    assert any("counts as withdrawn: all optional categories are off" in m for m in said), messages
    assert any("upstream is asked to erase what it holds of: " + ", ".join(OPTIONAL) in m for m in said), messages
    assert [c for c in OPTIONAL if agent.consent.allows(c)] == []
    sent = _send_all(agent)
    # The bytes that reach the uplink: the essential category only, and for every
    # optional category an erasure request saying the consent was lost.
    assert sent and all(t == "wichtel/v1/%s/essential" % DEVICE for t, _, _ in sent)
    bodies = _bodies(sent)
    assert all(b["cat"] == "essential" and "pid" not in b for b in bodies)
    lost = sorted(b["data"]["category"] for b in bodies if b["kind"] == "erasure_request"
                  and b["data"].get("reason") == "consent_lost")  # fmt: skip
    assert lost == OPTIONAL
    for body in bodies:  # the contract upstream relies on (docs/asyncapi.yaml)
        validator(contract, KIND_TO_MESSAGE[body["kind"]]).validate(body)
    # Nothing optional is left on the disk to go later, and the next start is clean.
    assert [e for e in _pending(root) if e[2] != "essential"] == []
    again, _, messages = open_device(PROFILE, root, DEVICE)
    assert [m for m in messages if m.startswith("Consent: ")] == [], messages
    assert [c for c in OPTIONAL if again.consent.allows(c)] == []


def test_lost_consent_deletes_waiting_statistics_that_were_consented(golden: dict, tmp_path: object) -> None:
    """The reported case: the journal damaged, statistics queued with consent still waiting."""
    root = _copy(golden, tmp_path)
    waiting = [e for e in golden["pending"] if e[2] == "usage_statistics"]
    assert waiting
    _damage(os.path.join(root, JOURNAL), "flipped-byte")
    agent, _, messages = open_device(PROFILE, root, DEVICE)
    assert "Consent: %d waiting usage_statistics messages were deleted: consent for them is off" % len(waiting) in (
        messages
    )
    sent = _send_all(agent)
    assert not {i for _, _, i in sent} & {e[0] for e in waiting}


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_a_damaged_outbox_is_said_and_withdrawn_messages_never_come_back(
    golden: dict, contract: dict, tmp_path: object, how: str
) -> None:
    root = _copy(golden, tmp_path)
    _damage(os.path.join(root, SEGMENT), how)
    agent, _, messages = open_device(PROFILE, root, DEVICE)
    said = [m for m in messages if m.startswith("Outbox: ")]
    assert said, messages
    assert any("lost" in m for m in said), said  # what the damage means for waiting messages
    sent = _send_all(agent)
    ids = [i for _, _, i in sent]
    # Statistics withdrawn before are never sent, though consent is on again.
    assert not set(ids) & golden["withdrawn"]
    # Nothing optional written before the damage leaves: it may have been withdrawn.
    before = {e[0]: e for e in golden["pending"]}
    assert all(before[i][2] == "essential" for i in ids if i in before)
    # Ids go on beyond anything the damaged log may have given out (the receiver drops duplicates).
    assert all(i in before or i > golden["last_id"] for i in ids)
    assert len(ids) == len(set(ids))
    # Upstream hears the current consent again: a receipt may have been lost.
    bodies = _bodies(sent)
    receipts = {b["data"]["category"]: b["data"]["choice"] for b in bodies if b["kind"] == "consent_receipt"}
    assert receipts.get("usage_statistics") == "on" and receipts.get("maintenance") == "on"
    for body in bodies:
        validator(contract, KIND_TO_MESSAGE[body["kind"]]).validate(body)
    # The next start finds a clean outbox.
    _, _, messages = open_device(PROFILE, root, DEVICE)
    assert [m for m in messages if m.startswith("Outbox: ")] == [], messages


@pytest.mark.parametrize("how", sorted(set(DAMAGE) - {"cut-last-record", "other-format"}) + ["older-format"])
def test_a_damaged_pseudonym_key_is_never_used(golden: dict, tmp_path: object, how: str) -> None:
    root = _copy(golden, tmp_path)
    path = os.path.join(root, KEY)
    if how == "older-format":
        with open(path, "wb") as f:
            f.write(golden["key"])  # the key alone, as an older version stored it: no checksum
        damaged = golden["key"]
    else:
        _damage(path, how)
        damaged = _read(path)
    agent, _, messages = open_device(PROFILE, root, DEVICE)
    said = [m for m in messages if m.startswith("Pseudonym key: ")]
    assert len(said) == 1 and "it is not used" in said[0] and "new pseudonym" in said[0], messages
    key = agent.gate.key
    assert len(key) == 32 and key != golden["key"] and key not in damaged
    with open(path, "rb") as f:
        assert decode_key(f.read()) == (key, None)  # stored with its checksum, 0600
    assert os.stat(path).st_mode & 0o777 == 0o600
    # Messages made from now on carry the new pseudonym, none made from damaged bytes.
    assert agent.gate.pseudonym("usage_statistics") == _pid(key)
    assert _pid(key) not in {_pid(golden["key"]), _pid(damaged[4:36]), _pid(damaged[:32])}


def _read(path: str) -> bytes:
    if not os.path.exists(path):
        return b""
    with open(path, "rb") as f:
        return f.read()


def _pid(key: bytes) -> str:
    return hashlib.sha256(key + b"/usage_statistics").hexdigest()[:16]


@pytest.mark.parametrize("how", sorted(set(DAMAGE) - {"cut-last-record"}))
def test_a_damaged_state_is_said_and_the_device_starts_fresh(golden: dict, tmp_path: object, how: str) -> None:
    root = _copy(golden, tmp_path)
    _damage(os.path.join(root, STATE), how)
    agent, _, messages = open_device(PROFILE, root, DEVICE)
    if how != "deleted":  # no state is a first start of the models, not damage
        assert any(m.startswith("State: ") and "fresh models" in m for m in messages), messages
    assert agent.consent.allows("usage_statistics")  # the journal is intact: consent stands
    assert all(m.startswith("State: ") for m in messages), messages


def test_an_empty_segment_amid_others_is_counted(tmp_path: object) -> None:
    """Sixteen waiting messages in a segment that comes back empty: said, and counted."""
    d = str(tmp_path)
    box = Outbox(100_000, FileStore(d), ("essential",))
    big = b"x" * 3900  # sixteen such records fill a segment
    early = box.push("t/maintenance", big, "maintenance")  # before the damage: its fate cannot be told
    while box.seg < 3:
        box.push("t/essential", big, "essential", CRITICAL)
    late = box.push("t/maintenance", b"after", "maintenance")
    box.sync()
    in_two = [e[0] for e in box.pending if e[5] == 2]
    assert len(in_two) == 16
    with open(os.path.join(d, "outbox-000002.log"), "wb"):
        pass
    again = Outbox(100_000, FileStore(d), ("essential",))
    assert "outbox segment 2 is empty" in again.problems
    assert "the damaged outbox lost up to 16 waiting messages" in again.problems
    assert again.lost == 16 and not {e[0] for e in again.pending} & set(in_two)
    kept = {e[0] for e in again.pending}
    assert early not in kept and late in kept  # written after the damage: kept
    assert kept == {e[0] for e in box.pending} - set(in_two) - {early}
    assert again.next_id == box.next_id + ID_SKIP  # ids never used twice: one segment's worth skipped
    assert Outbox(100_000, FileStore(d), ("essential",)).problems == []  # and the next start is clean


def test_segment_and_report_bounds() -> None:
    """At the bounds: a segment of SEGMENT_READ_BYTES is read, one byte more is damage;
    three damaged places are named, the rest counted; ids skip ID_SKIP per damaged segment."""
    record = journal.encode(json.dumps(["a", 1]).encode())
    fill = record * (SEGMENT_READ_BYTES // len(record))
    exact = fill + b"\0" * (SEGMENT_READ_BYTES - len(fill))
    for data, longer in ((exact, False), (exact + b"\0", True)):
        store = MemoryStore()
        store.data = {1: bytearray(data)}
        box = Outbox(8, store)
        assert any("longer than a segment can be" in p for p in box.problems) == longer, box.problems
    store = MemoryStore()
    store.data = {seg: bytearray(b"\0" * 9) for seg in range(1, 7)}  # six zeroed segments
    box = Outbox(8, store)
    named = [p for p in box.problems if p.startswith("outbox segment")]
    assert len(named) == 3 and "... and 3 more damaged places in the outbox" in box.problems
    assert box.next_id == 1 + 6 * ID_SKIP
    assert ID_SKIP * journal.HEADER >= SEGMENT_BYTES  # more ids than records a segment can hold


def test_storage_problems_kept_are_bounded(tmp_path: object) -> None:
    data = DeviceData(str(tmp_path))
    for i in range(PROBLEMS_KEPT + 5):
        data._problem("problem %d" % i)
        data._problem("problem %d" % i)  # said once
    assert data.problems == ["problem %d" % i for i in range(5, PROBLEMS_KEPT + 5)]


def test_a_log_cut_at_a_record_boundary_is_found_by_the_next_segment(tmp_path: object) -> None:
    d = str(tmp_path)
    box = Outbox(100_000, FileStore(d), ("essential",))
    while box.seg < 2:
        box.push("t/maintenance", b"y" * 500, "maintenance")
    box.sync()
    path = os.path.join(d, "outbox-000001.log")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(_cut_last_record(_cut_last_record(data)))
    again = Outbox(100_000, FileStore(d), ("essential",))
    assert any("outbox segment 1 ends early: messages" in p for p in again.problems), again.problems
    assert again.lost == 2 and again.doubtful > 0


def test_a_withdrawal_is_on_disk_and_counted_when_set_consent_returns(tmp_path: object) -> None:
    root = str(tmp_path)
    agent, data, _ = open_device(PROFILE, root, DEVICE)
    set_consent(agent, data, "maintenance", True, 0, 0)
    agent.outbox.push("t", b"m", "maintenance")
    set_consent(agent, data, "maintenance", False, 1, 0)
    # As if the power went now: the disk holds no maintenance message, and the state
    # names the receipt and the erasure request, so losing either is found out.
    assert [e for e in _pending(root) if e[2] == "maintenance"] == []
    saved, _ = DeviceData(root).load_state()
    assert saved["consent_seq"] == 2 and saved["outbox_last_id"] == agent.outbox.next_id - 1


# -- property tests: arbitrary damage at the decoders --------------------------------------
def test_zeroed_storage_is_damage_not_an_empty_record() -> None:
    good = journal.encode(b'{"a":1}')
    assert journal.decode(bytes(64)) == ([], 0, "the record at byte 0 is empty (zeroed storage?)")
    records, at, problem = journal.decode(good + bytes(8))
    assert records == [b'{"a":1}'] and at == len(good) and "empty (zeroed storage?)" in problem
    with pytest.raises(InputError, match="cannot be empty"):
        journal.encode(b"")


def test_nothing_leaves_for_a_category_that_is_off_even_if_it_waits(tmp_path: object) -> None:
    """The last check before the uplink: a message queued while its consent was on does
    not leave once the consent is off, whatever path left it in the outbox."""
    agent, data, _ = open_device(PROFILE, str(tmp_path), DEVICE)
    set_consent(agent, data, "maintenance", True, 0, 0)
    agent.outbox.push("wichtel/v1/dev-1/maintenance", b'{"cat":"maintenance"}', "maintenance")
    agent.consent.set("maintenance", False, 1)  # in the ledger only: nothing purged it
    sent = _send_all(agent)
    assert sent and all(t.endswith("/essential") for t, _, _ in sent)
    backend.confirm(agent)  # the receipt, awaiting the backend's confirmation
    assert len(agent.outbox) == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
@example(bytes(8))
@example(journal.encode(b"x") + bytes(20))
def test_journal_decode_never_raises_and_keeps_exactly_the_good_prefix(data: bytes) -> None:
    records, good, problem = journal.decode(data)
    assert b"".join(journal.encode(r) for r in records) == data[:good]
    assert (problem is None) == (good == len(data))
    assert all(records)  # never an empty record: zeroed storage is damage


_MUTATION = st.tuples(st.sampled_from(["cut", "zero", "flip", "insert", "replace", "delete"]),
                      st.integers(0, 10_000), st.integers(1, 64), st.binary(min_size=1, max_size=32))  # fmt: skip


def _mutate(data: bytes, mutation: tuple) -> bytes:
    op, pos, n, blob = mutation
    pos = pos % (len(data) + 1)
    if op == "cut":
        return data[:pos]
    if op == "zero":
        return data[:pos] + bytes(min(n, len(data) - pos)) + data[pos + n :]
    if op == "flip":
        return data if pos == len(data) else data[:pos] + bytes([data[pos] ^ (n % 255 + 1)]) + data[pos + 1 :]
    if op == "insert":
        return data[:pos] + blob + data[pos:]
    if op == "replace":
        return data[:pos] + blob + data[pos + len(blob) :]
    return b""


def _journal_with(choices: list) -> tuple:
    led = ConsentLedger(PROFILE["data_categories"], DEVICE)
    data = b"".join(journal.encode(ConsentLedger.record(led.set(c, on, i))) for i, (c, on) in enumerate(choices))
    return data, led


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(OPTIONAL), st.booleans()), min_size=1, max_size=6), _MUTATION)
def test_a_damaged_journal_never_grants_more_and_is_always_said(choices: list, mutation: tuple) -> None:
    data, before = _journal_with(choices)
    damaged = _mutate(data, mutation)
    with tempfile.TemporaryDirectory() as root:
        with open(os.path.join(root, JOURNAL), "wb") as f:
            f.write(damaged)
        led = ConsentLedger(PROFILE["data_categories"], DEVICE)
        # The state names the last stored receipt, as close_device writes it.
        problems, lost = DeviceData(root).load_consent(led, before.history[-1]["seq"])
    for cid in OPTIONAL:
        assert not led.allows(cid) or before.allows(cid)  # never more consent than was given
    if damaged != data:
        assert problems  # said
        if lost:
            assert [c for c in OPTIONAL if led.allows(c)] == []
    else:
        assert (problems, lost) == ([], False) and led.choices() == before.choices()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=80), st.text(max_size=80).map(str.encode),
                          st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                                       lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c,
                                                                                            max_size=4),
                                       max_leaves=12).map(lambda v: json.dumps(v).encode())),
                max_size=6))  # fmt: skip
def test_the_ledger_replays_any_records_without_raising(records: list) -> None:
    led = ConsentLedger(PROFILE["data_categories"], DEVICE)
    problems = led.replay(records)
    assert led.allows("essential")
    if problems:
        assert [c for c in OPTIONAL if led.allows(c)] == [] and led.history == []


_RECORD = st.one_of(
    st.tuples(st.just("m"), st.integers(-2, 40), st.integers(-1, 4), st.sampled_from(["essential", "maintenance"]),
              st.text(max_size=6), st.text(max_size=6)).map(list),
    st.tuples(st.sampled_from(["a", "d"]), st.integers(-2, 40)).map(list),
    st.tuples(st.just("n"), st.integers(-2, 60), st.integers(-2, 60)).map(list),
    st.recursive(st.none() | st.integers() | st.text(max_size=4), lambda c: st.lists(c, max_size=3), max_leaves=6),
)  # fmt: skip


def _segment(items: list) -> bytes:
    out = b""
    for item in items:
        if isinstance(item, bytes):
            out += item  # raw bytes: anything at all
        else:
            payload = json.dumps(item).encode()
            out += journal.encode(payload) if payload else b""
    return out


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.integers(1, 6), st.lists(st.one_of(_RECORD, st.binary(max_size=24)), max_size=8),
                       max_size=4),
       st.integers(0, 80))  # fmt: skip
def test_outbox_recovery_takes_any_segments_and_leaves_a_clean_log(segments: dict, known_last_id: int) -> None:
    store = MemoryStore()
    store.data = {seg: bytearray(_segment(items)) for seg, items in segments.items()}
    box = Outbox(8, store, ("essential",), known_last_id)
    ids = [e[0] for e in box.pending]
    assert ids == sorted(set(ids)) and all(0 < i < box.next_id for i in ids) and len(ids) <= 8
    for e in box.pending:
        assert isinstance(e[2], str) and isinstance(e[3], str) and isinstance(e[4], bytes) and 0 <= e[1] <= 3
    if box.damaged:
        assert box.problems
    # A second start invents nothing and never goes back with ids; after damage the log
    # was written anew, so it finds the same messages and no damage.
    again = Outbox(8, store, ("essential",), box.next_id - 1)
    assert {e[0] for e in again.pending} <= set(ids) and again.next_id >= box.next_id
    if box.damaged:
        assert [e[0] for e in again.pending] == ids and not again.damaged, again.problems
    pushed = again.push("t", b"new", "essential", CRITICAL)
    assert pushed >= box.next_id


_OPS = st.lists(st.sampled_from(["stat", "alert", "receipt", "ack", "withdraw"]), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(_OPS, st.integers(0, 3), _MUTATION)
def test_a_damaged_outbox_never_brings_back_a_withdrawn_message(ops: list, which: int, mutation: tuple) -> None:
    store = MemoryStore()
    box = Outbox(16, store, ("essential",))
    given_ids: set = set()
    acked: set = set()
    for op in ops:
        if op in ("stat", "alert"):
            try:
                if op == "stat":
                    given_ids.add(box.push("t/usage_statistics", b"s", "usage_statistics", LOW))
                else:
                    given_ids.add(box.push("t/maintenance", b"a", "maintenance", NORMAL))
            except OutboxFullError:
                pass  # full of messages that rank higher: this one is refused, no id given
        elif op == "receipt":
            given_ids.add(box.push("t/essential", b"r", "essential", CRITICAL))
        elif op == "ack" and len(box):
            acked.add(box.pending[0][0])
            box.ack()
        elif op == "withdraw":  # as DataRights.apply_consent: delete, then queue the erasure request
            box.purge("usage_statistics")
            given_ids.add(box.push("t/essential", b"e", "essential", CRITICAL))
    box.sync()
    before = {e[0] for e in box.pending}
    gone = given_ids - before - acked  # withdrawn, or dropped when the outbox was full
    segs = sorted(store.data)
    if not segs:
        return  # nothing was written: nothing to damage
    seg = segs[which % len(segs)]
    original = copy.deepcopy(store.data)
    store.data[seg] = bytearray(_mutate(bytes(store.data[seg]), mutation))
    again = Outbox(16, store, ("essential",), box.next_id - 1)
    for e in again.pending:
        assert e[2] == "essential" or e[0] not in gone, (e, again.problems)
    if store.data != original and before - {e[0] for e in again.pending}:
        assert again.problems  # a message that was waiting is gone: that is said


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), _MUTATION)
def test_state_decoding_takes_anything_and_damage_is_never_taken_for_state(raw: bytes, mutation: tuple) -> None:
    data, problem = state_file.decode(raw)
    assert (data is None) != (problem is None) and (data is None or isinstance(data, dict))
    good = state_file.encode({"consent_seq": 3, "sent": [{"a": 1}], "consumables": {}})
    damaged = _mutate(good, mutation)
    data, problem = state_file.decode(damaged)
    if data is not None:
        assert json.loads(damaged)["data"] == json.loads(good)["data"]  # only the wrapper's whitespace changed


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=KEY_FILE_BYTES + 8), _MUTATION)
def test_a_key_file_is_taken_only_when_intact(key: bytes, raw: bytes, mutation: tuple) -> None:
    stored = encode_key(key)
    assert decode_key(stored) == (key, None)
    damaged = _mutate(stored, mutation)
    got, why = decode_key(damaged)
    assert (got == key) if damaged == stored else (got is None and why)
    got, why = decode_key(raw)
    assert got is None or raw == encode_key(got)
