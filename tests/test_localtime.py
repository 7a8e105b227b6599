"""The page's times in the user's zone: the summer-time rules against the system's zone
database (CPython's zoneinfo), the same offsets on the MicroPython unix port, and dates
as people write them in English and German."""

import datetime
import json
import zoneinfo

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.local_page import localtime
from tests import micropython_unix

_2007 = 1_167_609_600  # the US rules as they are began in 2007
_2037 = 2_114_380_800


@settings(max_examples=2000, deadline=None)
@given(st.sampled_from(localtime.ORDER), st.integers(min_value=_2007, max_value=_2037))
def test_offsets_equal_the_zone_database(zone: str, utc_s: int) -> None:
    assert localtime.offset_min(zone, utc_s) * 60 == _offset(zone, utc_s), (zone, utc_s)


def _offset(zone: str, utc_s: int) -> float:
    off = datetime.datetime.fromtimestamp(utc_s, zoneinfo.ZoneInfo(zone)).utcoffset()
    assert off is not None
    return off.total_seconds()


def test_the_switches_themselves_to_the_second() -> None:
    """Each zone's changes in 2026, and one second before each: the edges hypothesis may miss."""
    start = 1_767_225_600  # 2026-01-01 UTC
    for zone in localtime.ORDER:
        last = _offset(zone, start)
        changes = 0
        for hour in range(1, 365 * 24):
            t = start + 3600 * hour
            now = _offset(zone, t)
            if now == last:
                continue
            lo, hi = t - 3600, t  # the change is within: find its second
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if _offset(zone, mid) == last else (lo, mid)
            assert localtime.offset_min(zone, lo) * 60 == last, (zone, lo)
            assert localtime.offset_min(zone, hi) * 60 == now, (zone, hi)
            last = now
            changes += 1
        assert changes == (0 if zone == "UTC" else 2), zone


def test_dates_read_as_people_write_them() -> None:
    summer = 1_782_990_300  # 2026-07-02 11:05 UTC
    assert localtime.local_text(summer, "Europe/Berlin", "en") == "2 Jul 2026, 13:05"
    assert localtime.local_text(summer, "Europe/Berlin", "de") == "2. Juli 2026, 13:05"
    assert localtime.local_text(summer, "America/Los_Angeles", "en") == "2 Jul 2026, 04:05"
    winter = 1_796_202_300  # 2026-12-02 09:05 UTC
    assert localtime.local_text(winter, "Europe/Berlin", "de") == "2. Dez. 2026, 10:05"
    assert localtime.local_text(winter, "UTC", "en") == "2 Dec 2026, 09:05"
    assert localtime.local_text(1000, "Europe/Berlin", "en") == ""  # a clock never set: no date made up


def test_the_zone_is_the_users_else_the_markets() -> None:
    assert localtime.zone_for("America/Denver", "DE") == "America/Denver"
    assert localtime.zone_for("", "DE") == "Europe/Berlin" and localtime.zone_for("", "US") == "America/New_York"
    assert localtime.zone_for("Mars/Olympus", "GB") == "Europe/London"  # unknown: the market's
    assert localtime.zone_for("", "") == "UTC"


def test_the_same_offsets_on_micropython() -> None:
    instants = [_2007 + k * 7_919_999 for k in range(60)] + [1_774_745_999, 1_774_746_000, 1_792_889_999,
                                                               1_792_890_000]  # fmt: skip
    code = (
        "import json\nfrom agent.local_page import localtime\n"
        "print(json.dumps([[localtime.offset_min(z, t) for t in %r] for z in localtime.ORDER]))\n"
        "print(json.dumps([localtime.local_text(t, 'Europe/Berlin', 'de') for t in %r]))\n" % (instants, instants)
    )
    out = micropython_unix.run(code, heap=256 * 1024).splitlines()
    assert json.loads(out[0]) == [[localtime.offset_min(z, t) for t in instants] for z in localtime.ORDER]
    assert json.loads(out[1]) == [localtime.local_text(t, "Europe/Berlin", "de") for t in instants]
