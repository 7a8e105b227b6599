"""I2C chips on a Pi through smbus2 (/dev/i2c-N): the bus adapter of agent/core/sensor_i2c.py.

env keys: "smbus", an opener bus number -> an smbus2.SMBus-like object (default
smbus2.SMBus); the chip logic, retries and plausibility checks are the core's.
"""

import errno
import time

from agent.core import sensor_i2c

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from agent.core.interfaces import Driver

DEFAULT_BUS = 1  # /dev/i2c-1: the I2C bus on a Raspberry Pi's header (pins 3 and 5)


def _open_smbus(number: int) -> object:
    import smbus2  # only where a Pi reads I2C chips

    return smbus2.SMBus(number)


class SMBusRegisters:
    """A chip's registers at one address through an SMBus; the bus is opened at the first
    transaction (so a missing /dev/i2c-N is a sensor fault, "absent", not a crash), and
    again after it failed to open or its adapter went away."""

    def __init__(self, opener: "Callable[[int], object]", number: int, address: int) -> None:
        self.opener = opener
        self.number = number
        self.address = address
        self.bus: object = None

    def _bus(self) -> object:
        if self.bus is None:
            self.bus = self.opener(self.number)
        return self.bus

    def read(self, register: int, n: int) -> bytes:
        try:
            return bytes(self._bus().read_i2c_block_data(self.address, register, n))  # type: ignore[attr-defined]
        except OSError as e:
            self._gone(e)
            raise

    def write(self, register: int, data: bytes) -> None:
        try:
            self._bus().write_i2c_block_data(self.address, register, list(data))  # type: ignore[attr-defined]
        except OSError as e:
            self._gone(e)
            raise

    def _gone(self, e: OSError) -> None:
        """The adapter itself went away (ENODEV: its module unloaded, a USB adapter
        unplugged): close the bus, so the next transaction opens it anew. A NACK or an EIO
        keeps it open: the bus is there, the chip did not answer."""
        if e.errno == errno.ENODEV and self.bus is not None:
            bus, self.bus = self.bus, None
            try:
                bus.close()  # type: ignore[attr-defined]
            except OSError:
                pass  # closing a descriptor of a vanished device may fail too; it is dropped either way

    def sleep_ms(self, ms: int) -> None:
        time.sleep(ms / 1000)


def make(spec: dict, env: dict) -> "Driver":
    """The chip driver_options.chip names (ads1115, adxl345) at driver_options.address on
    /dev/i2c-<driver_options.bus>; ConfigError for options it cannot use."""
    number = sensor_i2c.option_int(spec, "bus", DEFAULT_BUS, 0, 255)
    regs = SMBusRegisters(env.get("smbus", _open_smbus), number, sensor_i2c.i2c_address(spec))
    return sensor_i2c.make_chip(spec, regs, ("bus",))  # type: ignore[return-value]
