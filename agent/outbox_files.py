"""Outbox segments as files on the host: outbox-<n>.log in the device's data directory.

Appends are buffered and made durable by sync() (one fsync per batch: the agent syncs
after each round of samples and before it sends). A disk that is full or gone raises
OSError to the caller, which keeps the message in memory and reports it.
"""

import os


class FileStore:
    def __init__(self, directory: str) -> None:
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self._dirty: dict = {}

    def _path(self, seg: int) -> str:
        return os.path.join(self.dir, "outbox-%06d.log" % seg)

    def segments(self) -> list:
        out = []
        for name in os.listdir(self.dir):
            if name.startswith("outbox-") and name.endswith(".log"):
                try:
                    out.append(int(name[7:-4]))
                except ValueError:
                    continue
        return sorted(out)

    def read(self, seg: int) -> bytes:
        try:
            with open(self._path(seg), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def append(self, seg: int, data: bytes) -> None:
        f = self._dirty.get(seg)
        if f is None:
            f = open(self._path(seg), "ab")
            self._dirty[seg] = f
        f.write(data)

    def truncate(self, seg: int, length: int) -> None:
        with open(self._path(seg), "r+b") as f:
            f.truncate(length)
            f.flush()
            os.fsync(f.fileno())

    def remove(self, seg: int) -> None:
        f = self._dirty.pop(seg, None)
        if f is not None:
            f.close()
        try:
            os.remove(self._path(seg))
        except FileNotFoundError:
            pass

    def sync(self) -> None:
        """Make every append durable; an error (disk full) is raised after all files closed."""
        files = list(self._dirty.values())
        self._dirty.clear()
        error = None
        for f in files:
            try:
                f.flush()
                os.fsync(f.fileno())
            except OSError as e:
                error = error or e
            finally:
                try:
                    f.close()
                except OSError as e:
                    error = error or e
        if error is not None:
            raise error
