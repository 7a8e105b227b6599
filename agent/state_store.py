"""Learned state on the host's disk: written atomically, checked on reading, never trusted blindly.

The file's format is agent/core/state_file.py's (a board writes the same). Writes go through
agent/files.py (a 0600 temporary file, flushed and synced, then renamed over the old one),
so a power cut or a full disk leaves the old or the new state, never half of one. A file
that fails its check is reported and left for inspection; the caller starts with fresh models.
"""

from agent import files
from agent.core.state_file import FORMAT, MAX_BYTES, decode, encode

__all__ = ["FORMAT", "MAX_BYTES", "decode", "encode", "load", "save"]


def save(path: str, data: dict) -> None:
    """Replace the state file; OSError (the old file intact) when the disk refuses."""
    files.write_atomic(path, encode(data))


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
