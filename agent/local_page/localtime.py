"""Times on the page in the user's own time zone: a few zones with their summer-time rules,
computed by integer arithmetic (MicroPython has no zoneinfo), and dates as people write them.

The zone is the user's choice on the page (a cookie: it is a display preference of the
browser, not data of the appliance); without one, the profile's market gives it.
"""

import time

# zone id -> (standard offset in minutes east of UTC, summer-time rule: "eu", "us" or "")
ZONES = {
    "Europe/Berlin": (60, "eu"),
    "Europe/London": (0, "eu"),
    "America/New_York": (-300, "us"),
    "America/Chicago": (-360, "us"),
    "America/Denver": (-420, "us"),
    "America/Los_Angeles": (-480, "us"),
    "UTC": (0, ""),
}
# The order the page offers them in (a dict's order differs on MicroPython).
ORDER = ("Europe/Berlin", "Europe/London", "America/New_York", "America/Chicago", "America/Denver",
         "America/Los_Angeles", "UTC")  # fmt: skip
# The zone a market's page starts with.
MARKET_ZONES = {"DE": "Europe/Berlin", "AT": "Europe/Berlin", "CH": "Europe/Berlin", "GB": "Europe/London",
                "US": "America/New_York"}  # fmt: skip
ZONE_NAMES = {
    "Europe/Berlin": ("Germany, Austria, Switzerland (CET/CEST)", "Deutschland, Österreich, Schweiz (MEZ/MESZ)"),
    "Europe/London": ("United Kingdom (GMT/BST)", "Vereinigtes Königreich (GMT/BST)"),
    "America/New_York": ("US Eastern", "USA Ostküste"),
    "America/Chicago": ("US Central", "USA Central Time"),
    "America/Denver": ("US Mountain", "USA Mountain Time"),
    "America/Los_Angeles": ("US Pacific", "USA Westküste"),
    "UTC": ("UTC", "UTC"),
}
_MONTHS = {
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    "de": ("Jan.", "Feb.", "März", "Apr.", "Mai", "Juni", "Juli", "Aug.", "Sep.", "Okt.", "Nov.", "Dez."),
}
# A wall clock before this (2020-01-01) was never set: the page then speaks of time since start.
CLOCK_SET_S = 1_577_836_800


def days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a date in the proleptic Gregorian calendar (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _sunday(y: int, m: int, nth: int) -> int:
    """Day number of the nth Sunday of a month (nth -1: the last one)."""
    if nth > 0:
        first = days_from_civil(y, m, 1)
        return first + (3 - first) % 7 + 7 * (nth - 1)  # 1970-01-04 was a Sunday: day 3
    last = days_from_civil(y + (m == 12), m % 12 + 1, 1) - 1
    return last - (last - 3) % 7


def offset_min(zone: str, utc_s: int) -> int:
    """Minutes east of UTC in `zone` at the moment utc_s (summer time included), by the rules
    in force since 2007 (the EU's since 1996): an appliance shows what it sees now."""
    std, rule = ZONES.get(zone, (0, ""))
    if not rule:
        return std
    y = time.gmtime(utc_s)[0]
    if rule == "eu":  # last Sunday of March to last Sunday of October, at 01:00 UTC
        start = _sunday(y, 3, -1) * 86400 + 3600
        end = _sunday(y, 10, -1) * 86400 + 3600
    else:  # second Sunday of March, 02:00 standard time, to first Sunday of November, 02:00 summer time
        start = _sunday(y, 3, 2) * 86400 + 7200 - std * 60
        end = _sunday(y, 11, 1) * 86400 + 7200 - (std + 60) * 60
    return std + 60 if start <= utc_s < end else std


def zone_for(chosen: str, market: str) -> str:
    """The user's zone if it is one we know, else the market's."""
    return chosen if chosen in ZONES else MARKET_ZONES.get(market, "UTC")


def local_text(utc_s: int, zone: str, lang: str) -> str:
    """'2 Dec 2026, 14:05' / '2. Dez. 2026, 14:05' in the zone; '' for an unset clock."""
    if utc_s < CLOCK_SET_S:
        return ""
    y, mo, d, h, mi = time.gmtime(utc_s + 60 * offset_min(zone, utc_s))[:5]
    month = _MONTHS[lang][mo - 1]
    if lang == "de":
        return "%d. %s %d, %02d:%02d" % (d, month, y, h, mi)
    return "%d %s %d, %02d:%02d" % (d, month, y, h, mi)
