"""A progress bar with rate and ETA for long factory runs, on stderr.

The arithmetic (line) is separate from the writing, so it is checked without a clock.
"""

import sys
import time
from typing import TextIO

WIDTH = 30
_PLAIN_STEPS = 10  # without a terminal: one line per tenth of the run


def eta_text(secs: float) -> str:
    seconds = round(secs)
    if seconds >= 3600:
        return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
    if seconds >= 60:
        return "%dm%02ds" % (seconds // 60, seconds % 60)
    return "%ds" % seconds


def line(done: int, total: int, elapsed: float, label: str = "devices") -> str:
    """'[#######.......] 250/1000 25%  83.1 devices/s  ETA 9s'."""
    frac = done / total if total else 1.0
    filled = int(WIDTH * frac)
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = eta_text((total - done) / rate) if rate > 0 else "?"
    return "[%s%s] %d/%d %3d%%  %.1f %s/s  ETA %s" % (
        "#" * filled,
        "." * (WIDTH - filled),
        done,
        total,
        int(frac * 100),
        rate,
        label,
        eta,
    )


class ProgressBar:
    """Redrawn in place on a terminal; on a pipe, a line per tenth so logs stay short."""

    def __init__(self, total: int, stream: TextIO | None = None, label: str = "devices") -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.label = label
        self.start = time.monotonic()
        self.tty = self.stream.isatty()
        self._next_plain = 0

    def update(self, done: int) -> None:
        text = line(done, self.total, time.monotonic() - self.start, self.label)
        if self.tty:
            self.stream.write("\r" + text)
            self.stream.flush()
        elif done >= self._next_plain or done == self.total:
            self.stream.write(text + "\n")
            self._next_plain = done + max(1, self.total // _PLAIN_STEPS)

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
