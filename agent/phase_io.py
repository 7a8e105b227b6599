"""The Pi's phase sources (a host adapter): the controller's GPIO lines through libgpiod, its
UART through a tty device file read without blocking; rules need no I/O of their own.

What the phase is, is decided in agent/core/phases.py; here are only the reads. env holds
what the host hands in and tests replace: "open_gpio_lines" (chip, offsets, pull) -> an
object whose levels() gives the lines' levels (OSError when it cannot), and "report" (where
the source's lines about trouble go; standard error by default).
"""

import os
import sys
import termios
import tty

from agent.core import limits, phases
from agent.core.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from agent.core.interfaces import PhaseSource

_READ_CHUNK = 256  # bytes per os.read; PHASE_UART_READ_MAX bounds one look


def make(profile: dict, env: dict | None = None) -> "PhaseSource":
    """The phase source of a validated profile's phase_source, on a Pi."""
    env = env or {}
    source = profile["phase_source"]
    if source is None:
        raise ConfigError("the profile has no phase_source; its phase comes from a simulator or a trace")
    report = env.get("report") or _to_stderr
    kind = phases.kind_of(source)
    if kind == "rules":
        return phases.RulePhases(source, profile["phases"], report)
    if kind == "gpio":
        return GpioPhaseSource(source, profile["phases"], env.get("open_gpio_lines") or open_gpiod_lines, report)
    return TtyPhaseSource(source, profile["phases"], report)


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr)


class GpioPhaseSource:
    """The phase from the controller's GPIO lines: read at every look (the pipeline looks once
    per sampling tick), decoded and debounced by phases.CodePhases. A read that fails
    (OSError) counts as none; the lines are opened again at the next look."""

    def __init__(self, source: dict, phase_list: list, opener: "Callable[..., object]",
                 report: "Callable[[str], None]") -> None:  # fmt: skip
        self.core = phases.CodePhases(source, phase_list, report)
        gpio = source["gpio"]
        self.chip = gpio["chip"]
        self.offsets = list(gpio["lines"])
        self.pull = gpio["pull"]
        self.opener = opener
        self.lines: object = None

    def phase(self, t_ms: int) -> str:
        levels = None
        try:
            if self.lines is None:
                self.lines = self.opener(self.chip, self.offsets, self.pull)
            levels = list(self.lines.levels())  # type: ignore[attr-defined]
        except OSError:
            self.lines = None
        return self.core.phase_at(t_ms, levels)


class _GpiodLines:
    """Input lines requested through libgpiod 2's Python bindings."""

    def __init__(self, request: object, offsets: list) -> None:
        self.request = request
        self.offsets = offsets

    def levels(self) -> list:
        values = self.request.get_values(self.offsets)  # type: ignore[attr-defined]
        return [1 if int(v.value) else 0 for v in values]


def open_gpiod_lines(chip: str, offsets: list, pull: str) -> _GpiodLines:
    """The lines as inputs through libgpiod (the `gpiod` package, libgpiod 2); ConfigError
    when the bindings are not installed, OSError when the chip cannot be opened."""
    try:
        import gpiod  # type: ignore[import-not-found, unused-ignore]
        from gpiod.line import Bias, Direction  # type: ignore[import-not-found, unused-ignore]
    except ImportError as e:
        raise ConfigError("phase_source gpio: libgpiod's Python bindings (pip install gpiod) are not installed") from e
    bias = {"none": Bias.AS_IS, "up": Bias.PULL_UP, "down": Bias.PULL_DOWN}[pull]
    path = chip if chip.startswith("/") else "/dev/" + chip
    settings = gpiod.LineSettings(direction=Direction.INPUT, bias=bias)
    request = gpiod.request_lines(path, consumer="wichtel-phase", config={tuple(offsets): settings})
    return _GpiodLines(request, offsets)


class TtyPhaseSource:
    """The phase from the controller's UART lines, read from a tty device file (the Pi's
    /dev/serial0, a USB adapter's /dev/ttyUSB0) in raw mode at the profile's baud rate,
    without blocking: each look takes what has arrived, at most limits.PHASE_UART_READ_MAX
    bytes (the rest waits for the next look), and phases.LinePhases parses it. A device
    that cannot be opened or read (unplugged) is opened again at the next look; meanwhile
    the controller counts as silent."""

    def __init__(self, source: dict, phase_list: list, report: "Callable[[str], None]") -> None:
        self.core = phases.LinePhases(source, phase_list, report)
        uart = source["uart"]
        self.device = uart["device"]
        self.speed = getattr(termios, "B%d" % uart["baud"], None)
        if self.speed is None:
            raise ConfigError("phase_source uart: baud %d is not a rate this host's tty supports" % uart["baud"])
        self.fd = -1
        self.read_faults = 0

    def _open(self) -> None:
        fd = os.open(self.device, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        try:
            tty.setraw(fd)
            attrs = termios.tcgetattr(fd)
            attrs[4] = attrs[5] = self.speed
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
        except (OSError, termios.error):
            os.close(fd)
            raise
        self.fd = fd

    def _close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def take(self, t_ms: int) -> None:
        """Read what has arrived (bounded) and hand it to the parser. A device that fails to
        open or to read, or reaches its end (the other side is gone), is closed and counted
        (read_faults); the next look opens it again."""
        taken = 0
        while taken < limits.PHASE_UART_READ_MAX:
            data = self._read(min(_READ_CHUNK, limits.PHASE_UART_READ_MAX - taken))
            if data is None:
                return
            if not data:
                self.read_faults += 1
                self._close()
                return
            taken += len(data)
            self.core.feed(t_ms, data)

    def _read(self, n: int) -> bytes | None:
        """Up to n bytes; None when nothing waits; b"" when the device failed or ended."""
        try:
            if self.fd < 0:
                self._open()
            return os.read(self.fd, n)
        except BlockingIOError:
            return None
        except (OSError, termios.error):
            return b""

    def phase(self, t_ms: int) -> str:
        self.take(t_ms)
        return self.core.phase(t_ms)

    def close(self) -> None:
        self._close()
