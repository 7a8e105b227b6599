"""The setup code on the device's label: how it is made, written, stored and checked.

Provisioning makes one code per device and stores only a salted PBKDF2 hash of it on
the device; the local page checks what the user types against that hash.
"""

import hashlib
import hmac
import json
import os
import secrets

from agent import files

# No 0/O, 1/I/L: a code read off a label must not be ambiguous.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LENGTH = 10  # 31**10: about 49.5 bits, and the page rate-limits wrong codes
GROUP = 5
ALGORITHM = "pbkdf2-sha256"
# ~15 ms per hash here: slow for an attacker with a flash dump, fast enough for a batch.
DEFAULT_ITERATIONS = 50_000
MIN_ITERATIONS = 10_000
SALT_BYTES = 16
FILE_NAME = "setup_code.json"


class SetupCodeError(ValueError):
    """A setup-code record that is not one this module wrote."""


def new_code() -> str:
    """A fresh random code, grouped for reading: e.g. 'K7M2P-9QXR4'."""
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
    digest = hashlib.pbkdf2_hmac("sha256", normalize(code).encode(), salt, iterations)
    return {"alg": ALGORITHM, "iterations": iterations, "salt": salt.hex(), "hash": digest.hex()}


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
            ok = isinstance(value, str) and len(bytes.fromhex(value)) == size
        except ValueError:
            ok = False
        if not ok:
            raise SetupCodeError("setup-code record: %s %r, expected %d bytes as hex" % (key, value, size))
    return record


def verify(typed: str, record: dict) -> bool:
    """True if the typed code matches the record; compared in constant time."""
    check_record(record)
    code = normalize(typed)
    if len(code) != LENGTH or any(c not in ALPHABET for c in code):
        return False  # still no hint which characters were wrong
    digest = hashlib.pbkdf2_hmac("sha256", code.encode(), bytes.fromhex(record["salt"]), record["iterations"])
    return hmac.compare_digest(digest.hex(), record["hash"])


def write_record(directory: str, record: dict) -> str:
    """Write setup_code.json atomically and 0600 (agent/files.py); returns its path."""
    path = os.path.join(directory, FILE_NAME)
    files.write_atomic(path, json.dumps(check_record(record), sort_keys=True).encode())
    return path


def read_record(directory: str) -> dict:
    """The stored record; SetupCodeError if it is missing or damaged."""
    path = os.path.join(directory, FILE_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except OSError as e:
        raise SetupCodeError("%s: cannot read the setup-code record (%s)" % (path, e.strerror)) from e
    except ValueError as e:
        raise SetupCodeError("%s: not JSON (%s)" % (path, e)) from e
    return check_record(record)
