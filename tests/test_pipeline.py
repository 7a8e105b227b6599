"""The pipeline on the host: exact sampling, the uplink hand-off with retries, bounds under a flood."""

import copy

import pytest
import yaml

from agent import host, profile_loader
from agent.core import limits, processors
from agent.core.clock import ManualClock
from agent.core.consent import ConsentLedger
from agent.core.errors import ProfileError, SensorError
from agent.core.events import ANOMALY, SENSOR_FAULT, Event
from agent.core.gate import SENT, Decision
from agent.core.outbox import CRITICAL, ENTRY_PRIORITY, HIGH, LOW, NORMAL, REPLY
from agent.core.pipeline import Agent
from agent.core.schema import Map
from tests import backend


def _washer() -> dict:
    return profile_loader.load(profile_loader.example("washing_machine"))


@pytest.mark.asyncio
async def test_manual_clock_samples_each_channel_at_its_rate() -> None:
    prof = _washer()
    drivers, sim = host.simulated(prof, 1, [])
    agent = Agent(prof, "d", drivers, ManualClock(), sim)
    await agent.run(3600 * 1000)
    counts = {c.id: c.samples for c in agent.channels}
    assert counts == {
        "motor_current": 3600, "drum_vibration": 3600, "inlet_flow": 1800, "heater_temp": 720, "detergent_level": 180,
    }  # fmt: skip


class FlakyUplink:
    """An in-memory uplink that fails its first `failures` publishes."""

    connects = 1

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list = []

    async def publish(self, topic: str, payload: bytes, msg_id: int = 0) -> bool:
        if self.failures:
            self.failures -= 1
            return False
        self.received.append((topic, payload))
        return True


@pytest.mark.asyncio
async def test_uplink_gets_every_message_in_order_despite_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "UPLINK_RETRY_MS", 1)
    prof = _washer()
    drivers, sim = host.simulated(prof, 7, ["pump_clog"])
    consent = ConsentLedger(prof["data_categories"])
    consent.set("maintenance", True)
    consent.set("usage_statistics", True)
    consent.set("consumables", True)
    uplink = FlakyUplink(failures=3)
    seen: list = []
    agent = Agent(prof, "d", drivers, ManualClock(), sim, uplink, consent,
                  lambda stage, a, b: seen.append(b.payload) if stage == "decision" and b.reason == SENT else None)  # type: ignore[attr-defined]  # fmt: skip

    await agent.run(24 * 3600 * 1000)
    for _ in range(100):  # the last retries finish after the sampler stops
        if not len(agent.outbox):
            break
        await agent.flush()
    assert len(seen) > 8
    # Every gated event, in order, among the essential status messages.
    assert [p for t, p in uplink.received if not t.endswith("/essential")] == seen
    assert sum(1 for t, _ in uplink.received if t.endswith("/essential")) == 1  # one status for the one day
    assert agent.outbox.delivered == len(uplink.received) and len(agent.outbox) == 0
    assert [entry["content"].encode() for entry in agent.sent_log.items()] == [p for _, p in uplink.received]


class Shouter(processors.Processor):
    """Emits an anomaly for every sample: a flood to test the bounds."""

    kind = "test_shouter"
    SETTINGS = Map({})

    def __init__(self, info: processors.ChannelInfo) -> None:
        self.info = info

    def feed(self, t_ms: int, value: float, phase: str) -> processors.Result | None:
        return processors.Result(ANOMALY, {"value": value})


@pytest.mark.asyncio
async def test_event_flood_is_bounded_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(processors.REGISTRY, Shouter.kind, Shouter)
    with open(profile_loader.example("washing_machine")) as f:
        doc = yaml.safe_load(f)
    template = doc["channels"][0]
    procs = [{"kind": "test_shouter"}] * limits.MAX_PROCESSORS_PER_CHANNEL
    doc["channels"] = [dict(template, id="c%d" % i, processors=procs) for i in range(limits.MAX_CHANNELS)]
    doc["consumables"] = []
    doc.pop("cycle_model")  # its features name the channels replaced here
    prof = profile_loader.core_profile.validate(doc)
    drivers = {ch["id"]: type("D", (), {"read": lambda self, t: 1.0})() for ch in prof["channels"]}
    agent = Agent(prof, "d", drivers, ManualClock())
    await agent.run(10 * 1000)
    per_round = limits.MAX_CHANNELS * limits.MAX_PROCESSORS_PER_CHANNEL
    # Each round emits more than the channel holds: the excess is dropped and counted.
    assert agent.events.dropped == 10 * (per_round - limits.EVENT_QUEUE_LEN)
    assert sum(agent.decisions.values()) == 10 * limits.EVENT_QUEUE_LEN


@pytest.mark.asyncio
async def test_sent_log_and_local_events_are_bounded() -> None:
    prof = _washer()
    drivers, sim = host.simulated(prof, 1, [])
    uplink = FlakyUplink(failures=0)
    agent = Agent(prof, "d", drivers, ManualClock(), sim, uplink)
    for _ in range(limits.SENT_LOG_LEN // 20 + 2):
        for i in range(20):
            agent.rights.set_consent("maintenance", i % 2 == 0, 0)
        await agent.flush()
        backend.confirm(agent)
    assert len(uplink.received) > limits.SENT_LOG_LEN
    assert len(agent.sent_log) == limits.SENT_LOG_LEN
    # The newest are kept.
    assert agent.sent_log.items()[-1]["content"].encode() == uplink.received[-1][1]
    for batch in range(limits.LOCAL_EVENTS_LEN // 20 + 2):
        for i in range(20):
            agent.events.put(Event(ANOMALY, "maintenance", "motor_current", batch * 20 + i, "drain", {"value": 1.0}))
        agent.judge_pending()
    assert sum(agent.decisions.values()) > limits.LOCAL_EVENTS_LEN
    assert len(agent.local_events) == limits.LOCAL_EVENTS_LEN
    assert agent.local_events.items()[-1].t_ms == (limits.LOCAL_EVENTS_LEN // 20 + 2) * 20 - 1


class PhaseOf(processors.Processor):
    """Reports every sample, about a phase of its own (or, given None, the sample's)."""

    kind = "test_phase_of"

    def __init__(self, about: str | None) -> None:
        self.about = about

    def feed(self, t_ms: int, value: float, phase: str) -> processors.Result | None:
        return processors.Result(ANOMALY, {"value": value}, self.about)


@pytest.mark.parametrize(("about", "expected"), [("drain", "drain"), (None, "spin"), ("", "")])
def test_a_processors_phase_is_the_events_phase_not_one_of_its_fields(about: str | None, expected: str) -> None:
    prof = _washer()
    agent = Agent(prof, "d", {ch["id"]: None for ch in prof["channels"]}, ManualClock())
    channel = agent.channels[0]
    channel.procs = [(PhaseOf(about), "maintenance")]
    out: list = []
    assert channel.process(1000, 1.0, "spin", out.append)
    assert [(e.phase, e.fields) for e in out] == [(expected, {"value": 1.0})]


def test_a_cycle_feature_says_which_phase_it_measured() -> None:
    """The drain's duration is judged when the cycle ends (in idle), but is about the drain."""
    prof = _washer()
    channel = next(ch for ch in prof["channels"] if ch["id"] == "motor_current")
    info = processors.ChannelInfo(channel, prof["phases"], prof["phase_names"], None)
    settings = {"phase": "drain", "feature": "duration", "history": 5, "recent": 1, "threshold": 1.0,
                "min_change_pct": 1, "clear_cycles": 3}  # fmt: skip
    proc = processors.build("cycle_feature", settings, info)
    results = []
    t = 0
    for cycle in range(12):
        for phase, seconds in (("idle", 10), ("drain", 60 if cycle < 8 else 120)):
            for _ in range(seconds):
                out = proc.feed(t, 1.0, phase)
                if out is not None:
                    results.append(out)
                t += 1000
    assert results and {(r.phase, "phase" in r.fields) for r in results} == {("drain", False)}


def _priorities(prof: dict) -> dict:
    """The outbox priority each kind of message gets: category -> priority for events,
    and the device's own messages by kind."""
    agent = Agent(prof, "d", {ch["id"]: None for ch in prof["channels"]}, ManualClock())
    got = {}
    for cat in prof["data_categories"]:
        agent._queue(Decision(SENT, "t/" + cat["id"], b"{}", cat["id"], agent.outbox.next_id))
        got[cat["id"]] = agent.outbox.pending[-1][ENTRY_PRIORITY]
    for kind in ("status", "consent_receipt", "erasure_request"):
        agent._queue(Decision(SENT, "t/essential", b"{}", "essential", agent.outbox.next_id), kind)
        got[kind] = agent.outbox.pending[-1][ENTRY_PRIORITY]
    agent._queue_requested(Decision(SENT, "t/essential", b"{}", "essential", agent.outbox.next_id), "command_reply")
    got["command_reply"] = agent.outbox.pending[-1][ENTRY_PRIORITY]
    return got


def test_outbox_priority_is_a_field_of_the_data_category() -> None:
    # The example profiles rank as the outbox always did: statistics low, maintenance high.
    washer = _washer()
    assert [(c["id"], c["priority"]) for c in washer["data_categories"]] == [
        ("essential", "normal"), ("maintenance", "high"), ("usage_statistics", "low"), ("consumables", "normal"),
    ]  # fmt: skip
    assert _priorities(washer) == {
        "essential": NORMAL, "maintenance": HIGH, "usage_statistics": LOW, "consumables": NORMAL,
        "status": HIGH, "consent_receipt": CRITICAL, "erasure_request": CRITICAL, "command_reply": REPLY,
    }  # fmt: skip
    # It is the profile's word, not the category's name: swapped in the profile, swapped in the outbox.
    for cat in washer["data_categories"]:
        cat["priority"] = {"maintenance": "low", "usage_statistics": "high"}.get(cat["id"], cat["priority"])
    got = _priorities(washer)
    assert (got["maintenance"], got["usage_statistics"], got["status"]) == (LOW, HIGH, HIGH)


def test_a_category_without_priority_is_normal_and_a_wrong_one_is_refused() -> None:
    with open(profile_loader.example("washing_machine")) as f:
        doc = yaml.safe_load(f)
    for cat in doc["data_categories"]:
        del cat["priority"]
    prof = profile_loader.core_profile.validate(copy.deepcopy(doc))
    assert {c["priority"] for c in prof["data_categories"]} == {"normal"}
    for wrong in ("critical", "HIGH", 3, None):
        doc["data_categories"][1]["priority"] = wrong
        with pytest.raises(ProfileError) as e:
            profile_loader.core_profile.validate(copy.deepcopy(doc))
        assert str(e.value).startswith("data_categories[1].priority: got ")
        assert str(e.value).endswith("; expected one of high, low, normal")


class _FailingDriver:
    """A sensor that fails in turn: CRC error, absent, a value out of range, a good reading."""

    def __init__(self) -> None:
        self.calls = 0

    def read(self, t_ms: int) -> float:
        self.calls += 1
        step = self.calls % 4
        if step == 1:
            raise SensorError("crc", "scratchpad CRC 0x3a, computed 0x11")
        if step == 2:
            raise SensorError("absent")
        return 99.0 if step == 3 else 1.0


@pytest.mark.asyncio
async def test_a_driver_that_cannot_read_makes_sensor_fault_events_with_the_reason_never_data() -> None:
    prof = _washer()
    drivers, sim = host.simulated(prof, 1, [])
    failing = _FailingDriver()
    drivers["motor_current"] = failing
    seen: list = []

    def observe(stage: str, a: object, b: object) -> None:
        if stage == "decision" and isinstance(a, Event) and a.kind == SENSOR_FAULT:
            seen.append((a.channel, a.t_ms, dict(a.fields)))
        if stage == "sample" and getattr(a, "id", "") == "motor_current":
            values.append(b)

    values: list = []
    agent = Agent(prof, "d", drivers, ManualClock(), sim, observer=observe)
    await agent.run(200_000)  # 200 readings of motor_current
    assert failing.calls == 200
    # One alert for the failing sensor (an episode: the good readings between are far fewer
    # than an hour's), raised at 0 s with the reason of the first failed reading.
    assert seen == [("motor_current", 0, {"reason": "crc", "state": "raised", "alert": 1})]
    # The failed readings are NaN to observers and never reach a processor; only the good ones count.
    assert sum(1 for v in values if v != v) == 100 and values.count(1.0) == 50 and values.count(99.0) == 50
    assert agent.channels[0].samples == 200


def test_a_sensor_error_with_an_unknown_reason_says_failed() -> None:
    assert SensorError("absent").reason == "absent" and str(SensorError("crc", "bad")) == "crc: bad"
    assert SensorError("on fire").reason == "failed"
