"""The device's own data on the board's flash: consent journal, learned state and sent log,
pseudonym key, in the data directory beside the outbox's segments.

agent/core/stored_data.py's rules and file formats (the host's too), with MicroPython's os
and files: no os.path; OSError(ENOENT) for a missing file; every file written whole to
<name>.tmp, flushed and renamed over the old one (MicroPython has no fsync: its filesystems
write through on flush), the journal's appends too; reads bounded by the file's size and the
format's limit. The same file runs on CPython, for the tests.
"""

import errno
import os

from agent.core.state_file import BOARD_MAX_BYTES
from agent.core.stored_data import JOURNAL_MAX_BYTES, StoredData
from firmware.flash_store import ensure_dir, read_file

_TMP = ".tmp"


def _missing(e: OSError) -> bool:
    return e.errno == errno.ENOENT


class BoardData(StoredData):
    state_bytes = BOARD_MAX_BYTES

    def __init__(self, directory: str) -> None:
        super().__init__()
        self.root = directory
        ensure_dir(directory)

    def _where(self, name: str) -> str:
        return self.root + "/" + name

    def _read(self, name: str, limit: int) -> "bytes | None":
        return read_file(self._where(name), limit)

    def _replace(self, name: str, data: bytes) -> None:
        path = self._where(name)
        try:
            with open(path + _TMP, "wb") as f:
                f.write(data)
                f.flush()
            os.rename(path + _TMP, path)
        except OSError:
            self._remove(name + _TMP)  # a full flash: the old file stays as it was
            raise

    def _append(self, name: str, data: bytes) -> None:
        """The file with data after it, written whole and renamed over the old one: a write the
        flash refuses leaves the old file, never a torn record (MicroPython's files cannot be
        cut back). Only the consent journal is appended to: a few KB, changed when the user
        changes consent."""
        self._replace(name, (self._read(name, JOURNAL_MAX_BYTES) or b"") + data)

    def _remove(self, name: str) -> None:
        try:
            os.remove(self._where(name))
        except OSError as e:
            if not _missing(e):
                raise

    def _exists(self, name: str) -> bool:
        try:
            os.stat(self._where(name))
        except OSError as e:
            if _missing(e):
                return False
            raise
        return True

    def _random(self, n: int) -> bytes:
        return os.urandom(n)
