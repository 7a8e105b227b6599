"""How the agent and provisioning write files: atomically, with the mode set from the start.

Every file the device keeps goes through here. A whole file is written to a temporary
file that is created with its final mode (0600 unless the caller names another), flushed
and synced, renamed over the old file, and the directory is synced: a reader, or a power
cut, sees the old file or the new one, never half of one, and never a moment in which a
private file is readable by others. Append-only files (the consent journal, outbox
segments) are opened here too, 0600. Errors (a full disk) are raised as OSError; the
temporary file is removed first, so the old file is untouched.
"""

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

PRIVATE = 0o600  # every file in a device's data directory
PRIVATE_DIR = 0o700  # the data directory and the directories in it
SHARED = 0o644  # files meant to be read by others (certificates, profiles, scores)
TMP_SUFFIX = ".tmp"

# Never follow a symlink planted where a file of ours goes (where the platform knows how).
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# Some file systems cannot sync a directory; the rename is atomic all the same.
_DIR_SYNC_UNSUPPORTED = (errno.EINVAL, errno.ENOTSUP, errno.EBADF)


def private_dir(path: str) -> None:
    """Make path (and missing parents) with mode 0700. An existing directory keeps its
    mode: it may be a bundle directory or one the user chose, and is not ours to change."""
    os.makedirs(path, mode=PRIVATE_DIR, exist_ok=True)


def sync_dir(path: str) -> None:
    """Make a rename or a new file in path durable."""
    fd = os.open(path or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in _DIR_SYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)


@contextmanager
def atomic_writer(path: str, mode: int = PRIVATE, sync: bool = True) -> Iterator[BinaryIO]:
    """A binary file to write path's new content into; it replaces path when the block ends
    without an error. sync=False leaves the syncing to the caller (a batch syncs a group)."""
    tmp = path + TMP_SUFFIX
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW, mode)
    try:
        # A temp file left by a crash keeps its old mode, and the umask may have narrowed a
        # new one: the mode is set exactly, before any byte is written.
        os.fchmod(fd, mode)
        f = os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        _remove_quietly(tmp)
        raise
    try:
        with f:
            yield f
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    if sync:
        sync_dir(os.path.dirname(path))


def write_atomic(path: str, data: bytes, mode: int = PRIVATE, sync: bool = True) -> None:
    """Replace path by data (see atomic_writer)."""
    with atomic_writer(path, mode, sync) as f:
        f.write(data)


def open_append(path: str) -> BinaryIO:
    """path opened for appending, unbuffered (each write is one system call, so a short
    write is seen at once), created 0600. A file an older version made with a wider mode
    is narrowed to 0600. A new file's directory entry is synced."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | _NOFOLLOW, PRIVATE)
        created = True
    except FileExistsError:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | _NOFOLLOW)
        created = False
    try:
        if os.fstat(fd).st_mode & 0o777 != PRIVATE:
            os.fchmod(fd, PRIVATE)
        if created:
            sync_dir(os.path.dirname(path))
        return os.fdopen(fd, "ab", buffering=0)
    except BaseException:
        os.close(fd)
        raise


def write_all(f: BinaryIO, data: bytes, keep: int) -> None:
    """Append data to f (from open_append) completely, or not at all: after a failed or
    short write (a full disk) the file is cut back to keep bytes, so no torn record stays
    behind for the next record to follow, and OSError is raised."""
    try:
        n = f.write(data)
        if n != len(data):
            raise OSError(errno.ENOSPC, "%s (%s of %d bytes written)" % (os.strerror(errno.ENOSPC), n, len(data)))
    except OSError as e:
        try:
            os.ftruncate(f.fileno(), keep)
        except OSError as cut:
            # The next recovery finds the torn record and says so; this says it now.
            raise OSError(e.errno, "%s; the torn record could not be cut off (%s)" % (e.strerror, cut.strerror)) from e
        raise


def _remove_quietly(tmp: str) -> None:
    try:
        os.remove(tmp)
    except OSError:
        pass  # the caller's error is the one to report; a stale temp file is replaced next time
