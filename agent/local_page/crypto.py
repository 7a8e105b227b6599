"""The page's cryptography on both runtimes: HMAC-SHA256, PBKDF2-HMAC-SHA256, constant-time
comparison and random tokens, over hashlib.sha256 and os.urandom only.

MicroPython has neither hmac nor hashlib.pbkdf2_hmac nor secrets; these are the standard
constructions (RFC 2104, RFC 8018) written out, checked equal to CPython's by tests.
"""

import binascii
import hashlib
import os

from agent.core.compat import IS_MICROPYTHON
from agent.core.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

_BLOCK = 64  # SHA-256's block size: HMAC pads its key to this
_DIGEST = 32


def _pads(key: bytes) -> tuple:
    """The inner and outer keys of HMAC-SHA256 for this key."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key + bytes(_BLOCK - len(key))
    inner = bytes(k ^ 0x36 for k in key)
    outer = bytes(k ^ 0x5C for k in key)
    return inner, outer


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 of message under key (32 bytes), as hmac.new(key, message, "sha256")."""
    inner, outer = _pads(key)
    return hashlib.sha256(outer + hashlib.sha256(inner + message).digest()).digest()


def pbkdf2_sha256_steps(password: bytes, salt: bytes, iterations: int, chunk: int) -> "Iterator[bytes | None]":
    """PBKDF2-HMAC-SHA256 with a 32-byte result, in pieces: a generator that yields None after
    every `chunk` iterations and finally the key. A single-threaded board checks a code
    between its other tasks this way instead of stopping them for the whole hash."""
    if iterations < 1 or chunk < 1:
        raise ConfigError("pbkdf2: iterations %d and chunk %d, expected both >= 1" % (iterations, chunk))
    inner, outer = _pads(password)
    sha256 = hashlib.sha256  # no copy() on MicroPython's hash objects: both pads are hashed every round
    u = sha256(outer + sha256(inner + salt + b"\x00\x00\x00\x01").digest()).digest()
    # XOR of the rounds as one integer: one operation a round instead of 32 byte operations.
    acc = int.from_bytes(u, "big")
    done = 1
    while done < iterations:
        for _ in range(min(chunk, iterations - done)):
            u = sha256(outer + sha256(inner + u).digest()).digest()
            acc ^= int.from_bytes(u, "big")
        done += min(chunk, iterations - done)
        yield None
    yield acc.to_bytes(_DIGEST, "big")


def pbkdf2_sha256(password: bytes, salt: bytes, iterations: int) -> bytes:
    """PBKDF2-HMAC-SHA256 with a 32-byte result, as hashlib.pbkdf2_hmac("sha256", ...): CPython's
    own C code where it has it (the factory hashes a code per device), the steps above on
    MicroPython."""
    if not IS_MICROPYTHON:
        return hashlib.pbkdf2_hmac("sha256", password, salt, iterations)
    key = None
    for key in pbkdf2_sha256_steps(password, salt, iterations, iterations):  # noqa: B007 -- the last one is the key
        pass
    assert isinstance(key, bytes)
    return key


def same_bytes(expected: bytes, given: bytes) -> bool:
    """expected == given, in a time that depends only on their lengths (hmac.compare_digest):
    every byte is looked at, so how much of a token was right does not show."""
    diff = len(expected) ^ len(given)
    if diff:
        given = expected  # still compare as long, so a wrong length costs the same time
    for i in range(len(expected)):
        diff |= expected[i] ^ given[i]
    return diff == 0


def token_bytes(n: int) -> bytes:
    """n random bytes from the system's source (secrets.token_bytes)."""
    return os.urandom(n)


def token_urlsafe(n: int) -> str:
    """n random bytes as URL-safe base64 without padding (secrets.token_urlsafe)."""
    text = binascii.b2a_base64(os.urandom(n)).decode().strip()
    return text.replace("+", "-").replace("/", "_").rstrip("=")
