"""Deterministic, compact JSON encoding of upstream messages.

Keys are sorted, floats written with a fixed number of significant digits and strings
ASCII-escaped, so the same message is the same bytes on CPython and on MicroPython
(whose dicts are unordered, whose float repr and json.dumps differ).
"""

import math

from agent.core.errors import EncodingError, PayloadTooLargeError

FLOAT_DIGITS = 4  # significant digits kept for measured values
FLOAT_MAX = 1e300  # larger magnitudes are refused: rounding them could overflow to inf


def round_sig(x: float, digits: int = FLOAT_DIGITS) -> float:
    """x rounded to digits significant digits; 0, inf and nan pass through."""
    if x == 0 or not math.isfinite(x) or abs(x) >= FLOAT_MAX:
        return x
    exp = int(math.floor(math.log10(abs(x))))  # noqa: RUF046 (a float on some ports)
    return round(x, digits - 1 - exp)


_FLOAT_FORMAT = "%." + str(FLOAT_DIGITS) + "g"


_ESCAPE_BYTES = {0x22: '\\"', 0x5C: "\\\\", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}


_CHUNK = 256  # characters walked at a time: no byte copy of a long text in one piece


def _string(text: str, out: list) -> None:
    """A JSON string with everything outside printable ASCII as \\uXXXX escapes. Runs of
    plain characters go out as one slice: a list entry per character would grow the
    list (and the heap blocks it needs) with every message, in the hot path.

    The text is walked as UTF-8 bytes, not as characters: on MicroPython each character
    an iteration yields is interned, so every character not seen before would add to
    the interned strings for good, and a pool of them grown late in a long run needs a
    block a fragmented heap may not have (a 2-day run failed so in 460 KB). A long text
    is walked _CHUNK characters at a time, so its bytes never need one large block."""
    out.append('"')
    if len(text) <= _CHUNK:
        _plain_or_escaped(text, out)
    else:
        for j in range(0, len(text), _CHUNK):
            _plain_or_escaped(text[j : j + _CHUNK], out)
    out.append('"')


def _plain_or_escaped(text: str, out: list) -> None:
    try:
        data = text.encode()
    except UnicodeError:  # a lone surrogate (CPython only): escaped as its code, as JSON does
        data = text.encode("utf-8", "surrogatepass")
    n = len(data)
    start = 0
    i = 0
    while i < n:
        b = data[i]
        if 0x20 <= b < 0x7F and b != 0x22 and b != 0x5C:
            i += 1
            continue
        if start < i:
            out.append(data[start:i].decode())
        if b in _ESCAPE_BYTES:
            out.append(_ESCAPE_BYTES[b])
            i += 1
        elif b < 0x80:
            out.append("\\u%04x" % b)
            i += 1
        else:  # a UTF-8 sequence of 2 to 4 bytes: its code point
            size = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            code = b & (0x3F >> (size - 1))
            for k in range(1, size):
                code = (code << 6) | (data[i + k] & 0x3F)
            if code > 0xFFFF:
                code -= 0x10000
                out.append("\\u%04x\\u%04x" % (0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)))
            else:
                out.append("\\u%04x" % code)
            i += size
        start = i
    if start < n:
        out.append(data[start:].decode() if start else text)


def _encode(value: object, out: list) -> None:
    if value is None or isinstance(value, bool):
        out.append("null" if value is None else ("true" if value else "false"))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        if not math.isfinite(value) or abs(value) >= FLOAT_MAX:
            raise EncodingError("cannot encode " + repr(value) + "; expected a finite number below 1e300")
        # %g, not repr: repr(round(x, n)) differs between the runtimes. 3.0 -> "3".
        out.append(_FLOAT_FORMAT % value)
    elif isinstance(value, str):
        _string(value, out)
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value)):
            if not isinstance(key, str):
                raise EncodingError("cannot encode key " + repr(key) + "; expected a string")
            if i:
                out.append(",")
            _string(key, out)
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    else:
        raise EncodingError("cannot encode " + type(value).__name__ + "; expected JSON data")


def encode(value: object, max_bytes: int) -> bytes:
    """value as compact JSON bytes; EncodingError if longer than max_bytes."""
    out: list = []
    _encode(value, out)
    data = "".join(out).encode()
    if len(data) > max_bytes:
        raise PayloadTooLargeError("message of " + str(len(data)) + " bytes; expected at most " + str(max_bytes))
    return data
