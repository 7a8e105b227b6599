"""The manufacturer's PKI directory: made once by `provision init`, opened (and checked) by
every other command; it also keeps the register of issued and revoked device certificates.

Layout (docs/manufacturing.md): root.crt/.key (move the key offline after init),
issuing.crt/.key, chain.pem, update-root.crt/.key, update-signing.crt/.key,
authority.json, issued.csv, revoked.csv, crl.pem.
"""

import csv
import datetime
import io
import json
import os

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from provisioning import bundle, keys, pki
from provisioning.errors import AuthorityError, ProvisioningError

FORMAT = 1
ISSUED = "issued.csv"
ISSUED_FIELDS = ("serial", "device_id", "cert_serial", "fingerprint", "batch", "issued_at")
REVOKED = "revoked.csv"
REVOKED_FIELDS = ("cert_serial", "device_id", "revoked_at")
CRL = "crl.pem"
KEY_FILES = ("root.key", "issuing.key", "update-root.key", "update-signing.key")


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
    """Make the root, issuing and update-signing chains in directory; returns the files written."""
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
    update_root, update_signer = pki.make_update_chain(org)
    written = []
    for name, ident in (
        ("root", root),
        ("issuing", issuing),
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
    }
    keys.write_atomic(os.path.join(directory, "authority.json"), json.dumps(meta, indent=1).encode() + b"\n")
    written += ["chain.pem", "authority.json"]
    return written


class Authority:
    """An opened PKI directory whose issuing CA was checked against its root."""

    def __init__(
        self, directory: str, org: str, root: x509.Certificate, issuing: pki.Identity, update_root: x509.Certificate
    ) -> None:
        self.dir = directory
        self.org = org
        self.root = root
        self.issuing = issuing
        self.update_root = update_root

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
            raise ProvisioningError(
                "revoke: no certificate was issued to %s by %s (see issued.csv); nothing was revoked."
                % (", ".join(unknown), self.dir)
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


def open_authority(directory: str, passphrase: bytes | None, at: datetime.datetime | None = None) -> Authority:
    """Open the PKI directory and check it: the issuing CA chains to the root, is valid now
    and its key matches; AuthorityError or PassphraseError otherwise."""
    try:
        with open(os.path.join(directory, "authority.json"), encoding="utf-8") as f:
            meta = json.load(f)
        org = str(meta["org"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise AuthorityError(
            "%s: no readable authority.json; is this a PKI directory made by `wichtel provision init`? (%s)"
            % (directory, e)
        ) from e
    root = _read_cert(os.path.join(directory, "root.crt"))
    issuing_cert = _read_cert(os.path.join(directory, "issuing.crt"))
    update_root = _read_cert(os.path.join(directory, "update-root.crt"))
    problem = pki.chain_problem(root, root, at) or pki.chain_problem(issuing_cert, root, at)
    if problem:
        which = "root.crt" if pki.chain_problem(root, root, at) else "issuing.crt"
        raise AuthorityError(
            "%s/%s cannot issue devices: it is %s. A device certificate from it would not verify; make a new "
            "issuing CA (or PKI) and run again." % (directory, which, problem)
        )
    key = keys.read_key(os.path.join(directory, "issuing.key"), passphrase)
    if pki.public_bytes(key.public_key()) != pki.public_bytes(issuing_cert.public_key()):  # type: ignore[arg-type]
        raise AuthorityError(
            "%s/issuing.key does not belong to issuing.crt: the key and certificate come from different CAs."
            % directory
        )
    return Authority(directory, org, root, pki.Identity(key, issuing_cert), update_root)


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
