"""An emulated `ntptime` module: time() answers from a script (FAILURES failing queries
first, then the time), as micropython-lib's ntptime does with a real server.

The unix port's `time.time()` is Unix time, as is what this answers; a board's ntptime
answers in its own epoch, which is what firmware/timesync.py expects.
"""

import time as _time

host = "pool.ntp.org"
timeout = 1
FAILURES = [0]  # queries that fail before one succeeds (a list: the tests change it in place)
OFFSET_S = [0]  # added to the host's time: a clock jump, or an answer before MIN_YEAR
QUERIES = [0]
RAISE: list = [None]  # an exception every query raises (a fault nobody expected), when set


def time_now() -> int:
    return int(_time.time()) + OFFSET_S[0]


def time() -> int:
    QUERIES[0] += 1
    if RAISE[0] is not None:
        raise RAISE[0]
    if FAILURES[0] > 0:
        FAILURES[0] -= 1
        raise OSError(110)  # ETIMEDOUT, as a real query without an answer
    return time_now()


def settime() -> None:
    """A board sets its RTC here; the emulated board keeps the host's clock."""
