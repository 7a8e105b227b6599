"""ADC channels through Linux IIO on a Pi: in_voltageK_raw, _scale and _offset under
/sys/bus/iio/devices/iio:deviceN, read and checked by agent/core/sensor_i2c.py.

env keys: "sysfs", the sysfs root (default /sys; `wichtel run --sysfs DIR` and the tests
point it at a copy or a fake tree).
"""

import os

from agent.core import sensor_i2c
from agent.core.errors import ConfigError, SensorError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from agent.core.interfaces import Driver

MAX_ATTRIBUTE_BYTES = 64  # a sysfs number is a few characters; more is no IIO attribute


class IioVoltage:
    """One IIO voltage input as a channel in the profile's unit. The device is found (by
    number, or by its name file) and its scale and offset read at the first read, and again
    after a failed one (a driver reloaded, an overlay applied later)."""

    def __init__(self, spec: dict, root: str) -> None:
        self.device, self.input, self.bits = sensor_i2c.iio_options(spec)
        self.where = "channel %s (IIO)" % spec["id"]
        self.to_unit = sensor_i2c.LinearMap(spec)
        self.stuck = sensor_i2c.stuck_watch(spec)
        self.devices = os.path.join(root, "bus", "iio", "devices")
        self.dir: str | None = None
        self.scale_mv = 0.0
        self.offset = 0.0

    def _find(self) -> str:
        if not isinstance(self.device, str):
            d = os.path.join(self.devices, "iio:device%d" % self.device)
            if not os.path.isdir(d):
                raise SensorError("absent", "%s: no IIO device %s" % (self.where, d))
            return d
        try:
            entries = sorted(e for e in os.listdir(self.devices) if e.startswith("iio:device"))
        except OSError as e:
            raise SensorError("absent", "%s: no IIO devices (%s)" % (self.where, e)) from e
        for entry in entries[: sensor_i2c.IIO_MAX_DEVICES]:
            d = os.path.join(self.devices, entry)
            try:
                name = self._attribute(os.path.join(d, "name")).decode(errors="replace").strip()
            except SensorError:
                continue  # a device without a readable name is not the one named
            if name == self.device:
                return d
        raise SensorError("absent", "%s: no IIO device named %r under %s" % (self.where, self.device, self.devices))

    def _attribute(self, path: str) -> bytes:
        def read() -> bytes:
            with open(path, "rb") as f:
                return f.read(MAX_ATTRIBUTE_BYTES)

        return sensor_i2c.with_retries(read, path)

    def _number(self, names: tuple, default: float | None, integer: bool) -> float:
        """The first of names that exists in the device directory (IIO has per-channel and
        shared scale/offset attributes); default when none does (None: absent)."""
        for name in names:
            path = os.path.join(self.dir, name)  # type: ignore[arg-type]
            if os.path.exists(path):
                return sensor_i2c.parse_sysfs_number(self._attribute(path), path, integer)
        if default is None:
            raise SensorError("absent", "%s: none of %s in %s" % (self.where, ", ".join(names), self.dir))
        return default

    def read(self, t_ms: int) -> float:
        try:
            if self.dir is None:
                self.dir = self._find()
                k = self.input
                self.scale_mv = self._number(("in_voltage%d_scale" % k, "in_voltage_scale"), None, False)
                self.offset = self._number(("in_voltage%d_offset" % k, "in_voltage_offset"), 0.0, False)
            path = os.path.join(self.dir, "in_voltage%d_raw" % self.input)
            raw = int(sensor_i2c.parse_sysfs_number(self._attribute(path), path, True))
        except SensorError:
            self.dir = None
            raise
        self.stuck.feed(raw)
        return self.to_unit(sensor_i2c.iio_volts(raw, self.scale_mv, self.offset, self.bits, self.where))


def make(spec: dict, env: dict) -> "Driver":
    """The IIO voltage input driver_options names: device (number N of iio:deviceN, or its
    name), input (K of in_voltageK), bits (the ADC's resolution, 0 unknown), scale/offset
    (volts -> unit), stuck_reads."""
    root = env.get("sysfs", "/sys")
    if not isinstance(root, str):
        raise ConfigError("env sysfs: %r; expected a directory path" % (root,))
    return IioVoltage(spec, root)
