"""Streaming anomaly detectors: one sample in, a score in [0, 1] out, in O(1) and fixed state.

Each detector keeps a declared, fixed amount of state. `score(t_ms, value, context)`
takes a context index (a program phase or a time-of-day slot, or 0) and returns the
anomaly score of this sample. The NAB benchmark (bench/nab.py) scores them.
"""

import math
from array import array

from agent.core.compat import const
from agent.core.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from agent.core.interfaces import Detector

_Z_CAP = 50.0  # a deviation beyond this many scales is no more informative
_MAX_CONTEXTS = const(48)
_DEFAULT_CONTEXTS = const(40)  # NAB: 36-minute slots of the day; 9 bytes each


class ZScoreDetector:
    """The textbook baseline: distance from an exponentially weighted mean in standard
    deviations, mapped to [0, 1]. Kept to show what the stronger detector adds."""

    NAME = "zscore"
    SUMMARY = "baseline: deviation from an exponentially weighted mean, in standard deviations"

    def __init__(self, alpha: float = 0.001, scale: float = 4.0, **unknown: float) -> None:
        for key in unknown:  # a ConfigError like wichtel's, not Python's TypeError
            raise ConfigError("unknown setting " + repr(key) + " for detector zscore; known: alpha, scale")
        self.alpha = alpha
        self.scale = scale
        self.n = 0
        self.mean = 0.0
        self.var = 0.0
        self.baseline = 0.0
        self.deviation = 0.0

    def score(self, t_ms: int, value: float, context: int = 0) -> float:
        self.n += 1
        if self.n == 1:
            self.mean = value
        d = value - self.mean
        z = abs(d) / (math.sqrt(self.var) + 1e-9) if self.n > 10 else 0.0
        self.baseline = self.mean
        self.deviation = min(z, _Z_CAP)
        a = max(self.alpha, 1.0 / self.n)
        self.mean += a * d
        self.var = (1 - a) * (self.var + a * d * d)
        return 1.0 - math.exp(-self.deviation / self.scale)


class ContextDetector:
    """Wichtel's detector: how far a sample is from what is usual, overall and in its
    context, relative to how far samples usually stray in this series.

    - A slow exponentially weighted mean and variance give the overall deviation.
    - Per context (program phase, or time-of-day slot) a faster mean and variance give
      the contextual deviation: a drain-pump current is judged against drains, an
      evening value against evenings. Stored as float32 arrays: 8 bytes per context.
    - The larger deviation is divided by a running high quantile of past deviations
      (stochastic quantile tracking), so a naturally spiky series does not alarm on
      every spike while a calm one is sensitive.
    - A level score beside it: a fast exponentially weighted mean against the slow one,
      in units of that fast mean's own spread, calibrated against its own running tail
      quantile. It finds a shift that no single sample shows; the larger of the two
      calibrated scores counts.
    - After an alarm-level score the detector is quiet for a hold-off that grows with
      the history it has seen (`hold_fraction` of it, at least `hold_min`, at most `hold_max`
      samples): one event per anomaly, not a storm.
    - On a generic series (SeriesScorer, `alarm_bands`) the score carries that decision:
      0.5 and more for a sample that starts a hold-off, 0 for every other (or a low band
      below `low_band` / 2), so any threshold between the two gives the same detections.
    """

    NAME = "wichtel"
    SUMMARY = "contextual deviation against the series' own tail, with a hold-off after each alarm"

    # Settings at their defaults live on the class, so a default detector carries only
    # its learned state (MicroPython: each instance attribute costs a boxed float).
    alpha = 0.0001  # overall baseline, per sample
    context_alpha = 0.04  # per-context baseline, per sample of that context
    quantile = 0.0007  # tail of past deviations a deviation is measured against
    quantile_rate = 0.1
    floor_scale = 3.0  # the tail quantile counts only above this many scales
    alarm = 3.5  # scaled deviation at which the score is 0.5
    hold_trigger = 0.8  # share of `alarm` at which a hold-off starts
    hold_min = 100
    hold_fraction = 0.03
    hold_max = 5000
    warmup = 100
    context_warmup = 3  # samples a context needs before its deviation counts
    context_trust = 255  # samples after which it may also vouch for a value
    context_trust_mix = 0.3
    # Weight of the overall deviation beside the contextual one. 0 for program phases:
    # a spinning drum is not unusual because the machine was idle a minute ago.
    overall_weight = 1.0
    level_alpha = 0.3  # fast mean of the level score, per sample
    level_weight = 0.4  # of the level score; it counts only with the overall deviation
    # 0: one smooth score, r / (r + alarm), that appliance processors compare with their
    # own minimum. 1 (SeriesScorer): the score carries the detector's own decision, so
    # that no threshold needs to meet the hold-off trigger exactly: a sample that starts
    # a hold-off scores 0.5 and more (by how far it is past the trigger, in units of
    # `band_spread` * alarm), every other sample low_band * r / (r + alarm), below
    # low_band / 2.
    alarm_bands = 0
    band_spread = 0.1
    low_band = 0.5

    def __init__(self, contexts: int = _DEFAULT_CONTEXTS, **settings: float) -> None:
        if not 0 <= contexts <= _MAX_CONTEXTS:
            raise ConfigError("contexts must be 0.." + str(_MAX_CONTEXTS) + ", got " + str(contexts))
        for key in settings:
            if not hasattr(ContextDetector, key) or key.startswith("_"):
                raise ConfigError("unknown setting " + repr(key) + " for detector wichtel")
            setattr(self, key, settings[key])
        self.n = 0
        self.mean = 0.0
        self.var = 0.0
        self.q = self.floor_scale
        self.level = 0.0  # fast mean
        self.level_q = self.floor_scale  # tail quantile of the level score
        self.quiet = 0
        self.ctx_mean = array("f", bytes(4 * contexts))
        self.ctx_var = array("f", bytes(4 * contexts))
        self.ctx_seen = bytearray(contexts)  # saturates at 255
        # Of the last sample, for events: what was usual, and how far off it was.
        self.baseline = 0.0
        self.deviation = 0.0

    def state_bytes(self) -> int:
        """Bytes of learned state by content (the runtime's object headers come on top)."""
        return 9 * 8 + 9 * len(self.ctx_seen)

    def score(self, t_ms: int, value: float, context: int = 0) -> float:
        self.n += 1
        if self.n == 1:
            self.mean = value
            self.level = value
        d = value - self.mean
        sd = math.sqrt(self.var)
        floor = 1e-6 + 1e-3 * abs(self.mean)
        z = abs(d) / (sd + floor) * self.overall_weight
        # The fast mean of white noise strays sqrt(la / (2 - la)) sd from the slow one.
        la = self.level_alpha
        self.level += la * (value - self.level)
        zl = abs(self.level - self.mean) / (sd + floor) * math.sqrt((2 - la) / la)
        zl *= self.level_weight * self.overall_weight
        self.baseline = self.mean
        a = max(self.alpha, 1.0 / self.n)
        self.mean += a * d
        self.var = (1 - a) * (self.var + a * d * d)
        if len(self.ctx_seen):
            z = self._context(value, context % len(self.ctx_seen), z, sd, floor)
        r = self._calibrated(z, self.q)
        self.q = self._track(min(z, _Z_CAP), self.q)
        rl = self._calibrated(zl, self.level_q)
        self.level_q = self._track(min(zl, _Z_CAP), self.level_q)
        if rl > r:
            r = rl
        self.deviation = r
        if self.n < self.warmup:
            return 0.0
        if self.quiet > 0:
            self.quiet -= 1
            return 0.0
        trigger = self.alarm * self.hold_trigger
        if r > trigger:
            hold = int(self.hold_fraction * self.n)
            self.quiet = min(self.hold_max, max(self.hold_min, hold))
            if self.alarm_bands:
                past = r - trigger
                return 0.5 + 0.5 * past / (past + self.band_spread * self.alarm)
        elif self.alarm_bands:
            return self.low_band * r / (r + self.alarm)
        return r / (r + self.alarm)

    def _calibrated(self, z: float, q: float) -> float:
        """z against the series' own tail quantile q, in units of `floor_scale` scales."""
        return min(z, _Z_CAP) * self.floor_scale / max(q, self.floor_scale)

    def _track(self, z: float, q: float) -> float:
        """One multiplicative step of the (1 - quantile) quantile estimate q towards z."""
        if z > q:
            return q * (1 + self.quantile_rate * (1 - self.quantile))
        return q * (1 - self.quantile_rate * self.quantile)

    def _context(self, value: float, c: int, z: float, sd: float, floor: float) -> float:
        seen = self.ctx_seen[c]
        if seen == 0:
            self.ctx_mean[c] = value
        else:
            d = value - self.ctx_mean[c]
            if seen > self.context_warmup:
                zc = abs(d) / (math.sqrt(self.ctx_var[c]) + floor + 0.1 * sd * self.overall_weight)
                if seen >= self.context_trust and zc < z:
                    # A mature context vouches in part for a value usual at this time or phase.
                    z = zc * self.context_trust_mix + z * (1 - self.context_trust_mix)
                if zc > z:
                    z = zc
                    self.baseline = self.ctx_mean[c]
            a = max(self.context_alpha, 1.0 / (seen + 1))
            self.ctx_mean[c] += a * d
            self.ctx_var[c] = (1 - a) * (self.ctx_var[c] + a * d * d)
        if seen < 255:
            self.ctx_seen[c] = seen + 1
        return z


DETECTORS: dict = {ContextDetector.NAME: ContextDetector, ZScoreDetector.NAME: ZScoreDetector}


class SeriesContextDetector(ContextDetector):
    """ContextDetector as SeriesScorer uses it on a generic series (NAB, a user's CSV):
    the score is its own alarm decision with its strength, 0 for every other sample.
    Class defaults: no heap per detector."""

    alarm_bands = 1
    # No low band: a threshold chosen inside one picks samples just below the hold-off
    # trigger, which start no hold-off, and the knife edge is back (NAB, leave one
    # category out: 71.1 / 58.9 / 76.2 with a low band of 0.5, 71.5 / 63.2 / 76.8 without).
    low_band = 0.0


# The class a SeriesScorer builds for a detector name, where it differs from DETECTORS'.
SERIES_DETECTORS: dict = {ContextDetector.NAME: SeriesContextDetector}

_DAY_MS = 86_400_000


def time_of_day_slot(t_ms: int, slots: int) -> int:
    """Context index for wall-clock time: the slot of the day (UTC) t_ms falls in."""
    return (t_ms % _DAY_MS) * slots // _DAY_MS


class SeriesScorer:
    """Scores a timestamped series (t_ms, value) with a named detector.

    The context of a sample is its time-of-day slot when the detector has contexts:
    generic series (NAB, a user's CSV) carry wall-clock time, not program phases.
    """

    def __init__(self, name: str, settings: dict | None = None) -> None:
        cls = SERIES_DETECTORS.get(name) or DETECTORS.get(name)
        if cls is None:
            raise ConfigError("unknown detector " + repr(name) + "; known: " + ", ".join(sorted(DETECTORS)))
        self.detector: "Detector" = cls(**(settings or {}))
        ctx = getattr(self.detector, "ctx_seen", None)
        self.slots = len(ctx) if ctx is not None else 0

    def __call__(self, t_ms: int, value: float) -> float:
        context = time_of_day_slot(t_ms, self.slots) if self.slots else 0
        return self.detector.score(t_ms, value, context)
