"""`wichtel detect`: scores any timestamp,value CSV (the NAB format) with a Wichtel detector.

Reads and writes one row at a time. The output goes to a temporary file that replaces
the target only when the whole input was good (agent/files.py): bad input leaves nothing
half-written.
"""

import calendar
import csv
import io
import math
import sys
import time
from typing import TextIO

from agent import files
from agent.core.detectors import DETECTORS, SeriesScorer
from agent.core.errors import WichtelError


class DetectInputError(WichtelError):
    """The input CSV cannot be scored; the message names the file and line."""


def parse_time_ms(text: str) -> int:
    """'2014-04-10 07:15:00' (optionally with fractional seconds or a 'T'), taken as UTC,
    or a plain number of seconds since 1970."""
    text = text.strip()
    try:
        return int(float(text) * 1000)
    except ValueError:
        pass
    base, _, frac = text.replace("T", " ").partition(".")
    parsed = time.strptime(base, "%Y-%m-%d %H:%M:%S")
    ms = int((frac + "000")[:3]) if frac else 0
    return calendar.timegm(parsed) * 1000 + ms


def score_csv(src: TextIO, out: TextIO, name: str, detector: str) -> int:
    """Score rows of src into out; returns the number of rows. Raises DetectInputError."""
    rows = csv.reader(src)
    header = next(rows, None)
    if header is None or [h.strip() for h in header[:2]] != ["timestamp", "value"]:
        raise DetectInputError("%s:1: expected the header timestamp,value; got %r" % (name, header))
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["timestamp", "value", "anomaly_score"])
    scorer = SeriesScorer(detector)
    last_t = None
    n = 0
    for line, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) < 2:
            raise DetectInputError("%s:%d: expected timestamp,value; got %r" % (name, line, ",".join(row)))
        try:
            t = parse_time_ms(row[0])
        except (ValueError, OverflowError):
            raise DetectInputError(
                "%s:%d: timestamp %r is neither YYYY-MM-DD HH:MM:SS nor seconds since 1970" % (name, line, row[0])
            ) from None
        try:
            value = float(row[1])
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise DetectInputError("%s:%d: value %r is not a finite number" % (name, line, row[1]))
        if last_t is not None and t < last_t:
            raise DetectInputError("%s:%d: timestamp %s is earlier than the row before" % (name, line, row[0]))
        last_t = t
        writer.writerow([row[0], row[1], "%.6f" % scorer(t, value)])
        n += 1
    if n == 0:
        raise DetectInputError("%s: no data rows after the header" % name)
    return n


def run(path: str, output: str | None, detector: str) -> int:
    """The command: exit 0, or 2 with one line on stderr for bad input."""
    if detector not in DETECTORS:
        print("wichtel: unknown detector %r; known: %s" % (detector, ", ".join(sorted(DETECTORS))), file=sys.stderr)
        return 2
    try:
        with open(path, newline="", encoding="utf-8") as src:
            if output is None:
                n = score_csv(src, sys.stdout, path, detector)
            else:
                # Scores are no personal data: readable by others, as a plain open would make them.
                with files.atomic_writer(output, files.SHARED) as raw:
                    out = io.TextIOWrapper(raw, encoding="utf-8", newline="")
                    n = score_csv(src, out, path, detector)
                    out.flush()
                    out.detach()  # the writer closes the file itself, after syncing it
                print("%s: %d rows scored with %s" % (output, n, detector), file=sys.stderr)
    except OSError as e:
        print("wichtel: %s: %s" % (e.filename or path, e.strerror or e), file=sys.stderr)
        return 2
    except UnicodeDecodeError as e:
        print("wichtel: %s: not UTF-8 text (byte %d)" % (path, e.start), file=sys.stderr)
        return 2
    except (DetectInputError, csv.Error) as e:
        print("wichtel: %s" % e, file=sys.stderr)
        return 2
    return 0
