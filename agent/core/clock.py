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


class BoardClock:
    """A board's time: milliseconds since start, and wall-clock time once a time source
    (NTP on a board) has given it.

    The milliseconds are added up from ticks_ms at each call rather than taken as one
    difference from the start: ticks wrap (every 12.4 days on an ESP32, and ticks_diff is
    right only within half of that), and the agent runs for months. Each call must come
    within half a wrap of the one before; the sampler asks at every sample (at least every
    100 s). wall_s() is 0 (unknown) and synced_age_s() None until synced() was called: what
    the device stamps with wall time before a first sync says "unknown", not 1970 or 2000.
    speed: virtual ms per real ms (tests; a board runs at 1). No I/O: the firmware asks NTP.
    """

    def __init__(self, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ConfigError("clock speed must be > 0, got " + repr(speed))
        self.speed = speed
        self._last = ticks_ms()
        self._real_ms = 0  # real ms since start
        self._wall_s = 0  # wall-clock seconds at the last sync (the runtime's epoch)
        self._synced_ms = -1  # _real_ms at the last sync; -1: never synced

    def _real(self) -> int:
        now = ticks_ms()
        self._real_ms += ticks_diff(now, self._last)
        self._last = now
        return self._real_ms

    def now_ms(self) -> int:
        return int(self._real() * self.speed)

    async def sleep_until(self, t_ms: int) -> None:
        await sleep_ms(max(0, int((t_ms - self.now_ms()) / self.speed)))

    def synced(self, wall_s: int) -> None:
        """The time source says it is wall_s seconds now (in the runtime's epoch)."""
        self._synced_ms = self._real()
        self._wall_s = int(wall_s)

    def wall_s(self) -> int:
        """Wall-clock seconds now, counted on from the last sync; 0 before the first."""
        if self._synced_ms < 0:
            return 0
        return self._wall_s + (self._real() - self._synced_ms) // 1000

    def synced_age_s(self) -> "int | None":
        """Real seconds since the last sync; None before the first (the status reports it)."""
        if self._synced_ms < 0:
            return None
        return (self._real() - self._synced_ms) // 1000
