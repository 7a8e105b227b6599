"""The simulation engine: program cycles made of phases, channel models, consumption, faults.

An appliance is described by plain data (appliances.py; profile_model.py from a profile).
The engine advances in time order as drivers read it, so it needs no thread and no clock
of its own.
"""

import math

from agent.core.errors import ConfigError, SensorError
from agent.sim.rng import XorShift32

_IDLE = "idle"


class Fault:
    """A fault that starts at cycle onset and grows to full severity over ramp cycles."""

    def __init__(self, name: str, effects: dict, onset: int = 0, ramp: int = 1) -> None:
        self.name = name
        self.effects = effects
        self.onset = onset
        self.ramp = max(1, ramp)

    def severity(self, cycle: int) -> float:
        if cycle < self.onset:
            return 0.0
        return min(1.0, (cycle - self.onset + 1) / self.ramp)


# The kinds of agent.core.profile.SIM_FAULT_KINDS, named again here: a board drops the profile
# module once its profile is checked (profile.release), and the simulator must not bring it
# back. tests/test_sim_profile.py checks that the two are the same.
SENSOR_FAULT_KINDS = ("drift", "step", "stuck", "noise", "dropout")


class SensorFault:
    """A fault of one channel's sensor, from its onset (a cycle, or hours from the start) on:
    drift adds size per hour since the onset, step adds size, stuck repeats the last reading
    before the onset, noise adds noise of standard deviation size, dropout gives no reading
    (SensorError "absent"; a share size of the readings, all when size is None). With a phase,
    only readings in that phase are touched. Its own random source: the appliance's other
    readings are the same with or without it."""

    def __init__(self, name: str, kind: str, channel: str, size: float | None = None, phase: str | None = None,
                 onset_cycle: int | None = None, onset_h: float | None = None, seed: int = 1) -> None:  # fmt: skip
        if kind not in SENSOR_FAULT_KINDS:
            raise ConfigError("sensor fault kind " + repr(kind) + "; known: " + ", ".join(SENSOR_FAULT_KINDS))
        self.name = name
        self.kind = kind
        self.channel = channel
        self.size = size
        self.phase = phase
        self.onset_cycle = onset_cycle
        self.onset_ms = -1 if onset_h is None else int(onset_h * 3_600_000)
        self.rng = XorShift32(seed ^ 0x5A5A5A5A)
        self.since_ms = -1  # the first reading at or after the onset
        self.last: float | None = None  # the last reading before the onset (stuck)

    def started(self, cycle: int, t_ms: int) -> bool:
        if self.onset_cycle is not None:
            return cycle >= self.onset_cycle
        return t_ms >= self.onset_ms

    def apply(self, value: float, t_ms: int, cycle: int, phase: str) -> float:
        if not self.started(cycle, t_ms):
            self.last = value
            return value
        if self.since_ms < 0:
            self.since_ms = t_ms
        if self.phase is not None and phase != self.phase:
            return value
        kind = self.kind
        if kind == "drift":
            return value + self.size * (t_ms - self.since_ms) / 3_600_000  # type: ignore[operator]
        if kind == "step":
            return value + self.size  # type: ignore[operator]
        if kind == "noise":
            return value + self.rng.gauss(0.0, self.size)  # type: ignore[arg-type]
        if kind == "stuck":
            if self.last is None:
                self.last = value  # stuck from the very first reading
            return self.last
        if self.size is None or self.rng.uniform() < self.size:
            raise SensorError("absent", "simulated dropout " + repr(self.name) + " of " + self.channel)
        return value


class ApplianceSim:
    """Simulates one appliance from its model.

    model keys:
      program: list of (phase, seconds) or (phase, seconds, every): a step with every n runs
               only in every n-th cycle. A phase named in a thermal's phase ends when that
               temperature reaches its target (or after its seconds, whichever first).
      idle_s: (mean, sd) seconds between cycles, spent in the rest phase.
      rest: the rest phase's name ("idle" when not given).
      channels: channel -> {phase: (mean, sd)}; phases not named use the rest phase's or (0, 0).
      thermal: {channel, phase, ambient, target, rate_c_per_s, cool_tau_s, sd[, until_target, start]};
               heats towards target in its phase (cools, for a target below ambient), and
               returns to ambient outside it; it starts at start (or ambient). thermals: more such.
      levels: channel -> {capacity, dose, dose_phase, refill_below, sd}
      switches: channel -> {per_hour, seconds, high, low}: low, high for seconds at random
               times (per_hour of them on average; a door opened).
      ranges: channel -> (low, high): readings of these channels are kept within it (a
              sensor's range); channels not named are kept at 0 or above.
    sensor_faults: SensorFault list; a fault's readings may leave the channel's range.
    """

    def __init__(self, model: dict, seed: int = 1, faults: list | None = None, start_ms: int = 0,
                 sensor_faults: list | None = None) -> None:  # fmt: skip
        self.model = model
        self.rng = XorShift32(seed)
        self.faults = faults or []
        self.sensor_faults = sensor_faults or []
        self.rest: str = model.get("rest", _IDLE)
        self.ranges = model.get("ranges", {})
        self.cycle = -1
        self.t_ms = start_ms
        self.phase_name: str = self.rest
        self.phase_end_ms = start_ms + self._idle_ms()
        self.plan: list = []
        th = model.get("thermal")
        self.thermals = ([th] if th else []) + model.get("thermals", [])
        self.temps = {}
        for spec in self.thermals:
            start = spec.get("start")
            self.temps[spec["channel"]] = spec["ambient"] if start is None else start
        self.levels = {}
        for ch, spec in model.get("levels", {}).items():
            self.levels[ch] = float(spec["capacity"])
        self.switches = {}
        for ch in model.get("switches", {}):
            self.switches[ch] = [start_ms, start_ms]  # the next (or current) time high: from, until

    # -- faults -----------------------------------------------------------------
    def _effect(self, kind: str, key: object) -> float:
        """Sum of severity-weighted effects of this kind for key (0 when none)."""
        total = 0.0
        for f in self.faults:
            table = f.effects.get(kind)
            if table and key in table:
                total += f.severity(self.cycle) * table[key]
        return total

    # -- time -------------------------------------------------------------------
    def _idle_ms(self) -> int:
        mean, sd = self.model["idle_s"]
        return int(max(60.0, self.rng.gauss(mean, sd)) * 1000)

    def _start_cycle(self) -> None:
        self.cycle += 1
        self.dosed: list = []
        self.plan = []
        for step in self.model["program"]:
            if len(step) > 2 and (self.cycle + 1) % step[2]:
                continue  # a step of every n-th cycle only
            name = step[0]
            factor = 1.0 + self._effect("duration", name)
            self.plan.append((name, int(step[1] * factor * 1000)))

    def _enter_next_phase(self, at_ms: int) -> None:
        if not self.plan:
            if self.phase_name != self.rest:
                self.phase_name = self.rest
                self.phase_end_ms = at_ms + self._idle_ms()
                self._maybe_refill()
                return
            self._start_cycle()
            if not self.plan:  # no program: the appliance rests, cycle after cycle
                self.phase_end_ms = at_ms + self._idle_ms()
                return
        name, ms = self.plan.pop(0)
        self.phase_name = name
        self.phase_end_ms = at_ms + ms
        for ch, spec in self.model.get("levels", {}).items():
            if spec["dose_phase"] == name and ch not in self.dosed:
                self.dosed.append(ch)  # one dose per cycle, at the phase's first run
                dose = self.rng.gauss(spec["dose"], spec["dose"] * 0.05)
                self.levels[ch] = max(0.0, self.levels[ch] - dose)

    def _maybe_refill(self) -> None:
        for ch, spec in self.model.get("levels", {}).items():
            if self.levels[ch] < spec["refill_below"]:
                self.levels[ch] = float(spec["capacity"])

    def advance(self, t_ms: int) -> None:
        """Move the simulation forward to t_ms (earlier times are ignored)."""
        while self.t_ms < t_ms:
            step_end = min(t_ms, self.phase_end_ms)
            for th in self.thermals:
                self._heat(th, (step_end - self.t_ms) / 1000)
            self.t_ms = step_end
            if self.t_ms >= self.phase_end_ms:
                self._enter_next_phase(self.t_ms)
            elif self._target_reached():
                self._enter_next_phase(self.t_ms)

    def _target_reached(self) -> bool:
        for th in self.thermals:
            if self.phase_name == th["phase"] and th.get("until_target", True):
                temp = self.temps[th["channel"]]
                if temp >= th["target"] if th["target"] >= th["ambient"] else temp <= th["target"]:
                    return True
        return False

    def _heat(self, th: dict, seconds: float) -> None:
        ch = th["channel"]
        if self.phase_name == th["phase"]:
            rate = th["rate_c_per_s"] * max(0.0, 1.0 + self._effect("heat_rate", "all"))
            if th["target"] >= th["ambient"]:
                self.temps[ch] = min(th["target"] + 1.0, self.temps[ch] + rate * seconds)
            else:  # a cooler: the temperature falls towards its target
                self.temps[ch] = max(th["target"] - 1.0, self.temps[ch] - rate * seconds)
        else:
            # Newton cooling towards ambient, in closed form for the step.
            k = seconds / th["cool_tau_s"]
            self.temps[ch] = th["ambient"] + (self.temps[ch] - th["ambient"]) / (1.0 + k)

    # -- readings ---------------------------------------------------------------
    def phase(self, t_ms: int) -> str:
        self.advance(t_ms)
        return self.phase_name

    def read(self, channel: str, t_ms: int) -> float:
        """The channel's reading at t_ms; SensorError when a sensor fault takes it away."""
        self.advance(t_ms)
        value = self._clean(channel, t_ms)
        span = self.ranges.get(channel)
        if span is not None:
            value = min(span[1], max(span[0], value))
        for f in self.sensor_faults:
            if f.channel == channel:
                value = f.apply(value, t_ms, self.cycle, self.phase_name)
        return value

    def _clean(self, channel: str, t_ms: int) -> float:
        for th in self.thermals:
            if channel == th["channel"]:
                return self.rng.gauss(self.temps[channel], th["sd"])
        if channel in self.levels:
            return self.rng.gauss(self.levels[channel], self.model["levels"][channel]["sd"])
        window = self.switches.get(channel)
        if window is not None:
            spec = self.model["switches"][channel]
            while t_ms >= window[1]:
                # Poisson arrivals: the gap to the next is exponential with the mean gap.
                window[0] = window[1] + int(-math.log(self.rng.uniform()) * 3_600_000 / spec["per_hour"])
                window[1] = window[0] + int(spec["seconds"] * 1000)
            return float(spec["high"] if t_ms >= window[0] else spec["low"])
        table = self.model["channels"][channel]
        mean, sd = table.get(self.phase_name) or table.get(self.rest) or (0.0, 0.0)
        key = channel + "@" + self.phase_name
        mean = mean * (1.0 + self._effect("scale", key)) + self._effect("offset", key)
        value = self.rng.gauss(mean, sd)
        return value if channel in self.ranges else max(0.0, value)


class SimDriver:
    """A channel driver reading from a simulated appliance, as a real driver would."""

    def __init__(self, sim: ApplianceSim, channel: str) -> None:
        self.sim = sim
        self.channel = channel

    def read(self, t_ms: int) -> float:
        """The reading at t_ms; SensorError when a simulated sensor fault takes it away."""
        return self.sim.read(self.channel, t_ms)
