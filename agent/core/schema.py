"""Small composable validators for the appliance profile and its processors' settings.

Each validator is a callable (value, path) -> cleaned value that raises ProfileError
naming the field path, the value and what was expected.
"""

import re

from agent.core.errors import ProfileError

_ID_RE = re.compile("^[a-z][a-z0-9_]*$")


class Str:
    """A non-empty string of at most max_len characters, optionally an identifier."""

    def __init__(self, max_len: int, ident: bool = False) -> None:
        self.max_len = max_len
        self.ident = ident

    def __call__(self, value: object, path: tuple) -> str:
        if self.ident:
            what = "an identifier (a-z, 0-9, _; starting with a letter; at most " + str(self.max_len) + " characters)"
        else:
            what = "a non-empty text of at most " + str(self.max_len) + " characters"
        if not isinstance(value, str) or not value or len(value) > self.max_len:
            raise ProfileError(path, value, what)
        if self.ident and _ID_RE.match(value) is None:
            raise ProfileError(path, value, what)
        return value


class Num:
    """A number (int or float, not bool) in [lo, hi]."""

    def __init__(self, lo: float, hi: float, unit: str = "", integer: bool = False) -> None:
        self.lo = lo
        self.hi = hi
        self.unit = unit
        self.integer = integer

    def __call__(self, value: object, path: tuple) -> float:
        kind = "a whole number" if self.integer else "a number"
        what = kind + " from " + str(self.lo) + " to " + str(self.hi)
        if self.unit:
            what += " (" + self.unit + ")"
        ok_type = isinstance(value, int) if self.integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type:
            raise ProfileError(path, value, what)
        # NaN fails both comparisons and is rejected here too.
        if not (self.lo <= value <= self.hi):  # type: ignore[operator]
            raise ProfileError(path, value, what)
        return value  # type: ignore[return-value]


class Bool:
    def __call__(self, value: object, path: tuple) -> bool:
        if not isinstance(value, bool):
            raise ProfileError(path, value, "true or false")
        return value


class OneOf:
    """One of a set of strings: a tuple, or the keys of a dict (a registry of kinds)."""

    def __init__(self, choices: tuple | dict) -> None:
        self.choices = choices

    def __call__(self, value: object, path: tuple) -> str:
        if not isinstance(value, str) or value not in self.choices:
            raise ProfileError(path, value, "one of " + ", ".join(sorted(self.choices)))
        return value


class ListOf:
    """A list of min_len..max_len items, each checked by item; optionally unique."""

    def __init__(self, item: object, min_len: int, max_len: int, unique: bool = False) -> None:
        self.item = item
        self.min_len = min_len
        self.max_len = max_len
        self.unique = unique

    def __call__(self, value: object, path: tuple) -> list:
        what = "a list of " + str(self.min_len) + " to " + str(self.max_len) + " items"
        if not isinstance(value, list) or not (self.min_len <= len(value) <= self.max_len):
            raise ProfileError(path, value, what)
        out = [self.item(v, path + (i,)) for i, v in enumerate(value)]  # type: ignore[operator]
        if self.unique:
            seen = set()
            for i, v in enumerate(out):
                if v in seen:
                    raise ProfileError(path + (i,), v, "a value not already in the list")
                seen.add(v)
        return out


class Range:
    """A [low, high] pair of numbers with low < high."""

    def __call__(self, value: object, path: tuple) -> list:
        what = "a pair [low, high] of numbers with low < high"
        if not isinstance(value, list) or len(value) != 2:
            raise ProfileError(path, value, what)
        lo = Num(-1e9, 1e9)(value[0], path + (0,))
        hi = Num(-1e9, 1e9)(value[1], path + (1,))
        if not lo < hi:
            raise ProfileError(path, value, what)
        return [lo, hi]


class Map:
    """A mapping with known keys: required ones, optional ones with defaults.

    Unknown keys are errors: a typo in a profile must not be silently ignored.
    """

    def __init__(self, required: dict, optional: dict | None = None) -> None:
        self.required = required
        # optional: key -> (validator, default)
        self.optional = optional or {}

    def __call__(self, value: object, path: tuple) -> dict:
        if not isinstance(value, dict):
            raise ProfileError(path, value, "a mapping with keys " + self.key_list())
        for key in value:
            if key not in self.required and key not in self.optional:
                raise ProfileError(path + (key,), key, "one of the known keys " + self.key_list())
        out = {}
        for key in self.required:
            if key not in value:
                raise ProfileError(path + (key,), None, "the required key " + repr(key) + " here")
            out[key] = self.required[key](value[key], path + (key,))
        for key in self.optional:
            check, default = self.optional[key]
            given = value.get(key)
            # An explicit null is the default where the default is "none" (compiled profiles).
            out[key] = (
                default
                if given is None and default is None
                else (check(given, path + (key,)) if key in value else default)
            )
        return out

    def key_list(self) -> str:
        keys = sorted(list(self.required) + list(self.optional))
        return ", ".join(keys)


class NumOrId:
    """A setting: a number, or an identifier (e.g. a phase or detector name)."""

    def __call__(self, value: object, path: tuple) -> object:
        if isinstance(value, str):
            return Str(32, ident=True)(value, path)
        return Num(-1e9, 1e9)(value, path)


class AnyMap:
    """A mapping of identifier keys to values checked by item (e.g. detector settings)."""

    def __init__(self, item: object, max_len: int) -> None:
        self.item = item
        self.max_len = max_len

    def __call__(self, value: object, path: tuple) -> dict:
        if not isinstance(value, dict) or len(value) > self.max_len:
            raise ProfileError(path, value, "a mapping of at most " + str(self.max_len) + " settings")
        out = {}
        for key in value:
            Str(32, ident=True)(key, path + (key,))
            out[key] = self.item(value[key], path + (key,))  # type: ignore[operator]
        return out


class MeanSd:
    """A pair [mean, sd]: a mean from lo to hi and a spread (standard deviation) not below
    zero, as a simulated reading's centre and noise."""

    def __init__(self, lo: float, hi: float, unit: str = "") -> None:
        self.lo = lo
        self.hi = hi
        self.unit = unit

    def __call__(self, value: object, path: tuple) -> list:
        what = "a pair [mean, sd] of numbers, the sd (spread) not negative"
        if not isinstance(value, list) or len(value) != 2:
            raise ProfileError(path, value, what)
        mean = Num(self.lo, self.hi, self.unit)(value[0], path + (0,))
        sd = Num(0, self.hi - self.lo, self.unit)(value[1], path + (1,))
        return [mean, sd]
