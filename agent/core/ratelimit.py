"""Rate limits for whatever a peer can make the device do: log lines, replies, retries.

A token bucket that takes the time as an argument (no clock of its own, checkable on a
host), a reporter that passes at most that many lines and then says how many it held back,
and the doubling wait that paces retries.
"""

from agent.core.compat import ticks_diff, ticks_ms
from agent.core.errors import ConfigError


def doubling_ms(first_ms: int, n: int, cap_ms: int) -> int:
    """The wait after the n-th failure in a row (n = 0: the first): first_ms doubled n
    times, never more than cap_ms, whatever n is."""
    wait = first_ms
    while n > 0 and 0 < wait < cap_ms:  # doubled step by step: no number beyond 2 * cap_ms (small ints on the board)
        wait <<= 1
        n -= 1
    return cap_ms if wait > cap_ms else wait


class TokenBucket:
    """`burst` tokens at most, refilled at `per_s` tokens a second; take() spends one.

    Times are milliseconds from any start (ticks or a manual clock)."""

    def __init__(self, per_s: float, burst: int, now_ms: int = 0) -> None:
        if per_s <= 0 or burst < 1:
            raise ConfigError(
                "token bucket: got rate %r and burst %r; expected a rate above 0 and a burst of 1 or more"
                % (per_s, burst)
            )
        self.per_ms = per_s / 1000
        self.burst = burst
        self.tokens = float(burst)
        self.at_ms = now_ms

    def take(self, now_ms: int) -> bool:
        """Spend one token if there is one (True); False means: over the limit, skip it."""
        elapsed = ticks_diff(now_ms, self.at_ms)
        if elapsed > 0:
            self.tokens = min(float(self.burst), self.tokens + elapsed * self.per_ms)
            self.at_ms = now_ms
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class ThrottledReport:
    """Passes report lines to `report` within a token bucket; lines over the limit are
    counted, and the next line that passes says how many were held back. A hostile peer
    can then grow the log by at most `burst` lines plus `per_s` lines a second."""

    def __init__(self, report: object, per_s: float = 1.0, burst: int = 10, now_ms: object = None) -> None:
        self.report = report
        self.now_ms = now_ms
        self._t0 = ticks_ms()
        self.bucket = TokenBucket(per_s, burst, self._now())
        self.suppressed = 0  # held back since the last line that passed
        self.suppressed_total = 0

    def _now(self) -> int:
        if self.now_ms is None:
            return ticks_diff(ticks_ms(), self._t0)  # ms since this reporter was made
        return self.now_ms()  # type: ignore[operator,no-any-return]

    def __call__(self, text: str) -> None:
        if not self.bucket.take(self._now()):
            self.suppressed += 1
            self.suppressed_total += 1
            return
        if self.suppressed:
            text += " (%d similar message%s held back)" % (self.suppressed, "" if self.suppressed == 1 else "s")
            self.suppressed = 0
        if self.report is not None:
            self.report(text)  # type: ignore[operator]
