"""The hardware watchdog, fed from the asyncio loop only while the loop and the board's
long-running tasks are healthy: a loop that is stuck, or a task that has ended, resets the board.

Feeding from a task of the loop (not a timer interrupt) is the point: a blocked loop cannot
feed. A task that ended (an exception nobody expected) is not fed around either: the board
resets and starts clean, which is the best a device nobody watches can do.
"""

from agent.core.compat import const, sleep_ms

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from machine import WDT

# -- limits ---------------------------------------------------------------------------------------
# The loop must come round within this. Longer than the longest call that blocks it on a
# board: a TLS handshake (an ECDSA P-256 handshake takes 1-3 s on an ESP32 at 240 MHz), a DNS
# lookup (lwIP gives up after about 10 s), an NTP query (timesync.QUERY_TIMEOUT_S), a flash write.
TIMEOUT_MS = const(30_000)
FEED_MS = const(1_000)  # how often a healthy loop feeds (well within TIMEOUT_MS)


class LoopWatchdog:
    """machine.WDT fed every feed_ms while every watched task is running. `tasks`: name -> task."""

    def __init__(self, machine: "Any", tasks: dict, report: "Callable[[str], None]", timeout_ms: int = TIMEOUT_MS,
                 feed_ms: int = FEED_MS) -> None:  # fmt: skip
        self.machine = machine
        self.tasks = tasks
        self.report = report
        self.timeout_ms = timeout_ms
        self.feed_ms = feed_ms
        self.feeds = 0
        self.starving = ""  # why it stopped feeding ("" while it feeds)

    def ended(self) -> str:
        """The name of a watched task that has ended ("" while all run)."""
        for name, task in self.tasks.items():
            if task.done():
                return str(name)
        return ""

    async def run(self) -> None:
        # Started here, once everything it watches runs: from now on it cannot be stopped
        # (before, a broken bundle or safe mode leaves the board at its prompt).
        wdt: WDT = self.machine.WDT(timeout=self.timeout_ms)
        while True:
            name = self.ended()
            if name:
                if not self.starving:
                    self.starving = name
                    self.report("watchdog: the %s task ended; not fed any more: the board resets within %d ms"
                                % (name, self.timeout_ms))  # fmt: skip
            else:
                wdt.feed()
                self.feeds += 1
            await sleep_ms(self.feed_ms)
