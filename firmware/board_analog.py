"""The board's own ADC pins through machine.ADC, checked and scaled by agent/core/sensor_i2c.py.

make(spec, machine) -> a driver giving the mean of a few conversions in the channel's unit.
"""

from agent.core import sensor_i2c
from agent.core.errors import ConfigError

# driver_options.atten_db -> the name of machine.ADC's attenuation constant (ESP32).
ATTENUATION = {0: "ATTN_0DB", 2.5: "ATTN_2_5DB", 6: "ATTN_6DB", 11: "ATTN_11DB"}


class BoardAdc:
    """One ADC pin as a channel in the profile's unit."""

    def __init__(self, spec: dict, adc: object) -> None:
        self.adc = adc
        self.where = "channel %s (ADC)" % spec["id"]
        _, _, self.samples, self.full_scale_v = sensor_i2c.adc_options(spec)
        # Whether the port calibrates (read_uv, ESP32) is a fact of the port: decided once.
        self.read_uv = getattr(adc, "read_uv", None)
        self.to_unit = sensor_i2c.LinearMap(spec)
        self.stuck = sensor_i2c.stuck_watch(spec)

    def _convert(self) -> tuple:
        u16 = self.adc.read_u16()  # type: ignore[attr-defined]
        return u16, self.read_uv() if self.read_uv is not None else None

    def read(self, t_ms: int) -> float:
        total = 0.0
        codes = 0  # the sum of the raw codes: what stuck_reads compares from read to read
        for _ in range(self.samples):
            u16, uv = sensor_i2c.with_retries(self._convert, self.where)
            codes += u16
            total += sensor_i2c.adc_volts(u16, uv, self.full_scale_v, self.where)
        self.stuck.feed(codes)
        return self.to_unit(total / self.samples)


def make(spec: dict, machine: object) -> object:
    """The ADC on driver_options.pin, with driver_options.atten_db (default 11 dB)."""
    pin, atten, _, _ = sensor_i2c.adc_options(spec)
    adc_class = machine.ADC  # type: ignore[attr-defined]
    try:
        adc = adc_class(machine.Pin(pin), atten=getattr(adc_class, ATTENUATION[atten]))  # type: ignore[attr-defined]
    except ValueError as e:
        raise ConfigError("channel %r: pin %d: %s" % (spec["id"], pin, e)) from e
    return BoardAdc(spec, adc)
