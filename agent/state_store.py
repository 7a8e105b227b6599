"""Learned state on flash: written atomically, checked on reading, never trusted blindly.

A state file is JSON with a SHA-256 of its payload. Writes go to a temporary file,
are flushed and synced, then replace the old file, so a power cut leaves the old or
the new state, never half of one. A file that fails its check is reported and left
for inspection; the caller starts with fresh models.
"""

import hashlib
import json
import os

FORMAT = 1
MAX_BYTES = 256 * 1024


def _digest(payload: str) -> str:
    return hashlib.sha256(payload.encode()).hexdigest()


def save(path: str, data: dict) -> None:
    payload = json.dumps(data, sort_keys=True, separators=(",", ":"))
    if len(payload) > MAX_BYTES:
        raise ValueError("state of %d bytes is larger than %d" % (len(payload), MAX_BYTES))
    doc = json.dumps({"format": FORMAT, "sha256": _digest(payload), "data": payload})
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(doc)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(path: str) -> tuple:
    """(data, problem): (dict, None) when good; (None, None) when there is no file yet;
    (None, "why") when the file cannot be trusted."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_BYTES * 2 + 1)
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as e:
        return None, "cannot read %s (%s)" % (path, e)
    try:
        doc = json.loads(text)
        payload = doc["data"]
        if doc.get("format") != FORMAT or not isinstance(payload, str):
            return None, "%s has an unknown format" % path
        if _digest(payload) != doc.get("sha256"):
            return None, "%s is corrupted (checksum mismatch)" % path
        data = json.loads(payload)
    except (ValueError, KeyError, TypeError) as e:
        return None, "%s is corrupted (%s)" % (path, e)
    if not isinstance(data, dict):
        return None, "%s does not hold a state mapping" % path
    return data, None
