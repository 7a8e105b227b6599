"""The user's Wi-Fi credentials on the board's flash: checked, written atomically, bounded
when read back, and forgotten on request.

wifi.json at the filesystem root: {"ssid": ..., "password": ...}. A file that is missing
means "no network yet" (the board opens its setup access point); one that is damaged is
reported and treated the same, so the user can enter them again.
"""

import errno
import json
import os

from agent.core.compat import const
from agent.core.errors import WichtelError

FILE_NAME = "wifi.json"
# -- limits ---------------------------------------------------------------------------------------
MAX_SSID_BYTES = const(32)  # IEEE 802.11: an SSID is 0..32 octets (empty: no network to join)
MIN_PASSPHRASE = const(8)  # WPA2-PSK passphrase: 8..63 printable ASCII characters,
MAX_PASSPHRASE = const(63)
PSK_HEX_LEN = const(64)  # or the 256-bit key itself as 64 hex digits
MAX_FILE_BYTES = const(256)  # the JSON of the longest SSID and key with room to spare
_HEX = "0123456789abcdefABCDEF"


class CredentialsError(WichtelError):
    """Wi-Fi credentials that cannot be used: which field, and what was expected (never the password itself)."""


def check(ssid: object, password: object) -> tuple:
    """(ssid, password) if a station can use them; CredentialsError naming the field otherwise.
    An empty password is an open network."""
    if not isinstance(ssid, str) or not isinstance(password, str):
        raise CredentialsError("Wi-Fi credentials: ssid and password must be text")
    size = len(ssid.encode())
    if not 0 < size <= MAX_SSID_BYTES:
        raise CredentialsError("Wi-Fi name: %d bytes; expected 1 to %d" % (size, MAX_SSID_BYTES))
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in ssid):
        raise CredentialsError("Wi-Fi name: a control character; expected printable text")
    if password:
        printable = all(0x20 <= ord(c) < 0x7F for c in password)
        is_key = len(password) == PSK_HEX_LEN and all(c in _HEX for c in password)
        if not is_key and not (printable and MIN_PASSPHRASE <= len(password) <= MAX_PASSPHRASE):
            raise CredentialsError("Wi-Fi password: %d characters; expected %d to %d printable ASCII characters "
                                   "(WPA2), 64 hex digits, or none for an open network"
                                   % (len(password), MIN_PASSPHRASE, MAX_PASSPHRASE))  # fmt: skip
    return ssid, password


class CredentialStore:
    """wifi.json in `directory` (the filesystem root on a board)."""

    def __init__(self, directory: str) -> None:
        self.path = (directory.rstrip("/") or "") + "/" + FILE_NAME

    def load(self) -> "tuple | None":
        """(ssid, password), or None when none are stored; CredentialsError for a damaged file."""
        try:
            with open(self.path, "rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
        except OSError as e:
            if e.errno == errno.ENOENT:
                return None
            raise CredentialsError("%s: cannot be read (%s)" % (self.path, e)) from e
        if len(data) > MAX_FILE_BYTES:
            raise CredentialsError("%s: more than %d bytes; expected at most that" % (self.path, MAX_FILE_BYTES))
        try:
            doc = json.loads(data)
        except ValueError as e:
            raise CredentialsError("%s: not JSON (%s)" % (self.path, e)) from e
        if not isinstance(doc, dict):
            raise CredentialsError("%s: expected a JSON object" % self.path)
        return check(doc.get("ssid"), doc.get("password"))

    def save(self, ssid: object, password: object) -> None:
        """Check and store them: a temporary file, then renamed over the old one (a power cut
        leaves the old file or the new one, never half of one)."""
        ssid, password = check(ssid, password)
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(json.dumps({"ssid": ssid, "password": password}).encode())
        try:
            os.rename(tmp, self.path)
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise
            # A filesystem that will not rename over a file (FAT; LittleFS, a board's default, does):
            # the old one goes first, and a power cut in between leaves none (onboarding again).
            os.remove(self.path)
            os.rename(tmp, self.path)

    def clear(self) -> bool:
        """Forget them; whether there were any."""
        try:
            os.remove(self.path)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
            return False
        return True
