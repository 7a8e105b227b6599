"""Bounds on JSON text checked before a JSON parser sees it: nesting depth and number length.

json.loads recurses once per nesting level (CPython raises RecursionError, MicroPython
uses its small C stack) and reads any run of digits as one integer (CPython refuses more
than 4300 digits with ValueError). One pass over the bytes finds both without parsing.
"""

_QUOTE = 0x22  # "
_BACKSLASH = 0x5C
_OPEN = (0x5B, 0x7B)  # [ {
_CLOSE = (0x5D, 0x7D)  # ] }
# Bytes a number is written with besides the digits: + - . e E (CPython's json also reads
# NaN and Infinity, which have no digits to pile up).
_SIGNS = (0x2B, 0x2D, 0x2E, 0x65, 0x45)

DEPTH = "depth"
NUMBER = "number"


def first_excess(data: bytes, max_depth: int, max_number_chars: int) -> tuple | None:
    """None when data stays within the bounds; else (what, offset, amount).

    what is DEPTH (amount: the nesting level reached, max_depth + 1) or NUMBER (amount:
    the characters of the number, counted up to max_number_chars + 1); offset is the
    byte where the bound was passed. Text inside strings is skipped. The bytes need not
    be valid JSON: a parser refuses what this lets through.
    """
    depth = 0
    number = 0
    in_string = False
    escaped = False
    for offset in range(len(data)):
        b = data[offset]
        if in_string:
            if escaped:
                escaped = False
            elif b == _BACKSLASH:
                escaped = True
            elif b == _QUOTE:
                in_string = False
            continue
        if 0x30 <= b <= 0x39 or b in _SIGNS:
            number += 1
            if number > max_number_chars:
                return (NUMBER, offset, number)
            continue
        number = 0
        if b == _QUOTE:
            in_string = True
        elif b in _OPEN:
            depth += 1
            if depth > max_depth:
                return (DEPTH, offset, depth)
        elif b in _CLOSE and depth > 0:
            depth -= 1
    return None
