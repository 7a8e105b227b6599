"""The alert lifecycle (agent/core/alerts.py) and the profile's reference: one alert per fault
episode, raised, worse, reminded, acknowledged, cleared; a fault present at install found
against healthy units' reference, and learned as normal without one."""

import copy
import json
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import profile_loader
from agent.core import limits, processors
from agent.core.alerts import (
    ACKNOWLEDGED,
    CLEARED,
    JOINED,
    PART_CLEARED,
    RAISED,
    REMINDER,
    WORSE,
    AlertBook,
    AlertEpisode,
)
from agent.core.clock import ManualClock
from agent.core.errors import ProfileError
from agent.core.events import ANOMALY, SENSOR_FAULT
from agent.core.pipeline import Agent
from agent.core.profile import validate
from agent.sim import profile_model
from bench.faults import SimulatedDevice

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def _washer() -> dict:
    return profile_loader.load(os.path.join(ROOT, "agent", "profiles", "washing_machine.yaml"))


# -- the episode on its own ----------------------------------------------------------------------
def test_an_episode_is_raised_once_reported_worse_reminded_weekly_and_cleared() -> None:
    ep = AlertEpisode(clear_after=2)
    assert ep.normal(0) is None  # nothing open: nothing to clear
    assert ep.abnormal(1000, 20.0) == RAISED and ep.number == 1
    assert ep.abnormal(2000, 25.0) is None  # a little worse is no news
    assert ep.abnormal(3000, 30.0) == WORSE  # half as bad again
    assert ep.abnormal(4000, 40.0) is None  # 40 < 1.5 * 30
    assert ep.abnormal(3000 + limits.ALERT_REMIND_MS - 1, 30.0) is None
    assert ep.abnormal(3000 + limits.ALERT_REMIND_MS, 30.0) == REMINDER
    t = 3000 + limits.ALERT_REMIND_MS
    assert ep.normal(t + 1) is None  # one normal finding is not enough (clear_after=2)
    assert ep.abnormal(t + 2, 30.0) is None  # an abnormal one starts the count again
    assert ep.normal(t + 3) is None
    assert ep.normal(t + 4) == CLEARED and not ep.open
    assert ep.abnormal(t + 5, 1.0) == RAISED and ep.number == 2  # a new episode


def test_an_acknowledged_episode_is_not_reminded_of_but_still_reported_worse() -> None:
    ep = AlertEpisode()
    assert not ep.acknowledge()  # nothing open
    ep.abnormal(0, 10.0)
    assert ep.acknowledge() and not ep.acknowledge()  # once
    assert ep.abnormal(2 * limits.ALERT_REMIND_MS, 10.0) is None
    assert ep.abnormal(2 * limits.ALERT_REMIND_MS + 1, 15.0) == WORSE
    assert ACKNOWLEDGED == "acknowledged"


def test_clear_ms_holds_the_episode_open_until_the_last_alarm_is_that_old() -> None:
    ep = AlertEpisode(1, 60_000)
    ep.abnormal(0, 5.0)
    assert ep.normal(59_999) is None and ep.open
    assert ep.normal(60_000) == CLEARED


@given(st.lists(st.tuples(st.booleans(), st.floats(0, 1e6)), max_size=200))
def test_property_states_alternate_raised_then_cleared(findings: list) -> None:
    """Whatever the findings, the episode's messages go raised, (worse | reminder)*, cleared,
    raised, ...: never two raisings without a clearing between, never a clearing of nothing."""
    ep = AlertEpisode(2)
    states = []
    for i, (bad, severity) in enumerate(findings):
        s = ep.abnormal(i * 1000, severity) if bad else ep.normal(i * 1000)
        if s is not None:
            states.append(s)
    opened = False
    for s in states:
        if s == RAISED:
            assert not opened
            opened = True
        else:
            assert opened
            if s == CLEARED:
                opened = False


# -- through the channel processors, on the simulated washing machine ------------------------------
def _run(profile: dict, faults: list, onset: int, hours: float, seed: int = 7) -> list:
    device = SimulatedDevice(profile, profile_model.build(profile, seed, faults, onset))
    events: list = []
    for t in range(0, int(hours * HOUR_MS), 1000):
        device.tick(t, events.append)
    return [e for e in events if e.kind in (ANOMALY, SENSOR_FAULT)]


def _without_reference(profile: dict) -> dict:
    doc = copy.deepcopy(profile)
    for ch in doc["channels"]:
        for p in ch["processors"]:
            p["reference"] = None
    doc["cycle_model"]["reference"] = None
    return validate(doc)


@pytest.mark.heavy  # about 20 s of simulation
def test_a_leak_present_at_install_is_one_alert_with_the_reference_and_learned_as_normal_without() -> None:
    washer = _washer()
    with_ref = _run(washer, ["leak_idle"], 0, 60)
    raised = [e for e in with_ref if e.fields["state"] == RAISED]
    assert [(e.channel, e.phase) for e in raised] == [("inlet_flow", "idle")]
    assert raised[0].fields["baseline"] == pytest.approx(0.0)  # the reference's, not the leak's
    assert not [e for e in with_ref if e.fields["state"] == CLEARED]  # the leak goes on
    # Without the reference the unit learns its leaking idle as normal: at most a short
    # episode early on, cleared once the detector has learned, then silence.
    without = _run(_without_reference(washer), ["leak_idle"], 0, 60)
    assert all(e.t_ms < 40 * HOUR_MS for e in without)
    assert [e.fields["state"] for e in without if e.channel == "inlet_flow"] in ([], [RAISED, CLEARED])


@pytest.mark.heavy  # about 20 s of simulation
def test_a_clogging_pump_from_install_raises_one_alert_against_the_reference() -> None:
    events = _run(_washer(), ["pump_clog"], 0, 72)
    # One alert: the first finding raises it, the others (the drain's duration, the current,
    # the cycle model) join it, each once.
    assert [e.fields["alert"] for e in events] == [1] * len(events)
    assert [e.fields["state"] for e in events if e.fields["state"] == RAISED] == [RAISED]
    found = [e for e in events if e.fields["state"] in (RAISED, JOINED)]
    assert len({(e.channel, e.fields["detector"], e.phase) for e in found}) == len(found) >= 2
    assert {e.channel for e in found} <= {"motor_current", "cycle_model"}
    duration = [e for e in found if e.fields.get("feature") == "duration"]
    assert duration and duration[0].fields["baseline"] == pytest.approx(180.0, rel=0.05)
    assert not [e for e in events if e.fields["state"] in (CLEARED, PART_CLEARED)]


def test_a_reference_may_name_only_phases_the_processor_judges() -> None:
    doc = copy.deepcopy(_washer())
    proc = doc["channels"][0]["processors"][0]  # motor_current: cycle_feature of the drain
    proc["reference"] = {"spin": [1.0, 0.1]}
    with pytest.raises(ProfileError, match=r"reference.*drain"):
        validate(doc)
    proc["reference"] = {"drain": [1.0, -0.1]}
    with pytest.raises(ProfileError, match=r"reference\.drain\[1\]"):
        validate(doc)
    doc = copy.deepcopy(_washer())
    doc["channels"][0]["processors"][2]["reference"] = {"idle": [0.0, 0.1]}  # an aggregate
    with pytest.raises(ProfileError, match="no reference"):
        validate(doc)
    doc["channels"][0]["processors"][2]["reference"] = None
    doc["channels"][0]["processors"][1]["reference"] = {"rinse": [0.0, 0.1]}  # no such phase
    with pytest.raises(ProfileError, match="one of the phases"):
        validate(doc)


def test_a_cycle_feature_with_a_reference_judges_from_the_first_full_recent_window() -> None:
    """Without a reference it needs five cycles of history; with one, the first `recent` cycles."""
    washer = _washer()
    channel = next(ch for ch in washer["channels"] if ch["id"] == "motor_current")
    settings = {"phase": "drain", "feature": "duration", "history": 12, "recent": 3, "threshold": 4.0,
                "min_change_pct": 15, "clear_cycles": 3}  # fmt: skip

    def cycles(info: processors.ChannelInfo, durations: list) -> list:
        proc = processors.build("cycle_feature", dict(settings), info)
        out, t = [], 0
        for n, seconds in enumerate(durations):
            for phase, s in (("idle", 10), ("drain", seconds)):
                for _ in range(s):
                    r = proc.feed(t, 0.5, phase)
                    if r is not None:
                        out.append((n, r.fields["state"], round(r.fields["baseline"])))
                    t += 1000
        return out

    faulty = [240] * 8  # a drain a third longer from the first cycle on
    with_ref = processors.ChannelInfo(channel, washer["phases"], washer["phase_names"], None, {"drain": [180, 4]})
    assert cycles(with_ref, faulty) == [(3, RAISED, 180)]  # judged when the 4th cycle ends (idle again)
    alone = processors.ChannelInfo(channel, washer["phases"], washer["phase_names"], None)
    assert cycles(alone, faulty) == []  # learned as this unit's normal


# -- the device's alert book: findings of one fault are one alert --------------------------------
def test_findings_that_start_together_are_one_alert_cleared_with_its_last() -> None:
    book = AlertBook()
    current, drain, model = AlertEpisode(), AlertEpisode(), AlertEpisode()
    assert book.route(current, RAISED, 0, "maintenance", "motor_current", "drain") == (1, RAISED, True)
    assert book.route(drain, RAISED, HOUR_MS, "maintenance", "motor_current", "drain") == (1, JOINED, True)
    assert book.route(model, RAISED, 9 * HOUR_MS, "maintenance", "cycle_model", "drain") == (1, JOINED, True)
    # Worse within a day of the alert's last news stays on the device; after a day it goes out.
    assert book.route(drain, WORSE, 10 * HOUR_MS, "", "", "") == (1, WORSE, False)
    assert book.route(drain, WORSE, 9 * HOUR_MS + limits.ALERT_UPDATE_MS, "", "", "") == (1, WORSE, True)
    assert book.route(current, CLEARED, 11 * HOUR_MS, "", "", "") == (1, PART_CLEARED, True)
    assert book.route(model, CLEARED, 12 * HOUR_MS, "", "", "") == (1, PART_CLEARED, True)
    assert book.open_ids() == [1]
    assert book.route(drain, CLEARED, 13 * HOUR_MS, "", "", "") == (1, CLEARED, True)
    assert book.open_ids() == [] and book.members == {}
    assert book.route(drain, CLEARED, 14 * HOUR_MS, "", "", "") is None  # not open: no news


def test_a_finding_long_after_an_alert_was_raised_is_an_alert_of_its_own() -> None:
    book = AlertBook()
    a, b = AlertEpisode(), AlertEpisode()
    book.route(a, RAISED, 0, "maintenance", "x", "p")
    assert book.route(b, RAISED, limits.ALERT_JOIN_MS, "maintenance", "y", "p") == (2, RAISED, True)
    assert book.open_ids() == [1, 2]


def test_reminders_are_weekly_per_alert_and_none_once_acknowledged() -> None:
    book = AlertBook()
    a, b = AlertEpisode(), AlertEpisode()
    book.route(a, a.abnormal(0, 1.0), 0, "maintenance", "x", "p")
    book.route(b, b.abnormal(1, 1.0), 1, "maintenance", "y", "p")
    week = limits.ALERT_REMIND_MS
    assert book.route(a, REMINDER, week + 1, "", "", "") == (1, REMINDER, True)
    assert book.route(b, REMINDER, week + 2, "", "", "") is None  # the alert was just reminded of
    assert book.acknowledge(1) == ["maintenance", "x", "p"] and book.acknowledge(1) is None
    assert a.acknowledged and b.acknowledged  # its findings are not reminded of either
    assert book.route(a, REMINDER, 3 * week, "", "", "") is None
    c = AlertEpisode()
    assert book.route(c, RAISED, week + 3, "maintenance", "z", "p") == (2, RAISED, True)  # over two days later
    assert book.acknowledge(5) is None


def test_the_service_acknowledges_an_alert_with_a_command_and_a_wrong_one_is_refused() -> None:
    agent = Agent(_washer(), "dev-1", {c["id"]: None for c in _washer()["channels"]}, ManualClock())
    flow = next(ch for ch in agent.channels if ch.id == "inlet_flow")
    for i in range(60):
        flow.process(i * 2000, 0.5, "idle", agent._emit)
    agent.judge_pending()
    topic = "wichtel/v1/dev-1/cmd/alert_ack"
    agent.on_command(topic, json.dumps({"device": "dev-1", "seq": 1, "args": {"alert": 1}}).encode())
    agent.on_command(topic, json.dumps({"device": "dev-1", "seq": 2, "args": {"alert": "1"}}).encode())
    agent.judge_pending()
    acks = [ev.fields for ev in agent.local_events.items() if ev.fields.get("state") == ACKNOWLEDGED]
    assert acks == [{"state": ACKNOWLEDGED, "alert": 1, "by": "service"}]
    assert [entry[1:] for entry in agent.commands.log] == [("alert_ack", "done"), (
        "alert_ack", "refused: alert_ack takes exactly alert, the alert's number (a whole number from 1)")]  # fmt: skip


# -- the cycle model on the device ---------------------------------------------------------------
@pytest.mark.heavy  # about 30 s of simulation
def test_the_cycle_model_finds_a_clogging_pump_from_install_against_its_reference_and_explains_it() -> None:
    washer = _washer()
    only_model = copy.deepcopy(washer)
    for ch in only_model["channels"]:
        ch["processors"] = [p for p in ch["processors"] if p["kind"] == "aggregate"]
    events = _run(validate(only_model), ["pump_clog"], 0, 48)
    raised = [e for e in events if e.fields["state"] == RAISED]
    assert [(e.channel, e.fields["detector"]) for e in raised] == [("cycle_model", "cycle_model")]
    text = raised[0].fields["explanation_en"]
    assert text.startswith("The last cycles differ from usual in several measurements together: ")
    assert "Motor and pump current during draining" in text and "% higher" in text
    assert "Draining" in raised[0].fields["explanation_de"] or "Abpumpen" in raised[0].fields["explanation_de"]
    healthy = _run(validate(only_model), [], 0, 48)
    assert healthy == []


def test_a_cycle_model_reference_no_data_set_can_have_is_refused_by_the_profile_check(tmp_path: str) -> None:
    """Three features, each pair said to correlate at 0.99 except one at -0.99: no matrix of
    real data looks so (a negative eigenvalue). `wichtel profile check` names it and the line."""
    import yaml

    from agent.profile_loader import ProfileFileError

    with open(os.path.join(ROOT, "agent", "profiles", "washing_machine.yaml")) as fh:
        doc = yaml.safe_load(fh)
    doc["cycle_model"]["features"] = doc["cycle_model"]["features"][:3]
    doc["cycle_model"]["reference"] = {"mean": [10, 10, 10], "sd": [5, 5, 5], "corr": [0.99, 0.99, -0.99]}
    path = os.path.join(str(tmp_path), "p.yaml")
    with open(path, "w") as fh:
        yaml.safe_dump(doc, fh, allow_unicode=True)
    with pytest.raises(ProfileFileError, match=r"p\.yaml:\d+: cycle_model\.reference\.corr: no correlation matrix"):
        profile_loader.load(path)
    doc["cycle_model"]["reference"]["corr"] = [0.5, 0.2, 0.1]
    with open(path, "w") as fh:
        yaml.safe_dump(doc, fh, allow_unicode=True)
    assert profile_loader.load(path)["cycle_model"]["reference"]["corr"] == [0.5, 0.2, 0.1]
