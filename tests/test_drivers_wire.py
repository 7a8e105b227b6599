"""The 1-Wire and GPIO sensor drivers (DS18B20, HX711, flow-meter pulses) on both platforms:
the Pi's adapters against a fake w1 sysfs tree and an emulated gpiod, the board's on the
MicroPython unix port against emulated machine/onewire/ds18x20, with recorded traces and
their faults; the portable decoders under property tests; every limit at its bound."""

import datetime
import errno
import json
import os
import subprocess
import sys
import threading
import time

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import drivers, host, profile_loader
from agent.core import sensor_wire
from agent.core.clock import ManualClock
from agent.core.errors import ConfigError, SensorError
from agent.core.events import SENSOR_FAULT, Event
from agent.core.pipeline import Agent
from agent.drivers import gpio as pi_gpio
from agent.drivers import onewire as pi_onewire
from hil_tests.emulated import gpio, wire
from tests import micropython_unix

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRACES = os.path.join(ROOT, "hil_tests", "traces")
SERIAL = "0316a2795dff"  # the recorded sensor's: /sys/bus/w1/devices/28-0316a2795dff


def _trace(name: str) -> tuple:
    return gpio.load_trace(os.path.join(TRACES, name + ".trace"))  # type: ignore[no-any-return]


def _outcome(driver: object, t_ms: int) -> list:
    """["v", value] for a reading, ["f", reason] for a SensorError (anything else raises)."""
    try:
        return ["v", driver.read(t_ms)]  # type: ignore[attr-defined]
    except SensorError as e:
        return ["f", e.reason]


def _same(got: list, want: list, tol: float = 1e-4) -> bool:
    """Outcome lists equal, readings to tol (the tables give 4 decimals)."""
    return len(got) == len(want) and all(
        g[0] == w[0] and (g[1] == pytest.approx(w[1], abs=tol) if g[0] == "v" else g[1] == w[1])
        for g, w in zip(got, want, strict=False)
    )


def _spec(driver: str, sample_hz: float = 1, **options: object) -> dict:
    return {"id": "ch", "driver": driver, "sample_hz": sample_hz, "driver_options": options}


# -- What the recorded traces must give, on every platform ---------------------------------------

FRIDGE = [["v", v] for v in (23.125, 23.5, 23.8125, 24.0, 0.0, -10.125, -0.5, 4.0625)]
DS18B20_FAULTS = [
    ["v", 21.5],
    ["f", "crc"],  # CRC byte off by one bit (the kernel says NO)
    ["f", "absent"],  # no presence pulse / no device directory
    ["v", 21.75],
    ["f", "implausible"],  # 85.0 once: the power-on value
    ["v", 21.75],
    ["f", "implausible"],
    ["f", "implausible"],
    ["f", "stuck"],  # 85.0 the third time in a row
    ["f", "stuck"],  # all zeros: a bus held low passes the CRC
    ["f", "crc"],  # all ones: nobody answers
    ["f", "implausible"],  # 126 degC
    ["v", -55.0],
    ["v", 22.0],
]
HX711_SCALE = [["v", v] for v in (0.0, 0.0, 250.0, 250.5, 1000.0, 1000.0, 999.5, -228.5714, 5000.0)]
HX711_FAULTS = [["v", 0.0], ["f", "implausible"], ["f", "implausible"], ["v", 100.0], ["f", "stuck"]]
HX711_OPTIONS = {"sck": 5, "dout": 6, "offset": 84000, "scale": 420}


def _expected_flow(edges: list, times: list, per_unit: float = 450, rate_s: float = 60) -> list:
    """The flow meter's rate at each read, counted from the trace independently of the drivers."""
    out, last = [], None
    for t in times:
        count = sum(1 for t_us, rising in edges if rising and t_us <= t * 1000)
        out.append(0.0 if last is None else (count - last[0]) / per_unit * rate_s * 1000 / (t - last[1]))
        last = (count, t)
    return [["v", v] for v in out]


FLOW_TIMES = list(range(0, 11_000, 1000))


# -- The portable decoders ---------------------------------------------------------------------


def test_crc8_gives_the_known_values_and_agrees_with_an_independent_one() -> None:
    # Maxim application note 27's ROM example (CRC 0xA2) and a DS18B20 datasheet scratchpad.
    rom = bytes([0x02, 0x1C, 0xB8, 0x01, 0x00, 0x00, 0x00])
    assert sensor_wire.crc8(rom) == 0xA2 and sensor_wire.crc8(rom + b"\xa2") == 0
    assert sensor_wire.crc8(bytes.fromhex("72014b467fff0e10")) == 0x57
    assert sensor_wire.decode_scratchpad(bytes.fromhex("72014b467fff0e1057")) == 23.125


@given(st.binary(max_size=16))
def test_crc8_is_the_emulations_crc8_for_any_bytes(data: bytes) -> None:
    assert sensor_wire.crc8(data) == wire.crc8(data)


def test_a_rom_is_named_as_linux_names_it_and_the_rom_option_maps_to_that_name() -> None:
    rom = wire.make_rom(SERIAL)
    assert sensor_wire.rom_name(rom) == "28-" + SERIAL
    assert sensor_wire.rom_option("x" + SERIAL, "here") == "28-" + SERIAL
    with pytest.raises(SensorError) as e:
        sensor_wire.rom_name(rom[:7] + bytes([rom[7] ^ 1]))
    assert e.value.reason == "crc"
    for bad in ("0316a2795dff", "x0316a2795df", "x0316a2795dfg", "X0316A2795DFF", 316, ""):
        with pytest.raises(ConfigError, match="driver_options rom"):
            sensor_wire.rom_option(bad, "here")


def test_the_resolution_is_read_from_and_written_to_the_configuration_register() -> None:
    assert [sensor_wire.config_byte(r) for r in (9, 10, 11, 12)] == [0x1F, 0x3F, 0x5F, 0x7F]
    for resolution in (9, 10, 11, 12):
        b = bytes([0x72, 0x01, 0x4B, 0x46, sensor_wire.config_byte(resolution), 0xFF, 0x0E, 0x10])
        assert sensor_wire.pad_resolution(b + bytes([wire.crc8(b)])) == resolution
        assert sensor_wire.pad_resolution(b + bytes([wire.crc8(b) ^ 1])) is None  # its CRC fails
    assert sensor_wire.pad_resolution(bytes(9)) is None  # zeros: no register can be that
    assert sensor_wire.pad_resolution(b"\xff" * 9) is None


def test_the_bits_below_the_resolution_are_masked_and_negative_values_decode() -> None:
    def pad(raw: int, config: int) -> bytes:
        b = bytes([raw & 0xFF, (raw >> 8) & 0xFF, 0x4B, 0x46, config, 0xFF, 0x0C, 0x10])
        return b + bytes([wire.crc8(b)])

    assert sensor_wire.decode_scratchpad(pad(0x0177, 0x1F)) == 23.0  # 9 bit: the 3 lowest bits undefined
    assert sensor_wire.decode_scratchpad(pad(0x0177, 0x7F)) == 23.4375  # 12 bit: all count
    assert sensor_wire.decode_scratchpad(pad(0xFF5E, 0x7F)) == -10.125
    assert sensor_wire.decode_scratchpad(pad(-55 * 16, 0x7F)) == -55.0  # the ends of its range...
    assert sensor_wire.decode_scratchpad(pad(125 * 16, 0x7F)) == 125.0
    for raw in (-55 * 16 - 1, 125 * 16 + 1):  # ...and one step beyond each
        with pytest.raises(SensorError) as e:
            sensor_wire.decode_scratchpad(pad(raw, 0x7F))
        assert e.value.reason == "implausible"


@given(st.binary(max_size=12))
def test_any_scratchpad_decodes_to_a_temperature_or_a_sensor_error(data: bytes) -> None:
    try:
        value = sensor_wire.decode_scratchpad(data)
    except SensorError as e:
        assert e.reason in ("crc", "stuck", "implausible")
    else:
        assert len(data) == 9 and wire.crc8(data) == 0 and -55 <= value <= 125


@given(st.binary(min_size=8, max_size=8))
def test_the_w1_slave_text_of_any_scratchpad_says_what_the_scratchpad_says(head: bytes) -> None:
    # With its CRC right and wrong: the Pi (w1_slave text) and the board (raw bytes) agree.
    for pad in (head + bytes([wire.crc8(head)]), head + bytes([wire.crc8(head) ^ 0x5A])):
        outcomes = []
        for read in (sensor_wire.decode_scratchpad, sensor_wire.parse_w1_slave):
            arg = pad if read is sensor_wire.decode_scratchpad else wire.w1_slave_text(pad)
            try:
                outcomes.append(("v", read(arg)))  # type: ignore[operator]
            except SensorError as e:
                outcomes.append(("f", e.reason))
        assert outcomes[0] == outcomes[1]


HOSTILE_W1 = [
    "",
    "\n",
    "garbage",
    "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n",  # the second line lost
    "72 01 4b 46 7f ff 0e 10 57 : crc=57 MAYBE\n72 01 4b 46 7f ff 0e 10 57 t=23125\n",
    "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=99999\n",  # t= disagrees
    "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 58 t=23125\n",  # bytes disagree
    "72 01 4b 46 7f ff 0e 10 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 t=23125\n",  # 8 bytes
    "72 01 4b 46 7f ff 0e 10 5x : crc=5x YES\n72 01 4b 46 7f ff 0e 10 5x t=23125\n",
    "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=\n",
    "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=1e9\n",
    "\x00" * 300,
]


@pytest.mark.parametrize("text", HOSTILE_W1)
def test_a_broken_w1_slave_text_is_a_sensor_error(text: str) -> None:
    with pytest.raises(SensorError):
        sensor_wire.parse_w1_slave(text)


@given(st.text(max_size=300))
def test_any_w1_text_is_a_temperature_or_a_sensor_error(text: str) -> None:
    for parse in (sensor_wire.parse_w1_slave, sensor_wire.parse_w1_temperature):
        try:
            value = parse(text)
        except SensorError as e:
            assert e.reason in ("crc", "stuck", "implausible", "failed")
        else:
            assert -55 <= value <= 125


def test_w1_text_is_taken_up_to_its_bound_and_refused_beyond() -> None:
    good = "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"
    padded = good + " " * (sensor_wire.MAX_W1_TEXT - len(good))
    assert sensor_wire.parse_w1_slave(padded) == 23.125
    with pytest.raises(SensorError, match="at most 256"):
        sensor_wire.parse_w1_slave(padded + " ")
    assert sensor_wire.parse_w1_temperature("23125" + " " * (sensor_wire.MAX_W1_TEXT - 5)) == 23.125
    with pytest.raises(SensorError, match="at most 256"):
        sensor_wire.parse_w1_temperature("23125" + " " * (sensor_wire.MAX_W1_TEXT - 4))


def test_the_power_on_value_is_implausible_until_it_repeats_to_the_bound_then_stuck() -> None:
    guard = sensor_wire.PowerOnGuard()
    for _ in range(2):
        for _ in range(sensor_wire.DS18B20_POWER_ON_REPEATS - 1):
            with pytest.raises(SensorError) as e:
                guard.check(85.0)
            assert e.value.reason == "implausible"
        assert guard.check(21.0) == 21.0  # a real conversion in between starts the count again
    for _ in range(sensor_wire.DS18B20_POWER_ON_REPEATS - 1):
        with pytest.raises(SensorError):
            guard.check(85.0)
    with pytest.raises(SensorError) as e:
        guard.check(85.0)
    assert e.value.reason == "stuck"


@given(st.integers(-(1 << 30), 1 << 30))
def test_any_hx711_word_is_a_signed_value_or_a_sensor_error(word: int) -> None:
    try:
        value = sensor_wire.hx711_decode(word)
    except SensorError as e:
        assert e.reason == ("implausible" if word in (0x7FFFFF, 0x800000) else "failed")
    else:
        assert 0 <= word <= 0xFFFFFF and -0x7FFFFF <= value <= 0x7FFFFE
        assert value & 0xFFFFFF == word  # two's complement, 24 bits


def test_hx711_saturation_is_implausible_and_one_step_inside_is_a_value() -> None:
    assert sensor_wire.hx711_decode(0x7FFFFE) == 0x7FFFFE
    assert sensor_wire.hx711_decode(0x800001) == -0x7FFFFF
    assert sensor_wire.hx711_decode(0xFFFFFF) == -1
    for word in (0x7FFFFF, 0x800000):
        with pytest.raises(SensorError) as e:
            sensor_wire.hx711_decode(word)
        assert e.value.reason == "implausible"


def test_the_gain_is_chosen_by_the_pulses_after_the_data() -> None:
    assert [sensor_wire.hx711_pulses(g, "here") for g in (128, 32, 64)] == [25, 26, 27]
    for bad in (0, 256, "a", None):
        with pytest.raises(ConfigError, match="driver_options gain"):
            sensor_wire.hx711_pulses(bad, "here")


@given(
    start=st.integers(0, sensor_wire.PULSE_COUNTER_MASK),
    steps=st.lists(st.tuples(st.integers(0, 5000), st.integers(1, 10_000)), max_size=20),
)
def test_the_pulse_rate_counts_across_the_counter_wrap(start: int, steps: list) -> None:
    mask = sensor_wire.PULSE_COUNTER_MASK
    rate = sensor_wire.PulseRate(450, 60, 1000, mask, "here")
    count, t = start, 0
    assert rate.rate(t, count) == 0.0  # the first read starts the count
    for pulses, dt in steps:
        count, t = (count + pulses) & mask, t + dt
        try:
            value = rate.rate(t, count)
        except SensorError as e:
            assert e.reason == "implausible" and pulses * 1000 > 1000 * dt
        else:
            assert value == pytest.approx(pulses / 450 * 60 * 1000 / dt)


def test_a_pulse_rate_at_max_hz_is_a_value_and_one_pulse_more_is_implausible() -> None:
    rate = sensor_wire.PulseRate(1, 1, 50, sensor_wire.PULSE_COUNTER_MASK, "here")
    rate.rate(0, 0)
    assert rate.rate(1000, 50) == 50.0
    with pytest.raises(SensorError) as e:
        rate.rate(2000, 101)
    assert e.value.reason == "implausible"


@pytest.mark.parametrize(
    ("name", "value"), [("pulses_per_unit", 0), ("pulses_per_unit", -1), ("rate_s", 0), ("max_hz", "x")]
)
def test_pulse_rate_options_must_be_positive_numbers(name: str, value: object) -> None:
    options: dict = {"pulses_per_unit": 450, "rate_s": 60, "max_hz": 1000, name: value}
    with pytest.raises(ConfigError, match="driver_options " + name):
        sensor_wire.PulseRate(options["pulses_per_unit"], options["rate_s"], options["max_hz"], 0xFF, "here")


# -- The Pi: DS18B20 through a fake w1 sysfs tree ------------------------------------------------


def _sysfs(tmp_path: object, *traces: str) -> tuple:
    devices = [wire.Ds18b20Device.from_trace(_trace(name)) for name in traces]
    return wire.FakeW1Sysfs(str(tmp_path), devices), devices


def _settle(driver: object) -> None:
    """Waits for the file read a Pi DS18B20 driver has running (the tests change the fake
    tree only between reads, as the kernel's value changes only with a conversion)."""
    job = getattr(driver, "job", None)
    if job is not None:
        assert job.done.wait(10)


def _pi_w1_outcomes(tmp_path: object, trace: str, **options: object) -> list:
    """The Pi driver's outcomes over the trace's records, and one read more: each read
    collects the file read the one before started, so the first record comes twice."""
    fake, devices = _sysfs(tmp_path, trace)
    driver = drivers.make(_spec("onewire", **options), {"sysfs": str(tmp_path)})
    out = []
    for i in range(len(devices[0].records) + 1):
        _settle(driver)
        fake.show()
        out.append(_outcome(driver, i * 1000))
    return out


def _lagged(expected: list) -> list:
    return expected[:1] + expected


@pytest.mark.parametrize(("trace", "expected"), [("ds18b20_fridge", FRIDGE), ("ds18b20_faults", DS18B20_FAULTS)])
def test_pi_ds18b20_replays_its_trace_with_its_faults(tmp_path: object, trace: str, expected: list) -> None:
    assert _same(_pi_w1_outcomes(tmp_path, trace, rom="x" + SERIAL), _lagged(expected))
    assert _same(_pi_w1_outcomes(tmp_path, trace), _lagged(expected))  # the bus's only DS18B20, unnamed


def test_pi_ds18b20_from_the_temperature_file(tmp_path: object) -> None:
    # The kernel gives whole millidegrees there (23.8125 shows as 23812).
    outcomes = _pi_w1_outcomes(tmp_path, "ds18b20_fridge", file="temperature")
    assert _same(outcomes, _lagged(FRIDGE), tol=1e-3)


def test_pi_ds18b20_temperature_file_eio_is_a_crc_fault(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    fake, _ = _sysfs(tmp_path, "ds18b20_fridge")
    fake.show()
    driver = drivers.make(_spec("onewire", file="temperature"), {"sysfs": str(tmp_path)})
    assert driver.read(0) == 23.125
    _settle(driver)

    def eio(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr("builtins.open", eio)
    assert _outcome(driver, 1000) == ["v", 23.125]  # read before the fault
    _settle(driver)
    monkeypatch.setattr("builtins.open", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EPERM, "no")))
    assert _outcome(driver, 2000) == ["f", "crc"]
    _settle(driver)
    assert _outcome(driver, 3000) == ["f", "failed"]


def test_pi_ds18b20_with_no_bus_no_sensor_or_two_unnamed(tmp_path: object) -> None:
    def first(**options: object) -> list:
        return _outcome(drivers.make(_spec("onewire", **options), {"sysfs": str(tmp_path)}), 0)

    assert first() == ["f", "absent"]  # no bus/w1/devices at all
    fake, _ = _sysfs(tmp_path)
    assert first() == ["f", "absent"]  # a bus, no DS18B20
    os.makedirs(os.path.join(fake.devices_dir, "w1_bus_master1"))
    assert first() == ["f", "absent"]  # the bus master is no sensor
    one = wire.Ds18b20Device.from_trace(_trace("ds18b20_fridge"))
    two = wire.Ds18b20Device.from_trace(_trace("ds18b20_fridge"), rom=wire.make_rom("000000000001"))
    fake.devices = [one, two]
    fake.show()
    assert first() == ["f", "failed"]  # which one is meant is not known
    assert first(rom="x000000000001") == ["v", 23.125]
    assert first(rom="x0000000000ff") == ["f", "absent"]


def test_pi_ds18b20_never_makes_the_loop_wait_but_on_its_first_read_and_a_hung_read_is_stuck(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pi_onewire, "W1_READ_TIMEOUT_MS", 400)
    fake, devices = _sysfs(tmp_path, "ds18b20_fridge")
    fake.show()
    driver = drivers.make(_spec("onewire"), {"sysfs": str(tmp_path)})
    assert driver.read(0) == 23.125
    _settle(driver)
    # The next conversion hangs in the kernel: its file is a pipe that nobody writes.
    path = os.path.join(fake.devices_dir, fake.name(devices[0]), "w1_slave")
    os.remove(path)
    os.mkfifo(path)
    try:
        before = time.monotonic()
        assert driver.read(1000) == 23.125  # the read before, collected at once
        assert time.monotonic() - before < 0.3
        started = time.monotonic()
        assert _outcome(driver, 2000) == ["f", "stuck"]  # waited up to the bound after the read's start
        assert time.monotonic() - before >= 0.4 and time.monotonic() - started <= 1.5
        started = time.monotonic()
        assert _outcome(driver, 3000) == ["f", "stuck"]  # no second thread on a hung bus, no wait
        assert time.monotonic() - started < 0.3
    finally:
        with open(path, "w") as f:  # the kernel answers at last
            f.write(wire.w1_slave_text(devices[0].records[1]))
    _settle(driver)
    assert driver.read(4000) == 23.5  # the late answer, then reads go on
    assert threading.active_count() < 20


@pytest.mark.parametrize("text", HOSTILE_W1)
def test_pi_ds18b20_garbage_in_sysfs_is_a_fault_never_a_crash(tmp_path: object, text: str) -> None:
    fake, _ = _sysfs(tmp_path, "ds18b20_fridge")
    fake.show(raw=text)
    driver = drivers.make(_spec("onewire"), {"sysfs": str(tmp_path)})
    with pytest.raises(SensorError):
        driver.read(0)


@pytest.mark.parametrize(("options", "match"), [({"rom": "x12"}, "rom"), ({"file": "w1_master"}, "file")])
def test_pi_ds18b20_options_are_checked_when_made(options: dict, match: str) -> None:
    with pytest.raises(ConfigError, match="driver_options " + match):
        drivers.make(_spec("onewire", **options), {"sysfs": "/nonexistent"})


# -- The Pi: HX711 and pulses through an emulated gpiod -----------------------------------------


def _pi_hx711(trace: tuple, clock: object = None, **options: object) -> tuple:
    bench = gpio.Bench()
    chip = bench.attach(gpio.Hx711Chip(trace[1], 5, 6), 5, 6)
    # The clock that times PD_SCK's high phases: a steady one unless a test stages a stall
    # (the real one would make the result depend on the machine's load).
    env = {"gpiod": gpio.EmulatedGpiod(bench), "sleep_ms": bench.sleep_ms, "monotonic_ns": clock or _steady_clock()}
    return drivers.make(_spec("hx711", **{**HX711_OPTIONS, **options}), env), chip, bench


@pytest.mark.parametrize(
    ("trace", "expected"),
    [("hx711_scale", HX711_SCALE), ("hx711_faults", HX711_FAULTS), ("hx711_absent", [["f", "absent"]] * 3)],
)
def test_pi_hx711_replays_its_trace_with_its_faults(trace: str, expected: list) -> None:
    driver, chip, _ = _pi_hx711(_trace(trace))
    assert _same([_outcome(driver, i * 1000) for i in range(len(expected))], expected)
    assert chip.pulses_seen == [25] * len(chip.pulses_seen)  # gain 128 (channel A) asked for every time


@pytest.mark.parametrize(("gain", "pulses"), [(128, 25), (32, 26), (64, 27)])
def test_pi_hx711_clocks_the_pulses_of_its_gain(gain: int, pulses: int) -> None:
    driver, chip, _ = _pi_hx711(_trace("hx711_scale"), gain=gain)
    assert driver.read(0) == 0.0 and driver.read(1000) == 0.0
    assert chip.pulses_seen == [pulses, pulses]


def test_pi_hx711_waits_for_dout_up_to_its_bound_then_says_absent() -> None:
    word = format(84000 + 420, "024b")
    limit = sensor_wire.HX711_READY_POLLS
    text = "kind hx711\nframe %d %s 1\nframe %d %s 1\n" % (limit - 1, word, limit, word)
    driver, _chip, bench = _pi_hx711(gpio.parse_trace(text))
    assert driver.read(0) == 1.0
    assert bench.slept_ms == limit - 1  # 1 ms between polls, bounded
    assert _outcome(driver, 1000) == ["f", "absent"]
    assert bench.slept_ms == 2 * limit - 1


def _steady_clock() -> "_PreemptedClock":
    return _PreemptedClock(0, 0)


class _PreemptedClock:
    """A monotonic clock (ns) that moves 1 us a call, and jump_ns once, at the call'th call."""

    def __init__(self, call: int, jump_ns: int) -> None:
        self.now = 0
        self.calls = 0
        self.call = call
        self.jump_ns = jump_ns

    def __call__(self) -> int:
        self.calls += 1
        self.now += 1000 + (self.jump_ns if self.calls == self.call else 0)
        return self.now


@pytest.mark.parametrize(("call", "where"), [(2, "the first bit"), (48, "the last bit"), (50, "the gain pulse")])
def test_pi_hx711_drops_a_frame_whose_clock_was_held_high_past_60_us(call: int, where: str) -> None:
    # Two clock reads per pulse (raised, about to lower); a stall between them lengthens the high phase.
    limit = pi_gpio.HX711_MAX_HIGH_NS
    driver, _, _ = _pi_hx711(_trace("hx711_scale"), clock=_PreemptedClock(call, limit - 1000))
    assert driver.read(0) == 0.0  # high for exactly 60 us: still awake
    driver, chip, _ = _pi_hx711(_trace("hx711_scale"), clock=_PreemptedClock(call, limit - 999))
    assert _outcome(driver, 0) == ["f", "failed"], where
    assert chip.pulses_seen == [25] and driver.read(1000) == 0.0  # the next frame is read as usual


@pytest.mark.parametrize(
    ("options", "match"),
    [({"gain": 100}, "gain"), ({"scale": 0}, "scale"), ({"dout": 5}, "sck and dout"), ({"sck": 300}, "sck"),
     ({"offset": "tare"}, "offset"), ({"chip": 16}, "chip")],
)  # fmt: skip
def test_pi_hx711_options_are_checked_when_made(options: dict, match: str) -> None:
    with pytest.raises(ConfigError, match="driver_options " + match):
        _pi_hx711(_trace("hx711_scale"), **options)


def test_pi_gpio_lines_are_requested_with_the_real_gpiod_names() -> None:
    # The emulation names what the real bindings have (gpiod 2.x, v2 API).
    import gpiod
    from gpiod.line import Bias, Direction, Edge, Value

    for ours, real in ((gpio.EmulatedGpiod.line.Direction, Direction), (gpio.EmulatedGpiod.line.Value, Value),
                       (gpio.EmulatedGpiod.line.Edge, Edge), (gpio.EmulatedGpiod.line.Bias, Bias)):  # fmt: skip
        assert {n for n in vars(ours) if not n.startswith("_")} == {m.name for m in real}
    assert {"request_lines", "LineSettings"} <= set(dir(gpiod))
    for method in ("get_value", "set_value", "wait_edge_events", "read_edge_events", "release"):
        assert hasattr(gpiod.LineRequest, method) and hasattr(gpio.EmulatedRequest, method)
    gpiod.LineSettings(direction=Direction.INPUT, edge_detection=Edge.RISING, bias=Bias.DISABLED,
                       debounce_period=datetime.timedelta(0))  # fmt: skip


def _pi_pulses(edges: list, gpiod_kwargs: dict | None = None, **options: object) -> tuple:
    bench = gpio.Bench()
    gpio.pulse_source(bench, edges, 7)
    emulated = gpio.EmulatedGpiod(bench, **(gpiod_kwargs or {}))
    driver = drivers.make(_spec("pulse_counter", **{"pin": 7, "pulses_per_unit": 450, **options}), {"gpiod": emulated})
    return driver, bench, emulated


def _read_at(driver: object, bench: object, times: list) -> list:
    out = []
    for t in times:
        bench.advance_ms(t)  # type: ignore[attr-defined]
        out.append(_outcome(driver, t))
    return out


def test_pi_flow_meter_rate_in_litres_per_minute() -> None:
    edges = _trace("pulses_flow")[1]
    driver, bench, _ = _pi_pulses(edges)
    got = _read_at(driver, bench, FLOW_TIMES)
    assert _same(got, _expected_flow(edges, FLOW_TIMES))
    assert got[1] == ["v", 0.0] and got[2][1] < 0.3  # still (the first pulse may come just before 2 s)
    assert all(abs(v - 6.0) <= 0.14 for _, v in got[3:7]) and all(abs(v - 3.0) <= 0.14 for _, v in got[7:])


def test_pi_flow_meter_counts_edges_the_kernel_buffer_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    # A buffer of 16 events and reads 4 s apart: most events are dropped, the count is not.
    monkeypatch.setattr(pi_gpio, "EVENT_BUFFER", 16)
    edges = _trace("pulses_flow")[1]
    driver, bench, _emulated = _pi_pulses(edges)
    times = [0, 2000, 6000, 10_000]
    assert _same(_read_at(driver, bench, times), _expected_flow(edges, times))
    assert driver.request.dropped > 100  # type: ignore[attr-defined]


def test_pi_flow_meter_counts_across_the_sequence_number_wrap() -> None:
    edges = _trace("pulses_flow")[1]
    # A request that has seen 2**32 - 51 edges before: the count wraps within the trace.
    start = 0xFFFFFFFF - 50
    driver, bench, _ = _pi_pulses(edges, {"seqno_start": start})
    driver.seqno = start  # type: ignore[attr-defined]
    assert _same(_read_at(driver, bench, FLOW_TIMES), _expected_flow(edges, FLOW_TIMES))
    assert driver.seqno < 1000  # type: ignore[attr-defined]


def test_pi_flow_meter_both_edges_and_falling() -> None:
    edges = _trace("pulses_flow")[1]
    both, bench, _ = _pi_pulses(edges, edge="both", pulses_per_unit=900)
    got = _read_at(both, bench, FLOW_TIMES)
    want = _expected_flow(edges, FLOW_TIMES)
    assert all(abs(g[1] - w[1]) <= 0.14 for g, w in zip(got, want, strict=True))
    falling, bench, _ = _pi_pulses(edges, edge="falling", pull="up")
    assert all(abs(g[1] - w[1]) <= 0.14 for g, w in zip(_read_at(falling, bench, FLOW_TIMES), want, strict=True))


def test_pi_flow_meter_above_max_hz_is_implausible() -> None:
    driver, bench, _ = _pi_pulses(_trace("pulses_flow")[1], max_hz=30)
    got = _read_at(driver, bench, FLOW_TIMES)
    assert [o[0] for o in got[3:7]] == ["f"] * 4 and got[3][1] == "implausible"  # 45 Hz
    assert [o[0] for o in got[7:]] == ["v"] * 4  # 22.5 Hz


def test_pi_flow_meter_drains_a_full_buffer_within_its_bound_and_a_chattering_line_is_implausible() -> None:
    bound = pi_gpio.EDGE_BATCH * pi_gpio.MAX_EDGE_BATCHES
    assert bound >= pi_gpio.EVENT_BUFFER  # a full kernel buffer is always drained in one read
    full = [(10 * i + 10, True) for i in range(pi_gpio.EVENT_BUFFER)]
    driver, bench, emulated = _pi_pulses(full, max_hz=1e6)
    assert _same(_read_at(driver, bench, [0, 1000]), [["v", 0.0], ["v", pi_gpio.EVENT_BUFFER / 450 * 60]])
    # A line that chatters at 1 MHz while the reads take 200 us each: never drained.
    chatter = [(i, True) for i in range(1, 100_000)]
    driver, bench, emulated = _pi_pulses(chatter, {"call_us": 200}, max_hz=1e9)
    assert _read_at(driver, bench, [0]) == [["f", "implausible"]]
    assert emulated.requested[7].dropped > 0


def test_pi_flow_meter_never_blocks_on_an_empty_buffer() -> None:
    # The emulated request raises on any call that would block: wait_edge_events with a
    # timeout, or read_edge_events with nothing buffered.
    driver, bench, _ = _pi_pulses([])
    assert _read_at(driver, bench, [0, 1000, 2000]) == [["v", 0.0]] * 3


@pytest.mark.parametrize(
    ("options", "match"),
    [({"pulses_per_unit": 0}, "pulses_per_unit"), ({"edge": "up"}, "edge"), ({"pull": "strong"}, "pull"),
     ({"pin": -1}, "pin")],
)  # fmt: skip
def test_pi_flow_meter_options_are_checked_when_made(options: dict, match: str) -> None:
    with pytest.raises(ConfigError, match="driver_options " + match):
        _pi_pulses([], **options)


def test_a_line_in_use_is_refused_when_made() -> None:
    bench = gpio.Bench()
    gpio.pulse_source(bench, [], 7)
    emulated = gpio.EmulatedGpiod(bench)
    drivers.make(_spec("pulse_counter", pin=7, pulses_per_unit=1), {"gpiod": emulated})
    with pytest.raises(ConfigError, match=r"cannot request lines 7 of /dev/gpiochip0: .*busy"):
        drivers.make(_spec("pulse_counter", pin=7, pulses_per_unit=1), {"gpiod": emulated})
    with pytest.raises(ConfigError, match=r"cannot request lines 5, 6 of /dev/gpiochip1: .*No such file"):
        drivers.make(_spec("hx711", chip=1, **HX711_OPTIONS), {"gpiod": emulated})


# -- The board: the same traces through emulated machine, onewire and ds18x20 -------------------

BOARD_SCRIPT = """
import gc, sys, json
from hil_tests.emulated import gpio, wire
sys.modules["onewire"] = wire
sys.modules["ds18x20"] = wire
from firmware import board_drivers, board_wire
from agent.core.errors import SensorError

TRACES = {}
for name in ("ds18b20_fridge", "ds18b20_faults", "hx711_scale", "hx711_faults", "hx711_absent", "pulses_flow"):
    TRACES[name] = gpio.load_trace("hil_tests/traces/" + name + ".trace")


def outcome(driver, t):
    try:
        return ["v", driver.read(t)]
    except SensorError as e:
        return ["f", e.reason]


def spec(driver, options, hz=1):
    return {"id": "ch", "driver": driver, "sample_hz": hz, "driver_options": options}


def made(make):
    # The heap a driver keeps (what a board pays per channel), measured around its making
    # (on MicroPython: CPython's gc does not say).
    if not hasattr(gc, "mem_alloc"):
        return make()
    gc.collect()
    before = gc.mem_alloc()
    driver = make()
    gc.collect()
    out["heap"].append(gc.mem_alloc() - before)
    return driver


out = {"heap": []}
for name in ("ds18b20_fridge", "ds18b20_faults"):
    bench = gpio.Bench()
    machine = gpio.EmulatedMachine(bench)
    dev = wire.Ds18b20Device.from_trace(TRACES[name])
    bus = bench.attach(wire.W1Bus([dev]), 4)
    driver = made(lambda: board_wire.make(spec("onewire", {"pin": 4}), machine, bench.sleep_ms))
    res = []
    for i in range(len(dev.records)):
        bus.next_read()
        bench.advance_ms(1000 * i)
        res.append(outcome(driver, 1000 * i))
    out[name] = res
    out[name + "_bus"] = [bench.slept_ms, bus.conversions, bus.pad_reads]

for name, n in (("hx711_scale", 9), ("hx711_faults", 5), ("hx711_absent", 3)):
    bench = gpio.Bench()
    machine = gpio.EmulatedMachine(bench)
    chip = bench.attach(gpio.Hx711Chip(TRACES[name][1], 5, 6), 5, 6)
    options = {"sck": 5, "dout": 6, "offset": 84000, "scale": 420}
    driver = made(lambda: board_wire.make(spec("hx711", options), machine, bench.sleep_ms))
    out[name] = [outcome(driver, 1000 * i) for i in range(n)]
    out[name + "_pulses"] = chip.pulses_seen
    out[name + "_irq_off"] = bench.irq_off

bench = gpio.Bench()
machine = gpio.EmulatedMachine(bench)
gpio.pulse_source(bench, TRACES["pulses_flow"][1], 7)
driver = made(lambda: board_drivers.make(spec("pulse_counter", {"pin": 7, "pulses_per_unit": 450}), machine))
res = []
for t in range(0, 11000, 1000):
    bench.advance_ms(t)
    res.append(outcome(driver, t))
    if t == 4000:
        # As if 2**30 - 4 pulses had come before: the IRQ counter wraps at its mask in the
        # next second, and the rate does not notice.
        driver.count = driver.rate.last_count = board_wire.sensor_wire.PULSE_COUNTER_MASK - 3
out["pulses_flow"] = res
out["pulses_count"] = driver.count

# Through the registry, as the firmware makes it: the first read's wait is a real sleep_ms.
bench = gpio.Bench()
dev = wire.Ds18b20Device.from_trace(TRACES["ds18b20_fridge"])
bus = bench.attach(wire.W1Bus([dev]), 4)
driver = board_drivers.make(spec("onewire", {"pin": 4, "resolution": 9}, hz=10), gpio.EmulatedMachine(bench))
bus.next_read()
out["registry_ds18b20"] = [outcome(driver, 0), outcome(driver, 100), bus.conversions, dev.configs_written]

# At 11 bit, through the faults: set when found, and again after each power loss.
bench = gpio.Bench()
dev = wire.Ds18b20Device.from_trace(TRACES["ds18b20_faults"])
bus = bench.attach(wire.W1Bus([dev]), 4)
driver = board_wire.make(spec("onewire", {"pin": 4, "resolution": 11}), gpio.EmulatedMachine(bench), bench.sleep_ms)
res = []
for i in range(len(dev.records)):
    bus.next_read()
    res.append(outcome(driver, 1000 * i))
out["ds18b20_faults_11bit"] = res
out["ds18b20_faults_11bit_bus"] = [bench.slept_ms, dev.configs_written]
# One line per result: a single large string needs contiguous heap that the traces' many
# small records have cut up.
for key in out:
    print(key, json.dumps(out[key]))
"""


def _board_expected(edges: list) -> dict:
    return {
        "ds18b20_fridge": FRIDGE,
        "ds18b20_faults": DS18B20_FAULTS,
        "ds18b20_faults_11bit": DS18B20_FAULTS,  # its readings are all whole eighths of a degree
        "hx711_scale": HX711_SCALE,
        "hx711_faults": HX711_FAULTS,
        "hx711_absent": [["f", "absent"]] * 3,
        "pulses_flow": _expected_flow(edges, FLOW_TIMES),
    }


def _board_results(stdout: str) -> dict:
    out = {}
    for line in stdout.strip().split("\n"):
        key, _, value = line.partition(" ")
        out[key] = json.loads(value)
    return out


def _check_board(out: dict) -> None:
    for name, want in _board_expected(_trace("pulses_flow")[1]).items():
        assert _same(out[name], want), name
    # Each read collects a conversion and starts the next; the loop waited only on the first
    # read and on the first after the sensor came back, 750 ms each at 12 bit. The scratchpad
    # is read once more when the sensor is found (its resolution), none on the absent read.
    assert out["ds18b20_fridge_bus"] == [750, 9, 9]
    assert out["ds18b20_faults_bus"] == [1500, 15, 15]
    assert out["hx711_scale_pulses"] == [25] * 9 and out["hx711_scale_irq_off"] == 0
    assert out["hx711_absent_pulses"] == []
    assert out["pulses_count"] < 400  # it wrapped (some 270 pulses after the 4th second)
    # Set to 9 bit when found (it came up with 12): its bits below 0.5 degC are not counted.
    assert out["registry_ds18b20"] == [["v", 23.0], ["v", 23.0], 3, 1]
    # At 11 bit through the faults: set when found, when found again after being unplugged,
    # and after each of the four power-on values (375 ms waited twice).
    assert out["ds18b20_faults_11bit_bus"] == [750, 6]


def test_board_drivers_on_cpython_give_the_traces_readings_and_faults() -> None:
    proc = subprocess.run([sys.executable, "-c", BOARD_SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=ROOT))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    _check_board(_board_results(proc.stdout))


# The scenario's heap: the emulation and its parsed traces take most of it, and their many
# small records cut it up (320 KB is the least it ran in); each driver keeps at most
# DRIVER_HEAP, emulated pins included, measured in the run.
BOARD_HEAP = 512 * 1024
DRIVER_HEAP = 1024


@pytest.mark.heavy  # a MicroPython process: `make test` runs it, `make check` leaves it out
def test_board_drivers_on_the_micropython_unix_port_give_the_same() -> None:
    missing = micropython_unix.available()
    if missing:
        pytest.fail(missing)
    out = _board_results(micropython_unix.run(BOARD_SCRIPT, heap=BOARD_HEAP))
    _check_board(out)  # the pulse counter's IRQ handler ran with the heap locked, as a hard IRQ
    assert len(out["heap"]) == 6 and all(0 < n <= DRIVER_HEAP for n in out["heap"]), out["heap"]


@pytest.mark.heavy
def test_an_irq_handler_that_allocates_fails_on_the_unix_port_as_on_a_board() -> None:
    # What makes the check above able to fail: the emulated IRQ runs with the heap locked.
    out = micropython_unix.run(
        "from hil_tests.emulated import gpio\n"
        "bench = gpio.Bench()\n"
        "machine = gpio.EmulatedMachine(bench)\n"
        "gpio.pulse_source(bench, [(1000, True)], 7)\n"
        "seen = []\n"
        "def stamp(pin):\n"
        "    seen.append((pin, bytearray(4)))  # a new object in the handler\n"
        "machine.Pin(7, machine.Pin.IN).irq(handler=stamp, trigger=machine.Pin.IRQ_RISING)\n"
        "try:\n"
        "    bench.advance_ms(5)\n"
        "    print('allocated', len(seen))\n"
        "except MemoryError:\n"
        "    print('MemoryError')\n",
        heap=BOARD_HEAP,
    )
    assert out.strip() == "MemoryError"


def test_board_ds18b20_is_not_sampled_faster_than_it_converts() -> None:
    bench = gpio.Bench()
    machine = gpio.EmulatedMachine(bench)
    bench.attach(wire.W1Bus([]), 4)
    from firmware import board_wire

    modules = {"onewire": wire, "ds18x20": wire}
    saved = {k: sys.modules.get(k) for k in modules}
    sys.modules.update(modules)  # type: ignore[arg-type]
    try:
        for resolution, conv_ms in zip((9, 10, 11, 12), sensor_wire.DS18B20_CONVERSION_MS, strict=True):
            at_bound = _spec("onewire", 1000 / conv_ms, pin=4, resolution=resolution)
            board_wire.make(at_bound, machine, bench.sleep_ms)
            beyond = _spec("onewire", 1000 / conv_ms * 1.01, pin=4, resolution=resolution)
            with pytest.raises(ConfigError, match="faster than a conversion"):
                board_wire.make(beyond, machine, bench.sleep_ms)
        with pytest.raises(ConfigError, match="resolution"):
            board_wire.make(_spec("onewire", pin=4, resolution=8), machine, bench.sleep_ms)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


# -- Through the agent: a faulty sensor makes sensor-fault events with the reason ----------------


class _SysfsStepping:
    """The Pi's DS18B20 driver, its fake sysfs moved to the next recorded read before each read."""

    def __init__(self, fake: object, driver: object) -> None:
        self.fake = fake
        self.driver = driver

    def read(self, t_ms: int) -> float:
        _settle(self.driver)
        self.fake.show()  # type: ignore[attr-defined]
        return self.driver.read(t_ms)  # type: ignore[attr-defined,no-any-return]


@pytest.mark.asyncio
async def test_a_faulty_ds18b20_gives_sensor_fault_events_with_the_reason(tmp_path: object) -> None:
    prof = profile_loader.load(profile_loader.example("coffee_machine"))
    sim_drivers, sim = host.simulated(prof, 1, [])
    fake, _ = _sysfs(tmp_path, "ds18b20_faults")
    spec = dict(next(ch for ch in prof["channels"] if ch["id"] == "boiler_temp"))
    spec.update(driver="onewire", driver_options={"rom": "x" + SERIAL})
    sim_drivers["boiler_temp"] = _SysfsStepping(fake, drivers.make(spec, {"sysfs": str(tmp_path)}))
    faults: list = []
    values: list = []

    def observe(stage: str, a: object, b: object) -> None:
        if stage == "decision" and isinstance(a, Event) and a.kind == SENSOR_FAULT:
            faults.append((a.t_ms, a.fields["reason"]))
        if stage == "sample" and getattr(a, "id", "") == "boiler_temp":
            values.append(b)

    agent = Agent(prof, "d", sim_drivers, ManualClock(), sim, observer=observe)
    await agent.run(180_000)
    # The trace's reads cycle, one a second, each collected a second later. The faults are one
    # episode (the good reads between them are too few to end it): one event, with the reason
    # of the first bad read.
    bad = [t for t in range(0, 180_000, 1000) if DS18B20_FAULTS[max(t // 1000 - 1, 0) % len(DS18B20_FAULTS)][0] == "f"]
    assert len(bad) > 3 and faults == [(bad[0], "crc")] and bad[0] == 2000
    assert values[:5] == [21.5, 21.5, values[2], values[3], 21.75] and values[2] != values[2]  # NaN: a fault


def test_the_registries_make_these_drivers_and_no_others(tmp_path: object) -> None:
    assert isinstance(drivers.make(_spec("onewire"), {"sysfs": str(tmp_path)}), pi_onewire.W1Thermometer)
    bench = gpio.Bench()
    bench.attach(gpio.Hx711Chip(_trace("hx711_scale")[1], 5, 6), 5, 6)
    gpio.pulse_source(bench, [], 7)
    env = {"gpiod": gpio.EmulatedGpiod(bench), "monotonic_ns": _steady_clock()}
    assert isinstance(drivers.make(_spec("hx711", **HX711_OPTIONS), env), pi_gpio.Hx711)
    assert isinstance(drivers.make(_spec("pulse_counter", pin=7, pulses_per_unit=1), env), pi_gpio.PulseCounter)
    from firmware import board_wire

    with pytest.raises(ConfigError, match="not a 1-Wire or GPIO sensor"):
        board_wire.make(_spec("adc"), gpio.EmulatedMachine(bench), bench.sleep_ms)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), st.text("01", min_size=24, max_size=24), st.sampled_from("01")),
                min_size=1, max_size=5))  # fmt: skip
def test_any_hx711_frames_give_a_value_or_a_sensor_error(frames: list) -> None:
    text = "kind hx711\n" + "".join("frame %d %s %s\n" % f for f in frames)
    driver, _chip, _ = _pi_hx711(gpio.parse_trace(text))
    for i, (busy, bits, after) in enumerate(frames):
        got = _outcome(driver, i)
        if busy >= sensor_wire.HX711_READY_POLLS:
            assert got == ["f", "absent"]
            break  # the chip is still converting this frame
        word = int(bits, 2)
        if after == "0":
            assert got == ["f", "stuck"]
        elif word in (0x7FFFFF, 0x800000):
            assert got == ["f", "implausible"]
        else:
            signed = word - (1 << 24) if word & 0x800000 else word
            assert _same([got], [["v", (signed - 84000) / 420]])


def test_the_documented_options_pass_the_profile_schema_and_make_the_drivers(tmp_path: object) -> None:
    with open(profile_loader.example("coffee_machine"), encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    channels = {c["id"]: c for c in doc["channels"]}
    # As docs/drivers.md writes them, through YAML.
    channels["boiler_temp"].update(
        yaml.safe_load("{driver: onewire, driver_options: {rom: x0316a2795dff, file: w1_slave}}")
    )
    channels["bean_hopper"].update(
        yaml.safe_load(
            "{driver: hx711, driver_options: {sck: 5, dout: 6, gain: 128, offset: 84000, scale: 420, chip: 0}}"
        )
    )
    channels["water_tank"].update(yaml.safe_load(
        "{driver: pulse_counter, driver_options: {pin: 7, pulses_per_unit: 450, rate_s: 60, edge: rising, "
        "pull: up, max_hz: 1000, chip: 0}}"))  # fmt: skip
    prof = profile_loader.core_profile.validate(doc)
    specs = {c["id"]: c for c in prof["channels"]}
    bench = gpio.Bench()
    bench.attach(gpio.Hx711Chip(_trace("hx711_scale")[1], 5, 6), 5, 6)
    gpio.pulse_source(bench, [], 7)
    env = {"sysfs": str(tmp_path), "gpiod": gpio.EmulatedGpiod(bench), "sleep_ms": bench.sleep_ms}
    env["monotonic_ns"] = _steady_clock()
    fake, _ = _sysfs(tmp_path, "ds18b20_fridge")
    fake.show()
    assert drivers.make(specs["boiler_temp"], env).read(0) == 23.125
    assert drivers.make(specs["bean_hopper"], env).read(0) == 0.0
    assert drivers.make(specs["water_tank"], env).read(0) == 0.0
