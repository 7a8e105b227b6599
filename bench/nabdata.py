"""Reads the NAB corpus (data files and combined windows) into rows and window indexes."""

import bisect
import calendar
import csv
import json
import os
import time
from typing import NamedTuple

DEFAULT_ROOT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "shared", "data", "nab"
)


class DataFile(NamedTuple):
    name: str  # e.g. realKnownCause/nyc_taxi.csv
    t_ms: list
    values: list
    windows: list  # (first row, last row)


def _epoch_ms(stamp: str) -> int:
    return calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%d %H:%M:%S")) * 1000


def load(root: str = DEFAULT_ROOT) -> list:
    with open(os.path.join(root, "labels", "combined_windows.json")) as f:
        windows = json.load(f)
    files = []
    for name in sorted(windows):
        stamps, values = [], []
        with open(os.path.join(root, "data", name), newline="") as f:
            rows = csv.reader(f)
            next(rows)
            for row in rows:
                stamps.append(row[0][:19])
                values.append(float(row[1]))
        idx = []
        for start, end in windows[name]:
            # First row at or after the window start, last row at or before its end.
            first = bisect.bisect_left(stamps, start[:19])
            last = bisect.bisect_right(stamps, end[:19]) - 1
            idx.append((first, last))
        files.append(DataFile(name, [_epoch_ms(s) for s in stamps], values, idx))
    return files
