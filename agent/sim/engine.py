"""The simulation engine: program cycles made of phases, channel models, consumption, faults.

An appliance is described by plain data (see appliances.py). The engine advances in
time order as drivers read it, so it needs no thread and no clock of its own.
"""

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


class ApplianceSim:
    """Simulates one appliance from its model.

    model keys:
      program: list of (phase, seconds); a phase named in `thermal.phase` ends when the
               temperature reaches its target (or after its seconds, whichever first).
      idle_s: (mean, sd) seconds between cycles.
      channels: channel -> {phase: (mean, sd)}; phases not named use "idle" or (0, 0).
      thermal: {channel, phase, ambient, target, rate_c_per_s, cool_tau_s, sd}
      levels: channel -> {capacity, dose, dose_phase, refill_below, sd}
    """

    def __init__(self, model: dict, seed: int = 1, faults: list | None = None, start_ms: int = 0) -> None:
        self.model = model
        self.rng = XorShift32(seed)
        self.faults = faults or []
        self.cycle = -1
        self.t_ms = start_ms
        self.phase_name = _IDLE
        self.phase_end_ms = start_ms + self._idle_ms()
        self.plan: list = []
        th = model.get("thermal")
        self.temp = th["ambient"] if th else 0.0
        self.levels = {}
        for ch, spec in model.get("levels", {}).items():
            self.levels[ch] = float(spec["capacity"])

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
        for name, seconds in self.model["program"]:
            factor = 1.0 + self._effect("duration", name)
            self.plan.append((name, int(seconds * factor * 1000)))

    def _enter_next_phase(self, at_ms: int) -> None:
        if not self.plan:
            if self.phase_name != _IDLE:
                self.phase_name = _IDLE
                self.phase_end_ms = at_ms + self._idle_ms()
                self._maybe_refill()
                return
            self._start_cycle()
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
        th = self.model.get("thermal")
        while self.t_ms < t_ms:
            step_end = min(t_ms, self.phase_end_ms)
            if th:
                self._heat(th, (step_end - self.t_ms) / 1000)
            self.t_ms = step_end
            if self.t_ms >= self.phase_end_ms:
                self._enter_next_phase(self.t_ms)
            elif th and self.phase_name == th["phase"] and self.temp >= th["target"]:
                self._enter_next_phase(self.t_ms)

    def _heat(self, th: dict, seconds: float) -> None:
        if self.phase_name == th["phase"]:
            rate = th["rate_c_per_s"] * max(0.0, 1.0 + self._effect("heat_rate", "all"))
            self.temp = min(th["target"] + 1.0, self.temp + rate * seconds)
        else:
            # Newton cooling towards ambient, in closed form for the step.
            k = seconds / th["cool_tau_s"]
            self.temp = th["ambient"] + (self.temp - th["ambient"]) / (1.0 + k)

    # -- readings ---------------------------------------------------------------
    def phase(self, t_ms: int) -> str:
        self.advance(t_ms)
        return self.phase_name

    def read(self, channel: str, t_ms: int) -> float:
        self.advance(t_ms)
        th = self.model.get("thermal")
        if th and channel == th["channel"]:
            return self.rng.gauss(self.temp, th["sd"])
        if channel in self.levels:
            return self.rng.gauss(self.levels[channel], self.model["levels"][channel]["sd"])
        table = self.model["channels"][channel]
        mean, sd = table.get(self.phase_name) or table.get(_IDLE) or (0.0, 0.0)
        key = channel + "@" + self.phase_name
        mean = mean * (1.0 + self._effect("scale", key)) + self._effect("offset", key)
        return max(0.0, self.rng.gauss(mean, sd))


class SimDriver:
    """A channel driver reading from a simulated appliance, as a real driver would."""

    def __init__(self, sim: ApplianceSim, channel: str) -> None:
        self.sim = sim
        self.channel = channel

    def read(self, t_ms: int) -> float:
        return self.sim.read(self.channel, t_ms)
