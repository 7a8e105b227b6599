"""JSON from outside (a peer's command, a compiled profile), checked within its bounds before any of it is parsed.

A small scanner (bytes in, no recursion, a fixed stack of brackets) checks size, nesting
depth, string length, digits of numbers, UTF-8 and the JSON grammar; only then does
json.loads run, on text known to be small, shallow and valid. MicroPython's json accepts
more than JSON ([1 2], {1: 2}, "\\x"): the scanner makes both runtimes take the same inputs.
"""

import json

from agent.core import limits
from agent.core.compat import const
from agent.core.errors import InboundJsonError

# The bytes the scanner looks at.
_QUOTE = const(0x22)
_BACKSLASH = const(0x5C)
_LBRACE = const(0x7B)
_RBRACE = const(0x7D)
_LBRACKET = const(0x5B)
_RBRACKET = const(0x5D)
_COMMA = const(0x2C)
_COLON = const(0x3A)
_MINUS = const(0x2D)
_PLUS = const(0x2B)
_DOT = const(0x2E)
_ZERO = const(0x30)
_NINE = const(0x39)

# What the scanner expects next.
_VALUE = const(0)
_VALUE_OR_CLOSE = const(1)  # just after "["
_KEY = const(2)  # after "," in an object
_KEY_OR_CLOSE = const(3)  # just after "{"
_COLON_NEXT = const(4)
_COMMA_OR_CLOSE = const(5)
_DONE = const(6)  # the top-level value is complete: only white space may follow

_ESCAPES = b'"\\/bfnrt'


class JsonBounds:
    """The most a peer's JSON may hold: bytes in all, nested objects and arrays, digits
    of a number before its exponent, digits of the exponent, bytes of one string or key
    (as sent, escapes included)."""

    __slots__ = ("max_bytes", "max_depth", "max_digits", "max_exponent_digits", "max_string")

    def __init__(self, max_bytes: int, max_depth: int, max_digits: int, max_exponent_digits: int,
                 max_string: int) -> None:  # fmt: skip
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        self.max_digits = max_digits
        self.max_exponent_digits = max_exponent_digits
        self.max_string = max_string


COMMAND_BOUNDS = JsonBounds(
    limits.MAX_COMMAND_BYTES,
    limits.MAX_COMMAND_DEPTH,
    limits.MAX_COMMAND_DIGITS,
    limits.MAX_COMMAND_EXPONENT_DIGITS,
    limits.MAX_COMMAND_STRING,
)


def loads(data: bytes, bounds: JsonBounds) -> object:
    """The value of a peer's JSON; InboundJsonError, before any parsing, when it is not
    JSON within bounds. Nothing else is raised."""
    check(data, bounds)
    try:
        return json.loads(bytes(data).decode())
    except ValueError as e:  # UnicodeError is a ValueError on both runtimes
        raise InboundJsonError(-1, "text the JSON reader refused (%s)" % e, "JSON") from e


def _show(c: int) -> str:
    if 0x20 < c < 0x7F:
        return "'" + chr(c) + "'"
    return "byte 0x%02x" % c


def _error(at: int, got: str, expected: str) -> InboundJsonError:
    return InboundJsonError(at, got, expected)


def check(data: bytes, bounds: JsonBounds) -> None:
    """InboundJsonError unless data is one JSON value within bounds (UTF-8, no NaN or
    Infinity, no escaped surrogates). Work and memory are bounded by max_bytes and
    max_depth whatever data holds."""
    n = len(data)
    if n > bounds.max_bytes:
        raise InboundJsonError(-1, "%d bytes" % n, "at most %d" % bounds.max_bytes)
    open_brackets = bytearray(bounds.max_depth)
    depth = 0
    state = _VALUE
    i = 0
    while i < n:
        c = data[i]
        if c == 0x20 or c == 0x0A or c == 0x0D or c == 0x09:
            i += 1
            continue
        if state == _COMMA_OR_CLOSE:
            top = open_brackets[depth - 1]
            if c == _COMMA:
                state = _KEY if top == _LBRACE else _VALUE
            elif c == top + 2:  # in ASCII "]" is "[" + 2 and "}" is "{" + 2
                depth -= 1
                state = _COMMA_OR_CLOSE if depth else _DONE
            else:
                raise _error(i, _show(c), "',' or '%s'" % chr(top + 2))
            i += 1
        elif state == _COLON_NEXT:
            if c != _COLON:
                raise _error(i, _show(c), "':' after a key")
            state = _VALUE
            i += 1
        elif state == _DONE:
            raise _error(i, _show(c), "nothing after the value")
        elif state == _KEY or state == _KEY_OR_CLOSE:
            if c == _RBRACE and state == _KEY_OR_CLOSE:
                depth -= 1
                state = _COMMA_OR_CLOSE if depth else _DONE
                i += 1
            elif c == _QUOTE:
                i = _string(data, i, bounds.max_string)
                state = _COLON_NEXT
            else:
                raise _error(i, _show(c), "a key in double quotes")
        elif c == _RBRACKET and state == _VALUE_OR_CLOSE:
            depth -= 1
            state = _COMMA_OR_CLOSE if depth else _DONE
            i += 1
        elif c == _LBRACE or c == _LBRACKET:
            if depth == bounds.max_depth:
                raise _error(i, "more than %d nested objects or arrays" % depth, "at most %d" % bounds.max_depth)
            open_brackets[depth] = c
            depth += 1
            state = _KEY_OR_CLOSE if c == _LBRACE else _VALUE_OR_CLOSE
            i += 1
        else:
            if c == _QUOTE:
                i = _string(data, i, bounds.max_string)
            elif c == _MINUS or _ZERO <= c <= _NINE:
                i = _number(data, i, bounds)
            elif c == 0x74:
                i = _literal(data, i, b"true")
            elif c == 0x66:
                i = _literal(data, i, b"false")
            elif c == 0x6E:
                i = _literal(data, i, b"null")
            else:
                raise _error(i, _show(c), "a value (object, array, string, number, true, false or null)")
            state = _COMMA_OR_CLOSE if depth else _DONE
    if state != _DONE:
        raise _error(n, "the end", "more (the JSON ends before its value is complete)")


def _literal(data: bytes, i: int, word: bytes) -> int:
    if bytes(data[i : i + len(word)]) != word:
        raise _error(i, _show(data[i]), "true, false or null")
    return i + len(word)


def _string(data: bytes, start: int, max_len: int) -> int:
    """Index after the string that starts at data[start] (a quote)."""
    n = len(data)
    i = start + 1
    while i < n:
        if i - start - 1 > max_len:
            raise _error(start, "a string of more than %d bytes" % max_len, "at most %d" % max_len)
        c = data[i]
        if c == _QUOTE:
            return i + 1
        if c == _BACKSLASH:
            i = _escape(data, i)
        elif c < 0x20:
            raise _error(i, _show(c) + " (a control character) in a string", "it escaped")
        elif c < 0x80:
            i += 1
        else:
            i = _utf8(data, i)
    if i - start - 1 > max_len:
        raise _error(start, "a string of more than %d bytes" % max_len, "at most %d" % max_len)
    raise _error(start, "a string without its closing quote", "a closing quote")


def _escape(data: bytes, i: int) -> int:
    n = len(data)
    if i + 1 >= n:
        raise _error(i, "a backslash at the end", "an escape")
    e = data[i + 1]
    if e != 0x75:  # not \u
        for allowed in _ESCAPES:
            if e == allowed:
                return i + 2
        raise _error(i, "the escape \\" + chr(e) if e < 0x80 else "a backslash before " + _show(e),
                     "one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX")  # fmt: skip
    if i + 6 > n:
        raise _error(i, "a cut-off \\u escape", "four hex digits")
    value = 0
    for k in range(i + 2, i + 6):
        h = data[k]
        if _ZERO <= h <= _NINE:
            value = value * 16 + h - _ZERO
        elif 0x61 <= h <= 0x66:
            value = value * 16 + h - 0x57
        elif 0x41 <= h <= 0x46:
            value = value * 16 + h - 0x37
        else:
            raise _error(k, _show(h), "a hex digit in a \\u escape")
    if 0xD800 <= value <= 0xDFFF:
        # Runtimes disagree on lone and paired surrogates; no command needs them.
        raise _error(i, "the escaped surrogate \\u%04x" % value, "a character outside U+D800..U+DFFF")
    return i + 6


def _utf8(data: bytes, i: int) -> int:
    """Index after the well-formed UTF-8 sequence at data[i] (Unicode's table 3-7)."""
    c = data[i]
    lo = 0x80
    hi = 0xBF
    if 0xC2 <= c <= 0xDF:
        need = 1
    elif 0xE0 <= c <= 0xEF:
        need = 2
        if c == 0xE0:
            lo = 0xA0  # no overlong forms
        elif c == 0xED:
            hi = 0x9F  # no surrogates
    elif 0xF0 <= c <= 0xF4:
        need = 3
        if c == 0xF0:
            lo = 0x90
        elif c == 0xF4:
            hi = 0x8F  # nothing above U+10FFFF
    else:
        raise _error(i, _show(c), "UTF-8")
    if i + need >= len(data):
        raise _error(i, "a cut-off UTF-8 sequence", "UTF-8")
    for k in range(i + 1, i + need + 1):
        b = data[k]
        if not lo <= b <= hi:
            raise _error(k, _show(b), "UTF-8")
        lo = 0x80
        hi = 0xBF
    return i + need + 1


def _number(data: bytes, i: int, bounds: JsonBounds) -> int:
    """Index after the number at data[i]: JSON's grammar, within the digit bounds."""
    n = len(data)
    j = i + 1 if data[i] == _MINUS else i
    if j >= n or not _ZERO <= data[j] <= _NINE:
        raise _error(j, _show(data[j]) if j < n else "the end", "a digit")
    first = j
    j += 1
    if data[first] != _ZERO:  # no leading zeros
        while j < n and _ZERO <= data[j] <= _NINE:
            j += 1
    digits = j - first
    if j < n and data[j] == _DOT:
        j += 1
        fraction = j
        while j < n and _ZERO <= data[j] <= _NINE:
            j += 1
        if j == fraction:
            raise _error(j, _show(data[j]) if j < n else "the end", "a digit after the decimal point")
        digits += j - fraction
    if digits > bounds.max_digits:
        raise _error(i, "a number of %d digits" % digits, "at most %d" % bounds.max_digits)
    if j < n and (data[j] == 0x65 or data[j] == 0x45):
        j += 1
        if j < n and (data[j] == _PLUS or data[j] == _MINUS):
            j += 1
        exponent = j
        while j < n and _ZERO <= data[j] <= _NINE:
            j += 1
        if j == exponent:
            raise _error(j, _show(data[j]) if j < n else "the end", "a digit of the exponent")
        if j - exponent > bounds.max_exponent_digits:
            raise _error(i, "an exponent of %d digits" % (j - exponent), "at most %d" % bounds.max_exponent_digits)
    return j
