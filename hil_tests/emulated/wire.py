"""Emulated 1-Wire: DS18B20 sensors replaying recorded scratchpads, seen through stand-ins of
MicroPython's onewire and ds18x20 modules (the board) or a fake w1 sysfs tree (the Pi).

A trace (kind ds18b20, hil_tests/emulated/gpio.py has the format) holds the sensor's ROM and
one record per read: the scratchpad the read gets, or `absent` (no presence pulse; no device
directory in sysfs). The test moves every sensor to its next record before each driver read
(W1Bus.next_read, FakeW1Sysfs.show), so both platforms see the same sequence.
This module stands in for both `onewire` and `ds18x20` (the tests put it in sys.modules under
those names). Runs on CPython and MicroPython.
"""

_CONVERT = 0x44
_READ_SCRATCHPAD = 0xBE
_WRITE_SCRATCHPAD = 0x4E
POWER_ON_PAD = b"\x50\x05\x4b\x46\x7f\xff\x0c\x10\x1c"  # 85.0 degC: before any conversion


def crc8(data):
    """The Dallas/Maxim CRC8, written apart from the core's (shift register with feedback
    0x18, Maxim application note 27) so that a fault in either shows in the tests."""
    crc = 0
    for byte in data:
        for _ in range(8):
            feedback = (crc ^ byte) & 1
            if feedback:
                crc ^= 0x18
            crc = (crc >> 1) & 0x7F
            if feedback:
                crc |= 0x80
            byte >>= 1
    return crc


def make_rom(serial_hex):
    """A DS18B20 ROM from the 12 hex digits Linux shows ('0316a2795dff'): family 0x28, the
    serial least significant byte first, its CRC."""
    rom = bytearray(8)
    rom[0] = 0x28
    for i in range(6):
        rom[6 - i] = int(serial_hex[2 * i : 2 * i + 2], 16)
    rom[7] = crc8(rom[:7])
    return bytes(rom)


def w1_slave_text(pad):
    """What Linux's w1_therm shows in w1_slave for a scratchpad (its CRC verdict and t=)."""
    hexes = " ".join("%02x" % b for b in pad)
    verdict = "YES" if crc8(pad[:8]) == pad[8] else "NO"
    raw = pad[0] | (pad[1] << 8)
    if raw & 0x8000:
        raw -= 0x10000
    millis = int(raw * 1000 / 16)  # C's integer division truncates toward zero
    return "%s : crc=%02x %s\n%s t=%d\n" % (hexes, pad[8], verdict, hexes, millis)


class Ds18b20Device:
    """One sensor: its ROM and its records (scratchpad bytes, or None: absent), in read order."""

    def __init__(self, rom, records):
        self.rom = rom
        self.records = records
        self.cursor = -1
        self.converted = False
        self.config = None  # the configuration register the host wrote, if it did
        self.configs_written = 0

    @classmethod
    def from_trace(cls, kind_records, rom=None):
        kind, records = kind_records
        if kind != "ds18b20":
            raise ValueError("a %s trace is no DS18B20's" % kind)
        out = []
        for what, data in records:
            if what == "rom":
                rom = rom or data
            else:
                out.append(data)
        if rom is None:
            raise ValueError("the trace names no rom")
        return cls(rom, out)

    def record(self):
        if self.cursor < 0:
            return POWER_ON_PAD
        return self.records[self.cursor % len(self.records)]

    def answer(self):
        """The scratchpad a Read Scratchpad gets: the record (the power-on one before any
        conversion), with the configuration register the host wrote, until a power-on value
        shows the sensor lost it. A record that is no sensor's answer (CRC failing, a
        register that cannot be) is a bus fault: as recorded."""
        pad = self.record() if self.converted else POWER_ON_PAD
        if pad[0] == POWER_ON_PAD[0] and pad[1] == POWER_ON_PAD[1]:
            self.config = None  # the power-on value: it lost power, its EEPROM's register is back
        if self.config is None or crc8(pad) != 0 or pad[4] & 0x9F != 0x1F:
            return pad
        out = bytearray(pad)
        out[4] = self.config
        out[8] = crc8(out[:8])
        return bytes(out)


class W1Bus:
    """A 1-Wire bus on a board pin and the sensors on it. conversions counts Convert T
    commands; pad_reads the scratchpads read."""

    def __init__(self, devices):
        self.devices = devices
        self.conversions = 0
        self.pad_reads = 0

    def next_read(self):
        for dev in self.devices:
            dev.cursor += 1
            if dev.record() is None:  # unplugged: it comes back as from power-up
                dev.converted = False
                dev.config = None

    def present(self):
        return [dev for dev in self.devices if dev.record() is not None]

    def level(self, line):
        return 1

    def drive(self, line, level):
        pass


class OneWireError(Exception):
    pass


class OneWire:
    """onewire.OneWire on an emulated bus: reset, ROM commands (match, skip, search as scan),
    Convert T and Read Scratchpad, byte by byte as the real module sends them."""

    SEARCH_ROM = 0xF0
    MATCH_ROM = 0x55
    SKIP_ROM = 0xCC

    def __init__(self, pin):
        self.pin = pin
        self.pin.init(pin.OPEN_DRAIN, pin.PULL_UP)
        self.bus = pin.device
        self.selected = []
        self.state = "idle"
        self.rom_bytes = bytearray()

    def reset(self, required=False):
        present = bool(self.bus.present())
        if required and not present:
            raise OneWireError
        self.state = "rom" if present else "idle"
        self.selected = []
        return present

    def writebyte(self, value):
        if self.state == "rom":
            if value == self.SKIP_ROM:
                self.selected = self.bus.present()
                self.state = "function"
            elif value == self.MATCH_ROM:
                self.rom_bytes = bytearray()
                self.state = "match"
            else:
                raise AssertionError("ROM command 0x%02x is not emulated" % value)
        elif self.state == "match":
            self.rom_bytes.append(value)
            if len(self.rom_bytes) == 8:
                self.selected = [d for d in self.bus.present() if d.rom == bytes(self.rom_bytes)]
                self.state = "function"
        elif self.state == "function":
            if value == _CONVERT:
                for dev in self.selected:
                    dev.converted = True
                self.bus.conversions += 1
                self.state = "idle"
            elif value == _READ_SCRATCHPAD:
                self.state = "read"
            elif value == _WRITE_SCRATCHPAD:
                self.rom_bytes = bytearray()
                self.state = "write"
            else:
                raise AssertionError("function command 0x%02x is not emulated" % value)
        elif self.state == "write":
            self.rom_bytes.append(value)  # TH, TL, then the configuration register
            if len(self.rom_bytes) == 3:
                for dev in self.selected:
                    dev.config = value
                    dev.configs_written += 1
                self.state = "idle"
        else:
            raise AssertionError("byte 0x%02x written with no reset before it" % value)

    def write(self, buf):
        for b in buf:
            self.writebyte(b)

    def readinto(self, buf):
        if self.state != "read":
            raise AssertionError("read with no Read Scratchpad command before it")
        if len(self.selected) != 1:
            # Nobody answering (or several at once) reads as a bus left high.
            for i in range(len(buf)):
                buf[i] = 0xFF
        else:
            pad = self.selected[0].answer()
            for i in range(len(buf)):
                buf[i] = pad[i]
        self.bus.pad_reads += 1
        self.state = "idle"

    def select_rom(self, rom):
        self.reset()
        self.writebyte(self.MATCH_ROM)
        self.write(rom)

    def scan(self):
        return [bytearray(d.rom) for d in sorted(self.bus.present(), key=lambda d: d.rom)]

    def crc8(self, data):
        return crc8(data)


class DS18X20:
    """ds18x20.DS18X20 as micropython-lib has it (scan, convert_temp, read_scratch), over the
    emulated OneWire."""

    def __init__(self, onewire):
        self.ow = onewire
        self.buf = bytearray(9)

    def scan(self):
        return [rom for rom in self.ow.scan() if rom[0] in (0x10, 0x22, 0x28)]

    def convert_temp(self):
        self.ow.reset(True)
        self.ow.writebyte(self.ow.SKIP_ROM)
        self.ow.writebyte(_CONVERT)

    def write_scratch(self, rom, buf):
        self.ow.reset(True)
        self.ow.select_rom(rom)
        self.ow.writebyte(_WRITE_SCRATCHPAD)
        self.ow.write(buf)

    def read_scratch(self, rom):
        self.ow.reset(True)
        self.ow.select_rom(rom)
        self.ow.writebyte(_READ_SCRATCHPAD)
        self.ow.readinto(self.buf)
        if self.ow.crc8(self.buf):
            raise Exception("CRC error")
        return self.buf


class FakeW1Sysfs:
    """A w1 sysfs tree under root (CPython only): bus/w1/devices/28-<serial>/w1_slave and
    temperature, rewritten for each read from the sensors' records as w1_therm shows them."""

    def __init__(self, root, devices):
        import os

        self.os = os
        self.devices_dir = os.path.join(root, "bus", "w1", "devices")
        os.makedirs(self.devices_dir, exist_ok=True)
        self.devices = devices

    def name(self, dev):
        return "28-" + "".join("%02x" % dev.rom[i] for i in range(6, 0, -1))

    def show(self, raw=None):
        """Move every sensor to its next record and write what the kernel would show; raw: a
        text written to every w1_slave instead (garbage a broken kernel might give)."""
        for dev in self.devices:
            dev.cursor += 1
            self.write(dev, dev.record(), raw)

    def write(self, dev, pad, raw=None):
        path = self.os.path.join(self.devices_dir, self.name(dev))
        if pad is None:
            if self.os.path.isdir(path):
                for f in self.os.listdir(path):
                    self.os.remove(self.os.path.join(path, f))
                self.os.rmdir(path)
            return
        self.os.makedirs(path, exist_ok=True)
        text = raw if raw is not None else w1_slave_text(pad)
        with open(self.os.path.join(path, "w1_slave"), "w") as f:
            f.write(text)
        with open(self.os.path.join(path, "temperature"), "w") as f:
            f.write(text.split("t=")[-1] if "t=" in text else text)
