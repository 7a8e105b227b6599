"""Portable cases: each checks behaviour with asserts and returns plain data.

Every case runs on CPython and on MicroPython; the returned data must be the same on
both (tests/test_portable.py). data_dir holds the compiled example profiles.
"""

import asyncio
import json

from agent.core import limits, processors
from agent.core import profile as core_profile
from agent.core.channel import BoundedChannel
from agent.core.clock import ManualClock
from agent.core.encoding import encode, round_sig
from agent.core.errors import EncodingError, ProfileError
from agent.core.events import ANOMALY, Event
from agent.core.gate import NO_CONSENT, SENT, UNKNOWN_CATEGORY, ConsentView, PrivacyGate
from agent.core.outbox import Outbox
from agent.core.pipeline import Agent, SampleSchedule
from agent.core.ring import RingBuffer
from agent.sim.appliances import make
from agent.sim.engine import SimDriver
from agent.sim.rng import XorShift32


def _profile(data_dir: str, kind: str = "washing_machine") -> dict:
    with open(data_dir + "/" + kind + ".json") as f:
        return core_profile.validate(json.load(f))


def _error(fn: object, *args: object) -> str:
    try:
        fn(*args)  # type: ignore[operator]
    except ProfileError as e:
        return str(e)
    raise AssertionError("expected a ProfileError")


def case_ring_drops_oldest_at_capacity(data_dir: str) -> list:
    ring = RingBuffer(4)
    evicted = [ring.push(i) for i in range(7)]
    assert len(ring) == 4 and ring.dropped == 3
    assert evicted == [None, None, None, None, 0, 1, 2]
    assert ring.items() == [3, 4, 5, 6]
    assert ring.pop() == 3 and ring.items() == [4, 5, 6]
    ring.clear()
    assert len(ring) == 0
    return [ring.capacity, ring.dropped]


async def case_channel_is_bounded_and_ordered(data_dir: str) -> list:
    ch = BoundedChannel(3)
    for i in range(5):
        ch.put(i)
    got = []
    for _ in range(3):
        got.append(await ch.get())
    assert len(ch) == 0
    # A consumer waiting on an empty channel is woken by the next put.
    waiter = asyncio.create_task(ch.get())
    await asyncio.sleep(0)
    ch.put(99)
    got.append(await waiter)
    assert got == [2, 3, 4, 99] and ch.dropped == 2
    return [got, ch.dropped]


def case_rng_is_deterministic(data_dir: str) -> list:
    a = XorShift32(42)
    b = XorShift32(42)
    seq = [a.next_u32() for _ in range(5)]
    assert seq == [b.next_u32() for _ in range(5)]
    assert XorShift32(43).next_u32() != seq[0]
    mean = sum(a.uniform() for _ in range(2000)) / 2000
    assert 0.45 < mean < 0.55
    return seq


def case_profile_examples_validate(data_dir: str) -> list:
    out = []
    for kind in ("washing_machine", "coffee_machine", "dishwasher"):
        prof = _profile(data_dir, kind)
        assert prof["appliance"]["kind"] == kind
        # Optional categories are off by default: nothing optional leaves unasked.
        consent = ConsentView(prof["data_categories"])
        assert not any(consent.allows(c["id"]) for c in prof["data_categories"])
        out.append([kind, len(prof["channels"]), len(prof["data_categories"])])
    return out


def case_profile_errors_name_path_value_expectation(data_dir: str) -> list:
    prof = _profile(data_dir)
    messages = []

    def broken(change: object) -> str:
        doc = json.loads(json.dumps(prof))
        change(doc)  # type: ignore[operator]
        return _error(core_profile.validate, doc)

    def rate(d: dict) -> None:
        d["channels"][1]["sample_hz"] = 5000

    def wrong_type(d: dict) -> None:
        d["uplink"]["port"] = "8883"

    def unknown(d: dict) -> None:
        d["channels"][0]["smaple_hz"] = 1

    def missing(d: dict) -> None:
        del d["appliance"]["model"]

    def dangling(d: dict) -> None:
        d["channels"][0]["processors"][0]["category"] = "marketing"

    def dup(d: dict) -> None:
        d["channels"][2]["id"] = d["channels"][0]["id"]

    for change in (rate, wrong_type, unknown, missing, dangling, dup):
        messages.append(broken(change))
    assert messages[0].startswith("channels[1].sample_hz: got 5000 (int); expected a number from 0.01 to 100.0")
    assert messages[1].startswith("uplink.port: got '8883' (str); expected a whole number")
    assert messages[2].startswith("channels[0].smaple_hz: got 'smaple_hz' (str); expected one of the known keys")
    assert messages[3] == "appliance.model: got nothing; expected the required key 'model' here"
    assert "channels[0].processors[0].category" in messages[4] and "data_categories" in messages[4]
    assert messages[5].startswith("channels[2].id: got 'motor_current'")
    return messages


def case_encoding_is_deterministic(data_dir: str) -> list:
    msg = {"z": 1, "a": [1.23456789, -0.000123456, 3.0, True, None], "m": {"b": 'ä"x', "a": 2}}
    data = encode(msg, 200)
    assert data == b'{"a":[1.235,-0.0001235,3,true,null],"m":{"a":2,"b":"\\u00e4\\"x"},"z":1}', data
    # Outside the BMP: a surrogate pair, as JSON requires.
    assert encode({"s": "\U0001f41b\n"}, 100) == b'{"s":"\\ud83d\\udc1b\\n"}'

    try:
        encode({"k": "x" * 100}, 50)
        raise AssertionError("expected EncodingError")
    except EncodingError as e:
        too_long = str(e)
    assert round_sig(123456.0, 3) == 123000.0 and round_sig(0.0) == 0.0
    return [data.decode(), too_long]


def case_gate_sends_only_consented_and_declared(data_dir: str) -> list:
    prof = _profile(data_dir)
    consent = ConsentView(prof["data_categories"])
    gate = PrivacyGate(prof, "dev-1", consent)
    fields = {"detector": "ewma", "value": 0.81234, "baseline": 0.45, "score": 0.9, "secret": "serial-123"}
    event = Event(ANOMALY, "maintenance", "motor_current", 3_600_000, "drain", fields)
    assert gate.judge(event).reason == NO_CONSENT
    consent.set("maintenance", True)
    sent = gate.judge(event)
    assert sent.reason == SENT and sent.topic == "wichtel/dev-1/maintenance"
    body = json.loads(sent.payload)
    # Only the category's declared fields leave, time coarsened to minutes.
    assert "secret" not in body["data"] and body["data"]["time_min"] == 60
    stray = Event(ANOMALY, "marketing", "motor_current", 0, "", fields)
    assert gate.judge(stray).reason == UNKNOWN_CATEGORY
    return [sent.topic, sent.payload.decode()]


def case_outbox_bound(data_dir: str) -> list:
    box = Outbox(limits.OUTBOX_LEN)
    for i in range(limits.OUTBOX_LEN + 5):
        box.push("t", str(i).encode())
    assert len(box) == limits.OUTBOX_LEN and box.dropped == 5
    assert box.peek() == ("t", b"5")
    box.ack()
    assert box.delivered == 1 and box.peek() == ("t", b"6")
    return [len(box), box.dropped, box.accepted]


def case_ewma_flags_step_not_noise(data_dir: str) -> list:
    det = processors.build("ewma", {"alpha": 0.01, "threshold": 6.0, "warmup": 50, "holdoff_s": 100})
    rng = XorShift32(5)
    alerts = []
    for i in range(3000):
        value = rng.gauss(10.0, 0.5) + (4.0 if i >= 2000 else 0.0)
        out = det.feed(i * 1000, value, "wash")
        if out is not None:
            alerts.append([i, out[0], round(out[1]["baseline"], 1)])
    assert alerts and alerts[0][0] == 2000 and alerts[0][1] == ANOMALY
    # The lasting step is held off, not repeated on every sample.
    assert len(alerts) <= 10
    return alerts


def case_ewma_keeps_one_baseline_per_phase(data_dir: str) -> list:
    det = processors.build("ewma", {"alpha": 0.05, "threshold": 5.0, "warmup": 20, "holdoff_s": 0})
    rng = XorShift32(9)
    alerts = 0
    for i in range(600):
        phase = "spin" if (i // 50) % 2 else "drain"
        level = 3.6 if phase == "spin" else 0.45
        if det.feed(i * 1000, rng.gauss(level, 0.05), phase) is not None:
            alerts += 1
    assert alerts == 0
    for i in range(limits.MAX_PHASES + 4):
        det.feed(10**6 + i, 1.0, "p" + str(i))
    assert len(det.baselines) == limits.MAX_PHASES
    return [alerts, len(det.baselines)]


def case_aggregate_windows(data_dir: str) -> list:
    agg = processors.build("aggregate", {"window_s": 10})
    outs = []
    for i in range(35):
        out = agg.feed(i * 1000, float(i % 10), "")
        if out is not None:
            outs.append(out[1])
    assert len(outs) == 3 and outs[0] == {"n": 10, "min": 0.0, "mean": 4.5, "max": 9.0, "window_s": 10}
    return outs


def case_schedule_skips_missed_slots(data_dir: str) -> list:
    sched = SampleSchedule([1000, 2500], 0)
    order = []
    for _ in range(6):
        t = sched.next_due()
        order.append([t, sched.take_due(t)])
    assert order[0] == [0, [0, 1]] and order[1] == [1000, [0]]
    # Late by 10 s: each channel samples once and resumes its rhythm.
    late = sched.take_due(20_000)
    assert late == [0, 1] and sched.next_due() == 21_000
    return order


def case_simulator_injected_fault_changes_drain(data_dir: str) -> list:
    def drain_seconds(faults: list) -> list:
        sim = make("washing_machine", 3, faults, 1, 2)
        out: list = []
        prev = "idle"
        start = 0
        for t in range(0, 40 * 3600 * 1000, 1000):
            phase = sim.phase(t)
            if phase != prev:
                if prev == "drain":
                    out.append((t - start) // 1000)
                prev = phase
                start = t
        return out

    healthy = drain_seconds([])
    clogged = drain_seconds(["pump_clog"])
    assert healthy[:4] == [90, 90, 90, 90]
    assert clogged[0] == 90 and clogged[-1] > 180
    return [healthy[:6], clogged[:6]]


async def case_pipeline_finds_clogging_pump(data_dir: str) -> dict:
    prof = _profile(data_dir)
    sim = make("washing_machine", 7, ["pump_clog"], 2, 2)
    drivers = {ch["id"]: SimDriver(sim, ch["id"]) for ch in prof["channels"]}
    consent = ConsentView(prof["data_categories"])
    consent.set("maintenance", True)
    agent = Agent(prof, "dev-7", drivers, ManualClock(), sim, None, consent)
    await agent.run(24 * 3600 * 1000)
    payloads = []
    while len(agent.outbox):
        topic, payload = agent.outbox.peek()
        payloads.append(topic + " " + payload.decode())
        agent.outbox.ack()
    assert any('"channel":"motor_current"' in p and '"phase":"drain"' in p for p in payloads), payloads
    # Usage statistics were computed but stayed on the device: no consent.
    assert agent.decisions.get(NO_CONSENT, 0) > 0
    assert all(p.startswith("wichtel/dev-7/maintenance ") for p in payloads)
    return {
        "samples": sum(c.samples for c in agent.channels),
        "decisions": agent.decisions,
        "payloads": payloads,
        "dropped_events": agent.events.dropped,
    }
