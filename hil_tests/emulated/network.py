"""An emulated `network` module for the MicroPython unix port: WLAN station and access point
interfaces over a scripted radio world (AIR), so the firmware's Wi-Fi code runs unchanged.

The names and status codes are the ESP32 port's (micropython-esp32-stubs network.pyi). A test
scripts AIR: which networks exist with which password, how many joins fail before one
succeeds, how long a join takes, when the link drops. Time is ticks_ms: a join in progress
is resolved when the firmware next looks at the interface.
"""

import time

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_CONNECT_FAIL = 203
AUTH_OPEN = 0
AUTH_WPA2_PSK = 3


class Air:
    """The radio world: networks in range, scripted failures, and what happened (log)."""

    def __init__(self) -> None:
        self.networks: dict = {}  # ssid -> password
        self.fail_joins = 0  # the next N joins fail (no access point answers), whatever the network
        self.join_ms = 30  # how long a join takes
        self.address = "127.0.0.1"  # the station's address once joined (and the access point's)
        self.log: list = []  # (ticks_ms, what)

    def note(self, what: str) -> None:
        self.log.append((time.ticks_ms(), what))  # type: ignore[attr-defined]

    def drop(self) -> None:
        """The link drops (the router restarts): every joined station loses it."""
        sta = _IFACES.get(STA_IF)
        if sta is not None and sta._status == STAT_GOT_IP:
            sta._status = STAT_IDLE
            self.note("drop")


AIR = Air()
_IFACES: dict = {}


class _WLAN:
    def __init__(self, interface: int) -> None:
        self.interface = interface
        self._active = False
        self._config: dict = {"mac": b"\x24\x6f\x28\xa1\xb2\xc3", "ssid": "", "security": AUTH_OPEN, "reconnects": -1}
        self._status = STAT_IDLE
        self._target = ("", "")
        self._since = 0

    def active(self, on: object = None) -> object:
        if on is None:
            return self._active
        self._active = bool(on)
        AIR.note("%s active %s" % ("ap" if self.interface == AP_IF else "sta", self._active))
        if not self._active:
            self._status = STAT_IDLE
        return None

    def config(self, *names: str, **values: object) -> object:
        if names:
            return self._config[names[0]]
        for key in values:
            if key not in ("ssid", "security", "key", "reconnects", "hostname", "channel", "hidden"):
                raise ValueError("unknown config param")
        self._config.update(values)
        return None

    def connect(self, ssid: str, key: str = "") -> None:
        if self.interface != STA_IF or not self._active:
            raise OSError("STA must be active")
        self._target = (ssid, key)
        self._since = time.ticks_ms()  # type: ignore[attr-defined]
        self._status = STAT_CONNECTING
        AIR.note("connect %s" % ssid)

    def disconnect(self) -> None:
        self._status = STAT_IDLE

    def _settle(self) -> None:
        if self._status != STAT_CONNECTING:
            return
        if time.ticks_diff(time.ticks_ms(), self._since) < AIR.join_ms:  # type: ignore[attr-defined]
            return
        ssid, key = self._target
        if AIR.fail_joins > 0:
            AIR.fail_joins -= 1
            self._status = STAT_NO_AP_FOUND
        elif ssid not in AIR.networks:
            self._status = STAT_NO_AP_FOUND
        elif AIR.networks[ssid] != key:
            self._status = STAT_WRONG_PASSWORD
        else:
            self._status = STAT_GOT_IP
        AIR.note("join %s: %d" % (ssid, self._status))

    def status(self, *param: str) -> int:
        self._settle()
        return self._status

    def isconnected(self) -> bool:
        self._settle()
        if self.interface == AP_IF:
            return self._active
        return self._status == STAT_GOT_IP

    def ifconfig(self, *config: object) -> tuple:
        up = self.isconnected()
        return (AIR.address if up else "0.0.0.0", "255.255.255.0", AIR.address, AIR.address)


def WLAN(interface: int = STA_IF) -> _WLAN:  # the module's own name for its constructor
    """One object per interface, as on a board."""
    if interface not in _IFACES:
        _IFACES[interface] = _WLAN(interface)
    return _IFACES[interface]  # type: ignore[no-any-return]


_HOSTNAME = ["espressif"]


def hostname(name: str | None = None) -> str | None:
    """The board's network name, as the port's module-level hostname() keeps it (1.20 and
    later: DHCP sends it and the port's mDNS answers `<name>.local`); at most 32 characters."""
    if name is None:
        return _HOSTNAME[0]
    if not 0 < len(name) <= 32:
        raise ValueError("hostname too long")
    _HOSTNAME[0] = name
    return None
