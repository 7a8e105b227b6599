"""Emulated GPIO lines driven by recorded traces: an HX711 (DOUT level per PD_SCK clock) and a
flow meter (edge timestamps), on a bench with its own clock.

The same bench is seen through a stand-in of libgpiod's Python module (EmulatedGpiod, for the
Pi's drivers on CPython) and of MicroPython's machine (EmulatedMachine: Pin with irq, for the
board's drivers on the unix port and CPython). Runs on both: no CPython-only module here.

Trace files (hil_tests/traces/*.trace), one record per line, '#' starts a comment:
  kind hx711 | pulses | ds18b20          the first record: what the trace holds
  frame BUSY BITS AFTER                  hx711: DOUT reads high BUSY polls (or `forever`),
                                         then the 24 BITS (0/1, most significant first) one per
                                         PD_SCK pulse, then AFTER (its level after the gain pulses)
  edge T_US rising|falling               pulses: an edge at T_US microseconds
  rom HEX16 / pad HEX18 / absent         ds18b20: the sensor's ROM; the scratchpad a read gets;
                                         a read that finds no presence pulse (hil_tests/emulated/wire.py)
"""

import binascii

try:
    from micropython import heap_lock, heap_unlock
except ImportError:  # CPython: no heap to lock; the unix port checks the handlers
    heap_lock = heap_unlock = None


class TraceError(Exception):
    """A trace file that does not follow the format: names the line and what was expected."""


def parse_trace(lines, name="trace", size=None):
    """Lines of a trace (a text, or an iterable of lines such as an open file) -> (kind,
    records). hx711 records: (busy or None for forever, bits tuple, after); pulses: (t_us,
    rising); ds18b20: ("rom", bytes), ("pad", bytes) or ("absent", None). size: the number
    of records if known, so that the list is made once (a list grown record by record
    among each line's garbage needs contiguous heap that a small MicroPython heap lacks)."""
    if isinstance(lines, str):
        lines = lines.split("\n")
    kind = None
    records = [None] * size if size is not None else []
    n = 0
    number = 0
    for raw in lines:
        number += 1
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if kind is None:
            if len(words) != 2 or words[0] != "kind" or words[1] not in ("hx711", "pulses", "ds18b20"):
                raise TraceError("%s line %d: %r; expected 'kind hx711|pulses|ds18b20' first" % (name, number, line))
            kind = words[1]
            continue
        if kind == "hx711":
            record = _frame(words, name, number)
        elif kind == "pulses":
            if len(words) != 3 or words[0] != "edge" or words[2] not in ("rising", "falling"):
                raise TraceError("%s line %d: %r; expected 'edge T_US rising|falling'" % (name, number, line))
            record = (int(words[1]), words[2] == "rising")
            if n and record[0] < records[n - 1][0]:
                raise TraceError("%s line %d: edge at %d us before the one above" % (name, number, record[0]))
        else:
            record = _w1_record(words, name, number)
        if size is None:
            records.append(record)
        elif n < size:
            records[n] = record
        n += 1
    if kind is None:
        raise TraceError("%s: empty; expected 'kind ...' and records" % name)
    if size is not None and n != size:
        raise TraceError("%s: %d records; expected %d" % (name, n, size))
    return kind, records


def load_trace(path):
    """A trace file, read twice: once to count its records, once to parse them."""
    size = -1  # the kind line is no record
    with open(path) as f:
        for raw in f:
            if raw.split("#", 1)[0].strip():
                size += 1
    with open(path) as f:
        return parse_trace(f, path, max(size, 0))


def _frame(words, name, number):
    if len(words) == 2 and words[0] == "frame" and words[1] == "forever":
        return (None, (), 1)
    if len(words) != 4 or words[0] != "frame" or len(words[2]) != 24 or words[3] not in ("0", "1"):
        raise TraceError(
            "%s line %d: %r; expected 'frame BUSY <24 bits> 0|1' or 'frame forever'" % (name, number, " ".join(words))
        )
    bits = []
    for ch in words[2]:
        if ch not in "01":
            raise TraceError("%s line %d: bit %r; expected 0 or 1" % (name, number, ch))
        bits.append(int(ch))
    return (int(words[1]), tuple(bits), int(words[3]))


def _w1_record(words, name, number):
    if words == ["absent"]:
        return ("absent", None)
    sizes = {"rom": 8, "pad": 9}
    if len(words) != 2 or words[0] not in sizes or len(words[1]) != 2 * sizes[words[0]]:
        raise TraceError(
            "%s line %d: %r; expected 'rom <16 hex>', 'pad <18 hex>' or 'absent'" % (name, number, " ".join(words))
        )
    return (words[0], binascii.unhexlify(words[1]))


class Bench:
    """What is wired to which line, and the time (microseconds since the trace start), which
    moves only when the test advances it or a driver sleeps."""

    def __init__(self):
        self.now_us = 0
        self.devices = {}  # line (pin) number -> device
        self.irqs = []  # [pin, handler, trigger, next edge index] of the board's Pin.irq
        self.irq_off = 0
        self.slept_ms = 0

    def attach(self, device, *lines):
        for line in lines:
            self.devices[line] = device
        return device

    def device(self, line):
        if line not in self.devices:
            raise OSError("nothing wired to line %d" % line)
        return self.devices[line]

    def advance_ms(self, t_ms):
        """Move the clock to t_ms (never back) and run the IRQ handlers of the edges passed."""
        self.now_us = max(self.now_us, t_ms * 1000)
        self.fire()

    def sleep_ms(self, ms):
        self.slept_ms += ms
        self.now_us += ms * 1000
        self.fire()

    def fire(self):
        if self.irq_off:
            return  # a disabled IRQ stays pending (the hardware latches it): handled when enabled
        for entry in self.irqs:
            pin, handler, trigger = entry[0], entry[1], entry[2]
            source = self.devices[pin.id]
            edges = source.edges
            i = entry[3]
            while i < len(edges) and edges[i][0] <= self.now_us:
                if trigger & (Pin.IRQ_RISING if edges[i][1] else Pin.IRQ_FALLING):
                    self.interrupt(handler, pin)
                i += 1
            entry[3] = i

    def interrupt(self, handler, pin):
        """Runs an IRQ handler as a board's hard IRQ does: on MicroPython with the heap
        locked, so a handler that allocates fails here with MemoryError, as it would there."""
        if heap_lock is None:
            handler(pin)
            return
        heap_lock()
        try:
            handler(pin)
        finally:
            heap_unlock()


class Hx711Chip:
    """An HX711 replaying recorded frames (cycled): DOUT high while converting, then the
    frame's bits one per PD_SCK pulse, then its level after the gain pulses. pulses_seen
    lists the PD_SCK pulses of each frame read (25, 26 or 27: the gain asked for)."""

    def __init__(self, frames, sck, dout):
        if not frames:
            raise TraceError("an HX711 trace needs at least one frame")
        self.frames = frames
        self.sck_line = sck
        self.dout_line = dout
        self.index = 0
        self.polls = 0
        self.pulses = 0
        self.sck = 0
        self.pulses_seen = []

    def frame(self):
        return self.frames[self.index % len(self.frames)]

    def level(self, line):
        if line != self.dout_line:
            return self.sck
        busy, bits, after = self.frame()
        if self.pulses == 0:
            if busy is None or self.polls < busy:
                self.polls += 1
                return 1
            return 0
        if self.pulses <= 24:
            return bits[self.pulses - 1]
        # The host looks at DOUT after the gain pulses: the frame is over.
        self.pulses_seen.append(self.pulses)
        self.index += 1
        self.polls = 0
        self.pulses = 0
        return after

    def drive(self, line, level):
        if line != self.sck_line:
            raise OSError("line %d is the HX711's DOUT, an output of the chip" % line)
        busy, _, _ = self.frame()
        ready = busy is not None and self.polls >= busy
        if level and not self.sck and ready:
            self.pulses += 1
        self.sck = 1 if level else 0


class PulseSource:
    """A flow meter's output replaying recorded edges (t_us, rising)."""

    def __init__(self, edges):
        self.edges = edges
        self.start_level = 0 if not edges or edges[0][1] else 1
        self.bench = None

    def level(self, line):
        level = self.start_level
        now = self.bench.now_us if self.bench else 0
        for t_us, rising in self.edges:
            if t_us > now:
                break
            level = 1 if rising else 0
        return level

    def drive(self, line, level):
        raise OSError("line %d is a flow meter's output" % line)


def pulse_source(bench, edges, line):
    source = PulseSource(edges)
    source.bench = bench
    return bench.attach(source, line)


# -- machine stand-in (the board) ----------------------------------------------------------------


class Pin:
    """machine.Pin on an emulated bench (the class is made per bench by EmulatedMachine)."""

    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2
    bench = None

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.mode = mode
        self.pull = pull
        self.device = self.bench.device(id)
        if value is not None:
            self.value(value)

    def init(self, mode=-1, pull=-1, value=None):
        self.mode = mode
        self.pull = pull

    def value(self, level=None):
        if level is None:
            return self.device.level(self.id)
        self.device.drive(self.id, level)
        return None

    def __call__(self, level=None):
        return self.value(level)

    def irq(self, handler=None, trigger=3):
        edges = self.device.edges
        start = 0
        while start < len(edges) and edges[start][0] <= self.bench.now_us:
            start += 1
        self.bench.irqs.append([self, handler, trigger, start])


class EmulatedMachine:
    """The parts of `machine` the board's drivers use: Pin (with irq), disable_irq, enable_irq."""

    def __init__(self, bench):
        self.bench = bench

        class BenchPin(Pin):
            pass

        BenchPin.bench = bench
        self.Pin = BenchPin

    def disable_irq(self):
        self.bench.irq_off += 1
        return self.bench.irq_off

    def enable_irq(self, state):
        self.bench.irq_off -= 1
        self.bench.fire()


# -- gpiod stand-in (the Pi) ---------------------------------------------------------------------


class _Named:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


class _Namespace:
    def __init__(self, names):
        for name in names:
            setattr(self, name, _Named(name))


class _LineModule:
    """gpiod.line: the enums the drivers name."""

    Direction = _Namespace(("AS_IS", "INPUT", "OUTPUT"))
    Value = _Namespace(("INACTIVE", "ACTIVE"))
    Edge = _Namespace(("NONE", "RISING", "FALLING", "BOTH"))
    Bias = _Namespace(("AS_IS", "UNKNOWN", "DISABLED", "PULL_UP", "PULL_DOWN"))


class LineSettings:
    def __init__(self, direction=None, edge_detection=None, bias=None, output_value=None, debounce_period=None):
        self.direction = direction or _LineModule.Direction.AS_IS
        self.edge_detection = edge_detection or _LineModule.Edge.NONE
        self.bias = bias or _LineModule.Bias.AS_IS
        self.output_value = output_value or _LineModule.Value.INACTIVE
        self.debounce_period = debounce_period


class EdgeEvent:
    __slots__ = ("event_type", "global_seqno", "line_offset", "line_seqno", "timestamp_ns")

    def __init__(self, rising, t_us, offset, seqno):
        self.event_type = "RISING_EDGE" if rising else "FALLING_EDGE"
        self.timestamp_ns = t_us * 1000
        self.line_offset = offset
        self.global_seqno = seqno
        self.line_seqno = seqno


class EmulatedGpiod:
    """The parts of the gpiod module (v2) the Pi's drivers use, on one chip of a bench.
    call_us: how far each wait/read call moves the bench clock (a syscall takes time, and a
    chattering line keeps producing edges meanwhile). seqno_start: the line sequence number
    of the first event minus one (to test its 32-bit wrap)."""

    line = _LineModule
    LineSettings = LineSettings

    def __init__(self, bench, chip="/dev/gpiochip0", call_us=0, seqno_start=0):
        self.bench = bench
        self.chip = chip
        self.call_us = call_us
        self.seqno_start = seqno_start
        self.requested = {}

    def request_lines(self, path, config, consumer=None, event_buffer_size=None, output_values=None):
        if path != self.chip:
            raise FileNotFoundError(2, "No such file or directory", path)
        for offset in config:
            if offset in self.requested:
                raise OSError(16, "Device or resource busy: line %d" % offset)
        request = EmulatedRequest(self, config, event_buffer_size or 16)
        for offset in config:
            self.requested[offset] = request
            if config[offset].direction is _LineModule.Direction.OUTPUT:
                self.bench.device(offset).drive(
                    offset, 1 if config[offset].output_value is _LineModule.Value.ACTIVE else 0
                )
        return request


class EmulatedRequest:
    """A line request: values of its lines and a bounded buffer of edge events, which drops
    its oldest event when full (as the kernel does) while the sequence numbers go on."""

    def __init__(self, gpiod, config, capacity):
        self.gpiod = gpiod
        self.bench = gpiod.bench
        self.config = config
        self.capacity = capacity
        self.buffer = []
        self.seqno = gpiod.seqno_start
        self.next_edge = {}
        self.dropped = 0
        for offset in config:
            if config[offset].edge_detection is not _LineModule.Edge.NONE:
                edges = self.bench.device(offset).edges
                start = 0
                while start < len(edges) and edges[start][0] <= self.bench.now_us:
                    start += 1
                self.next_edge[offset] = start

    def get_value(self, offset):
        self._check(offset)
        return _LineModule.Value.ACTIVE if self.bench.device(offset).level(offset) else _LineModule.Value.INACTIVE

    def set_value(self, offset, value):
        self._check(offset)
        if self.config[offset].direction is not _LineModule.Direction.OUTPUT:
            raise OSError(1, "line %d is requested as an input" % offset)
        self.bench.device(offset).drive(offset, 1 if value is _LineModule.Value.ACTIVE else 0)

    def wait_edge_events(self, timeout=None):
        if timeout is None or timeout:
            raise AssertionError("wait_edge_events(%r) would block the loop; the drivers only look (0)" % (timeout,))
        self._collect()
        return bool(self.buffer)

    def read_edge_events(self, max_events=None):
        self._collect()
        if not self.buffer:
            raise AssertionError("read_edge_events on an empty buffer blocks until an edge comes")
        n = len(self.buffer) if max_events is None else min(max_events, len(self.buffer))
        out = self.buffer[:n]
        del self.buffer[:n]
        return out

    def release(self):
        for offset in self.config:
            self.gpiod.requested.pop(offset, None)

    def _check(self, offset):
        if offset not in self.config:
            raise OSError(22, "line %d is not in this request" % offset)

    def _collect(self):
        self.bench.now_us += self.gpiod.call_us
        for offset in self.next_edge:
            edge = self.config[offset].edge_detection
            edges = self.bench.device(offset).edges
            i = self.next_edge[offset]
            while i < len(edges) and edges[i][0] <= self.bench.now_us:
                t_us, rising = edges[i]
                if edge is _LineModule.Edge.BOTH or (edge is _LineModule.Edge.RISING) == rising:
                    self.seqno = (self.seqno + 1) & 0xFFFFFFFF
                    if len(self.buffer) == self.capacity:
                        del self.buffer[0]
                        self.dropped += 1
                    self.buffer.append(EdgeEvent(rising, t_us, offset, self.seqno))
                i += 1
            self.next_edge[offset] = i
