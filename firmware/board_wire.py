"""The board's 1-Wire and GPIO sensors: DS18B20 through MicroPython's onewire and ds18x20
modules, HX711 and flow-meter pulses through machine.Pin.

Thin: the bits are judged in agent/core/sensor_wire.py, as on the Pi. make(spec, machine)
takes `machine` (or emulated classes of its names); onewire and ds18x20 are imported when a
DS18B20 channel is made (the ESP32 firmware freezes both; the tests put emulations first).
"""

import time

from agent.core import sensor_wire
from agent.core.compat import const
from agent.core.errors import ConfigError, SensorError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_READ_SCRATCHPAD = const(0xBE)
_DEFAULT_RESOLUTION = const(12)  # the DS18B20's own (its EEPROM's, as it leaves the factory)


def _sleep_ms(ms: int) -> None:
    # time.sleep_ms on MicroPython; the same file runs on CPython for the tests' comparison.
    time.sleep(ms / 1000)


if hasattr(time, "sleep_ms"):
    _sleep_ms = time.sleep_ms  # type: ignore[assignment]  # the board's own, same signature


def make(spec: dict, machine: "Any", sleep_ms: "Any" = None) -> "Any":
    """The driver of one onewire, hx711 or pulse_counter channel. sleep_ms: how a bounded
    wait sleeps (time.sleep_ms; the tests advance emulated time instead)."""
    sleep = sleep_ms or _sleep_ms
    name = spec["driver"]
    if name == "onewire":
        return _make_ds18b20(spec, machine, sleep)
    if name == "hx711":
        return _make_hx711(spec, machine, sleep)
    if name == "pulse_counter":
        return _make_pulse_counter(spec, machine)
    raise ConfigError("channel %r: driver %r is not a 1-Wire or GPIO sensor" % (spec["id"], name))


def _make_ds18b20(spec: dict, machine: "Any", sleep_ms: "Any") -> "Ds18b20":
    # Frozen into the ESP32 firmware; imported here, as only a DS18B20 channel needs them.
    import ds18x20
    import onewire

    where = "channel %r" % spec["id"]
    rom = sensor_wire.option(spec, "rom", "")
    name = sensor_wire.rom_option(rom, where) if rom else ""
    resolution: "Any" = sensor_wire.option(spec, "resolution", _DEFAULT_RESOLUTION)
    conv_ms = sensor_wire.conversion_ms(resolution, where)
    period_ms = 1000.0 / spec["sample_hz"]
    if period_ms < conv_ms:
        raise ConfigError("%s: sample_hz %r is faster than a conversion (%d ms at resolution %r); expected at most %g"
                          % (where, spec["sample_hz"], conv_ms, resolution, 1000.0 / conv_ms))  # fmt: skip
    bus = onewire.OneWire(machine.Pin(sensor_wire.pin_option(spec, "pin")))
    return Ds18b20(ds18x20.DS18X20(bus), bus, onewire.OneWireError, name, int(resolution), sleep_ms)


class Ds18b20:
    """One DS18B20 on a 1-Wire pin, read without blocking the loop: each read collects the
    conversion the read before started and starts the next (sample_hz is at most one per
    conversion time, checked when made). Only the first read, and the first after the bus
    lost the sensor, waits for its conversion: the conversion time (750 ms at 12 bit).
    The sensor is set to the resolution asked for when found, and again whenever a
    scratchpad shows another (it comes up with its EEPROM's after a power loss)."""

    def __init__(
        self, sensors: "Any", bus: "Any", bus_error: "Any", name: str, resolution: int, sleep_ms: "Any"
    ) -> None:
        self.sensors = sensors
        self.bus = bus
        self.bus_error = bus_error
        self.name = name
        self.rom: "Any" = None  # the sensor's ROM, once found
        self.resolution = resolution
        self.conv_ms = sensor_wire.conversion_ms(resolution, name)
        self.sleep_ms = sleep_ms
        self.started = False
        self.pad = bytearray(9)
        self.power_on = sensor_wire.PowerOnGuard()

    def read(self, t_ms: int) -> float:
        try:
            if self.rom is None:
                self.rom = self.find()
                self.read_pad()
                self.configure()
            if not self.started:
                self.sensors.convert_temp()
                self.sleep_ms(self.conv_ms)
            self.started = False
            self.read_pad()
            self.configure()
            # The next conversion starts before this one is judged: a bad reading does not
            # make the next read wait.
            self.sensors.convert_temp()
            self.started = True
            return self.power_on.check(sensor_wire.decode_scratchpad(self.pad))
        except self.bus_error as e:  # onewire.OneWireError: no presence pulse
            self.rom = None  # a sensor replaced on the bus is found again
            raise SensorError("absent", "no presence pulse on the 1-Wire bus") from e

    def read_pad(self) -> None:
        # Read here, not by ds18x20.read_scratch, so that its CRC is checked by the same
        # code as the Pi's and a failure is a "crc" fault.
        bus = self.bus
        bus.reset(True)
        bus.select_rom(self.rom)
        bus.writebyte(_READ_SCRATCHPAD)
        bus.readinto(self.pad)

    def configure(self) -> None:
        """Sets the sensor's resolution when its scratchpad shows another (alarm bytes kept)."""
        found = sensor_wire.pad_resolution(self.pad)
        if found is not None and found != self.resolution:
            config = bytearray((self.pad[2], self.pad[3], sensor_wire.config_byte(self.resolution)))
            self.sensors.write_scratch(self.rom, config)

    def find(self) -> bytes:
        """The ROM of the named DS18B20, or of the bus's only one when none is named."""
        found = []
        for rom in self.sensors.scan():
            name = sensor_wire.rom_name(rom)
            if name.startswith("28-") and (not self.name or name == self.name):
                found.append(bytes(rom))
        if not found:
            raise SensorError("absent", "no DS18B20 %s on the 1-Wire bus" % (self.name or "(28-*)"))
        if len(found) > 1:
            raise SensorError("failed", "%d DS18B20 on the bus; name one with driver_options rom" % len(found))
        return found[0]


def _make_hx711(spec: dict, machine: "Any", sleep_ms: "Any") -> "Hx711":
    sck, dout, pulses, scale = sensor_wire.hx711_options(spec)
    pin = machine.Pin
    return Hx711(machine, pin(sck, pin.OUT, value=0), pin(dout, pin.IN), pulses, scale, sleep_ms)


class Hx711:
    """One HX711 on two pins. Interrupts are off while a frame is clocked: PD_SCK high for
    more than 60 us would power the chip down (a pulse counter's edge waits, latched)."""

    def __init__(self, machine: "Any", sck: "Any", dout: "Any", pulses: int, scale: "Any", sleep_ms: "Any") -> None:
        self.machine = machine
        self.set_sck = sck.value
        self.get_dout = dout.value
        self.pulses = pulses
        self.scale = scale
        self.sleep_ms = sleep_ms

    def read(self, t_ms: int) -> float:
        sensor_wire.hx711_wait_ready(self.get_dout, self.sleep_ms)
        state = self.machine.disable_irq()
        try:
            word = sensor_wire.hx711_frame(self.set_sck, self.get_dout, self.pulses)
        finally:
            self.machine.enable_irq(state)
        value: float = self.scale.value(sensor_wire.hx711_decode(word))
        return value


def _make_pulse_counter(spec: dict, machine: "Any") -> "PulseCounter":
    number, edge, pull, rate = sensor_wire.pulse_options(spec, sensor_wire.PULSE_COUNTER_MASK)
    pin = machine.Pin
    trigger = {"rising": pin.IRQ_RISING, "falling": pin.IRQ_FALLING, "both": pin.IRQ_RISING | pin.IRQ_FALLING}
    bias = {"none": None, "up": pin.PULL_UP, "down": pin.PULL_DOWN}
    return PulseCounter(pin(number, pin.IN, bias[pull]), trigger[edge], rate)


class PulseCounter:
    """Edges on one pin, counted by its IRQ handler, which only increments (masked to stay a
    small int: no allocation in the handler, no micropython.schedule needed)."""

    def __init__(self, line: "Any", trigger: int, rate: "Any") -> None:
        self.count = 0
        self.rate = rate
        self.line = line
        line.irq(handler=self.edge, trigger=trigger)

    def edge(self, pin: "Any") -> None:
        self.count = (self.count + 1) & sensor_wire.PULSE_COUNTER_MASK

    def read(self, t_ms: int) -> float:
        value: float = self.rate.rate(t_ms, self.count)
        return value
