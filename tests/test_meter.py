"""Metered consumables (source: meter): what flows through a channel, counted only in the
chosen phases, bounded over gaps, kept across a restart, forecast like the others."""

import asyncio
import copy
import json

import pytest

from agent.core import limits
from agent.core.clock import ManualClock
from agent.core.consumables import ConsumableRuntime
from agent.core.errors import InputError, ProfileError, format_path
from agent.core.pipeline import Agent
from tests import phase_samples as ps

DAY_MS = 86_400_000


def _spec(**changes: object) -> dict:
    prof = ps.validated()
    spec = copy.deepcopy(prof["consumables"][0])
    spec.update(changes)
    return spec


def _stock(period_ms: int = 1000, **changes: object) -> ConsumableRuntime:
    return ConsumableRuntime(_spec(**changes), "idle", None, period_ms)


def _run(stock: ConsumableRuntime, t0_ms: int, phase: str, seconds: int, rate: float, step_ms: int = 1000) -> int:
    """The phase for `seconds`, a reading of `rate` every step_ms; returns the time after."""
    stock.on_phase(t0_ms, phase)
    t = t0_ms
    for _ in range(seconds * 1000 // step_ms):
        t += step_ms
        stock.on_sample("water_flow", t, rate)
    return t


def test_a_meter_counts_exact_litres_only_in_its_phases() -> None:
    stock = _stock()
    t = _run(stock, 0, "idle", 30, 12.0)  # water flowing, but not in a metered phase
    t = _run(stock, t, "fill", 60, 12.0)  # 12 l/min for a minute
    t = _run(stock, t, "heating", 30, 12.0)
    t = _run(stock, t, "fill", 30, 6.0)  # 3 l more
    assert stock.tracker.level == pytest.approx(1500 - 15, abs=1e-9)
    assert stock.tracker.used_today == pytest.approx(15, abs=1e-9)
    stock.on_sample("motor_current", t + 1000, 1e6)  # another channel changes nothing
    assert stock.tracker.level == pytest.approx(1485, abs=1e-9)


def test_without_phases_every_phase_counts_and_factor_and_rate_per_convert() -> None:
    stock = _stock(phases=None, rate_per="s", factor=0.001)  # a flow in ml/s, counted in litres
    t = _run(stock, 0, "idle", 10, 100.0)
    _run(stock, t, "spin", 20, 50.0)
    # The first reading has none before it to measure from: 9 s of 100 ml/s, then 20 s of 50 ml/s.
    assert stock.tracker.level == pytest.approx(1500 - 0.9 - 1.0, abs=1e-9)
    hourly = _stock(rate_per="h")
    _run(hourly, 0, "fill", 3600, 60.0)
    assert hourly.tracker.level == pytest.approx(1500 - 60 * 3599 / 3600, abs=1e-6)


def test_gaps_are_bounded_at_the_declared_number_of_periods() -> None:
    bound = limits.METER_GAP_PERIODS
    stock = _stock(period_ms=2000)
    stock.on_phase(0, "fill")
    stock.on_sample("water_flow", 0, 60.0)  # the first reading: nothing to measure from
    assert stock.tracker.level == 1500
    stock.on_sample("water_flow", 4000, 60.0)  # one sample missed: both periods count
    assert stock.tracker.level == pytest.approx(1500 - 4.0)
    stock.on_sample("water_flow", 4000 + bound * 2000, 60.0)  # at the bound: all counts
    assert stock.tracker.level == pytest.approx(1500 - 4.0 - bound * 2.0)
    stock.on_sample("water_flow", 4000 + 2 * bound * 2000 + 1, 60.0)  # 1 ms over: the bound counts
    assert stock.tracker.level == pytest.approx(1500 - 4.0 - 2 * bound * 2.0)
    assert stock.meter.uncounted_ms == 1  # type: ignore[union-attr]
    stock.on_sample("water_flow", 10 * DAY_MS, 30.0)  # the device was off for days
    assert stock.tracker.level == pytest.approx(1500 - 4.0 - 2 * bound * 2.0 - bound * 1.0)
    assert stock.meter.uncounted_ms > 9 * DAY_MS  # type: ignore[union-attr]


def test_a_negative_rate_or_time_standing_still_counts_nothing() -> None:
    stock = _stock()
    stock.on_phase(0, "fill")
    for t, v in [(0, 10.0), (1000, -5.0), (1000, 10.0), (2000, 0.0)]:
        stock.on_sample("water_flow", t, v)
    assert stock.tracker.level == 1500


def test_an_amount_beyond_the_capacity_is_refused() -> None:
    stock = _stock()
    with pytest.raises(InputError, match="metered amount"):
        stock.tracker.metered(0, 1501.0)
    with pytest.raises(InputError, match="metered amount"):
        stock.tracker.metered(0, float("nan"))


@pytest.mark.parametrize(
    ("changes", "path", "words"),
    [
        ({"channel": None}, "consumables[0].channel", "the channel whose flow is metered"),
        ({"channel": "nowhere"}, "consumables[0].channel", "one of channels"),
        ({"phases": ["rinse"]}, "consumables[0].phases[0]", "one of phases"),
        ({"source": "dose_count", "dose_per_cycle": 1}, "consumables[0].phases", "unless source is meter"),
        ({"source": "level_sensor", "phases": None, "rate_per": "s"}, "consumables[0].rate_per", "unless source"),
        ({"factor": 0}, "consumables[0].factor", "from 1e-06"),
        ({"rate_per": "day"}, "consumables[0].rate_per", "one of h, min, s"),
    ],
)
def test_a_wrong_meter_is_refused_naming_the_field(changes: dict, path: str, words: str) -> None:
    doc = ps.doc()
    doc["consumables"][0].update(changes)
    if changes.get("channel", "") is None:
        del doc["consumables"][0]["channel"]
    with pytest.raises(ProfileError) as e:
        ps.validated(consumables=doc["consumables"])
    assert format_path(e.value.path) == path, e.value
    assert words in str(e.value)


def test_a_meter_needs_no_dose_per_cycle() -> None:
    assert ps.validated()["consumables"][0]["dose_per_cycle"] is None


# -- through the Agent --------------------------------------------------------------------------------
class TruePhase:
    """The washer's own phase, as a controller on GPIO lines or a UART would give it."""

    def __init__(self, washer: ps.Washer) -> None:
        self.washer = washer

    def phase(self, t_ms: int) -> str:
        return self.washer.state(t_ms)


def _agent(washer: ps.Washer, clock: ManualClock) -> Agent:
    prof = ps.validated()
    return Agent(prof, "d", washer.drivers(prof), clock, TruePhase(washer))


def test_through_the_agent_each_fill_counts_its_litres_and_a_restart_keeps_the_count() -> None:
    washer = ps.Washer([300], fill_s=60, flow=12.0)  # 12 l per cycle, one cycle every 20 minutes
    clock = ManualClock()
    agent = _agent(washer, clock)
    asyncio.run(agent.run(3 * 1_200_000))  # three cycles
    assert agent.consumable("water_filter").level == pytest.approx(1500 - 36, abs=1e-6)
    saved = json.loads(json.dumps(agent.save()))  # as stored on disk
    exported = agent.rights.export()["learned"]["consumables"]["water_filter"]
    assert exported["level"] == pytest.approx(1464, abs=1e-6)
    again = _agent(washer, ManualClock(clock.now_ms()))  # a new process: the clock goes on
    assert again.restore(saved) == []
    assert again.consumable("water_filter").level == pytest.approx(1464, abs=1e-6)
    asyncio.run(again.run(2 * 1_200_000))
    assert again.snapshot().consumable("water_filter").level == pytest.approx(1464 - 24, abs=1e-6)


def test_a_metered_filter_is_forecast_and_a_reorder_suggested_in_time() -> None:
    stock = _stock(capacity=200)
    t = 0
    events: list = []
    for day in range(15):  # 12 l a day: a minute of filling at 12 l/min each morning
        t = day * DAY_MS + 8 * 3_600_000
        events += stock.on_phase(t, "idle")
        events += stock.on_sample("water_flow", t, 0.0)  # the channel is read at rest too
        events += stock.on_phase(t, "fill")
        for s in range(60):
            events += stock.on_sample("water_flow", t + (s + 1) * 1000, 12.0)
        events += stock.on_phase(t + 61_000, "idle")
    left = stock.tracker.level
    assert left == pytest.approx(200 - 15 * 12, abs=1e-6)
    forecast = stock.tracker.forecast()
    assert forecast.days_left == pytest.approx(left / 12, abs=1.0)
    kinds = [kind for kind, _ in events]
    assert "reorder_suggested" in kinds and "low_level" in kinds
    first = next(f for kind, f in events if kind == "reorder_suggested")
    assert first["level"] > 12 * 3  # before the last three days' water (the lead time) was used
