"""When a consumable runs out: the empty date (with a 10%..90% band) and the chance of
running out within a delivery's lead time, from a learned usage model.

Pure arithmetic on a UsageModel (usage.py) and a level; the tracker decides with it.
"""

import math

TYPE_CHECKING = False
if TYPE_CHECKING:
    from agent.core.usage import UsageModel

_Z90 = 1.2816  # 90% one-sided normal quantile: the band is the 10%..90% range
MAX_HORIZON_DAYS = 730  # the forecast looks this far ahead; an empty date beyond it is -1, as while learning
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


def forecast(level: float, usage: "UsageModel", today: int, lead_days: float, risk: float) -> Forecast:
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
    while crossing[2] < 0 and k < MAX_HORIZON_DAYS:
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


def p_run_out(level: float, usage: "UsageModel", days: float, today: int = 0, used_today: float = 0.0) -> float:
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
    ratios = usage.window_ratios(max(1, math.ceil(days)))
    n = len(ratios)
    if n >= 7:
        base = ahead
        kern = 0.05 * base or 1e-9
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
