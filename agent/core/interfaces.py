"""The small interfaces where platforms plug into the pipeline, for type checkers only.

Nothing here exists at run time: MicroPython has no typing module, so the protocols
are defined under TYPE_CHECKING and named in string annotations.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    class Driver(Protocol):
        """A sensor: one reading of its channel at t_ms (NaN if it has none)."""

        def read(self, t_ms: int) -> float: ...

    class Detector(Protocol):
        """A streaming anomaly detector (detectors.py): score in [0, 1] per sample."""

        baseline: float  # of the last sample: what was usual
        deviation: float  # of the last sample: how far off, in the detector's scaled deviations

        def score(self, t_ms: int, value: float, context: int) -> float: ...

    class PhaseSource(Protocol):
        """The appliance's program phase at t_ms ("idle", "drain", ...). A source that infers
        the phase from the channels (phases.RulePhases) also has on_sample(channel, t_ms,
        value): the pipeline tells it each valid sample, after the tick's phase was read."""

        def phase(self, t_ms: int) -> str: ...

    class Clock(Protocol):
        def now_ms(self) -> int: ...

        async def sleep_until(self, t_ms: int) -> None: ...

    class Uplink(Protocol):
        """Delivers one message; False when it could not (it will be offered again).
        connects: how many links it has made so far (a new one makes the agent offer
        again what awaits the backend's confirmation)."""

        connects: int

        async def publish(self, topic: str, payload: bytes, msg_id: int = 0) -> bool: ...

    class Observer(Protocol):
        """Told about each pipeline step: ("tick", t_ms, phase), ("sample", channel, value),
        ("decision", event, decision), ("sent", topic, payload)."""

        def __call__(self, stage: str, a: object, b: object) -> None: ...
