"""The program phase of a real appliance, from the profile's phase_source: inferred from the
channels by rules with hysteresis, or read from the controller's GPIO code or UART lines.

Portable and without I/O: the platform adapters (agent/phase_io.py on a Pi,
firmware/board_phase.py on a board) read the lines or the bytes and hand them in with the
time; what the phase is, is decided here, the same on both platforms. Every source ends in
a Debounce (a new phase must hold debounce_s before it is taken) and falls back to the
profile's `fallback` phase when what it reads from has been silent for silence_s.
"""

from agent.core import limits
from agent.core.errors import ConfigError
from agent.core.ratelimit import ThrottledReport

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_NEVER = -1  # no valid reading or line yet


class Debounce:
    """The phase taken: a candidate replaces it only after it has been offered without a
    break for debounce_ms. So a glitch shorter than that never shows, and every phase,
    once taken, lasts at least debounce_ms (its successor had to hold that long after it)."""

    __slots__ = ("candidate", "changes", "debounce_ms", "phase", "since")

    def __init__(self, initial: str, debounce_ms: int) -> None:
        self.phase = initial
        self.candidate = initial
        self.since = 0
        self.debounce_ms = debounce_ms
        self.changes = 0

    def offer(self, t_ms: int, candidate: str) -> str:
        """The phase at t_ms, given what the source says now."""
        if candidate == self.phase:
            self.candidate = candidate
            return self.phase
        if candidate != self.candidate:
            self.candidate = candidate
            self.since = t_ms
        if t_ms - self.since >= self.debounce_ms:
            self.phase = candidate
            self.changes += 1
        return self.phase


class PhaseSourceBase:
    """What every source shares: the fallback, the debounce, the silence bound and the lines
    it says about trouble (silence, and its end), at most one per change and rate-limited."""

    kind = ""

    def __init__(self, source: dict, phases: list, report: "Callable[[str], None] | None") -> None:
        self.fallback = source["fallback"] if source["fallback"] is not None else phases[0]
        self.debounce = Debounce(self.fallback, int(source["debounce_s"] * 1000))
        self.silence_ms = int(source["silence_s"] * 1000)
        self.say = ThrottledReport(report, 1000 / limits.LOG_REFILL_MS, limits.LOG_BURST)
        self.trouble = ""  # what is wrong now ("" when nothing); said when it changes

    def _trouble(self, text: str) -> None:
        if text != self.trouble:
            if text:
                self.say("phase source (%s): %s; the phase is %r until it recovers" % (self.kind, text, self.fallback))
            else:
                self.say("phase source (%s): recovered (%s)" % (self.kind, self.trouble))
            self.trouble = text


class RulePhases(PhaseSourceBase):
    """The phase inferred from the channels' latest valid readings by the profile's rules.

    Each condition latches: `above` X sets it when a reading is above X and clears it
    only when one is below `leave_below` (the band between changes nothing); `below`
    mirrors it. Rules are tried in order; the first whose conditions all hold gives the
    phase, none: the fallback. A channel with no valid reading for silence_ms (a sensor
    fault: the pipeline tells only valid samples) makes its conditions false, so the
    phase goes to the fallback once, after the debounce, and not back and forth; until
    then its last reading stands.

    The pipeline reads the phase at the start of a tick and tells the samples after it:
    the phase at a tick comes from the readings up to the tick before (one sample period
    late, plus the debounce).
    """

    kind = "rules"

    def __init__(self, source: dict, phases: list, report: "Callable[[str], None] | None" = None) -> None:
        super().__init__(source, phases, report)
        self.slots: dict = {}  # channel id -> slot
        self.channels: list = []
        cond_slot: list = []
        up: list = []
        enter: list = []
        leave: list = []
        self.rules: list = []
        for rule in source["rules"]:
            first = len(cond_slot)
            for cond in rule["when"]:
                ch = cond["channel"]
                if ch not in self.slots:
                    self.slots[ch] = len(self.channels)
                    self.channels.append(ch)
                cond_slot.append(self.slots[ch])
                rising = cond["above"] is not None
                up.append(1 if rising else 0)
                enter.append(cond["above"] if rising else cond["below"])
                leave.append(cond["leave_below"] if rising else cond["leave_above"])
                if leave[-1] is None:  # a condition not through profile.validate: no band
                    leave[-1] = enter[-1]
            self.rules.append((rule["phase"], first, len(cond_slot)))
        self.cond_slot = bytes(cond_slot)
        self.up = bytes(up)
        self.enter = enter  # lists, not float arrays: a threshold compares exactly as written
        self.leave = leave
        self.latch = bytearray(len(cond_slot))
        self.heard = [_NEVER] * len(self.channels)  # time of each channel's latest valid reading
        self.stale = 0

    def on_sample(self, channel: str, t_ms: int, value: float) -> None:
        """A valid reading of a channel (the pipeline tells each one after it is processed)."""
        slot = self.slots.get(channel)
        if slot is None or value != value:  # not a rule's channel, or NaN (no reading)
            return
        self.heard[slot] = t_ms
        for k in range(len(self.cond_slot)):
            if self.cond_slot[k] != slot:
                continue
            if self.up[k]:
                if value > self.enter[k]:
                    self.latch[k] = 1
                elif value < self.leave[k]:
                    self.latch[k] = 0
            elif value < self.enter[k]:
                self.latch[k] = 1
            elif value > self.leave[k]:
                self.latch[k] = 0

    def fresh(self, slot: int, t_ms: int) -> bool:
        return t_ms - self.heard[slot] <= self.silence_ms

    def candidate(self, t_ms: int) -> str:
        """What the rules say now, before the debounce."""
        for phase, first, end in self.rules:
            k = first
            while k < end and self.latch[k] and self.fresh(self.cond_slot[k], t_ms):
                k += 1
            if k == end:
                return phase  # type: ignore[no-any-return]
        return self.fallback  # type: ignore[no-any-return]

    def phase(self, t_ms: int) -> str:
        for i in range(len(self.heard)):
            if self.heard[i] == _NEVER:  # the first look: silence counts from here
                self.heard[i] = t_ms
        stale = 0  # a bit per silent channel: the text is made only when the set changes
        for i in range(len(self.channels)):
            if not self.fresh(i, t_ms):
                stale |= 1 << i
        if stale != self.stale:
            self.stale = stale
            names = [ch for i, ch in enumerate(self.channels) if stale & (1 << i)]
            self._trouble(("no valid reading of " + ", ".join(names) + " for %g s" % (self.silence_ms / 1000))
                          if names else "")  # fmt: skip
        return self.debounce.offer(t_ms, self.candidate(t_ms))


class CodePhases(PhaseSourceBase):
    """The phase the controller shows as a binary code on 1 to 3 GPIO lines (the first line
    is bit 0), looked up in the profile's table. A code not in the table is the fallback
    (counted: a controller between two codes shows one briefly, which the debounce hides).
    Lines that cannot be read (None) keep the last code until silence_ms has passed."""

    kind = "gpio"

    def __init__(self, source: dict, phases: list, report: "Callable[[str], None] | None" = None) -> None:
        super().__init__(source, phases, report)
        gpio = source["gpio"]
        self.n_lines = len(gpio["lines"])
        self.active_low = gpio["active_low"]
        self.table = {entry["code"]: entry["phase"] for entry in gpio["codes"]}
        self.code = -1
        self.heard = _NEVER
        self.unknown_codes = 0
        self.read_faults = 0

    def code_of(self, levels: list) -> int:
        """The code from the lines' levels (0 or 1 each, in the profile's order)."""
        if len(levels) != self.n_lines:
            raise ConfigError("gpio phase source: got %d line levels, expected %d" % (len(levels), self.n_lines))
        code = 0
        for i, level in enumerate(levels):
            if bool(level) != self.active_low:
                code |= 1 << i
        return code

    def phase_at(self, t_ms: int, levels: list | None) -> str:
        """The phase at t_ms from the levels just read (None: the lines could not be read)."""
        if levels is None:
            self.read_faults += 1
        else:
            self.code = self.code_of(levels)
            self.heard = t_ms
        if self.heard == _NEVER:  # the first look failed: silence counts from here
            self.heard = t_ms
        if t_ms - self.heard > self.silence_ms:
            self._trouble("the GPIO lines could not be read for %g s" % (self.silence_ms / 1000))
            return self.debounce.offer(t_ms, self.fallback)
        self._trouble("")
        if self.code < 0:  # not read yet
            return self.debounce.offer(t_ms, self.fallback)
        phase = self.table.get(self.code)
        if phase is None:
            self.unknown_codes += 1
            phase = self.fallback
        return self.debounce.offer(t_ms, phase)


class LinePhases(PhaseSourceBase):
    """The phase the controller sends as text lines on a UART ("PH=3", "STATE:DRAIN"): the
    profile's prefix, then a code from its table. Lines end at CR or LF (CRLF is one end);
    spaces around a line are dropped. A line longer than max_line bytes is counted
    (overlong) and skipped to its end; one without the prefix, with a code not in the
    table or with bytes that are not printable ASCII is counted (garbage) and ignored:
    neither changes the phase or counts as hearing from the controller. A line may come
    in pieces over several feeds. No valid line for silence_ms: the fallback phase, and
    a line said (the controller may be off, unplugged or talking at another baud rate).
    """

    kind = "uart"

    def __init__(self, source: dict, phases: list, report: "Callable[[str], None] | None" = None) -> None:
        super().__init__(source, phases, report)
        uart = source["uart"]
        self.prefix = (uart["prefix"] or "").encode()
        self.table = {entry["code"].encode(): entry["phase"] for entry in uart["codes"]}
        self.buf = bytearray(uart["max_line"])
        self.n = 0
        self.skipping = False  # inside an overlong line, until its end
        self.last = self.fallback
        self.heard = _NEVER
        self.lines = 0  # valid lines
        self.garbage = 0
        self.overlong = 0

    def feed(self, t_ms: int, data: bytes) -> None:
        """Bytes that arrived from the controller by t_ms (any amount, any split)."""
        buf = self.buf
        for b in data:
            if b == 10 or b == 13:
                if not self.skipping and self.n:
                    self._line(t_ms, bytes(memoryview(buf)[: self.n]))
                self.skipping = False
                self.n = 0
            elif self.skipping:
                continue
            elif self.n == len(buf):
                self.overlong += 1
                self.skipping = True
                self.n = 0
            else:
                buf[self.n] = b
                self.n += 1

    def _line(self, t_ms: int, line: bytes) -> None:
        line = line.strip(b" ")
        if not line:
            return
        for b in line:
            if not 32 < b < 127:
                self.garbage += 1
                return
        phase = self.table.get(line[len(self.prefix) :]) if line.startswith(self.prefix) else None
        if phase is None:
            self.garbage += 1
            return
        self.lines += 1
        self.last = phase
        self.heard = t_ms

    def silent(self, t_ms: int) -> bool:
        if self.heard == _NEVER:  # the first look: silence counts from here
            self.heard = t_ms
        return t_ms - self.heard > self.silence_ms

    def phase(self, t_ms: int) -> str:
        if self.silent(t_ms):
            self._trouble("no valid line from the controller for %g s" % (self.silence_ms / 1000))
            return self.debounce.offer(t_ms, self.fallback)
        self._trouble("")
        return self.debounce.offer(t_ms, self.last)


def kind_of(source: dict) -> str:
    """Which kind a validated phase_source is: rules, gpio or uart."""
    for kind in ("rules", "gpio", "uart"):
        if source.get(kind) is not None:
            return kind
    raise ConfigError("phase_source: got none of rules, gpio, uart; expected exactly one")
