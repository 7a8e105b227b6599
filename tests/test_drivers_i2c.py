"""The analog and I2C sensor drivers: ADS1115 and ADXL345 through smbus2 (Pi) and machine.I2C
(board) against an emulated bus replaying recorded register traces, Linux IIO against fake
sysfs trees, the board's ADC against an emulated machine.ADC; faults included, the board
drivers on the MicroPython unix port too, and `wichtel run` on real drivers."""

import asyncio
import contextlib
import io
import math
import os
import statistics

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import drivers, profile_loader
from agent.cli import main
from agent.core import sensor_i2c
from agent.core.clock import ManualClock
from agent.core.errors import ConfigError, SensorError
from agent.core.events import SENSOR_FAULT, Event
from agent.core.pipeline import Agent
from agent.drivers import i2c as pi_i2c
from agent.host import FixedPhase
from firmware import board_analog, board_drivers
from hil_tests.emulated.analog import EmulatedADC, fake_iio
from hil_tests.emulated.i2c import EmulatedI2C, Machine, TraceMismatch, parse_trace
from tests import micropython_unix

ROOT = micropython_unix.ROOT
TRACES = os.path.join(ROOT, "hil_tests", "traces")
G = sensor_i2c.ADXL345_G_PER_LSB


def _spec(driver: str, **opts: object) -> dict:
    return {"id": "ch", "driver": driver, "driver_options": opts}


def _outcomes(driver: object, n: int) -> list:
    """n readings: each a value (rounded) or the SensorError's reason."""
    out: list = []
    for _ in range(n):
        try:
            out.append(round(driver.read(0), 6))  # type: ignore[attr-defined]
        except SensorError as e:
            out.append(e.reason)
    return out


def _pi(trace: str, **opts: object) -> tuple:
    bus = EmulatedI2C.from_file(os.path.join(TRACES, trace + ".trace"))
    return drivers.make(_spec("i2c", **opts), {"smbus": lambda n: bus}), bus


def _board(trace: str, **opts: object) -> tuple:
    bus = EmulatedI2C.from_file(os.path.join(TRACES, trace + ".trace"))
    return board_drivers.make(_spec("i2c", **opts), Machine(i2c={0: bus})), bus


def _ads_volts(counts: int, fsr: float = 4.096) -> float:
    return counts * fsr / 32768


def _rms_g(samples: list) -> float:
    # Independently of the driver: gravity is each axis's mean, the vibration the spread
    # around it; the vector RMS is the root of the three population variances summed.
    return math.sqrt(sum(statistics.pvariance([s[i] for s in samples]) for i in range(3))) * G


VIBRATION_1 = [(10, -5, 256), (-10, 5, 260), (12, -3, 252), (-12, 3, 256)]
VIBRATION_2 = [(2, -1, 257), (-2, 1, 256), (1, 0, 255), (-1, 0, 256)]

# What each recorded trace gives, reading by reading (the traces say why in their comments).
EXPECTED = {
    "ads1115_clamp": ({"chip": "ads1115", "scale": 30}, [_ads_volts(0x1234) * 30, _ads_volts(0x1240) * 30]),
    "ads1115_faults": (
        {"chip": "ads1115"},
        [
            "absent",
            "stuck",
            _ads_volts(0x1000),
            "stuck",
            _ads_volts(0x2000),
            "implausible",
            "implausible",
            "implausible",
            "stuck",
        ],
    ),
    "adxl345_vibration": ({"chip": "adxl345", "samples": 4}, [_rms_g(VIBRATION_1), _rms_g(VIBRATION_2)]),
    "adxl345_faults": (
        {"chip": "adxl345", "samples": 4},
        ["absent", "implausible", "stuck", "implausible", "implausible", "stuck", _rms_g(VIBRATION_1)],
    ),
}


def _same(got: list, expected: list) -> bool:
    return len(got) == len(expected) and all(
        g == e if isinstance(e, str) else isinstance(g, float) and abs(g - e) < 1e-6
        for g, e in zip(got, expected, strict=True)
    )


# --- I2C on a Pi (smbus2) and on a board (machine.I2C) ---------------------------------------


@pytest.mark.parametrize("trace", sorted(EXPECTED))
def test_the_pi_driver_gives_the_recorded_readings_and_faults(trace: str) -> None:
    opts, expected = EXPECTED[trace]
    driver, bus = _pi(trace, **opts)
    got = _outcomes(driver, len(expected))
    assert _same(got, expected), got
    assert bus.remaining() == 0  # every recorded transaction done, none more (retries, polls, burst)


@pytest.mark.parametrize("trace", sorted(EXPECTED))
def test_the_board_driver_gives_the_same_readings_and_faults_as_the_pi_one(trace: str) -> None:
    opts, expected = EXPECTED[trace]
    pi, pi_bus = _pi(trace, **opts)
    board, board_bus = _board(trace, **opts)
    on_pi = _outcomes(pi, len(expected))
    assert _outcomes(board, len(expected)) == on_pi and _same(on_pi, expected)
    assert board_bus.remaining() == pi_bus.remaining() == 0


def test_the_fault_readings_say_what_went_wrong_and_where() -> None:
    driver, _ = _pi("ads1115_faults", chip="ads1115")
    messages = []
    for _ in range(9):
        try:
            driver.read(0)
        except SensorError as e:
            messages.append(str(e))
    assert messages[0] == "absent: channel ch (ADS1115) config: no answer (errno 121)"
    assert messages[1] == "stuck: channel ch (ADS1115) config: errno 5 on 3 tries in a row"
    assert messages[2] == "stuck: channel ch (ADS1115): no conversion ready after 4 ms"
    assert messages[3] == "implausible: channel ch (ADS1115): config reads 0xffff after writing 0xc3e3; no ADS1115"


@pytest.mark.parametrize("failures", [sensor_i2c.I2C_TRIES - 1, sensor_i2c.I2C_TRIES])
def test_a_failing_transaction_is_tried_I2C_TRIES_times_then_the_bus_is_stuck(failures: int) -> None:
    ok = "w 48 01 c3e3\nr 48 01 c3e3\nr 48 00 0800\n" if failures < sensor_i2c.I2C_TRIES else ""
    bus = EmulatedI2C(parse_trace("w 48 01 !eio *%d\n%s" % (failures, ok)))
    driver = drivers.make(_spec("i2c", chip="ads1115"), {"smbus": lambda n: bus})
    expected = [round(_ads_volts(0x800), 6)] if ok else ["stuck"]
    assert _outcomes(driver, 1) == expected and bus.remaining() == 0


class _Timed:
    """Register bus wrapper that adds up the time a driver asks to sleep."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.slept_ms = 0

    def read(self, reg: int, n: int) -> bytes:
        return self.inner.read(reg, n)  # type: ignore[attr-defined, no-any-return]

    def write(self, reg: int, data: bytes) -> None:
        self.inner.write(reg, data)  # type: ignore[attr-defined]

    def sleep_ms(self, ms: int) -> None:
        self.slept_ms += ms


@pytest.mark.parametrize("busy", [sensor_i2c.ADS1115_MAX_POLLS - 1, sensor_i2c.ADS1115_MAX_POLLS])
def test_the_wait_for_a_conversion_is_bounded(busy: int) -> None:
    ready = "r 48 01 c3e3\nr 48 00 0800\n" if busy < sensor_i2c.ADS1115_MAX_POLLS else ""
    bus = EmulatedI2C(parse_trace("w 48 01 c3e3\nr 48 01 43e3 *%d\n%s" % (busy, ready)))
    regs = _Timed(pi_i2c.SMBusRegisters(lambda n: bus, 1, 0x48))
    driver = sensor_i2c.Ads1115(_spec("i2c", chip="ads1115"), regs)
    assert _outcomes(driver, 1) == ([round(_ads_volts(0x800), 6)] if ready else ["stuck"])
    assert bus.remaining() == 0
    # The caller (the asyncio loop) is held for a few ms at most, whatever the chip does.
    assert regs.slept_ms == min(busy + 1, sensor_i2c.ADS1115_MAX_POLLS) * sensor_i2c.ADS1115_POLL_MS <= 4


@pytest.mark.parametrize(
    "input_pin,fsr,config", [(0, 4.096, 0xC3E3), (3, 6.144, 0xF1E3), (1, 0.256, 0xDBE3), (2, 2.048, 0xE5E3)]
)
def test_the_config_word_is_the_datasheet_s(input_pin: int, fsr: float, config: int) -> None:
    # OS=1, MUX=1xx (AINx to GND), PGA, MODE=1 (single-shot), DR=111 (860 SPS), comparator off.
    assert sensor_i2c.ads1115_config(input_pin, fsr) == config


@pytest.mark.parametrize("raw,reason", [(0x7FFE, None), (0x7FFF, "implausible"), (-32, None), (-33, "implausible"),
                                        (-0x8000, "implausible")])  # fmt: skip
def test_ads1115_conversions_at_the_rails_are_implausible(raw: int, reason: object) -> None:
    word = raw & 0xFFFF
    bus = EmulatedI2C(parse_trace("w 48 01 c3e3\nr 48 01 c3e3\nr 48 00 %04x\n" % word))
    got = _outcomes(drivers.make(_spec("i2c", chip="ads1115"), {"smbus": lambda n: bus}), 1)
    assert got == [reason or round(_ads_volts(raw), 6)]


@pytest.mark.parametrize("range_g,top", [(2, 511), (4, 1023), (8, 2047), (16, 4095)])
def test_adxl345_samples_at_the_range_s_rails_are_saturated(range_g: int, top: int) -> None:
    # Full resolution: 10 bits at +-2 g up to 13 bits at +-16 g; the extreme codes are the rails.
    def sample(x: int) -> bytes:
        return bytes((x & 0xFF, (x >> 8) & 0xFF, 0, 0, 0, 1))

    for x in (top - 1, -top):
        assert sensor_i2c.adxl345_sample(sample(x), range_g, "f") == (x, 0, 256)
    for x in (top, -top - 1):
        with pytest.raises(SensorError, match="saturated"):
            sensor_i2c.adxl345_sample(sample(x), range_g, "f")


def _burst_trace(n: int) -> str:
    setup = "r 53 00 e5\nw 53 2c 0f\nw 53 31 0b\nw 53 2d 08\n"
    return setup + "".join("r 53 32 %s\n" % ("0a00fbff0001" if i % 2 else "f6ff05000401") for i in range(n))


@pytest.mark.parametrize("n", [sensor_i2c.ADXL345_MIN_BURST, sensor_i2c.ADXL345_MAX_BURST])
def test_a_vibration_burst_may_have_the_bounds_samples(n: int) -> None:
    bus = EmulatedI2C(parse_trace(_burst_trace(n)))
    driver = drivers.make(_spec("i2c", chip="adxl345", samples=n), {"smbus": lambda k: bus})
    assert _same(_outcomes(driver, 1), [_rms_g([(10, -5, 256), (-10, 5, 260)] * (n // 2))])
    assert bus.remaining() == 0


@pytest.mark.parametrize(
    "opts,words",
    [
        ({}, "driver_options.chip is needed; expected one of ads1115, adxl345"),
        ({"chip": "bmp280"}, "driver_options.chip is 'bmp280'"),
        ({"chip": "ads1115", "address": 0x78}, "driver_options.address is 120; expected a whole number 8..119"),
        ({"chip": "ads1115", "address": 7}, "driver_options.address is 7"),
        ({"chip": "ads1115", "address": 72.5}, "driver_options.address is 72.5"),
        ({"chip": "ads1115", "fsr": 3.3}, "driver_options.fsr is 3.3; expected one of 0.256"),
        ({"chip": "ads1115", "input": 4}, "driver_options.input is 4"),
        ({"chip": "ads1115", "scale": "high"}, "driver_options.scale is 'high'; expected a number"),
        ({"chip": "adxl345", "range_g": 3}, "driver_options.range_g is 3"),
        ({"chip": "adxl345", "samples": sensor_i2c.ADXL345_MIN_BURST - 1}, "driver_options.samples is 3"),
        ({"chip": "adxl345", "samples": sensor_i2c.ADXL345_MAX_BURST + 1}, "driver_options.samples is 33"),
        ({"chip": "ads1115", "stuck_reads": -1}, "driver_options.stuck_reads is -1"),
        (
            {"chip": "ads1115", "adress": 73},
            "driver_options.adress is no such option; expected one of the options of an ads1115 on I2C: chip",
        ),
        (
            {"chip": "adxl345", "input": 1},
            "driver_options.input is no such option; expected one of the options of an adxl345 on I2C",
        ),
    ],
)
def test_options_a_driver_cannot_use_are_refused_naming_channel_and_option(opts: dict, words: str) -> None:
    for make in (
        lambda: drivers.make(_spec("i2c", **opts), {"smbus": lambda n: None}),
        lambda: board_drivers.make(_spec("i2c", **opts), Machine(i2c={0: EmulatedI2C([])})),
    ):
        with pytest.raises(ConfigError) as e:
            make()
        assert str(e.value).startswith("channel 'ch': ") and words in str(e.value)


@pytest.mark.parametrize("address", [0x08, 0x77])
def test_addresses_at_the_bounds_are_taken(address: int) -> None:
    bus = EmulatedI2C(parse_trace("w %02x 01 !nack\n" % address))
    driver = drivers.make(_spec("i2c", chip="ads1115", address=address), {"smbus": lambda n: bus})
    assert _outcomes(driver, 1) == ["absent"] and bus.remaining() == 0


def test_with_the_real_smbus2_a_bus_that_is_not_there_is_an_absent_sensor() -> None:
    # smbus2 itself opens /dev/i2c-250, which no machine has: the channel reports "absent".
    driver = drivers.make(_spec("i2c", chip="adxl345", bus=250), {})
    with pytest.raises(SensorError) as e:
        driver.read(0)
    assert e.value.reason == "absent" and "DEVID: no answer (errno 2)" in str(e.value)


def test_a_bus_that_could_not_be_opened_is_opened_again_at_the_next_reading() -> None:
    bus = EmulatedI2C.from_file(os.path.join(TRACES, "ads1115_clamp.trace"))
    opened: list = []

    def opener(n: int) -> object:
        opened.append(n)
        if len(opened) == 1:
            raise FileNotFoundError(2, "No such file or directory", "/dev/i2c-3")
        return bus

    driver = drivers.make(_spec("i2c", chip="ads1115", bus=3, scale=30), {"smbus": opener})
    assert _outcomes(driver, 2) == ["absent", round(_ads_volts(0x1234) * 30, 6)] and opened == [3, 3]


def test_a_bus_is_reopened_only_when_its_adapter_went_away() -> None:
    text = "w 48 01 !nack\nw 48 01 !enodev\nw 48 01 c3e3\nr 48 01 c3e3\nr 48 00 1234\n"
    bus = EmulatedI2C(parse_trace(text))
    opened: list = []

    def opener(n: int) -> object:
        opened.append(bus.closed)
        bus.closed = False
        return bus

    driver = drivers.make(_spec("i2c", chip="ads1115"), {"smbus": opener})
    # The NACK keeps the bus open; ENODEV closes it, and the next reading opens it again.
    assert _outcomes(driver, 3) == ["absent", "absent", round(_ads_volts(0x1234), 6)]
    assert opened == [False, True] and bus.remaining() == 0


def test_the_board_driver_uses_the_bus_and_pins_of_its_options() -> None:
    bus = EmulatedI2C(parse_trace("w 48 01 !nack\n"))
    machine = Machine(i2c={1: bus})
    driver = board_drivers.make(_spec("i2c", chip="ads1115", bus=1, sda=21, scl=22), machine)
    assert _outcomes(driver, 1) == ["absent"]
    ((bus_id, scl, sda, freq),) = machine.opened
    assert (bus_id, scl.id, sda.id, freq) == (1, 22, 21, 400_000)  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"driver_options\.sda is 21; expected sda and scl both, or neither"):
        board_drivers.make(_spec("i2c", chip="ads1115", sda=21), machine)
    with pytest.raises(ConfigError, match=r"I2C bus 2: I2C\(2\) doesn't exist"):
        board_drivers.make(_spec("i2c", chip="ads1115", bus=2), machine)


def test_the_emulated_bus_fails_a_driver_that_departs_from_the_trace() -> None:
    driver, bus = _pi("ads1115_clamp", chip="ads1115", input=1)  # AIN1: config 0xD3E3, not recorded
    with pytest.raises(TraceMismatch, match="wrote"):
        driver.read(0)
    bus = EmulatedI2C(parse_trace("r 48 00 1234\n"))
    with pytest.raises(TraceMismatch, match="the trace has r 48 00"):
        bus.read_i2c_block_data(0x49, 0, 2)
    with pytest.raises(TraceMismatch, match="after the trace's end"):
        bus.readfrom_mem(0x49, 0, 2)
    with pytest.raises(ValueError, match="trace:2: fault 'busy'"):
        parse_trace("w 48 01 c3e3\nw 48 01 !busy\n")
    with pytest.raises(ValueError, match="trace:1: 'r 48 00'"):
        parse_trace("r 48 00\n")


# --- Linux IIO -----------------------------------------------------------------------------


def _iio(root: str, **opts: object) -> object:
    return drivers.make(_spec("linux_iio", **opts), {"sysfs": root})


def test_iio_gives_volts_through_the_channel_s_scale_and_offset(tmp_path: str) -> None:
    root = str(tmp_path)
    fake_iio(root, 0, "mcp3208", {0: (1234, 0.805664062, None), 1: (100, 1.0, 20)})
    # A pressure sensor, 0.5..4.5 V for 0..10 bar: 2.5 bar per volt, -1.25 bar at 0 V.
    assert _outcomes(_iio(root, input=0, scale=2.5, offset=-1.25), 1) == [round(1.234 * 0.805664062 * 2.5 - 1.25, 6)]
    assert _outcomes(_iio(root, input=1), 1) == [0.12]  # (raw + offset) * scale mV


def test_iio_finds_a_device_by_its_name_and_a_shared_scale(tmp_path: str) -> None:
    root = str(tmp_path)
    fake_iio(root, 0, "other", {0: (1, 1.0, None)})
    fake_iio(root, 3, "ads1015", {2: (1000, None, None)}, shared_scale=2.0)
    assert _outcomes(_iio(root, device="ads1015", input=2), 1) == [2.0]
    assert _outcomes(_iio(root, device="mcp3008", input=2), 1) == ["absent"]


def _eio(path: str) -> None:
    # /proc/self/mem read at offset 0 fails with EIO (nothing is mapped there): a real EIO.
    os.remove(path)
    os.symlink("/proc/self/mem", path)


def _directory(path: str) -> None:
    os.remove(path)
    os.mkdir(path)


def _text(text: str) -> object:
    def write(path: str) -> None:
        with open(path, "w") as f:
            f.write(text)

    return write


@pytest.mark.parametrize(
    "file,damage,reason",
    [
        (None, None, None),  # the healthy tree: a value
        ("", lambda d: os.rename(d, d + "x"), "absent"),  # no such device (the overlay is not loaded)
        ("in_voltage0_raw", os.remove, "absent"),
        ("in_voltage0_scale", os.remove, "absent"),
        ("in_voltage0_raw", _eio, "stuck"),  # EIO on every try
        ("in_voltage0_raw", _directory, "failed"),  # not a bus fault: says what it found
        ("in_voltage0_raw", _text("12ab\n"), "implausible"),
        ("in_voltage0_raw", _text(""), "implausible"),
        ("in_voltage0_raw", _text("4095\n"), "implausible"),  # a 12-bit ADC's top rail: saturated
        ("in_voltage0_raw", _text("4094\n"), None),  # just below it: a value
        ("in_voltage0_raw", _text("-1\n"), "implausible"),
        ("in_voltage0_raw", _text("5000\n"), "implausible"),
        ("in_voltage0_scale", _text("0\n"), "implausible"),
        ("in_voltage0_scale", _text("nan\n"), "implausible"),
        ("in_voltage0_offset", _text("x\n"), "implausible"),
    ],
)
def test_iio_faults_are_sensor_errors_with_their_reason(
    tmp_path: str, file: object, damage: object, reason: object
) -> None:
    root = str(tmp_path)
    d = fake_iio(root, 0, "mcp3208", {0: (2000, 0.805664062, 0)})
    if damage is not None:
        damage(os.path.join(d, file) if file else d)  # type: ignore[arg-type, operator]
    got = _outcomes(_iio(root, input=0, bits=12), 1)
    assert got == [reason] if reason else isinstance(got[0], float), got


def test_iio_refuses_an_option_it_does_not_have(tmp_path: str) -> None:
    with pytest.raises(
        ConfigError,
        match=r"channel 'ch': driver_options\.chip is no such option; expected one of the options of a linux_iio",
    ):
        _iio(str(tmp_path), chip="ads1115")


def test_iio_reads_again_once_the_device_is_back(tmp_path: str) -> None:
    root = str(tmp_path)
    driver = _iio(root, input=0)
    with pytest.raises(SensorError, match=r"absent: channel ch \(IIO\): no IIO device .*iio:device0$"):
        driver.read(0)
    fake_iio(root, 0, "mcp3208", {0: (1000, 1.0, None)})
    assert _outcomes(driver, 1) == [1.0]


@pytest.mark.parametrize("limit", [2, 3])
def test_stuck_reads_identical_readings_in_a_row_are_a_stuck_sensor(tmp_path: str, limit: int) -> None:
    root = str(tmp_path)
    d = fake_iio(root, 0, "mcp3208", {0: (1000, 1.0, None)})
    driver = _iio(root, input=0, stuck_reads=limit)
    assert _outcomes(driver, limit) == [1.0] * (limit - 1) + ["stuck"]
    _text("1001\n")(os.path.join(d, "in_voltage0_raw"))
    assert _outcomes(driver, 1) == [1.001]  # noise again: readings again


def test_stuck_reads_is_bounded() -> None:
    top = sensor_i2c.MAX_STUCK_READS
    watch = sensor_i2c.stuck_watch(_spec("adc", stuck_reads=top))
    for _ in range(top - 1):
        watch.feed(7)
    with pytest.raises(SensorError, match="the same raw reading 7 100000 times in a row"):
        watch.feed(7)
    off = sensor_i2c.stuck_watch(_spec("adc"))
    for _ in range(top + 10):
        off.feed(7)
    assert off.run == top  # the count stops at the bound: it never grows into a big number
    with pytest.raises(ConfigError, match="stuck_reads is 100001"):
        sensor_i2c.stuck_watch(_spec("adc", stuck_reads=sensor_i2c.MAX_STUCK_READS + 1))


# --- The board's ADC -------------------------------------------------------------------------


def _adc(codes: list, **opts: object) -> tuple:
    adc = EmulatedADC(codes, **{k: opts.pop(k) for k in ("has_uv",) if k in opts})  # type: ignore[arg-type]
    machine = Machine(adc={34: adc})
    return board_drivers.make(_spec("adc", pin=34, **opts), machine), adc


def test_the_board_adc_averages_calibrated_conversions_into_the_unit() -> None:
    driver, adc = _adc([20000, 20002] * 4, scale=30)
    uv = (20000 * 3_100_000 // 65535 + 20002 * 3_100_000 // 65535) / 2
    assert _outcomes(driver, 1) == [round(uv / 1e6 * 30, 6)] and adc.atten == 3  # ATTN_11DB by default
    driver, _ = _adc([32768], samples=1, has_uv=False, full_scale_v=3.3)
    assert _outcomes(driver, 1) == [round(32768 * 3.3 / 65535, 6)]


def test_the_board_adc_faults() -> None:
    driver, _ = _adc([1000, 65535], samples=2)
    assert _outcomes(driver, 1) == ["implausible"]  # saturated
    driver, _ = _adc([None] * sensor_i2c.I2C_TRIES, samples=1)
    assert _outcomes(driver, 1) == ["stuck"]
    driver, _ = _adc([None] * (sensor_i2c.I2C_TRIES - 1) + [1000], samples=1)
    assert isinstance(_outcomes(driver, 1)[0], float)
    driver, _ = _adc([1000] * 3, samples=1, stuck_reads=3)
    assert _outcomes(driver, 3)[2] == "stuck"
    with pytest.raises(ConfigError, match="channel 'ch': pin 5: invalid Pin for ADC"):
        board_analog.make(_spec("adc", pin=5), Machine(adc={34: EmulatedADC([])}))
    with pytest.raises(ConfigError, match=r"driver_options\.samples is 65"):
        _adc([], samples=sensor_i2c.ADC_MAX_SAMPLES + 1)
    with pytest.raises(
        ConfigError, match=r"driver_options\.bits is no such option; expected one of the options of an adc input: pin"
    ):
        board_drivers.make(_spec("adc", pin=34, bits=12), Machine(adc={34: EmulatedADC([])}))
    with pytest.raises(ConfigError, match=r"driver_options\.pin is needed"):
        board_drivers.make(_spec("adc"), Machine())


# --- Any raw input: a value or a SensorError, never a crash ------------------------------------


@given(st.binary(max_size=80))
def test_any_sysfs_text_is_a_number_or_implausible(text: bytes) -> None:
    try:
        value = sensor_i2c.parse_sysfs_number(text, "f", True)
    except SensorError as e:
        assert e.reason == "implausible"
    else:
        assert value == int(text.decode().strip())


@given(st.integers(-(2**40), 2**40), st.integers(0, 32), st.floats(allow_nan=True), st.floats(-1e6, 1e6))
def test_any_iio_reading_is_volts_or_implausible(raw: int, bits: int, scale: float, offset: float) -> None:
    try:
        volts = sensor_i2c.iio_volts(raw, scale, offset, bits, "f")
    except SensorError as e:
        assert e.reason == "implausible"
    else:
        assert 0 < scale < math.inf and (not bits or 0 <= raw < (1 << bits) - 1) and math.isfinite(volts)


@settings(max_examples=150)
@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.sampled_from(sorted(sensor_i2c.ADS1115_FSR)))
def test_any_ads1115_answer_is_a_value_within_its_range_or_a_sensor_error(echo: int, word: int, fsr: float) -> None:
    config = sensor_i2c.ads1115_config(0, fsr)
    text = "w 48 01 %04x\nr 48 01 %04x *%d\nr 48 00 %04x\n" % (config, echo, sensor_i2c.ADS1115_MAX_POLLS, word)
    bus = EmulatedI2C(parse_trace(text))
    driver = drivers.make(_spec("i2c", chip="ads1115", fsr=fsr), {"smbus": lambda n: bus})
    try:
        volts = driver.read(0)
    except SensorError as e:
        assert e.reason in ("implausible", "stuck")
        assert (
            e.reason == "stuck" or (echo & 0x7FFF) != (config & 0x7FFF) or not -32 <= word - (word >> 15 << 16) < 0x7FFF
        )
    else:
        assert (echo & 0x7FFF) == (config & 0x7FFF) and echo & 0x8000
        raw = word - 0x10000 if word & 0x8000 else word
        assert volts == raw * fsr / 32768 and -fsr / 1000 < volts < fsr


@given(st.binary(min_size=6, max_size=6), st.sampled_from(sorted(sensor_i2c.ADXL345_RANGES)))
def test_any_adxl345_sample_is_within_its_range_or_implausible(data: bytes, range_g: int) -> None:
    try:
        sample = sensor_i2c.adxl345_sample(data, range_g, "f")
    except SensorError as e:
        assert e.reason == "implausible"
    else:
        assert all(abs(v) * G < range_g for v in sample)


@given(st.lists(st.tuples(*[st.integers(-4095, 4094)] * 3), min_size=0, max_size=32))
def test_any_burst_is_a_vibration_or_a_sensor_error(samples: list) -> None:
    try:
        rms = sensor_i2c.vibration_rms_g(samples, "f")
    except SensorError as e:
        assert e.reason in ("stuck", "implausible", "failed")
    else:
        assert rms == pytest.approx(_rms_g(samples), abs=1e-9) and rms >= 0


@given(st.integers(-5, 70000), st.one_of(st.none(), st.integers(-5, 4_000_000)))
def test_any_adc_conversion_is_volts_or_implausible(u16: int, uv: object) -> None:
    try:
        volts = sensor_i2c.adc_volts(u16, uv, 3.3, "f")
    except SensorError as e:
        assert e.reason == "implausible"
    else:
        assert 0 <= u16 < 65535 and 0 <= volts <= 4.0


# --- The board drivers on the MicroPython unix port ------------------------------------------

# One script, run on CPython (here) and on the unix port: the same readings and faults.
BOARD_SCRIPT = """
from agent.core.errors import SensorError
from firmware import board_drivers
from hil_tests.emulated.analog import EmulatedADC
from hil_tests.emulated.i2c import EmulatedI2C, Machine

TRACES = %r
CASES = %r

def outcomes(driver, n):
    out = []
    for _ in range(n):
        try:
            out.append("%%.6f" %% driver.read(0))
        except SensorError as e:
            out.append(e.reason)
    return out

for name, opts, n in CASES:
    bus = EmulatedI2C.from_file(TRACES + "/" + name + ".trace")
    driver = board_drivers.make({"id": "ch", "driver": "i2c", "driver_options": opts}, Machine(i2c={0: bus}))
    print(name, outcomes(driver, n), bus.remaining())
adc = EmulatedADC([20000, 20002, 65535, 7, None, None, None, 300, 300, 300])
driver = board_drivers.make({"id": "ch", "driver": "adc", "driver_options": {"pin": 34, "samples": 2, "scale": 2}},
                            Machine(adc={34: adc}))
print("adc", outcomes(driver, 3))
driver = board_drivers.make({"id": "ch", "driver": "adc", "driver_options": {"pin": 34, "samples": 1,
                             "stuck_reads": 3}}, Machine(adc={34: adc}))
print("adc", outcomes(driver, 3))
"""


def _board_script() -> str:
    cases = [(name, EXPECTED[name][0], len(EXPECTED[name][1])) for name in sorted(EXPECTED)]
    return BOARD_SCRIPT % (TRACES, cases)


def test_the_board_drivers_run_on_micropython_as_on_cpython() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(_board_script(), "board_script", "exec"), {"__name__": "board_script"})
    on_cpython = out.getvalue()
    lines = on_cpython.splitlines()
    assert lines[-2:] == [
        # The mean of two calibrated conversions at 2 units per volt; a saturated one; three EIOs.
        "adc ['%.6f', 'implausible', 'stuck']" % ((20000 * 3_100_000 // 65535 + 20002 * 3_100_000 // 65535) / 1e6),
        "adc ['%.6f', '%.6f', 'stuck']" % ((300 * 3_100_000 // 65535 / 1e6,) * 2),
    ]
    assert len(lines) == len(EXPECTED) + 2 and all(line.endswith(" 0") for line in lines[:-2])
    # Compiling the sources from text peaks near 140 KB (agent/core/sensor_i2c.py is long);
    # compiled to .mpy the same script runs in 96 KB and holds ~50 KB at its end, emulated
    # buses and traces included.
    assert micropython_unix.run(_board_script(), heap=192 * 1024) == on_cpython


# --- Through the Agent and `wichtel run` ------------------------------------------------------


def _real_profile(tmp_path: str, vibration_bus: int = 1) -> str:
    """The washing machine example with real sensors: the motor current from an ADS1015 on
    IIO (a 30 A/V clamp), the drum vibration from an ADXL345, the inlet flow from an IIO
    input with a 12-bit ADC."""
    with open(profile_loader.example("washing_machine"), encoding="utf-8") as f:
        prof = yaml.safe_load(f)
    options = {
        "motor_current": ("linux_iio", {"device": "ads1015", "input": 0, "scale": 30}),
        "drum_vibration": ("i2c", {"chip": "adxl345", "bus": vibration_bus, "samples": 4}),
        "inlet_flow": ("linux_iio", {"device": 0, "input": 1, "bits": 12}),
    }
    prof["channels"] = [ch for ch in prof["channels"] if ch["id"] in options]
    for ch in prof["channels"]:
        ch["driver"], ch["driver_options"] = options[ch["id"]]
    prof["consumables"] = []
    prof.pop("cycle_model")  # it judges the water temperature too, which this machine does without
    path = os.path.join(tmp_path, "real.yaml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(prof, f, allow_unicode=True)
    return path


def test_through_the_agent_failing_drivers_make_sensor_fault_events_with_the_reason(tmp_path: str) -> None:
    root = str(tmp_path)
    fake_iio(root, 0, "ads1015", {0: (250, 2.0, None), 1: (4095, 0.805664062, None)})  # inlet flow saturated
    prof = profile_loader.load(_real_profile(root))
    nack = EmulatedI2C(parse_trace("r 53 00 !nack *10\n"))
    chosen = drivers.make_all(prof, {"sysfs": root, "smbus": lambda n: nack})
    seen: list = []
    values: list = []

    def observe(stage: str, a: object, b: object) -> None:
        if stage == "decision" and isinstance(a, Event) and a.kind == SENSOR_FAULT:
            seen.append((a.channel, dict(a.fields)))
        if stage == "sample" and getattr(a, "id", "") == "motor_current":
            values.append(b)

    agent = Agent(prof, "d", chosen, ManualClock(), FixedPhase("idle"), observer=observe)
    asyncio.run(agent.run(10_000))
    assert values and all(v == pytest.approx(0.5 * 30) for v in values)  # 250 * 2 mV = 0.5 V at 30 A/V
    # Two sensors failing at once are one alert: the first raises it, the other joins it.
    assert sorted((ch, f["reason"], f["alert"]) for ch, f in seen) == [
        ("drum_vibration", "absent", 1),
        ("inlet_flow", "implausible", 1),
    ]
    assert [f["state"] for _, f in seen] == ["raised", "joined"]
    assert nack.remaining() == 0  # the ADXL345 was asked at each of its 10 readings


def test_run_reads_the_profile_s_real_drivers_from_a_sysfs_tree(
    tmp_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(tmp_path)
    fake_iio(root, 0, "ads1015", {0: (250, 2.0, None), 1: (2048, 0.805664062, None)})
    # The vibration sensor's bus, /dev/i2c-250, is on no machine: real smbus2 says absent.
    code = main(["run", "--profile", _real_profile(root, vibration_bus=250), "--sysfs", root, "--hours", "0.0004"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "drum_vibration gave no reading (absent): sensor fault" in out
    assert 0 < int(out.split("Done: ", 1)[1].split(" ", 1)[0])
    seconds = float(out.split(" s of real time", 1)[0].rsplit(" ", 1)[1])
    # The time that passed, not the 0.0004 h asked for: the last samples are due at 1 s (the
    # next ones, at 2 s, after the end); later only on a very busy machine.
    assert 1.0 <= seconds < 60


@pytest.mark.parametrize(
    "args,words",
    [
        ([], "channel 'motor_current': driver 'sim' does not run on a Pi"),
        (["--speed", "10"], "--speed 10: real sensors run in real time"),
        (["--fault", "pump_clog"], "--fault is for --simulate"),
    ],
)
def test_run_without_simulate_refuses_what_real_sensors_cannot_do(
    args: list, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--profile", profile_loader.example("washing_machine"), "--hours", "0.001", *args])
    assert code == 2 and words in capsys.readouterr().err


def test_sysfs_goes_with_real_sensors_only(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["run", "--profile", profile_loader.example("washing_machine"), "--simulate", "--sysfs", "/tmp"])
    assert e.value.code == 2 and "not allowed with argument --simulate" in capsys.readouterr().err


BAD_OPTIONS = [
    ("drum_vibration", {"chip": "bmp280"}, "channels[1].driver_options.chip: got 'bmp280' (str); expected one of"),
    ("drum_vibration", {"chip": "ads1115", "adress": 73}, "channels[1].driver_options.adress: got 'adress' (str); "
     "expected one of the options of an ads1115 on I2C: chip, address"),
    ("drum_vibration", {"chip": "adxl345", "sda": 21}, "driver_options.sda: got 21 (int); expected sda and scl"),
    ("motor_current", {"input": 2.5}, "channels[0].driver_options.input: got 2.5 (float); expected a whole"),
    ("inlet_flow", {"stuck_reads": -2}, "channels[2].driver_options.stuck_reads: got -2 (int)"),
]  # fmt: skip


@pytest.mark.parametrize("channel,options,words", BAD_OPTIONS)
def test_profile_check_finds_driver_options_the_drivers_cannot_use(
    tmp_path: str, channel: str, options: dict, words: str
) -> None:
    path = _real_profile(str(tmp_path))
    with open(path, encoding="utf-8") as f:
        prof = yaml.safe_load(f)
    for ch in prof["channels"]:
        if ch["id"] == channel:
            ch["driver_options"] = options
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(prof, f, allow_unicode=True)
    with pytest.raises(profile_loader.ProfileFileError) as e:
        profile_loader.load(path)
    assert words in str(e.value)


def test_profile_check_takes_the_options_of_both_platforms(tmp_path: str) -> None:
    # The board's own options (sda, scl; an adc pin) pass the check on any host.
    path = _real_profile(str(tmp_path))
    with open(path, encoding="utf-8") as f:
        prof = yaml.safe_load(f)
    prof["channels"][1]["driver_options"].update({"sda": 21, "scl": 22})
    prof["channels"][2] = dict(prof["channels"][2], driver="adc", driver_options={"pin": 34, "atten_db": 2.5})
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(prof, f, allow_unicode=True)
    assert [ch["driver"] for ch in profile_loader.load(path)["channels"]] == ["linux_iio", "i2c", "adc"]


PROFILE_SCRIPT = """
import json
from agent.core import profile
from agent.core.errors import ProfileError

base = %r
for channel, options in %r:
    doc = json.loads(base)
    for ch in doc["channels"]:
        if ch["id"] == channel:
            ch["driver_options"] = options
    try:
        profile.validate(doc)
        print("valid")
    except ProfileError as e:
        print(e)
"""


def test_a_board_checks_driver_options_as_the_host_does(tmp_path: str) -> None:
    base = profile_loader.compile_json(profile_loader.load(_real_profile(str(tmp_path)))).decode()
    cases = [("motor_current", {"device": "ads1015", "scale": 30})] + [(ch, opts) for ch, opts, _ in BAD_OPTIONS]
    script = PROFILE_SCRIPT % (base, cases)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(script, "profile_script", "exec"), {"__name__": "profile_script"})
    lines = out.getvalue().splitlines()
    assert lines[0] == "valid" and all(
        words in line for line, (_, _, words) in zip(lines[1:], BAD_OPTIONS, strict=True)
    )
    assert micropython_unix.run(script, heap=512 * 1024) == out.getvalue()  # the validators from source


@pytest.mark.parametrize("z,reason", [(128, "implausible"), (129, None), (512, None), (513, "implausible")])
def test_a_burst_s_mean_must_be_gravity_within_its_bounds(z: int, reason: object) -> None:
    # 0.5 g and 2 g lie between these counts at 3.9 mg per count.
    samples = [(1, 0, z), (-1, 0, z)] * 2
    assert sensor_i2c.ADXL345_GRAVITY_MIN_G == 0.5 and sensor_i2c.ADXL345_GRAVITY_MAX_G == 2.0
    if reason is None:
        assert sensor_i2c.vibration_rms_g(samples, "f") == pytest.approx(G)  # 1 count of x, nothing else
    else:
        with pytest.raises(SensorError, match="mean acceleration"):
            sensor_i2c.vibration_rms_g(samples, "f")


def test_adc_samples_and_iio_device_numbers_at_their_bounds(tmp_path: str) -> None:
    top = sensor_i2c.ADC_MAX_SAMPLES
    driver, adc = _adc([1000] * top, samples=top, has_uv=False, full_scale_v=3.3)
    assert _outcomes(driver, 1) == [round(1000 * 3.3 / 65535, 6)] and adc.pos == top
    root = str(tmp_path)
    fake_iio(root, sensor_i2c.IIO_MAX_DEVICES - 1, "mcp3208", {0: (1000, 1.0, None)})
    assert _outcomes(_iio(root, device=sensor_i2c.IIO_MAX_DEVICES - 1), 1) == [1.0]
    with pytest.raises(ConfigError, match=r"driver_options\.device is 256; expected a whole number 0\.\.255"):
        _iio(root, device=sensor_i2c.IIO_MAX_DEVICES)
