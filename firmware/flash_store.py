"""Outbox segments as files on the board's flash: outbox-<n>.log in one directory.

The store agent/core/outbox.py writes its journal through (the interface of MemoryStore),
for MicroPython's os and files: appends go to the open segment file and reach flash at
sync() (a flush: MicroPython has no fsync; its filesystems write through on flush).
Nothing of a segment stays in the heap, so the outbox's memory does not grow with its
log. The same file runs on CPython, for the runtime's rate comparison.
"""

import errno
import os

from agent.core.outbox import SEGMENT_READ_BYTES

PREFIX = "outbox-"
SUFFIX = ".log"


def ensure_dir(directory: str) -> None:
    """Make the directory unless it is there (MicroPython's os has no makedirs(exist_ok))."""
    try:
        os.mkdir(directory)
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise


def read_file(path: str, limit: int) -> "bytes | None":
    """At most limit bytes of a file, and no more than it holds: MicroPython's read(n) takes
    a block of n bytes first, which a board's fragmented heap may not have. None when there
    is no such file (MicroPython raises OSError(ENOENT), not FileNotFoundError)."""
    try:
        size = os.stat(path)[6]
        with open(path, "rb") as f:
            data: bytes = f.read(min(size, limit))
            return data
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise
        return None


class FlashStore:
    def __init__(self, directory: str) -> None:
        self.dir = directory
        ensure_dir(directory)
        self._open: dict = {}  # segment -> file appended to since the last sync

    def _path(self, seg: int) -> str:
        return "%s/%s%06d%s" % (self.dir, PREFIX, seg, SUFFIX)

    def segments(self) -> list:
        out = []
        for name in os.listdir(self.dir):
            number = name[len(PREFIX) : -len(SUFFIX)]
            # Only names this store writes: "outbox-1.log" or "outbox- 7.log" is not a segment.
            if name.startswith(PREFIX) and name.endswith(SUFFIX) and len(number) == 6 and number.isdigit():
                out.append(int(number))
        return sorted(out)

    def read(self, seg: int) -> bytes:
        """The segment's bytes, at most one more than a segment can hold (the outbox
        reports a longer file as damaged instead of reading all of it; read_file asks for no
        more than a segment of a few KB holds, not 69 KB). No such segment: an empty one."""
        self._close(seg)
        return read_file(self._path(seg), SEGMENT_READ_BYTES + 1) or b""

    def append(self, seg: int, data: bytes) -> None:
        f = self._open.get(seg)
        if f is None:
            f = open(self._path(seg), "ab")
            self._open[seg] = f
        f.write(data)

    def truncate(self, seg: int, length: int) -> None:
        """Cut a segment back to length bytes (after damage, at recovery): MicroPython's
        files cannot truncate, so the kept part is written to a new file that replaces it."""
        self._close(seg)
        path = self._path(seg)
        with open(path, "rb") as f:
            kept = f.read(length)
        with open(path + ".tmp", "wb") as f:
            f.write(kept)
        os.rename(path + ".tmp", path)

    def remove(self, seg: int) -> None:
        self._close(seg)
        try:
            os.remove(self._path(seg))
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise

    def sync(self) -> None:
        """Make every append durable: flush the open segment files (kept open: reopening
        a file for each append costs more flash work than a flush)."""
        for f in self._open.values():
            f.flush()

    def close(self) -> None:
        """Close the open segment files (their appends flushed): the end of a run."""
        for seg in list(self._open):
            self._close(seg)

    def _close(self, seg: int) -> None:
        f = self._open.pop(seg, None)
        if f is not None:
            f.close()
