"""The usage of one consumable: learned from closed days (the household's pace, weekly
rhythm, spread, vacations, long memory of surges) and what it predicts (empty date, risk).

The tracker (consumables.py) feeds a UsageModel closed days and asks forecast() and
p_run_out() with its level; no level, no events, no I/O here. Fixed state: a ring of
days, seven factors, a few numbers. Learning and prediction share one module: each module
more costs about 290 bytes of a board's heap (the unix port, .mpy; bench/micropython.py).
"""

import math
from array import array

from agent.core import limits
from agent.core.compat import const
from agent.core.errors import InputError, StateError

_ABSENT = -1.0  # a day of the history that does not count: a vacation, or not yet seen
_BLOCKS = const(6)  # weeks whose median sets the usual pace (a change of program shows after three)
_SHRINK = 2.0  # a weekday's factor starts from the overall pace, worth this many days
# The long memory of surges: how often a window of lead-time length needed more than
# the rhythm, in bins of 0.25 times the rhythm from 1.0 (the last bin holds all above).
_TAIL_BINS = const(16)
_TAIL_KEEP = 1.0 - 1.0 / 365  # a window's weight after one more day: about a year's memory
_TAIL_FROM_DAY = const(14)  # windows count once two weeks have taught the rhythm
# Guests come now and then, whatever a household has shown so far: a prior that
# _PRIOR_SHARE of the windows need more than the rhythm, and that the share needing x
# times the rhythm falls by e for every _PRIOR_SCALE of x (about four stays a year, each
# touching five or six windows, that double or triple the use, on days that may be busy
# anyway: 1.5% of windows need 2.5 times the rhythm, 0.2% need 4.7 times). It is a floor:
# the household's own memory can raise the share above it, not lower it, and while that
# memory holds few windows the prior weighs as _PRIOR_WINDOWS of them.
_PRIOR_WINDOWS = 120.0
_PRIOR_SHARE = 0.06
_PRIOR_SCALE = 1.1


class UsageModel:
    """Daily usage learned from the last limits.CONSUMABLE_HISTORY_DAYS closed days, kept in a ring.

    From the ring, at each closed day: the usual daily pace (median of weekly means,
    so guests and a change of program weigh as they should), a factor per weekday, the
    day-to-day spread, and the demand of every past window of a few days relative to
    what the rhythm expected (guests included: that is the household's own tail).
    A run of unused days that would be very unlikely for this household on those
    weekdays is a vacation: the whole run leaves the history. Bounded state: the ring,
    seven factors, a few numbers.
    """

    def __init__(self, window: int = 3) -> None:
        self.window = max(1, window)  # days of the windows the long memory of surges keeps
        self.tail = array("f", [0.0] * _TAIL_BINS)  # decayed count of windows per ratio bin
        self.seen = 0.0  # decayed count of all windows
        self.hist = array("f", [_ABSENT] * limits.CONSUMABLE_HISTORY_DAYS)
        self.days = 0  # closed days seen; the newest is at hist[(days - 1) % len]
        self.last_day = -1
        self.zero_run = 0
        self.mean = 0.0
        self.var = 0.0
        self.week = array("f", [1.0] * 7)
        self.first_use = 0.3  # time of day (fraction) of the first and last use
        self.last_use = 0.9
        self._ratios = array("f")  # window demand / expected, sorted; for _ratio_len days
        self._ratio_len = 0
        self._bound = 0.0  # ratio_bound(_bound_len); both forgotten when a day closes
        self._bound_len = 0

    # -- learning ---------------------------------------------------------------------
    def add_day(self, day: int, used: float, first: float = -1.0, last: float = -1.0) -> None:
        """A closed day: what it used, and (if known) when the first and last use were,
        as fractions of the day. Days not reported in between (the device was off) do
        not count; a day number from a clock that started again follows the last day."""
        if used < 0:
            raise InputError("usage of a day cannot be negative, got " + repr(used))
        n = len(self.hist)
        if self.last_day >= 0 and day > self.last_day + 1:
            for _ in range(min(day - self.last_day - 1, n)):
                self.hist[self.days % n] = _ABSENT
                self.days += 1
        self.hist[self.days % n] = used
        self.days += 1
        self.last_day = day
        if used == 0:
            self.zero_run += 1
            if self.on_vacation():
                for k in range(min(self.zero_run, n)):
                    self.hist[(self.days - 1 - k) % n] = _ABSENT
        else:
            self.zero_run = 0
        if used > 0 and 0 <= first <= last <= 1:
            self.first_use += 0.1 * (first - self.first_use)
            self.last_use += 0.1 * (last - self.last_use)
        self._learn()
        self._remember_window()
        self._ratio_len = 0
        self._bound_len = 0

    def _remember_window(self) -> None:
        """Age the long memory by a day and add the window that ends today (if all its
        days count), as its demand over what the rhythm expected."""
        for b in range(_TAIL_BINS):
            self.tail[b] *= _TAIL_KEEP
        self.seen *= _TAIL_KEEP
        if self.days < _TAIL_FROM_DAY or self.mean <= 0:
            return
        used = 0.0
        exp = 0.0
        for k in range(self.window):
            v = self._at(k)
            if v < 0:
                return
            used += v
            exp += self.expected(self.last_day - k)
        if exp <= 0:
            return
        self.seen += 1.0
        r = used / exp
        if r >= 1.0:
            self.tail[min(_TAIL_BINS - 1, int((r - 1.0) * 4))] += 1.0

    def surge_share(self, x: float) -> float:
        """Share of lead-time windows that needed at least `x` times the rhythm: the
        household's long memory, with the prior while it has seen few windows."""
        if x <= 1.0:
            return 1.0
        own = 0.0
        # Bins wholly below x add nothing: start at the bin that holds x (one before, so
        # the sum is the same, added in the same order); beyond the last bin, none.
        first = min(_TAIL_BINS, int((x - 1.0) * 4.0)) - 1 if x < 0.25 * _TAIL_BINS + 1.75 else _TAIL_BINS
        for b in range(max(0, first), _TAIL_BINS):
            lo = 1.0 + 0.25 * b
            hi = lo + 0.25 if b < _TAIL_BINS - 1 else lo + 1.0
            if x <= lo:
                own += self.tail[b]
            elif x < hi:
                own += self.tail[b] * (hi - x) / (hi - lo)
        prior = _PRIOR_SHARE * math.exp(-(x - 1.0) / _PRIOR_SCALE)
        # A household is not taken to have fewer guests than the prior, only more.
        return max(prior, (own + _PRIOR_WINDOWS * prior) / (self.seen + _PRIOR_WINDOWS))

    def _at(self, k: int) -> float:
        """Use of the day k days before the newest (0: the newest)."""
        n = len(self.hist)
        return self.hist[(self.days - 1 - k) % n] if k < min(self.days, n) else _ABSENT

    def _newest_first(self, span: int) -> list:
        h = self.hist
        n = len(h)
        m = min(span, self.days, n)
        top = (self.days - 1) % n
        if m <= top + 1:
            vals = list(h[top + 1 - m : top + 1])
        else:  # the ring wraps
            vals = list(h[n - (m - top - 1) :]) + list(h[: top + 1])
        vals.reverse()
        return vals

    def _learn(self) -> None:
        vals = self._newest_first(7 * _BLOCKS)
        span = len(vals)
        blocks = []
        total = 0.0
        count = 0
        sums = [0.0] * 7  # per weekday, for the rhythm
        counts = [0] * 7
        wd = self.last_day % 7
        for b in range(0, span, 7):
            s = 0.0
            c = 0
            for v in vals[b : b + 7]:
                if v >= 0:
                    s += v
                    c += 1
                    sums[wd] += v
                    counts[wd] += 1
                wd = wd - 1 if wd else 6
            total += s
            count += c
            if c >= 4:
                blocks.append(s / c)
        if count == 0:
            return
        if blocks:
            blocks.sort()
            m = len(blocks)
            self.mean = blocks[m // 2] if m % 2 else 0.5 * (blocks[m // 2 - 1] + blocks[m // 2])
        else:
            self.mean = total / count
        if self.mean <= 0:
            return
        e = [(sums[w] + _SHRINK * self.mean) / (counts[w] + _SHRINK) for w in range(7)]
        norm = sum(e) / 7
        for w in range(7):
            self.week[w] = e[w] / norm
        usual = [self.mean * self.week[w] for w in range(7)]
        sq = 0.0
        wd = self.last_day % 7
        for v in vals:
            if v >= 0:
                d = v - usual[wd]
                sq += d * d
            wd = wd - 1 if wd else 6
        self.var = sq / count

    def on_vacation(self) -> bool:
        """Unused for longer than this household would go by chance (p < 1%), judged on
        how often it leaves each of those weekdays unused."""
        if self.days < 7 or self.zero_run < 3:
            return False
        zeros = [0] * 7
        seen = [0] * 7
        for k in range(self.zero_run, min(self.days, len(self.hist))):
            v = self._at(k)
            if v >= 0:
                wd = (self.last_day - k) % 7
                seen[wd] += 1
                zeros[wd] += v == 0
        p = 1.0
        for k in range(min(self.zero_run, len(self.hist))):  # bounded: p is tiny long before
            wd = (self.last_day - k) % 7
            p *= (zeros[wd] + 0.5) / (seen[wd] + 1.0)
        return p < 0.01

    # -- expectations -------------------------------------------------------------------
    def expected(self, day: int) -> float:
        return self.mean * self.week[day % 7]

    def pace(self) -> float:
        """The last two days' use against what the rhythm expected (1: as usual)."""
        used = 0.0
        exp = 0.0
        for k in range(2):
            v = self._at(k)
            if v >= 0:
                used += v
                exp += self.expected(self.last_day - k)
        return used / exp if exp > 0 else 1.0

    def rate_ahead(self, day: int, days: float) -> float:
        """Expected use over the next `days` days after `day`, by the weekday rhythm."""
        total = 0.0
        k = 0
        while k + 1 <= days:
            total += self.expected(day + 1 + k)
            k += 1
        if days > k:
            total += (days - k) * self.expected(day + 1 + k)
        return total

    def ratio_bound(self, days: int) -> float:
        """At least the largest of window_ratios(days), for a fraction of its cost: the
        `days` busiest days of the history over the quietest run of `days` weekdays the
        rhythm knows (with room for rounding). Cached until the next closed day."""
        if self._bound_len == days:
            return self._bound
        busiest = sorted(self.hist)
        top = 0.0
        for k in range(1, min(days, len(busiest)) + 1):
            top += max(0.0, busiest[-k])
        quiet = math.inf
        for start in range(7):
            w = 0.0
            for j in range(days):
                w += self.week[(start + j) % 7]
            quiet = min(quiet, w)
        exp = self.mean * quiet
        self._bound = top / exp * (1.0 + 1e-5) if exp > 0 else math.inf
        self._bound_len = days
        return self._bound

    def window_ratios(self, days: int) -> array:
        """Demand of every past run of `days` days (no vacation in it) over what the
        rhythm expects for those weekdays, sorted. Cached until the next closed day."""
        if self._ratio_len == days:
            return self._ratios
        vals = self._newest_first(len(self.hist))
        ratios = []
        s = 0.0
        e = 0.0
        run = 0  # days since the last absent one, newest first
        wd = self.last_day % 7
        for k in range(len(vals)):
            v = vals[k]
            if v < 0:
                s, e, run = 0.0, 0.0, 0
            else:
                s += v
                e += self.mean * self.week[wd]
                run += 1
                if run > days:
                    old = vals[k - days]
                    s -= old
                    e -= self.mean * self.week[(wd + days) % 7]
                if run >= days and e > 0:
                    ratios.append(s / e)
            wd = (wd - 1) % 7
        ratios.sort()
        self._ratios = array("f", ratios)
        self._ratio_len = days
        return self._ratios

    # -- state ------------------------------------------------------------------------
    def to_state(self) -> list:
        n = len(self.hist)
        newest_first = [self._at(k) for k in range(min(self.days, n))]
        return [self.days, self.last_day, self.zero_run, self.first_use, self.last_use, newest_first,
                self.window, self.seen, list(self.tail)]  # fmt: skip

    @classmethod
    def from_state(cls, s: object, window: int = 3) -> "UsageModel":
        """A model from to_state(); a state without the long memory of surges (saved by
        an earlier version) keeps its history and starts that memory afresh."""
        m = cls(window)
        try:
            vals = list(s)  # type: ignore[call-overload]
            days, last_day, zero_run = int(vals[0]), int(vals[1]), int(vals[2])
            first, last = float(vals[3]), float(vals[4])
            hist = [float(x) for x in vals[5]]
            ok = len(vals) in (6, 9) and len(hist) == min(days, len(m.hist)) and 0 <= zero_run <= days
            ok = ok and last_day >= -1 and 0 <= first <= last <= 1 and all(x >= 0 or x == _ABSENT for x in hist)
            if ok and len(vals) == 9 and int(vals[6]) == m.window:  # windows of another length are not kept
                seen = float(vals[7])
                tail = [float(x) for x in vals[8]]
                ok = len(tail) == _TAIL_BINS and min(tail) >= 0 and sum(tail) <= seen + 1e-3 * (seen + 1)
                ok = ok and seen <= 366.0
                if ok:
                    m.seen = seen
                    for b in range(_TAIL_BINS):
                        m.tail[b] = tail[b]
        except (TypeError, ValueError, IndexError, OverflowError):
            ok = False
        if not ok:
            raise StateError("usage model state is not valid: " + repr(s)[:80])
        n = len(m.hist)
        for k in range(len(hist)):
            m.hist[(days - 1 - k) % n] = hist[k]
        m.days, m.last_day, m.zero_run, m.first_use, m.last_use = days, last_day, zero_run, first, last
        m._learn()
        return m


# -- what the learned usage predicts: the empty date and the chance of running out --------
_Z90 = 1.2816  # 90% one-sided normal quantile: the band is the 10%..90% range
_MAX_HORIZON_DAYS = const(730)  # the forecast looks this far; an empty date beyond is -1, as while learning
_BURST = 1.3  # the last two days' pace above the rhythm by this much: guests are here


def normal_cdf(x: float) -> float:
    """P(Z <= x) for a standard normal Z (Abramowitz & Stegun 7.1.26, error < 1.5e-7).

    Written out because math.erf is not built into every MicroPython port.
    """
    z = abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * math.exp(-z * z)
    return 0.5 * (1.0 + erf) if x >= 0 else 0.5 * (1.0 - erf)


class Forecast:
    """When a consumable runs empty: expected day, a 10%..90% band, and whether to reorder."""

    __slots__ = ("days_left", "early", "late", "p_out_in_lead", "reorder")

    def __init__(self, days_left: float, early: float, late: float, p_out_in_lead: float, reorder: bool) -> None:
        self.days_left = days_left
        self.early = early
        self.late = late
        self.p_out_in_lead = p_out_in_lead
        self.reorder = reorder


def forecast(level: float, usage: UsageModel, today: int, lead_days: float, risk: float) -> Forecast:
    """Days from the end of `today` until empty by the learned rhythm (expected, and a
    10%..90% band), and whether to reorder now: when the chance of running out before a
    delivery ordered now would arrive reaches the user's risk. Within the day it runs
    out, the moment falls between the household's usual first and last use."""
    if usage.mean <= 0 or usage.days < 3:
        return Forecast(-1.0, -1.0, -1.0, 0.0, False)
    crossing = [-1.0, -1.0, -1.0]  # expected, early (upper use), late (lower use)
    prev = [0.0, 0.0, 0.0]
    mean_used = 0.0
    var_used = 0.0
    span = max(0.0, usage.last_use - usage.first_use)
    k = 0
    while crossing[2] < 0 and k < _MAX_HORIZON_DAYS:
        mean_used += usage.expected(today + k + 1)
        var_used += usage.var
        sd = math.sqrt(var_used + (0.1 * mean_used) ** 2)
        for i, used in enumerate((mean_used, mean_used + _Z90 * sd, mean_used - _Z90 * sd)):
            if crossing[i] < 0 and used >= level:
                step = used - prev[i]
                part = (level - prev[i]) / step if step > 0 else 0.0
                crossing[i] = k + usage.first_use + span * part
            prev[i] = used
        k += 1
    p_lead = p_run_out(level, usage, lead_days, today)
    return Forecast(crossing[0], crossing[1], crossing[2], p_lead, p_lead >= risk)


def _tail(x: float) -> float:
    return 1.0 - normal_cdf(x)


def p_run_out(level: float, usage: UsageModel, days: float, today: int = 0, used_today: float = 0.0) -> float:
    """Chance that the next `days` days need more than `level`.

    The largest of: the household's own past windows of that length in the history,
    scaled to what the rhythm expects now, each smoothed by the uncertainty of the pace
    (a bootstrap with a kernel); a normal approximation of day-to-day spread, where,
    while the last two days ran well above the rhythm (guests), that pace carries on;
    and the long memory of surges with its prior of guests. What today has used beyond
    a usual day counts against the rest of today too. A counted level is passed at its
    worst (the dose tolerance taken off) by the tracker."""
    if usage.mean <= 0 or usage.days < 3:
        return 0.0
    excess = max(0.0, used_today - usage.expected(today))
    ahead = usage.rate_ahead(today, days)  # by the rhythm, before any burst carried on
    mean = ahead
    pace = usage.pace()
    if pace >= _BURST:
        mean *= min(pace, 4.0)
    total = mean + excess
    sd = math.sqrt(usage.var * days + (0.1 * total) ** 2)
    if sd <= 0:
        return 1.0 if total >= level else 0.0
    p = _tail((level - total) / sd)
    wdays = max(1, math.ceil(days))
    base = ahead
    kern = 0.05 * base or 1e-9
    # Most of the time even the largest window is far below the level and adds nothing;
    # a cheap bound on it says so without sorting every window each day.
    far = (level - excess - usage.ratio_bound(wdays) * base) / kern > 6
    ratios = () if far else usage.window_ratios(wdays)
    n = len(ratios)
    if n >= 7:
        # Windows far below the level add nothing: walk down from the largest.
        s = 0.0
        i = n - 1
        while i >= 0:
            x = (level - excess - ratios[i] * base) / kern
            if x > 6:
                break
            s += _tail(x)
            i -= 1
        p = max(p, s / n)
    # Guests come on any day: a surge multiplies the usual pace (or the coming days'
    # rhythm, when that is more), not only the days the household usually uses it.
    base = max(ahead, usage.mean * days)
    if base > 0:
        p = max(p, usage.surge_share((level - excess) / base))
    return p
