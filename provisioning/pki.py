"""Certificates for the manufacturer's PKI: root and issuing CA, broker, device and service
certificates, CSRs, CRLs, the bundle signer and the update-signing chain.

Built on `cryptography` (ECDSA P-256, SHA-256). No files here except Identity.write:
the factory workflow (provisioning/authority.py, batch.py) stores what this makes.
Tests and the demo use make_ca/issue for their small throwaway PKI.
"""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The checks a device makes of certificates live on its side; re-exported for the factory.
from agent.bundle import (
    chain_problem as chain_problem,
)
from agent.bundle import (
    fingerprint as fingerprint,
)
from agent.bundle import (
    public_bytes as public_bytes,
)
from agent.bundle import (
    signature_problem as signature_problem,
)
from agent.bundle import (
    signer_problem as signer_problem,
)
from provisioning import identities
from provisioning.errors import IdentityError


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
# A root that signs the issuing CA and the bundle signer, then stays offline; an issuing CA
# on the factory host that signs devices (and the device listener's certificate); devices
# live 15+ years in the field, so their certificates run as long as the issuing CA that
# signed them. Services (the operator's backends) have a CA of their own, a separate root:
# no device chain reaches it, and the broker's service listener trusts nothing else.
ROOT_DAYS = 30 * 365
ISSUING_DAYS = 20 * 365
SERVER_DAYS = 825
SERVICE_DAYS = 825  # a backend's certificate is renewed like a server's; revocation ends it sooner
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


def _is_root(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


def device_certificate(
    issuing: Identity, public: ec.EllipticCurvePublicKey, device_id: str, org: str
) -> x509.Certificate:
    """A client certificate whose common name is the device id (the broker's user name).
    The one place device certificates are made: the id must be of the device grammar
    (provisioning/identities.py), and the CA must be an issuing CA, never a root (the
    service CA is one), so nothing a device holds can be a service's."""
    identities.check_device_id(device_id, "device certificate")
    if _is_root(issuing.cert):
        raise IdentityError(
            "device certificate: %s is a root CA; devices are certified by the issuing CA only"
            % issuing.cert.subject.rfc4514_string()
        )
    start = _now() - _BACKDATE
    return (
        _builder(_name(device_id, org), issuing.cert.subject, public, start, issuing.cert.not_valid_after_utc)
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


def make_service_ca(org: str, days: int = ISSUING_DAYS) -> Identity:
    """The services' CA: a root of its own that signs service certificates and the service
    listener's certificate only (path length 0)."""
    key = new_key()
    name = _name(org + " Service CA", org)
    start = _now() - _BACKDATE
    cert = (
        _builder(name, name, key.public_key(), start, start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .sign(key, hashes.SHA256())
    )
    return Identity(key, cert)


def service_certificate(
    service_ca: Identity, public: ec.EllipticCurvePublicKey, name: str, org: str, days: int = SERVICE_DAYS
) -> x509.Certificate:
    """A backend's client certificate, common name "service:NAME". The one place service
    certificates are made: the name must be of the service grammar and the CA a root (the
    service CA), never the issuing CA whose chain devices carry."""
    common_name = identities.service_identity(name)
    if not _is_root(service_ca.cert):
        raise IdentityError(
            "service certificate: %s is not the service CA (a root of its own); services are never certified "
            "by the devices' issuing CA" % service_ca.cert.subject.rfc4514_string()
        )
    start = _now() - _BACKDATE
    end = min(start + datetime.timedelta(days=days), service_ca.cert.not_valid_after_utc)
    return (
        _builder(_name(common_name, org), service_ca.cert.subject, public, start, end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_SIGN_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(_aki(service_ca), critical=False)
        .sign(service_ca.key, hashes.SHA256())
    )


def make_bundle_signer(root: Identity, org: str, days: int = ISSUING_DAYS) -> Identity:
    """The key that signs every bundle's file list, certified directly by the root with EKU
    codeSigning: nothing else under the device root has that usage, and a stolen issuing
    key cannot make a signer (verify wants one issued by the root itself)."""
    key = new_key()
    start = _now() - _BACKDATE
    end = min(start + datetime.timedelta(days=days), root.cert.not_valid_after_utc)
    cert = (
        _builder(_name(org + " Bundle Signing", org), root.cert.subject, key.public_key(), start, end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_SIGN_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(_aki(root), critical=False)
        .sign(root.key, hashes.SHA256())
    )
    return Identity(key, cert)


def sign(signer: Identity, data: bytes) -> bytes:
    """ECDSA P-256 / SHA-256 signature (DER) of data."""
    return signer.key.sign(data, ec.ECDSA(hashes.SHA256()))


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


def make_csr(key: ec.EllipticCurvePrivateKey, serial: str) -> x509.CertificateSigningRequest:
    """What a device sends to be certified; its key stays on the device. The subject holds
    only the serial, to say which device asks: the issuing CA gives the device a random id
    and writes the whole subject itself."""
    name = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, serial)])
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
