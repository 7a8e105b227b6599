"""The bit- and byte-level logic of the 1-Wire and GPIO sensors, for both platforms: DS18B20
scratchpads and CRC8, w1 sysfs text, HX711 frames and gain pulses, pulse rates with wrap.

No I/O here: the Pi's adapters (agent/drivers/onewire.py, gpio.py) and the board's
(firmware/board_wire.py) move the bits; this decides what they mean or raises SensorError.
"""

from agent.core.compat import const
from agent.core.errors import ConfigError, SensorError

# -- Limits (each tested at its bound in tests/test_drivers_wire.py) ---------------------------
# DS18B20 conversion time in ms by resolution 9, 10, 11, 12 bit (datasheet tCONV, maximum).
DS18B20_CONVERSION_MS = (94, 188, 375, 750)
DS18B20_MIN_C = -55.0  # what the sensor can measure (datasheet); anything else is no reading
DS18B20_MAX_C = 125.0
DS18B20_POWER_ON_C = 85.0  # the scratchpad's value before any conversion (after a power loss)
# 85.0 degC once is a sensor that lost power between conversion and read ("implausible"); this
# many reads in a row is a sensor that never converts ("stuck"): its supply or bus is broken.
DS18B20_POWER_ON_REPEATS = const(3)
HX711_READY_POLLS = const(120)  # DOUT polled at most this often, 1 ms apart (10 SPS: a conversion is 100 ms)
HX711_MAX_RAW = const(0x7FFFFF)  # the ADC's positive saturation; its negative one is -0x800000
# PD_SCK pulses per frame (24 data bits + 1, 2 or 3) and the gain (and channel) they select
# for the next conversion: 25 -> A x128, 26 -> B x32, 27 -> A x64.
HX711_GAIN_PULSES = {128: 25, 32: 26, 64: 27}
PULSE_COUNTER_MASK = const(0x3FFFFFFF)  # the board's IRQ counter wraps here: a small int, no allocation
W1_SEQNO_MASK = 0xFFFFFFFF  # the kernel's edge event sequence numbers are 32 bits
MAX_W1_TEXT = const(256)  # characters of a w1 sysfs file taken (w1_slave is about 75)

_FAMILY_DS18B20 = const(0x28)


def crc8(data: object) -> int:
    """The Dallas/Maxim 1-Wire CRC8 (polynomial x^8 + x^5 + x^4 + 1, reflected 0x8C) of bytes.
    Over a scratchpad or ROM with its CRC byte at the end it is 0 when they agree."""
    crc = 0
    for byte in data:  # type: ignore[attr-defined]
        for _ in range(8):
            mix = (crc ^ byte) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            byte >>= 1
    return crc


def rom_name(rom: object) -> str:
    """A 1-Wire ROM (8 bytes: family, 48-bit serial least significant byte first, CRC) as
    Linux names its sysfs directory: "28-0316a2795dff"; "crc" if the ROM fails its CRC."""
    b = bytes(rom)  # type: ignore[call-overload]
    if len(b) != 8 or crc8(b) != 0:
        raise SensorError("crc", "ROM %s fails its CRC; expected 8 bytes whose CRC8 is 0" % _hex(b))
    return "%02x-" % b[0] + "".join("%02x" % b[i] for i in range(6, 0, -1))


def rom_option(value: object, where: str) -> str:
    """driver_options rom ('x' then the 12 hex digits of the serial, e.g. x0316a2795dff: a
    profile identifier must start with a letter) -> the sysfs name '28-0316a2795dff'."""
    if not isinstance(value, str) or len(value) != 13 or value[0] != "x" or not _is_hex(value[1:]):
        raise ConfigError(
            "%s: driver_options rom %r; expected x and the 12 hex digits of the DS18B20's serial "
            "(x0316a2795dff for /sys/bus/w1/devices/28-0316a2795dff)" % (where, value)
        )
    return "%02x-" % _FAMILY_DS18B20 + value[1:]


def conversion_ms(resolution: object, where: str) -> int:
    """How long one conversion takes at a resolution of 9 to 12 bits."""
    if resolution not in (9, 10, 11, 12):
        raise ConfigError("%s: driver_options resolution %r; expected 9, 10, 11 or 12 (bits)" % (where, resolution))
    return DS18B20_CONVERSION_MS[int(resolution) - 9]


def config_byte(resolution: int) -> int:
    """The DS18B20 configuration register for a resolution of 9 to 12 bits."""
    return 0x1F | ((resolution - 9) << 5)


def pad_resolution(pad: object) -> "int | None":
    """The resolution (9 to 12 bits) a scratchpad's configuration register says, or None for
    a scratchpad that fails its CRC or whose register cannot be one."""
    b: bytes = bytes(pad)  # type: ignore[call-overload]
    if len(b) != 9 or crc8(b) != 0 or b[4] & 0x9F != 0x1F:
        return None
    return 9 + ((b[4] >> 5) & 3)


def decode_scratchpad(pad: object) -> float:
    """A DS18B20 scratchpad (9 bytes, CRC last) -> degC. SensorError: "crc" when the CRC
    fails, "stuck" for a bus held low (all zeros pass the CRC), "implausible" for a value
    no DS18B20 gives. The 85.0 power-on value is returned: PowerOnGuard judges it."""
    b = bytes(pad)  # type: ignore[call-overload]
    if len(b) != 9:
        raise SensorError("crc", "scratchpad of %d bytes; expected 9" % len(b))
    if crc8(b) != 0:
        raise SensorError("crc", "scratchpad %s: CRC 0x%02x, computed 0x%02x" % (_hex(b), b[8], crc8(b[:8])))
    # The configuration register's low five bits always read 1: zeros there are a bus
    # pulled low for the whole read (whose CRC, 0 over zeros, passes).
    if b[4] & 0x1F != 0x1F:
        raise SensorError("stuck", "scratchpad %s: configuration byte 0x%02x; expected 0x1f in its low bits"
                          % (_hex(b), b[4]))  # fmt: skip
    raw = b[0] | (b[1] << 8)
    if raw & 0x8000:
        raw -= 0x10000
    # Bits below the resolution are undefined in the datasheet: mask them.
    bits = 9 + ((b[4] >> 5) & 3)
    raw &= ~((1 << (12 - bits)) - 1)
    return _plausible(raw / 16.0, "scratchpad " + _hex(b))


def parse_w1_slave(text: str) -> float:
    """The w1_slave file of a DS18B20 (Linux w1_therm) -> degC. Its two lines:
    '72 01 4b 46 7f ff 0e 10 57 : crc=57 YES' and '72 01 4b 46 7f ff 0e 10 57 t=23125'.
    The nine bytes are checked here (CRC and all) as on the board; the kernel's verdict and
    its t= must agree with them."""
    if len(text) > MAX_W1_TEXT:
        raise SensorError("failed", "w1_slave of %d characters; expected at most %d" % (len(text), MAX_W1_TEXT))
    lines = text.strip().split("\n")
    if len(lines) != 2:
        raise SensorError("failed", "w1_slave %r: %d lines; expected 2" % (text[:80], len(lines)))
    head, _, verdict = lines[0].partition(": crc=")
    words = verdict.split()
    if len(words) != 2 or words[1] not in ("YES", "NO"):
        raise SensorError("failed", "w1_slave first line %r; expected '<9 bytes> : crc=xx YES|NO'" % lines[0][:80])
    if words[1] == "NO":
        raise SensorError("crc", "w1_slave says crc=%s NO" % words[0][:2])
    pad = _hex_bytes(head)
    data, _, temp = lines[1].partition(" t=")
    if pad is None or _hex_bytes(data) != pad:
        raise SensorError("failed", "w1_slave %r: the bytes of the two lines differ or are not 9 hex bytes" % text[:80])
    value = decode_scratchpad(pad)
    millis = _int(temp)
    if millis is None or abs(millis - value * 1000) > 1000:
        raise SensorError("failed", "w1_slave t=%r; expected the scratchpad's %r degC in millidegrees" % (temp, value))
    return value


def parse_w1_temperature(text: str) -> float:
    """The newer `temperature` file (millidegrees, e.g. '23125') -> degC; it carries no
    CRC (the kernel checked it, and gives an error instead of a value when it fails)."""
    if len(text) > MAX_W1_TEXT:
        raise SensorError("failed", "temperature of %d characters; expected at most %d" % (len(text), MAX_W1_TEXT))
    millis = _int(text.strip())
    if millis is None:
        raise SensorError("failed", "temperature %r; expected millidegrees (e.g. 23125)" % text[:40])
    return _plausible(millis / 1000.0, "temperature " + text.strip()[:20])


class PowerOnGuard:
    """Judges DS18B20 readings of 85.0 degC, the value a scratchpad holds before any
    conversion: once it is "implausible" (the sensor lost power between the conversion and
    the read), DS18B20_POWER_ON_REPEATS times in a row "stuck" (it never converts)."""

    __slots__ = ("repeats",)

    def __init__(self) -> None:
        self.repeats = 0

    def check(self, value: float) -> float:
        if value != DS18B20_POWER_ON_C:
            self.repeats = 0
            return value
        self.repeats += 1
        if self.repeats >= DS18B20_POWER_ON_REPEATS:
            raise SensorError("stuck", "85.0 degC (the power-on value) %d reads in a row" % self.repeats)
        raise SensorError("implausible", "85.0 degC: the power-on value, not a conversion")


def hx711_pulses(gain: object, where: str) -> int:
    """driver_options gain (128, 64: channel A; 32: channel B) -> PD_SCK pulses per frame."""
    if gain not in HX711_GAIN_PULSES:
        raise ConfigError("%s: driver_options gain %r; expected 128 or 64 (channel A) or 32 (channel B)"
                          % (where, gain))  # fmt: skip
    return HX711_GAIN_PULSES[gain]


def hx711_wait_ready(get_dout: object, sleep_ms: object) -> int:
    """Polls DOUT until the HX711 pulls it low (a conversion waits), at most
    HX711_READY_POLLS times 1 ms apart; returns the polls it took. "absent" when it never does
    (no chip, no power, a line pulled high)."""
    for polls in range(HX711_READY_POLLS):
        if not get_dout():  # type: ignore[operator]
            return polls
        sleep_ms(1)  # type: ignore[operator]
    raise SensorError("absent", "HX711 DOUT stayed high for %d polls 1 ms apart (no conversion)" % HX711_READY_POLLS)


def hx711_frame(set_sck: object, get_dout: object, pulses: int) -> int:
    """Clocks one conversion out of a ready HX711: 24 bits, most significant first, each read
    while PD_SCK is high, then the pulses beyond 24 that select the next gain. Returns the
    24-bit word as clocked (not yet signed). "stuck" when DOUT is still low after the last
    pulse (the chip raises it there): the line is held low, whatever it read."""
    word = 0
    for _ in range(24):
        set_sck(1)  # type: ignore[operator]
        word = (word << 1) | (1 if get_dout() else 0)  # type: ignore[operator]
        set_sck(0)  # type: ignore[operator]
    for _ in range(pulses - 24):
        set_sck(1)  # type: ignore[operator]
        set_sck(0)  # type: ignore[operator]
    if not get_dout():  # type: ignore[operator]
        raise SensorError("stuck", "HX711 DOUT low after %d PD_SCK pulses; the chip sets it high there" % pulses)
    return word


def hx711_decode(word: int) -> int:
    """A 24-bit HX711 word -> its two's complement value; "implausible" at either
    saturation (0x7FFFFF, 0x800000): the input is beyond the ADC's range, not a weight."""
    if not 0 <= word <= 0xFFFFFF:
        raise SensorError("failed", "HX711 word 0x%x; expected 24 bits" % word)
    value = word - 0x1000000 if word & 0x800000 else word
    if value >= HX711_MAX_RAW or value <= -HX711_MAX_RAW - 1:
        raise SensorError("implausible", "HX711 saturated at 0x%06x" % word)
    return value


class Hx711Scale:
    """Raw HX711 counts -> the channel's unit: (raw - offset) / scale, offset the tare (raw
    counts with no load), scale the counts per unit (e.g. per gram)."""

    __slots__ = ("offset", "scale")

    def __init__(self, offset: object, scale: object, where: str) -> None:
        if not isinstance(offset, (int, float)) or isinstance(offset, bool):
            raise ConfigError(
                "%s: driver_options offset %r; expected a number (raw counts at no load)" % (where, offset)
            )
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or scale == 0:
            raise ConfigError("%s: driver_options scale %r; expected a number other than 0 (counts per unit)"
                              % (where, scale))  # fmt: skip
        self.offset = float(offset)
        self.scale = float(scale)

    def value(self, raw: int) -> float:
        return (raw - self.offset) / self.scale


class PulseRate:
    """Pulses counted by a wrapping counter -> a rate in the channel's unit: pulses since the
    last read, divided by pulses_per_unit, per rate_s seconds (60: per minute, so l/min from
    pulses per litre). The first read has no interval: it starts the count and gives 0."""

    __slots__ = ("last_count", "last_ms", "mask", "max_hz", "per_pulse")

    def __init__(self, pulses_per_unit: object, rate_s: object, max_hz: object, mask: int, where: str) -> None:
        for name, value in (("pulses_per_unit", pulses_per_unit), ("rate_s", rate_s), ("max_hz", max_hz)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ConfigError("%s: driver_options %s %r; expected a number above 0" % (where, name, value))
        self.per_pulse = float(rate_s) / float(pulses_per_unit)  # type: ignore[arg-type]
        self.max_hz = float(max_hz)  # type: ignore[arg-type]
        self.mask = mask
        self.last_count = -1
        self.last_ms = 0

    def rate(self, t_ms: int, count: int) -> float:
        """The rate over the interval since the last call, from the counter's value now.
        "implausible" above max_hz pulses per second (a chattering line, not a flow)."""
        if self.last_count < 0 or t_ms <= self.last_ms:
            self.last_count, self.last_ms = count & self.mask, t_ms
            return 0.0
        pulses = (count - self.last_count) & self.mask
        dt_ms = t_ms - self.last_ms
        self.last_count, self.last_ms = count & self.mask, t_ms
        if pulses * 1000.0 > self.max_hz * dt_ms:
            raise SensorError("implausible", "%d pulses in %d ms; at most %g per second" % (pulses, dt_ms, self.max_hz))
        return pulses * self.per_pulse * 1000.0 / dt_ms


PULSE_EDGES = ("rising", "falling", "both")  # driver_options edge
PULSE_PULLS = ("none", "up", "down")  # driver_options pull


def hx711_options(spec: dict) -> tuple:
    """An hx711 channel's driver_options -> (sck, dout, pulses, Hx711Scale); ConfigError
    naming the setting that cannot be used."""
    where = "channel %r" % spec["id"]
    sck = pin_option(spec, "sck")
    dout = pin_option(spec, "dout")
    if sck == dout:
        raise ConfigError("%s: driver_options sck and dout are both %d; expected two lines (pins)" % (where, sck))
    pulses = hx711_pulses(option(spec, "gain", 128), where)
    return sck, dout, pulses, Hx711Scale(option(spec, "offset", 0), option(spec, "scale", 1), where)


def pulse_options(spec: dict, mask: int) -> tuple:
    """A pulse_counter channel's driver_options -> (pin, edge, pull, PulseRate over a
    counter wrapping at mask); ConfigError naming the setting that cannot be used."""
    where = "channel %r" % spec["id"]
    rate = PulseRate(
        option(spec, "pulses_per_unit"), option(spec, "rate_s", 60), option(spec, "max_hz", 1000), mask, where
    )
    return pin_option(spec, "pin"), choice(spec, "edge", PULSE_EDGES), choice(spec, "pull", PULSE_PULLS), rate


def choice(spec: dict, name: str, choices: tuple) -> str:
    """A driver_options setting that is one of choices, the first by default."""
    value = option(spec, name, choices[0])
    if value not in choices:
        raise ConfigError("channel %r: driver_options %s %r; expected one of %s"
                          % (spec["id"], name, value, ", ".join(choices)))  # fmt: skip
    return str(value)


def option(spec: dict, name: str, default: object = None) -> object:
    """One driver_options setting of a channel; ConfigError naming it when it is required
    (default None) and missing."""
    opts = spec.get("driver_options") or {}
    if name in opts:
        return opts[name]
    if default is None:
        raise ConfigError("channel %r: driver %r needs driver_options %s" % (spec["id"], spec["driver"], name))
    return default


def pin_option(spec: dict, name: str) -> int:
    """A GPIO line or pin number from driver_options: a whole number 0 to 255."""
    value = option(spec, name)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 255 or value != int(value):
        raise ConfigError("channel %r: driver_options %s %r; expected a pin (line) number 0 to 255"
                          % (spec["id"], name, value))  # fmt: skip
    return int(value)


def _plausible(value: float, what: str) -> float:
    if not DS18B20_MIN_C <= value <= DS18B20_MAX_C:
        raise SensorError("implausible", "%s: %r degC; a DS18B20 gives -55 to 125" % (what, value))
    return value


def _hex(b: bytes) -> str:
    return "".join("%02x" % x for x in b)


def _is_hex(text: str) -> bool:
    for ch in text:
        if ch not in "0123456789abcdef":
            return False
    return True


def _hex_bytes(text: str) -> "bytes | None":
    """'72 01 4b ...' (nine two-digit hex bytes) -> bytes, or None."""
    words = text.split()
    if len(words) != 9:
        return None
    out = bytearray(9)
    for i in range(9):
        w = words[i].lower()
        if len(w) != 2 or not _is_hex(w):
            return None
        out[i] = int(w, 16)
    return bytes(out)


def _int(text: str) -> "int | None":
    """A decimal integer (optional minus sign), or None; no more than 7 digits (a w1 value)."""
    digits = text[1:] if text[:1] == "-" else text
    if not 0 < len(digits) <= 7:
        return None
    for ch in digits:
        if ch not in "0123456789":
            return None
    return int(text)
