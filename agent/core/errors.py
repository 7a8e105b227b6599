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
    """

    def __init__(self, path: tuple, value: object, expected: str) -> None:
        self.path = path
        self.value = value
        self.expected = expected
        super().__init__(format_path(path) + ": got " + describe(value) + "; expected " + expected)


class ConfigError(WichtelError):
    """A run-time configuration (driver, processor, limit) cannot be used."""


class StateError(WichtelError):
    """Stored learned state cannot be used (corrupted, or from another model)."""


class StorageError(WichtelError):
    """The device's storage could not keep a change (a full or failing disk); the change
    was not made."""


class EncodingError(WichtelError):
    """A value cannot be encoded as a message (not JSON data, not finite, out of range)."""


class PayloadTooLargeError(EncodingError):
    """An encoded message is larger than its limit."""


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
    """A short, bounded description of a value for an error message."""
    if value is None:
        return "nothing"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return text + " (" + type(value).__name__ + ")"
