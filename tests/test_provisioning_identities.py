"""Device ids and service identities: grammars that share no string, checked where each kind
of certificate is made; random device ids that say nothing about the serial; CSR subjects
and serial files, however crafted, never put anything but the CA's own words into a
certificate. (What the broker makes of them: tests/test_provisioning_broker.py.)"""

import itertools
import os
import re
import stat
import warnings

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import profile_loader
from agent.cli import main
from provisioning import authority, enroll, identities, keys, pki, serials
from provisioning.errors import IdentityError, ProvisioningError, SerialError

PROFILE = profile_loader.example("washing_machine")
DEVICE_GRAMMAR = r"[a-z2-7]{20}"
SERVICE_GRAMMAR = r"service:[a-z][a-z0-9-]{0,30}[a-z0-9]"

_device_like = st.from_regex(r"\A%s\Z" % DEVICE_GRAMMAR)
_service_like = st.from_regex(r"\A%s\Z" % SERVICE_GRAMMAR)
_anything = st.one_of(st.text(max_size=40), _device_like, _service_like, st.sampled_from(["service", "SERVICE"]))


@pytest.fixture(scope="module")
def auth(tmp_path_factory: pytest.TempPathFactory) -> authority.Authority:
    path = str(tmp_path_factory.mktemp("pki"))
    authority.init(os.path.join(path, "pki"), "Brunnhilde", None)
    return authority.open_authority(os.path.join(path, "pki"), None)


# -- the grammars -----------------------------------------------------------------------------
@settings(max_examples=1000, deadline=None)
@given(text=_anything)
def test_no_string_is_both_a_device_id_and_a_service_identity(text: str) -> None:
    device = identities.device_id_problem(text) == ""
    service = identities.service_identity_problem(text) == ""
    assert not (device and service)
    assert device == bool(re.fullmatch(DEVICE_GRAMMAR, text))
    assert service == (bool(re.fullmatch(SERVICE_GRAMMAR, text)) and "--" not in text)


@settings(max_examples=500, deadline=None)
@given(name=st.one_of(st.text(max_size=40), st.from_regex(r"\A[a-z][a-z0-9-]{0,35}\Z"), _device_like))
def test_a_service_name_gives_a_service_identity_or_an_identity_error(name: str) -> None:
    try:
        ident = identities.service_identity(name)
    except IdentityError as e:
        assert "service name" in str(e)
        return
    assert ident == "service:" + name and identities.service_identity_problem(ident) == ""
    assert identities.device_id_problem(ident) != ""


def test_the_service_name_bounds() -> None:
    assert identities.service_identity("b" * identities.SERVICE_NAME_MAX)  # at the bound
    for bad in ("b" * (identities.SERVICE_NAME_MAX + 1), "b", "Backend", "back--end", "backend-", "1backend", ""):
        with pytest.raises(IdentityError):
            identities.service_identity(bad)


def test_device_ids_are_random_valid_and_distinct() -> None:
    ids = [identities.new_device_id() for _ in range(5000)]
    assert all(identities.device_id_problem(i) == "" for i in ids)
    assert len(set(ids)) == len(ids)
    # Every position takes every symbol: no structure (a counter, a serial) shows through.
    for position in (0, 10, 19):
        assert len({i[position] for i in ids}) == 32


def test_new_device_ids_skip_ids_in_the_register(auth: authority.Authority, monkeypatch: pytest.MonkeyPatch) -> None:
    auth.record_issued(
        [{"serial": "TAKEN1", "device_id": "a" * 20, "cert_serial": "1", "fingerprint": "f", "batch": "b",
          "issued_at": "2025-01-01T00:00:00+00:00"}]
    )  # fmt: skip
    draws = iter(["a" * 20, "b" * 20, "b" * 20, "c" * 20])
    monkeypatch.setattr(identities, "new_device_id", lambda: next(draws))
    assert auth.new_device_ids(2) == ["b" * 20, "c" * 20]


# -- the one place each kind of certificate is made ------------------------------------------
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(device_id=_anything)
def test_device_certificates_are_made_for_device_ids_only_and_by_the_issuing_ca_only(
    auth: authority.Authority, device_id: str
) -> None:
    public = auth.signer.key.public_key()  # any P-256 key will do
    if identities.device_id_problem(device_id):
        with pytest.raises(IdentityError, match="not a device id"):
            pki.device_certificate(auth.issuing, public, device_id, auth.org)
        return
    cert = pki.device_certificate(auth.issuing, public, device_id, auth.org)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == device_id
    with pytest.raises(IdentityError, match="root CA"):
        pki.device_certificate(auth.service_ca(), public, device_id, auth.org)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.one_of(_anything, st.from_regex(r"\A[a-z][a-z0-9-]{0,10}\Z")))
def test_service_certificates_are_made_for_service_names_only_and_by_the_service_ca_only(
    auth: authority.Authority, name: str
) -> None:
    public = auth.signer.key.public_key()
    service_ca = auth.service_ca()
    if identities.service_name_problem(name):
        with pytest.raises(IdentityError, match="service name"):
            pki.service_certificate(service_ca, public, name, auth.org)
        return
    cert = pki.service_certificate(service_ca, public, name, auth.org)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "service:" + name
    assert pki.chain_problem(cert, service_ca.cert) == "" and pki.chain_problem(cert, auth.issuing.cert) != ""
    with pytest.raises(IdentityError, match="not the service CA"):
        pki.service_certificate(auth.issuing, public, name, auth.org)


# -- serials: untrusted text from a file or a request ----------------------------------------
@settings(max_examples=1000, deadline=None)
@given(text=st.one_of(st.text(max_size=40), st.from_regex(r"\A[A-Za-z0-9-]{0,30}\Z")))
def test_a_serial_is_valid_exactly_when_it_is_of_the_grammar(text: str) -> None:
    s = serials.normalize(text)
    ok = bool(re.fullmatch(r"[A-Z0-9]([A-Z0-9-]*[A-Z0-9])?", s)) and "--" not in s and 4 <= len(s) <= 24
    assert (serials.problem(s) == "") == ok
    if ok:
        assert serials.valid(text) == s
    else:
        with pytest.raises(SerialError):
            serials.valid(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.one_of(st.binary(max_size=300), st.lists(st.text(max_size=30), max_size=12).map("\n".join)))
def test_a_serials_file_gives_valid_distinct_serials_or_a_serial_error(
    tmp_path_factory: pytest.TempPathFactory, content: object
) -> None:
    path = os.path.join(tmp_path_factory.mktemp("s"), "serials.txt")
    with open(path, "wb") as f:
        f.write(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))  # type: ignore[union-attr]
    try:
        got = serials.read_file(path)
    except SerialError as e:
        assert "--serials" in str(e) or "serial" in str(e)
        return
    assert got and len(set(got)) == len(got) and all(serials.problem(s) == "" for s in got)


# -- certificate requests -------------------------------------------------------------------
_OIDS = [NameOID.SERIAL_NUMBER, NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME]
_values = st.one_of(
    st.sampled_from(["SERVICE", "service", "service:backend", "WM000001", "*", "#", "+", "a/b", "SERVICE-3"]),
    st.sampled_from(["W" * 65, "\u00e9" * 33]),  # over a common name's 64 bytes, as a crafted request may be
    st.text(min_size=1, max_size=40),
)
_subjects = st.one_of(
    st.lists(st.tuples(st.sampled_from(_OIDS), _values), min_size=0, max_size=4),
    # A lone serial, as `provision csr` makes it (signed unless signed before).
    st.from_regex(r"\A[A-Za-z0-9]{2,6}(-[A-Za-z0-9]{2,6})?\Z").map(lambda v: [(NameOID.SERIAL_NUMBER, v)]),
)
_extensions = st.lists(st.sampled_from(["ca", "server", "san"]), unique=True, max_size=3)
_counter = itertools.count()


def _request(key: object, subject: list, extensions: list) -> x509.CertificateSigningRequest:
    # UTF8String for every value, as a crafted request can have it (the default PrintableString
    # would not even hold a "*").
    # Nor is a crafted request bound by the lengths cryptography's builder checks (a common
    # name of 1 to 64 bytes): its warning about a value outside them is expected here (the
    # CA, reading such a request, refuses it: enroll.serial_of).
    utf8 = x509.name._ASN1Type.UTF8String
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Attribute's length must be", UserWarning)
        name = x509.Name([x509.NameAttribute(oid, value, _type=utf8, _validate=False) for oid, value in subject])
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    if "ca" in extensions:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    if "server" in extensions:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    if "san" in extensions:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("service")]), critical=False)
    return builder.sign(key, hashes.SHA256())  # type: ignore[arg-type]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(subject=_subjects, extensions=_extensions)
def test_whatever_a_request_says_the_certificate_says_only_what_the_ca_writes(
    auth: authority.Authority, tmp_path_factory: pytest.TempPathFactory, subject: list, extensions: list
) -> None:
    prof = profile_loader.compile_json(profile_loader.load(PROFILE))
    work = str(tmp_path_factory.mktemp("csr"))
    key = pki.new_key()
    csr_path = os.path.join(work, "device.csr")
    keys.write_atomic(csr_path, _request(key, subject, extensions).public_bytes(serialization.Encoding.PEM))
    out = os.path.join(work, "signed-%d" % next(_counter))
    try:
        row = enroll.sign_request(auth, prof, csr_path, out, "mqtt.example.net", 8883)
    except ProvisioningError as e:
        # Refused: anything but a lone serialNumber of the serial grammar, or a serial signed before.
        lone_serial = len(subject) == 1 and subject[0][0] == NameOID.SERIAL_NUMBER
        assert not lone_serial or serials.problem(serials.normalize(subject[0][1])) or "already has" in str(e)
        assert not os.path.exists(out)
        return
    assert len(subject) == 1 and subject[0][0] == NameOID.SERIAL_NUMBER
    with open(os.path.join(out, "pi", "identity", "device.crt"), "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    assert [(a.oid, a.value) for a in cert.subject] == [
        (NameOID.ORGANIZATION_NAME, auth.org),
        (NameOID.COMMON_NAME, row["device_id"]),
    ]
    assert identities.device_id_problem(row["device_id"]) == "" and row["serial"] == serials.valid(subject[0][1])
    assert cert.issuer == auth.issuing.cert.subject and pki.chain_problem(cert, auth.issuing.cert) == ""
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert row["serial"].encode() not in cert.public_bytes(serialization.Encoding.DER)


def test_a_request_for_the_serial_service_asking_for_a_ca_gets_a_plain_device_certificate(
    tmp_path: "os.PathLike[str]",
) -> None:
    authority.init(os.path.join(tmp_path, "pki"), "Brunnhilde", None)
    auth = authority.open_authority(os.path.join(tmp_path, "pki"), None)
    prof = profile_loader.compile_json(profile_loader.load(PROFILE))
    csr_path = os.path.join(tmp_path, "device.csr")
    request = _request(pki.new_key(), [(NameOID.SERIAL_NUMBER, "service")], ["ca", "server", "san"])
    keys.write_atomic(csr_path, request.public_bytes(serialization.Encoding.PEM))
    row = enroll.sign_request(auth, prof, csr_path, os.path.join(tmp_path, "out"), "mqtt.example.net", 8883)
    assert row["serial"] == "SERVICE" and identities.device_id_problem(row["device_id"]) == ""
    with open(os.path.join(tmp_path, "out", "pi", "identity", "device.crt"), "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == row["device_id"]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]


def test_a_request_with_a_name_longer_than_x509_allows_is_refused_in_words(tmp_path: "os.PathLike[str]") -> None:
    authority.init(os.path.join(tmp_path, "pki"), "Brunnhilde", None)
    auth = authority.open_authority(os.path.join(tmp_path, "pki"), None)
    prof = profile_loader.compile_json(profile_loader.load(PROFILE))
    csr_path = os.path.join(tmp_path, "device.csr")
    request = _request(pki.new_key(), [(NameOID.COMMON_NAME, "W" * 65)], [])
    keys.write_atomic(csr_path, request.public_bytes(serialization.Encoding.PEM))
    out = os.path.join(tmp_path, "out")
    with pytest.raises(ProvisioningError, match=r"subject is malformed \(Attribute's length .* 65\)"):
        enroll.sign_request(auth, prof, csr_path, out, "mqtt.example.net", 8883)
    assert not os.path.exists(out)


def test_the_csr_a_device_makes_holds_its_serial_only(tmp_path: "os.PathLike[str]") -> None:
    path = enroll.make_request(str(tmp_path), " pi-000042 ")
    with open(path, "rb") as f:
        csr = x509.load_pem_x509_csr(f.read())
    assert [(a.oid, a.value) for a in csr.subject] == [(NameOID.SERIAL_NUMBER, "PI-000042")]
    assert enroll.serial_of(csr, "here") == "PI-000042"


# -- `wichtel provision service` and revoking a service -------------------------------------
def test_provision_service_issues_a_backend_certificate_from_the_service_ca(
    tmp_path: "os.PathLike[str]", capsys: pytest.CaptureFixture[str]
) -> None:
    pki_dir = os.path.join(tmp_path, "pki")
    assert main(["provision", "init", "--pki", pki_dir]) == 0
    out = os.path.join(tmp_path, "backend")
    assert main(["provision", "service", "backend", "--pki", pki_dir, "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "service:backend" in printed and "8884" in printed
    with open(os.path.join(out, "service.crt"), "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(out, "ca.pem"), "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    auth = authority.open_authority(pki_dir, None)
    assert ca == auth.service_ca_cert and pki.chain_problem(cert, ca) == ""
    assert pki.chain_problem(cert, auth.issuing.cert) != "" and pki.chain_problem(cert, auth.root) != ""
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "service:backend"
    assert stat.S_IMODE(os.stat(os.path.join(out, "service.key")).st_mode) == 0o600
    assert [r["identity"] for r in auth.services()] == ["service:backend"]
    # No second key over the first; names outside the grammar are refused before anything.
    assert main(["provision", "service", "backend", "--pki", pki_dir, "--out", out]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    for bad in ("SERVICE", "a" * 20 + ":x", "wm000001/#"):
        assert main(["provision", "service", bad, "--pki", pki_dir, "--out", os.path.join(tmp_path, "x")]) == 2
        assert "service name" in capsys.readouterr().err
    assert not os.path.exists(os.path.join(tmp_path, "x"))
    # Revoking it puts its certificate on the service CA's revocation list.
    assert main(["provision", "revoke", "--pki", pki_dir, "--service", "backend"]) == 0
    with open(os.path.join(pki_dir, authority.SERVICE_CRL), "rb") as f:
        crl = x509.load_pem_x509_crl(f.read())
    assert [r.serial_number for r in crl] == [cert.serial_number] and crl.issuer == ca.subject
    assert main(["provision", "revoke", "--pki", pki_dir, "--service", "nobody"]) == 2
    assert "no certificate was issued to the service nobody" in capsys.readouterr().err
    assert main(["provision", "revoke", "--pki", pki_dir]) == 2
    assert "DEVICE_ID or --service" in capsys.readouterr().err
