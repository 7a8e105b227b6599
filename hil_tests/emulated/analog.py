"""Emulated analog inputs: machine.ADC replaying conversions, and a fake Linux IIO tree.

EmulatedADC runs on CPython and the MicroPython unix port; fake_iio (CPython, tests) writes
/sys/bus/iio/devices/iio:deviceN files under a directory of the test's own.
"""

import os


class EmulatedADC:
    """machine.ADC on a pin: each read_u16() takes the next recorded code (None: the
    conversion raises OSError EIO); read_uv() is that conversion in microvolts (the
    calibrated reading, code * full_scale_uv / 65535) unless has_uv is False, as on ports
    without it. A read after the codes ran out raises IndexError: the test recorded too few."""

    def __init__(self, codes: list, full_scale_uv: int = 3_100_000, has_uv: bool = True) -> None:
        self.codes = codes
        self.pos = 0
        self.full_scale_uv = full_scale_uv
        self.last = 0
        self.atten = None
        if not has_uv:
            self.read_uv = None

    def read_u16(self) -> int:
        if self.pos >= len(self.codes):
            raise IndexError("EmulatedADC: read %d of %d recorded codes" % (self.pos + 1, len(self.codes)))
        code = self.codes[self.pos]
        self.pos += 1
        if code is None:
            raise OSError(5)
        self.last = code
        return code

    def read_uv(self) -> int:  # type: ignore[no-redef]
        return self.last * self.full_scale_uv // 65535


def iio_device_dir(root: str, n: int) -> str:
    return os.path.join(root, "bus", "iio", "devices", "iio:device%d" % n)


def fake_iio(root: str, n: int = 0, name: str = "ads1015", channels: object = None, shared_scale: object = None) -> str:
    """Write an IIO device iio:device<n> under root (a sysfs root): its name, and for each
    {index: (raw, scale, offset)} the in_voltage<index>_raw/_scale/_offset files (None
    leaves a file out); shared_scale writes in_voltage_scale. Returns the device's directory."""
    d = iio_device_dir(root, n)
    os.makedirs(d, exist_ok=True)
    _write(os.path.join(d, "name"), name)
    for index, (raw, scale, offset) in (channels or {}).items():  # type: ignore[attr-defined]
        for suffix, value in (("raw", raw), ("scale", scale), ("offset", offset)):
            if value is not None:
                _write(os.path.join(d, "in_voltage%d_%s" % (index, suffix)), str(value))
    if shared_scale is not None:
        _write(os.path.join(d, "in_voltage_scale"), str(shared_scale))
    return d


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text + "\n")
