"""Channel processors: what the device computes from each sample, in fixed state.

A processor sees one valid sample at a time with the program phase and returns
nothing or one Result (event kind, fields, the phase it is about). Profiles choose
processors per channel by kind (REGISTRY). Each is built with its checked settings and a
Channel context (labels, phases, hint) it needs for events a person can read.
"""

import math
from array import array

from agent.core import detectors, explain, limits
from agent.core.errors import ConfigError
from agent.core.events import ANOMALY, READING

TYPE_CHECKING = False
if TYPE_CHECKING:
    from agent.core.interfaces import Detector
    from agent.core.schema import Map

_NEVER = -(1 << 30)


class ChannelInfo:
    """What a processor knows about its channel and appliance, for explanations."""

    def __init__(self, channel: dict, phases: list, phase_names: dict, hint: dict | None) -> None:
        self.id = channel["id"]
        self.unit = channel["unit"]
        self.label = channel.get("label") or {"en": channel["id"], "de": channel["id"]}
        self.phases = phases
        self.phase_names = phase_names
        self.hint = hint
        self.idle = phases[0] if phases else ""

    def phase_name(self, phase: str) -> dict:
        names = self.phase_names.get(phase)
        if names is None:
            text = explain.capitalized(phase.replace("_", " "))
            return {"en": text, "de": text}
        return names  # type: ignore[no-any-return]


class Result:
    """What a processor found in a sample: an event of `kind` with these fields, about
    `phase` (None: the phase of the sample; a cycle feature is judged when the cycle
    ends, but concerns the phase it measured)."""

    __slots__ = ("fields", "kind", "phase")

    def __init__(self, kind: str, fields: dict, phase: str | None = None) -> None:
        self.kind = kind
        self.fields = fields
        self.phase = phase


class Processor:
    """Interface: feed(t_ms, value, phase) -> None or a Result."""

    kind = ""

    @staticmethod
    def settings_schema(phases: list) -> "Map":
        """Its settings' validator. Built when a profile is checked, with the schema module
        imported then: a board drops both once its profile is checked (profile.release)."""
        from agent.core.schema import Map

        return Map({})

    def feed(self, t_ms: int, value: float, phase: str) -> Result | None:
        raise NotImplementedError


class AnomalyProcessor(Processor):
    """Runs a streaming detector (detectors.py) on the channel, with the program phase as
    its context, and turns alarm-level scores into events with an explanation.

    Events are rate-limited: at most one per holdoff_s, unless the score is higher
    than that of the last event by `escalate` (a fault getting worse is news).
    """

    kind = "anomaly"

    @staticmethod
    def settings_schema(phases: list) -> "Map":
        from agent.core.schema import Map, Num, OneOf

        return Map(
            {},
            {
                "detector": (OneOf(detectors.DETECTORS), "wichtel"),
                "min_score": (Num(0.05, 0.99), 0.7),
                "holdoff_s": (Num(0, 7 * 86_400, "seconds"), 43_200),
                "escalate": (Num(0.0, 1.0), 0.2),
                "alarm": (Num(1.0, 50.0, "scaled deviations"), 3.5),
                "warmup": (Num(2, 100_000, "samples", integer=True), 300),
                # Samples a phase must have been seen in before its readings can alarm.
                "phase_warmup": (Num(4, 255, "samples", integer=True), 100),
            },
        )

    def __init__(self, info: ChannelInfo, detector: str, min_score: float, holdoff_s: float,
                 escalate: float, alarm: float, warmup: int, phase_warmup: int) -> None:  # fmt: skip
        self.info = info
        self.min_score = min_score
        self.holdoff_ms = int(holdoff_s * 1000)
        self.escalate = escalate
        self.phase_warmup = phase_warmup
        if detector == detectors.ContextDetector.NAME:
            # One context per phase, judged only against itself: a drain against drains.
            n = min(max(1, len(info.phases)), limits.MAX_PHASES)
            # The processor rate-limits events itself, so the detector never goes quiet.
            self.detector: "Detector" = detectors.ContextDetector(
                n, alarm=alarm, warmup=warmup, overall_weight=0.0, hold_min=0, hold_fraction=0.0
            )
        else:
            self.detector = detectors.ZScoreDetector()
        self.last_ms = _NEVER
        self.last_score = 0.0

    def feed(self, t_ms: int, value: float, phase: str) -> Result | None:
        context = self.info.phases.index(phase) if phase in self.info.phases else 0
        score = self.detector.score(t_ms, value, context)
        if score < self.min_score:
            return None
        seen = getattr(self.detector, "ctx_seen", None)
        if seen is not None and seen[context] < self.phase_warmup:
            return None
        if t_ms - self.last_ms < self.holdoff_ms and score < self.last_score + self.escalate:
            return None
        self.last_ms = t_ms
        self.last_score = score
        baseline = self.detector.baseline
        text = explain.unusual_reading(
            self.info.label, self.info.phase_name(phase) if phase else None, value, baseline, self.info.unit,
            self.info.hint,
        )  # fmt: skip
        return Result(
            ANOMALY,
            {"detector": self.kind, "value": value, "baseline": baseline, "score": score,
             "explanation_en": text["en"], "explanation_de": text["de"]},
        )  # fmt: skip


class CycleFeatureProcessor(Processor):
    """Learns one feature per program cycle (how long a phase took, or the channel's mean
    or peak in it) and finds drift across cycles: a slowly clogging drain pump makes
    every drain a little longer, which no single sample shows.

    A cycle runs from leaving the rest phase (the profile's first) to returning to it.
    The reference is the median (and MAD) of up to `history` earlier normal cycles; the
    recent value is the median of the last `recent` cycles. A cycle judged suspicious
    does not enter the reference, so a developing fault does not become the new normal.
    """

    kind = "cycle_feature"
    FEATURES = ("duration", "mean", "peak")

    @staticmethod
    def settings_schema(phases: list) -> "Map":
        from agent.core.schema import Map, Num, OneOf

        return Map(
            {"phase": OneOf(tuple(phases))},
            {
                "feature": (OneOf(CycleFeatureProcessor.FEATURES), "duration"),
                "history": (Num(5, 32, "cycles", integer=True), 12),
                "recent": (Num(1, 8, "cycles", integer=True), 3),
                "threshold": (Num(1.0, 50.0, "robust deviations"), 4.0),
                "min_change_pct": (Num(0, 1000, "percent"), 15),
                "holdoff_cycles": (Num(0, 1000, "cycles", integer=True), 5),
            },
        )

    def __init__(self, info: ChannelInfo, phase: str, feature: str, history: int, recent: int,
                 threshold: float, min_change_pct: float, holdoff_cycles: int) -> None:  # fmt: skip
        self.info = info
        self.phase = phase
        self.feature = feature
        self.threshold = threshold
        self.min_change_pct = min_change_pct
        self.holdoff_cycles = holdoff_cycles
        self.reference = array("f", bytes(4 * history))
        self.ref_len = 0
        self.ref_next = 0
        self.recent = array("f", bytes(4 * recent))
        self.recent_len = 0
        self.recent_next = 0
        self.cycles = 0
        self.last_alert_cycle = _NEVER
        self.last_alert_pct = 0.0
        self.in_cycle = False
        self.prev_t = -1
        self.prev_phase = ""
        self._reset_cycle()

    def _reset_cycle(self) -> None:
        self.acc_ms = 0
        self.acc_sum = 0.0
        self.acc_n = 0
        self.acc_peak = -math.inf

    def feed(self, t_ms: int, value: float, phase: str) -> Result | None:
        out = None
        if phase != self.info.idle and not self.in_cycle:
            self.in_cycle = True
            self._reset_cycle()
        elif phase == self.info.idle and self.in_cycle:
            self.in_cycle = False
            out = self._end_cycle(t_ms)
        if self.in_cycle and self.prev_phase == self.phase and self.prev_t >= 0:
            self.acc_ms += t_ms - self.prev_t
        if self.in_cycle and phase == self.phase:
            self.acc_n += 1
            self.acc_sum += value
            if value > self.acc_peak:
                self.acc_peak = value
        self.prev_t = t_ms
        self.prev_phase = phase
        return out

    def _end_cycle(self, t_ms: int) -> Result | None:
        if self.acc_n == 0:
            return None  # the phase did not run in this cycle
        if self.feature == "duration":
            value = self.acc_ms / 1000.0
        elif self.feature == "mean":
            value = self.acc_sum / self.acc_n
        else:
            value = self.acc_peak
        self.cycles += 1
        self.recent[self.recent_next] = value
        self.recent_next = (self.recent_next + 1) % len(self.recent)
        self.recent_len = min(self.recent_len + 1, len(self.recent))
        judged = self._judge()
        if judged is None or abs(judged[0]) < self.threshold / 2:
            # Only unremarkable cycles teach the reference.
            self.reference[self.ref_next] = value
            self.ref_next = (self.ref_next + 1) % len(self.reference)
            self.ref_len = min(self.ref_len + 1, len(self.reference))
        if judged is None:
            return None
        z, pct, baseline, recent = judged
        if abs(z) < self.threshold or abs(pct) < self.min_change_pct:
            return None
        if self.cycles - self.last_alert_cycle < self.holdoff_cycles and abs(pct) < abs(self.last_alert_pct) * 1.5:
            return None
        self.last_alert_cycle = self.cycles
        self.last_alert_pct = pct
        text = explain.cycle_change(
            self.feature, self.info.phase_name(self.phase), self.info.label, pct, self.recent_len, self.info.hint
        )
        score = 1.0 - math.exp(-abs(z) / self.threshold)
        return Result(
            ANOMALY,
            {"detector": self.kind, "feature": self.feature, "value": recent, "baseline": baseline,
             "change_pct": pct, "cycles": self.recent_len, "score": score,
             "explanation_en": text["en"], "explanation_de": text["de"]},
            self.phase,
        )  # fmt: skip

    def _judge(self) -> tuple | None:
        """(robust z, change in percent, baseline, recent value), or None while learning."""
        if self.ref_len < 5 or self.recent_len < len(self.recent):
            return None
        ref = sorted(self.reference[i] for i in range(self.ref_len))
        baseline = _median(ref)
        mad = _median(sorted(abs(x - baseline) for x in ref))
        scale = max(1.4826 * mad, 0.02 * abs(baseline), 1e-6)
        recent = _median(sorted(self.recent[i] for i in range(self.recent_len)))
        pct = (recent / baseline - 1.0) * 100.0 if baseline else 0.0
        return ((recent - baseline) / scale, pct, baseline, recent)


def _median(xs: list) -> float:
    n = len(xs)
    mid = n // 2
    return xs[mid] if n % 2 else (xs[mid - 1] + xs[mid]) / 2.0  # type: ignore[no-any-return]


class Aggregator(Processor):
    """Summarises a channel over fixed windows: count, min, mean, max."""

    kind = "aggregate"

    @staticmethod
    def settings_schema(phases: list) -> "Map":
        from agent.core.schema import Map, Num

        return Map({}, {"window_s": (Num(1, 86_400, "seconds"), 300)})

    def __init__(self, info: ChannelInfo, window_s: float) -> None:
        self.window_ms = int(window_s * 1000)
        self.start_ms = -1
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self.total = 0.0
        self.lo = math.inf
        self.hi = -math.inf

    def feed(self, t_ms: int, value: float, phase: str) -> Result | None:
        out = None
        if self.start_ms < 0:
            self.start_ms = t_ms
        elif t_ms - self.start_ms >= self.window_ms:
            if self.n:
                out = Result(
                    READING,
                    {"n": self.n, "min": self.lo, "mean": self.total / self.n, "max": self.hi,
                     "window_s": self.window_ms // 1000},
                )  # fmt: skip
            self._reset()
            self.start_ms = t_ms
        self.n += 1
        self.total += value
        if value < self.lo:
            self.lo = value
        if value > self.hi:
            self.hi = value
        return out


# kind name -> processor class: the kinds a profile may name.
REGISTRY = {AnomalyProcessor.kind: AnomalyProcessor, CycleFeatureProcessor.kind: CycleFeatureProcessor,
            Aggregator.kind: Aggregator}  # fmt: skip


def settings_schema(kind: str, phases: list) -> "Map":
    """The settings validator of a processor kind (some depend on the profile's phases)."""
    return REGISTRY[kind].settings_schema(phases)  # type: ignore[attr-defined,no-any-return]


def build(kind: str, settings: dict, info: ChannelInfo) -> Processor:
    """A processor from its kind and settings already checked by its schema."""
    cls = REGISTRY.get(kind)
    if cls is None:
        raise ConfigError("unknown processor kind " + repr(kind) + "; known: " + ", ".join(sorted(REGISTRY)))
    return cls(info, **settings)  # type: ignore[no-any-return]
