"""Outbox segments as files on the host: outbox-<n>.log in the device's data directory.

Appends are written at once and made durable by sync() (one fsync per batch: the agent
syncs after each round of samples and before it sends). A disk that is full or gone
raises OSError to the caller, which keeps the message in memory and reports it; the
file is cut back to what is known to be whole, so a record written after the disk has
room again does not follow a torn one. Segments are created 0600 (agent/files.py).
"""

import os
from typing import BinaryIO

from agent import files
from agent.core.outbox import SEGMENT_READ_BYTES

PREFIX = "outbox-"
SUFFIX = ".log"


class FileStore:
    def __init__(self, directory: str) -> None:
        self.dir = directory
        files.private_dir(directory)
        self._open: dict[int, BinaryIO] = {}  # segments appended to since the last sync
        self._size: dict[int, int] = {}  # bytes in each open segment
        self._synced: dict[int, int] = {}  # bytes of each open segment known to be durable

    def _path(self, seg: int) -> str:
        return os.path.join(self.dir, "%s%06d%s" % (PREFIX, seg, SUFFIX))

    def segments(self) -> list:
        out = []
        for name in os.listdir(self.dir):
            number = name[len(PREFIX) : -len(SUFFIX)]
            # Only names this store writes: "outbox-1.log" or "outbox- 7.log" is not a segment.
            if name.startswith(PREFIX) and name.endswith(SUFFIX) and number.isascii() and number.isdigit():
                seg = int(number)
                if name == os.path.basename(self._path(seg)):
                    out.append(seg)
        return sorted(out)

    def read(self, seg: int) -> bytes:
        """The segment's bytes, at most one more than a segment can hold (the outbox
        reports a longer file as damaged instead of reading all of it)."""
        try:
            with open(self._path(seg), "rb") as f:
                return f.read(SEGMENT_READ_BYTES + 1)
        except FileNotFoundError:
            return b""

    def append(self, seg: int, data: bytes) -> None:
        f = self._open.get(seg)
        if f is None:
            f = files.open_append(self._path(seg))
            self._open[seg] = f
            self._size[seg] = self._synced[seg] = os.fstat(f.fileno()).st_size
        files.write_all(f, data, self._size[seg])
        self._size[seg] += len(data)

    def truncate(self, seg: int, length: int) -> None:
        with open(self._path(seg), "r+b") as f:
            f.truncate(length)
            f.flush()
            os.fsync(f.fileno())

    def remove(self, seg: int) -> None:
        f = self._open.pop(seg, None)
        if f is not None:
            f.close()
        try:
            os.remove(self._path(seg))
        except FileNotFoundError:
            pass

    def sync(self) -> None:
        """Make every append durable; an error (disk full) is raised after all files closed.
        A segment that could not be synced is cut back to its last durable length: what
        was written since may or may not be on the disk, and a half is worse than none."""
        error = None
        for seg, f in list(self._open.items()):
            try:
                os.fsync(f.fileno())
            except OSError as e:
                error = error or e
                try:
                    os.ftruncate(f.fileno(), self._synced[seg])
                except OSError as cut:
                    error = OSError(e.errno, "%s; cutting segment %d back failed too (%s)" % (e, seg, cut))
            finally:
                try:
                    f.close()
                except OSError as e:
                    error = error or e
        self._open.clear()
        self._size.clear()
        self._synced.clear()
        if error is not None:
            raise error
