"""`wichtel provision verify` against the manufacturer's pinned root: every attack on a
bundle fails with a message naming the file, and nothing but BundleError comes out of
hostile bundle bytes."""

import base64
import json
import os
import shutil

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agent import profile_loader, setup_code
from agent.cli import main
from provisioning import authority, batch, bundle, keys, pki, serials
from provisioning.errors import BundleError

PROFILE = profile_loader.example("washing_machine")


class Factory:
    """Two manufacturers' PKIs and a batch of two devices from each, made once: the tests
    copy a device and attack the copy."""

    def __init__(self, tmp: str) -> None:
        self.tmp = tmp
        self.prof = profile_loader.compile_json(profile_loader.load(PROFILE))
        self.pkis = {}
        self.batches = {}
        for name, org in (("real", "Brunnhilde"), ("forger", "Brunnhilde")):  # the forger copies the maker's name
            path = os.path.join(tmp, name + "-pki")
            authority.init(path, org, None)
            auth = authority.open_authority(path, None)
            out = os.path.join(tmp, name + "-batch")
            wanted = serials.counted("WM", 1, 2)
            batch.run(auth, self.prof, wanted, out, "mqtt.example.net", 8883, iterations=setup_code.MIN_ITERATIONS)
            self.pkis[name] = path
            self.batches[name] = out

    def device(self, which: str, serial: str) -> str:
        out = self.batches[which]
        with open(os.path.join(out, batch.BATCH_FILE)) as f:
            device_id = json.load(f)["device_ids"][serial]
        return os.path.join(out, batch.DEVICES, device_id)

    def copy(self, dest: str, which: str = "real", serial: str = "WM000001") -> str:
        """A copy of a device directory (both layouts), to attack."""
        shutil.copytree(self.device(which, serial), dest)
        return dest


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory) -> Factory:
    return Factory(str(tmp_path_factory.mktemp("factory")))


def verify(capsys: pytest.CaptureFixture[str], factory: Factory, path: str, *anchor: str) -> tuple[int, str, str]:
    code = main(["provision", "verify", *(anchor or ("--pki", factory.pkis["real"])), path])
    out, err = capsys.readouterr()
    return code, out, err


def refused(result: tuple[int, str, str], *words: str) -> None:
    code, _, err = result
    assert code == 2, err
    assert err.startswith("wichtel: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def edit_json(path: str, change: object) -> None:
    with open(path) as f:
        doc = json.load(f)
    change(doc)  # type: ignore[operator]
    with open(path, "w") as f:
        json.dump(doc, f)


def test_a_bundle_as_made_verifies_against_the_pinned_root_both_ways(
    factory: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    dev = factory.device("real", "WM000001")
    code, out, err = verify(capsys, factory, dev)  # a device directory: both layouts
    assert code == 0, err
    assert out.count("valid pi bundle") + out.count("valid mpy bundle") == 2
    root = os.path.join(factory.pkis["real"], "root.crt")
    code, out, err = verify(capsys, factory, os.path.join(dev, "mpy"), "--root", root)
    assert code == 0 and "valid mpy bundle" in out, err


def test_verify_never_takes_the_root_from_the_bundle(
    factory: Factory, capsys: pytest.CaptureFixture[str], tmp_path: "os.PathLike[str]", monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WICHTEL_PKI", raising=False)
    dev = os.path.join(factory.device("real", "WM000001"), "pi")
    code = main(["provision", "verify", dev])  # no --pki, no --root, and no ./pki
    refused((code, *capsys.readouterr()), "--pki DIR", "--root FILE", "anyone can make one")
    # The root must be a root: an issuing CA, or a file of two certificates, is not one.
    for bad in ("issuing.crt", "chain.pem"):
        refused(verify(capsys, factory, dev, "--root", os.path.join(factory.pkis["real"], bad)), "--root", "root")


def test_an_edited_profile_is_named(factory: Factory, capsys: pytest.CaptureFixture[str], tmp_path: str) -> None:
    dev = factory.copy(os.path.join(tmp_path, "dev"))

    def keep_longer(doc: dict) -> None:
        doc["data_categories"][1]["retention_days"] = 365  # still a valid profile: only the hash can tell

    for layout in ("pi", "mpy"):
        edit_json(os.path.join(dev, layout, "profile.json"), keep_longer)
        refused(verify(capsys, factory, os.path.join(dev, layout)), "changed file profile.json")


def test_a_changed_broker_host_is_named(factory: Factory, capsys: pytest.CaptureFixture[str], tmp_path: str) -> None:
    dev = factory.copy(os.path.join(tmp_path, "dev"))
    for layout in ("pi", "mpy"):
        edit_json(os.path.join(dev, layout, "bundle.json"), lambda d: d["broker"].update(host="mqtt.attacker.example"))
        refused(verify(capsys, factory, os.path.join(dev, layout)), "bundle.json", "changed after it was signed")


def test_a_forged_bundle_with_its_own_root_is_refused(
    factory: Factory, capsys: pytest.CaptureFixture[str], tmp_path: str
) -> None:
    # Made by another PKI with the same maker name: whole, signed, valid under its own root.
    forged = os.path.join(factory.device("forger", "WM000001"), "pi")
    assert bundle.verify(forged, bundle.own_root(forged))["device_id"]
    refused(verify(capsys, factory, forged), "bundle.sig", "did not certify", "not made with this manufacturer")
    # Its files under the real signature: the signature holds, the hashes do not.
    hybrid = factory.copy(os.path.join(tmp_path, "hybrid"))
    for name in ("profile.json", "identity/ca.pem", "identity/device.crt", "identity/device.key"):
        shutil.copy(os.path.join(forged, name), os.path.join(hybrid, "pi", name))
    refused(verify(capsys, factory, os.path.join(hybrid, "pi")), "changed file identity/ca.pem")
    # The real bundle.sig beside the forger's bundle.json: the signature does not verify.
    mixed = os.path.join(tmp_path, "mixed")
    shutil.copytree(forged, mixed)
    shutil.copy(os.path.join(factory.device("real", "WM000001"), "pi", "bundle.sig"), os.path.join(mixed, "bundle.sig"))
    refused(verify(capsys, factory, mixed), "changed after it was signed")


def test_a_signer_made_with_a_stolen_issuing_key_is_refused(
    factory: Factory, capsys: pytest.CaptureFixture[str], tmp_path: str
) -> None:
    """The issuing CA signs device certificates; it cannot make a bundle signer: verify wants
    one certified by the root itself, with codeSigning."""
    auth = authority.open_authority(factory.pkis["real"], None)
    key = pki.new_key()
    rogue = pki.Identity(key, pki.device_certificate(auth.issuing, key.public_key(), "a" * 20, auth.org))
    dev = factory.copy(os.path.join(tmp_path, "dev"))
    path = os.path.join(dev, "pi")
    edit_json(os.path.join(path, "bundle.json"), lambda d: d["broker"].update(host="mqtt.attacker.example"))
    with open(os.path.join(path, "bundle.json"), "rb") as f:
        descriptor = f.read()
    with open(os.path.join(path, "bundle.sig"), "wb") as f:
        f.write(bundle.signature_file(rogue, descriptor))
    refused(verify(capsys, factory, path), "bundle.sig", "did not certify", "issued by")
    # Nor is a bundle signer of another root (here the update root's signer, EKU codeSigning).
    update = keys.read_key(os.path.join(factory.pkis["real"], "update-signing.key"), None)
    with open(os.path.join(factory.pkis["real"], "update-signing.crt"), "rb") as f:
        update_cert = x509.load_pem_x509_certificate(f.read())
    assert update_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CODE_SIGNING]
    )
    with open(os.path.join(path, "bundle.sig"), "wb") as f:
        f.write(bundle.signature_file(pki.Identity(update, update_cert), descriptor))
    refused(verify(capsys, factory, path), "bundle.sig", "did not certify")


def test_an_added_file_is_named(factory: Factory, capsys: pytest.CaptureFixture[str], tmp_path: str) -> None:
    dev = factory.copy(os.path.join(tmp_path, "dev"))
    with open(os.path.join(dev, "pi", "identity", "wifi.json"), "w") as f:
        f.write('{"ssid": "evil"}')
    with open(os.path.join(dev, "mpy", "main.py"), "w") as f:
        f.write("import os\n")
    refused(verify(capsys, factory, os.path.join(dev, "pi")), "added file identity/wifi.json")
    refused(verify(capsys, factory, os.path.join(dev, "mpy")), "added file main.py")


def test_a_removed_file_is_named(factory: Factory, capsys: pytest.CaptureFixture[str], tmp_path: str) -> None:
    dev = factory.copy(os.path.join(tmp_path, "dev"))
    os.remove(os.path.join(dev, "pi", "identity", "update-root.pem"))
    os.remove(os.path.join(dev, "mpy", "permanent.json"))
    refused(verify(capsys, factory, os.path.join(dev, "pi")), "removed file identity/update-root.pem")
    refused(verify(capsys, factory, os.path.join(dev, "mpy")), "removed file permanent.json")
    os.remove(os.path.join(dev, "mpy", "bundle.sig"))
    refused(verify(capsys, factory, os.path.join(dev, "mpy")), "bundle.sig", "cannot read")


def test_a_certificate_swapped_from_another_device_is_named(
    factory: Factory, capsys: pytest.CaptureFixture[str], tmp_path: str
) -> None:
    dev = factory.copy(os.path.join(tmp_path, "dev"))
    other = factory.device("real", "WM000002")
    shutil.copy(os.path.join(other, "pi", "identity", "device.crt"), os.path.join(dev, "pi", "identity", "device.crt"))
    refused(verify(capsys, factory, os.path.join(dev, "pi")), "changed file identity/device.crt")
    # Certificate and key together: both named.
    shutil.copy(os.path.join(other, "mpy", "device.crt"), os.path.join(dev, "mpy", "device.crt"))
    shutil.copy(os.path.join(other, "mpy", "device.key"), os.path.join(dev, "mpy", "device.key"))
    refused(verify(capsys, factory, os.path.join(dev, "mpy")), "2 files differ", "device.crt", "device.key")


def test_a_link_in_a_bundle_is_refused(factory: Factory, capsys: pytest.CaptureFixture[str], tmp_path: str) -> None:
    dev = factory.copy(os.path.join(tmp_path, "dev"))
    real = os.path.join(dev, "pi", "profile.json")
    os.rename(real, real + ".moved")
    os.symlink(real + ".moved", real)  # the same bytes, through a link
    refused(verify(capsys, factory, os.path.join(dev, "pi")), "profile.json", "not a regular file")


def test_a_device_in_use_is_checked_for_its_bundle_files_only(
    factory: Factory, tmp_path: "os.PathLike[str]", capsys: pytest.CaptureFixture[str]
) -> None:
    """`wichtel run --bundle`: the agent's own files beside the bundle are allowed, a changed
    bundle file is not."""
    dev = factory.copy(os.path.join(tmp_path, "dev"))
    pi = os.path.join(dev, "pi")
    with open(os.path.join(pi, "state.json"), "w") as f:
        f.write("{}")
    assert bundle.for_run(pi)["device_id"] == os.path.basename(factory.device("real", "WM000001"))
    edit_json(os.path.join(pi, "profile.json"), lambda d: d["uplink"].update(host="mqtt.attacker.example"))
    code = main(["run", "--bundle", pi, "--simulate", "--hours", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "changed file profile.json" in err, err


# -- hostile bytes --------------------------------------------------------------------------
_mutations = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.integers(0, 255)),
)


def _mutate(data: bytes, how: tuple[str, int, int]) -> bytes:
    kind, where, value = how
    i = where % (len(data) + 1)
    if kind == "flip" and i < len(data):
        return data[:i] + bytes([data[i] ^ value]) + data[i + 1 :]
    if kind == "cut":
        return data[:i]
    return data[:i] + bytes([value]) + data[i:]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["bundle.json", "bundle.sig"]), how=st.lists(_mutations, min_size=1, max_size=3))
# Found by this test: a flipped bit in the signer's issuer name, which cryptography parses
# only when it is read, escaped as ValueError from the middle of the chain check.
@example(name="bundle.sig", how=[("flip", 1302, 1)])
def test_any_change_to_the_signed_files_fails_with_a_bundle_error(
    factory: Factory, tmp_path_factory: pytest.TempPathFactory, name: str, how: list
) -> None:
    pi = os.path.join(factory.device("real", "WM000001"), "pi")
    work = os.path.join(tmp_path_factory.mktemp("m"), "pi")
    shutil.copytree(pi, work)
    with open(os.path.join(work, name), "rb") as f:
        data = f.read()
    changed = data
    for step in how:
        changed = _mutate(changed, step)
    with open(os.path.join(work, name), "wb") as f:
        f.write(changed)
    root = authority.read_root(factory.pkis["real"])
    if changed == data or (name == "bundle.sig" and _same_signature(changed, data)):
        assert bundle.verify(work, root)
        return
    with pytest.raises(BundleError):
        bundle.verify(work, root)


_PI_FILES = sorted(
    ["bundle.json", "bundle.sig", "profile.json"]
    + ["identity/" + n for n in (*bundle.IDENTITY_FILES.values(), bundle.PERMANENT)]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(_PI_FILES), how=st.lists(_mutations, min_size=1, max_size=3))
def test_a_device_starting_from_a_damaged_bundle_gets_a_bundle_error(
    factory: Factory, tmp_path_factory: pytest.TempPathFactory, name: str, how: list
) -> None:
    """`wichtel run --bundle` checks against the bundle's own root: any damage to any file is
    a BundleError (one paragraph on the command line), never a traceback."""
    work = os.path.join(tmp_path_factory.mktemp("r"), "pi")
    shutil.copytree(os.path.join(factory.device("real", "WM000001"), "pi"), work)
    with open(os.path.join(work, name), "rb") as f:
        data = f.read()
    changed = data
    for step in how:
        changed = _mutate(changed, step)
    with open(os.path.join(work, name), "wb") as f:
        f.write(changed)
    if changed == data or (name == "bundle.sig" and _same_signature(changed, data)):
        assert bundle.for_run(work)
        return
    with pytest.raises(BundleError):
        bundle.for_run(work)


def _meaning(sig_file: bytes) -> tuple:
    doc = json.loads(sig_file)
    signer = x509.load_pem_x509_certificate(doc["signer"].encode()).public_bytes(serialization.Encoding.DER)
    rest = {k: v for k, v in doc.items() if k not in ("signer", "signature")}
    return rest, signer, base64.b64decode(doc["signature"], validate=True)


def _same_signature(changed: bytes, data: bytes) -> bool:
    """A change of bundle.sig that says the same (JSON or PEM whitespace) is no change."""
    try:
        return _meaning(changed) == _meaning(data)
    except (ValueError, TypeError, AttributeError, KeyError):
        return False


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["format", "algorithm", "signed", "signer", "signature"]), value=_json_values)
def test_any_value_in_the_signature_file_fails_with_a_bundle_error(
    factory: Factory, tmp_path_factory: pytest.TempPathFactory, field: str, value: object
) -> None:
    pi = os.path.join(factory.device("real", "WM000001"), "pi")
    work = os.path.join(tmp_path_factory.mktemp("s"), "pi")
    shutil.copytree(pi, work)
    path = os.path.join(work, "bundle.sig")
    with open(path) as f:
        doc = json.load(f)
    if doc[field] == value:
        return
    doc[field] = value
    with open(path, "w") as f:
        json.dump(doc, f)
    with pytest.raises(BundleError):
        bundle.verify(work, authority.read_root(factory.pkis["real"]))


def test_deeply_nested_signature_json_is_a_bundle_error(factory: Factory, tmp_path: "os.PathLike[str]") -> None:
    work = os.path.join(tmp_path, "pi")
    shutil.copytree(os.path.join(factory.device("real", "WM000001"), "pi"), work)
    with open(os.path.join(work, "bundle.sig"), "w") as f:
        f.write("[" * (bundle.MAX_SIGNATURE_BYTES - 1))
    with pytest.raises(BundleError, match=r"bundle\.sig"):
        bundle.verify(work, authority.read_root(factory.pkis["real"]))


def test_the_size_bounds_of_a_bundle(factory: Factory, tmp_path: "os.PathLike[str]") -> None:
    work = os.path.join(tmp_path, "pi")
    shutil.copytree(os.path.join(factory.device("real", "WM000001"), "pi"), work)
    root = authority.read_root(factory.pkis["real"])
    sig = os.path.join(work, "bundle.sig")
    with open(sig, "rb") as f:
        real = f.read().rstrip()
    with open(sig, "wb") as f:
        f.write(real + b" " * (bundle.MAX_SIGNATURE_BYTES - len(real)))  # at the bound: JSON whitespace
    assert bundle.verify(work, root)
    with open(sig, "ab") as f:
        f.write(b" ")  # one byte over
    with pytest.raises(BundleError, match="no file of a bundle has more than %d" % bundle.MAX_SIGNATURE_BYTES):
        bundle.verify(work, root)
    with open(sig, "wb") as f:
        f.write(real)
    with open(os.path.join(work, "profile.json"), "ab") as f:
        f.truncate(bundle.MAX_FILE_BYTES + 1)
    with pytest.raises(BundleError, match="profile.json: %d bytes" % (bundle.MAX_FILE_BYTES + 1)):
        bundle.verify(work, root)
    os.remove(os.path.join(work, "profile.json"))
    present = sum(len(names) for _, _, names in os.walk(work))
    for i in range(bundle.MAX_FILES - present):  # at the bound: each added file is named
        open(os.path.join(work, "extra-%03d" % i), "w").close()
    with pytest.raises(BundleError, match=r"removed file profile\.json; added file extra-000"):
        bundle.verify(work, root)
    open(os.path.join(work, "one-more"), "w").close()
    with pytest.raises(BundleError, match="more than %d files" % bundle.MAX_FILES):
        bundle.verify(work, root)


def test_the_pinned_root_file_of_another_manufacturer_refuses_the_real_bundle(
    factory: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    dev = os.path.join(factory.device("real", "WM000002"), "pi")
    other_root = os.path.join(factory.pkis["forger"], "root.crt")
    refused(verify(capsys, factory, dev, "--root", other_root), "did not certify")
