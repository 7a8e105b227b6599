"""Clocks for the pipeline: real time, scaled (faster than real) and manual.

The pipeline asks a clock for the time and to sleep until a time, so the same code
runs on a board, at N times real speed in a demo, or instantly in a test.
"""

from agent.core.compat import sleep_ms, ticks_diff, ticks_ms
from agent.core.errors import ConfigError


class ScaledClock:
    """Virtual milliseconds that pass speed times faster than real ones (speed 1: real time)."""

    def __init__(self, speed: float = 1.0, start_ms: int = 0) -> None:
        if not speed > 0:
            raise ConfigError("clock speed must be > 0, got " + repr(speed))
        self.speed = speed
        self.start_ms = start_ms
        self._t0 = ticks_ms()

    def now_ms(self) -> int:
        return self.start_ms + int(ticks_diff(ticks_ms(), self._t0) * self.speed)

    async def sleep_until(self, t_ms: int) -> None:
        await sleep_ms(max(0, int((t_ms - self.now_ms()) / self.speed)))


class ManualClock:
    """Time moves only when the pipeline sleeps: as fast as the host can compute.

    Sleeping here does not yield to other tasks (a yield costs a timer turn on some
    ports); the pipeline yields itself whenever work is waiting for another task.
    """

    def __init__(self, start_ms: int = 0) -> None:
        self.t_ms = start_ms

    def now_ms(self) -> int:
        return self.t_ms

    async def sleep_until(self, t_ms: int) -> None:
        if t_ms > self.t_ms:
            self.t_ms = t_ms
