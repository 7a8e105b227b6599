"""The manufacturer's reference of a profile, computed from healthy units' summaries: per
processor and phase the median and spread that devices judge a fault present at install by.

No raw reading leaves a home for it. A unit's contribution is a summary of its own healthy
cycles (per processor and phase: its median, its spread, how many cycles or readings), which
a device would send under the maintenance consent; the fleet combines the summaries of at
least MIN_UNITS units and ships the result in a profile update (`reference` of a processor;
docs/detection.md). tools/reference.py makes the summaries of simulated healthy units.
"""

import math

MIN_UNITS = 5  # fewer units say too little about how healthy units differ from each other
_MAD_TO_SD = 1.4826  # a normal distribution's standard deviation per median absolute deviation


class ReferenceError(ValueError):
    """The summaries cannot make a reference (too few units, a malformed summary)."""


def median(xs: list) -> float:
    s = sorted(xs)
    n = len(s)
    if not n:
        raise ReferenceError("no values to take the median of")
    return float(s[n // 2]) if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0


def summary(values: list) -> list:
    """One unit's summary of one feature: [median, spread, count]; spread is 1.4826 times
    the median absolute deviation (the standard deviation, for normal values)."""
    m = median(values)
    return [m, _MAD_TO_SD * median([abs(v - m) for v in values]), len(values)]


def combine(units: list, min_units: int = MIN_UNITS) -> dict:
    """units: one dict per unit, key -> [median, spread, count] (a key names a processor's
    phase, e.g. "motor_current/0/drain"). Returns key -> [median, spread]: the median of the
    units' medians, and a spread holding both how much one unit's values vary (the median
    of the units' spreads) and how much units differ (1.4826 MAD of their medians). A key
    fewer than min_units units report is left out: a reference from a handful of units
    would call a healthy unit faulty for being unlike them."""
    by_key: dict = {}
    for i, unit in enumerate(units):
        for key, s in unit.items():
            if not (isinstance(s, list) and len(s) == 3 and all(isinstance(x, (int, float)) for x in s)):
                raise ReferenceError("unit %d, %s: expected [median, spread, count], got %r" % (i, key, s))
            if not all(math.isfinite(x) for x in s) or s[1] < 0 or s[2] < 1:
                raise ReferenceError("unit %d, %s: %r is not a summary (finite, spread >= 0, count >= 1)" % (i, key, s))
            by_key.setdefault(key, []).append(s)
    out = {}
    for key, sums in sorted(by_key.items()):
        if len(sums) < min_units:
            continue
        centre = median([s[0] for s in sums])
        within = median([s[1] for s in sums])
        between = _MAD_TO_SD * median([abs(s[0] - centre) for s in sums])
        out[key] = [centre, math.sqrt(within * within + between * between)]
    if not out:
        raise ReferenceError("no feature was reported by at least %d units" % min_units)
    return out


def moments(vectors: list) -> dict:
    """One unit's summary of its healthy cycles' feature vectors (the cycle model): how many,
    their mean and their covariance (population form, the upper triangle row by row)."""
    n = len(vectors)
    if n < 2:
        raise ReferenceError("moments of %d vectors; expected 2 or more" % n)
    p = len(vectors[0])
    mean = [sum(v[i] for v in vectors) / n for i in range(p)]
    cov = [sum((v[i] - mean[i]) * (v[j] - mean[j]) for v in vectors) / n for i in range(p) for j in range(i, p)]
    return {"n": n, "mean": mean, "cov": cov}


def combine_moments(units: list, min_units: int = MIN_UNITS) -> dict:
    """The cycle model's reference ({"mean", "sd", "corr"}, agent/core/multivariate.py) from
    units' moments: pooled over all their cycles, so its spread holds both each unit's
    cycle-to-cycle variation and the differences between units."""
    if len(units) < min_units:
        raise ReferenceError("moments of %d units; expected at least %d" % (len(units), min_units))
    p = len(units[0]["mean"])
    for i, u in enumerate(units):
        if len(u["mean"]) != p or len(u["cov"]) != p * (p + 1) // 2 or u["n"] < 2:
            raise ReferenceError("unit %d: moments of another shape (%d features expected)" % (i, p))
    total = sum(u["n"] for u in units)
    mean = [sum(u["n"] * u["mean"][i] for u in units) / total for i in range(p)]
    cov = [[0.0] * p for _ in range(p)]
    for u in units:
        at = 0
        for i in range(p):
            for j in range(i, p):
                c = u["n"] * (u["cov"][at] + (u["mean"][i] - mean[i]) * (u["mean"][j] - mean[j])) / total
                cov[i][j] += c
                if i != j:
                    cov[j][i] += c
                at += 1
    sd = [math.sqrt(max(cov[i][i], 0.0)) for i in range(p)]
    corr = []
    for i in range(p):
        for j in range(i + 1, p):
            corr.append(cov[i][j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else 0.0)
    return {"mean": mean, "sd": sd, "corr": corr}


def apply(profile_doc: dict, reference: dict) -> dict:
    """The profile document with each processor's `reference` set from the combined one
    (keys channel/processor index/phase); processors without one keep theirs."""
    for ch in profile_doc["channels"]:
        for j, proc in enumerate(ch.get("processors") or []):
            prefix = "%s/%d/" % (ch["id"], j)
            ref = {k[len(prefix) :]: [_round(v[0]), _round(v[1])] for k, v in reference.items() if k.startswith(prefix)}
            if ref:
                proc["reference"] = ref
    return profile_doc


def _round(x: float) -> float:
    """Four significant digits: a reference is a measurement, not a long float."""
    return float("%.4g" % x)
