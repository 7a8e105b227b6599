"""Certificates for the manufacturer's PKI: a CA, broker certificates, device identities.

Built on `cryptography` (ECDSA P-256, SHA-256). The provisioning issue adds the
factory workflow on top; tests and the demo use the same functions for their PKI.
"""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


class Identity:
    """A private key and its certificate."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self.key = key
        self.cert = cert

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def write(self, directory: str, name: str) -> tuple[str, str]:
        """Write name.crt and name.key (mode 600); returns their paths."""
        crt = os.path.join(directory, name + ".crt")
        key = os.path.join(directory, name + ".key")
        with open(crt, "wb") as f:
            f.write(self.cert_pem())
        with open(key, "wb") as f:
            f.write(self.key_pem())
        os.chmod(key, 0o600)
        return crt, key


def _name(common_name: str, org: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def make_ca(common_name: str = "Wichtel Test CA", org: str = "Wichtel", days: int = 3650) -> Identity:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name, org)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Identity(key, cert)


def issue(ca: Identity, common_name: str, *, server_names: list[str] | None = None, client: bool = False,
          days: int = 825, not_before_days: int = 0, org: str = "Wichtel") -> Identity:  # fmt: skip
    """A leaf certificate signed by ca: a server (with DNS/IP names) or a device client."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = _now() + datetime.timedelta(days=not_before_days) - datetime.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, org))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
    )
    if server_names:
        alt: list[x509.GeneralName] = []
        for n in server_names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                alt.append(x509.DNSName(n))
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return Identity(key, builder.sign(ca.key, hashes.SHA256()))
