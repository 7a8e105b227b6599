"""Private keys and passphrases on the factory host: written 0600 and atomically, optionally
encrypted; passphrases from an environment variable or a prompt, never echoed or logged.
"""

import getpass
import os
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent import files
from provisioning.errors import PassphraseError, ProvisioningError

KEY_MODE = 0o600
MIN_PASSPHRASE = 8


def write_atomic(path: str, data: bytes, mode: int = 0o644, sync: bool = True) -> None:
    """Write data to path through a temp file and os.replace: readers see old or new, never half.
    The temp file is created with its final mode, so a key is never readable by others
    (the one way of writing files, agent/files.py; certificates and records default to 0644)."""
    files.write_atomic(path, data, mode, sync)


def key_pem(key: ec.EllipticCurvePrivateKey, passphrase: bytes | None = None) -> bytes:
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def write_key(path: str, key: ec.EllipticCurvePrivateKey, passphrase: bytes | None = None) -> None:
    write_atomic(path, key_pem(key, passphrase), KEY_MODE)


def is_encrypted(path: str) -> bool:
    with open(path, "rb") as f:
        return b"ENCRYPTED" in f.read(64)


def read_key(path: str, passphrase: bytes | None) -> ec.EllipticCurvePrivateKey:
    """The P-256 key in path; PassphraseError if the passphrase is missing or wrong."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ProvisioningError("%s: cannot read the private key (%s)" % (path, e.strerror)) from e
    encrypted = b"ENCRYPTED" in data[:64]
    if encrypted and not passphrase:
        raise PassphraseError(
            "%s is encrypted and no passphrase was given: pass --passphrase-env NAME with the passphrase in the "
            "environment variable NAME, or run on a terminal to be asked for it." % path
        )
    try:
        key = serialization.load_pem_private_key(data, passphrase if encrypted else None)
    except ValueError as e:
        if encrypted:
            raise PassphraseError(
                "%s: the passphrase does not open this key. Nothing was written; run again with the right "
                "passphrase." % path
            ) from e
        raise ProvisioningError("%s: not a PEM private key (%s)" % (path, e)) from e
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ProvisioningError("%s: expected an ECDSA P-256 key, got %s" % (path, type(key).__name__))
    return key


def passphrase(env: str | None, ask: bool, purpose: str, confirm: bool = False) -> bytes | None:
    """The passphrase from the environment variable env, or asked for on the terminal (not
    echoed) when ask is true; None when neither is wanted."""
    if env:
        value = os.environ.get(env)
        if value is None:
            raise PassphraseError("--passphrase-env %s: the environment variable %s is not set." % (env, env))
        if len(value) < MIN_PASSPHRASE:
            raise PassphraseError(
                "--passphrase-env %s: the passphrase has %d characters; at least %d are needed."
                % (env, len(value), MIN_PASSPHRASE)
            )
        return value.encode()
    if not ask:
        return None
    if not sys.stdin.isatty():
        raise PassphraseError(
            "A passphrase is needed for %s but there is no terminal to ask on: use --passphrase-env NAME." % purpose
        )
    value = getpass.getpass("Passphrase for %s: " % purpose)
    if confirm and getpass.getpass("Again, to confirm: ") != value:
        raise PassphraseError("The two passphrases differ; nothing was written.")
    if len(value) < MIN_PASSPHRASE:
        raise PassphraseError(
            "The passphrase has %d characters; at least %d are needed." % (len(value), MIN_PASSPHRASE)
        )
    return value.encode()
