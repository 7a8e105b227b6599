"""The board's wall-clock time from NTP: a query when the link is up, retried with a doubling
wait (capped) while it fails, repeated every RESYNC_MS after it succeeds.

The result goes to the agent's clock (agent/core/clock.py BoardClock.synced), which counts
on from it and tells the status how old it is. Takes the `ntptime` module as an argument
(MicroPython's on a board; hil_tests/emulated/ntptime.py in the tests).
"""

import time

from agent.core.compat import const, sleep_ms
from agent.core.ratelimit import doubling_ms

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from agent.core.clock import BoardClock

# -- limits ---------------------------------------------------------------------------------------
QUERY_TIMEOUT_S = const(2)  # ntptime waits this long for an answer, blocking the loop (the watchdog allows it)
RETRY_MS = const(5_000)  # the wait after the first failed query; doubles with each failure in a row,
RETRY_CAP_MS = const(900_000)  # up to 15 min: NTP is a courtesy to the user's dates, not the agent's work
RESYNC_MS = const(6 * 3600 * 1000)  # a crystal of 50 ppm drifts about 1 s in this time
LINK_WAIT_MS = const(1_000)  # how often a board without a link looks again before it queries
MIN_YEAR = const(2025)  # an answer before this is not the time (a server's or a port's fault): refused


class TimeSync:
    """Sets clock's wall time from NTP while link_up() says the network is there."""

    def __init__(self, ntptime: "Any", clock: "BoardClock", link_up: "Callable[[], bool]",
                 report: "Callable[[str], None]", retry_ms: int = RETRY_MS, retry_cap_ms: int = RETRY_CAP_MS,
                 resync_ms: int = RESYNC_MS) -> None:  # fmt: skip
        self.ntptime = ntptime
        self.clock = clock
        self.link_up = link_up
        self.report = report
        self.retry_ms = retry_ms
        self.retry_cap_ms = retry_cap_ms
        self.resync_ms = resync_ms
        self.syncs = 0
        self.failures = 0  # failed queries in a row
        self.waits_ms: list = []  # the last few waits after failures (tests, status)
        ntptime.timeout = QUERY_TIMEOUT_S

    def query(self) -> int:
        """One NTP query: wall seconds in the runtime's epoch; OSError or ValueError when none came."""
        wall = int(self.ntptime.time())
        year = time.gmtime(wall)[0]
        if year < MIN_YEAR:
            raise ValueError("NTP answered %d (year %d); expected a time in %d or later" % (wall, year, MIN_YEAR))
        return wall

    async def run(self) -> None:
        while True:
            if not self.link_up():
                await sleep_ms(LINK_WAIT_MS)
                continue
            try:
                wall = self.query()
            except (OSError, ValueError, IndexError) as e:  # a timeout, no DNS, a short or implausible answer
                self.failures += 1
                wait = doubling_ms(self.retry_ms, self.failures - 1, self.retry_cap_ms)
                self.waits_ms = (self.waits_ms + [wait])[-8:]
                self.report("time: NTP failed (%s: %s); next query in %d ms" % (type(e).__name__, e, wait))
                await sleep_ms(wait)
                continue
            self.clock.synced(wall)
            self.syncs += 1
            self.failures = 0
            self.report("time: set from NTP (%d)" % wall)
            await sleep_ms(self.resync_ms)
