"""Learned state on flash: written atomically, checked on reading, never trusted blindly.

A state file is JSON with a SHA-256 of its payload. Writes go through agent/files.py (a
0600 temporary file, flushed and synced, then renamed over the old one), so a power cut
or a full disk leaves the old or the new state, never half of one. A file that fails its
check is reported and left for inspection; the caller starts with fresh models.
"""

import hashlib
import json

from agent import files
from agent.core.errors import StorageError

FORMAT = 1
MAX_BYTES = 256 * 1024


def _digest(payload: str) -> str:
    return hashlib.sha256(payload.encode()).hexdigest()


def encode(data: dict) -> bytes:
    """The file's bytes for data; StorageError when it is larger than MAX_BYTES."""
    payload = json.dumps(data, sort_keys=True, separators=(",", ":"))
    if len(payload) > MAX_BYTES:
        raise StorageError("state of %d bytes is larger than %d" % (len(payload), MAX_BYTES))
    return json.dumps({"format": FORMAT, "sha256": _digest(payload), "data": payload}).encode()


def save(path: str, data: dict) -> None:
    """Replace the state file; OSError (the old file intact) when the disk refuses."""
    files.write_atomic(path, encode(data))


def decode(raw: bytes, path: str = "state") -> tuple:
    """(data, problem) for a file's bytes: (dict, None) when good, (None, "why") otherwise."""
    if len(raw) > MAX_BYTES * 2:
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
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        return None, "%s is corrupted (%s)" % (path, e)
    if not isinstance(data, dict):
        return None, "%s does not hold a state mapping" % path
    return data, None


def load(path: str) -> tuple:
    """(data, problem): (dict, None) when good; (None, None) when there is no file yet;
    (None, "why") when the file cannot be trusted."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES * 2 + 1)
    except FileNotFoundError:
        return None, None
    except OSError as e:
        return None, "cannot read %s (%s)" % (path, e.strerror or e)
    return decode(raw, path)
