"""Portable cases: each checks behaviour with asserts and returns plain data.

Every case runs on CPython and on MicroPython; the returned data must be the same on
both (tests/test_portable.py). data_dir holds the compiled example profiles.
"""

import asyncio
import json
import math

from agent.core import (
    commands,
    consent,
    consumables,
    detectors,
    inbound_json,
    journal,
    limits,
    mqtt,
    processors,
    ratelimit,
    uplink,
    usage,
)
from agent.core import profile as core_profile
from agent.core.channel import BoundedChannel
from agent.core.clock import ManualClock
from agent.core.consent import ConsentLedger
from agent.core.encoding import encode, round_sig
from agent.core.errors import (
    CommandError,
    ConfigError,
    EncodingError,
    InboundJsonError,
    InputError,
    MqttError,
    OutboxFullError,
    ProfileError,
    StateError,
)
from agent.core.events import ANOMALY, Event
from agent.core.gate import BEFORE_CONSENT, NO_CONSENT, OVER_BUDGET, SENT, UNKNOWN_CATEGORY, PrivacyGate
from agent.core.outbox import CRITICAL, LOW, MemoryStore, Outbox
from agent.core.outbox import confirm_wait_ms as outbox_confirm_wait
from agent.core.pipeline import Agent, SampleSchedule
from agent.core.ring import RingBuffer
from agent.sim.appliances import make
from agent.sim.engine import ApplianceSim, SimDriver
from agent.sim.rng import XorShift32

# The simulated spans of the two whole-pipeline cases: long enough for what each looks for,
# and no longer (each simulated hour costs about a second on the WebAssembly runtime). Both
# simulate a busy household (_busy_washer): a wash about every two and a half hours, so the
# cycles a detector learns from come in hours, not days.
PUMP_HOURS = 13  # the drain slowing is found at hour 12 (seed 7, clog from the third cycle)
RUN_HOURS = 9  # six hours' statistics and a maintenance alert at hour 8 (seed 1, clog from the third cycle)
BUSY_IDLE_S = (3600, 1200)  # between two washes: mean and spread, seconds


def _busy_washer(seed: int) -> ApplianceSim:
    """The washing machine of a busy household, its drain pump clogging from the third cycle
    at once (severity 1 from the onset)."""
    return make("washing_machine", seed, ["pump_clog"], 3, 1, BUSY_IDLE_S)


def _profile(data_dir: str, kind: str = "washing_machine") -> dict:
    # As a device reads it: bounded before parsing, then validated.
    with open(data_dir + "/" + kind + ".json", "rb") as f:
        return core_profile.from_json(f.read())


def _error(fn: object, *args: object) -> str:
    try:
        fn(*args)  # type: ignore[operator]
    except ProfileError as e:
        return str(e)
    raise AssertionError("expected a ProfileError")


def case_rate_limit_at_its_bound(data_dir: str) -> list:
    bucket = ratelimit.TokenBucket(2.0, 3, 0)
    burst = [bucket.take(0) for _ in range(5)]
    assert burst == [True, True, True, False, False]
    assert not bucket.take(499) and bucket.take(500)  # 2 a second: one token per 500 ms
    assert bucket.take(10_000) and bucket.take(10_000) and bucket.take(10_000) and not bucket.take(10_000)
    lines: list = []
    now = [0]
    report = ratelimit.ThrottledReport(lines.append, 1.0, 2, lambda: now[0])
    for i in range(1000):
        report("line %d" % i)
    assert lines == ["line 0", "line 1"] and report.suppressed == 998
    now[0] = 1000
    report("after")
    assert lines[-1] == "after (998 similar messages held back)" and report.suppressed == 0
    try:
        ratelimit.TokenBucket(0, 1)
    except ConfigError as e:
        refused = str(e)
    else:
        raise AssertionError("a zero rate was taken")
    return [burst, lines, report.suppressed_total, refused]


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
        consent = ConsentLedger(prof["data_categories"])
        assert [c["id"] for c in prof["data_categories"] if consent.allows(c["id"])] == ["essential"]
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


def case_compiled_profile_is_bounded_before_parsing(data_dir: str) -> list:
    with open(data_dir + "/washing_machine.json", "rb") as f:
        good = f.read()
    limit = limits.PROFILE_JSON_MAX_BYTES
    depth = limits.PROFILE_MAX_DEPTH
    digits = limits.PROFILE_MAX_NUMBER_CHARS
    # Size: at the bound (spaces, which JSON skips) it loads; one byte more is refused.
    assert core_profile.from_json(good + b" " * (limit - len(good)))["appliance"]["kind"] == "washing_machine"
    out = [_error(core_profile.from_json, good + b" " * (limit - len(good) + 1))]
    # Nesting: at the bound the schema judges; one level more is refused before parsing.
    out.append(_error(core_profile.from_json, b'{"x":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"))
    out.append(_error(core_profile.from_json, b'{"x":' + b"[" * depth + b"]" * depth + b"}"))
    out.append(_error(core_profile.from_json, b"[" * (limit - 1)))
    # Numbers: one of the bound's digits loads; one digit more, or 5000 digits, is refused.
    assert b'"threshold":4.0}' in good
    at = good.replace(b'"threshold":4.0}', b'"threshold":4.' + b"0" * (digits - 1) + b"}")
    assert core_profile.from_json(at)["channels"][0]["processors"][0]["settings"]["threshold"] == 4.0
    out.append(_error(core_profile.from_json, at.replace(b'"threshold":4.', b'"threshold":4.0')))
    out.append(_error(core_profile.from_json, b'{"wichtel_profile":' + b"9" * 5000 + b"}"))
    out.append(_error(core_profile.from_json, b'{"wichtel_profile":-1e' + b"9" * 40 + b"}"))
    # Brackets, digits and escaped quotes inside a string are text, not structure.
    model = b"[{" * 20 + b"1" * 40 + b'\\\\\\"' + b"]" * 3
    odd = core_profile.from_json(good.replace(b'"WM 8 Eco"', b'"' + model + b'"'))
    assert odd["appliance"]["model"] == "[{" * 20 + "1" * 40 + '\\"' + "]" * 3
    # Not JSON, or not UTF-8: refused as such (the parser's own words differ by runtime).
    for broken in (good[:-1], b"\xff\xfe" + good, b""):
        out.append(_error(core_profile.from_json, broken).split(" (")[0])
    return out


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
    consent = ConsentLedger(prof["data_categories"], "dev-1")
    gate = PrivacyGate(prof, "dev-1", consent, b"k" * 16)
    fields = {"detector": "anomaly", "value": 0.81234, "baseline": 0.45, "score": 0.9, "secret": "serial-123",
              "change_pct": 37.4}  # fmt: skip
    event = Event(ANOMALY, "maintenance", "motor_current", 5_400_000, "drain", fields)
    assert gate.judge(event, 1).reason == NO_CONSENT
    consent.set("maintenance", True, 5_000_000)
    sent = gate.judge(event, 1)
    assert sent.reason == SENT and sent.topic == "wichtel/v1/dev-1/maintenance" and sent.category == "maintenance"
    body = json.loads(sent.payload)
    # Only the category's declared fields leave: rounded, time coarsened to its hour.
    assert "secret" not in body["data"] and body["data"]["time"] == 3600
    assert body["data"]["change_pct"] == 35 and body["cat"] == "maintenance"
    assert body["id"] == sent.msg_id == 1  # the id the outbox keeps it under travels in the body
    # Data from before the consent never leaves.
    early = Event(ANOMALY, "maintenance", "motor_current", 4_000_000, "drain", fields)
    assert gate.judge(early, 2).reason == BEFORE_CONSENT
    stray = Event(ANOMALY, "marketing", "motor_current", 6_000_000, "", fields)
    assert gate.judge(stray, 2).reason == UNKNOWN_CATEGORY
    # Statistics go out under a pseudonym: stable, not the device id.
    consent.set("usage_statistics", True, 0)
    stats = Event("reading", "usage_statistics", "inlet_flow", 7_200_000, "", {"mean": 3.26, "min": 0.0, "max": 8.1})
    d = gate.judge(stats, 2)
    pseudonym = json.loads(d.payload)["pid"]
    assert d.reason == SENT and pseudonym != "dev-1" and len(pseudonym) == 16
    assert json.loads(gate.judge(stats, 2).payload)["pid"] == pseudonym
    assert json.loads(d.payload)["data"]["mean"] == 3.5  # rounded to 0.5
    # The daily budget caps a category.
    n = 0
    while gate.judge(stats, 2).reason == SENT:
        n += 1
    assert gate.judge(stats, 2).reason == OVER_BUDGET and n > 10
    return [sent.topic, sent.payload.decode(), d.payload.decode(), n]


def case_outbox_bound(data_dir: str) -> list:
    box = Outbox(limits.OUTBOX_LEN)
    for i in range(limits.OUTBOX_LEN + 5):
        box.push("t", str(i).encode())
    assert len(box) == limits.OUTBOX_LEN and box.dropped == 5
    assert box.peek() == ("t", b"5", "")
    box.ack()
    assert box.delivered == 1 and box.peek() == ("t", b"6", "")
    return [len(box), box.dropped, box.accepted]


def case_the_default_outbox_keeps_no_log_in_memory(data_dir: str) -> list:
    box = Outbox(4)  # as a board without storage for it has it: the pending list only
    for i in range(6):
        box.push("t", b"x" * 100 + str(i).encode(), "usage_statistics", LOW)
    assert box.store.segments() == [] and len(box) == 4 and box.dropped == 2  # type: ignore[attr-defined]
    box.ack()
    assert len(box) == 3 and box.sync() and box.peek()[1].endswith(b"3")
    again = Outbox(4, box.store)  # a restart: RAM kept nothing, and that is not damage
    assert len(again) == 0 and not again.damaged and again.problems == []
    return [len(box), box.dropped, box.next_id]


def case_consent_history_bound_keeps_each_categorys_latest(data_dir: str) -> list:
    prof = _profile(data_dir)
    ledger = ConsentLedger(prof["data_categories"], "dev-1")
    ledger.set("consumables", True, 1)  # the oldest receipt, and this category's latest
    sizes = []
    for i in range(limits.CONSENT_HISTORY_LEN + 10):
        ledger.set("maintenance", i % 2 == 0, 2 + i)
        sizes.append(len(ledger.history))
    assert sizes[limits.CONSENT_HISTORY_LEN - 2] == limits.CONSENT_HISTORY_LEN
    assert max(sizes) == limits.CONSENT_HISTORY_LEN  # trimmed each time it would pass the bound
    assert ledger.history[0]["category"] == "consumables" and ledger.allows("consumables")
    seqs = [r["seq"] for r in ledger.history]
    assert seqs == sorted(seqs) and seqs[-1] == limits.CONSENT_HISTORY_LEN + 11
    # A replay of what is kept gives the same choices, and numbering goes on.
    again = ConsentLedger(prof["data_categories"], "dev-1")
    assert again.replay([ConsentLedger.record(r) for r in ledger.history]) == []
    assert again.choices() == ledger.choices()
    assert again.set("maintenance", True, 99)["seq"] == seqs[-1] + 1
    return [len(ledger.history), seqs[0], seqs[1], seqs[-1]]


async def case_a_full_outbox_of_higher_messages_drops_the_new_one_and_the_gate_goes_on(data_dir: str) -> list:
    prof = _profile(data_dir)
    agent = Agent(prof, "dev-1", {ch["id"]: None for ch in prof["channels"]}, ManualClock(), None, None,
                  ConsentLedger(prof["data_categories"], "dev-1"))  # fmt: skip
    for cid in ("maintenance", "usage_statistics"):
        agent.rights.set_consent(cid, True, 0)
    lines: list = []
    agent.report_to(lines.append)
    agent.outbox.pending.clear()
    for _ in range(limits.OUTBOX_LEN):  # the link is down: maintenance alerts fill the outbox
        agent.outbox.push("t", b"{}", "maintenance", 2)
    gate = asyncio.create_task(agent.gatekeeper())
    for i in range(5):
        agent.events.put(Event(ANOMALY, "usage_statistics", "drain_current", 1000 + i, "drain", {"score": 0.9}))
    for _ in range(10):
        await asyncio.sleep(0)
    alive = not gate.done()
    gate.cancel()
    try:
        await gate
    except asyncio.CancelledError:
        pass
    assert alive and len(agent.events) == 0, "the gatekeeper stopped on a full outbox"
    kept = [e[2] for e in agent.outbox.pending]
    assert kept == ["maintenance"] * limits.OUTBOX_LEN and agent.outbox.dropped == 5
    assert lines and lines[0].startswith("outbox full: a usage_statistics message was dropped")
    return [len(kept), agent.outbox.dropped, lines[0]]


def case_consent_waits_when_the_outbox_has_no_room(data_dir: str) -> list:
    prof = _profile(data_dir)
    drivers = {}
    for ch in prof["channels"]:
        drivers[ch["id"]] = None
    agent = Agent(prof, "dev-1", drivers, ManualClock(), None, None, ConsentLedger(prof["data_categories"], "dev-1"))
    n = 0
    refused = ""
    while not refused:
        try:
            agent.rights.set_consent("maintenance", n % 2 == 0, n)
            n += 1
        except OutboxFullError as e:
            refused = str(e)
    assert "try again later" in refused
    room = limits.OUTBOX_LEN + limits.OUTBOX_CRITICAL_RESERVE
    # Receipts (1 when on) and erasure requests (+1 when off) fill the outbox and its reserve.
    assert len(agent.outbox) in (room, room - 1) and agent.outbox.critical_room() < 2
    # The refused choice changed nothing: not the ledger, not its history.
    assert agent.consent.history[-1]["seq"] == n and agent.consent.next_seq == n + 1
    assert agent.consent.allows("maintenance") == ((n - 1) % 2 == 0)
    # Erasing needs room for one erasure request per optional category: refused, nothing wiped.
    held = len(agent.consent.history)
    try:
        agent.rights.erase(n)
        raise AssertionError("erase went ahead without room for its erasure requests")
    except OutboxFullError as e:
        assert "try again later" in str(e)
    assert len(agent.consent.history) == held and len(agent.outbox) in (room, room - 1)
    agent.outbox.ack()
    agent.outbox.ack()
    agent.rights.set_consent("maintenance", n % 2 == 0, n)
    return [n, len(agent.outbox)]


def case_backoff_is_full_jitter_within_its_bounds(data_dir: str) -> list:
    ceilings = [uplink.backoff_ms(a, 0.999999) for a in range(12)]
    assert [uplink.backoff_ms(a, 0.0) for a in range(40)] == [0] * 40
    assert ceilings[0] < limits.BACKOFF_BASE_MS and ceilings[1] < 2 * limits.BACKOFF_BASE_MS
    assert ceilings == sorted(ceilings)
    assert uplink.backoff_ms(10**6, 0.999999) <= limits.BACKOFF_CAP_MS
    assert uplink.backoff_ms(3, 0.5) == 4 * limits.BACKOFF_BASE_MS  # half of base * 2**3
    # A link that drops at once (or never came up) makes the waits grow; only one that held
    # for STABLE_LINK_MS starts them again.
    attempts = [-1]
    for up_ms in (-1, 0, 5, limits.STABLE_LINK_MS - 1, -1):
        attempts.append(uplink.next_attempt(attempts[-1], up_ms))
    assert attempts == [-1, 0, 1, 2, 3, 4], attempts
    assert uplink.next_attempt(7, limits.STABLE_LINK_MS) == 0
    return ceilings + attempts


def _info(prof: dict, channel: str, hint: object = None) -> object:
    ch = core_profile.channel(prof, channel)
    return processors.ChannelInfo(ch, prof["phases"], prof["phase_names"], hint)


def case_context_detector_scores_spike_not_noise(data_dir: str) -> list:
    det = detectors.ContextDetector(0, hold_min=0, hold_fraction=0.0)
    rng = XorShift32(5)
    scores = [0.0] * 3000  # allocated once: a list grown sample by sample needs ever larger blocks in a fixed heap
    for i in range(3000):
        value = rng.gauss(10.0, 0.5) + (6.0 if i == 2000 else 0.0)
        scores[i] = det.score(i * 60_000, value, 0)
    assert all(0.0 <= s < 1.0 for s in scores)
    top = max(range(3000), key=lambda i: scores[i])
    assert top == 2000 and scores[2000] > 0.7
    # Noise alone stays below the alarm level of 0.5.
    assert max(scores[i] for i in range(200, 2000)) < 0.5
    return [top, round(scores[2000], 6), round(sum(scores), 4)]


def case_context_detector_holds_off_after_an_alarm(data_dir: str) -> list:
    det = detectors.ContextDetector(0)  # the NAB configuration: quiet after an alarm
    rng = XorShift32(6)
    scores = []
    for i in range(1000):
        spike = 8.0 if i in (600, 650) else 0.0
        scores.append(det.score(i * 60_000, rng.gauss(10.0, 0.5) + spike, 0))
    trigger = det.alarm * det.hold_trigger
    alarms = [i for i in range(1000) if scores[i] >= trigger / (trigger + det.alarm)]
    # Every alarm is followed by at least hold_min = 100 quiet samples.
    assert alarms and all(max(scores[i + 1 : i + 101]) == 0.0 for i in alarms), alarms
    # The first spike (16 standard deviations) alarms unless an earlier alarm's hold-off covers it.
    assert scores[600] > 0.6 or any(600 - 100 <= i < 600 for i in alarms), alarms
    assert 650 not in alarms or 600 not in alarms
    return [round(scores[600], 6), alarms]


def case_context_detector_judges_each_context_on_its_own(data_dir: str) -> list:
    det = detectors.ContextDetector(2, overall_weight=0.0, hold_min=0, hold_fraction=0.0)
    rng = XorShift32(9)
    alarms = []
    for i in range(4000):
        phase = (i // 50) % 2
        level = 3.6 if phase else 0.45
        if i == 3500:
            level = 0.9  # a drain pump drawing twice its usual current
        if det.score(i * 1000, rng.gauss(level, 0.04), phase) >= 0.6:
            alarms.append(i)
    assert alarms == [3500], alarms
    assert det.state_bytes() == 9 * 8 + 9 * 2
    return alarms


def case_detectors_identical_on_a_nab_like_series(data_dir: str) -> list:
    out = []
    for name in sorted(detectors.DETECTORS):
        scorer = detectors.SeriesScorer(name)
        rng = XorShift32(11)
        total = 0.0
        peak = (0.0, -1)
        for i in range(2000):
            t = 1_400_000_000_000 + i * 300_000
            day = math.sin(2 * math.pi * (t % 86_400_000) / 86_400_000)
            value = 50 + 20 * day + rng.gauss(0, 2) + (40 if 1500 <= i < 1510 else 0)
            s = scorer(t, value)
            assert 0.0 <= s <= 1.0
            total += s
            if s > peak[0]:
                peak = (s, i)
        if name == "wichtel":
            assert 1500 <= peak[1] < 1510, (name, peak)
        out.append([name, peak[1], round(peak[0], 6), round(total, 3)])
    return out


def case_cycle_feature_finds_slow_drift_with_explanation(data_dir: str) -> list:
    prof = _profile(data_dir)
    hint = {"en": "the drain pump may be clogging.", "de": "die Laugenpumpe setzt sich womöglich zu."}
    proc = processors.build(
        "cycle_feature",
        {"phase": "drain", "feature": "duration", "history": 12, "recent": 3, "threshold": 4.0,
         "min_change_pct": 15, "clear_cycles": 3},
        _info(prof, "motor_current", hint),
    )  # fmt: skip
    t = 0
    events = []
    for cycle in range(20):
        drain_s = 90 + (cycle % 3) + (0 if cycle < 10 else 8 * (cycle - 9))
        for phase, seconds in (("idle", 600), ("wash", 300), ("drain", drain_s), ("spin", 120)):
            for _ in range(seconds):
                out = proc.feed(t, 0.5, phase)
                if out is not None:
                    events.append([cycle, out.phase, round(out.fields["change_pct"]), out.fields["explanation_en"],
                                   out.fields["explanation_de"]])  # fmt: skip
                t += 1000
    assert events, "no drift found"
    first = events[0]
    assert first[0] >= 11 and first[1] == "drain" and first[2] >= 15
    assert first[3].startswith("Draining took ") and "% longer than usual over the last 3 cycles" in first[3]
    assert first[3].endswith(" — the drain pump may be clogging.")
    assert first[4].startswith("Abpumpen dauerte ") and "% länger als üblich (in den letzten 3 Zyklen)" in first[4]
    # Deduplicated: not one event per cycle.
    assert len(events) <= 4
    return events


def case_anomaly_processor_waits_for_each_phase_and_holds_off(data_dir: str) -> list:
    prof = _profile(data_dir)
    settings = {"detector": "wichtel", "min_score": 0.7, "clear_s": 3600, "alarm": 3.5,
                "warmup": 300, "phase_warmup": 100}  # fmt: skip
    proc = processors.build("anomaly", settings, _info(prof, "inlet_flow"))
    rng = XorShift32(3)
    events = []
    t = 0
    for cycle in range(12):
        for phase, seconds, flow in (("idle", 1200, 0.0), ("fill", 120, 8.0)):
            for _ in range(seconds // 2):
                leak = 0.5 if cycle >= 8 and phase == "idle" else 0.0
                value = max(0.0, rng.gauss(flow, 0.4) if flow else 0.0) + leak
                out = proc.feed(t, value, phase)
                if out is not None:
                    events.append([cycle, phase, out.fields["explanation_en"]])
                t += 2000
    assert events and events[0][0] == 8 and events[0][1] == "idle"
    assert events[0][2].startswith("Water inlet flow during idle read 0.5 l/min; usual is about 0 l/min")
    # One leak, one event an hour at most (cycles here are 44 minutes).
    assert len(events) <= 3
    return events


def case_aggregate_windows(data_dir: str) -> list:
    agg = processors.build("aggregate", {"window_s": 10}, None)  # type: ignore[arg-type]
    outs = []
    for i in range(35):
        out = agg.feed(i * 1000, float(i % 10), "")
        if out is not None:
            outs.append(out.fields)
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
    sim = _busy_washer(7)
    drivers = {ch["id"]: SimDriver(sim, ch["id"]) for ch in prof["channels"]}
    consent = ConsentLedger(prof["data_categories"])
    consent.set("maintenance", True)
    agent = Agent(prof, "dev-7", drivers, ManualClock(), sim, None, consent)
    # The backend asks for a status every 6 hours instead of every 24 (a command; carried
    # out, it is answered with a reply).
    agent.on_command("wichtel/v1/dev-7/cmd/config", b'{"device":"dev-7","seq":1,"args":{"status_interval_h":6}}')
    await agent.run(PUMP_HOURS * 3600 * 1000)
    payloads = []
    while len(agent.outbox):
        topic, payload, _ = agent.outbox.peek()
        payloads.append(topic + " " + payload.decode())
        agent.outbox.ack()
    assert any('"detector":"cycle_feature"' in p and '"phase":"drain"' in p for p in payloads), payloads
    # Usage statistics were computed but stayed on the device: no consent.
    assert agent.decisions.get(NO_CONSENT, 0) > 0
    # Besides maintenance alerts, only the essential daily status leaves.
    assert all(
        p.startswith("wichtel/v1/dev-7/maintenance ") or p.startswith("wichtel/v1/dev-7/essential ") for p in payloads
    )
    assert sum(1 for p in payloads if '"kind":"command_reply"' in p) == 1
    assert sum(1 for p in payloads if '"kind":"status"' in p) == 3  # at hours 0, 6 and 12
    return {
        "samples": sum(c.samples for c in agent.channels),
        "decisions": agent.decisions,
        "payloads": payloads,
        "dropped_events": agent.events.dropped,
    }


def _detergent(data_dir: str) -> dict:
    return _profile(data_dir)["consumables"][0]


def case_usage_model_learns_rhythm_and_ignores_vacations(data_dir: str) -> list:
    m = usage.UsageModel()
    for day in range(70):
        m.add_day(day, 60.0 if day % 7 < 5 else 150.0)
    mean_before = m.mean
    assert 80 < mean_before < 100
    assert m.week[5] > 1.3 and m.week[0] < 0.9  # weekends use more
    for day in range(70, 84):  # two weeks away
        m.add_day(day, 0.0)
    assert m.on_vacation() and abs(m.mean - mean_before) < 0.25 * mean_before
    m.add_day(84, 900.0)  # guests: clipped before it teaches the mean
    assert m.mean < 2 * mean_before
    try:
        m.add_day(85, -1.0)
        raise AssertionError("negative usage accepted")
    except InputError as e:
        assert "negative" in str(e)
    return [round(m.mean, 3), [round(w, 3) for w in m.week]]


def case_usage_history_is_bounded_and_remembers_guests(data_dir: str) -> list:
    bound = limits.CONSUMABLE_HISTORY_DAYS
    m = usage.UsageModel()
    for day in range(bound):
        m.add_day(day, 400.0 if 20 <= day < 23 else 50.0)  # guests on days 20..22: eight times the use
    assert len(m.hist) == bound and len(m.to_state()[5]) == bound
    assert abs(m.mean - 50.0) < 1e-6  # the usual pace: guests do not move the median week
    with_guests = usage.p_run_out(200.0, m, 3.0, bound - 1)
    assert m.window_ratios(3)[-1] > 2.5 and with_guests >= 0.01  # the household's own tail
    for day in range(bound, bound + 23):
        m.add_day(day, 50.0)
    assert len(m.to_state()[5]) == bound  # the oldest days made room: nothing grows
    assert m.window_ratios(3)[-1] < 1.01  # the ring forgot the guests...
    plain = usage.UsageModel()
    for day in range(bound + 23):
        plain.add_day(day, 50.0)
    # ...the long memory of surges has not: windows of more than 4.5 times the rhythm, far
    # more often than the prior of guests expects.
    remembered = m.surge_share(4.5) - plain.surge_share(4.5)
    assert remembered > 0.003 and 0 < plain.surge_share(4.5) < 0.003, (remembered, plain.surge_share(4.5))
    assert m.surge_share(2.5) >= plain.surge_share(2.5) > 0.01  # the prior is a floor for both
    assert usage.p_run_out(650.0, m, 3.0, bound + 22) > usage.p_run_out(650.0, plain, 3.0, bound + 22)
    m.add_day(bound + 23, 200.0)
    m.add_day(bound + 24, 200.0)  # guests are here now: their pace carries on
    assert m.pace() > 3 and usage.p_run_out(200.0, m, 3.0, bound + 24) > 0.5
    restored = usage.UsageModel.from_state(json.loads(json.dumps(m.to_state())))
    assert list(restored.hist) == list(m.hist) and restored.mean == m.mean
    assert restored.surge_share(4.5) == m.surge_share(4.5) and len(m.to_state()[8]) == len(m.tail)
    # An earlier state without the long memory keeps its history; a damaged one is refused.
    assert list(usage.UsageModel.from_state(m.to_state()[:6]).hist) == list(m.hist)
    for bad in ([-1.0] + [0.0] * 15, [0.0] * 15, [1e6] + [0.0] * 15):
        try:
            usage.UsageModel.from_state(m.to_state()[:8] + [bad])
            raise AssertionError("damaged long memory accepted: " + repr(bad))
        except StateError as e:
            assert "not valid" in str(e)
    # Two years without guests: the long memory fades to what it has seen since.
    for day in range(bound + 25, bound + 25 + 2 * 365):
        m.add_day(day, 50.0)
    for day in range(bound + 23, bound + 25 + 2 * 365):
        plain.add_day(day, 50.0)
    for day in range(bound + 23, bound + 25 + 2 * 365):
        plain.add_day(day, 50.0)
    faded = m.surge_share(4.5) - plain.surge_share(4.5)
    assert 0 <= faded < remembered / 4 and len(m.tail) == 16, (faded, remembered)
    return [round(with_guests, 6), round(remembered, 6), round(faded, 6), round(m.mean, 3)]


def case_forecast_band_and_reorder_moment(data_dir: str) -> list:
    m = usage.UsageModel()
    for day in range(30):
        m.add_day(day, 50.0 + (10.0 if day % 2 else -10.0))
    f = usage.forecast(500.0, m, 30, 3.0, 0.02)
    assert 9 <= f.days_left <= 11 and f.early <= f.days_left <= f.late
    assert not f.reorder
    f2 = usage.forecast(160.0, m, 30, 3.0, 0.02)
    assert f2.reorder and f2.p_out_in_lead >= 0.02
    assert abs(usage.normal_cdf(1.2816) - 0.9) < 1e-4 and abs(usage.normal_cdf(0.0) - 0.5) < 1e-6
    return [round(f.days_left, 4), round(f.early, 4), round(f.late, 4), round(f2.p_out_in_lead, 6)]


def case_level_sensor_filters_noise_finds_refills_and_faults(data_dir: str) -> list:
    spec = _detergent(data_dir)
    tr = consumables.ConsumableTracker(spec)
    rng = XorShift32(4)
    kinds = []
    level = 1500.0
    t = 0
    for day in range(12):
        for use in range(4):
            level -= 65.0
            if level < 200:
                level = 1500.0  # the user refills
            t = day * consumables.DAY_MS + (8 + 3 * use) * 3_600_000
            for ev in tr.reading(t, level + rng.gauss(0, 5)):
                kinds.append([day, ev[0]])
    assert [k for k in kinds if k[1] == consumables.REFILLED], kinds
    assert [k for k in kinds if k[1] == consumables.REORDER], kinds
    # Estimated level follows the truth within noise and one use of lag.
    assert abs(tr.level - level) < 80
    # An impossible jump and an impossible value are faults, not data.
    jump = tr.reading(t + 1000, level - 0.6 * 1500) + tr.reading(t + 2000, level - 0.6 * 1500)
    jump += tr.reading(t + 3000, level - 0.6 * 1500)
    assert any(e[0] == consumables.FAULT and "fell by" in e[1]["explanation_en"] for e in jump)
    bad = tr.reading(t + 4000, 5000.0)
    assert bad[-1][0] == consumables.FAULT and "outside 0..1500" in bad[-1][1]["explanation_en"]
    try:
        tr.reading(t - 10, 700.0)
        raise AssertionError("time going backwards was accepted")
    except InputError as e:
        assert "backwards" in str(e)
    return kinds


def case_reorder_comes_again_when_no_refill_is_seen(data_dir: str) -> list:
    spec = _detergent(data_dir)  # lead time 3 days
    tr = consumables.ConsumableTracker(spec)
    level = 1500.0
    reorders = []  # days of the reorder suggestions
    top_up = -1
    for day in range(16):  # from 1500 to 150 (and the 90 of the top-up)
        for use in range(2):
            level -= 45.0
            t = day * consumables.DAY_MS + (8 + 6 * use) * 3_600_000
            for ev in tr.reading(t, level + (3.0 if use else -3.0)):
                if ev[0] == consumables.REORDER:
                    reorders.append(day)
                assert ev[0] != consumables.REFILLED, (day, ev)
        if reorders and top_up < 0:
            # The delivery goes into a tank with room for 6% of capacity: too small a
            # rise to tell from the sensor's noise, so no refill is seen.
            top_up = day
            level += 90.0
    assert len(reorders) >= 2, reorders
    # The next suggestion waits for the lead time and a day more (3 + 1 closed days).
    assert reorders[1] == reorders[0] + 5 and not tr.faulty, reorders
    return reorders[:2]


def case_stuck_sensor_is_reported(data_dir: str) -> list:
    tr = consumables.ConsumableTracker(_detergent(data_dir))
    t = 0
    for day in range(6):
        for i in range(4):
            t = day * consumables.DAY_MS + i * 3_600_000
            tr.reading(t, 1400.0 - day * 200 - i * 50)
    events = []
    for i in range(60):
        events += tr.reading(t + (i + 1) * 60_000, 321.0)
    faults = [e for e in events if e[0] == consumables.FAULT]
    assert len(faults) == 1 and "same value 50 times" in faults[0][1]["explanation_en"]
    return [faults[0][1]["explanation_de"]]


def case_counted_doses_and_bad_input(data_dir: str) -> list:
    prof = _profile(data_dir, "coffee_machine")
    spec = next(c for c in prof["consumables"] if c["id"] == "descaler")
    tr = consumables.ConsumableTracker(spec)
    for i in range(100):
        tr.cycle(i * 3_600_000)
    assert abs(tr.level - (500 - 100 * 0.4)) < 1e-6
    errors = []
    for call in (lambda: tr.cycle(10**9, 600.0), lambda: tr.refill(10**9, -5.0), lambda: tr.refill(10**9, 501.0)):
        try:
            call()
        except InputError as e:
            errors.append(str(e))
    assert len(errors) == 3
    big = dict(spec)
    big["dose_per_cycle"] = 900.0
    try:
        consumables.ConsumableTracker(big)
        errors.append("no error")
    except ConfigError as e:
        errors.append(str(e))
    assert "larger than its capacity" in errors[-1]
    return errors


def case_counted_dose_tolerance_moves_the_reorder(data_dir: str) -> list:
    prof = _profile(data_dir, "coffee_machine")
    spec = next(c for c in prof["consumables"] if c["id"] == "descaler")
    assert spec["dose_tolerance"] == 0.15
    levels = []
    for tol in (0.0, 0.15, 0.5):  # 0.5: the largest tolerance a profile may declare
        tr = consumables.ConsumableTracker(dict(spec, dose_tolerance=tol, lead_time_days=5))
        at = -1.0
        for i in range(2000):  # 2 cups a day, 0.8 ml of descaler
            for ev in tr.cycle((i // 2) * consumables.DAY_MS + (8 + 6 * (i % 2)) * 3_600_000):
                if ev[0] == consumables.REORDER and at < 0:
                    at = tr.level
        levels.append(at)
    # Counted doses may be off by the tolerance of all counted since the refill: the
    # reorder comes when the level at that worst would run out within the lead time.
    assert 0 < levels[0] < 0.1 * 500 and levels[0] < levels[1] < levels[2], levels
    assert abs(levels[1] - (levels[0] + 0.15 * 500) / 1.15) < 5, levels
    bad = dict(spec, dose_tolerance=0.6)
    doc = dict(prof, consumables=[bad])
    msg = _error(core_profile.validate, doc)
    assert "dose_tolerance" in msg, msg
    return [round(x, 1) for x in levels] + [msg]


def case_consumable_state_survives_and_rejects_garbage(data_dir: str) -> list:
    spec = _detergent(data_dir)
    tr = consumables.ConsumableTracker(spec, consumables.ReorderChoice(consumables.SHARE, "EcoWash", "Corner shop"))
    for day in range(10):
        tr.reading(day * consumables.DAY_MS + 1, 1400.0 - 60 * day)
        tr.reading(day * consumables.DAY_MS + 2, 1400.0 - 60 * day)
    state = json.loads(json.dumps(tr.to_state()))
    fresh = consumables.ConsumableTracker(spec)
    fresh.restore(state)
    assert fresh.level == tr.level and fresh.usage.mean == tr.usage.mean
    assert fresh.choice.mode == consumables.SHARE and fresh.choice.product == "EcoWash"
    problems = []
    for broken in ({}, {"v": 1}, dict(state, level=-5), dict(state, id="salt"), dict(state, usage=[1, 2]), [1, 2]):
        other = consumables.ConsumableTracker(spec)
        try:
            other.restore(broken)
            problems.append("accepted")
        except StateError as e:
            problems.append(str(e)[:40])
        assert other.level == other.capacity  # nothing half-restored
    assert "accepted" not in problems
    return [round(fresh.usage.mean, 4), problems]


def case_reorder_suggestion_stays_local_unless_shared(data_dir: str) -> list:
    spec = _detergent(data_dir)
    out = []
    for mode in (consumables.REMIND, consumables.SHARE, consumables.OFF):
        rt = consumables.ConsumableRuntime(spec, "idle", consumables.ReorderChoice(mode, "EcoWash", "Corner shop"))
        events = []
        for day in range(8):
            for i in range(3):
                t = day * consumables.DAY_MS + i * 3_600_000
                events += rt.on_sample("detergent_level", t, 1500.0 - day * 180 - i * 60)
        reorders = [e for e in events if e[0] == consumables.REORDER]
        cats = [rt.category_of(e[0]) for e in reorders]
        out.append([mode, len(reorders), cats])
        if reorders and mode == consumables.SHARE:
            assert reorders[0][1]["product"] == "EcoWash" and reorders[0][1]["retailer"] == "Corner shop"
        if reorders and mode == consumables.REMIND:
            assert "product" not in reorders[0][1]
            assert "from EcoWash" not in reorders[0][1]["explanation_en"]
    assert out[0][1] == 1 and out[0][2] == [""]
    assert out[1][1] == 1 and out[1][2] == ["consumables"]
    assert out[2][1] == 0
    return out


def case_consent_ledger_receipts_and_replay(data_dir: str) -> list:
    prof = _profile(data_dir)
    led = ConsentLedger(prof["data_categories"], "dev-9")
    assert led.choices() == {"essential": "on", "maintenance": "off", "usage_statistics": "off", "consumables": "off"}
    r1 = led.set("maintenance", True, 1000, 1_700_000_000)
    led.set("usage_statistics", True, 2000)
    led.set("usage_statistics", False, 3000)
    assert r1["text_hash"] == consent.text_hash(core_profile_category(prof, "maintenance"))
    assert r1["device"] == "dev-9" and r1["choice"] == "on" and r1["seq"] == 1
    try:
        led.set("essential", False, 4000)
        raise AssertionError("essential switched off")
    except ConfigError as e:
        assert "cannot be off" in str(e)
    records = [ConsentLedger.record(r) for r in led.history]
    again = ConsentLedger(prof["data_categories"], "dev-9")
    assert again.replay(records) == []
    assert again.choices() == led.choices() and again.since_ms("maintenance") == 0
    # A damaged record: back to privacy by default, and said so.
    bad = ConsentLedger(prof["data_categories"], "dev-9")
    problems = bad.replay(records[:1] + [b'{"category": "maintenance", "choice": "maybe"}'])
    assert problems and not bad.allows("maintenance") and bad.allows("essential")
    return [r1["text_hash"][:16], problems]


def core_profile_category(prof: dict, cid: str) -> dict:
    return next(c for c in prof["data_categories"] if c["id"] == cid)


def case_journal_recovers_up_to_a_torn_record(data_dir: str) -> list:
    data = journal.encode(b"one") + journal.encode(b"two") + journal.encode(b"three")
    recs, good, problem = journal.decode(data)
    assert recs == [b"one", b"two", b"three"] and good == len(data) and problem is None
    torn = data[:-2]
    recs, good, problem = journal.decode(torn)
    assert recs == [b"one", b"two"] and "cut off" in problem
    flipped = bytearray(data)
    flipped[len(journal.encode(b"one")) + 9] ^= 1
    recs, good, problem = journal.decode(bytes(flipped))
    assert recs == [b"one"] and "checksum" in problem
    return [good, problem]


def case_zeroed_storage_is_damage(data_dir: str) -> list:
    good = journal.encode(b"one")
    assert journal.decode(bytes(16)) == ([], 0, "the record at byte 0 is empty (zeroed storage?)")
    recs, at, problem = journal.decode(good + bytes(8))
    assert recs == [b"one"] and at == len(good) and "zeroed" in problem
    try:
        journal.encode(b"")
        raise AssertionError("an empty record was encoded")
    except InputError as e:
        refused = str(e)
    return [at, refused]


def case_outbox_damage_is_counted_and_withdrawn_messages_stay_gone(data_dir: str) -> list:
    store = MemoryStore()
    box = Outbox(64, store, ("essential",))
    for i in range(6):
        box.push("t/usage_statistics", b"u%d" % i, "usage_statistics", LOW)
    box.push("t/essential", b"receipt", "essential", CRITICAL)
    box.purge("usage_statistics")  # withdrawn: "drop" records, then the erasure request
    box.push("t/essential", b"erase", "essential", CRITICAL)
    box.push("t/maintenance", b"alert", "maintenance")
    box.sync()
    known = box.next_id - 1
    data = bytearray(store.data[1])
    records, _, _ = journal.decode(bytes(data))
    at = 0
    for rec in records[:8]:  # into the first "drop" record: the withdrawal's trace is damaged
        at += journal.HEADER + len(rec)
    data[at + journal.HEADER + 2] ^= 0x20
    store.data[1] = data
    again = Outbox(64, store, ("essential",), known)
    kept = [e[4] for e in again.pending]
    assert b"u0" not in kept and b"alert" not in kept and b"receipt" in kept
    # Lost: the erasure request and the alert after the damage. The six withdrawn ones came
    # back with their "drop" records gone, and go again as written before the damage.
    assert again.damaged and again.lost == 2 and again.doubtful == 6
    assert "fails its checksum" in again.problems[0]
    assert again.next_id > known + 1000  # ids go on beyond anything the lost part held
    clean = Outbox(64, store, ("essential",), again.next_id - 1)
    assert not clean.damaged and [e[0] for e in clean.pending] == [e[0] for e in again.pending]
    return [len(again.problems), again.lost, [e[0] for e in again.pending], again.next_id - known]


def case_lost_consent_acts_as_a_withdrawal(data_dir: str) -> list:
    prof = _profile(data_dir)
    drivers = {}
    for ch in prof["channels"]:
        drivers[ch["id"]] = None
    agent = Agent(prof, "dev-1", drivers, ManualClock(), None, None, ConsentLedger(prof["data_categories"], "dev-1"))
    agent.rights.set_consent("usage_statistics", True, 0)
    agent.outbox.push("wichtel/v1/dev-1/usage_statistics", b"{}", "usage_statistics", LOW)
    agent.consent.reset()  # as a damaged journal leaves it
    said = agent.rights.enforce_consent(True, 5)
    kinds = []
    for topic, payload, category in agent.outbox.items():
        assert category == "essential" and topic.endswith("/essential")
        body = json.loads(payload)
        kinds.append([body["kind"], body["data"].get("category"), body["data"].get("reason")])
    assert ["erasure_request", "usage_statistics", "consent_lost"] in kinds
    assert said[0] == "1 waiting usage_statistics messages were deleted: consent for them is off"
    return [said, kinds]


async def case_withdrawal_purges_and_requests_erasure(data_dir: str) -> list:
    prof = _profile(data_dir)
    sim = _busy_washer(1)
    drivers = {ch["id"]: SimDriver(sim, ch["id"]) for ch in prof["channels"]}
    agent = Agent(prof, "dev-7", drivers, ManualClock(), sim)
    agent.rights.set_consent("maintenance", True, 0)
    agent.rights.set_consent("usage_statistics", True, 0)
    await agent.run(RUN_HOURS * 3600 * 1000)
    cats = [m[2] for m in agent.outbox.items()]
    assert "usage_statistics" in cats and "maintenance" in cats
    agent.rights.set_consent("usage_statistics", False, RUN_HOURS * 3600 * 1000)
    after = agent.outbox.items()
    assert "usage_statistics" not in [m[2] for m in after]
    last = json.loads(after[-1][1])
    assert last["kind"] == "erasure_request" and last["data"] == {"category": "usage_statistics", "scope": "category"}
    assert after[-1][0] == "wichtel/v1/dev-7/essential"
    exported = agent.rights.export()
    assert exported["consent"]["current"]["usage_statistics"] == "off" and len(exported["consent"]["history"]) == 3
    agent.rights.erase((RUN_HOURS + 1) * 3600 * 1000)
    assert agent.consent.choices()["maintenance"] == "off" and agent.rights.export()["events"] == []
    kinds = [json.loads(m[1])["kind"] for m in agent.outbox.items()]
    assert kinds.count("erasure_request") >= 4
    return [cats.count("maintenance"), cats.count("usage_statistics"), kinds[-3:]]


def case_command_desk_accepts_only_valid_commands(data_dir: str) -> list:
    desk = commands.CommandDesk("dev-1")
    base = "wichtel/v1/dev-1/cmd/"

    def cmd(seq: object, args: object = None, device: str = "dev-1") -> bytes:
        return json.dumps({"device": device, "seq": seq, "args": {} if args is None else args}).encode()

    outcomes = []
    for topic, payload in (
        (base + "status_report", cmd(1)),
        (base + "status_report", cmd(1)),
        (base + "status_report", cmd(2, device="dev-2")),
        (base + "status_report", b"\xff{"),
        (base + "status_report", b"[" * 2000),
        (base + "status_report", b"[" * 1020),
        (base + "status_report", b'{"device":"dev-1","seq":' + b"9" * 961 + b',"args":{}}'),
        (base + "config", cmd(3, {"consent": True})),
        (base + "config", cmd(4, {"status_interval_h": 12})),
        ("wichtel/v1/dev-2/cmd/status_report", cmd(5)),
        ("x/" + base + "status_report", cmd(5)),
        (base + "status_report", cmd(True)),
        (base + "status_report", b'{"device":"dev-1","seq":5,"args":{1:2}}'),
        (base + "status_report", cmd(4 + limits.MAX_SEQ_STEP + 1)),
        (base + "status_report", cmd(4 + limits.MAX_SEQ_STEP)),
        (base + "erasure_ack", cmd(1005, {"category": "x" * 33})),
    ):
        try:
            outcomes.append(["ok", list(desk.check(topic, payload))])
        except CommandError as e:
            outcomes.append(["refused" if e.reply else "unanswered", str(e)[:60]])
    kinds = [o[0] for o in outcomes]
    assert kinds == ["ok", "refused", "refused", "refused", "refused", "refused", "refused", "refused", "ok",
                     "unanswered", "unanswered", "refused", "refused", "refused", "ok", "refused"], kinds  # fmt: skip
    assert desk.last_seq == 4 + limits.MAX_SEQ_STEP and desk.not_ours == 2
    reply = desk.reply("status_report", error="old")
    assert reply == {"command": "status_report", "ok": False, "error": "old", "last_seq": 1004}
    problems = desk.restore(10**960) + desk.restore("7")
    assert desk.last_seq == 0 and len(problems) == 2 and desk.restore(limits.MAX_SEQ) == []
    taken = [desk.admit(0) for _ in range(limits.COMMAND_BURST + 1)]
    assert taken.count(True) == limits.COMMAND_BURST and not desk.admit(limits.COMMAND_REFILL_MS - 1)
    assert desk.admit(limits.COMMAND_REFILL_MS) and desk.over_rate == 2
    return [outcomes, problems]


def case_inbound_json_takes_the_same_inputs_on_both_runtimes(data_dir: str) -> list:
    # MicroPython's json reads [1 2], {1: 2} and "\x"; the scanner refuses them on both runtimes.
    texts = [
        b'{"a":[1,2,{"b":null}],"c":true,"d":false}', b"[1 2]", b"{1:2}", b'"\\x"', b"[1,]", b"01", b"-0", b"1.5e-3",
        b"1e99", b"1e100", b"9007199254740991", b"90071992547409911", b"[[[[1]]]]", b"[[[[[1]]]]]", b"[" * 1020,
        b'"' + b"a" * 64 + b'"', b'"' + b"a" * 65 + b'"', b'"\\u00e9\\n\\/"', b'"\\ud834\\udd1e"',
        '"\u00e9\u20ac\U0001d11e"'.encode(), b'"\xed\xa0\x80"', b'"\xc0\xaf"', b'"\xf4\x90\x80\x80"', b'"\x01"',
        b"NaN", b"Infinity", b"tru", b"true false", b"", b"  ", b"\xff", b'{"a":1,"a":2}', b'{"a" 1}', b'{"a":}',
    ]  # fmt: skip
    out = []
    for text in texts:
        try:
            out.append(["ok", inbound_json.loads(text, inbound_json.COMMAND_BOUNDS)])
        except InboundJsonError as e:
            out.append(["refused", str(e)])
    assert [o[0] for o in out].count("ok") == 10, out
    return out


def case_command_replies_have_their_own_share(data_dir: str) -> list:
    prof = _profile(data_dir)
    drivers = {}
    for ch in prof["channels"]:
        drivers[ch["id"]] = None
    clock = ManualClock(86_400_000)
    agent = Agent(prof, "dev-1", drivers, clock, None, None, ConsentLedger(prof["data_categories"], "dev-1"))
    for _ in range(200):  # refused commands, within the intake rate
        clock.t_ms += limits.COMMAND_REFILL_MS
        agent.on_command("wichtel/v1/dev-1/cmd/status_report", b'{"device":"dev-1","seq":0,"args":{}}')
    agent.on_command("wichtel/v1/dev-2/cmd/status_report", b"{}")  # not answered
    spent = agent.gate.spent[PrivacyGate.COMMAND_SHARE][1]
    replies = len(agent.outbox)
    assert limits.COMMAND_REPLY_DAILY_BYTES - 250 < spent <= limits.COMMAND_REPLY_DAILY_BYTES
    agent._queue_status(clock.t_ms)
    agent.rights.set_consent("usage_statistics", True, clock.t_ms)
    kinds = [json.loads(p)["kind"] for _, p, _ in agent.outbox.items()]
    assert kinds[-2:] == ["status", "consent_receipt"] and agent.inbound_faults == 0
    return [spent, replies, kinds.count("command_reply"), agent.commands.not_ours]


class _Feed:
    """A stream reader fed by the test, as asyncio's StreamReader reads."""

    def __init__(self) -> None:
        self.data = b""
        self.more = asyncio.Event()

    def feed(self, data: bytes) -> None:
        self.data += data
        self.more.set()

    async def readexactly(self, n: int) -> bytes:
        while len(self.data) < n:
            self.more.clear()
            await self.more.wait()
        out = self.data[:n]
        self.data = self.data[n:]
        return out


class _Sink:
    def __init__(self) -> None:
        self.sent: list = []

    def write(self, data: bytes) -> None:
        self.sent.append(bytes(data))

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        pass

    async def wait_closed(self) -> None:
        pass


async def case_mqtt_pump_contains_handler_faults(data_dir: str) -> list:
    # In a task of its own: the WebAssembly port's top level cannot take asyncio.wait_for.
    return await asyncio.create_task(_pump_contains_handler_faults())


async def _pump_contains_handler_faults() -> list:
    lines: list = []
    seen: list = []

    def handler(topic: str, payload: bytes) -> None:
        seen.append(topic)
        raise ValueError("handler fault")

    client = mqtt.PortableMqttClient("dev-1", 30, handler, lines.append)
    feed = _Feed()
    client.reader, client.writer = feed, _Sink()
    client.connected = True
    pump = asyncio.create_task(client.pump())
    for i in range(30):
        feed.feed(mqtt.publish_packet("wichtel/v1/dev-1/cmd/status_report", b"[" * 1020, 1, i + 1))
    publish = asyncio.create_task(client.publish("wichtel/v1/dev-1/essential", b"{}", 1, False, 5.0))
    await asyncio.sleep(0.05)
    feed.feed(mqtt.puback_packet(1))
    ok = await publish
    assert ok and client.connected and client.handler_faults == 30 and len(seen) == 30
    assert limits.LOG_BURST <= len(lines) <= limits.LOG_BURST + 2 and "ValueError" in lines[0]
    # A packet a broker may not send ends the link, with the reason.
    feed.feed(bytes([0x34, 5, 0, 1, 0x61, 0, 1]))
    try:
        await asyncio.wait_for(pump, 2)
        raise AssertionError("the pump went on after a QoS 2 publish")
    except MqttError as e:
        reason = str(e)
    assert not client.connected
    return [ok, client.handler_faults, len(client.writer.sent), reason]


class _Bytes:
    """A stream reader over fixed bytes, as asyncio's StreamReader reads."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    async def readexactly(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise EOFError("stream ended")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


async def case_mqtt_packets_encode_and_parse(data_dir: str) -> list:
    pkt = mqtt.publish_packet("wichtel/v1/dev-1/essential", b'{"v":1}', 1, 7)
    first, body = await mqtt.read_packet(_Bytes(pkt))
    assert mqtt.parse_publish(first, body) == ("wichtel/v1/dev-1/essential", b'{"v":1}', 1, 7)
    big = mqtt.publish_packet("t", b"x" * 300, 0, 0)
    assert big[1:3] == bytes([0xAF, 0x02])  # remaining length 2 + 1 + 300 = 303, in two bytes
    conn = mqtt.connect_packet("dev-1", 30, "wichtel/v1/dev-1/status/availability", b"offline")
    assert conn[0] == 0x10 and b"MQTT" in conn and conn.endswith(b"offline")
    refused = []
    for bad in (bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]), bytes([0x30]) + mqtt._remaining(mqtt.MAX_PACKET + 1),
                bytes([0x30, 10, 0, 1])):  # fmt: skip
        try:
            await mqtt.read_packet(_Bytes(bad))
        except mqtt.MqttError as e:
            refused.append(str(e)[:40])
    assert len(refused) == 3
    for first, body in ((0x34, b"\x00\x01a\x00\x01"), (0x32, b"\x00\x01a\x00\x00"), (0x30, b"\x00\x02\xff\xfe"),
                        (0x30, b"\x00\x01#")):  # fmt: skip
        try:
            mqtt.parse_publish(first, body)
            raise AssertionError("a publish no broker may send was read")
        except mqtt.MqttError as e:
            refused.append(str(e))
    try:
        mqtt.parse_publish(0x32, b"\x00\x09abc")
        raise AssertionError("short publish accepted")
    except mqtt.MqttError as e:
        refused.append(str(e))
    return [list(pkt[:4]), list(conn[:12]), refused]


class _Broker311:
    """An uplink whose broker acknowledges every publish, as MQTT 3.1.1 does even when its
    ACL denied the message."""

    connects = 1

    def __init__(self) -> None:
        self.got: list = []

    async def publish(self, topic: str, payload: bytes, msg_id: int = 0) -> bool:
        self.got.append(msg_id)
        return True


async def case_owed_messages_wait_for_the_backends_confirmation(data_dir: str) -> list:
    # In a task of its own: the WebAssembly port's top level cannot take asyncio.wait_for (flush uses it).
    return await asyncio.create_task(_owed_messages_wait(data_dir))


async def _owed_messages_wait(data_dir: str) -> list:
    prof = _profile(data_dir)
    drivers = {}
    for ch in prof["channels"]:
        drivers[ch["id"]] = None
    up = _Broker311()
    agent = Agent(prof, "dev-1", drivers, ManualClock(), None, up, ConsentLedger(prof["data_categories"], "dev-1"))
    agent.rights.set_consent("maintenance", True, 0)
    agent.rights.set_consent("maintenance", False, 1)  # a receipt, a receipt and an erasure request
    agent._queue_status(2)  # a status: done once the broker took it
    assert await agent.flush()
    ids = [e[0] for e in agent.outbox.pending]
    assert up.got == [1, 2, 3, 4] and ids == [1, 2, 3] and sorted(agent.outbox.awaiting) == ids
    statuses = [e["status"] for e in agent.sent_log.items()]
    assert statuses == ["accepted by broker"] * 4
    assert not agent.outbox.offerable(agent._uptime_ms(), 8)  # nothing offered again before its wait
    agent.outbox.reoffer()  # the link was made again: offered again at once, logged once
    assert await agent.flush() and up.got[4:] == [1, 2, 3] and len(agent.sent_log) == 4
    topic = "wichtel/v1/dev-1/cmd/confirm"
    refused = [
        b'{"device":"dev-1","seq":1,"args":{"ids":[]}}',
        b'{"device":"dev-1","seq":1,"args":{"ids":[0]}}',
        b'{"device":"dev-1","seq":1,"args":{"ids":[true]}}',
        b'{"device":"dev-1","seq":1,"args":{"ids":[1.5]}}',
        b'{"device":"dev-1","seq":1,"args":{"ids":[9007199254740992]}}',
        b'{"device":"dev-1","seq":1,"args":{"ids":[1],"x":1}}',
        b'{"device":"dev-1","seq":1,"args":{"ids":[' + b"1," * 32 + b"1]}}",
    ]
    for body in refused:
        agent.on_command(topic, body)
    assert len(agent.outbox.awaiting) == 3 and agent.commands.last_seq == 0
    agent.on_command(topic, b'{"device":"dev-1","seq":1,"args":{"ids":[1,3,77]}}')
    assert list(agent.outbox.awaiting) == [2] and agent.outbox.unknown_confirms == 1
    statuses = [e["status"] for e in agent.sent_log.items()]
    assert statuses == ["confirmed", "accepted by broker", "confirmed", "accepted by broker"]
    kinds = [json.loads(p)["kind"] for _, p, _ in agent.outbox.items()]
    # Each refusal is answered; the confirm carried out is not (an acknowledgement of an acknowledgement).
    assert kinds == ["consent_receipt"] + ["command_reply"] * len(refused)
    waits = [limits.CONFIRM_WAIT_MS]
    for n in range(1, 10):
        waits.append(outbox_confirm_wait(n))
    assert waits[-1] == limits.CONFIRM_WAIT_CAP_MS and waits == sorted(waits)
    return [statuses, agent.outbox.confirmed, len(agent.outbox), len(agent.commands.log), waits]
