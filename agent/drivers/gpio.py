"""HX711 load cell amplifiers and flow-meter pulses on a Pi's GPIO lines, through libgpiod's
Python bindings (the `gpiod` package, v2 API).

Only line requests and values here; frames, gains, tare, scale and rates are decided in
agent/core/sensor_wire.py, as on the board. env keys: "gpiod", the gpiod module (an
emulated one in the tests); "sleep_ms", how the HX711's ready wait sleeps (time.sleep).
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


def make_hx711(spec: dict, env: dict) -> "Hx711":
    sck, dout, pulses, scale = sensor_wire.hx711_options(spec)
    gpiod = _gpiod(env)
    line = gpiod.line
    request = gpiod.request_lines(
        _chip(spec),
        consumer=CONSUMER,
        config={
            sck: gpiod.LineSettings(direction=line.Direction.OUTPUT, output_value=line.Value.INACTIVE),
            dout: gpiod.LineSettings(direction=line.Direction.INPUT),
        },
    )
    sleep_ms = env.get("sleep_ms") or (lambda ms: time.sleep(ms / 1000))
    return Hx711(request, line.Value, sck, dout, pulses, scale, sleep_ms)


class Hx711:
    """One HX711 on two lines of a requested chip: PD_SCK (output) and DOUT (input).

    Userspace clocking can be preempted: PD_SCK held high for more than 60 us powers the chip
    down, and the frame then reads as a saturated or stuck value, which is refused like any."""

    def __init__(
        self,
        request: "Any",
        value: "Any",
        sck: int,
        dout: int,
        pulses: int,
        scale: sensor_wire.Hx711Scale,
        sleep_ms: "Callable[[int], None]",
    ) -> None:
        self.request = request
        self.levels = (value.INACTIVE, value.ACTIVE)
        self.active = value.ACTIVE
        self.sck = sck
        self.dout = dout
        self.pulses = pulses
        self.scale = scale
        self.sleep_ms = sleep_ms

    def set_sck(self, level: int) -> None:
        self.request.set_value(self.sck, self.levels[level])

    def get_dout(self) -> bool:
        return bool(self.request.get_value(self.dout) == self.active)

    def read(self, t_ms: int) -> float:
        sensor_wire.hx711_wait_ready(self.get_dout, self.sleep_ms)
        word = sensor_wire.hx711_frame(self.set_sck, self.get_dout, self.pulses)
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
    request = gpiod.request_lines(
        _chip(spec), consumer=CONSUMER, config={offset: settings}, event_buffer_size=EVENT_BUFFER
    )
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
