"""A device bundle: everything one device needs to be itself, in two layouts, signed.

`pi/`: a directory that becomes the agent's data directory on a Raspberry Pi image
(identity files under identity/, so a factory reset keeps what permanent.json lists).
`mpy/`: the same files flat, copied to the root of a MicroPython board's filesystem.
bundle.json in each says which file is which and holds the SHA-256 of every other file;
bundle.sig is the bundle signer's signature of bundle.json, and the signer is certified
by the manufacturer's root. Verifying checks the signature against a root the caller
pins, then every file against its hash, then what the files say.
"""

import base64
import binascii
import hashlib
import json
import os
import re
import shutil
import stat
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent import setup_code
from agent.core import profile as core_profile
from agent.core.errors import ProfileError
from provisioning import identities, keys, pki
from provisioning.errors import BundleError

FORMAT = 2  # 1: unsigned, no file hashes
SIGNATURE_FORMAT = 1
SIGNATURE_ALGORITHM = "ecdsa-p256-sha256"
PI = "pi"
MPY = "mpy"
BUNDLE_FILE = "bundle.json"
SIGNATURE_FILE = "bundle.sig"
LABEL_FILE = "label.json"  # beside the two layouts, never on a device: it holds the setup code
# role -> file name; in pi/ the identity files live in identity/ (agent/device_data.py).
IDENTITY_FILES = {
    "ca": "ca.pem",  # the issuing CA and the root: pins the broker, completes the device's chain
    "cert": "device.crt",
    "key": "device.key",
    "setup_code": setup_code.FILE_NAME,
    "update_trust": "update-root.pem",
}
CSR_FILE = "device.csr"  # made on a Pi by `provision csr`, beside its key
PERMANENT = "permanent.json"

# -- limits: a bundle to verify may come from anyone ----------------------------------------
MAX_FILE_BYTES = 1 << 20  # the largest file of a bundle is the profile (at most 16 KiB compiled)
MAX_SIGNATURE_BYTES = 8192  # a certificate and a signature
MAX_FILES = 64  # files walked in one layout when looking for added ones
_SHOWN = 5  # files named in one error message
_REL_PATH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)?\Z")

# Digests of profile bytes that passed validation: a batch writes the same profile into
# every bundle, and the same bytes give the same verdict.
_VALID_PROFILES: set[bytes] = set()
_VALID_PROFILES_MAX = 16
# (signer fingerprint, root fingerprint) pairs already found valid in this process.
_GOOD_SIGNERS: set[tuple[str, str]] = set()
_GOOD_SIGNERS_MAX = 16


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


def _where(layout: str) -> str:
    return "identity/" if layout == PI else ""


def files(fleet: Fleet, device: Device, layout: str) -> dict[str, tuple[bytes, int]]:
    """relative path -> (content, mode) of one layout, without bundle.json and bundle.sig."""
    where = _where(layout)
    record = json.dumps(setup_code.check_record(device.setup_record), sort_keys=True).encode()
    out: dict[str, tuple[bytes, int]] = {
        "profile.json": (fleet.profile_json, 0o644),
        where + IDENTITY_FILES["ca"]: (fleet.chain_pem, 0o644),
        where + IDENTITY_FILES["cert"]: (device.cert_pem, 0o644),
        where + IDENTITY_FILES["setup_code"]: (record, 0o600),
        where + IDENTITY_FILES["update_trust"]: (fleet.update_root_pem, 0o644),
    }
    if device.key_pem:
        out[where + IDENTITY_FILES["key"]] = (device.key_pem, keys.KEY_MODE)
    out[where + PERMANENT] = (json.dumps(sorted(IDENTITY_FILES.values())).encode() + b"\n", 0o644)
    return out


def _descriptor(fleet: Fleet, device: Device, layout: str, content: dict[str, tuple[bytes, int]]) -> bytes:
    where = _where(layout)
    roles = {role: where + name for role, name in IDENTITY_FILES.items()}
    roles["profile"] = "profile.json"
    # A key made on the device (CSR flow) is not the factory's to hash: it is checked
    # against the certificate instead; its request lies beside it.
    made_on_device = [] if device.key_pem else [roles["key"], where + CSR_FILE]
    doc = {
        "format": FORMAT,
        "layout": layout,
        "device_id": device.device_id,
        "serial": device.serial,
        "hardware_id": fleet.hardware_id,
        "broker": {"host": fleet.broker_host, "port": fleet.broker_port},
        "topic_prefix": fleet.prefix,
        "batch": fleet.batch,
        "files": roles,
        "sha256": {rel: hashlib.sha256(data).hexdigest() for rel, (data, _) in sorted(content.items())},
        "made_on_device": made_on_device,
    }
    return json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n"


def signature_file(signer: pki.Identity, descriptor: bytes) -> bytes:
    doc = {
        "format": SIGNATURE_FORMAT,
        "algorithm": SIGNATURE_ALGORITHM,
        "signed": BUNDLE_FILE,
        "signer": signer.cert_pem().decode(),
        "signature": base64.b64encode(pki.sign(signer, descriptor)).decode(),
    }
    return json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n"


def signed_files(fleet: Fleet, device: Device, layout: str, signer: pki.Identity) -> dict[str, tuple[bytes, int]]:
    """Every file of one layout: the content, its descriptor and the descriptor's signature."""
    out = files(fleet, device, layout)
    descriptor = _descriptor(fleet, device, layout, out)
    out[BUNDLE_FILE] = (descriptor, 0o644)
    out[SIGNATURE_FILE] = (signature_file(signer, descriptor), 0o644)
    return out


def write_device(
    directory: str,
    fleet: Fleet,
    device: Device,
    label_ref: str,
    signer: pki.Identity,
    layouts: tuple[str, ...] = (PI, MPY),
    sync: bool = True,
) -> None:
    """Write a device's signed layouts and its label record into directory (made here, must
    not exist). Files are not fsynced one by one when sync is false: the batch syncs a group."""
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
        layout_files = signed_files(fleet, device, layout, signer)
        out.update({layout + "/" + rel: content for rel, content in layout_files.items()})
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
def _read(path: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """A regular file's bytes, at most limit of them; BundleError otherwise."""
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            raise BundleError("%s: not a regular file (a link or a directory); a bundle holds plain files only" % path)
        if info.st_size > limit:
            raise BundleError("%s: %d bytes; no file of a bundle has more than %d" % (path, info.st_size, limit))
        with open(path, "rb") as f:
            return f.read(limit + 1)[:limit]
    except OSError as e:
        raise BundleError("%s: cannot read (%s)" % (path, e.strerror)) from e


def _certificates(data: bytes, path: str) -> list[x509.Certificate]:
    """The PEM certificates in data, every field verification reads parsed now:
    cryptography parses a field when it is first read, so a damaged one would otherwise
    raise in the middle of a check instead of here."""
    try:
        certs = x509.load_pem_x509_certificates(data)
        for cert in certs:
            _ = (cert.subject, cert.issuer, cert.not_valid_before_utc, cert.not_valid_after_utc)
            _ = (list(cert.extensions), cert.public_key(), cert.signature_hash_algorithm)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise BundleError("%s: a certificate does not parse (%s)" % (path, str(e)[:200])) from e
    return certs


def _certificate(data: bytes, path: str) -> x509.Certificate:
    certs = _certificates(data, path)
    if len(certs) != 1:
        raise BundleError("%s: expected one certificate, found %d" % (path, len(certs)))
    return certs[0]


def _json(data: bytes, path: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:
        raise BundleError("%s: not JSON (%s)" % (path, str(e)[:200])) from e


def _signer_and_signature(directory: str) -> tuple[x509.Certificate, bytes]:
    path = os.path.join(directory, SIGNATURE_FILE)
    doc = _json(_read(path, MAX_SIGNATURE_BYTES), path)
    if not isinstance(doc, dict) or doc.get("format") != SIGNATURE_FORMAT:
        raise BundleError(
            "%s: not a bundle signature of format %d (an unsigned or forged bundle?)" % (path, SIGNATURE_FORMAT)
        )
    if doc.get("algorithm") != SIGNATURE_ALGORITHM or doc.get("signed") != BUNDLE_FILE:
        raise BundleError("%s: expected a %s signature of %s" % (path, SIGNATURE_ALGORITHM, BUNDLE_FILE))
    if not isinstance(doc.get("signer"), str) or not isinstance(doc.get("signature"), str):
        raise BundleError("%s: expected the signer's certificate and the signature as text" % path)
    signer = _certificate(doc["signer"].encode("utf-8", "replace"), path + " (signer)")
    try:
        signature = base64.b64decode(doc["signature"], validate=True)
    except (ValueError, binascii.Error) as e:
        raise BundleError("%s: the signature is not base64 (%s)" % (path, e)) from e
    return signer, signature


def _check_signer(signer: x509.Certificate, root: x509.Certificate, path: str) -> None:
    pair = (pki.fingerprint(signer), pki.fingerprint(root))
    if pair in _GOOD_SIGNERS:
        return
    problem = pki.signer_problem(signer, root)
    if problem:
        raise BundleError(
            "%s: the bundle is signed by %s, which the manufacturer's root %s did not certify to sign bundles: %s. "
            "This bundle was not made with this manufacturer's PKI."
            % (path, signer.subject.rfc4514_string(), root.subject.rfc4514_string(), problem)
        )
    if len(_GOOD_SIGNERS) >= _GOOD_SIGNERS_MAX:
        _GOOD_SIGNERS.clear()
    _GOOD_SIGNERS.add(pair)


def _rel_paths(value: object, what: str, path: str) -> list[str]:
    if not isinstance(value, list | dict) or not all(isinstance(v, str) and _REL_PATH.match(v) for v in value):
        raise BundleError("%s: %s must be relative paths inside the bundle" % (path, what))
    return list(value)


def _descriptor_of(raw: bytes, path: str) -> dict[str, Any]:
    doc = _json(raw, path)
    if not isinstance(doc, dict):
        raise BundleError("%s: not a device bundle descriptor (expected a JSON object)" % path)
    if doc.get("format") != FORMAT:
        raise BundleError("%s: format %r, expected %d" % (path, doc.get("format"), FORMAT))
    missing = [k for k in ("files", "device_id", "broker", "sha256", "made_on_device", "layout") if k not in doc]
    broker = doc.get("broker")
    if not isinstance(broker, dict) or not isinstance(broker.get("host"), str) or type(broker.get("port")) is not int:
        missing.append("broker host and port")
    if missing:
        raise BundleError("%s: not a device bundle descriptor (missing %s)" % (path, ", ".join(missing)))
    roles = doc["files"]
    if not isinstance(roles, dict) or set(roles) != set(IDENTITY_FILES) | {"profile"}:
        raise BundleError("%s: files must name the roles %s" % (path, ", ".join(sorted([*IDENTITY_FILES, "profile"]))))
    _rel_paths(list(roles.values()), "files", path)
    _rel_paths(doc["sha256"], "sha256", path)
    _rel_paths(doc["made_on_device"], "made_on_device", path)
    if not all(isinstance(h, str) and re.match(r"^[0-9a-f]{64}\Z", h) for h in doc["sha256"].values()):
        raise BundleError("%s: sha256 must map each file to a hex SHA-256" % path)
    why = identities.device_id_problem(str(doc["device_id"]))
    if why:
        raise BundleError("%s: device_id: %s" % (path, why))
    return doc


def _file_problems(directory: str, doc: dict[str, Any], in_use: bool) -> list[str]:
    """Files that differ from the signed list: changed, removed, and (unless the directory
    is a device's data directory in use) added."""
    listed: dict[str, str] = doc["sha256"]
    problems = []
    for rel in sorted(listed):
        path = os.path.join(directory, rel)
        if not os.path.lexists(path):
            problems.append("removed file %s" % rel)
        elif hashlib.sha256(_read(path)).hexdigest() != listed[rel]:
            problems.append("changed file %s" % rel)
    if not in_use:
        allowed = set(listed) | set(doc["made_on_device"]) | {BUNDLE_FILE, SIGNATURE_FILE}
        seen = 0
        for base, dirs, names in os.walk(directory):
            dirs.sort()
            for name in sorted(names) + [d for d in dirs if os.path.islink(os.path.join(base, d))]:
                seen += 1
                rel = os.path.relpath(os.path.join(base, name), directory).replace(os.sep, "/")
                if seen > MAX_FILES:
                    raise BundleError(
                        "%s: more than %d files; a bundle as the manufacturer wrote it has about ten (added files: %s)"
                        % (
                            directory,
                            MAX_FILES,
                            ", ".join([p[11:] for p in problems if p[:11] == "added file "][:_SHOWN]),
                        )
                    )
                if rel not in allowed:
                    problems.append("added file %s" % rel)
    return problems


def own_root(directory: str) -> x509.Certificate:
    """The root in the bundle's own ca.pem. Trusting it checks that the bundle is whole
    (what a device does with its own files), not who made it: for that, pin the
    manufacturer's root (`wichtel provision verify --pki/--root`)."""
    path = os.path.join(directory, BUNDLE_FILE)
    doc = _json(_read(path), path)
    rel = doc.get("files", {}).get("ca") if isinstance(doc, dict) and isinstance(doc.get("files"), dict) else None
    if not isinstance(rel, str) or not _REL_PATH.match(rel):
        raise BundleError("%s: not a device bundle descriptor (no CA file named)" % path)
    chain = _certificates(_read(os.path.join(directory, rel)), os.path.join(directory, rel))
    roots = [c for c in chain if c.subject == c.issuer]
    if len(roots) != 1:
        raise BundleError("%s: expected exactly one root certificate" % os.path.join(directory, rel))
    return roots[0]


def verify(
    directory: str,
    root: x509.Certificate,
    public_key: ec.EllipticCurvePublicKey | None = None,
    key_optional: bool = False,
    in_use: bool = False,
) -> dict[str, Any]:
    """Check a bundle against the manufacturer's root; returns its descriptor or raises
    BundleError naming the file.

    bundle.sig is a signature of bundle.json by a bundle signer that root certified;
    every file bundle.json lists has the SHA-256 it lists, none is missing and (unless
    in_use: a device's data directory, where the agent keeps its own files) none was
    added. Then what the files say: the device certificate chains through the issuing
    CA in ca.pem to root and names the device; the private key matches it and is 0600
    (or, for a CSR device whose key is elsewhere, public_key does); the setup-code record
    and the profile are valid."""
    sig_path = os.path.join(directory, SIGNATURE_FILE)
    signer, signature = _signer_and_signature(directory)
    _check_signer(signer, root, sig_path)
    desc_path = os.path.join(directory, BUNDLE_FILE)
    raw = _read(desc_path)
    problem = pki.signature_problem(signer, signature, raw)
    if problem:
        raise BundleError(
            "%s: changed after it was signed (%s): its broker, device or file list is not what the manufacturer "
            "wrote." % (desc_path, problem)
        )
    doc = _descriptor_of(raw, desc_path)
    problems = _file_problems(directory, doc, in_use)
    if problems:
        raise BundleError(
            "%s: %d file%s differ%s from what the manufacturer signed: %s%s."
            % (
                directory,
                len(problems),
                "s" if len(problems) > 1 else "",
                "" if len(problems) > 1 else "s",
                "; ".join(problems[:_SHOWN]),
                "; ..." if len(problems) > _SHOWN else "",
            )
        )
    _check_content(directory, doc, root, public_key, key_optional)
    return doc


def _check_content(
    directory: str,
    doc: dict[str, Any],
    root: x509.Certificate,
    public_key: ec.EllipticCurvePublicKey | None,
    key_optional: bool,
) -> None:
    paths = {role: os.path.join(directory, rel) for role, rel in doc["files"].items()}
    chain = _certificates(_read(paths["ca"]), paths["ca"])
    cert = _certificate(_read(paths["cert"]), paths["cert"])
    roots = [c for c in chain if c.subject == c.issuer]
    issuers = [c for c in chain if c.subject == cert.issuer]
    if len(roots) != 1 or roots[0] != root:
        raise BundleError(
            "%s: does not hold the manufacturer's root CA %s" % (paths["ca"], root.subject.rfc4514_string())
        )
    if len(issuers) != 1:
        raise BundleError("%s: must hold the issuing CA of the device certificate" % paths["ca"])
    problem = pki.chain_problem(cert, issuers[0]) or pki.chain_problem(issuers[0], roots[0])
    if problem:
        raise BundleError("%s: the device certificate does not chain to the CA: %s" % (paths["cert"], problem))
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names or names[0].value != doc["device_id"]:
        raise BundleError(
            "%s: the certificate names %r, the bundle device %r"
            % (paths["cert"], names and names[0].value, doc["device_id"])
        )
    cert_public = pki.public_bytes(cert.public_key())  # type: ignore[arg-type]
    key_path = paths["key"]
    if os.path.lexists(key_path):
        mode = os.lstat(key_path).st_mode
        if mode & 0o077:
            raise BundleError(
                "%s: mode %o; a private key must be readable by its owner only (600)" % (key_path, mode & 0o777)
            )
        try:
            key = serialization.load_pem_private_key(_read(key_path), None)
        except (ValueError, TypeError) as e:
            raise BundleError("%s: not an unencrypted PEM private key (%s)" % (key_path, e)) from e
        if pki.public_bytes(key.public_key()) != cert_public:  # type: ignore[arg-type]
            raise BundleError("%s: the private key does not match device.crt" % key_path)
    elif public_key is None or not key_optional:
        raise BundleError("%s: no private key; a device made its own with `wichtel provision csr`?" % key_path)
    if public_key is not None and pki.public_bytes(public_key) != cert_public:
        raise BundleError("%s: the certificate does not carry the key of the request" % paths["cert"])
    try:
        setup_code.check_record(_json(_read(paths["setup_code"]), paths["setup_code"]))
    except setup_code.SetupCodeError as e:
        raise BundleError("%s: %s" % (paths["setup_code"], e)) from e
    profile = _read(paths["profile"])
    digest = hashlib.sha256(profile).digest()
    if digest not in _VALID_PROFILES:
        try:
            core_profile.from_json(profile)  # bounded before it is parsed, as a device reads it
        except ProfileError as e:
            raise BundleError("%s: the profile is not valid: %s" % (paths["profile"], e)) from e
        if len(_VALID_PROFILES) >= _VALID_PROFILES_MAX:
            _VALID_PROFILES.clear()
        _VALID_PROFILES.add(digest)


def for_run(directory: str) -> dict[str, str]:
    """What `wichtel run --bundle` needs from a bundle that is whole (checked against its
    own root: the device's data directory holds nothing better to pin): profile, device
    id, broker and the TLS files."""
    doc = verify(directory, own_root(directory), in_use=True)
    paths = {role: os.path.join(directory, rel) for role, rel in doc["files"].items()}
    return {
        "profile": paths["profile"],
        "device_id": str(doc["device_id"]),
        "broker": "%s:%d" % (doc["broker"]["host"], doc["broker"]["port"]),
        "ca": paths["ca"],
        "cert": paths["cert"],
        "key": paths["key"],
    }
