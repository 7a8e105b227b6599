"""The board's phase sources: the controller's GPIO lines through machine.Pin, its UART
through machine.UART; rules need no I/O of their own.

What the phase is, is decided in agent/core/phases.py, as on a Pi (agent/phase_io.py) and
from the same profile section. make(profile, machine): machine is MicroPython's `machine`
module on a board, or emulated classes of the same names in the tests
(hil_tests/emulated/phase.py).
"""

from agent.core import limits, phases
from agent.core.errors import ConfigError


def make(profile: dict, machine: object, report: object = print) -> object:
    """The phase source of a validated profile's phase_source, on a board."""
    source = profile["phase_source"]
    if source is None:
        raise ConfigError("the profile has no phase_source; its phase comes from a simulator or a trace")
    kind = phases.kind_of(source)
    if kind == "rules":
        return phases.RulePhases(source, profile["phases"], report)  # type: ignore[arg-type]
    if kind == "gpio":
        return PinPhaseSource(source, profile["phases"], machine, report)
    return UartPhaseSource(source, profile["phases"], machine, report)


class PinPhaseSource:
    """The phase from the controller's GPIO lines (machine.Pin inputs), read at every look;
    a read that raises OSError counts as none (phases.CodePhases holds the last code until
    the silence bound)."""

    def __init__(self, source: dict, phase_list: list, machine: object, report: object) -> None:
        self.core = phases.CodePhases(source, phase_list, report)  # type: ignore[arg-type]
        gpio = source["gpio"]
        pin = machine.Pin  # type: ignore[attr-defined]
        pull = {"none": None, "up": pin.PULL_UP, "down": pin.PULL_DOWN}[gpio["pull"]]
        self.pins = [pin(n, pin.IN, pull) for n in gpio["lines"]]

    def phase(self, t_ms: int) -> str:
        try:
            levels = [p.value() for p in self.pins]
        except OSError:
            levels = None
        return self.core.phase_at(t_ms, levels)


class UartPhaseSource:
    """The phase from the controller's UART lines (machine.UART at the profile's baud rate,
    on its port and pins): each look takes what has arrived, at most
    limits.PHASE_UART_READ_MAX bytes (the rest waits in the UART's buffer for the next
    look), and phases.LinePhases parses it."""

    def __init__(self, source: dict, phase_list: list, machine: object, report: object) -> None:
        self.core = phases.LinePhases(source, phase_list, report)  # type: ignore[arg-type]
        uart = source["uart"]
        pins = {} if uart["tx"] is None else {"tx": uart["tx"], "rx": uart["rx"]}
        self.uart = machine.UART(uart["port"], baudrate=uart["baud"], timeout=0, **pins)  # type: ignore[attr-defined]
        self.read_faults = 0

    def take(self, t_ms: int) -> None:
        try:
            waiting = self.uart.any()
            if waiting:
                data = self.uart.read(min(waiting, limits.PHASE_UART_READ_MAX))
                if data:
                    self.core.feed(t_ms, data)
        except OSError:
            self.read_faults += 1

    def phase(self, t_ms: int) -> str:
        self.take(t_ms)
        return self.core.phase(t_ms)
