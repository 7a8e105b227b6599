"""The board's Wi-Fi link as a station on the user's network: joining with a doubling wait
between failed attempts (capped), and joining again when the link drops.

Takes the `network` module as an argument (MicroPython's on a board; the tests give
hil_tests/emulated/network.py), so the same code runs on the unix port. The waits are pure
arithmetic (retry_wait_ms), checkable without sleeping; the limits are declared below.
"""

from agent.core.compat import const, sleep_ms, ticks_diff, ticks_ms
from agent.core.ratelimit import doubling_ms

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from network import WLAN  # the ESP32 stubs: the interface's calls are checked against them

# -- limits ---------------------------------------------------------------------------------------
CONNECT_TIMEOUT_MS = const(20_000)  # one attempt: associated, authenticated and an address by then, or it failed
RETRY_MS = const(2_000)  # the wait after the first failed attempt; it doubles with each failure in a row,
RETRY_CAP_MS = const(300_000)  # up to 5 min: a router that restarts is back within one wait
CHECK_MS = const(1_000)  # how often a joined link is looked at (a drop is noticed within this)
POLL_MS = const(100)  # how often an attempt in progress is looked at
WAITS_KEPT = const(16)  # the last waits, for the status and the tests (a board that fails for days keeps no more)


def retry_wait_ms(failures: int, first_ms: int = RETRY_MS, cap_ms: int = RETRY_CAP_MS) -> int:
    """The wait after `failures` failed attempts in a row (1: the first): first_ms, doubling, at most cap_ms."""
    return doubling_ms(first_ms, failures - 1, cap_ms)


class WifiLink:
    """Keeps the station joined to one network; `address` is the board's IP while joined ("" otherwise)."""

    def __init__(self, network: "Any", ssid: str, password: str, report: "Callable[[str], None]",
                 connect_timeout_ms: int = CONNECT_TIMEOUT_MS, retry_ms: int = RETRY_MS,
                 retry_cap_ms: int = RETRY_CAP_MS, check_ms: int = CHECK_MS, hostname: str = "") -> None:  # fmt: skip
        self.network = network
        if hostname:
            # Before the interface starts: DHCP sends it, and the port's mDNS answers `<hostname>.local`.
            network.hostname(hostname)
        self.wlan: WLAN = network.WLAN(network.STA_IF)
        self.ssid = ssid
        self._password = password
        self.report = report
        self.connect_timeout_ms = connect_timeout_ms
        self.retry_ms = retry_ms
        self.retry_cap_ms = retry_cap_ms
        self.check_ms = check_ms
        self.address = ""
        self.attempts = 0
        self.failures = 0  # failed attempts in a row (0 while joined)
        self.joins = 0
        self.drops = 0
        self.waits_ms: list = []  # the last WAITS_KEPT waits after failed attempts
        self.last_status = 0

    def is_up(self) -> bool:
        return bool(self.address)

    def _failed_status(self, status: int) -> bool:
        """Whether the interface has given up on this attempt (wrong password, no such network...)."""
        net = self.network
        return status in (net.STAT_WRONG_PASSWORD, net.STAT_NO_AP_FOUND, net.STAT_CONNECT_FAIL)

    async def _join(self) -> bool:
        """One attempt, within connect_timeout_ms."""
        wlan = self.wlan
        self.attempts += 1
        wlan.active(True)
        # The interface's own retries would fight ours (their waits are not capped): none.
        wlan.config(reconnects=0)
        if wlan.isconnected():
            wlan.disconnect()
        wlan.connect(self.ssid, self._password)
        t0 = ticks_ms()
        while True:
            # Looked at once more when the time is up: a join that made it by then counts.
            if wlan.isconnected():
                return True
            self.last_status = wlan.status()
            left = self.connect_timeout_ms - ticks_diff(ticks_ms(), t0)
            if self._failed_status(self.last_status) or left <= 0:
                break
            await sleep_ms(min(POLL_MS, left))
        try:
            wlan.disconnect()  # the attempt ends before the wait, or it goes on in the driver
        except OSError:
            pass  # nothing to end
        return False

    async def run(self) -> None:
        """Join, watch, join again; forever (the main task cancels it)."""
        while True:
            if await self._join():
                self.failures = 0
                self.joins += 1
                self.address = str(self.wlan.ifconfig()[0])
                self.report("wifi: joined %r as %s" % (self.ssid, self.address))
                while self.wlan.isconnected():
                    await sleep_ms(self.check_ms)
                self.address = ""
                self.drops += 1
                self.report("wifi: the link to %r dropped; joining again" % self.ssid)
                continue  # the first attempt after a drop goes at once: the network was there a moment ago
            self.failures += 1
            wait = retry_wait_ms(self.failures, self.retry_ms, self.retry_cap_ms)
            self.waits_ms.append(wait)
            if len(self.waits_ms) > WAITS_KEPT:
                self.waits_ms.pop(0)
            self.report("wifi: could not join %r (attempt %d, status %s); next attempt in %d ms"
                        % (self.ssid, self.attempts, self.last_status, wait))  # fmt: skip
            await sleep_ms(wait)
