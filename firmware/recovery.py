"""How a person gets a board back: safe mode (main.py starts nothing, the prompt stays
free), and the button held down to forget the Wi-Fi credentials.

Safe mode is asked for by a file named safe_mode at the filesystem root, or by holding the
button during the first SAFE_MODE_WINDOW_MS after a start. It is decided before the
watchdog starts: once started, a watchdog cannot be stopped, and it would reset a board
someone is repairing at its prompt.
"""

import errno
import os

from agent.core.compat import const, sleep_ms, ticks_diff, ticks_ms

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from machine import Pin

SAFE_MODE_FILE = "safe_mode"
# -- limits ---------------------------------------------------------------------------------------
SAFE_MODE_WINDOW_MS = const(2_000)  # after a start, the button held within this asks for safe mode
CLEAR_HOLD_MS = const(10_000)  # the button held this long while running forgets the Wi-Fi credentials
POLL_MS = const(50)  # how often the button is looked at
# The button: BOOT on most ESP32 and ESP32-S3 boards is GPIO 0, on ESP32-C3 boards GPIO 9 (both
# strapping pins: held at reset they start the ROM loader, so safe mode asks for it after reset).
BUTTON_PINS = {"ESP32C3": 9}
DEFAULT_BUTTON_PIN = const(0)


def button_pin(machine_name: str) -> int:
    """The button's GPIO for a board whose os.uname().machine is machine_name."""
    for chip, pin in BUTTON_PINS.items():
        if chip in machine_name.upper().replace("-", ""):
            return pin
    return DEFAULT_BUTTON_PIN


def marker_present(root: str) -> bool:
    try:
        os.stat((root.rstrip("/") or "") + "/" + SAFE_MODE_FILE)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise
        return False
    return True


def button(machine: "Any", pin: int) -> "Pin":
    """The button as an input with its pull-up (pressed reads 0)."""
    pin_class = machine.Pin
    made: Pin = pin_class(pin, pin_class.IN, pin_class.PULL_UP)
    return made


def safe_mode_reason(root: str, pressed: "Callable[[], bool]", window_ms: int = SAFE_MODE_WINDOW_MS) -> str:
    """Why to start nothing ("" to start): the marker file, or the button held within window_ms.
    Waits the window (blocking: nothing else runs yet)."""
    if marker_present(root):
        return "the file %s is there (remove it and reset to start normally)" % SAFE_MODE_FILE
    import time

    t0 = ticks_ms()
    while ticks_diff(ticks_ms(), t0) < window_ms:
        if pressed():
            return "the button was held at start"
        time.sleep_ms(POLL_MS)  # MicroPython's time (nothing else runs yet: no loop to yield to)
    return ""


async def watch_long_press(pressed: "Callable[[], bool]", on_long_press: "Callable[[], None]",
                           hold_ms: int = CLEAR_HOLD_MS) -> None:  # fmt: skip
    """Calls on_long_press once each time the button is held hold_ms without a break."""
    since = ticks_ms()  # when the button was last seen released
    fired = False
    while True:
        if not pressed():
            since = ticks_ms()
            fired = False
        elif not fired and ticks_diff(ticks_ms(), since) >= hold_ms:
            fired = True
            on_long_press()
        await sleep_ms(POLL_MS)
