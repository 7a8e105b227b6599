"""The outbox with the backend's confirmations, against a model: whatever mix of pushes,
broker acknowledgements, confirmations (of ids pending or not), withdrawals, restarts and
power cuts, a consent receipt or erasure request leaves the outbox only when the backend
confirmed its id, and nothing else waits for a confirmation.

WICHTEL_FUZZ_EXAMPLES raises the number of generated cases (default 300)."""

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.core import journal, limits
from agent.core.errors import OutboxFullError
from agent.core.outbox import AWAITING, CRITICAL, DONE, GONE, LOW, NORMAL, WAITING, MemoryStore, Outbox, confirm_wait_ms

EXAMPLES = int(os.environ.get("WICHTEL_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CAPACITY = 8
ESSENTIAL = ("essential",)
CATEGORY = {CRITICAL: "essential", NORMAL: "maintenance", LOW: "usage_statistics"}

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.sampled_from([CRITICAL, NORMAL, LOW])),
        st.tuples(st.just("took"), st.integers(0, 40)),  # the n-th offerable entry (or an id never given)
        st.tuples(st.just("confirm"), st.integers(1, 45)),
        st.tuples(st.just("purge"), st.sampled_from(["maintenance", "usage_statistics"])),
        st.tuples(st.just("time"), st.integers(0, limits.CONFIRM_WAIT_CAP_MS)),
        st.tuples(st.just("restart"), st.booleans()),  # True: a power cut takes the unsynced records
        st.tuples(st.just("relink"), st.none()),
    ),
    max_size=60,
)


@FUZZ
@given(_ops)
def test_owed_messages_leave_only_when_confirmed(ops: list) -> None:
    store = MemoryStore()
    box = Outbox(CAPACITY, store, ESSENTIAL)
    owed: set = set()  # receipts and erasure requests given: none may go unconfirmed
    confirmed: set = set()
    now = 0
    synced: dict = {}  # the store's segments as last synced (what a power cut leaves)
    for op, arg in ops:
        if op == "push":
            try:
                mid = box.push("t/" + CATEGORY[arg], b"m", CATEGORY[arg], arg, box.next_id)
            except OutboxFullError:  # only the owed may meet a full outbox, and it says so
                assert arg == CRITICAL
                continue
            if arg == CRITICAL:
                owed.add(mid)
            box.sync()
            synced = {k: bytes(v) for k, v in store.data.items()}
        elif op == "took":
            offer = box.offerable(now, 64)
            mid = offer[arg % len(offer)][0] if offer and arg < 40 else 10_000 + arg
            prio = {e[0]: e[1] for e in box.pending}.get(mid)
            state = box.took(mid, now)
            if prio is None:
                assert state == GONE
            elif prio >= CRITICAL:
                assert state == AWAITING and box.state_of(mid) == AWAITING
                # Offered again when its wait is over, not before.
                due = now + confirm_wait_ms(box.awaiting[mid].offers)
                assert mid not in [e[0] for e in box.offerable(due - 1, 64)]
                assert mid in [e[0] for e in box.offerable(due, 64)]
            else:
                assert state == DONE and box.state_of(mid) == GONE
        elif op == "confirm":
            was = box.state_of(arg)
            assert box.confirm(arg) == (was != GONE)
            if was != GONE:
                confirmed.add(arg)
            box.sync()
            synced = {k: bytes(v) for k, v in store.data.items()}
        elif op == "purge":
            box.purge(arg)
            box.sync()
            synced = {k: bytes(v) for k, v in store.data.items()}
        elif op == "time":
            now += arg
        elif op == "relink":
            n = box.reoffer()
            assert n == len(box.awaiting)
            assert all(e[0] in [o[0] for o in box.offerable(now, 64)] for e in box.pending)
        elif op == "restart":
            if arg:  # a power cut: only what was synced is there
                store.data = {k: bytearray(v) for k, v in synced.items()}
            else:
                box.sync()
            before = {e[0]: box.state_of(e[0]) for e in box.pending}
            last = box.next_id - 1
            box = Outbox(CAPACITY, store, ESSENTIAL, last)
            assert not box.damaged, box.problems
            after = {e[0]: box.state_of(e[0]) for e in box.pending}
            # Every owed message not confirmed is there after the restart; one the broker
            # took still awaits confirmation (unless the "awaiting" record was not yet synced).
            for mid in owed - confirmed:
                assert mid in after, (mid, after)
                if not arg and before.get(mid) == AWAITING:
                    assert after[mid] == AWAITING
            # Nothing else comes back awaiting, and all of it is offered at once.
            assert all(s == WAITING or {e[0]: e[1] for e in box.pending}[m] >= CRITICAL for m, s in after.items())
            assert [e[0] for e in box.offerable(now, 64)] == sorted(after)
            synced = {k: bytes(v) for k, v in store.data.items()}
        # Always: the owed and unconfirmed are pending; awaiting only owed, pending ones.
        pending = {e[0]: e[1] for e in box.pending}
        assert owed - confirmed <= set(pending), (owed - confirmed) - set(pending)
        assert set(box.awaiting) <= {m for m, p in pending.items() if p >= CRITICAL}
        assert not confirmed & set(pending)
        assert len(box.pending) - len(box.awaiting) <= CAPACITY
        assert len(box.pending) <= CAPACITY + limits.OUTBOX_CRITICAL_RESERVE


def test_records_of_confirmation_survive_a_restart_and_confirming_twice_changes_nothing() -> None:
    store = MemoryStore()
    box = Outbox(CAPACITY, store, ESSENTIAL)
    receipt = box.push("t/essential", b"r", "essential", CRITICAL)
    status = box.push("t/essential", b"s", "essential", NORMAL)
    assert box.took(status, 0) == DONE and box.took(receipt, 0) == AWAITING
    box.sync()
    kinds = [journal.decode(bytes(v))[0] for v in store.data.values()]
    assert any(rec.startswith(b'["w",') for recs in kinds for rec in recs)  # the "awaiting" record
    again = Outbox(CAPACITY, store, ESSENTIAL, box.next_id - 1)
    assert list(again.awaiting) == [receipt] and [e[0] for e in again.pending] == [receipt]
    assert again.confirm(receipt) and not again.confirm(receipt) and again.unknown_confirms == 1
    again.sync()
    third = Outbox(CAPACITY, store, ESSENTIAL, again.next_id - 1)
    assert len(third) == 0 and not third.awaiting


def test_the_wait_for_a_confirmation_doubles_up_to_its_cap() -> None:
    waits = [confirm_wait_ms(n) for n in range(12)]
    assert waits[0] == limits.CONFIRM_WAIT_MS and waits[1] == 2 * limits.CONFIRM_WAIT_MS
    assert waits == sorted(waits) and max(waits) == limits.CONFIRM_WAIT_CAP_MS
    assert confirm_wait_ms(10**9) == limits.CONFIRM_WAIT_CAP_MS
