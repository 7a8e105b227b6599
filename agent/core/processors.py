"""Channel processors: what the device computes from each sample, in fixed state.

A processor sees one valid sample at a time and may return one (event kind, fields)
pair. Later detectors and consumable trackers register here under a kind name.
"""

import math

from agent.core import limits
from agent.core.errors import ConfigError
from agent.core.events import ANOMALY, READING
from agent.core.schema import Map, Num

# Beyond this many standard deviations, a sample moves the baseline only as far as
# one at this distance would (a Huber-type update).
_HUBER_K = 2.5


class Processor:
    """Interface: feed(t_ms, value, phase) -> None or (kind, fields dict)."""

    kind = ""
    # Declared upper bound of the instance's own state, in numbers kept.
    STATE_NUMBERS = 0

    def feed(self, t_ms: int, value: float, phase: str) -> tuple | None:
        raise NotImplementedError


class EwmaDetector(Processor):
    """Flags samples far from an exponentially weighted mean of the same program phase.

    One baseline per phase (a drain pump draws differently from a spinning drum), at
    most limits.MAX_PHASES of them. A first detector for the pipeline; the
    anomaly-detection issue adds stronger ones. After an alert, the detector holds off
    for holdoff_s, so a lasting fault is one event and not a storm.
    """

    kind = "ewma"
    STATE_NUMBERS = 3 * limits.MAX_PHASES + 1
    SETTINGS = Map(
        {},
        {
            "alpha": (Num(0.0001, 0.5), 0.05),
            "threshold": (Num(1.0, 20.0, "standard deviations"), 5.0),
            "warmup": (Num(2, 10_000, "samples", integer=True), 30),
            "holdoff_s": (Num(0, 86_400, "seconds"), 60),
        },
    )

    def __init__(self, alpha: float, threshold: float, warmup: int, holdoff_s: float) -> None:
        self.alpha = alpha
        self.threshold = threshold
        self.warmup = warmup
        self.holdoff_ms = int(holdoff_s * 1000)
        # phase -> [samples seen, mean, variance]
        self.baselines: dict = {}
        self.last_alert_ms = -(1 << 30)

    def feed(self, t_ms: int, value: float, phase: str) -> tuple | None:
        base = self.baselines.get(phase)
        if base is None:
            if len(self.baselines) >= limits.MAX_PHASES:
                return None
            self.baselines[phase] = [1, value, 0.0]
            return None
        base[0] += 1
        mean = base[1]
        diff = value - mean
        sd = math.sqrt(base[2])
        # The floor keeps a near-constant signal from turning tiny wiggles into alerts.
        z = abs(diff) / (sd + 1e-6 + 1e-3 * abs(mean))
        # Update after scoring, so the sample does not vouch for itself. During warm-up
        # the weights are those of a plain average, so a young baseline's variance is
        # not underestimated.
        if base[0] <= self.warmup:
            a = max(self.alpha, 1.0 / base[0])
        else:
            a = self.alpha
        if base[0] > self.warmup and z > _HUBER_K:
            # Huber-clip outliers so a developing fault does not become the new normal.
            diff = diff * _HUBER_K / z
        incr = a * diff
        base[1] = mean + incr
        base[2] = (1 - a) * (base[2] + diff * incr)
        if base[0] <= self.warmup or z < self.threshold:
            return None
        if t_ms - self.last_alert_ms < self.holdoff_ms:
            return None
        self.last_alert_ms = t_ms
        score = 1.0 - math.exp(-z / self.threshold)
        return (
            ANOMALY,
            {"detector": self.kind, "value": value, "baseline": mean, "deviation": z, "score": score},
        )


class Aggregator(Processor):
    """Summarises a channel over fixed windows: count, min, mean, max."""

    kind = "aggregate"
    STATE_NUMBERS = 5
    SETTINGS = Map({}, {"window_s": (Num(1, 86_400, "seconds"), 300)})

    def __init__(self, window_s: float) -> None:
        self.window_ms = int(window_s * 1000)
        self.start_ms = -1
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self.total = 0.0
        self.lo = math.inf
        self.hi = -math.inf

    def feed(self, t_ms: int, value: float, phase: str) -> tuple | None:
        out = None
        if self.start_ms < 0:
            self.start_ms = t_ms
        elif t_ms - self.start_ms >= self.window_ms:
            if self.n:
                out = (
                    READING,
                    {
                        "n": self.n,
                        "min": self.lo,
                        "mean": self.total / self.n,
                        "max": self.hi,
                        "window_s": self.window_ms // 1000,
                    },
                )
            self._reset()
            self.start_ms = t_ms
        self.n += 1
        self.total += value
        if value < self.lo:
            self.lo = value
        if value > self.hi:
            self.hi = value
        return out


# kind name -> processor class; later issues register their detectors and trackers here.
REGISTRY = {EwmaDetector.kind: EwmaDetector, Aggregator.kind: Aggregator}


def register(cls: type) -> None:
    """Make a processor class available to profiles under cls.kind."""
    REGISTRY[cls.kind] = cls  # type: ignore[attr-defined]


def build(kind: str, settings: dict) -> Processor:
    """A processor from its kind and settings already checked by its SETTINGS."""
    cls = REGISTRY.get(kind)
    if cls is None:
        raise ConfigError("unknown processor kind " + repr(kind) + "; known: " + ", ".join(sorted(REGISTRY)))
    return cls(**settings)  # type: ignore[no-any-return]
