"""The manufacturer's PKI directory: made once by `provision init`, opened (and checked) by
every other command; it also keeps the registers of issued and revoked certificates,
devices' and services'.

Layout (docs/manufacturing.md): root.crt/.key (move the key offline after init),
issuing.crt/.key, chain.pem, bundle-signing.crt/.key, service-ca.crt/.key,
update-root.crt/.key, update-signing.crt/.key, authority.json, issued.csv, revoked.csv,
crl.pem, services.csv, services-revoked.csv, service-crl.pem.
"""

import csv
import datetime
import io
import json
import os

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from provisioning import bundle, identities, keys, pki
from provisioning.errors import AuthorityError, ProvisioningError

FORMAT = 2  # 1: before services had their own CA and bundles a signed file list
ISSUED = "issued.csv"
ISSUED_FIELDS = ("serial", "device_id", "cert_serial", "fingerprint", "batch", "issued_at")
REVOKED = "revoked.csv"
REVOKED_FIELDS = ("cert_serial", "device_id", "revoked_at")
CRL = "crl.pem"
SERVICES = "services.csv"
SERVICE_FIELDS = ("name", "identity", "cert_serial", "fingerprint", "issued_at", "expires")
SERVICES_REVOKED = "services-revoked.csv"
SERVICES_REVOKED_FIELDS = ("cert_serial", "name", "revoked_at")
SERVICE_CRL = "service-crl.pem"
KEY_FILES = ("root.key", "issuing.key", "bundle-signing.key", "service-ca.key", "update-root.key", "update-signing.key")


def _read_cert(path: str) -> x509.Certificate:
    try:
        with open(path, "rb") as f:
            return x509.load_pem_x509_certificate(f.read())
    except OSError as e:
        raise AuthorityError(
            "%s: cannot read (%s). Is this a PKI directory made by `wichtel provision init`?" % (path, e.strerror)
        ) from e
    except ValueError as e:
        raise AuthorityError("%s: not a PEM certificate (%s)" % (path, e)) from e


def init(
    directory: str,
    org: str,
    passphrase: bytes | None,
    root_days: int = pki.ROOT_DAYS,
    issuing_days: int = pki.ISSUING_DAYS,
) -> list[str]:
    """Make the device chain (root, issuing CA, bundle signer), the service CA and the
    update-signing chain in directory; returns the files written."""
    if os.path.exists(os.path.join(directory, "authority.json")):
        raise AuthorityError(
            "%s already holds a PKI (authority.json): refusing to overwrite its keys. Use another directory."
            % directory
        )
    if not org.strip():
        raise AuthorityError("--org: expected the manufacturer's name, got an empty string")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    root = pki.make_root(org, days=root_days)
    issuing = pki.make_issuing(root, org, days=issuing_days)
    signer = pki.make_bundle_signer(root, org, days=issuing_days)
    service_ca = pki.make_service_ca(org, days=issuing_days)
    update_root, update_signer = pki.make_update_chain(org)
    written = []
    for name, ident in (
        ("root", root),
        ("issuing", issuing),
        ("bundle-signing", signer),
        ("service-ca", service_ca),
        ("update-root", update_root),
        ("update-signing", update_signer),
    ):
        keys.write_key(os.path.join(directory, name + ".key"), ident.key, passphrase)
        keys.write_atomic(os.path.join(directory, name + ".crt"), ident.cert_pem())
        written += [name + ".crt", name + ".key"]
    keys.write_atomic(os.path.join(directory, "chain.pem"), issuing.cert_pem() + root.cert_pem())
    meta = {
        "format": FORMAT,
        "org": org,
        "created": pki._now().isoformat(timespec="seconds"),
        "issuing_fingerprint": pki.fingerprint(issuing.cert),
        "root_fingerprint": pki.fingerprint(root.cert),
        "service_ca_fingerprint": pki.fingerprint(service_ca.cert),
    }
    keys.write_atomic(os.path.join(directory, "authority.json"), json.dumps(meta, indent=1).encode() + b"\n")
    written += ["chain.pem", "authority.json"]
    return written


class Authority:
    """An opened PKI directory whose issuing CA and bundle signer were checked against its
    root. The service CA's key is read only by the commands that need it."""

    def __init__(
        self,
        directory: str,
        org: str,
        root: x509.Certificate,
        issuing: pki.Identity,
        signer: pki.Identity,
        service_ca: x509.Certificate,
        update_root: x509.Certificate,
        passphrase: bytes | None = None,
    ) -> None:
        self.dir = directory
        self.org = org
        self.root = root
        self.issuing = issuing
        self.signer = signer
        self.service_ca_cert = service_ca
        self.update_root = update_root
        self._passphrase = passphrase

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def root_pem(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.PEM)

    def chain_pem(self) -> bytes:
        return self.issuing.cert_pem() + self.root_pem()

    def fleet(self, profile_json: bytes, host: str, port: int, batch: str) -> bundle.Fleet:
        """What every bundle this authority writes for one run shares."""
        update_root = self.update_root.public_bytes(serialization.Encoding.PEM)
        return bundle.Fleet(profile_json, host, port, self.chain_pem(), update_root, self.org, batch)

    def service_ca(self) -> pki.Identity:
        """The service CA with its key (read now, with the passphrase the PKI was opened with)."""
        return _read_identity(self.dir, "service-ca", self._passphrase, self.service_ca_cert)

    def service_ca_pem(self) -> bytes:
        return self.service_ca_cert.public_bytes(serialization.Encoding.PEM)

    def new_device_ids(self, count: int) -> list[str]:
        """count random device ids, distinct and none in the register."""
        known = {row["device_id"] for row in self.issued().values()}
        out: list[str] = []
        while len(out) < count:
            candidate = identities.new_device_id()
            if candidate not in known:  # 100 random bits: a repeat is all but impossible, and never used
                known.add(candidate)
                out.append(candidate)
        return out

    # -- services ------------------------------------------------------------------------
    def issue_service(self, name: str) -> pki.Identity:
        """A new key and certificate for the service called name, recorded in services.csv."""
        identities.service_identity(name)  # the name's problem before the CA key is asked for
        ca = self.service_ca()
        key = pki.new_key()
        cert = pki.service_certificate(ca, key.public_key(), name, self.org)
        append_rows(
            self.path(SERVICES),
            SERVICE_FIELDS,
            [
                {
                    "name": name,
                    "identity": identities.service_identity(name),
                    "cert_serial": "%x" % cert.serial_number,
                    "fingerprint": pki.fingerprint(cert),
                    "issued_at": pki._now().isoformat(timespec="seconds"),
                    "expires": cert.not_valid_after_utc.isoformat(timespec="seconds"),
                }
            ],
        )
        return pki.Identity(key, cert)

    def services(self) -> list[dict[str, str]]:
        return read_rows(self.path(SERVICES), SERVICE_FIELDS)

    def revoke_services(self, names: list[str]) -> tuple[list[str], str]:
        """Revoke every certificate issued to the named services; write service-crl.pem."""
        by_name: dict[str, list[dict[str, str]]] = {}
        for row in self.services():
            by_name.setdefault(row["name"], []).append(row)
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ProvisioningError(
                "revoke --service: no certificate was issued to the service %s by %s (see %s); nothing was revoked."
                % (", ".join(unknown), self.dir, SERVICES)
            )
        done = {row["cert_serial"] for row in read_rows(self.path(SERVICES_REVOKED), SERVICES_REVOKED_FIELDS)}
        now = pki._now().isoformat(timespec="seconds")
        new = [
            {"cert_serial": row["cert_serial"], "name": n, "revoked_at": now}
            for n in names
            for row in by_name[n]
            if row["cert_serial"] not in done
        ]
        append_rows(self.path(SERVICES_REVOKED), SERVICES_REVOKED_FIELDS, new)
        return sorted({r["name"] for r in new}), self.write_service_crl()

    def write_service_crl(self) -> str:
        rows = read_rows(self.path(SERVICES_REVOKED), SERVICES_REVOKED_FIELDS)
        entries = [(int(r["cert_serial"], 16), datetime.datetime.fromisoformat(r["revoked_at"])) for r in rows]
        crl = pki.build_crl(self.service_ca(), entries, number=len(rows) + 1)
        path = self.path(SERVICE_CRL)
        keys.write_atomic(path, crl.public_bytes(serialization.Encoding.PEM))
        return path

    # -- the register of issued certificates ---------------------------------------------
    def issued(self) -> dict[str, dict[str, str]]:
        """serial -> row of issued.csv."""
        return {row["serial"]: row for row in read_rows(self.path(ISSUED), ISSUED_FIELDS)}

    def record_issued(self, rows: list[dict[str, str]]) -> None:
        append_rows(self.path(ISSUED), ISSUED_FIELDS, rows)

    def revoked(self) -> list[dict[str, str]]:
        return read_rows(self.path(REVOKED), REVOKED_FIELDS)

    def revoke(self, device_ids: list[str]) -> tuple[list[str], str]:
        """Revoke the certificates issued to device_ids; write crl.pem. Returns (newly revoked, CRL path)."""
        by_device: dict[str, list[dict[str, str]]] = {}
        for row in self.issued().values():
            by_device.setdefault(row["device_id"], []).append(row)
        unknown = [d for d in device_ids if d not in by_device]
        if unknown:
            serials = self.issued()
            hints = [
                "%s is a serial number: its device id is %s" % (d, serials[d.upper()]["device_id"])
                for d in unknown
                if d.upper() in serials
            ]
            raise ProvisioningError(
                "revoke: no certificate was issued to the device id %s by %s; nothing was revoked. %s"
                % (
                    ", ".join(unknown),
                    self.dir,
                    "; ".join(hints) + "."
                    if hints
                    else "A serial number's device id is in the register %s (columns serial, device_id) and in "
                    "the batch's manifest.csv." % ISSUED,
                )
            )
        done = {row["cert_serial"] for row in self.revoked()}
        now = pki._now().isoformat(timespec="seconds")
        new = [
            {"cert_serial": row["cert_serial"], "device_id": d, "revoked_at": now}
            for d in device_ids
            for row in by_device[d]
            if row["cert_serial"] not in done
        ]
        append_rows(self.path(REVOKED), REVOKED_FIELDS, new)
        return sorted({r["device_id"] for r in new}), self.write_crl()

    def write_crl(self) -> str:
        rows = self.revoked()
        entries = [(int(r["cert_serial"], 16), datetime.datetime.fromisoformat(r["revoked_at"])) for r in rows]
        crl = pki.build_crl(self.issuing, entries, number=len(rows) + 1)
        path = self.path(CRL)
        keys.write_atomic(path, crl.public_bytes(serialization.Encoding.PEM))
        return path


def read_root(directory: str) -> x509.Certificate:
    """The manufacturer's root certificate from a PKI directory (no key, no passphrase):
    what `provision verify` pins."""
    return _read_cert(os.path.join(directory, "root.crt"))


def read_root_file(path: str) -> x509.Certificate:
    """A root certificate given as a file (`provision verify --root`): PEM, self-signed."""
    try:
        with open(path, "rb") as f:
            certs = x509.load_pem_x509_certificates(f.read())
    except OSError as e:
        raise AuthorityError("--root %s: cannot read (%s)" % (path, e.strerror)) from e
    except ValueError as e:
        raise AuthorityError("--root %s: not a PEM certificate (%s)" % (path, e)) from e
    if len(certs) != 1 or pki.chain_problem(certs[0], certs[0]):
        raise AuthorityError(
            "--root %s: expected the manufacturer's root certificate alone (self-signed and valid now, like "
            "root.crt of the PKI), found %d certificate%s%s"
            % (
                path,
                len(certs),
                "" if len(certs) == 1 else "s",
                ": " + pki.chain_problem(certs[0], certs[0]) if len(certs) == 1 else "",
            )
        )
    return certs[0]


def _read_identity(directory: str, name: str, passphrase: bytes | None, cert: x509.Certificate) -> pki.Identity:
    """cert (read from name.crt) with its key from name.key."""
    key = keys.read_key(os.path.join(directory, name + ".key"), passphrase)
    if pki.public_bytes(key.public_key()) != pki.public_bytes(cert.public_key()):  # type: ignore[arg-type]
        raise AuthorityError(
            "%s/%s.key does not belong to %s.crt: the key and certificate come from different CAs."
            % (directory, name, name)
        )
    return pki.Identity(key, cert)


def open_authority(directory: str, passphrase: bytes | None, at: datetime.datetime | None = None) -> Authority:
    """Open the PKI directory and check it: the issuing CA and the bundle signer chain to
    the root and are valid now, their keys match, and the service CA is a root of its own;
    AuthorityError or PassphraseError otherwise."""
    try:
        with open(os.path.join(directory, "authority.json"), encoding="utf-8") as f:
            meta = json.load(f)
        org = str(meta["org"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise AuthorityError(
            "%s: no readable authority.json; is this a PKI directory made by `wichtel provision init`? (%s)"
            % (directory, e)
        ) from e
    if meta.get("format") != FORMAT:
        raise AuthorityError(
            "%s/authority.json: format %r, expected %d. A PKI of format 1 has no service CA and no bundle signer; "
            "make a new PKI with `wichtel provision init`." % (directory, meta.get("format"), FORMAT)
        )
    root = _read_cert(os.path.join(directory, "root.crt"))
    issuing_cert = _read_cert(os.path.join(directory, "issuing.crt"))
    update_root = _read_cert(os.path.join(directory, "update-root.crt"))
    service_ca = _read_cert(os.path.join(directory, "service-ca.crt"))
    problem = pki.chain_problem(root, root, at) or pki.chain_problem(issuing_cert, root, at)
    if problem:
        which = "root.crt" if pki.chain_problem(root, root, at) else "issuing.crt"
        raise AuthorityError(
            "%s/%s cannot issue devices: it is %s. A device certificate from it would not verify; make a new "
            "issuing CA (or PKI) and run again." % (directory, which, problem)
        )
    problem = pki.chain_problem(service_ca, service_ca, at)
    if problem or pki.public_bytes(service_ca.public_key()) == pki.public_bytes(root.public_key()):  # type: ignore[arg-type]
        raise AuthorityError(
            "%s/service-ca.crt is not a service CA of its own: %s. Services must not share the devices' root."
            % (directory, problem or "it has the root's key")
        )
    signer_cert = _read_cert(os.path.join(directory, "bundle-signing.crt"))
    problem = pki.signer_problem(signer_cert, root, at)
    if problem:
        raise AuthorityError(
            "%s/bundle-signing.crt cannot sign bundles: %s. Make a new bundle signer with the root key."
            % (directory, problem)
        )
    issuing = _read_identity(directory, "issuing", passphrase, issuing_cert)
    signer = _read_identity(directory, "bundle-signing", passphrase, signer_cert)
    return Authority(directory, org, root, issuing, signer, service_ca, update_root, passphrase)


def read_rows(path: str, fields: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of a CSV register; a last line cut by a crash (no newline) is not a row."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except FileNotFoundError:
        return []
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    rows = list(csv.DictReader(io.StringIO(text)))
    if rows and tuple(rows[0].keys()) != fields:
        raise ProvisioningError("%s: expected the columns %s" % (path, ",".join(fields)))
    return rows


def append_rows(path: str, fields: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    """Append rows (header first for a new file) in one write, then fsync; a cut last line
    left by an earlier crash is removed first."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        data = b""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    if not data:
        writer.writeheader()
    for row in rows:
        writer.writerow(row)
    with open(path, "ab") as f:
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)
        f.write(out.getvalue().encode())
        f.flush()
        os.fsync(f.fileno())
