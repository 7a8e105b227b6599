"""I2C chips on a board through machine.I2C: the bus adapter of agent/core/sensor_i2c.py.

make(spec, machine) -> the chip's driver; the chip logic, retries and plausibility checks
are the core's, the same as on a Pi.
"""

import time

from agent.core import sensor_i2c
from agent.core.errors import ConfigError

DEFAULT_BUS = 0  # the board's first hardware I2C controller, on its default pins
BUS_HZ = 400_000  # fast mode: both chips take it; a burst of ADXL345 samples is 4x shorter

if hasattr(time, "sleep_ms"):
    _sleep_ms = time.sleep_ms
else:  # CPython, where the board drivers are tested too

    def _sleep_ms(ms: int) -> None:
        time.sleep(ms / 1000)


class MachineRegisters:
    """A chip's registers at one address on a machine.I2C bus."""

    def __init__(self, bus: object, address: int) -> None:
        self.bus = bus
        self.address = address

    def read(self, register: int, n: int) -> bytes:
        return self.bus.readfrom_mem(self.address, register, n)  # type: ignore[attr-defined, no-any-return]

    def write(self, register: int, data: bytes) -> None:
        self.bus.writeto_mem(self.address, register, data)  # type: ignore[attr-defined]

    def sleep_ms(self, ms: int) -> None:
        _sleep_ms(ms)


def make(spec: dict, machine: object) -> object:
    """The chip driver_options.chip names at driver_options.address on I2C bus
    driver_options.bus (sda, scl: pin numbers, when not the bus's default pins)."""
    number = sensor_i2c.option_int(spec, "bus", DEFAULT_BUS, 0, 255)
    pins = {}
    numbers = sensor_i2c.i2c_pins(spec)
    if numbers:
        pins = {"sda": machine.Pin(numbers[0]), "scl": machine.Pin(numbers[1])}  # type: ignore[attr-defined]
    try:
        bus = machine.I2C(number, freq=BUS_HZ, **pins)  # type: ignore[attr-defined]
    except ValueError as e:
        raise ConfigError("channel %r: I2C bus %d: %s" % (spec["id"], number, e)) from e
    return sensor_i2c.make_chip(spec, MachineRegisters(bus, sensor_i2c.i2c_address(spec)), ("bus", "sda", "scl"))
