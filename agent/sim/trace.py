"""A recorded sensor trace read forward, line by line, on CPython and MicroPython alike:
the readings and program phase a device replays in place of its sensors (golden traces).

The format of agent/replay.py: a header `t_ms,phase,<channel>,...`, then one row per
sample time in increasing order; an empty cell means "not sampled at this time". The
host's replay reads a whole trace into lists with csv; here the file is read one line at
a time, each at most MAX_LINE_BYTES, so a trace of any length costs one line of heap.
The whole file is checked once when it is opened (a bad row is refused at the start,
naming file and line, not half way through a run), then read again as time goes on.
"""

from agent.core.compat import const
from agent.core.errors import ConfigError

MAX_LINE_BYTES = const(512)  # one row: a time, a phase and up to a few dozen readings
MAX_ROWS = const(1_000_000)  # a trace longer than this is not one a device replays
_NAN = float("nan")


class TraceReader:
    """The latest row at or before a time, read forward: phase(t) and value(column, t)."""

    def __init__(self, path: str, phases: tuple = ()) -> None:
        """phases: the program phases the profile names; a row with any other phase is
        refused (none given: any phase is taken). ConfigError naming path and line for a
        file that cannot be read or a row that does not fit the format."""
        self.path = path
        self.allowed_phases = tuple(phases)
        self.columns: list = []
        self.rows = 0
        self.last_t = -1
        f = self._open()
        try:
            self.columns = self._header(f)
            while True:
                row = self._row(f, self.rows + 2, self.last_t)
                if row is None:
                    break
                self.rows += 1
                self.last_t = row[0]
        finally:
            f.close()  # type: ignore[attr-defined]
        if not self.rows:
            self._fail(2, "no rows after the header: nothing to replay")
        self._file: object = None  # opened again by the first read
        self._line = 0
        self._next: tuple | None = None  # the row after the current one (read ahead)
        self._t = -1  # the current row's time (-1: before the first row)
        self.phase_now = ""
        self.latest = [_NAN] * len(self.columns)

    def _fail(self, line: int, message: str) -> None:
        raise ConfigError("%s:%d: %s" % (self.path, line, message))

    def _open(self) -> object:
        try:
            return open(self.path, "rb")
        except OSError as e:
            raise ConfigError("%s: cannot read the trace (%s)" % (self.path, e)) from e

    def _line_of(self, f: object, line: int) -> str | None:
        """The next line without its end, or None at the end of the file."""
        raw = f.readline(MAX_LINE_BYTES + 1)  # type: ignore[attr-defined]
        if not raw:
            return None
        if len(raw) > MAX_LINE_BYTES:
            self._fail(line, "longer than %d bytes; expected a row of the trace" % MAX_LINE_BYTES)
        try:
            text = raw.decode()
        except UnicodeError as e:
            raise ConfigError("%s:%d: not UTF-8 text (%s)" % (self.path, line, e)) from e
        return str(text.rstrip("\r\n"))

    def _header(self, f: object) -> list:
        text = self._line_of(f, 1)
        cells = text.split(",") if text is not None else []
        if len(cells) < 3 or cells[0] != "t_ms" or cells[1] != "phase":
            self._fail(1, "expected the header t_ms,phase,<channel>,... ; got %r" % (text,))
        return cells[2:]

    def _row(self, f: object, line: int, after: int) -> tuple | None:
        """(t_ms, phase, values) of the next row, checked (its time must be after `after`);
        None at the end of the file."""
        text = self._line_of(f, line)
        if text is None:
            return None
        if line - 1 > MAX_ROWS:
            self._fail(line, "more than %d rows" % MAX_ROWS)
        cells = text.split(",")
        if len(cells) != len(self.columns) + 2:
            self._fail(line, "expected %d cells, got %d" % (len(self.columns) + 2, len(cells)))
        try:
            t = int(cells[0])
        except ValueError:
            self._fail(line, "t_ms %r is not a whole number of milliseconds" % cells[0])
        if t <= after:
            self._fail(line, "t_ms %d is not after the previous row's %d" % (t, after))
        phase = cells[1]
        if self.allowed_phases and phase not in self.allowed_phases:
            known = ", ".join(self.allowed_phases)
            self._fail(line, "phase %r is not one of the profile's phases (%s)" % (phase, known))
        values: list = []
        for i, cell in enumerate(cells[2:]):
            if cell == "":
                values.append(None)
                continue
            try:
                value = float(cell)
            except ValueError:
                value = _NAN
            # NaN is the only value not equal to itself; inf minus inf is NaN.
            if value != value or value - value != 0:
                self._fail(line, "%s %r is not a finite number" % (self.columns[i], cell))
            values.append(value)
        return t, phase, values

    def end_ms(self) -> int:
        """The time just after the last row: a run of this long replays every row."""
        return self.last_t + 1

    def _advance(self, t_ms: int) -> None:
        """Take every row at or before t_ms (times asked for only rise)."""
        if self._file is None:
            self._file = self._open()
            self._header(self._file)
            self._line = 1
            self._next = self._row(self._file, 2, -1)
        while self._next is not None and self._next[0] <= t_ms:
            t, phase, values = self._next
            self._t = t
            self.phase_now = phase
            for i, value in enumerate(values):
                if value is not None:
                    self.latest[i] = value
            self._line += 1
            self._next = self._row(self._file, self._line + 1, t)
            if self._next is None:
                self._file.close()  # type: ignore[attr-defined]

    def close(self) -> None:
        """Let go of the file (it is closed anyway once its last row was read)."""
        if self._file is not None:
            self._file.close()  # type: ignore[attr-defined]
        self._next = None

    def phase(self, t_ms: int) -> str:
        """The phase of the latest row at or before t_ms ("" before the first)."""
        self._advance(t_ms)
        return self.phase_now

    def value(self, index: int, t_ms: int) -> float:
        """The latest value of column index at or before t_ms (NaN before the first)."""
        self._advance(t_ms)
        return self.latest[index]

    def driver(self, channel: str) -> "TraceDriver":
        """The driver of one channel; ConfigError when the trace has no column for it."""
        if channel not in self.columns:
            self._fail(1, "no column for channel %r (columns: %s)" % (channel, ", ".join(self.columns)))
        return TraceDriver(self, self.columns.index(channel))


class TraceDriver:
    """A channel driver that gives the latest recorded value of its column."""

    def __init__(self, reader: TraceReader, index: int) -> None:
        self.reader = reader
        self.index = index

    def read(self, t_ms: int) -> float:
        return self.reader.value(self.index, t_ms)
