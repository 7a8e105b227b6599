"""The device's own storage on the host: consent journal, learned state, sent log, keys.

One directory per device, made 0700; every file in it is written 0600 through
agent/files.py, each write synced. What the files hold and what damage to them means is
agent/core/stored_data.py's (a board keeps the same files: firmware/board_data.py); this
module gives it the host's file operations, and the factory reset of identity/.
"""

import json
import os

from agent import files
from agent.core.stored_data import (
    JOURNAL,
    KEY,
    KEY_BYTES,
    KEY_FILE_BYTES,
    KEY_MAGIC,
    PROBLEMS_KEPT,
    STATE,
    StoredData,
    decode_key,
    encode_key,
)
from agent.outbox_files import FileStore

__all__ = ["JOURNAL", "KEY", "KEY_BYTES", "KEY_FILE_BYTES", "KEY_MAGIC", "PROBLEMS_KEPT", "STATE", "DeviceData",
           "decode_key", "encode_key"]  # fmt: skip


class DeviceData(StoredData):
    def __init__(self, root: str) -> None:
        super().__init__()
        self.root = root
        # The outbox's files, once open_device made them: closed with the device (close_device).
        self.outbox_files: FileStore | None = None
        files.private_dir(root)

    # -- the host's file operations (agent/core/stored_data.py says what each promises) -----
    def _where(self, name: str) -> str:
        return os.path.join(self.root, name)

    def _read(self, name: str, limit: int) -> bytes | None:
        try:
            with open(self._where(name), "rb") as f:
                return f.read(limit)
        except FileNotFoundError:
            return None

    def _replace(self, name: str, data: bytes) -> None:
        files.write_atomic(self._where(name), data)

    def _append(self, name: str, data: bytes) -> None:
        with files.open_append(self._where(name)) as f:
            size = os.fstat(f.fileno()).st_size
            files.write_all(f, data, size)
            try:
                os.fsync(f.fileno())
            except OSError:
                os.ftruncate(f.fileno(), size)  # not known to be stored: not stored
                raise

    def _remove(self, name: str) -> None:
        try:
            os.remove(self._where(name))
        except FileNotFoundError:
            pass

    def _exists(self, name: str) -> bool:
        return os.path.exists(self._where(name))

    def _random(self, n: int) -> bytes:
        return os.urandom(n)

    def factory_reset(self) -> list:
        """erase(), and the device's identity material (identity/) too, except the files
        that provisioning lists as permanent in identity/permanent.json. Returns what was
        removed from identity/."""
        self.erase()
        ident = os.path.join(self.root, "identity")
        if not os.path.isdir(ident):
            return []
        keep = {"permanent.json"}
        try:
            with open(os.path.join(ident, "permanent.json"), encoding="utf-8") as f:
                listed = json.load(f)
            keep |= {name for name in listed if isinstance(name, str)}
        except (OSError, ValueError, TypeError):
            pass  # no (readable) list: nothing but the list itself is permanent
        removed = []
        for name in sorted(os.listdir(ident)):
            if name not in keep:
                os.remove(os.path.join(ident, name))
                removed.append(name)
        return removed
