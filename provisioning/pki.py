"""Certificates for the manufacturer's PKI: root and issuing CA, broker and device
certificates, CSRs, CRLs, and the update-signing chain.

Built on `cryptography` (ECDSA P-256, SHA-256). No files here except Identity.write:
the factory workflow (provisioning/authority.py, batch.py) stores what this makes.
Tests and the demo use make_ca/issue for their small throwaway PKI.
"""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.exceptions import InvalidSignature
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


# -- the manufacturer's PKI -------------------------------------------------------------
# A root that signs only issuing CAs and stays offline; an issuing CA on the factory host
# that signs devices (and broker certificates); devices live 15+ years in the field, so
# their certificates run as long as the issuing CA that signed them.
ROOT_DAYS = 30 * 365
ISSUING_DAYS = 20 * 365
SERVER_DAYS = 825
CRL_DAYS = 30  # a broker must get a fresh CRL before this; an expired CRL refuses every device
_BACKDATE = datetime.timedelta(minutes=5)  # tolerate a little clock skew on devices and brokers

_CA_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)
_SIGN_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public: ec.EllipticCurvePublicKey,
    start: datetime.datetime,
    end: datetime.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )


def _aki(issuer: Identity) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key())


def make_root(org: str, days: int = ROOT_DAYS, common_name: str = "") -> Identity:
    """The offline root: signs issuing CAs only (path length 1)."""
    key = new_key()
    name = _name(common_name or org + " Device Root CA", org)
    start = _now() - _BACKDATE
    cert = (
        _builder(name, name, key.public_key(), start, start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .sign(key, hashes.SHA256())
    )
    return Identity(key, cert)


def make_issuing(
    root: Identity, org: str, days: int = ISSUING_DAYS, common_name: str = "", start: datetime.datetime | None = None
) -> Identity:
    """The online issuing CA: signs device and broker certificates, no further CAs."""
    key = new_key()
    start = start or _now() - _BACKDATE
    end = min(start + datetime.timedelta(days=days), root.cert.not_valid_after_utc)
    cert = (
        _builder(_name(common_name or org + " Device Issuing CA", org), root.cert.subject, key.public_key(), start, end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .add_extension(_aki(root), critical=False)
        .sign(root.key, hashes.SHA256())
    )
    return Identity(key, cert)


def device_name(device_id: str, serial: str, org: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, serial),
            x509.NameAttribute(NameOID.COMMON_NAME, device_id),
        ]
    )


def device_certificate(
    issuing: Identity, public: ec.EllipticCurvePublicKey, device_id: str, serial: str, org: str
) -> x509.Certificate:
    """A client certificate whose common name is the device id (the broker's user name)."""
    start = _now() - _BACKDATE
    return (
        _builder(
            device_name(device_id, serial, org), issuing.cert.subject, public, start, issuing.cert.not_valid_after_utc
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_SIGN_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(_aki(issuing), critical=False)
        .sign(issuing.key, hashes.SHA256())
    )


def server_certificate(issuing: Identity, names: list[str], org: str, days: int = SERVER_DAYS) -> Identity:
    """A broker's TLS certificate for the given host names and addresses."""
    key = new_key()
    start = _now() - _BACKDATE
    alt: list[x509.GeneralName] = []
    for n in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            alt.append(x509.DNSName(n))
    end = min(start + datetime.timedelta(days=days), issuing.cert.not_valid_after_utc)
    cert = (
        _builder(_name(names[0], org), issuing.cert.subject, key.public_key(), start, end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_SIGN_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(_aki(issuing), critical=False)
        .sign(issuing.key, hashes.SHA256())
    )
    return Identity(key, cert)


def make_update_chain(org: str) -> tuple[Identity, Identity]:
    """(update root, update signer): a chain of its own, so that a stolen device-issuing
    key cannot sign firmware, nor the update key devices."""
    root = make_root(org, common_name=org + " Update Root")
    key = new_key()
    start = _now() - _BACKDATE
    cert = (
        _builder(
            _name(org + " Update Signing", org),
            root.cert.subject,
            key.public_key(),
            start,
            start + datetime.timedelta(days=ISSUING_DAYS),
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_SIGN_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(_aki(root), critical=False)
        .sign(root.key, hashes.SHA256())
    )
    return root, Identity(key, cert)


def make_csr(key: ec.EllipticCurvePrivateKey, device_id: str, serial: str) -> x509.CertificateSigningRequest:
    """What a device sends to be certified; its key stays on the device. The issuing CA
    writes the final subject itself; the CSR's names only say which device asks."""
    name = x509.Name(
        [x509.NameAttribute(NameOID.SERIAL_NUMBER, serial), x509.NameAttribute(NameOID.COMMON_NAME, device_id)]
    )
    return x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())


def csr_public_key(csr: x509.CertificateSigningRequest) -> ec.EllipticCurvePublicKey:
    """The CSR's key, if the CSR is signed by it and the key is P-256; ValueError otherwise."""
    if not csr.is_signature_valid:
        raise ValueError("the CSR's signature does not verify: it was not made with the key it carries")
    public = csr.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
        raise ValueError("the CSR's key is not an ECDSA P-256 key")
    return public


def build_crl(
    issuing: Identity, revoked: list[tuple[int, datetime.datetime]], number: int, days: int = CRL_DAYS
) -> x509.CertificateRevocationList:
    """The issuing CA's list of revoked device certificates (by certificate serial)."""
    now = _now() - _BACKDATE
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuing.cert.subject)
        .last_update(now)
        .next_update(now + datetime.timedelta(days=days))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(_aki(issuing), critical=False)
    )
    for cert_serial, when in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(cert_serial).revocation_date(when).build()
        )
    return builder.sign(issuing.key, hashes.SHA256())


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
    except (ValueError, TypeError) as e:
        return "its signature does not verify with %s (%s)" % (issuer.subject.rfc4514_string(), e)
    except InvalidSignature:
        return "its signature does not verify with the key of %s" % issuer.subject.rfc4514_string()
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        return "valid only from %s to %s" % (cert.not_valid_before_utc.date(), cert.not_valid_after_utc.date())
    return ""
