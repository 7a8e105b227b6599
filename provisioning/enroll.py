"""The single-device flow for a Raspberry Pi: the device makes its key and a CSR naming its
serial, the factory host gives it a random device id and signs it into a bundle without a
key; the key never leaves the device.
"""

import csv
import io
import json
import os
import warnings

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from provisioning import bundle, keys, pki, serials
from provisioning.authority import Authority
from provisioning.batch import MANIFEST_FIELDS, Issuer
from provisioning.errors import BundleError, ProvisioningError, SerialError

CSR_FILE = bundle.CSR_FILE
BATCH = "csr"  # the register's batch column for devices signed one by one


def make_request(data_dir: str, serial: str) -> str:
    """On the device: a new key in DATA_DIR/identity/device.key (0600) and a CSR beside it.
    Refuses to replace a key that is already there. Returns the CSR's path."""
    serial = serials.valid(serial)
    ident = os.path.join(data_dir, "identity")
    key_path = os.path.join(ident, bundle.IDENTITY_FILES["key"])
    if os.path.exists(key_path):
        raise ProvisioningError(
            "%s exists: this device already has a key. Remove it only if the device is to get a new identity."
            % key_path
        )
    os.makedirs(ident, mode=0o700, exist_ok=True)
    key = pki.new_key()
    keys.write_key(key_path, key)
    csr = pki.make_csr(key, serial)
    path = os.path.join(ident, CSR_FILE)
    keys.write_atomic(path, csr.public_bytes(serialization.Encoding.PEM))
    return path


def serial_of(csr: x509.CertificateSigningRequest, where: str) -> str:
    """The serial a request names. Its subject must be one serialNumber attribute and
    nothing else (what `wichtel provision csr` makes): the request says which device asks,
    never what the certificate will say."""
    with warnings.catch_warnings(record=True) as said:
        # cryptography warns, and goes on, on an attribute outside X.509's lengths (a common
        # name over 64 bytes): a request no `provision csr` makes, refused in words.
        warnings.simplefilter("always")
        attributes = list(csr.subject)
    if said:
        raise SerialError("%s: the request's subject is malformed (%s). Nothing was signed." % (where, said[0].message))
    if len(attributes) != 1 or attributes[0].oid != NameOID.SERIAL_NUMBER:
        shown = ", ".join(a.oid._name for a in attributes[:5]) or "nothing"
        raise SerialError(
            "%s: the request's subject must be the serial number alone (made by `wichtel provision csr`), it holds "
            "%s. Nothing was signed." % (where, shown)
        )
    return serials.valid(str(attributes[0].value))


def sign_request(auth: Authority, profile_json: bytes, csr_path: str, out: str, host: str, port: int) -> dict[str, str]:
    """On the factory host: certify the CSR's key for a new random device id, and write
    OUT/pi (no key), OUT/label.json and OUT/manifest.csv. Returns the manifest row. The CA
    writes the certificate's subject and extensions itself; none is taken from the request."""
    try:
        with open(csr_path, "rb") as f:
            csr = x509.load_pem_x509_csr(f.read())
        public = pki.csr_public_key(csr)
    except OSError as e:
        raise ProvisioningError("--csr %s: cannot read (%s)" % (csr_path, e.strerror)) from e
    except ValueError as e:
        raise ProvisioningError("--csr %s: not a usable certificate request: %s" % (csr_path, e)) from e
    serial = serial_of(csr, "--csr %s" % csr_path)
    issued = auth.issued()
    if serial in issued:
        raise SerialError(
            "serial %s already has a certificate (batch %s, %s): a serial belongs to one device. Revoke the old "
            "one first if this device really needs a new identity."
            % (serial, issued[serial]["batch"], issued[serial]["issued_at"])
        )
    if os.path.exists(out):
        raise ProvisioningError("--out %s exists: refusing to overwrite another device's bundle" % out)
    issuer = Issuer.of(auth)
    device_id = auth.new_device_ids(1)[0]
    dev = issuer.make(serial, device_id, public)
    fleet = auth.fleet(profile_json, host, port, BATCH)
    tmp = out.rstrip("/") + ".tmp"
    bundle.remove(tmp)
    label_ref = "%s-%s" % (BATCH, device_id)
    try:
        bundle.write_device(tmp, fleet, dev, label_ref, issuer.signer, layouts=(bundle.PI,))
        bundle.verify(os.path.join(tmp, bundle.PI), auth.root, public_key=public, key_optional=True)
        cert = dev.cert()
        row = {
            "serial": serial,
            "device_id": device_id,
            "cert_fingerprint": pki.fingerprint(cert),
            "cert_serial": "%x" % cert.serial_number,
            "label_ref": label_ref,
        }
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerow(row)
        keys.write_atomic(os.path.join(tmp, "manifest.csv"), text.getvalue().encode())
        os.rename(tmp, out)
    except BaseException:
        bundle.remove(tmp)
        raise
    auth.record_issued(
        [
            {
                "serial": serial,
                "device_id": device_id,
                "cert_serial": row["cert_serial"],
                "fingerprint": row["cert_fingerprint"],
                "batch": BATCH,
                "issued_at": pki._now().isoformat(timespec="seconds"),
            }
        ]
    )
    return row


def install(signed: str, data_dir: str) -> list[str]:
    """On the device: check that the signed bundle is whole and certifies the key made
    here, copy its pi/ files into the data directory beside the key, then verify the
    whole. Returns the files installed."""
    src = os.path.join(signed, bundle.PI)
    if not os.path.isdir(src):
        raise BundleError("%s: no %s/ directory; expected the output of `wichtel provision sign`" % (signed, bundle.PI))
    key_path = os.path.join(data_dir, "identity", bundle.IDENTITY_FILES["key"])
    key = keys.read_key(key_path, None)
    bundle.verify(src, bundle.own_root(src), public_key=key.public_key(), key_optional=True)
    copied = []
    for base, _, names in os.walk(src):
        for name in names:
            rel = os.path.relpath(os.path.join(base, name), src)
            dest = os.path.join(data_dir, rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(os.path.join(base, name), "rb") as f:
                keys.write_atomic(dest, f.read(), os.stat(os.path.join(base, name)).st_mode & 0o777)
            copied.append(rel)
    bundle.verify(data_dir, bundle.own_root(data_dir), in_use=True)
    return sorted(copied)


def read_label(out: str) -> dict[str, str]:
    with open(os.path.join(out, bundle.LABEL_FILE), encoding="utf-8") as f:
        return {k: str(v) for k, v in json.load(f).items()}
