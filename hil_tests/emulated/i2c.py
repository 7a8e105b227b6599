"""An emulated I2C bus that replays a recorded register trace, and a `machine` stand-in.

The same EmulatedI2C object serves as an smbus2.SMBus (Pi drivers) and as a machine.I2C
(board drivers); it runs on CPython and on the MicroPython unix port.

Trace format (hil_tests/traces/*.trace), one transaction per line, `#` starts a comment:

    <op> <address> <register> <payload> [*<count>]

op is `r` (the driver reads) or `w` (it writes); address and register are hex; payload is
the bytes in hex (read: what the chip answers; write: what the driver must send) or a
fault: `!nack`, `!eio`, `!etimedout`, or `!enodev` (the adapter itself is gone); the
transaction raises OSError as the platform does. `*N` repeats the line N times. A
transaction that differs from the next line (op, address, register, length, written
bytes) or comes after the trace's end raises TraceMismatch: the driver did not do what
was recorded.
"""

# errno values: a NACK is EREMOTEIO (121) on a Raspberry Pi's i2c-bcm2835 through smbus2
# and ENODEV (19) on MicroPython's machine.I2C; EIO and ETIMEDOUT are the same on both.
_FAULTS = {"nack": (121, 19), "eio": (5, 5), "etimedout": (110, 110), "enodev": (19, 19)}
_MESSAGES = {121: "Remote I/O error", 19: "No such device", 5: "Input/output error", 110: "Connection timed out"}
SMBUS = 0
MACHINE = 1


class TraceMismatch(Exception):
    """The driver's transaction is not the one the trace recorded next."""


class Transaction:
    __slots__ = ("address", "data", "fault", "line", "op", "register")

    def __init__(self, op: str, address: int, register: int, data: object, fault: object, line: int) -> None:
        self.op = op
        self.address = address
        self.register = register
        self.data = data
        self.fault = fault
        self.line = line


def parse_trace(text: str, name: str = "trace") -> list:
    """The transactions of a trace's text; ValueError naming the line for a bad one."""
    out = []
    n = 0
    for raw in text.split("\n"):
        n += 1
        words = raw.split("#")[0].split()
        if not words:
            continue
        count = 1
        if words[-1].startswith("*"):
            count = int(words.pop()[1:])
        if len(words) != 4 or words[0] not in ("r", "w") or count < 1:
            raise ValueError("%s:%d: %r; expected `r|w ADDR REG HEX|!fault [*N]`" % (name, n, raw))
        fault = None
        data = None
        if words[3].startswith("!"):
            fault = words[3][1:]
            if fault not in _FAULTS:
                raise ValueError("%s:%d: fault %r; expected one of %s" % (name, n, fault, ", ".join(_FAULTS)))
        else:
            data = bytes(int(words[3][i : i + 2], 16) for i in range(0, len(words[3]), 2))
        for _ in range(count):
            out.append(Transaction(words[0], int(words[1], 16), int(words[2], 16), data, fault, n))
    return out


def load_trace(path: str) -> list:
    with open(path) as f:
        return parse_trace(f.read(), path)


class EmulatedI2C:
    """A bus replaying transactions; as smbus2.SMBus and as machine.I2C."""

    def __init__(self, transactions: list, name: str = "trace") -> None:
        self.transactions = transactions
        self.name = name
        self.pos = 0
        self.closed = False

    @classmethod
    def from_file(cls, path: str) -> "EmulatedI2C":
        return cls(load_trace(path), path)

    def remaining(self) -> int:
        """Transactions of the trace not yet done."""
        return len(self.transactions) - self.pos

    def _do(self, op: str, address: int, register: int, n: int, written: object, api: int) -> bytes:
        if self.pos >= len(self.transactions):
            raise TraceMismatch("%s: %s 0x%02x reg 0x%02x after the trace's end" % (self.name, op, address, register))
        t = self.transactions[self.pos]
        self.pos += 1
        if t.op != op or t.address != address or t.register != register:
            raise TraceMismatch("%s:%d: the driver did %s %02x %02x; the trace has %s %02x %02x"
                                % (self.name, t.line, op, address, register, t.op, t.address, t.register))  # fmt: skip
        if t.fault is not None:
            errno = _FAULTS[t.fault][api]
            raise OSError(errno, _MESSAGES[errno])
        if op == "w" and bytes(written) != t.data:  # type: ignore[call-overload]
            raise TraceMismatch("%s:%d: the driver wrote %r; the trace has %r" % (self.name, t.line, written, t.data))
        if op == "r" and len(t.data) != n:  # type: ignore[arg-type]
            raise TraceMismatch(
                "%s:%d: the driver read %d bytes; the trace has %d" % (self.name, t.line, n, len(t.data))
            )  # type: ignore[arg-type]
        return t.data if op == "r" else b""  # type: ignore[return-value]

    # smbus2.SMBus
    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int, force: object = None) -> list:
        return list(self._do("r", i2c_addr, register, length, None, SMBUS))

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: list, force: object = None) -> None:
        self._do("w", i2c_addr, register, len(data), bytes(data), SMBUS)

    def read_byte_data(self, i2c_addr: int, register: int, force: object = None) -> int:
        return self._do("r", i2c_addr, register, 1, None, SMBUS)[0]

    def write_byte_data(self, i2c_addr: int, register: int, value: int, force: object = None) -> None:
        self._do("w", i2c_addr, register, 1, bytes((value,)), SMBUS)

    def close(self) -> None:
        self.closed = True

    # machine.I2C
    def readfrom_mem(self, addr: int, memaddr: int, nbytes: int) -> bytes:
        return self._do("r", addr, memaddr, nbytes, None, MACHINE)

    def writeto_mem(self, addr: int, memaddr: int, buf: bytes) -> None:
        self._do("w", addr, memaddr, len(buf), buf, MACHINE)


class Pin:
    """machine.Pin: only its number matters to the drivers here."""

    IN = 1

    def __init__(self, id: int, mode: int = -1, pull: object = None) -> None:
        self.id = id


class _ADCClass:
    """machine.ADC as the board drivers use it: the attenuation constants and a constructor
    that gives the emulated converter wired to the pin (ValueError for a pin without one,
    as on an ESP32)."""

    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3

    def __init__(self, adcs: dict) -> None:
        self.adcs = adcs

    def __call__(self, pin: Pin, atten: object = None) -> object:
        if pin.id not in self.adcs:
            raise ValueError("invalid Pin for ADC")
        adc = self.adcs[pin.id]
        adc.atten = atten
        return adc


class Machine:
    """A `machine` module stand-in: I2C(id, ...) gives the emulated bus of that id, ADC(pin)
    the emulated converter on that pin (hil_tests/emulated/analog.py)."""

    Pin = Pin

    def __init__(self, i2c: object = None, adc: object = None) -> None:
        self.buses = i2c or {}
        self.ADC = _ADCClass(adc or {})
        self.opened = []  # (id, scl, sda, freq) of each I2C(...) the drivers made

    def I2C(self, id: int, scl: object = None, sda: object = None, freq: int = 400_000) -> EmulatedI2C:
        if id not in self.buses:
            raise ValueError("I2C(%d) doesn't exist" % id)
        self.opened.append((id, scl, sda, freq))
        return self.buses[id]
