"""DS18B20 thermometers on a Pi, through the kernel's 1-Wire sysfs (w1-gpio and w1_therm).

The kernel runs the bus and converts when the file is read, which takes the conversion time
(750 ms at 12 bit): the read runs in a thread of its own and is collected by the next sample,
so the agent's loop never waits for it but on the first. The judging (CRC, plausibility,
the power-on value) is agent/core/sensor_wire.py's, as on the board.
env keys: "sysfs", the sysfs root ("/sys" by default; a fake tree in the tests).
"""

import errno
import os
import threading
import time

from agent.core import sensor_wire
from agent.core.errors import ConfigError, SensorError

W1_DEVICES = "bus/w1/devices"  # under the sysfs root
W1_FILES = ("w1_slave", "temperature")  # driver_options file: which of the device's files is read
# A file read (the kernel's conversion, and its retries on a CRC error) that has not ended by
# then is a stuck bus; the thread is left to the kernel and no other read starts meanwhile.
W1_READ_TIMEOUT_MS = 3000
_DS18B20_PREFIX = "28-"


def make(spec: dict, env: dict) -> "W1Thermometer":
    where = "channel %r" % spec["id"]
    rom = sensor_wire.option(spec, "rom", "")
    name = sensor_wire.rom_option(rom, where) if rom else ""
    file = sensor_wire.option(spec, "file", "w1_slave")
    if file not in W1_FILES:
        raise ConfigError("%s: driver_options file %r; expected one of %s" % (where, file, ", ".join(W1_FILES)))
    return W1Thermometer(os.path.join(env.get("sysfs", "/sys"), W1_DEVICES), name, str(file))


class W1Read:
    """One read of a device's file in a thread: its text, or the SensorError it came to."""

    def __init__(self, thermometer: "W1Thermometer") -> None:
        self.thermometer = thermometer
        self.started = time.monotonic()
        self.done = threading.Event()
        self.text = ""
        self.error: SensorError | None = None
        threading.Thread(target=self.run, name="w1-read", daemon=True).start()

    def run(self) -> None:
        try:
            self.text = self.thermometer.read_file()
        except SensorError as e:
            self.error = e
        finally:
            self.done.set()

    def wait(self) -> bool:
        """Waits for the end of the read, at most until W1_READ_TIMEOUT_MS after its start."""
        left = W1_READ_TIMEOUT_MS / 1000 - (time.monotonic() - self.started)
        return self.done.wait(max(left, 0))


class W1Thermometer:
    """One DS18B20 by its sysfs name, or the bus's only DS18B20 when no rom is given. Each
    read collects the file read the read before started, and starts the next: a reading is
    one sample period old."""

    def __init__(self, devices: str, name: str, file: str) -> None:
        self.devices = devices
        self.name = name
        self.file = file
        self.power_on = sensor_wire.PowerOnGuard()
        self.job: W1Read | None = None

    def read(self, t_ms: int) -> float:
        job = self.job or W1Read(self)
        self.job = job
        if not job.wait():
            raise SensorError("stuck", "reading %s took more than %d ms" % (self.devices, W1_READ_TIMEOUT_MS))
        self.job = W1Read(self)
        if job.error is not None:
            raise job.error
        if self.file == "w1_slave":
            value = sensor_wire.parse_w1_slave(job.text)
        else:
            value = sensor_wire.parse_w1_temperature(job.text)
        return self.power_on.check(value)

    def device(self) -> str:
        """The device's directory; "absent" when it is not there, "failed" when no rom was
        given and the bus has more than one DS18B20 (which one is meant is not known)."""
        if self.name:
            path = os.path.join(self.devices, self.name)
            if not os.path.isdir(path):
                raise SensorError("absent", "no %s (is the sensor connected, w1-gpio loaded?)" % path)
            return path
        try:
            found = sorted(n for n in os.listdir(self.devices) if n.startswith(_DS18B20_PREFIX))
        except FileNotFoundError as e:
            raise SensorError("absent", "no %s: no 1-Wire bus (dtoverlay=w1-gpio)" % self.devices) from e
        if not found:
            raise SensorError("absent", "no DS18B20 (28-*) in %s" % self.devices)
        if len(found) > 1:
            raise SensorError("failed", "%d DS18B20 in %s (%s); name one with driver_options rom"
                              % (len(found), self.devices, ", ".join(found)))  # fmt: skip
        return os.path.join(self.devices, found[0])

    def read_file(self) -> str:
        """The device file's text (in the read's thread: the kernel converts meanwhile)."""
        path = os.path.join(self.device(), self.file)
        try:
            with open(path, encoding="ascii", errors="replace") as f:
                return f.read(sensor_wire.MAX_W1_TEXT + 1)
        except FileNotFoundError as e:
            raise SensorError("absent", "%s went away" % path) from e
        except OSError as e:
            # w1_therm answers EIO when the scratchpad failed its CRC on every retry.
            reason = "crc" if e.errno == errno.EIO else "failed"
            raise SensorError(reason, "reading %s: %s" % (path, e)) from e
