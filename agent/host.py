"""Host runtime wiring: drivers, phase source and clock for a profile on a Pi or a PC.

Chooses simulated appliances, a replayed trace, or the real sensors the profile's drivers
name (agent/drivers).
"""

import csv

from agent.core.clock import ManualClock, ScaledClock
from agent.core.errors import SensorError
from agent.core.pipeline import SampleSchedule
from agent.drivers import make_all
from agent.replay import ReplayDriver, Trace
from agent.sim import profile_model
from agent.sim.engine import SimDriver


def simulated(profile: dict, seed: int, faults: list, onset: int = 2, ramp: int = 2) -> tuple:
    """(drivers, phase source) from the profile's simulated appliance (agent/sim/profile_model.py):
    its simulation section, or its kind's built-in model, with what they leave out derived. The
    channels' drivers do not matter here: a profile for real sensors is simulated the same way."""
    sim = profile_model.build(profile, seed, faults, onset, ramp)
    drivers = {ch["id"]: SimDriver(sim, ch["id"]) for ch in profile["channels"]}
    return drivers, sim


def replayed(profile: dict, path: str) -> tuple:
    """(drivers, phase source) replaying a recorded trace file; TraceError for a trace that
    names a phase the profile lacks. The phase source's trace.end_ms() is where it ends."""
    cursor = Trace(path, phases=tuple(profile["phases"])).cursor()
    drivers = {ch["id"]: ReplayDriver(cursor, ch["id"]) for ch in profile["channels"]}
    return drivers, cursor


class FixedPhase:
    """The phase of an appliance whose profile names no phase_source: always the same one
    (the profile's first phase), so that readings are taken and checked; phase-bound
    processors only ever see that phase."""

    def __init__(self, phase: str) -> None:
        self.name = phase

    def phase(self, t_ms: int) -> str:
        return self.name


def real(profile: dict, env: dict | None = None) -> tuple:
    """(drivers, phase source) reading the real sensors of the profile's channels
    (agent/drivers; env: where they are, e.g. {"sysfs": root}). ConfigError, naming the
    channel, for a driver that cannot run here (sim, replay, a board's). The phase comes
    from the profile's phase_source (rules, GPIO lines or a UART); without one, it is
    always the profile's first phase."""
    drivers = make_all(profile, env)
    return drivers, phase_source(profile, env) or FixedPhase(profile["phases"][0])


def clock(speed: float) -> ManualClock | ScaledClock:
    """speed 0: as fast as the host computes; otherwise that many times real time."""
    return ManualClock() if speed == 0 else ScaledClock(speed)


def record(profile: dict, drivers: dict, phase_source: object, duration_ms: int, path: str) -> int:
    """Write a replayable trace of duration_ms sampled at the profile's rates; return rows.
    A reading the sensor could not give (SensorError) is an empty cell: a replay repeats the
    channel's reading before it."""
    ids = [ch["id"] for ch in profile["channels"]]
    periods = [max(1, int(1000 / ch["sample_hz"])) for ch in profile["channels"]]
    schedule = SampleSchedule(periods, 0)
    rows = 0
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["t_ms", "phase"] + ids)
        while schedule.next_due() < duration_ms:
            t = schedule.next_due()
            due = schedule.take_due(t)
            phase = phase_source.phase(t)  # type: ignore[attr-defined]
            cells = [""] * len(ids)
            for i in due:
                try:
                    cells[i] = repr(round(drivers[ids[i]].read(t), 4))
                except SensorError:
                    pass  # no reading (a simulated dropout): the cell stays empty, as for a channel not due
            out.writerow([t, phase] + cells)
            rows += 1
    return rows


def phase_source(profile: dict, env: dict | None = None) -> object:
    """The phase source of a real appliance, from the profile's phase_source (rules, GPIO
    lines or a UART; agent/phase_io.py), or None when the profile has none (its phase then
    comes from the simulator or a trace). env: what agent/phase_io.py reads from it."""
    if profile.get("phase_source") is None:
        return None
    from agent import phase_io

    return phase_io.make(profile, env)
