"""Channel processors: what the device computes from each sample, in fixed state.

A processor sees one valid sample at a time with the program phase and returns
nothing or one Result (event kind, fields, the phase it is about). Profiles choose
processors per channel by kind (REGISTRY). Each is built with its checked settings and a
Channel context (labels, phases, hint) it needs for events a person can read.
"""

import math
from array import array

from agent.core import detectors, explain, limits
from agent.core.alerts import CLEARED, AlertEpisode
from agent.core.compat import const
from agent.core.errors import ConfigError
from agent.core.events import ANOMALY, READING

TYPE_CHECKING = False
if TYPE_CHECKING:
    from agent.core.interfaces import Detector
    from agent.core.schema import Map

_NEVER = -(1 << 30)


class ChannelInfo:
    """What a processor knows about its channel and appliance, for explanations."""

    def __init__(self, channel: dict, phases: list, phase_names: dict, hint: dict | None,
                 reference: dict | None = None) -> None:  # fmt: skip
        self.id = channel["id"]
        self.unit = channel["unit"]
        self.label = channel.get("label") or {"en": channel["id"], "de": channel["id"]}
        self.phases = phases
        self.phase_names = phase_names
        self.hint = hint
        # The manufacturer's reference, measured on healthy units: phase -> [median, spread].
        self.reference = reference or {}
        self.idle = phases[0] if phases else ""
        span = channel.get("range")
        self.span = float(span[1] - span[0]) if span else 0.0  # of the sensor's valid readings

    def phase_name(self, phase: str) -> dict:
        return explain.phase_name(self.phase_names, phase)


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
    """Interface: feed(t_ms, value, phase) -> None or a Result. A processor whose Results carry
    a "state" (an alert's news) has the AlertEpisode they come from as `episode`."""

    kind = ""
    episode: AlertEpisode

    @staticmethod
    def settings_schema(phases: list) -> "Map":
        """Its settings' validator. Built when a profile is checked, with the schema module
        imported then: a board drops both once its profile is checked (profile.release)."""
        from agent.core.schema import Map

        return Map({})

    def feed(self, t_ms: int, value: float, phase: str) -> Result | None:
        raise NotImplementedError


# The reference check of an anomaly processor: a phase's level (a running median of its
# readings, from the reference median on, moved _REFERENCE_STEP spreads per reading) this many
# spreads (_REFERENCE_SCALES) off the reference median is an alert; no spread counts as less
# than _REFERENCE_FLOOR of the channel's range (a reference measured as exactly constant).
_REFERENCE_STEP = 0.1
_REFERENCE_SCALES = 4.0
_REFERENCE_FLOOR = 0.001
_CLEAR_READINGS = const(20)


class AnomalyProcessor(Processor):
    """Runs a streaming detector (detectors.py) on the channel, with the program phase as
    its context, and turns alarm-level scores into alert events with an explanation.

    With a reference from the profile (phase -> [median, spread] of the channel's readings
    on healthy units), a running median of the readings per phase is also held against it
    from the first samples on: a fault present at install (a valve leaking from day one), which
    the streaming detector would learn as this unit's normal, is an alert.

    One alert per episode (alerts.py): raised at the first alarm-level reading, reported
    again when its deviation grows by half, cleared once no reading was at alarm level for
    `clear_s` and the phase that alarmed has read normally again (_CLEAR_READINGS readings).
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
                "clear_s": (Num(0, 7 * 86_400, "seconds"), 43_200),
                "alarm": (Num(1.0, 50.0, "scaled deviations"), 3.5),
                "warmup": (Num(2, 100_000, "samples", integer=True), 300),
                # Samples a phase must have been seen in before its readings can alarm.
                "phase_warmup": (Num(4, 255, "samples", integer=True), 100),
            },
        )

    def __init__(self, info: ChannelInfo, detector: str, min_score: float, clear_s: float, alarm: float,
                 warmup: int, phase_warmup: int) -> None:  # fmt: skip
        self.info = info
        self.min_score = min_score
        self.phase_warmup = phase_warmup
        n = min(max(1, len(info.phases)), limits.MAX_PHASES)
        if detector == detectors.ContextDetector.NAME:
            # One context per phase, judged only against itself: a drain against drains.
            # The alert episode rate-limits events, so the detector never goes quiet.
            self.detector: "Detector" = detectors.ContextDetector(
                n, alarm=alarm, warmup=warmup, overall_weight=0.0, hold_min=0, hold_fraction=0.0
            )
        else:
            self.detector = detectors.ZScoreDetector()
        # Cleared after `clear_s` without an alarm and _CLEAR_READINGS normal readings of its phase.
        self.episode = AlertEpisode(_CLEAR_READINGS, int(clear_s * 1000))
        self.alarm_context = -1  # the phase of the last alarm-level reading
        self.ref = None
        if info.reference:
            # Per phase: the reference's median and spread (0, 0: none) and the level of this
            # unit's readings in the phase (a running median).
            self.ref = array("f", bytes(4 * 3 * n))
            floor = _REFERENCE_FLOOR * info.span
            for phase, pair in info.reference.items():
                if phase in info.phases:
                    i = info.phases.index(phase)
                    self.ref[3 * i] = self.ref[3 * i + 2] = pair[0]
                    self.ref[3 * i + 1] = max(pair[1], floor)

    def feed(self, t_ms: int, value: float, phase: str) -> Result | None:
        context = self.info.phases.index(phase) if phase in self.info.phases else 0
        score = self.detector.score(t_ms, value, context)
        severity = 0.0
        baseline = 0.0
        if score >= self.min_score:
            seen = getattr(self.detector, "ctx_seen", None)
            if seen is None or seen[context] >= self.phase_warmup:
                severity = self.detector.deviation
                baseline = self.detector.baseline
        ref = self.ref
        if ref is not None and ref[3 * context + 1] > 0:
            # The phase's level: a running median of its readings, from the reference's median
            # on, moved a step of _REFERENCE_STEP spreads towards each reading. Odd readings
            # (the flow still running as the phase changes) hardly move it; a lasting offset
            # takes it _REFERENCE_SCALES spreads away in that many / _REFERENCE_STEP readings.
            k = 3 * context
            step = _REFERENCE_STEP * ref[k + 1]
            if value > ref[k + 2]:
                ref[k + 2] += step
            elif value < ref[k + 2]:
                ref[k + 2] -= step
            off = abs(ref[k + 2] - ref[k]) / ref[k + 1]
            if off >= _REFERENCE_SCALES and off > severity:
                severity = off
                baseline = ref[k]
                score = off / (off + _REFERENCE_SCALES)  # 0.5 at the limit, as the detector's at its alarm
        if severity <= 0.0:
            # Only readings of the phase that alarmed can end the episode: a pump that fails
            # only while it drains is not well because the machine rests normally for a day.
            if context != self.alarm_context or self.episode.normal(t_ms) is None:
                return None
            return self._result(CLEARED, value, self.detector.baseline, score, phase)
        self.alarm_context = context
        state = self.episode.abnormal(t_ms, severity)
        if state is None:
            return None
        return self._result(state, value, baseline, score, phase)

    def _result(self, state: str, value: float, baseline: float, score: float, phase: str) -> Result:
        if state == CLEARED:
            text = explain.back_to_normal(self.info.label, self.info.phase_name(phase) if phase else None)
        else:
            text = explain.unusual_reading(
                self.info.label, self.info.phase_name(phase) if phase else None, value, baseline, self.info.unit,
                self.info.hint,
            )  # fmt: skip
        return Result(
            ANOMALY,
            {"detector": self.kind, "value": value, "baseline": baseline, "score": score, "state": state,
             "explanation_en": text["en"], "explanation_de": text["de"]},
        )  # fmt: skip


class CycleFeatureProcessor(Processor):
    """Learns one feature per program cycle (how long a phase took, or the channel's mean
    or peak in it) and finds drift across cycles: a slowly clogging drain pump makes
    every drain a little longer, which no single sample shows.

    A cycle runs from leaving the rest phase (the profile's first) to returning to it.
    The baseline is the median (and MAD) of up to `history` earlier normal cycles; the
    recent value is the median of the last `recent` cycles. A cycle judged suspicious
    does not enter the history, so a developing fault does not become the new normal.

    With a reference from the profile ({phase: [median, spread]} of the feature on healthy
    units), the baseline is the reference from the first cycle on, blended with the unit's
    own history as it grows (the reference weighs as much as a full history): a fault
    present at install is judged against healthy units, not learned as this unit's normal.

    One alert per episode (alerts.py): raised when the recent value stands out, reported
    again when the change grows by half, cleared after `clear_cycles` normal cycles.
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
                "clear_cycles": (Num(1, 100, "cycles", integer=True), 3),
            },
        )

    def __init__(self, info: ChannelInfo, phase: str, feature: str, history: int, recent: int,
                 threshold: float, min_change_pct: float, clear_cycles: int) -> None:  # fmt: skip
        self.info = info
        self.phase = phase
        self.feature = feature
        self.threshold = threshold
        self.min_change_pct = min_change_pct
        self.reference = array("f", bytes(4 * history))
        self.ref_len = 0
        self.ref_next = 0
        self.recent = array("f", bytes(4 * recent))
        self.recent_len = 0
        self.recent_next = 0
        self.cycles = 0
        self.last_value = 0.0  # the feature of the last cycle
        self.episode = AlertEpisode(clear_cycles)
        pair = info.reference.get(phase)
        # The manufacturer's median and spread of the feature (None: learn from this unit only).
        self.given = None if pair is None else (float(pair[0]), float(pair[1]))
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
        self.last_value = value
        self.recent[self.recent_next] = value
        self.recent_next = (self.recent_next + 1) % len(self.recent)
        self.recent_len = min(self.recent_len + 1, len(self.recent))
        judged = self._judge()
        if judged is None or abs(judged[0]) < self.threshold / 2:
            # Only unremarkable cycles teach the history.
            self.reference[self.ref_next] = value
            self.ref_next = (self.ref_next + 1) % len(self.reference)
            self.ref_len = min(self.ref_len + 1, len(self.reference))
        if judged is None:
            return None
        z, pct, baseline, recent = judged
        if abs(z) >= self.threshold and abs(pct) >= self.min_change_pct:
            state = self.episode.abnormal(t_ms, abs(pct))
        elif abs(z) < self.threshold / 2 or abs(pct) < self.min_change_pct / 2:
            # Clearly normal (half way back): a value hovering at the limit neither raises nor
            # clears, so an episode does not flap.
            state = self.episode.normal(t_ms)
        else:
            state = None
        if state is None:
            return None
        if state == CLEARED:
            text = explain.back_to_normal(self.info.label, self.info.phase_name(self.phase))
        else:
            text = explain.cycle_change(
                self.feature, self.info.phase_name(self.phase), self.info.label, pct, self.recent_len, self.info.hint
            )
        score = 1.0 - math.exp(-abs(z) / self.threshold)
        return Result(
            ANOMALY,
            {"detector": self.kind, "feature": self.feature, "value": recent, "baseline": baseline,
             "change_pct": pct, "cycles": self.recent_len, "score": score, "state": state,
             "explanation_en": text["en"], "explanation_de": text["de"]},
            self.phase,
        )  # fmt: skip

    def _judge(self) -> tuple | None:
        """(robust z, change in percent, baseline, recent value), or None while learning."""
        given = self.given
        if self.recent_len < len(self.recent) or (given is None and self.ref_len < 5):
            return None
        baseline = scale = 0.0
        if self.ref_len >= 5:
            ref = sorted(self.reference[i] for i in range(self.ref_len))
            baseline = _median(ref)
            scale = 1.4826 * _median(sorted(abs(x - baseline) for x in ref))
        if given is not None:
            # The reference weighs as a full history; the unit's own cycles as many as it has.
            w = len(self.reference)
            n = self.ref_len if self.ref_len >= 5 else 0
            baseline = (w * given[0] + n * baseline) / (w + n)
            scale = (w * given[1] + n * scale) / (w + n)
        scale = max(scale, 0.02 * abs(baseline), 1e-6)
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
