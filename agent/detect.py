"""`wichtel detect`: scores a column of a CSV file (the NAB format, or a user's own export)
with a Wichtel detector, and sums up the stretches at or above a threshold.

Reads and writes one row at a time; the memory it keeps does not grow with the file. The
output goes to a temporary file that replaces the target only when the whole input was
good (agent/files.py): bad input leaves nothing half-written.
"""

import csv
import heapq
import io
import itertools
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TextIO

from agent import files
from agent.core.detectors import DETECTORS, SeriesScorer
from agent.core.errors import ConfigError, WichtelError

# Cells that mean "no value here" (compared in lower case): skipped, counted, not scored.
MISSING_VALUES = frozenset(("", "nan", "na", "n/a", "null", "none", "-"))
MAX_ORDER_WARNINGS = 5  # out-of-order rows named one by one; the rest are counted
MAX_STRETCHES_LISTED = 50  # the summary lists the stretches with the highest peaks; the rest are counted
SNIFFED_DELIMITERS = (",", ";", "\t")  # tried on the header line when --delimiter is not given
EXIT_BAD_INPUT = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what `yes | head` exits with; the reader had enough

_TIME_FORMS = "an ISO 8601 time (YYYY-MM-DD[ HH:MM[:SS[.fff]][Z|+HH:MM]]) nor seconds since 1970"
_EPOCH = re.compile(r"([+-]?)(\d+)(?:\.(\d*))?$")
_ISO = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)"
    r"(?:[Tt ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d+))?)?"
    r" ?(?:([Zz])|([+-])(\d\d)(?::?(\d\d))?)?)?$"
)
_SETTING = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.+)$")
_INTEGER = re.compile(r"[+-]?\d+$")
_DAY_S = 86_400
_MAX_EPOCH_S = 253_402_300_799  # 9999-12-31 23:59:59, where ISO 8601 times end too


class DetectInputError(WichtelError):
    """The input CSV cannot be scored; the message names the file and line."""


class CellError(WichtelError):
    """One cell is not a time or a number (score_csv names its file and line)."""


class DetectUsageError(WichtelError):
    """Options of `wichtel detect` that cannot be used; the message names the option."""


def parse_time_ms(text: str) -> int:
    """Milliseconds since 1970 (UTC) of an ISO 8601 time or a plain number of seconds.

    '2014-04-10 07:15:00', '2014-04-10T07:15', '2014-04-10 07:15:00.250', '2014-04-10',
    with 'Z', '+02:00', '+0200' or '+02' after the time: converted to UTC; without one the
    time is taken as UTC. Fractions beyond milliseconds are cut off. Raises CellError.
    """
    text = text.strip()
    m = _EPOCH.match(text)
    if m:
        if int(m.group(2)) > _MAX_EPOCH_S:
            raise CellError("beyond the year 9999: %r" % text)
        sign = -1 if m.group(1) == "-" else 1
        return sign * (int(m.group(2)) * 1000 + _frac_ms(m.group(3)))
    m = _ISO.match(text)
    if m is None:
        raise CellError("not a time: %r" % text)
    year, month, day, hour, minute, second = (int(g or 0) for g in m.group(1, 2, 3, 4, 5, 6))
    # datetime checks the calendar (no February 30th, no hour 25); naive: no local time zone.
    since = datetime(year, month, day, hour, minute, second) - datetime(1970, 1, 1)
    seconds = since.days * _DAY_S + since.seconds
    if m.group(9):
        off_h, off_m = int(m.group(10)), int(m.group(11) or 0)
        if off_h > 23 or off_m > 59:
            raise CellError("not a UTC offset: %r" % text)
        offset = (off_h * 60 + off_m) * 60
        seconds -= offset if m.group(9) == "+" else -offset
    return seconds * 1000 + _frac_ms(m.group(7))


def _frac_ms(digits: str | None) -> int:
    return int((digits + "000")[:3]) if digits else 0


def parse_value(text: str) -> float | None:
    """A finite number, or None for a missing value (MISSING_VALUES). Raises CellError."""
    text = text.strip()
    if text.lower() in MISSING_VALUES:
        return None
    try:
        value = float(text)
    except ValueError:
        raise CellError("not a number: %r" % text) from None
    if not math.isfinite(value):
        raise CellError("not finite: %r" % text)
    return value


def parse_delimiter(text: str) -> str:
    """--delimiter: one character; tab also as 'tab' or a typed backslash-t."""
    if text.lower() in ("tab", "\\t"):
        return "\t"
    if len(text) != 1 or text in '"\r\n':
        raise DetectUsageError("--delimiter %r: expected one character (e.g. ';'), or tab" % text)
    return text


def sniff_delimiter(header_line: str) -> str:
    """The one of SNIFFED_DELIMITERS the header line has most of; a comma when it has none."""
    best = max(SNIFFED_DELIMITERS, key=header_line.count)  # the first of equals: comma wins a tie
    return best if header_line.count(best) else ","


def parse_settings(specs: list) -> dict:
    """--set NAME=NUMBER options as the detector's settings. Whole numbers stay integers
    (`contexts` sizes an array); a later --set of the same name wins."""
    settings: dict = {}
    for spec in specs:
        m = _SETTING.match(spec.strip())
        if m is None:
            raise DetectUsageError("--set %r: expected NAME=NUMBER, e.g. --set alarm=3.0" % spec)
        name, text = m.group(1), m.group(2).strip()
        try:
            value: float = int(text) if _INTEGER.match(text) else float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise DetectUsageError("--set %s: expected a finite number, got %r" % (name, text))
        settings[name] = value
    return settings


def parse_threshold(text: str) -> float:
    try:
        threshold = float(text)
    except ValueError:
        threshold = math.nan
    if not 0.0 <= threshold <= 1.0:
        raise DetectUsageError("--threshold %r: expected a number from 0 to 1 (an anomaly_score)" % text)
    return threshold


class DetectOptions:
    """What `wichtel detect` was asked to do, checked."""

    __slots__ = ("column", "delimiter", "detector", "settings", "threshold", "time_column")

    def __init__(
        self,
        detector: str = "wichtel",
        settings: dict | None = None,
        time_column: str = "timestamp",
        column: str | None = None,
        delimiter: str | None = None,
        threshold: float | None = None,
    ) -> None:
        self.detector = detector
        self.settings = settings or {}
        self.time_column = time_column
        self.column = column  # None: `value`, or the only other (numeric) column
        self.delimiter = delimiter  # None: sniffed from the header line
        self.threshold = threshold  # None: no summary of stretches


class Stretch:
    """Consecutive scored rows at or above the threshold (missing values neither end nor
    extend one): first and last timestamp as in the file, rows, the peak and where."""

    __slots__ = ("first", "last", "peak", "peak_at", "rows")

    def __init__(self, t_text: str, score: float) -> None:
        self.first = self.last = self.peak_at = t_text
        self.rows = 1
        self.peak = score

    def add(self, t_text: str, score: float) -> None:
        self.last = t_text
        self.rows += 1
        if score > self.peak:
            self.peak, self.peak_at = score, t_text


class StretchFinder:
    """Merges scored rows into stretches at or above a threshold. Keeps the
    MAX_STRETCHES_LISTED with the highest peaks and counts all, so a low threshold on a
    long file costs bounded memory."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.count = 0
        self._open: Stretch | None = None
        self._kept: list = []  # heap of (peak, -order, Stretch): the lowest peak is dropped first

    def add(self, t_text: str, score: float) -> None:
        if score >= self.threshold:
            if self._open is None:
                self._open = Stretch(t_text, score)
            else:
                self._open.add(t_text, score)
        elif self._open is not None:
            self._close()

    def finish(self) -> list:
        """The kept stretches in file order."""
        if self._open is not None:
            self._close()
        return [s for _, _, s in sorted(self._kept, key=lambda k: -k[1])]

    def _close(self) -> None:
        assert self._open is not None
        item = (self._open.peak, -self.count, self._open)
        self.count += 1
        self._open = None
        if len(self._kept) < MAX_STRETCHES_LISTED:
            heapq.heappush(self._kept, item)
        else:
            heapq.heappushpop(self._kept, item)


class ScoreTotals:
    """What one scoring pass saw."""

    __slots__ = ("missing", "out_of_order", "scored", "stretch_count", "stretches")

    def __init__(self) -> None:
        self.scored = 0
        self.missing = 0
        self.out_of_order = 0
        self.stretches: list = []  # the listed ones (StretchFinder.finish)
        self.stretch_count = 0


def _pick_column(header: list, first_row: list | None, options: DetectOptions, delim: str, where: str) -> tuple:
    """(time index, value index) in the header, or DetectInputError naming what is there."""
    shown = delim.join(header)

    def index(column: str) -> int:
        if header.count(column) > 1:
            raise DetectInputError("%s:1: the header %r has the column %r twice" % (where, shown, column))
        return header.index(column)

    if options.time_column not in header:
        raise DetectInputError(
            "%s:1: expected the header %s%s%s (or name the columns with --time-column and --column); got %r: "
            "no column %r" % (where, options.time_column, delim, options.column or "value", shown, options.time_column)
        )
    t_index = index(options.time_column)
    if options.column is not None:
        if options.column not in header:
            raise DetectInputError("%s:1: no column %r in the header %r (--column)" % (where, options.column, shown))
        return t_index, index(options.column)
    if "value" in header and options.time_column != "value":
        return t_index, index("value")
    others = [i for i, h in enumerate(header) if i != t_index]
    if len(others) > 1 and first_row is not None:
        others = [i for i in others if i < len(first_row) and _is_number(first_row[i])]
    if len(others) == 1:
        return t_index, others[0]
    raise DetectInputError(
        "%s:1: which column to score? The header %r has no column 'value' and %s other numeric columns: "
        "name one with --column" % (where, shown, len(others) or "no")
    )


def _is_number(text: str) -> bool:
    try:
        return parse_value(text) is not None
    except CellError:
        return False


def _rows(src: Iterable[str], delimiter: str) -> Iterator[tuple]:
    """(line number, cells) of each row that is not blank, from the header on."""
    reader = csv.reader(src, delimiter=delimiter)
    for row in reader:
        if any(cell.strip() for cell in row):
            yield reader.line_num, row


def score_csv(
    src: TextIO,
    out: TextIO,
    name: str,
    scorer: SeriesScorer,
    options: DetectOptions,
    warn: Callable[[str], None],
) -> ScoreTotals:
    """Score the rows of src into out (timestamp,value,anomaly_score; a missing value gets
    an empty score); warn(line) is told of rows out of order. Raises DetectInputError."""
    header_line = src.readline()
    delimiter = options.delimiter or sniff_delimiter(header_line)
    rows = _rows(itertools.chain([header_line], src), delimiter)
    try:
        _, header = next(rows, (1, None))
        if header is None:
            raise DetectInputError(
                "%s:1: expected the header %s,value; the file is empty" % (name, options.time_column)
            )
        header = [h.strip() for h in header]
        first = next(rows, None)
        t_index, v_index = _pick_column(header, first[1] if first else None, options, delimiter, name)
        need = max(t_index, v_index) + 1
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["timestamp", "value", "anomaly_score"])
        totals = ScoreTotals()
        finder = StretchFinder(options.threshold) if options.threshold is not None else None
        last: tuple | None = None  # (t_ms, text) of the row before
        for line, row in itertools.chain([first] if first else [], rows):
            if len(row) < need:
                raise DetectInputError(
                    "%s:%d: expected %s; got %r" % (name, line, delimiter.join(header[:need]), delimiter.join(row))
                )
            if any(cell.strip() for cell in row[len(header) :]):
                # e.g. a decimal comma in a comma file: reading '12' of '12,5' would be wrong
                raise DetectInputError(
                    "%s:%d: expected %d fields (%s); got %d: %r"
                    % (name, line, len(header), delimiter.join(header), len(row), delimiter.join(row))
                )
            t_text, v_text = row[t_index].strip(), row[v_index].strip()
            try:
                t = parse_time_ms(t_text)
            except (CellError, ValueError, OverflowError):  # datetime: no such day
                raise DetectInputError(
                    "%s:%d: timestamp %r is neither %s" % (name, line, t_text, _TIME_FORMS)
                ) from None
            try:
                value = parse_value(v_text)
            except CellError:
                hint = " (a decimal comma is not read)" if "," in v_text else ""
                raise DetectInputError(
                    "%s:%d: value %r is not a finite number (column %r; a missing value is empty, NaN, NA, null "
                    "or -)%s" % (name, line, v_text, header[v_index], hint)
                ) from None
            if last is not None and t < last[0]:
                totals.out_of_order += 1
                if totals.out_of_order <= MAX_ORDER_WARNINGS:
                    warn(
                        "%s:%d: timestamp %s is earlier than the row before (%s); kept, scored in file order"
                        % (name, line, t_text, last[1])
                    )
            last = (t, t_text)
            if value is None:
                totals.missing += 1
                writer.writerow([t_text, v_text, ""])
                continue
            try:
                score = scorer(t, value)
            except (ArithmeticError, ValueError) as e:
                score = math.nan
                why = str(e)
            else:
                why = "score %r" % score
            if not 0.0 <= score <= 1.0:
                raise DetectInputError(
                    "%s:%d: detector %s failed on value %s (%s); are its --set values sensible?"
                    % (name, line, options.detector, v_text, why)
                )
            score_text = "%.6f" % score
            writer.writerow([t_text, v_text, score_text])
            totals.scored += 1
            if finder is not None:
                finder.add(t_text, float(score_text))  # as written: the summary agrees with the file
    except csv.Error as e:
        raise DetectInputError("%s: %s" % (name, e)) from None
    if totals.scored + totals.missing == 0:
        raise DetectInputError("%s: no data rows after the header" % name)
    if totals.scored == 0:
        raise DetectInputError("%s: no values to score: all %d rows have a missing value" % (name, totals.missing))
    if totals.out_of_order > MAX_ORDER_WARNINGS:
        warn("%s: %d more rows out of order" % (name, totals.out_of_order - MAX_ORDER_WARNINGS))
    if finder is not None:
        totals.stretches = finder.finish()
        totals.stretch_count = finder.count
    return totals


def summary(name: str, options: DetectOptions, totals: ScoreTotals) -> str:
    """The report of --threshold: settings, stretches, totals."""
    chosen = " ".join("%s=%r" % kv for kv in sorted(options.settings.items()))
    lines = [
        "%s: detector %s, %s" % (name, options.detector, "settings " + chosen if chosen else "default settings"),
        "stretches with anomaly_score >= %s: %d" % (options.threshold, totals.stretch_count),
    ]
    width = max([len(t) for s in totals.stretches for t in (s.first, s.last)] + [0])
    for s in totals.stretches:
        lines.append(
            "  %-*s .. %-*s %6d rows, peak %.6f at %s" % (width, s.first, width, s.last, s.rows, s.peak, s.peak_at)
        )
    if totals.stretch_count > len(totals.stretches):
        lines.append(
            "  (%d more with lower peaks not listed; a higher --threshold gives fewer)"
            % (totals.stretch_count - len(totals.stretches))
        )
    lines.append(
        "rows scored %d, missing values skipped %d, out of order %d; stretches %d"
        % (totals.scored, totals.missing, totals.out_of_order, totals.stretch_count)
    )
    return "\n".join(lines) + "\n"


def run(
    path: str,
    output: str | None,
    detector: str,
    settings: list | None = None,
    time_column: str = "timestamp",
    column: str | None = None,
    delimiter: str | None = None,
    threshold: str | None = None,
) -> int:
    """The command: exit 0; 2 with one line on stderr for bad options or input; 141 when
    the reader of stdout went away (`| head`), quietly."""
    try:
        options = DetectOptions(
            detector,
            parse_settings(settings or []),
            time_column,
            column,
            None if delimiter is None else parse_delimiter(delimiter),
            None if threshold is None else parse_threshold(threshold),
        )
        if detector not in DETECTORS:
            raise DetectUsageError("unknown detector %r; known: %s" % (detector, ", ".join(sorted(DETECTORS))))
        try:
            scorer = SeriesScorer(detector, options.settings)
        except ConfigError as e:
            raise DetectUsageError("--set: %s" % e) from None
        except (TypeError, ValueError) as e:  # e.g. contexts=2.5: the detector cannot be built so
            raise DetectUsageError("--set: detector %s cannot use these settings: %s" % (detector, e)) from None
    except DetectUsageError as e:
        print("wichtel: %s" % e, file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return _score_file(path, output, options, scorer)
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE


def _score_file(path: str, output: str | None, options: DetectOptions, scorer: SeriesScorer) -> int:
    def warn(text: str) -> None:
        print("wichtel: warning: %s" % text, file=sys.stderr)

    try:
        # utf-8-sig: a spreadsheet's byte order mark is no part of the first column's name
        with open(path, newline="", encoding="utf-8-sig") as src:
            if output is None:
                totals = score_csv(src, sys.stdout, path, scorer, options, warn)
                sys.stdout.flush()  # a closed pipe is found here, not at exit
            else:
                # Scores are no personal data: readable by others, as a plain open would make them.
                with files.atomic_writer(output, files.SHARED) as raw:
                    out = io.TextIOWrapper(raw, encoding="utf-8", newline="")
                    totals = score_csv(src, out, path, scorer, options, warn)
                    out.flush()
                    out.detach()  # the writer closes the file itself, after syncing it
    except BrokenPipeError:
        raise
    except OSError as e:
        print("wichtel: %s: %s" % (e.filename or path, e.strerror or e), file=sys.stderr)
        return EXIT_BAD_INPUT
    except UnicodeDecodeError as e:
        print("wichtel: %s: not UTF-8 text (byte %d)" % (path, e.start), file=sys.stderr)
        return EXIT_BAD_INPUT
    except DetectInputError as e:
        print("wichtel: %s" % e, file=sys.stderr)
        return EXIT_BAD_INPUT
    missing = ", %d missing values left unscored" % totals.missing if totals.missing else ""
    if options.threshold is not None:
        # The scores went to stdout: the report must not run into them.
        report = sys.stderr if output is None else sys.stdout
        report.write(summary(path, options, totals))
        report.flush()
    elif output is not None:
        print("%s: %d rows scored with %s%s" % (output, totals.scored, options.detector, missing), file=sys.stderr)
    elif missing:
        print("wichtel: %s: %s" % (path, missing[2:]), file=sys.stderr)
    return 0


def _quiet_stdout() -> None:
    """After a closed pipe: stdout goes to /dev/null, so Python's flush at exit finds
    nothing to complain about."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test's capture): nothing is flushed at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
