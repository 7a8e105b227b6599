"""The board's sensor drivers: which module makes the driver a channel names.

Each board driver module has make(spec, machine) -> Driver, for one channel of a validated
profile (spec: the channel, its driver_options among it); machine is MicroPython's
`machine` module on a board, or emulated classes of the same names in the tests. A
driver's read raises SensorError when it has no reading (agent/core/errors.py).
"""

from agent.core.errors import ConfigError


def make(spec: dict, machine: object) -> object:
    """The driver of one channel; ConfigError for a driver that does not run on a board."""
    name = spec["driver"]
    # The board's own ADC pins.
    if name == "adc":
        from firmware import board_analog

        return board_analog.make(spec, machine)

    # Chips on an I2C bus.
    if name == "i2c":
        from firmware import board_i2c

        return board_i2c.make(spec, machine)

    # DS18B20 thermometers on a 1-Wire pin; HX711 load cell amplifiers and flow-meter
    # pulses on GPIO pins (firmware/board_wire.py).
    if name in ("onewire", "hx711", "pulse_counter"):
        from firmware import board_wire

        return board_wire.make(spec, machine)

    raise ConfigError(
        "channel %r: driver %r does not run on a board (a Pi's, the simulator's or a trace's)" % (spec["id"], name)
    )


def _missing(spec: dict) -> str:
    return "channel %r: the %r driver is not built yet" % (spec["id"], spec["driver"])
