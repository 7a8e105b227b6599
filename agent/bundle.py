"""The device's check of its provisioned bundle: the descriptor, the signature over it,
every file's hash, and what the files say; what `wichtel run --bundle` reads from it.

provisioning/bundle.py writes bundles and verifies them with this same code against the
manufacturer's pinned root; a device checks against the root in its own ca.pem, which
finds damage, not a forgery (docs/manufacturing.md). This is the only agent module that
needs `cryptography`, and only `run --bundle` imports it (docs/layers.md).
"""

import base64
import binascii
import datetime
import hashlib
import json
import os
import re
import stat
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent import setup_code
from agent.core import profile as core_profile
from agent.core.errors import ProfileError, WichtelError

FORMAT = 2  # 1: unsigned, no file hashes
SIGNATURE_FORMAT = 1
SIGNATURE_ALGORITHM = "ecdsa-p256-sha256"
BUNDLE_FILE = "bundle.json"
SIGNATURE_FILE = "bundle.sig"
# role -> file name; in pi/ the identity files live in identity/ (agent/device_data.py).
IDENTITY_FILES = {
    "ca": "ca.pem",  # the issuing CA and the root: pins the broker, completes the device's chain
    "cert": "device.crt",
    "key": "device.key",
    "setup_code": setup_code.FILE_NAME,
    "update_trust": "update-root.pem",
}

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

# A device id (provisioning/identities.py makes them): 20 characters of a-z and 2-7.
DEVICE_ID_LEN = 20  # 100 random bits: unguessable, and collisions are checked against the register
_DEVICE_ID = re.compile(r"^[a-z2-7]{%d}\Z" % DEVICE_ID_LEN)


class BundleError(WichtelError):
    """A device bundle that does not verify: signature, a file, chain, key, profile or layout."""


def device_id_problem(text: str) -> str:
    """Why text cannot be a device id ("" if it can)."""
    if not _DEVICE_ID.match(text):
        return "expected %d characters of a-z and 2-7 (a random device id), got %r" % (DEVICE_ID_LEN, text[:64])
    return ""


# -- certificate checks ----------------------------------------------------------------------
def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, hex: what the manifest and the operator compare."""
    return cert.fingerprint(hashes.SHA256()).hex()


def public_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def chain_problem(cert: x509.Certificate, issuer: x509.Certificate, at: datetime.datetime | None = None) -> str:
    """Why cert is not a valid child of issuer at a time ("" if it is)."""
    at = at or _now()
    if cert.issuer != issuer.subject:
        return "issued by %s, not by %s" % (cert.issuer.rfc4514_string(), issuer.subject.rfc4514_string())
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        return "its signature does not verify with %s (%s)" % (issuer.subject.rfc4514_string(), e)
    except InvalidSignature:
        return "its signature does not verify with the key of %s" % issuer.subject.rfc4514_string()
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        return "valid only from %s to %s" % (cert.not_valid_before_utc.date(), cert.not_valid_after_utc.date())
    return ""


def signer_problem(cert: x509.Certificate, root: x509.Certificate, at: datetime.datetime | None = None) -> str:
    """Why cert cannot sign bundles under root ("" if it can): issued by root itself, valid,
    not a CA, EKU codeSigning."""
    problem = chain_problem(cert, root, at)
    if problem:
        return problem
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as e:
        return "it lacks the %s extension of a bundle signer" % e.oid.dotted_string
    if constraints.ca or list(usage) != [ExtendedKeyUsageOID.CODE_SIGNING]:
        return "it is not a bundle signer (expected a leaf with extended key usage codeSigning only)"
    return ""


def signature_problem(cert: x509.Certificate, signature: bytes, data: bytes) -> str:
    """Why signature is not cert's signature of data ("" if it is)."""
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return "the signer's key is not an ECDSA key"
    try:
        public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return "the signature does not verify with the key of %s" % cert.subject.rfc4514_string()
    return ""


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
    pair = (fingerprint(signer), fingerprint(root))
    if pair in _GOOD_SIGNERS:
        return
    problem = signer_problem(signer, root)
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
    why = device_id_problem(str(doc["device_id"]))
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
    problem = signature_problem(signer, signature, raw)
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
    problem = chain_problem(cert, issuers[0]) or chain_problem(issuers[0], roots[0])
    if problem:
        raise BundleError("%s: the device certificate does not chain to the CA: %s" % (paths["cert"], problem))
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names or names[0].value != doc["device_id"]:
        raise BundleError(
            "%s: the certificate names %r, the bundle device %r"
            % (paths["cert"], names and names[0].value, doc["device_id"])
        )
    cert_public = public_bytes(cert.public_key())  # type: ignore[arg-type]
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
        if public_bytes(key.public_key()) != cert_public:  # type: ignore[arg-type]
            raise BundleError("%s: the private key does not match device.crt" % key_path)
    elif public_key is None or not key_optional:
        raise BundleError("%s: no private key; a device made its own with `wichtel provision csr`?" % key_path)
    if public_key is not None and public_bytes(public_key) != cert_public:
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
