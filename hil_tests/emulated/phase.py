"""Emulated `machine.Pin` and `machine.UART` for the board's phase sources
(firmware/board_phase.py): the test sets line levels and puts bytes on the line.

Runs on MicroPython (the unix port) and CPython: pass this module where the board code
takes `machine`. Only what board_phase.py uses, with the board's behaviour: a UART's
read() gives None when nothing waits, and its buffer is bounded (bytes beyond are lost).
"""


class Pin:
    """An input line whose level the test sets (Pin.levels[number]); a number in
    Pin.broken makes value() raise OSError, as a line that cannot be read."""

    IN = 1
    PULL_UP = 2
    PULL_DOWN = 3
    levels: dict = {}
    broken: set = set()
    made: list = []

    def __init__(self, number: int, mode: int = IN, pull: object = None) -> None:
        self.number = number
        self.mode = mode
        self.pull = pull
        Pin.made.append(self)

    def value(self) -> int:
        if self.number in Pin.broken:
            raise OSError(5, "line %d cannot be read" % self.number)
        return Pin.levels.get(self.number, 1 if self.pull == Pin.PULL_UP else 0)


class UART:
    """A UART whose receive buffer (RXBUF bytes, as the board's default) the test fills
    with put(); what does not fit is lost, as on the board."""

    RXBUF = 256
    made: list = []

    def __init__(self, port: int, baudrate: int = 9600, timeout: int = 0, tx: object = None, rx: object = None) -> None:
        self.port = port
        self.baudrate = baudrate
        self.timeout = timeout
        self.tx = tx
        self.rx = rx
        self.buf = bytearray()
        self.lost = 0
        UART.made.append(self)

    def put(self, data: bytes) -> None:
        room = UART.RXBUF - len(self.buf)
        self.buf += data[:room]
        self.lost += max(0, len(data) - room)

    def any(self) -> int:
        return len(self.buf)

    def read(self, n: int = -1) -> bytes | None:
        if not self.buf:
            return None
        n = len(self.buf) if n < 0 else n
        out = bytes(self.buf[:n])
        self.buf = self.buf[n:]
        return out


def reset() -> None:
    """Forget every pin and UART made, and the levels set."""
    Pin.levels = {}
    Pin.broken = set()
    Pin.made = []
    UART.made = []
