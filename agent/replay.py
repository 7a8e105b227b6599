"""Replays a recorded trace (CSV) through the same driver interface as real sensors.

Format: a header `t_ms,phase,<channel>,...`, then one row per sample time in
increasing order; an empty cell means "not sampled at this time".
"""

import csv
import math

from agent.core.errors import WichtelError


class TraceError(WichtelError):
    """A trace file cannot be replayed; the message names file and line."""


class Trace:
    """A whole trace in memory, columns as lists (traces are bounded by max_rows)."""

    def __init__(self, path: str, max_rows: int = 2_000_000, phases: tuple = ()) -> None:
        """phases: the program phases the profile names; a row with any other phase is refused
        (none given: any phase is taken)."""
        self.path = path
        self.allowed_phases = tuple(phases)
        self.times: list = []
        self.phases: list = []
        self.columns: dict = {}
        try:
            with open(path, newline="", encoding="utf-8") as f:
                self._read(csv.reader(f), max_rows)
        except OSError as e:
            raise TraceError(path + ": cannot read the trace: " + (e.strerror or str(e))) from e
        except (UnicodeDecodeError, csv.Error) as e:
            raise TraceError(path + ": not a CSV text file: " + str(e)) from e

    def _fail(self, line: int, message: str) -> None:
        raise TraceError(self.path + ":" + str(line) + ": " + message)

    def _read(self, rows: object, max_rows: int) -> None:
        header = next(rows, None)  # type: ignore[call-overload]
        if header is None or header[:2] != ["t_ms", "phase"] or len(header) < 3:
            self._fail(1, "expected the header t_ms,phase,<channel>,... ; got " + repr(header))
        names = header[2:]
        for name in names:
            self.columns[name] = []
        last_t = -1
        for row in rows:  # type: ignore[attr-defined]
            line = len(self.times) + 2
            if len(self.times) >= max_rows:
                self._fail(line, "more than " + str(max_rows) + " rows")
            if len(row) != len(header):
                self._fail(line, "expected " + str(len(header)) + " cells, got " + str(len(row)))
            try:
                t = int(row[0])
            except ValueError:
                self._fail(line, "t_ms " + repr(row[0]) + " is not a whole number of milliseconds")
            if t <= last_t:
                self._fail(line, "t_ms " + str(t) + " is not after the previous row's " + str(last_t))
            last_t = t
            if self.allowed_phases and row[1] not in self.allowed_phases:
                self._fail(line, "phase " + repr(row[1]) + " is not one of the profile's phases ("
                           + ", ".join(self.allowed_phases) + ")")  # fmt: skip
            self.times.append(t)
            self.phases.append(row[1])
            for name, cell in zip(names, row[2:], strict=True):
                if cell == "":
                    self.columns[name].append(None)
                    continue
                try:
                    value = float(cell)
                except ValueError:
                    value = math.nan
                if not math.isfinite(value):
                    self._fail(line, name + " " + repr(cell) + " is not a finite number")
                self.columns[name].append(value)
        if not self.times:
            self._fail(2, "no rows after the header: nothing to replay")

    def end_ms(self) -> int:
        """The time just after the last row: a run of this long replays every row."""
        return self.times[-1] + 1 if self.times else 0

    def cursor(self) -> "TraceCursor":
        return TraceCursor(self)


class TraceCursor:
    """Reads a trace forward in time: the latest row at or before t."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.i = -1

    def seek(self, t_ms: int) -> int:
        times = self.trace.times
        while self.i + 1 < len(times) and times[self.i + 1] <= t_ms:
            self.i += 1
        return self.i

    def phase(self, t_ms: int) -> str:
        i = self.seek(t_ms)
        return self.trace.phases[i] if i >= 0 else ""


class ReplayDriver:
    """A channel driver that returns the latest recorded value of its column."""

    def __init__(self, cursor: TraceCursor, channel: str) -> None:
        if channel not in cursor.trace.columns:
            raise TraceError(cursor.trace.path + ": no column for channel " + repr(channel))
        self.cursor = cursor
        self.column = cursor.trace.columns[channel]
        self.scanned = -1
        self.last = math.nan

    def read(self, t_ms: int) -> float:
        """The latest value recorded for this channel at or before t_ms (NaN before the first)."""
        i = self.cursor.seek(t_ms)
        while self.scanned < i:
            self.scanned += 1
            value = self.column[self.scanned]
            if value is not None:
                self.last = value
        return self.last
