"""The setup code on the device's label: how it is made, written, stored and checked.

Provisioning makes one code per device and stores only a salted PBKDF2 hash of it on
the device; the local page checks what the user types against that hash. Checking (and
reading a record) runs on CPython and MicroPython alike; making and writing codes is the
factory's (CPython) and imports what it needs where it needs it.
"""

import binascii
import json
import os

from agent.core.compat import IS_MICROPYTHON
from agent.core.errors import WichtelError
from agent.local_page import crypto

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

# No 0/O, 1/I/L: a code read off a label must not be ambiguous.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LENGTH = 10  # 31**10: about 49.5 bits, and the page rate-limits wrong codes
GROUP = 5
ALGORITHM = "pbkdf2-sha256"
# ~15 ms per hash here: slow for an attacker with a flash dump, fast enough for a batch.
# The record carries its own count; every board gets this one: on MicroPython the hash runs
# in Python around hashlib.sha256 (0.11-0.22 s for 50,000 rounds on the unix port, an
# estimated 2-11 s on an ESP32), in pieces between the agent's other tasks
# (docs/local-page.md, "The page on MicroPython"; docs/security.md).
DEFAULT_ITERATIONS = 50_000
MIN_ITERATIONS = 10_000
SALT_BYTES = 16
FILE_NAME = "setup_code.json"


class SetupCodeError(WichtelError):
    """A setup-code record that is not one this module wrote."""


def new_code() -> str:
    """A fresh random code, grouped for reading: e.g. 'K7M2P-9QXR4'."""
    import secrets  # the factory's (CPython) only

    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return format_code(raw)


def format_code(raw: str) -> str:
    return "-".join(raw[i : i + GROUP] for i in range(0, len(raw), GROUP))


def normalize(typed: str) -> str:
    """What the user typed, without spaces or dashes, in capitals."""
    return "".join(c for c in typed.upper() if c not in " -\t")


def hash_code(code: str, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None) -> dict:
    """The record stored on the device; it cannot give the code back."""
    if iterations < MIN_ITERATIONS:
        raise SetupCodeError("iterations %d: expected at least %d" % (iterations, MIN_ITERATIONS))
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = crypto.pbkdf2_sha256(normalize(code).encode(), salt, iterations)
    return {"alg": ALGORITHM, "iterations": iterations, "salt": _hex(salt), "hash": _hex(digest)}


def _hex(data: bytes) -> str:
    return binascii.hexlify(data).decode()


def check_record(record: object) -> dict:
    """The record, if it is well formed; SetupCodeError naming the problem otherwise."""
    if not isinstance(record, dict):
        raise SetupCodeError("setup-code record: expected a JSON object, got %s" % type(record).__name__)
    if record.get("alg") != ALGORITHM:
        raise SetupCodeError("setup-code record: alg %r, expected %r" % (record.get("alg"), ALGORITHM))
    iterations = record.get("iterations")
    if not isinstance(iterations, int) or iterations < MIN_ITERATIONS:
        raise SetupCodeError(
            "setup-code record: iterations %r, expected an integer >= %d" % (iterations, MIN_ITERATIONS)
        )
    for key, size in (("salt", SALT_BYTES), ("hash", 32)):
        value = record.get(key)
        try:
            ok = isinstance(value, str) and len(binascii.unhexlify(value)) == size
        except ValueError:  # binascii.Error is a ValueError
            ok = False
        if not ok:
            raise SetupCodeError("setup-code record: %s %r, expected %d bytes as hex" % (key, value, size))
    return record


def _well_formed(code: str) -> bool:
    return len(code) == LENGTH and all(c in ALPHABET for c in code)


def verify(typed: str, record: dict) -> bool:
    """True if the typed code matches the record; compared in constant time."""
    check_record(record)
    code = normalize(typed)
    if not _well_formed(code):
        return False  # still no hint which characters were wrong
    digest = crypto.pbkdf2_sha256(code.encode(), binascii.unhexlify(record["salt"]), record["iterations"])
    return crypto.same_bytes(_hex(digest).encode(), record["hash"].encode())


def verify_steps(typed: str, record: dict, chunk: int) -> "Iterator[bool | None]":
    """verify() in pieces, for a board without threads: a generator that yields None after
    every `chunk` PBKDF2 rounds and finally True or False."""
    check_record(record)
    code = normalize(typed)
    if not _well_formed(code):
        yield False
        return
    step = None
    for step in crypto.pbkdf2_sha256_steps(code.encode(), binascii.unhexlify(record["salt"]), record["iterations"],
                                           chunk):  # fmt: skip
        if step is None:
            yield None
    assert isinstance(step, bytes)
    yield crypto.same_bytes(_hex(step).encode(), record["hash"].encode())


def write_record(directory: str, record: dict) -> str:
    """Write setup_code.json atomically and 0600 (agent/files.py); returns its path."""
    from agent import files  # the factory's and the host's (CPython) only

    path = _path(directory)
    files.write_atomic(path, json.dumps(check_record(record), sort_keys=True).encode())
    return path


def _path(directory: str) -> str:
    # No os.path on MicroPython; both runtimes' file systems take "/".
    return directory.rstrip("/") + "/" + FILE_NAME


def read_record(directory: str) -> dict:
    """The stored record; SetupCodeError if it is missing or damaged."""
    path = _path(directory)
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except OSError as e:  # MicroPython's OSError carries the errno only
        why = "errno %s" % e.errno if IS_MICROPYTHON else os.strerror(e.errno or 0)
        raise SetupCodeError("%s: cannot read the setup-code record (%s)" % (path, why)) from e
    except ValueError as e:
        raise SetupCodeError("%s: not JSON (%s)" % (path, e)) from e
    return check_record(record)
