"""A device bundle: everything one device needs to be itself, in two layouts.

`pi/`: a directory that becomes the agent's data directory on a Raspberry Pi image
(identity files under identity/, so a factory reset keeps what permanent.json lists).
`mpy/`: the same files flat, copied to the root of a MicroPython board's filesystem.
bundle.json in each says which file is which. A bundle is verified after it is written.
"""

import hashlib
import json
import os
import shutil
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent import setup_code
from agent.core import profile as core_profile
from agent.core.errors import ProfileError
from provisioning import keys, pki
from provisioning.errors import BundleError

FORMAT = 1
PI = "pi"
MPY = "mpy"
BUNDLE_FILE = "bundle.json"
LABEL_FILE = "label.json"  # beside the two layouts, never on a device: it holds the setup code
# role -> file name; in pi/ the identity files live in identity/ (agent/device_data.py).
IDENTITY_FILES = {
    "ca": "ca.pem",  # the issuing CA and the root: pins the broker, completes the device's chain
    "cert": "device.crt",
    "key": "device.key",
    "setup_code": setup_code.FILE_NAME,
    "update_trust": "update-root.pem",
}
PERMANENT = "permanent.json"
# Digests of profile bytes that passed validation: a batch writes the same profile into
# every bundle, and the same bytes give the same verdict.
_VALID_PROFILES: set[bytes] = set()
_VALID_PROFILES_MAX = 16


class Fleet:
    """What every bundle of a run shares: profile, broker, trust anchors, maker."""

    def __init__(
        self,
        profile_json: bytes,
        broker_host: str,
        broker_port: int,
        chain_pem: bytes,
        update_root_pem: bytes,
        org: str,
        batch: str,
    ) -> None:
        self.profile_json = profile_json
        profile = json.loads(profile_json)
        self.prefix = str(profile["uplink"]["topic_prefix"])
        app = profile["appliance"]
        self.hardware_id = "%s/%s/%s" % (app["maker"], app["model"], app["hardware_revision"])
        self.broker_host = broker_host
        self.broker_port = broker_port
        self.chain_pem = chain_pem
        self.update_root_pem = update_root_pem
        self.org = org
        self.batch = batch


class Device:
    """One device's material: made on the factory host (key_pem set) or from a CSR (key_pem
    empty: the key is on the device). setup_code is for the label only."""

    def __init__(
        self,
        serial: str,
        device_id: str,
        cert_pem: bytes,
        key_pem: bytes,
        setup_code: str,
        setup_record: dict[str, Any],
    ) -> None:
        self.serial = serial
        self.device_id = device_id
        self.cert_pem = cert_pem
        self.key_pem = key_pem
        self.setup_code = setup_code
        self.setup_record = setup_record

    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


def qr_payload(serial: str, code: str) -> str:
    """The label's QR text: only QR alphanumeric characters, so the code stays small."""
    return "WICHTEL:1:%s:%s" % (serial, setup_code.normalize(code))


def _descriptor(fleet: Fleet, device: Device, layout: str) -> bytes:
    where = "identity/" if layout == PI else ""
    files = {role: where + name for role, name in IDENTITY_FILES.items()}
    files["profile"] = "profile.json"
    doc = {
        "format": FORMAT,
        "layout": layout,
        "device_id": device.device_id,
        "serial": device.serial,
        "hardware_id": fleet.hardware_id,
        "broker": {"host": fleet.broker_host, "port": fleet.broker_port},
        "topic_prefix": fleet.prefix,
        "batch": fleet.batch,
        "files": files,
    }
    return json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n"


def files(fleet: Fleet, device: Device, layout: str) -> dict[str, tuple[bytes, int]]:
    """relative path -> (content, mode) of one layout."""
    where = "identity/" if layout == PI else ""
    record = json.dumps(setup_code.check_record(device.setup_record), sort_keys=True).encode()
    out: dict[str, tuple[bytes, int]] = {
        BUNDLE_FILE: (_descriptor(fleet, device, layout), 0o644),
        "profile.json": (fleet.profile_json, 0o644),
        where + IDENTITY_FILES["ca"]: (fleet.chain_pem, 0o644),
        where + IDENTITY_FILES["cert"]: (device.cert_pem, 0o644),
        where + IDENTITY_FILES["setup_code"]: (record, 0o600),
        where + IDENTITY_FILES["update_trust"]: (fleet.update_root_pem, 0o644),
    }
    permanent = sorted(IDENTITY_FILES.values())
    if device.key_pem:
        out[where + IDENTITY_FILES["key"]] = (device.key_pem, keys.KEY_MODE)
    out[where + PERMANENT] = (json.dumps(permanent).encode() + b"\n", 0o644)
    return out


def write_device(
    directory: str,
    fleet: Fleet,
    device: Device,
    label_ref: str,
    layouts: tuple[str, ...] = (PI, MPY),
    sync: bool = True,
) -> None:
    """Write a device's layouts and its label record into directory (made here, must not
    exist). Files are not fsynced one by one when sync is false: the batch syncs a group."""
    os.makedirs(directory)
    label = {
        "label_ref": label_ref,
        "serial": device.serial,
        "device_id": device.device_id,
        "setup_code": device.setup_code,
        "qr_payload": qr_payload(device.serial, device.setup_code),
    }
    out = {LABEL_FILE: (json.dumps(label, sort_keys=True).encode(), 0o600)}
    for layout in layouts:
        os.makedirs(os.path.join(directory, layout, "identity" if layout == PI else ""))
        out.update({layout + "/" + rel: content for rel, content in files(fleet, device, layout).items()})
    for rel, (data, mode) in out.items():
        # The directory is new and becomes visible only when renamed: no temp file per file.
        fd = os.open(os.path.join(directory, rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())


def remove(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)


# -- verification ------------------------------------------------------------------------
def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise BundleError("%s: cannot read (%s)" % (path, e.strerror)) from e


def read_descriptor(directory: str) -> dict[str, Any]:
    path = os.path.join(directory, BUNDLE_FILE)
    try:
        doc: dict[str, Any] = json.loads(_read(path))
        missing = [k for k in ("files", "device_id", "broker") if k not in doc]
        missing += [k for k in ("host", "port") if k not in doc.get("broker", {})]
    except (ValueError, AttributeError, TypeError) as e:
        raise BundleError("%s: not a device bundle descriptor (%s)" % (path, e)) from e
    if missing:
        raise BundleError("%s: not a device bundle descriptor (missing %s)" % (path, ", ".join(missing)))
    if doc.get("format") != FORMAT:
        raise BundleError("%s: format %r, expected %d" % (path, doc.get("format"), FORMAT))
    return doc


def verify(
    directory: str,
    root: x509.Certificate | None = None,
    public_key: ec.EllipticCurvePublicKey | None = None,
    key_optional: bool = False,
) -> dict[str, Any]:
    """Check a bundle as a device would use it; returns its descriptor or raises BundleError.

    The device certificate chains to the issuing CA in ca.pem, and that to its root (the
    given root, when the caller knows which it must be); the certificate names the device;
    the private key matches the certificate (or, for a CSR device whose key is elsewhere,
    public_key does); the key file is 0600; the setup-code record and the profile are valid."""
    doc = read_descriptor(directory)
    paths = {role: os.path.join(directory, rel) for role, rel in doc["files"].items()}
    try:
        chain = x509.load_pem_x509_certificates(_read(paths["ca"]))
        cert = x509.load_pem_x509_certificate(_read(paths["cert"]))
    except ValueError as e:
        raise BundleError("%s: a certificate does not parse (%s)" % (directory, e)) from e
    roots = [c for c in chain if c.subject == c.issuer]
    issuers = [c for c in chain if c.subject == cert.issuer]
    if root is not None and (len(roots) != 1 or roots[0] != root):
        raise BundleError(
            "%s: ca.pem does not hold the expected root CA %s" % (directory, root.subject.rfc4514_string())
        )
    if len(roots) != 1 or len(issuers) != 1:
        raise BundleError("%s: ca.pem must hold the root and the issuing CA of the device certificate" % directory)
    problem = pki.chain_problem(cert, issuers[0]) or pki.chain_problem(issuers[0], roots[0])
    if problem:
        raise BundleError("%s: the device certificate does not chain to the CA: %s" % (directory, problem))
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names or names[0].value != doc["device_id"]:
        raise BundleError(
            "%s: the certificate names %r, the bundle device %r"
            % (directory, names and names[0].value, doc["device_id"])
        )
    cert_public = pki.public_bytes(cert.public_key())  # type: ignore[arg-type]
    if os.path.exists(paths["key"]):
        if os.stat(paths["key"]).st_mode & 0o077:
            raise BundleError(
                "%s: mode %o; a private key must be readable by its owner only (600)"
                % (paths["key"], os.stat(paths["key"]).st_mode & 0o777)
            )
        try:
            key = serialization.load_pem_private_key(_read(paths["key"]), None)
        except (ValueError, TypeError) as e:
            raise BundleError("%s: not an unencrypted PEM private key (%s)" % (paths["key"], e)) from e
        if pki.public_bytes(key.public_key()) != cert_public:  # type: ignore[arg-type]
            raise BundleError("%s: the private key does not match device.crt" % paths["key"])
    elif public_key is None or not key_optional:
        raise BundleError("%s: no private key; a device made its own with `wichtel provision csr`?" % paths["key"])
    if public_key is not None and pki.public_bytes(public_key) != cert_public:
        raise BundleError("%s: the certificate does not carry the key of the request" % paths["cert"])
    try:
        setup_code.check_record(json.loads(_read(paths["setup_code"])))
    except (ValueError, setup_code.SetupCodeError) as e:
        raise BundleError("%s: %s" % (paths["setup_code"], e)) from e
    profile = _read(paths["profile"])
    digest = hashlib.sha256(profile).digest()
    if digest not in _VALID_PROFILES:
        try:
            core_profile.validate(json.loads(profile))
        except (ValueError, ProfileError) as e:
            raise BundleError("%s: the profile is not valid: %s" % (paths["profile"], e)) from e
        if len(_VALID_PROFILES) >= _VALID_PROFILES_MAX:
            _VALID_PROFILES.clear()
        _VALID_PROFILES.add(digest)
    return doc


def for_run(directory: str) -> dict[str, str]:
    """What `wichtel run --bundle` needs from a verified bundle: profile, device id, broker
    and the TLS files."""
    doc = verify(directory)
    paths = {role: os.path.join(directory, rel) for role, rel in doc["files"].items()}
    return {
        "profile": paths["profile"],
        "device_id": str(doc["device_id"]),
        "broker": "%s:%d" % (doc["broker"]["host"], doc["broker"]["port"]),
        "ca": paths["ca"],
        "cert": paths["cert"],
        "key": paths["key"],
    }
