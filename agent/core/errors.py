"""Every exception the portable core raises, in one hierarchy.

Messages say where (field path), what arrived and what was expected.
"""

import re

_PLAIN_KEY = re.compile("^[A-Za-z0-9_-]+$")


class WichtelError(Exception):
    """Base of all Wichtel errors."""


class ProfileError(WichtelError):
    """An appliance profile does not match its schema.

    path is a tuple of keys and indexes from the root, e.g. ("channels", 2, "sample_hz").
    got, when given, says what arrived where the value alone cannot (e.g. "an alias").
    """

    def __init__(self, path: tuple, value: object, expected: str, got: str | None = None) -> None:
        self.path = path
        self.value = value
        self.expected = expected
        super().__init__(
            format_path(path) + ": got " + (describe(value) if got is None else got) + "; expected " + expected
        )


class ConfigError(WichtelError):
    """A run-time configuration (driver, processor, limit) cannot be used."""


class DriverOptionError(ConfigError):
    """A channel's driver_options setting its driver cannot use: option is its name, value
    what the profile gave (None: missing; the name itself for an option the driver does
    not have), expected what the driver takes. The profile check reports it at
    channels[i].driver_options.<option>."""

    def __init__(self, channel: str, option: str, value: object, expected: str, unknown: bool = False) -> None:
        self.option = option
        self.value = option if unknown else value
        self.expected = expected
        got = "is no such option" if unknown else "is needed" if value is None else "is %r" % (value,)
        super().__init__("channel %r: driver_options.%s %s; expected %s" % (channel, option, got, expected))


class InputError(WichtelError):
    """A value a caller handed over that cannot be taken: a dose above the capacity, a clock
    running backwards, an empty journal record, a key of the wrong length. The calling
    code's mistake, not the user's or the profile's; nothing changed."""


class SensorError(WichtelError):
    """A driver could not give a reading: the sensor is absent, its data failed a check (a
    CRC), its bus is stuck, or it gave a value no such sensor can give. reason is one of
    SENSOR_REASONS; the pipeline turns it into a sensor-fault event, never into data."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason if reason in SENSOR_REASONS else "failed"
        super().__init__(self.reason + (": " + detail if detail else ""))


# Why a sensor gave no reading (SensorError.reason, the "reason" of a sensor-fault event).
SENSOR_REASONS = ("absent", "crc", "stuck", "implausible", "out_of_range", "failed")


class StateError(WichtelError):
    """Stored learned state cannot be used (corrupted, or from another model)."""


class StorageError(WichtelError):
    """The device's storage could not keep a change (a full or failing disk); the change
    was not made."""


class EncodingError(WichtelError):
    """A value cannot be encoded as a message (not JSON data, not finite, out of range)."""


class PayloadTooLargeError(EncodingError):
    """An encoded message is larger than its limit."""


class OutboxFullError(WichtelError):
    """The outbox has no room for a message it may not drop to make room (consent receipts
    and erasure requests, or a message no lower than everything waiting): try again later."""


class InboundJsonError(WichtelError):
    """JSON from outside (a command, a compiled profile) that is refused before any work:
    larger, deeper, longer or with bigger numbers than its bounds, or not JSON. The
    message names the byte offset, what was found there and what was expected; the three
    are also kept apart (at: -1 when the whole text is meant)."""

    def __init__(self, at: int, got: str, expected: str) -> None:
        self.at = at
        self.got = got
        self.expected = expected
        where = "JSON" if at < 0 else "JSON at byte %d" % at
        super().__init__(where + ": got " + got + "; expected " + expected)


class CommandError(WichtelError):
    """A command that is refused; the message says why, for the error reply.

    reply is False when the command must not be answered at all (it did not come on
    this device's own command topic): a peer cannot make the device send a reply storm."""

    def __init__(self, message: str, reply: bool = True) -> None:
        super().__init__(message)
        self.reply = reply


class MqttError(WichtelError):
    """The broker refused, or the link broke, or a packet was not valid MQTT."""


def format_path(path: tuple) -> str:
    """('channels', 2, 'sample_hz') -> 'channels[2].sample_hz'; () -> '(top level)'.

    Keys that are not plain words are quoted, so a key with a newline or a dot in it
    cannot break or fake the path.
    """
    out = ""
    for part in path:
        if isinstance(part, int):
            out += "[" + str(part) + "]"
        elif not isinstance(part, str) or _PLAIN_KEY.match(part) is None:
            out += "[" + repr(part) + "]"
        elif out:
            out += "." + str(part)
        else:
            out = str(part)
    return out or "(top level)"


def describe(value: object) -> str:
    """A short, bounded description of a value for an error message.

    Safe for any value a parser can make: a list nested thousands deep or a whole number
    of thousands of digits (which CPython refuses to turn into text) is cut short, not
    turned into a second error.
    """
    if value is None:
        return "nothing"
    text = _brief(value, _DESCRIBE_LEN)
    if len(text) > _DESCRIBE_LEN:
        text = text[: _DESCRIBE_LEN - 3] + "..."
    return text + " (" + type(value).__name__ + ")"


_DESCRIBE_LEN = 60
_HUGE = 10**_DESCRIBE_LEN  # a whole number this large is not shown digit by digit


def _brief(value: object, room: int) -> str:
    """repr(value) as far as about room characters; containers are not walked further."""
    if room <= 0:
        return "..."
    if isinstance(value, int) and not isinstance(value, bool) and not -_HUGE < value < _HUGE:
        return "a " + ("negative " if value < 0 else "") + "number of more than " + str(_DESCRIBE_LEN) + " digits"
    if isinstance(value, dict):
        text = "{"
        for key in value:
            if len(text) > room:
                return text + "..."
            if len(text) > 1:
                text += ", "
            text += _brief(key, room - len(text))
            text += ": " + _brief(value[key], room - len(text) - 2)
        return text + "}"
    if isinstance(value, list):
        text = "["
        for item in value:
            if len(text) > room:
                return text + "..."
            if len(text) > 1:
                text += ", "
            text += _brief(item, room - len(text))
        return text + "]"
    return repr(value)
