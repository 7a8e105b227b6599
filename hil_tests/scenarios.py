"""The scenario set: each a function (target, broker, work directory) that runs the device on
the target and asserts what must hold. The same functions run on every target.

golden_trace: the recorded trace gives exactly the expected messages. broker_outage,
wifi_loss: nothing is lost, each message arrives under one id. power_cut: the process
killed at random points, restarted on its data: storage loads, ids are never reused,
consent is never on that this start did not give, everything owed arrives. corrupt_files:
each stored file damaged before a start. clock_jump: the clock set forward and back.
bad_commands: hostile commands from the backend. soak: an accelerated day (a week under
the slow marker) in a fixed heap.
"""

import json
import os
import random
import shutil
import time

from agent.core.outbox import CRITICAL, ENTRY_CATEGORY, ENTRY_ID, ENTRY_PAYLOAD, ENTRY_PRIORITY, ENTRY_TOPIC, Outbox
from firmware.flash_store import FlashStore
from hil_tests.network import RadioGate
from hil_tests.targets import Target
from hil_tests.testbed import OPTIONAL, TREE, Testbed, by_id, unique
from provisioning.local_broker import Broker

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
GOLDEN_TRACE = os.path.join(GOLDEN, "trace.csv")
GOLDEN_EXPECTED = os.path.join(GOLDEN, "expected_events.json")
ESSENTIAL = "essential"
DAY_MS = 86_400_000


def _ids_complete(made: int) -> object:
    return lambda got: {b["id"] for _, b in got} >= set(range(1, made + 1))


def device_events(messages: list) -> list:
    """The device's messages as the golden file holds them: [topic below the device's tree,
    body], each id once, in id order."""
    return [[topic[len(TREE) :], body] for topic, body in unique(messages)]


# -- golden trace ---------------------------------------------------------------------------------


def golden_trace(target: Target, broker: Broker, work: str) -> list:
    """The golden trace replayed on the device gives exactly the expected messages (topic
    and body, id for id): the same events, decisions and payload bytes on every target."""
    bed = Testbed(target, broker, work)
    try:
        result = bed.start("--trace", GOLDEN_TRACE, "--drain-s", "30").result()
        assert result["left"] == 0 and result["dropped"] == 0, result
        got = device_events(bed.wait_for(_ids_complete(result["made"]), what="every message of the trace"))
    finally:
        bed.close()
    with open(GOLDEN_EXPECTED, encoding="utf-8") as f:
        expected = json.load(f)
    assert len(got) == result["made"], (len(got), result["made"])
    assert got == expected, "the device's messages differ from %s:\n%s" % (GOLDEN_EXPECTED, _diff(got, expected))
    return got


def _diff(got: list, expected: list) -> str:
    lines = []
    for i in range(max(len(got), len(expected))):
        a = got[i] if i < len(got) else None
        b = expected[i] if i < len(expected) else None
        if a != b:
            lines.append("#%d got      %s\n#%d expected %s" % (i + 1, json.dumps(a), i + 1, json.dumps(b)))
    return "\n".join(lines[:10])


# -- the link -------------------------------------------------------------------------------------


def _all_arrived_once_by_id(bed: Testbed, result: dict) -> dict:
    """Every message the device made arrived, each id with one body, none else."""
    assert result["left"] == 0 and result["dropped"] == 0, result["output"][-2000:]
    got = bed.wait_for(_ids_complete(result["made"]), what="messages 1 to %d" % result["made"])
    seen = by_id(got)  # one body per id
    assert sorted(seen) == list(range(1, result["made"] + 1)), sorted(seen)[:10]
    return seen


def _until(check: object, timeout_s: float, what: str, run: object) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("waited %d s for %s:\n%s" % (timeout_s, what, run.output()[-2000:]))  # type: ignore[attr-defined]
        time.sleep(0.05)


def broker_outage(target: Target, broker: Broker, work: str) -> None:
    """The broker stops mid-run and comes back: nothing owed is lost (receipts confirmed),
    every message arrives, under one id each (a receiver dropping duplicates keeps each once)."""
    bed = Testbed(target, broker, work)
    try:
        run = bed.start("--seconds", "4", "--speed", "20000", "--receipts-every-ms", "300", "--keepalive", "5",
                        "--drain-s", "40")  # fmt: skip
        before = len(bed.wait_for(lambda got: len(got) >= 4, what="the first messages"))
        broker.stop()
        time.sleep(1.5)  # the device goes on making messages meanwhile
        broker.start()
        result = run.result()
        assert result["failures"] >= 1 and result["connects"] >= 2, result
        seen = _all_arrived_once_by_id(bed, result)
        assert len(seen) > before, (len(seen), before)  # the outage was in the middle of the run
        receipts = [m for m, copies in seen.items() if copies[0][1]["kind"] == "consent_receipt"]
        assert len(receipts) == result["receipts"] >= 4, result
    finally:
        bed.close()


def wifi_loss(target: Target, broker: Broker, work: str) -> None:
    """The device's radio is lost mid-run (hil_tests/network.py: open links go silent, new
    ones find no route) and comes back: the device finds the dead link by its keepalive,
    retries, reconnects, and nothing is lost or sent under two ids."""
    gate = RadioGate(broker.port)
    bed = Testbed(target, broker, work, port=gate.port)
    try:
        run = bed.start("--seconds", "5", "--speed", "20000", "--receipts-every-ms", "300", "--keepalive", "2",
                        "--drain-s", "40")  # fmt: skip
        bed.wait_for(lambda got: len(got) >= 4, what="the first messages")
        gate.lose()
        # The device must find the silent link dead by itself (its keepalive), then try
        # again and find no route, before the radio comes back.
        _until(lambda: "(keepalive 2 s)" in run.output(), 15, "the device to find its link dead", run)
        _until(lambda: gate.refused >= 1, 15, "the device to try again while its radio was lost", run)
        gate.restore()
        result = run.result()
        assert gate.swallowed > 0  # it was sending into the silence (pings, messages)
        assert result["failures"] >= 2 and result["connects"] >= 2, result
        _all_arrived_once_by_id(bed, result)
    finally:
        bed.close()
        gate.close()


# -- power cut ------------------------------------------------------------------------------------


def _owed_in_log(data_dir: str, work: str, consent: tuple) -> dict:
    """id -> (topic, body) of what the outbox on data_dir must still deliver when the next
    start gives `consent`: read from a copy (recovery may rewrite a damaged log), as the
    next start will find it. Receipts are owed to the user; the rest of what its consent
    lets go has nothing that may drop it (the outbox is far from full)."""
    if not os.path.isdir(data_dir):
        return {}  # killed before it made its data directory: nothing stored, nothing owed
    copy = os.path.join(work, "log-copy")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(data_dir, copy)
    store = FlashStore(copy)
    box = Outbox(1024, store, (ESSENTIAL,))
    for f in store._open.values():  # a recovery after damage wrote the log anew: let go of its files
        f.close()
    owed = {}
    for e in box.pending:
        if e[ENTRY_PRIORITY] >= CRITICAL or e[ENTRY_CATEGORY] == ESSENTIAL or e[ENTRY_CATEGORY] in consent:
            owed[e[ENTRY_ID]] = (e[ENTRY_TOPIC], json.loads(e[ENTRY_PAYLOAD]))
    return owed


def power_cut(target: Target, broker: Broker, work: str, runs: int = 20, seed: int = 1) -> dict:
    """The device killed (SIGKILL) at a random point of each of `runs` starts, restarted on
    the same data directory, then left to finish. The first start agrees to every optional
    category, the later ones to maintenance only (runtime.py keeps consent in the heap).

    Holds: every start loads its storage (damage said, never a crash); no message id is
    given to two messages; no message of a category the current start did not agree to
    leaves after the first restart (what the first start queued for them is withdrawn,
    not sent); every message the log held for delivery at any cut arrives, as it was."""
    rng = random.Random(seed)
    bed = Testbed(target, broker, work)
    owed: dict = {}
    kills = []
    try:
        first_restart_at = 0  # messages the backend had when the first restart came
        for i in range(runs):
            consent = "all" if i == 0 else "maintenance"
            run = bed.start("--seconds", "3", "--speed", "20000", "--receipts-every-ms", "150", "--consent", consent,
                            "--keepalive", "5", "--drain-s", "30")  # fmt: skip
            at = rng.uniform(0.05, 0.8)
            time.sleep(at)
            if not run.alive():
                run.result()  # it ended on its own before the cut: it must have ended well
            run.kill()
            kills.append(round(at, 3))
            text = run.output()
            assert "Traceback" not in text and "wichtel: " not in text, text[-3000:]
            owed.update(_owed_in_log(bed.data_dir, work, ("maintenance",)))
            if i == 0:
                first_restart_at = len(bed.settle())
        result = bed.start("--seconds", "1", "--speed", "20000", "--consent", "maintenance", "--keepalive", "5",
                           "--drain-s", "40").result()  # fmt: skip
        assert result["left"] == 0, result["output"][-3000:]
        got = bed.wait_for(lambda got: {b["id"] for _, b in got} >= set(owed), 30, "every message owed")
        seen = by_id(got)  # no id reused for another message
        for mid, (topic, body) in owed.items():
            assert seen[mid][0] == (topic, body), (mid, seen[mid][0], body)
        after = got[first_restart_at:]
        leaked = [(t, b["id"]) for t, b in after if b["cat"] not in (ESSENTIAL, "maintenance")]
        assert not leaked, "sent without the consent of the start that sent them: %s" % leaked[:5]
        receipts = [m for m, c in seen.items() if c[0][1]["kind"] == "consent_receipt"]
        return {"runs": runs, "kills_s": kills, "owed": len(owed), "receipts": len(receipts), "ids": len(seen),
                "storage_said": sum("storage: " in _read(os.path.join(work, n)) for n in os.listdir(work)
                                    if n.endswith(".out"))}  # fmt: skip
    finally:
        bed.close()


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


# -- corrupt files --------------------------------------------------------------------------------


def _flip_middle(path: str) -> None:
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        data[len(data) // 2] ^= 0xFF
        f.seek(0)
        f.write(data)


def _truncate_half(path: str) -> None:
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def _empty(path: str) -> None:
    open(path, "wb").close()


DAMAGES = {"flipped byte": _flip_middle, "cut in half": _truncate_half, "emptied": _empty}


def corrupt_files(target: Target, broker: Broker, work: str) -> dict:
    """Each file the device stored (its outbox log), damaged before a start, one damage at a
    time: the start says what it found in one line, runs and delivers, and sends nothing
    optional (the start gives no consent). Each file of the bundle (also on flash), cut in
    half: the device refuses to start with one line naming the file, never a traceback."""
    bed = Testbed(target, broker, work)
    said = {}
    receipts = 0  # consent receipts the damaged logs still held, each delivered by its start
    try:
        # Messages that wait: the broker is away for the whole first run (which agrees to
        # every category), so whatever optional message ever arrives came from a damaged start.
        broker.stop()
        try:
            first = bed.start("--seconds", "0.5", "--speed", "20000", "--drain-s", "0").result()
        finally:
            broker.start()
        assert first["left"] > 0, first
        stored = sorted(os.listdir(bed.data_dir))
        assert stored, "the device stored nothing"
        for name in stored:
            for damage, spoil in DAMAGES.items():
                data = os.path.join(work, "data-%s-%s" % (name, damage.replace(" ", "-")))
                shutil.copytree(bed.data_dir, data)
                spoil(os.path.join(data, name))
                # What the damaged log still holds for delivery, by the outbox's own recovery
                # (consent receipts written before the damage among it: owed to the user).
                kept = _owed_in_log(data, work, ())
                before = len(bed.settle())
                result = bed.start("--seconds", "0.3", "--speed", "20000", "--consent", "none", "--drain-s", "30",
                                   data_dir=data).result()  # fmt: skip
                lines = [line for line in result["output"].splitlines() if line.startswith("log: storage: ")]
                assert lines and result["storage_problems"], (name, damage, result["output"][-2000:])
                assert result["left"] == 0, (name, damage, result["output"][-2000:])
                said["%s %s" % (name, damage)] = lines[0]
                got = bed.settle()[before:]
                arrived = {(b["id"], json.dumps([t, b], sort_keys=True)) for t, b in got}
                owed = {(mid, json.dumps(m, sort_keys=True)) for mid, m in kept.items()}
                assert owed <= arrived, "%s %s: kept but not delivered: %s" % (name, damage, sorted(owed - arrived)[:3])
                receipts += sum("consent_receipt" in m for _, m in owed)
        optional = [(t, b["id"]) for t, b in bed.settle() if b["cat"] in OPTIONAL]
        assert not optional, "sent after a damaged start that gave no consent: %s" % optional[:5]
        assert receipts, "no damaged log kept a consent receipt: the check of their delivery checked nothing"
        for name in sorted(os.listdir(bed.bundle)):
            broken = os.path.join(work, "bundle-" + name)
            shutil.copytree(bed.bundle, broken)
            _truncate_half(os.path.join(broken, name))
            run = target.start(broken, os.path.join(work, "data-" + name), ["--seconds", "0.5"],
                               os.path.join(work, "bundle-%s.out" % name))  # fmt: skip
            code = run.wait(60)
            text = run.output()
            assert code == 2 and "Traceback" not in text, (name, code, text[-2000:])
            last = text.strip().splitlines()[-1:]  # MicroPython may warn before it
            assert last and last[0].startswith("wichtel: ") and name in last[0], (name, text[-2000:])
            said["bundle " + name] = last[0]
        return said
    finally:
        bed.close()


# -- clock jump -----------------------------------------------------------------------------------


def clock_jump(target: Target, broker: Broker, work: str) -> dict:
    """The device's clock jumps forward and back during a run, across a day's end both
    ways: no burst of samples for skipped time, no time sampled twice, no status twice for
    one day, no negative wait, and everything made arrives.

    On a clock that runs as fast as the device computes (--speed 0: every due sample is
    taken, none lost to a busy machine, so the count is exact): set to 23:50 at the start;
    at run time 5 min ten minutes forward (into day 1: 0:05), at 10 min twenty minutes back
    (day 0 again: 23:50), at 15 min five minutes forward (0:00); the run lasts until the
    clock reads 0:20. Samples are due from 23:50 to 23:55, from 0:05 to 0:10 and, once the
    clock is past the 0:10 it had reached before the jump back, from 0:10 to 0:20: 20 min."""
    minute = 60_000
    jumps = "0:%d,%d:%d,%d:%d,%d:%d" % (1430 * minute, 5 * minute, 10 * minute, 10 * minute, -20 * minute,
                                        15 * minute, 5 * minute)  # fmt: skip
    bed = Testbed(target, broker, work)
    try:
        run = bed.start("--seconds", "1800", "--speed", "0", "--clock-jumps", jumps, "--keepalive", "5",
                        "--drain-s", "30")  # fmt: skip
        result = run.result()
        seen = _all_arrived_once_by_id(bed, result)
        with open(os.path.join(bed.bundle, "profile.json"), encoding="utf-8") as f:
            periods = [max(1, int(1000 / ch["sample_hz"])) for ch in json.load(f)["channels"]]
    finally:
        bed.close()
    expected = sum(20 * minute // period for period in periods)
    # Each due time once (a channel may take one more at an edge): a burst to catch up the
    # ten minutes skipped, or the minutes after the jump back sampled again, would be
    # hundreds more.
    assert expected <= result["samples"] <= expected + 2 * len(periods), (result["samples"], expected)
    assert result["clock_ms"] >= DAY_MS + 20 * minute - max(periods), result["clock_ms"]  # the run went to its end
    statuses = [c[0][1] for c in seen.values() if c[0][1]["kind"] == "status"]
    # Day 0 at the start, day 1 after the first jump; the jump back into day 0 and the
    # return into day 1 are days already reported.
    assert len(statuses) == 2, statuses
    assert all(w >= 0 for w in result["waits_ms"]), result["waits_ms"]
    return {"samples": result["samples"], "expected": expected, "statuses": len(statuses)}


# -- bad commands ---------------------------------------------------------------------------------


def _command(seq: object, args: object, device: str = "dev-1") -> bytes:
    return json.dumps({"device": device, "seq": seq, "args": args}).encode()


def _nested(depth: int) -> dict:
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value  # type: ignore[return-value]


# (command topic name, payload): each must be refused with an error reply, changing nothing.
HOSTILE = [
    ("config", _command(1, _nested(12))),  # nested deeper than a command may be
    ("config", _command(1, {"status_interval_h": 2, "pad": "x" * 2000})),  # oversized
    ("status_report", _command(0, {})),  # seq 0: not above the last taken
    ("status_report", _command(5000, {})),  # seq far beyond the last (more than MAX_SEQ_STEP)
    ("status_report", _command("1", {})),  # seq not a number
    ("reboot", _command(1, {})),  # a command the device does not know
    ("consent", _command(1, {"category": "usage_statistics", "on": True})),  # no command switches consent on
    ("config", _command(1, {"status_interval_h": 0})),  # out of range
    ("status_report", _command(1, {}, device="dev-2")),  # for another device
    ("status_report", b"\xff\xfe{not json"),
    ("status_report", b""),
]


def _replies(got: list) -> list:
    return [b["data"] for _, b in unique(got) if b["kind"] == "command_reply"]


def bad_commands(target: Target, broker: Broker, work: str) -> dict:
    """Hostile commands from the backend over the broker (nested, oversized, wrong seq,
    unknown, a consent switch, another device's, not JSON, a good one replayed): each
    refused with an error reply, nothing changed (no sequence number taken, no consent
    on), the device keeps running and carries out and answers the good commands.

    The device agrees to maintenance only; its receipt waits for the backend's
    confirmation, which this test sends last (the backend here confirms nothing by
    itself: its sequence numbers are the test's), so the device stays connected until then."""
    bed = Testbed(target, broker, work, confirming=False)
    try:
        run = bed.start("--seconds", "2", "--speed", "2000", "--consent", "maintenance", "--keepalive", "5",
                        "--drain-s", "60")  # fmt: skip
        got = bed.wait_for(lambda got: {"status", "consent_receipt"} <= {b["kind"] for _, b in got}, 30,
                           "the device's first status and its receipt")  # fmt: skip
        receipt = next(b["id"] for _, b in got if b["kind"] == "consent_receipt")
        for name, payload in HOSTILE:
            bed.send_command(name, payload)
        bed.wait_for(lambda got: len(_replies(got)) >= len(HOSTILE), 30, "a reply to each hostile command")
        assert run.alive(), run.output()[-2000:]
        bed.send_command("status_report", _command(1, {}))
        bed.wait_for(lambda got: len(_replies(got)) > len(HOSTILE) and [b["kind"] for _, b in got].count("status") > 1,
                     30, "the answer to the good command, and the status it asked for")  # fmt: skip
        bed.send_command("status_report", _command(1, {}))  # the good one again: a replay
        bed.wait_for(lambda got: len(_replies(got)) > len(HOSTILE) + 1, 30, "the answer to the replay")
        bed.send_command("confirm", _command(2, {"ids": [receipt]}))  # carried out: the device may end
        result = run.result()
        got = bed.settle()
    finally:
        bed.close()
    answers = _replies(got)
    refused, replay, done = answers[: len(HOSTILE)], answers[-1], answers[len(HOSTILE)]
    assert all(a["ok"] is False and a["last_seq"] == 0 for a in refused), refused  # none was taken
    assert done == {"command": "status_report", "ok": True, "seq": 1}, done
    assert replay["ok"] is False and replay["last_seq"] == 1, replay
    assert len(answers) == len(HOSTILE) + 2, answers  # the confirm is carried out unanswered
    assert result["left"] == 0, result["output"][-2000:]  # the receipt was confirmed: the confirm was taken
    assert not [b for _, b in got if b["cat"] in ("usage_statistics", "consumables")], "a consent was switched on"
    assert result["inbound_faults"] == 0, result  # refused by the checks; no handler failed
    return {"refused": len(refused) + 1, "errors": sorted({a["error"][:40] for a in refused})}


# -- soak -----------------------------------------------------------------------------------------


def soak(target: Target, broker: Broker, work: str, days: float = 1, seconds_per_day: float = 4) -> dict:
    """`days` of appliance time at seconds_per_day real seconds each, in the target's fixed
    heap, with what the agent keeps sized for an ESP32 (limits.BOARD_SIZES): the run
    completes (a board's heap cannot grow), everything made arrives, one status a day;
    the caller holds the live heap's peak (in the result) to its bound."""
    speed = DAY_MS / 1000 / seconds_per_day
    bed = Testbed(target, broker, work)
    try:
        result = bed.start("--seconds", str(days * seconds_per_day), "--speed", str(speed), "--receipts-every-ms",
                           "2000", "--keepalive", "5", "--drain-s", "60", "--board", "esp32").result()  # fmt: skip
        seen = _all_arrived_once_by_id(bed, result)
    finally:
        bed.close()
    assert result["clock_ms"] >= days * DAY_MS, result["clock_ms"]
    statuses = sum(1 for c in seen.values() if c[0][1]["kind"] == "status")
    assert statuses >= int(days), statuses  # one a day
    return {"made": result["made"], "statuses": statuses, "heap_total_bytes": result["heap_total_bytes"],
            "heap_start_bytes": result["heap_start_bytes"], "heap_peak_bytes": result["heap_peak_bytes"],
            "heap_after_bytes": result["heap_after_bytes"]}  # fmt: skip


SCENARIOS = {
    "golden_trace": golden_trace,
    "broker_outage": broker_outage,
    "wifi_loss": wifi_loss,
    "power_cut": power_cut,
    "corrupt_files": corrupt_files,
    "clock_jump": clock_jump,
    "bad_commands": bad_commands,
}
