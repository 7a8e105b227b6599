"""The learned-state file's bytes: JSON with a SHA-256 of its payload, checked on reading.

Bytes in, data out, on both runtimes: agent/device_data.py writes these bytes on the host,
firmware/board_data.py on a board. A file that fails its check is said in plain words and
never taken for state. The digest is written as hex text (binascii: MicroPython's hashlib
has no hexdigest), so both runtimes write and read the same format.
"""

import binascii
import hashlib
import json

from agent.core.compat import IS_MICROPYTHON, const
from agent.core.errors import StorageError

FORMAT = 1
MAX_BYTES = 256 * 1024  # of the payload; a file may take twice that (JSON escapes in the payload)
# The largest payload a board stores (firmware/board_data.py). The state of a built-in profile
# with the ESP32 sizes (limits.BOARD_SIZES), every category on, after a simulated week: 4.4 to
# 6.5 KB, most of it the 16 recent events. Declared here, not in limits.py: an agent that
# stores nothing does not import this module (its heap at the bound of tests/test_memory.py).
BOARD_MAX_BYTES = const(16 * 1024)


def _compact(data: dict) -> str:
    """JSON without spaces: keys sorted on CPython (a stable file); in their order on
    MicroPython, whose json has no sort_keys (the digest is over what is written)."""
    if IS_MICROPYTHON:
        return json.dumps(data, separators=(",", ":"))
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _digest(payload: str) -> str:
    return binascii.hexlify(hashlib.sha256(payload.encode()).digest()).decode()


def encode(data: dict, max_bytes: int = MAX_BYTES) -> bytes:
    """The file's bytes for data; StorageError when its payload is larger than max_bytes."""
    payload = _compact(data)
    if len(payload) > max_bytes:
        raise StorageError("state of %d bytes is larger than %d" % (len(payload), max_bytes))
    return json.dumps({"format": FORMAT, "sha256": _digest(payload), "data": payload}).encode()


def decode(raw: bytes, path: str = "state", max_bytes: int = MAX_BYTES) -> tuple:
    """(data, problem) for a file's bytes: (dict, None) when good, (None, "why") otherwise."""
    if len(raw) > max_bytes * 2:
        return None, "%s is larger than a state file can be" % path
    try:
        doc = json.loads(raw.decode("utf-8"))
        if not isinstance(doc, dict):
            return None, "%s has an unknown format" % path
        payload = doc.get("data")
        if doc.get("format") != FORMAT or not isinstance(payload, str):
            return None, "%s has an unknown format" % path
        if _digest(payload) != doc.get("sha256"):
            return None, "%s is corrupted (checksum mismatch)" % path
        data = json.loads(payload)
    except (ValueError, RuntimeError) as e:  # UnicodeError is a ValueError; RecursionError a RuntimeError
        return None, "%s is corrupted (%s)" % (path, e)
    if not isinstance(data, dict):
        return None, "%s does not hold a state mapping" % path
    return data, None
