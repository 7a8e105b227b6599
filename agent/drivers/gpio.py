"""HX711 load cell amplifiers and flow-meter pulses on a Pi's GPIO lines, through libgpiod's
Python bindings (the `gpiod` package, v2 API).

Only line requests and values here; frames, gains, tare, scale and rates are decided in
agent/core/sensor_wire.py, as on the board. env keys: "gpiod", the gpiod module (an
emulated one in the tests); "sleep_ms", how the HX711's ready wait sleeps (time.sleep);
"monotonic_ns", the clock that times PD_SCK's high phases (time.monotonic_ns).
"""

import time
from datetime import timedelta

from agent.core import sensor_wire
from agent.core.errors import ConfigError, SensorError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# -- Limits (tests/test_drivers_wire.py tests each at its bound) -------------------------------
EDGE_BATCH = 256  # edge events taken from the kernel at once
MAX_EDGE_BATCHES = 16  # batches per read: a line with more pending chatters, it is no flow meter
# The kernel's buffer of edge events per request. It may overflow between reads without
# losing count: the rate is taken from the events' sequence numbers, which count every edge.
EVENT_BUFFER = 1024
# PD_SCK high longer than this powers the HX711 down (datasheet: 60 us); a frame whose clock a
# preempted process held high that long is dropped, whatever it read.
HX711_MAX_HIGH_NS = 60_000
CONSUMER = "wichtel"


def _chip(spec: dict) -> str:
    number = sensor_wire.option(spec, "chip", 0)
    if not isinstance(number, (int, float)) or isinstance(number, bool) or number not in range(16):
        raise ConfigError("channel %r: driver_options chip %r; expected 0 to 15 (gpiochipN)" % (spec["id"], number))
    return "/dev/gpiochip%d" % number


def _gpiod(env: dict) -> "Any":
    if "gpiod" in env:
        return env["gpiod"]
    import gpiod  # only a Pi with the bindings has it; the tests hand in an emulated one

    return gpiod


def _request(gpiod: "Any", spec: dict, config: dict, buffer: int | None) -> "Any":
    """The lines of a channel, requested from its chip; ConfigError when the chip is not
    there or a line is taken (by another channel or process)."""
    chip = _chip(spec)
    try:
        return gpiod.request_lines(chip, consumer=CONSUMER, config=config, event_buffer_size=buffer)
    except OSError as e:
        raise ConfigError("channel %r: cannot request lines %s of %s: %s"
                          % (spec["id"], ", ".join(str(n) for n in config), chip, e)) from e  # fmt: skip


def make_hx711(spec: dict, env: dict) -> "Hx711":
    sck, dout, pulses, scale = sensor_wire.hx711_options(spec)
    gpiod = _gpiod(env)
    line = gpiod.line
    config = {
        sck: gpiod.LineSettings(direction=line.Direction.OUTPUT, output_value=line.Value.INACTIVE),
        dout: gpiod.LineSettings(direction=line.Direction.INPUT),
    }
    request = _request(gpiod, spec, config, None)
    sleep_ms = env.get("sleep_ms") or (lambda ms: time.sleep(ms / 1000))
    return Hx711(request, line.Value, sck, dout, pulses, scale, sleep_ms, env.get("monotonic_ns", time.monotonic_ns))


class Hx711:
    """One HX711 on two lines of a requested chip: PD_SCK (output) and DOUT (input).

    Userspace clocking can be preempted, and PD_SCK held high for more than 60 us powers the
    chip down mid-frame: each high phase is timed (from the end of the call that raised it to
    the start of the one that lowers it, so never more than it was) and such a frame dropped.
    env "monotonic_ns" is that clock (time.monotonic_ns; the tests stage a preemption)."""

    def __init__(
        self,
        request: "Any",
        value: "Any",
        sck: int,
        dout: int,
        pulses: int,
        scale: sensor_wire.Hx711Scale,
        sleep_ms: "Callable[[int], None]",
        monotonic_ns: "Callable[[], int]",
    ) -> None:
        self.request = request
        self.levels = (value.INACTIVE, value.ACTIVE)
        self.active = value.ACTIVE
        self.sck = sck
        self.dout = dout
        self.pulses = pulses
        self.scale = scale
        self.sleep_ms = sleep_ms
        self.monotonic_ns = monotonic_ns
        self.raised_ns = 0
        self.longest_high_ns = 0

    def set_sck(self, level: int) -> None:
        if level:
            self.request.set_value(self.sck, self.levels[1])
            self.raised_ns = self.monotonic_ns()
        else:
            held = self.monotonic_ns() - self.raised_ns
            self.request.set_value(self.sck, self.levels[0])
            self.longest_high_ns = max(self.longest_high_ns, held)

    def get_dout(self) -> bool:
        return bool(self.request.get_value(self.dout) == self.active)

    def read(self, t_ms: int) -> float:
        sensor_wire.hx711_wait_ready(self.get_dout, self.sleep_ms)
        self.longest_high_ns = 0
        word = sensor_wire.hx711_frame(self.set_sck, self.get_dout, self.pulses)
        if self.longest_high_ns > HX711_MAX_HIGH_NS:
            raise SensorError("failed", "PD_SCK was high for %d us (the process was preempted); the HX711 powers down "
                              "after 60 us: frame dropped" % (self.longest_high_ns // 1000))  # fmt: skip
        return self.scale.value(sensor_wire.hx711_decode(word))


def make_pulse_counter(spec: dict, env: dict) -> "PulseCounter":
    offset, edge, pull, rate = sensor_wire.pulse_options(spec, sensor_wire.W1_SEQNO_MASK)
    gpiod = _gpiod(env)
    line = gpiod.line
    settings = gpiod.LineSettings(
        direction=line.Direction.INPUT,
        edge_detection={"rising": line.Edge.RISING, "falling": line.Edge.FALLING, "both": line.Edge.BOTH}[edge],
        bias={"none": line.Bias.DISABLED, "up": line.Bias.PULL_UP, "down": line.Bias.PULL_DOWN}[pull],
        debounce_period=timedelta(0),
    )
    request = _request(gpiod, spec, {offset: settings}, EVENT_BUFFER)
    return PulseCounter(request, rate)


class PulseCounter:
    """Edges on one line, counted by the kernel (with timestamps we do not need): the count
    is the last event's line sequence number, so events dropped from a full buffer count too."""

    def __init__(self, request: "Any", rate: sensor_wire.PulseRate) -> None:
        self.request = request
        self.rate = rate
        self.seqno = 0

    def read(self, t_ms: int) -> float:
        # wait_edge_events(0) only looks: read_edge_events would block on an empty buffer.
        batches = 0
        while self.request.wait_edge_events(0):
            if batches == MAX_EDGE_BATCHES:
                raise SensorError("implausible", "more than %d edge events pending on one line"
                                  % (EDGE_BATCH * MAX_EDGE_BATCHES))  # fmt: skip
            events = self.request.read_edge_events(EDGE_BATCH)
            batches += 1
            if events:
                self.seqno = int(events[-1].line_seqno)
        return self.rate.rate(t_ms, self.seqno)
