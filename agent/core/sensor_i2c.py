"""Chip logic of the analog and I2C sensors, the same on a Pi and on a board: ADS1115 and
ADXL345 register words and conversions, ADC readings and their plausibility checks.

A platform adapter hands in a register bus: read(reg, n) -> bytes, write(reg, data) and
sleep_ms(ms), whose bus calls may raise OSError. Everything here is bounded (retries, polls,
burst length: the limits block below) and every failure leaves as SensorError(reason).
"""

import math

from agent.core.compat import const
from agent.core.errors import ConfigError, DriverOptionError, SensorError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    T = TypeVar("T")

# --- Limits -------------------------------------------------------------------------------
# A transaction that fails with EIO/ETIMEDOUT/EAGAIN is tried this many times in all; then
# the bus counts as stuck. NACK-like errors are not retried: nobody answers at the address.
I2C_TRIES = const(3)
# The ADS1115 runs at its fastest data rate (860 SPS, _ADS_DR_860), so that one single-shot
# conversion blocks the caller as little as possible: 1/860 s = 1.16 ms (+10 % oscillator
# tolerance). The driver waits ADS1115_POLL_MS, then reads the OS bit, at most
# ADS1115_MAX_POLLS times: a reading takes at most 4 ms of sleeping plus six register
# transfers (under 1 ms at 400 kHz, ~3 ms at 100 kHz; each retried at most I2C_TRIES
# times). A conversion not ready by then is a stuck chip.
ADS1115_POLL_MS = const(1)
ADS1115_MAX_POLLS = const(4)
# A single-ended input reads a little below 0 V near ground (offset error, noise); more
# than this many LSB below is no voltage the input can have (at most -0.3 V is allowed
# on the pin, and that is a wiring fault).
ADS1115_NEGATIVE_NOISE_LSB = const(32)
# ADXL345: one reading is a burst of back-to-back samples of the three axes (6 bytes
# each) at the chip's 3200 Hz output rate: 32 samples take ~6 ms at 400 kHz, ~25 ms at
# 100 kHz. The burst length is a driver option between these bounds.
ADXL345_MIN_BURST = const(4)
ADXL345_MAX_BURST = const(32)
ADXL345_DEFAULT_BURST = const(16)
# The mean of a burst is gravity (plus slow motion): a chip at rest on an appliance sees
# about 1 g. A mean outside these bounds is no mounted accelerometer (a bus returning
# zeros, a chip in free fall, a broken one).
ADXL345_GRAVITY_MIN_G = 0.5
ADXL345_GRAVITY_MAX_G = 2.0
# stuck_reads: this many identical raw readings in a row count as a stuck sensor (0: off,
# for inputs that may legitimately hold still). Bounded so the counter stays small.
MAX_STUCK_READS = const(100_000)
# The board's ADC is noisy: one reading is the mean of `samples` conversions, at most this.
ADC_MAX_SAMPLES = const(64)

# errno values (MicroPython's errno module lacks some; the numbers are Linux's and
# MicroPython's, which agree on these).
_ENOENT = const(2)  # no /dev/i2c-N or sysfs file: the bus or sensor is not there
_EIO = const(5)
_ENXIO = const(6)  # NACK of the address on most Linux I2C adapters
_EAGAIN = const(11)
_ENODEV = const(19)  # NACK on MicroPython's machine.I2C; a vanished device on Linux
_ETIMEDOUT = const(110)
_EREMOTEIO = const(121)  # NACK on the Raspberry Pi's i2c-bcm2835
ABSENT_ERRNOS = (_ENOENT, _ENXIO, _ENODEV, _EREMOTEIO)
TRANSIENT_ERRNOS = (_EIO, _EAGAIN, _ETIMEDOUT)


def _errno(e: OSError) -> int:
    # MicroPython's OSError(n) has no .errno attribute on every port; args[0] is the number.
    n = e.args[0] if e.args else None
    return n if isinstance(n, int) else -1


def with_retries(call: "Callable[[], T]", where: str) -> "T":
    """call() with up to I2C_TRIES attempts; its OSError becomes SensorError: absent for
    NACK/no device, stuck after I2C_TRIES transient failures (EIO, ETIMEDOUT), failed
    for anything else (e.g. permission denied), naming where."""
    tries = 0
    while True:
        tries += 1
        try:
            return call()
        except OSError as e:
            n = _errno(e)
            if n in ABSENT_ERRNOS:
                raise SensorError("absent", "%s: no answer (errno %d)" % (where, n)) from e
            if n not in TRANSIENT_ERRNOS:
                raise SensorError("failed", "%s: %r" % (where, e)) from e
            if tries >= I2C_TRIES:
                raise SensorError("stuck", "%s: errno %d on %d tries in a row" % (where, n, tries)) from e


def signed16(hi: int, lo: int) -> int:
    """Two's complement of a 16-bit word from its two bytes."""
    v = (hi << 8) | lo
    return v - 0x10000 if v & 0x8000 else v


class StuckWatch:
    """Counts identical raw readings in a row; limit of them (0: never) is a stuck sensor."""

    def __init__(self, limit: int, where: str) -> None:
        self.limit = limit
        self.where = where
        self.last = None  # type: object
        self.run = 0

    def feed(self, raw: object) -> None:
        if raw != self.last:
            self.last = raw
            self.run = 1
        elif self.run < MAX_STUCK_READS:  # a small int on a board, however long it holds still
            self.run += 1
        if self.limit and self.run >= self.limit:
            raise SensorError("stuck", "%s: the same raw reading %r %d times in a row" % (self.where, raw, self.run))


# --- Driver options -----------------------------------------------------------------------


def option_int(spec: dict, name: str, default: object, lo: int, hi: int) -> int:
    """driver_options[name] as a whole number in [lo, hi] (default when absent; None:
    required); DriverOptionError naming channel, option, value and the expectation."""
    value = (spec.get("driver_options") or {}).get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or not lo <= value <= hi:
        raise DriverOptionError(spec["id"], name, value, "a whole number %d..%d" % (lo, hi))
    return int(value)


def option_num(spec: dict, name: str, default: float) -> float:
    """driver_options[name] as a number (the schema bounds it), default when absent."""
    value = (spec.get("driver_options") or {}).get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DriverOptionError(spec["id"], name, value, "a number")
    return float(value)


def option_choice(spec: dict, name: str, default: object, choices: tuple) -> object:
    """driver_options[name], one of choices (numbers or names)."""
    value = (spec.get("driver_options") or {}).get(name, default)
    if value is None or value not in choices:
        raise DriverOptionError(spec["id"], name, value, "one of " + ", ".join(str(c) for c in choices))
    return value


def check_known(spec: dict, known: tuple, what: str) -> None:
    """DriverOptionError for a driver option the driver does not have (a typo such as
    `adress` would otherwise leave the default in force without a word)."""
    opts = spec.get("driver_options") or {}
    for name in opts:
        if name not in known:
            expected = "one of the options of %s: %s" % (what, ", ".join(known))
            raise DriverOptionError(spec["id"], name, opts[name], expected, unknown=True)


# Options of every analog input (LinearMap and stuck_watch).
ANALOG_OPTIONS = ("scale", "offset", "stuck_reads")


class LinearMap:
    """volts -> the channel's unit: value = volts * scale + offset (driver_options scale,
    offset; e.g. a 30 A / 1 V current clamp: scale 30)."""

    def __init__(self, spec: dict) -> None:
        self.scale = option_num(spec, "scale", 1.0)
        self.offset = option_num(spec, "offset", 0.0)

    def __call__(self, volts: float) -> float:
        return volts * self.scale + self.offset


def stuck_watch(spec: dict) -> StuckWatch:
    return StuckWatch(option_int(spec, "stuck_reads", 0, 0, MAX_STUCK_READS), "channel " + spec["id"])


IIO_OPTIONS = ("device", "input", "bits") + ANALOG_OPTIONS
IIO_MAX_DEVICES = const(256)  # iio:deviceN numbers, and entries a device name is looked up among


def iio_options(spec: dict) -> tuple:
    """(device: N of iio:deviceN or its name, input K of in_voltageK, bits) of a
    linux_iio channel."""
    check_known(spec, IIO_OPTIONS, "a linux_iio input")
    device = (spec.get("driver_options") or {}).get("device", 0)
    if not isinstance(device, str):
        device = option_int(spec, "device", 0, 0, IIO_MAX_DEVICES - 1)
    return device, option_int(spec, "input", 0, 0, 255), option_int(spec, "bits", 0, 0, 32)


ADC_OPTIONS = ("pin", "atten_db", "samples", "full_scale_v") + ANALOG_OPTIONS
ADC_ATTENUATION_DB = (0, 2.5, 6, 11)  # ESP32: the input range grows with it, to ~3.1 V at 11 dB
ADC_DEFAULT_SAMPLES = const(8)  # conversions averaged per reading: the ESP32's ADC is noisy


def adc_options(spec: dict) -> tuple:
    """(pin, atten_db, samples, full_scale_v) of a board's adc channel."""
    check_known(spec, ADC_OPTIONS, "an adc input")
    return (
        option_int(spec, "pin", None, 0, 255),
        option_choice(spec, "atten_db", 11, ADC_ATTENUATION_DB),
        option_int(spec, "samples", ADC_DEFAULT_SAMPLES, 1, ADC_MAX_SAMPLES),
        option_num(spec, "full_scale_v", 3.3),
    )


def i2c_pins(spec: dict) -> tuple:
    """(sda, scl) pin numbers of a board's I2C bus, or () for the bus's default pins."""
    opts = spec.get("driver_options") or {}
    if ("sda" in opts) != ("scl" in opts):
        name = "sda" if "sda" in opts else "scl"
        raise DriverOptionError(spec["id"], name, opts[name], "sda and scl both, or neither (the bus's own pins)")
    if "sda" not in opts:
        return ()
    return option_int(spec, "sda", None, 0, 255), option_int(spec, "scl", None, 0, 255)


def check_options(spec: dict) -> None:
    """Every driver_options setting of a linux_iio, adc or i2c channel as its drivers take
    them, on any platform (`wichtel profile check` finds a wrong chip or a typo before a
    device does); DriverOptionError for the first they cannot use. No hardware is touched."""
    driver = spec["driver"]
    if driver == "linux_iio":
        iio_options(spec)
    elif driver == "adc":
        adc_options(spec)
    elif driver == "i2c":
        option_int(spec, "bus", 0, 0, 255)
        i2c_pins(spec)
        i2c_address(spec)
        make_chip(spec, None, ("bus", "sda", "scl"))
        return
    else:
        return
    LinearMap(spec)
    stuck_watch(spec)


# --- Linux IIO ----------------------------------------------------------------------------


def parse_sysfs_number(text: object, where: str, integer: bool) -> float:
    """A number from a sysfs attribute's text (bytes or str, a newline at the end);
    SensorError implausible for anything else (the kernel writes nothing else there)."""
    try:
        s = text.decode() if isinstance(text, (bytes, bytearray)) else str(text)
    except UnicodeError as e:
        raise SensorError("implausible", "%s: %r is no number" % (where, text)) from e
    s = s.strip()
    try:
        value = int(s) if integer else float(s)
    except ValueError as e:
        raise SensorError(
            "implausible", "%s: %r is no %s" % (where, s[:40], "whole number" if integer else "number")
        ) from e
    if not integer and (value != value or value in (math.inf, -math.inf)):
        raise SensorError("implausible", "%s: %r is no finite number" % (where, s[:40]))
    return value


def iio_volts(raw: int, scale_mv: float, offset: float, bits: int, where: str) -> float:
    """Volts from an IIO voltage channel: (raw + offset) * scale millivolts (the IIO ABI).
    bits (0: unknown) is the ADC's resolution: a raw reading at its top rail is a
    saturated input, outside its range one the ADC cannot give; both are implausible."""
    if bits:
        top = (1 << bits) - 1
        if raw < 0 or raw > top:
            raise SensorError("implausible", "%s: raw %d outside a %d-bit ADC's 0..%d" % (where, raw, bits, top))
        if raw == top:
            raise SensorError(
                "implausible", "%s: raw %d is the %d-bit ADC's top rail (input saturated)" % (where, raw, bits)
            )
    if not 0 < scale_mv < math.inf:
        raise SensorError(
            "implausible", "%s: scale %r mV per LSB; expected a finite number above 0" % (where, scale_mv)
        )
    volts = (raw + offset) * scale_mv / 1000.0
    if not -math.inf < volts < math.inf:
        raise SensorError(
            "implausible", "%s: (raw %d + offset %r) * scale %r is no voltage" % (where, raw, offset, scale_mv)
        )
    return volts


# --- The board's ADC (machine.ADC) --------------------------------------------------------


def adc_volts(u16: int, uv: object, full_scale_v: float, where: str) -> float:
    """One machine.ADC conversion in volts: from read_uv() (calibrated, ESP32) when the
    port has it, else read_u16() * full_scale_v / 65535. A read_u16() of 65535 is an input
    at or above the ADC's full scale (saturated): implausible."""
    if not 0 <= u16 <= 0xFFFF:
        raise SensorError("implausible", "%s: read_u16 gave %r; expected 0..65535" % (where, u16))
    if u16 == 0xFFFF:
        raise SensorError("implausible", "%s: read_u16 65535, the ADC's top rail (input saturated)" % where)
    if uv is None:
        return u16 * full_scale_v / 0xFFFF
    if not isinstance(uv, int) or uv < 0:
        raise SensorError("implausible", "%s: read_uv gave %r; expected microvolts >= 0" % (where, uv))
    return uv / 1e6


# --- ADS1115 ------------------------------------------------------------------------------

ADS1115 = "ads1115"
ADXL345 = "adxl345"
CHIPS = (ADS1115, ADXL345)
DEFAULT_ADDRESS = {ADS1115: 0x48, ADXL345: 0x53}

_ADS_CONVERSION = const(0x00)
_ADS_CONFIG = const(0x01)
_ADS_OS = const(0x8000)  # write: start a single conversion; read: 1 = idle (result ready)
# PGA full-scale voltage -> the config's PGA bits (11:9).
ADS1115_FSR = {6.144: 0, 4.096: 1, 2.048: 2, 1.024: 3, 0.512: 4, 0.256: 5}
_ADS_DR_860 = const(7)  # data rate bits (7:5) for 860 SPS


def ads1115_config(input_pin: int, fsr_v: float) -> int:
    """The config word starting one single-shot conversion of AIN<input_pin> against GND:
    OS=1, MUX=100+input, PGA for fsr_v, MODE=single-shot, 860 SPS, comparator off."""
    if input_pin not in (0, 1, 2, 3) or fsr_v not in ADS1115_FSR:
        raise ConfigError("ADS1115: input %r, full scale %r V; expected 0..3 and one of %s"
                          % (input_pin, fsr_v, sorted(ADS1115_FSR)))  # fmt: skip
    return _ADS_OS | ((4 + input_pin) << 12) | (ADS1115_FSR[fsr_v] << 9) | 0x0100 | (_ADS_DR_860 << 5) | 0x0003


def ads1115_volts(raw: int, fsr_v: float, where: str) -> float:
    """A conversion result (two's complement) in volts; a saturated code (either rail) or
    a single-ended result well below 0 V is implausible."""
    if raw >= 0x7FFF or raw <= -0x8000:
        raise SensorError(
            "implausible", "%s: conversion %d at the rail of +-%s V (input saturated)" % (where, raw, fsr_v)
        )
    if raw < -ADS1115_NEGATIVE_NOISE_LSB:
        raise SensorError("implausible", "%s: conversion %d is below 0 V on a single-ended input" % (where, raw))
    return raw * fsr_v / 32768


def check_ads1115_echo(config: int, word: int, where: str) -> bool:
    """Whether a config read-back says the conversion is ready. Bits 14..0 must echo what
    was written: anything else is no ADS1115 (or a bus returning 0xFF/0x00): implausible."""
    if (word & 0x7FFF) != (config & 0x7FFF):
        raise SensorError(
            "implausible", "%s: config reads 0x%04x after writing 0x%04x; no ADS1115" % (where, word, config)
        )
    return bool(word & _ADS_OS)


class Ads1115:
    """One single-ended input of an ADS1115 as a channel in the profile's unit."""

    def __init__(self, spec: dict, bus: object) -> None:
        self.bus = bus
        self.where = "channel %s (ADS1115)" % spec["id"]
        self.fsr = float(option_choice(spec, "fsr", 4.096, tuple(sorted(ADS1115_FSR))))  # type: ignore[arg-type]
        self.config = ads1115_config(option_int(spec, "input", 0, 0, 3), self.fsr)
        self.to_unit = LinearMap(spec)
        self.stuck = stuck_watch(spec)
        self._word = bytes(((self.config >> 8) & 0xFF, self.config & 0xFF))

    def read(self, t_ms: int) -> float:
        bus = self.bus
        with_retries(lambda: bus.write(_ADS_CONFIG, self._word), self.where + " config")  # type: ignore[attr-defined]
        for _ in range(ADS1115_MAX_POLLS):
            bus.sleep_ms(ADS1115_POLL_MS)  # type: ignore[attr-defined]
            b = with_retries(lambda: bus.read(_ADS_CONFIG, 2), self.where + " config")  # type: ignore[attr-defined]
            if check_ads1115_echo(self.config, _word16(b, self.where), self.where):
                break
        else:
            raise SensorError(
                "stuck", "%s: no conversion ready after %d ms" % (self.where, ADS1115_MAX_POLLS * ADS1115_POLL_MS)
            )
        b = with_retries(lambda: bus.read(_ADS_CONVERSION, 2), self.where + " conversion")  # type: ignore[attr-defined]
        w = _word16(b, self.where)
        raw = w - 0x10000 if w & 0x8000 else w
        self.stuck.feed(raw)
        return self.to_unit(ads1115_volts(raw, self.fsr, self.where))


def _word16(b: object, where: str) -> int:
    if not isinstance(b, (bytes, bytearray)) or len(b) != 2:
        raise SensorError("failed", "%s: the bus gave %r for a 2-byte register" % (where, b))
    return (b[0] << 8) | b[1]


# --- ADXL345 ------------------------------------------------------------------------------

_ADXL_DEVID = const(0x00)
_ADXL_BW_RATE = const(0x2C)
_ADXL_POWER_CTL = const(0x2D)
_ADXL_DATA_FORMAT = const(0x31)
_ADXL_DATAX0 = const(0x32)
ADXL345_DEVID = const(0xE5)
_ADXL_RATE_3200HZ = const(0x0F)
_ADXL_MEASURE = const(0x08)
_ADXL_FULL_RES = const(0x08)
ADXL345_G_PER_LSB = 0.0039  # full resolution: 3.9 mg per LSB at every range
ADXL345_RANGES = {2: 0, 4: 1, 8: 2, 16: 3}  # +-g -> DATA_FORMAT range bits


def adxl345_sample(b: object, range_g: int, where: str) -> tuple:
    """(x, y, z) raw counts of one DATAX0..DATAZ1 read (little-endian two's complement);
    a count at or beyond the range's rails (+-range_g in full resolution) is a saturated
    or impossible sample: implausible."""
    if not isinstance(b, (bytes, bytearray)) or len(b) != 6:
        raise SensorError("failed", "%s: the bus gave %r for DATAX0..DATAZ1" % (where, b))
    rail = 512 << ADXL345_RANGES[range_g]  # 10 bits at +-2 g ... 13 bits at +-16 g
    out = (signed16(b[1], b[0]), signed16(b[3], b[2]), signed16(b[5], b[4]))
    for v in out:
        if v >= rail - 1 or v <= -rail:
            raise SensorError("implausible", "%s: sample %r at the +-%d g rails (saturated)" % (where, out, range_g))
    return out


def vibration_rms_g(samples: list, where: str) -> float:
    """RMS of the vibration in g over a burst of (x, y, z) counts: each axis's mean is
    taken away (gravity and slow tilt, whatever the mounting), the rest is the vector RMS
    sqrt(mean(dx^2 + dy^2 + dz^2)). A burst with no noise at all is a stuck bus or chip;
    a mean far from 1 g is no accelerometer at rest on an appliance."""
    n = len(samples)
    if n < 2:
        raise SensorError("failed", "%s: %d samples; need 2 or more" % (where, n))
    first = samples[0]
    if all(s == first for s in samples):
        raise SensorError("stuck", "%s: %d identical samples %r (a live chip is never that still)" % (where, n, first))
    mx = sum(s[0] for s in samples) / n
    my = sum(s[1] for s in samples) / n
    mz = sum(s[2] for s in samples) / n
    g = math.sqrt(mx * mx + my * my + mz * mz) * ADXL345_G_PER_LSB
    if not ADXL345_GRAVITY_MIN_G <= g <= ADXL345_GRAVITY_MAX_G:
        raise SensorError("implausible", "%s: mean acceleration %.2f g; expected %.1f..%.1f g (gravity)"
                          % (where, g, ADXL345_GRAVITY_MIN_G, ADXL345_GRAVITY_MAX_G))  # fmt: skip
    acc = 0.0
    for s in samples:
        dx = s[0] - mx
        dy = s[1] - my
        dz = s[2] - mz
        acc += dx * dx + dy * dy + dz * dz
    return math.sqrt(acc / n) * ADXL345_G_PER_LSB


class Adxl345:
    """An ADXL345's vibration as a channel: RMS in g over a burst of samples. The chip is
    set up at the first read and again after any failed read (it may have been
    replugged or reset to standby)."""

    def __init__(self, spec: dict, bus: object) -> None:
        self.bus = bus
        self.where = "channel %s (ADXL345)" % spec["id"]
        self.range_g = int(option_choice(spec, "range_g", 16, tuple(sorted(ADXL345_RANGES))))  # type: ignore[call-overload]
        self.burst = option_int(spec, "samples", ADXL345_DEFAULT_BURST, ADXL345_MIN_BURST, ADXL345_MAX_BURST)
        self.ready = False

    def setup(self) -> None:
        bus = self.bus
        b = with_retries(lambda: bus.read(_ADXL_DEVID, 1), self.where + " DEVID")  # type: ignore[attr-defined]
        if not isinstance(b, (bytes, bytearray)) or len(b) != 1:
            raise SensorError("failed", "%s: the bus gave %r for the 1-byte DEVID" % (self.where, b))
        if b[0] != ADXL345_DEVID:
            raise SensorError("implausible", "%s: DEVID 0x%02x; expected 0xe5 (another chip)" % (self.where, b[0]))
        fmt = _ADXL_FULL_RES | ADXL345_RANGES[self.range_g]
        for reg, value in (
            (_ADXL_BW_RATE, _ADXL_RATE_3200HZ),
            (_ADXL_DATA_FORMAT, fmt),
            (_ADXL_POWER_CTL, _ADXL_MEASURE),
        ):
            data = bytes((value,))
            with_retries(lambda: bus.write(reg, data), "%s register 0x%02x" % (self.where, reg))  # type: ignore[attr-defined]  # noqa: B023
        self.ready = True

    def read(self, t_ms: int) -> float:
        try:
            if not self.ready:
                self.setup()
            bus = self.bus
            samples = []
            for _ in range(self.burst):
                b = with_retries(lambda: bus.read(_ADXL_DATAX0, 6), self.where + " DATAX0")  # type: ignore[attr-defined]
                samples.append(adxl345_sample(b, self.range_g, self.where))
            return vibration_rms_g(samples, self.where)
        except SensorError:
            self.ready = False
            raise


# Each chip's options; a platform adds its own bus options (bus, and on a board sda, scl).
CHIP_OPTIONS = {
    ADS1115: ("chip", "address", "input", "fsr") + ANALOG_OPTIONS,
    ADXL345: ("chip", "address", "range_g", "samples"),
}


def make_chip(spec: dict, bus: object, bus_options: tuple) -> object:
    """The chip driver driver_options.chip names, on a register bus; bus_options: the
    options the platform's bus adapter took."""
    chip = option_choice(spec, "chip", None, CHIPS)
    check_known(spec, CHIP_OPTIONS[chip] + bus_options, "an %s on I2C" % chip)  # type: ignore[index]
    return Ads1115(spec, bus) if chip == ADS1115 else Adxl345(spec, bus)


def i2c_address(spec: dict) -> int:
    """driver_options.address (7-bit, 0x08..0x77), the chip's default when absent."""
    chip = option_choice(spec, "chip", None, CHIPS)
    return option_int(spec, "address", DEFAULT_ADDRESS[chip], 0x08, 0x77)  # type: ignore[index]
