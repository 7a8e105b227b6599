"""The emulated board's `machine` parts the firmware's runtime uses: WDT, Pin, reset.

WDT keeps its own time, as the hardware does: a thread looks at the last feed and, when
none came within the timeout, says so (WDT_MARK) and ends the whole process, as the chip
resets the board, whatever the asyncio loop is doing. reset() raises Reset (a
BaseException, so no `except Exception` in the firmware stops it), which a test's script
catches to start main again: a reboot. LEVELS holds what each pin reads (1: released
button with its pull-up); a test changes it to press the button.
"""

import os
import time

WDT_MARK = "EMULATED-WDT-RESET"
LEVELS: dict = {}
RESETS = [0]
WDTS: list = []


class Reset(BaseException):  # what a board does, not an error
    """machine.reset() on the emulated board: the test's script starts main again."""


def reset() -> None:
    RESETS[0] += 1
    raise Reset("machine.reset()")


def unique_id() -> bytes:
    return b"\x24\x6f\x28\xa1\xb2\xc3"


class Pin:
    IN = 1
    OUT = 3
    PULL_UP = 2
    PULL_DOWN = 1

    def __init__(self, pin: int, mode: int = -1, pull: int = -1) -> None:
        self.pin = pin

    def value(self, *level: int) -> int:
        if level:
            LEVELS[self.pin] = level[0]
            return 0
        return int(LEVELS.get(self.pin, 1))


class WDT:
    """machine.WDT(timeout=ms): started at once, never stopped; feed() within timeout or the process ends."""

    def __init__(self, id: int = 0, timeout: int = 5000) -> None:
        self.timeout = timeout
        self.fed = time.ticks_ms()  # type: ignore[attr-defined]
        self.feeds = 0
        self.longest_gap = 0
        WDTS.append(self)
        import _thread  # the unix port's: the watchdog runs beside the loop, as the chip does

        _thread.start_new_thread(self._watch, ())

    def feed(self) -> None:
        now = time.ticks_ms()  # type: ignore[attr-defined]
        self.longest_gap = max(self.longest_gap, time.ticks_diff(now, self.fed))  # type: ignore[attr-defined]
        self.fed = now
        self.feeds += 1

    def _watch(self) -> None:
        while True:
            time.sleep_ms(10)  # type: ignore[attr-defined]
            starved = time.ticks_diff(time.ticks_ms(), self.fed)  # type: ignore[attr-defined]
            if starved > self.timeout:
                print("%s not fed for %d ms (timeout %d ms)" % (WDT_MARK, starved, self.timeout))
                # The chip resets the board: this process ends, whatever its loop is doing.
                os.system("kill -9 $PPID")  # type: ignore[attr-defined]  # the shell's parent: this interpreter
                return
