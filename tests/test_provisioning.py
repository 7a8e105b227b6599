"""Provisioning: PKI, batches, bundles, resume, the CSR flow, revocation, flashing, and
every bad input the factory can give (exit 2, one paragraph, no half-written device)."""

import csv
import datetime
import json
import os
import stat
import subprocess
import sys
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent import profile_loader, setup_code
from agent.cli import main
from agent.device_data import DeviceData
from provisioning import authority, batch, bundle, firmware_build, flash, identities, keys, pki, progress, serials

PROFILE = profile_loader.example("washing_machine")
PASS_ENV = "WICHTEL_TEST_PASSPHRASE"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def pki_dir(tmp_path: "os.PathLike[str]", capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(PASS_ENV, "correct horse battery")
    path = os.path.join(tmp_path, "pki")
    code, _, err = cli(capsys, "provision", "init", "--pki", path, "--org", "Brunnhilde", "--passphrase-env", PASS_ENV)
    assert code == 0, err
    return path


def batch_args(pki_dir: str, out: str, *more: str) -> list[str]:
    return [
        "provision",
        "batch",
        "--pki",
        pki_dir,
        "--profile",
        PROFILE,
        "--out",
        out,
        "--passphrase-env",
        PASS_ENV,
        "--jobs",
        "1",
        *more,
    ]


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def read_text(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def rows(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def tree(path: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(b, n), path) for b, _, names in os.walk(path) for n in names)


def device_ids(out: str) -> dict[str, str]:
    """serial -> device id, from a batch's manifest (the manufacturer's register of it)."""
    return {r["serial"]: r["device_id"] for r in rows(os.path.join(out, batch.MANIFEST))}


def device_dir(out: str, serial: str) -> str:
    return os.path.join(out, batch.DEVICES, device_ids(out)[serial])


# -- the PKI --------------------------------------------------------------------------------
def test_init_makes_a_root_an_issuing_ca_a_signer_a_service_ca_and_an_update_chain_with_encrypted_0600_keys(
    pki_dir: str,
) -> None:
    for name in authority.KEY_FILES:
        path = os.path.join(pki_dir, name)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert keys.is_encrypted(path)
    auth = authority.open_authority(pki_dir, b"correct horse battery")
    root_bc = auth.root.extensions.get_extension_for_class(x509.BasicConstraints)
    iss_bc = auth.issuing.cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert root_bc.critical and root_bc.value.ca and root_bc.value.path_length == 1
    assert iss_bc.critical and iss_bc.value.ca and iss_bc.value.path_length == 0
    for cert in (auth.root, auth.issuing.cert):
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    assert auth.issuing.cert.not_valid_after_utc <= auth.root.not_valid_after_utc
    assert auth.update_root != auth.root  # a stolen issuing key cannot sign firmware
    signer = x509.load_pem_x509_certificate(read_bytes(os.path.join(pki_dir, "update-signing.crt")))
    assert signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CODE_SIGNING]
    )
    assert pki.chain_problem(signer, auth.update_root) == ""
    # The bundle signer: a leaf of the root itself, codeSigning only.
    assert pki.signer_problem(auth.signer.cert, auth.root) == ""
    assert pki.signer_problem(auth.signer.cert, auth.update_root) != ""
    # The service CA: a root of its own, neither the device root nor under it.
    service_ca = auth.service_ca_cert
    assert service_ca.issuer == service_ca.subject and service_ca.subject != auth.root.subject
    assert pki.chain_problem(service_ca, auth.root) != "" and pki.chain_problem(auth.issuing.cert, service_ca) != ""
    assert service_ca.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    assert auth.service_ca().cert == service_ca  # its key opens with the same passphrase


def test_init_refuses_to_overwrite_a_pki(pki_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    before = read_bytes(os.path.join(pki_dir, "issuing.key"))
    code, _, err = cli(capsys, "provision", "init", "--pki", pki_dir, "--org", "X")
    assert code == 2 and "refusing to overwrite" in err
    assert read_bytes(os.path.join(pki_dir, "issuing.key")) == before


def test_init_without_passphrase_writes_plain_0600_keys_and_says_so(
    tmp_path: "os.PathLike[str]", capsys: pytest.CaptureFixture[str]
) -> None:
    path = os.path.join(tmp_path, "pki")
    code, out, _ = cli(capsys, "provision", "init", "--pki", path, "--org", "Brunnhilde")
    assert code == 0 and "NOT encrypted" in out
    assert not keys.is_encrypted(os.path.join(path, "issuing.key"))
    assert stat.S_IMODE(os.stat(os.path.join(path, "issuing.key")).st_mode) == 0o600


def test_serials_are_validated_and_normalized() -> None:
    assert serials.valid(" wm8-000123 ") == "WM8-000123"
    for bad in ("", "AB", "WM/1", "WM 8", "-WM8", "WM8-", "WM--8", "W+1#", "X" * 25, "WÄ1234", "WM8\n1"):
        with pytest.raises(serials.SerialError):
            serials.valid(bad)


# -- a batch --------------------------------------------------------------------------------
def test_a_batch_writes_verified_bundles_manifest_labels_and_a_summary(
    pki_dir: str, tmp_path: "os.PathLike[str]", capsys: pytest.CaptureFixture[str]
) -> None:
    out = os.path.join(tmp_path, "out")
    code, stdout, err = cli(capsys, *batch_args(pki_dir, out, "--count", "3", "--serial-prefix", "WM8-"))
    assert code == 0, err
    assert "ETA" in err and "3/3" in err  # the progress bar
    assert "3 provisioned now" in stdout and "devices/s" in stdout
    manifest = rows(os.path.join(out, batch.MANIFEST))
    labels = rows(os.path.join(out, batch.LABELS))
    assert [r["serial"] for r in manifest] == ["WM8-000001", "WM8-000002", "WM8-000003"]
    assert tuple(manifest[0]) == batch.MANIFEST_FIELDS and tuple(labels[0]) == batch.LABEL_FIELDS
    assert stat.S_IMODE(os.stat(os.path.join(out, batch.LABELS)).st_mode) == 0o600
    auth = authority.open_authority(pki_dir, b"correct horse battery")
    for m, lab in zip(manifest, labels, strict=True):
        assert m["label_ref"] == lab["label_ref"] and m["device_id"] == lab["device_id"]
        assert identities.device_id_problem(m["device_id"]) == ""  # random, not made from the serial
        dev = os.path.join(out, batch.DEVICES, m["device_id"])
        assert tree(os.path.join(dev, "pi")) == sorted(
            ["bundle.json", "bundle.sig", "profile.json"]
            + ["identity/" + n for n in (*bundle.IDENTITY_FILES.values(), "permanent.json")]
        )
        assert tree(os.path.join(dev, "mpy")) == sorted(
            ["bundle.json", "bundle.sig", "profile.json", *bundle.IDENTITY_FILES.values(), "permanent.json"]
        )
        for layout in ("pi", "mpy"):
            doc = bundle.verify(os.path.join(dev, layout), auth.root)
            assert doc["device_id"] == m["device_id"] and doc["broker"] == {"host": "mqtt.example.net", "port": 8883}
        cert = x509.load_pem_x509_certificate(read_bytes(os.path.join(dev, "pi/identity/device.crt")))
        assert pki.fingerprint(cert) == m["cert_fingerprint"]
        # The certificate names the device id and the maker, and nothing of the serial.
        assert [(a.oid, a.value) for a in cert.subject] == [
            (NameOID.ORGANIZATION_NAME, "Brunnhilde"),
            (NameOID.COMMON_NAME, m["device_id"]),
        ]
        der = cert.public_bytes(serialization.Encoding.DER)
        assert m["serial"].encode() not in der.upper() and b"000001" not in der
        assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.CLIENT_AUTH]
        )
        assert stat.S_IMODE(os.stat(os.path.join(dev, "pi/identity/device.key")).st_mode) == 0o600
        # The label's code opens the device's record; the device holds only the salted hash.
        record = setup_code.read_record(os.path.join(dev, "pi", "identity"))
        assert setup_code.verify(lab["setup_code"], record)
        assert lab["qr_payload"] == "HTTP://WM-8-ECO-%s.LOCAL/" % m["device_id"][:4].upper()
        assert lab["setup_code"] not in lab["qr_payload"]  # the code is printed as text, never in a URL
        for layout in ("pi", "mpy"):
            for name in tree(os.path.join(dev, layout)):
                assert setup_code.normalize(lab["setup_code"]) not in read_text(os.path.join(dev, layout, name))
    # No secret in the manifest: no setup code, no key.
    text = read_text(os.path.join(out, batch.MANIFEST))
    assert "PRIVATE KEY" not in text and not any(setup_code.normalize(r["setup_code"]) in text for r in labels)
    # The PKI's register knows what was issued, and maps each serial to its device id.
    assert sorted(auth.issued()) == [r["serial"] for r in manifest]
    assert {s: r["device_id"] for s, r in auth.issued().items()} == device_ids(out)
    assert len(set(device_ids(out).values())) == 3


def test_factory_reset_keeps_the_identity_provisioning_installed(
    pki_dir: str, tmp_path: "os.PathLike[str]", capsys: pytest.CaptureFixture[str]
) -> None:
    out = os.path.join(tmp_path, "out")
    assert cli(capsys, *batch_args(pki_dir, out, "--count", "1"))[0] == 0
    pi = os.path.join(device_dir(out, "W000001"), "pi")
    with open(os.path.join(pi, "identity", "wifi.json"), "w") as f:
        f.write("{}")  # something the user set up later: not permanent
    assert DeviceData(pi).factory_reset() == ["wifi.json"]
    bundle.verify(pi, authority.read_root(pki_dir))  # as the factory wrote it: no file more, none less


def test_a_rerun_resumes_without_provisioning_any_device_twice_or_skipping_one(
    pki_dir: str, tmp_path: "os.PathLike[str]", capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = os.path.join(tmp_path, "out")
    monkeypatch.setattr(batch, "GROUP", 2)
    auth = authority.open_authority(pki_dir, b"correct horse battery")
    prof = profile_loader.compile_json(profile_loader.load(PROFILE))
    wanted = serials.counted("WM", 1, 7)
    with pytest.raises(KeyboardInterrupt):
        batch.run(auth, prof, wanted, out, "localhost", 8883, stop_after=3)
    assert len(rows(os.path.join(out, batch.MANIFEST))) == 4  # two groups of two
    # An interruption after a device was renamed into place but before it was recorded:
    # the last manifest row and the register's row are lost, the device directory stays.
    with open(os.path.join(out, batch.MANIFEST)) as f:
        lines = f.readlines()
    with open(os.path.join(out, batch.MANIFEST), "w") as f:
        f.writelines(lines[:-1])
        f.write(lines[-1][:10])  # and a cut line
    issued_before = auth.issued()
    ids_before = json.loads(read_text(os.path.join(out, batch.BATCH_FILE)))["device_ids"]
    os.makedirs(os.path.join(out, batch.DEVICES, ".tmp-" + ids_before["WM000005"]))  # a temp dir left by a crash
    summary = batch.run(auth, prof, wanted, out, "localhost", 8883)
    assert (summary.already, summary.finished, summary.new) == (3, 1, 3)
    manifest = rows(os.path.join(out, batch.MANIFEST))
    assert [r["serial"] for r in manifest] == sorted(r["serial"] for r in manifest) and len(manifest) == 7
    # The resumed batch kept the ids it gave its serials when it was made.
    assert device_ids(out) == ids_before
    assert sorted(os.listdir(os.path.join(out, batch.DEVICES))) == sorted(ids_before.values())
    assert len({r["label_ref"] for r in rows(os.path.join(out, batch.LABELS))}) == 7
    issued = auth.issued()
    assert {s: issued[s]["fingerprint"] for s in issued_before} == {
        s: r["fingerprint"] for s, r in issued_before.items()
    }
    assert sorted(issued) == wanted
    with open(os.path.join(pki_dir, authority.ISSUED)) as f:
        assert len(f.readlines()) == 1 + 7  # no certificate issued twice
    # A third run finds all done.
    assert batch.run(auth, prof, wanted, out, "localhost", 8883).already == 7


def test_a_killed_batch_process_resumes_to_a_complete_batch(pki_dir: str, tmp_path: "os.PathLike[str]") -> None:
    out = os.path.join(tmp_path, "out")
    cmd = [sys.executable, "-m", "agent", *batch_args(pki_dir, out, "--count", "120")]
    env = dict(os.environ, WICHTEL_TEST_PASSPHRASE="correct horse battery")
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    manifest = os.path.join(out, batch.MANIFEST)
    for _ in range(600):
        if (os.path.exists(manifest) and len(rows(manifest)) >= 32) or proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    done_before = len(rows(manifest))
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert rerun.returncode == 0, rerun.stderr
    assert "%d already done" % done_before in rerun.stdout or done_before == 120
    manifest_rows = rows(manifest)
    assert len(manifest_rows) == 120 and len({r["serial"] for r in manifest_rows}) == 120
    assert len(os.listdir(os.path.join(out, batch.DEVICES))) == 120


# -- bad input: exit 2, one paragraph, nothing half-written ---------------------------------
def assert_refused(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert err.startswith("wichtel: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def test_duplicate_serials_are_refused_before_anything_is_written(
    pki_dir: str, tmp_path: "os.PathLike[str]", capsys: pytest.CaptureFixture[str], write_file: object
) -> None:
    path = write_file("serials.txt", "# line 1 is a comment\nWM-0001\nWM-0002\nwm-0001\n")  # type: ignore[operator]
    out = os.path.join(tmp_path, "out")
    code, _, err = cli(capsys, *batch_args(pki_dir, out, "--serials", path))
    assert_refused(code, err, "given twice", "WM-0001", "serials.txt:4", "first at", "serials.txt:2")
    assert not os.path.exists(out)


def test_invalid_serials_are_refused_with_their_lines(
    pki_dir: str, tmp_path: "os.PathLike[str]", capsys: pytest.CaptureFixture[str], write_file: object
) -> None:
    path = write_file("serials.txt", "WM-0001\nWM/0002\nab\n")  # type: ignore[operator]
    out = os.path.join(tmp_path, "out")
    code, _, err = cli(capsys, *batch_args(pki_dir, out, "--serials", path))
    assert_refused(code, err, "2 serial numbers are not valid", "serials.txt:2", "serials.txt:3")
    assert not os.path.exists(out)


def test_a_serial_issued_in_another_batch_is_refused(
    pki_dir: str, tmp_path: "os.PathLike[str]", capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, *batch_args(pki_dir, os.path.join(tmp_path, "a"), "--count", "2"))[0] == 0
    code, _, err = cli(capsys, *batch_args(pki_dir, os.path.join(tmp_path, "b"), "--count", "3"))
    assert_refused(code, err, "already issued", "W000001")
    assert not os.listdir(os.path.join(tmp_path, "b", batch.DEVICES))


def _replace_issuing(pki_dir: str, issuing: pki.Identity) -> None:
    keys.write_key(os.path.join(pki_dir, "issuing.key"), issuing.key, b"correct horse battery")
    keys.write_atomic(os.path.join(pki_dir, "issuing.crt"), issuing.cert_pem())


def test_an_expired_issuing_ca_is_refused(
    pki_dir: str, tmp_path: "os.PathLike[str]", capsys: pytest.CaptureFixture[str]
) -> None:
    root_key = keys.read_key(os.path.join(pki_dir, "root.key"), b"correct horse battery")
    root_cert = x509.load_pem_x509_certificate(read_bytes(os.path.join(pki_dir, "root.crt")))
    past = pki._now() - datetime.timedelta(days=400)
    _replace_issuing(pki_dir, pki.make_issuing(pki.Identity(root_key, root_cert), "Brunnhilde", days=365, start=past))
    out = os.path.join(tmp_path, "out")
    code, _, err = cli(capsys, *batch_args(pki_dir, out, "--count", "2"))
    assert_refused(code, err, "issuing.crt cannot issue devices", "valid only from")
    assert not os.path.exists(out)


def test_a_wrong_issuing_ca_is_refused(
    pki_dir: str, tmp_path: "os.PathLike[str]", capsys: pytest.CaptureFixture[str]
) -> None:
    stranger = pki.make_issuing(pki.make_root("Someone Else"), "Someone Else")
    _replace_issuing(pki_dir, stranger)
    out = os.path.join(tmp_path, "out")
    code, _, err = cli(capsys, *batch_args(pki_dir, out, "--count", "2"))
    assert_refused(code, err, "issuing.crt cannot issue devices", "not by")
    assert not os.path.exists(out)


def test_an_issuing_key_of_another_ca_is_refused(
    pki_dir: str, tmp_path: "os.PathLike[str]", capsys: pytest.CaptureFixture[str]
) -> None:
    keys.write_key(os.path.join(pki_dir, "issuing.key"), pki.new_key(), b"correct horse battery")
    code, _, err = cli(capsys, *batch_args(pki_dir, os.path.join(tmp_path, "out"), "--count", "2"))
    assert_refused(code, err, "issuing.key does not belong to issuing.crt")


def test_a_wrong_or_missing_passphrase_is_refused(
    pki_dir: str, tmp_path: "os.PathLike[str]", capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = os.path.join(tmp_path, "out")
    monkeypatch.setenv(PASS_ENV, "not the passphrase")
    code, _, err = cli(capsys, *batch_args(pki_dir, out, "--count", "2"))
    assert_refused(code, err, "the passphrase does not open this key")
    assert "not the passphrase" not in err  # never echoed
    monkeypatch.delenv(PASS_ENV)
    code, _, err = cli(capsys, *batch_args(pki_dir, out, "--count", "2"))
    assert_refused(code, err, "is not set")
    args = batch_args(pki_dir, out, "--count", "2")
    i = args.index("--passphrase-env")
    code, _, err = cli(capsys, *(args[:i] + args[i + 2 :]))  # no terminal to ask on under pytest
    assert_refused(code, err, "--passphrase-env")
    assert not os.path.exists(out)


def test_an_output_directory_holding_a_different_batch_is_refused(
    pki_dir: str, tmp_path: "os.PathLike[str]", capsys: pytest.CaptureFixture[str]
) -> None:
    out = os.path.join(tmp_path, "out")
    assert cli(capsys, *batch_args(pki_dir, out, "--count", "2"))[0] == 0
    before = tree(out)
    code, _, err = cli(capsys, *batch_args(pki_dir, out, "--count", "2", "--first", "10"))
    assert_refused(code, err, "already holds batch", "serial list")
    code, _, err = cli(capsys, *batch_args(pki_dir, out, "--count", "2", "--broker", "other.example:8883"))
    assert_refused(code, err, "already holds batch", "broker")
    assert tree(out) == before
    other = os.path.join(tmp_path, "other")
    os.makedirs(other)
    open(os.path.join(other, "notes.txt"), "w").close()
    code, _, err = cli(capsys, *batch_args(pki_dir, other, "--count", "2"))
    assert_refused(code, err, "not empty and holds no batch")


@pytest.fixture
def small_disk(tmp_path: "os.PathLike[str]") -> object:
    """A real tmpfs of 320 KiB (needs root): a few devices fit, then the disk is full."""
    path = os.path.join(tmp_path, "small")
    os.makedirs(path)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=320k", "tmpfs", path], capture_output=True).returncode:
        pytest.fail("cannot mount a tmpfs for the full-disk test (the suite runs as root on the dev machine)")
    yield path
    subprocess.run(["umount", path], check=True)


def test_a_full_disk_mid_batch_stops_cleanly_and_the_batch_resumes_after(
    pki_dir: str, small_disk: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "GROUP", 2)
    out = os.path.join(small_disk, "out")
    code, _, err = cli(capsys, *batch_args(pki_dir, out, "--count", "12"))
    last = err.splitlines()[-1] + "\n"  # after the progress lines
    assert_refused(code, last, "disk", "full", "run the same command again")
    done = rows(os.path.join(out, batch.MANIFEST))
    assert 0 < len(done) < 12
    # Every device on disk is whole and recorded; no temp directory is left.
    assert sorted(os.listdir(os.path.join(out, batch.DEVICES))) == sorted(r["device_id"] for r in done)
    for r in done:
        for layout in ("pi", "mpy"):
            bundle.verify(os.path.join(out, batch.DEVICES, r["device_id"], layout), authority.read_root(pki_dir))
    subprocess.run(["mount", "-o", "remount,size=8m", small_disk], check=True)
    code, out_text, err = cli(capsys, *batch_args(pki_dir, out, "--count", "12"))
    assert code == 0, err
    assert "%d already done" % len(done) in out_text
    assert len(rows(os.path.join(out, batch.MANIFEST))) == 12


# -- the single-device flow (Pi: the key never leaves the device) ---------------------------
def _sign(capsys: pytest.CaptureFixture[str], pki_dir: str, csr: str, out: str) -> tuple:
    """`wichtel provision sign` of one CSR into `out`: (exit code, stdout, stderr)."""
    return cli(capsys, "provision", "sign", "--pki", pki_dir, "--passphrase-env", PASS_ENV, "--profile", PROFILE,
               "--csr", csr, "--out", out)  # fmt: skip


def test_csr_flow_signs_a_device_key_that_never_leaves_the_device(
    pki_dir: str, tmp_path: "os.PathLike[str]", capsys: pytest.CaptureFixture[str]
) -> None:
    device = os.path.join(tmp_path, "pi-data")
    code, out, err = cli(capsys, "provision", "csr", "--serial", "PI-000042", "--data-dir", device)
    assert code == 0, err
    key_pem = read_bytes(os.path.join(device, "identity", "device.key"))
    signed = os.path.join(tmp_path, "signed")
    code, out, err = _sign(capsys, pki_dir, os.path.join(device, "identity", "device.csr"), signed)
    assert code == 0, err
    for name in tree(signed):  # no key anywhere in what the host wrote
        assert b"PRIVATE KEY" not in read_bytes(os.path.join(signed, name))
    code, out, err = cli(capsys, "provision", "install", signed, "--data-dir", device)
    assert code == 0, err
    assert read_bytes(os.path.join(device, "identity", "device.key")) == key_pem
    label = json.loads(read_text(os.path.join(signed, bundle.LABEL_FILE)))
    assert label["serial"] == "PI-000042" and identities.device_id_problem(label["device_id"]) == ""
    code, out, err = cli(capsys, "provision", "verify", "--pki", pki_dir, device)
    assert code == 0 and label["device_id"] in out, err
    issued = authority.open_authority(pki_dir, b"correct horse battery").issued()
    assert issued["PI-000042"]["device_id"] == label["device_id"]  # the register maps the serial to it
    assert setup_code.verify(label["setup_code"], setup_code.read_record(os.path.join(device, "identity")))
    # The same serial again is refused: one serial, one device.
    other = os.path.join(tmp_path, "pi-2")
    assert cli(capsys, "provision", "csr", "--serial", "PI-000042", "--data-dir", other)[0] == 0
    other_csr = os.path.join(other, "identity", "device.csr")
    code, _, err = _sign(capsys, pki_dir, other_csr, os.path.join(tmp_path, "signed-2"))
    assert_refused(code, err, "already has a certificate")


def test_a_bundle_that_does_not_verify_is_named(
    pki_dir: str, tmp_path: "os.PathLike[str]", capsys: pytest.CaptureFixture[str]
) -> None:
    out = os.path.join(tmp_path, "out")
    assert cli(capsys, *batch_args(pki_dir, out, "--count", "2"))[0] == 0
    a, b = (os.path.join(device_dir(out, s), "pi") for s in ("W000001", "W000002"))
    code, stdout, err = cli(capsys, "provision", "verify", "--pki", pki_dir, a)
    assert code == 0 and "valid pi bundle" in stdout, err
    os.chmod(os.path.join(a, "identity", "device.key"), 0o644)
    assert_refused(*cli(capsys, "provision", "verify", "--pki", pki_dir, a)[::2], "device.key", "600")
    os.replace(os.path.join(b, "identity", "device.key"), os.path.join(a, "identity", "device.key"))
    code, _, err = cli(capsys, "provision", "verify", "--pki", pki_dir, a)
    assert_refused(code, err, "changed file identity/device.key")
    assert "removed" not in err
    code, _, err = cli(capsys, "provision", "verify", "--pki", pki_dir, b)
    assert_refused(code, err, "removed file identity/device.key")


# -- revocation and the broker's files ------------------------------------------------------
def test_revoke_writes_a_crl_and_the_broker_files_use_the_test_brokers_rules(
    pki_dir: str, tmp_path: "os.PathLike[str]", capsys: pytest.CaptureFixture[str]
) -> None:
    from provisioning import broker_rules, local_broker

    out = os.path.join(tmp_path, "out")
    assert cli(capsys, *batch_args(pki_dir, out, "--count", "2"))[0] == 0
    second = device_ids(out)["W000002"]
    code, stdout, err = cli(capsys, "provision", "revoke", "--pki", pki_dir, "--passphrase-env", PASS_ENV, second)
    assert code == 0 and second in stdout, err
    crl = x509.load_pem_x509_crl(read_bytes(os.path.join(pki_dir, authority.CRL)))
    issued = authority.open_authority(pki_dir, b"correct horse battery").issued()
    assert [r.serial_number for r in crl] == [int(issued["W000002"]["cert_serial"], 16)]
    code, _, err = cli(capsys, "provision", "revoke", "--pki", pki_dir, "--passphrase-env", PASS_ENV, "nobody")
    assert_refused(code, err, "no certificate was issued to the device id nobody", "issued.csv", "serial")
    # A serial is not a device id; the refusal says which id the register gives it.
    first = device_ids(out)["W000001"]
    code, _, err = cli(capsys, "provision", "revoke", "--pki", pki_dir, "--passphrase-env", PASS_ENV, "w000001")
    assert_refused(code, err, "w000001 is a serial number: its device id is " + first)
    files = os.path.join(tmp_path, "broker")
    code, _, err = cli(
        capsys,
        "provision",
        "broker",
        "--pki",
        pki_dir,
        "--passphrase-env",
        PASS_ENV,
        "--out",
        files,
        "--host",
        "mqtt.example.net",
    )
    assert code == 0, err
    assert read_text(os.path.join(files, "device.acl")) == local_broker.DEVICE_ACL == broker_rules.device_acl()
    assert read_text(os.path.join(files, "service.acl")) == local_broker.SERVICE_ACL == broker_rules.service_acl()
    # The device ACL: per-device patterns only, no rule keyed by a user name a device could take.
    assert [line.split()[0] for line in local_broker.DEVICE_ACL.splitlines() if not line.startswith("#")] == [
        "pattern",
        "pattern",
    ]
    conf = read_text(os.path.join(files, "wichtel-listener.conf"))
    assert conf.index("per_listener_settings true") < conf.index("listener 8883") < conf.index("listener 8884")
    devices, services = conf.split("listener 8884")
    for part, trust, crl, acl in (
        (devices, "ca-chain.pem", "crl.pem", "device.acl"),
        (services, "service-ca.pem", "service-crl.pem", "service.acl"),
    ):
        for line in (
            "require_certificate true",
            "use_identity_as_username true",
            "use_username_as_clientid true",
            "allow_anonymous false",
            "cafile /etc/mosquitto/wichtel/" + trust,
            "crlfile /etc/mosquitto/wichtel/" + crl,
            "acl_file /etc/mosquitto/wichtel/" + acl,
        ):
            assert line + "\n" in part, (line, part)
    auth = authority.open_authority(pki_dir, b"correct horse battery")
    assert read_bytes(os.path.join(files, "ca-chain.pem")) == auth.chain_pem()
    assert read_bytes(os.path.join(files, "service-ca.pem")) == auth.service_ca_pem()
    for key in ("server.key", "service-server.key"):
        assert stat.S_IMODE(os.stat(os.path.join(files, key)).st_mode) == 0o600
    # The test broker's configuration is made by the same functions.
    os.makedirs(os.path.join(tmp_path, "tb"))
    b = local_broker.Broker(os.path.join(tmp_path, "tb"))
    tb = read_text(b.conf)
    assert "per_listener_settings true\n" in tb and tb.count("use_username_as_clientid true\n") == 2


# -- flashing -------------------------------------------------------------------------------
@pytest.fixture
def one_device(pki_dir: str, tmp_path: "os.PathLike[str]", capsys: pytest.CaptureFixture[str]) -> str:
    out = os.path.join(tmp_path, "out")
    assert cli(capsys, *batch_args(pki_dir, out, "--count", "1"))[0] == 0
    return device_dir(out, "W000001")


@pytest.fixture
def firmware_tree(tmp_path: "os.PathLike[str]", monkeypatch: pytest.MonkeyPatch) -> str:
    """A firmware/ with a main.py (the one of this tree may be missing), the one flash builds."""
    tree = os.path.join(tmp_path, "firmware")
    os.makedirs(tree)
    with open(os.path.join(tree, "main.py"), "w") as f:
        f.write("from agent.core.pipeline import Agent\n")
    monkeypatch.setattr(firmware_build, "FIRMWARE_DIR", tree)
    return tree


def test_flash_dry_run_lists_firmware_and_bundle(
    one_device: str, firmware_tree: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "provision", "flash", "--port", "/dev/ttyUSB-none", one_device, "--dry-run")
    assert code == 0, err
    for remote in (
        ":lib/agent/core/pipeline.mpy",
        ":main.py",
        ":device.key",
        ":device.crt",
        ":ca.pem",
        ":profile.json",
        ":setup_code.json",
        ":bundle.json",
        ":bundle.sig",
    ):
        assert remote + " " in out
    assert "dry run: nothing was written" in out
    assert "BEGIN" not in out  # lists files, never their content


def test_flash_without_a_board_says_so(
    one_device: str,
    firmware_tree: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: "os.PathLike[str]",
) -> None:
    fake = os.path.join(tmp_path, "bin")
    os.makedirs(fake)
    with open(os.path.join(fake, "mpremote"), "w") as f:
        # One line per call, newlines inside an argument (the mkdir script) shown as ~.
        f.write("#!/bin/sh\necho \"$*\" | tr '\\n' '~' >> %s/calls\necho >> %s/calls\n" % (fake, fake))
    os.chmod(os.path.join(fake, "mpremote"), 0o755)
    monkeypatch.setenv("PATH", fake + os.pathsep + os.environ["PATH"])
    code, _, err = cli(capsys, "provision", "flash", "--port", "/dev/ttyUSB-none", one_device)
    assert_refused(code, err, "No board at /dev/ttyUSB-none", "serial ports present now")
    assert not os.path.exists(os.path.join(fake, "calls"))
    # With a port present, mpremote copies each file and progress is shown.
    port = os.path.join(tmp_path, "ttyFAKE")
    open(port, "w").close()
    code, _, err = cli(capsys, "provision", "flash", "--port", port, one_device)
    assert code == 0, err
    calls = [c.rstrip("~") for c in read_text(os.path.join(fake, "calls")).splitlines()]
    image = os.path.join(tmp_path, "image")
    firmware_build.build(out=image)
    steps = flash.plan(one_device, image)
    assert calls[0].startswith("connect %s exec" % port) and len(calls) == 1 + len(steps)
    assert calls[-1].startswith("connect %s fs cp " % port) and calls[-1].endswith(" :main.py")
    assert "[%d/%d] 100%%" % (len(steps), len(steps)) in err


def test_flash_without_mpremote_says_how_to_get_it(
    one_device: str, firmware_tree: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flash.shutil, "which", lambda name: None)
    monkeypatch.setattr(flash.importlib.util, "find_spec", lambda name: None)
    code, _, err = cli(capsys, "provision", "flash", "--port", "/dev/ttyUSB0", one_device)
    assert_refused(code, err, "mpremote is not installed", "pip install mpremote")


def test_progress_line_has_rate_and_eta() -> None:
    assert progress.line(250, 1000, 5.0) == "[#######.......................] 250/1000  25%  50.0 devices/s  ETA 15s"
    assert progress.line(0, 10, 0.0).endswith("ETA ?")
    assert progress.eta_text(3725) == "1h02m"


def test_key_files_are_never_world_readable_even_with_a_loose_umask(tmp_path: "os.PathLike[str]") -> None:
    old = os.umask(0)
    try:
        path = os.path.join(tmp_path, "k.key")
        keys.write_key(path, pki.new_key())
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    finally:
        os.umask(old)
    assert serialization.load_pem_private_key(read_bytes(path), None)


def test_init_and_batch_run_with_their_defaults_and_no_questions(
    tmp_path: "os.PathLike[str]", capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WICHTEL_PKI", raising=False)
    assert cli(capsys, "provision", "init")[0] == 0
    assert authority.open_authority(os.path.join(tmp_path, "pki"), None).org == "Wichtel"
    code, _, err = cli(capsys, "provision", "batch", "--profile", PROFILE, "--count", "2", "--out", "out")
    assert code == 0, err
    assert len(rows(os.path.join(tmp_path, "out", batch.MANIFEST))) == 2
    monkeypatch.setenv("WICHTEL_PKI", os.path.join(tmp_path, "elsewhere"))
    assert cli(capsys, "provision", "init")[0] == 0
    assert os.path.exists(os.path.join(tmp_path, "elsewhere", "authority.json"))
