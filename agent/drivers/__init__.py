"""Real sensor drivers on a Pi (host adapters): which module makes the driver a channel names.

Each driver module has make(spec, env) -> Driver, for one channel of a validated profile
(spec: the channel, its driver_options among it). env holds what the host hands in and
tests replace: the sysfs root, the I2C bus and GPIO chip openers (each module says its
keys). A driver's read raises SensorError when it has no reading (agent/core/errors.py).
"""

from agent.core.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from agent.core.interfaces import Driver


def make(spec: dict, env: dict | None = None) -> "Driver":
    """The driver of one channel; ConfigError for a driver that does not run on a Pi."""
    env = env or {}
    name = spec["driver"]
    # Analog inputs through Linux IIO.
    if name == "linux_iio":
        from agent.drivers import iio

        return iio.make(spec, env)

    # Chips on an I2C bus.
    if name == "i2c":
        from agent.drivers import i2c

        return i2c.make(spec, env)

    # DS18B20 thermometers through the 1-Wire sysfs (env "sysfs").
    if name == "onewire":
        from agent.drivers import onewire

        return onewire.make(spec, env)

    # HX711 load cell amplifiers and flow-meter pulses on GPIO lines (env "gpiod", "sleep_ms", "monotonic_ns").
    if name == "hx711":
        from agent.drivers import gpio

        return gpio.make_hx711(spec, env)
    if name == "pulse_counter":
        from agent.drivers import gpio

        return gpio.make_pulse_counter(spec, env)

    raise ConfigError(
        "channel %r: driver %r does not run on a Pi (a board's, the simulator's or a trace's)" % (spec["id"], name)
    )


def _missing(spec: dict) -> str:
    return "channel %r: the %r driver is not built yet" % (spec["id"], spec["driver"])


def make_all(profile: dict, env: dict | None = None) -> dict:
    """channel id -> driver for every channel of the profile."""
    return {ch["id"]: make(ch, env) for ch in profile["channels"]}
