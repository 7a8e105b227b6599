"""Serial numbers as printed on the appliance: validated, unique, read from a file or
counted out. A serial never goes on the wire: the device's broker identity is a random
device id (provisioning/identities.py), and only the register maps one to the other.
"""

import re

from provisioning.errors import SerialError

MIN_LEN = 4
MAX_LEN = 24  # what a rating plate and the label's QR code hold comfortably
_SERIAL = re.compile(r"^[A-Z0-9]([A-Z0-9-]*[A-Z0-9])?\Z")
_SHOWN = 5  # problems named in one error message


def problem(serial: str) -> str:
    """Why serial cannot be a device's serial number ("" if it can)."""
    if not MIN_LEN <= len(serial) <= MAX_LEN:
        return "%d characters; expected %d to %d" % (len(serial), MIN_LEN, MAX_LEN)
    if not _SERIAL.match(serial):
        return "expected letters A-Z, digits and inner dashes only"
    if "--" in serial:
        return "expected no double dash"
    return ""


def normalize(serial: str) -> str:
    return serial.strip().upper()


def valid(serial: str) -> str:
    """The normalized serial, or SerialError: ' wm8-000123 ' -> 'WM8-000123'."""
    s = normalize(serial)
    why = problem(s)
    if why:
        raise SerialError("serial %r is not a valid serial number: %s." % (serial[:64], why))
    return s


def check(serials: list[tuple[str, str]]) -> list[str]:
    """serials as (where, text) pairs; returns them normalized, or raises SerialError naming
    every invalid or repeated one (up to a few) with where it was found."""
    seen: dict[str, str] = {}
    bad: list[str] = []
    dup: list[str] = []
    out = []
    for where, text in serials:
        s = normalize(text)
        why = problem(s)
        if why:
            bad.append("%s: %r (%s)" % (where, text[:64], why))
        elif s in seen:
            dup.append("%s: %s (first at %s)" % (where, s, seen[s]))
        else:
            seen[s] = where
            out.append(s)
    if bad:
        raise SerialError(
            "%d serial number%s not valid: %s%s. A serial is %d to %d characters of A-Z, 0-9 and inner "
            "dashes. Nothing was provisioned."
            % (
                len(bad),
                "s are" if len(bad) > 1 else " is",
                "; ".join(bad[:_SHOWN]),
                "; ..." if len(bad) > _SHOWN else "",
                MIN_LEN,
                MAX_LEN,
            )
        )
    if dup:
        raise SerialError(
            "%d serial number%s given twice: %s%s. Every device needs its own serial; nothing was provisioned."
            % (len(dup), "s" if len(dup) > 1 else "", "; ".join(dup[:_SHOWN]), "; ..." if len(dup) > _SHOWN else "")
        )
    return out


def read_file(path: str) -> list[str]:
    """One serial per line; blank lines and lines starting with # are skipped."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise SerialError("--serials %s: cannot read the file (%s)" % (path, e.strerror)) from e
    except UnicodeDecodeError as e:
        raise SerialError("--serials %s: not UTF-8 text (byte %d)" % (path, e.start)) from e
    pairs = [
        ("%s:%d" % (path, n), line)
        for n, line in enumerate(lines, 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not pairs:
        raise SerialError("--serials %s: no serial numbers in the file" % path)
    return check(pairs)


def counted(prefix: str, first: int, count: int) -> list[str]:
    """count serials PREFIX000001, PREFIX000002, ... from first."""
    if count < 1:
        raise SerialError("--count %d: expected at least 1 device" % count)
    if first < 0:
        raise SerialError("--first %d: expected a number >= 0" % first)
    return check([("--count #%d" % (i + 1), "%s%06d" % (prefix, first + i)) for i in range(count)])
