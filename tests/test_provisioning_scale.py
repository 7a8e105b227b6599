"""1,000 devices in one batch: every key, certificate and setup code is distinct; and the
benchmark reports its figure."""

import csv
import json
import os

from cryptography import x509

from agent import profile_loader, setup_code
from provisioning import authority, batch, bundle, pki, serials
from tests.benchmarks import run_bench


def test_a_batch_of_1000_has_no_two_equal_keys_certificates_or_setup_codes(tmp_path: "os.PathLike[str]") -> None:
    authority.init(os.path.join(tmp_path, "pki"), "Brunnhilde", None)
    auth = authority.open_authority(os.path.join(tmp_path, "pki"), None)
    profile = profile_loader.compile_json(profile_loader.load(profile_loader.example("washing_machine")))
    out = os.path.join(tmp_path, "out")
    wanted = serials.counted("WM", 1, 1000)
    # The fewest PBKDF2 iterations the record allows: what is checked here is uniqueness, not cost.
    summary = batch.run(auth, profile, wanted, out, "localhost", 8883, jobs=2, iterations=setup_code.MIN_ITERATIONS)
    assert summary.new == 1000
    with open(os.path.join(out, batch.MANIFEST), newline="") as f:
        manifest = list(csv.DictReader(f))
    with open(os.path.join(out, batch.LABELS), newline="") as f:
        labels = list(csv.DictReader(f))
    assert [r["serial"] for r in manifest] == wanted and len(labels) == 1000
    key_pems, public_keys, cert_serials, fingerprints, salts = set(), set(), set(), set(), set()
    for row in manifest:
        ident = os.path.join(out, batch.DEVICES, row["device_id"], bundle.PI, "identity")
        with open(os.path.join(ident, "device.key"), "rb") as f:
            key_pems.add(f.read())
        with open(os.path.join(ident, "device.crt"), "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        public_keys.add(pki.public_bytes(cert.public_key()))  # type: ignore[arg-type]
        cert_serials.add(cert.serial_number)
        fingerprints.add(pki.fingerprint(cert))
        salts.add(setup_code.read_record(ident)["salt"])
    codes = {setup_code.normalize(r["setup_code"]) for r in labels}
    for distinct in (key_pems, public_keys, cert_serials, fingerprints, salts, codes):
        assert len(distinct) == 1000
    assert len({r["cert_fingerprint"] for r in manifest}) == 1000
    assert fingerprints == {r["cert_fingerprint"] for r in manifest}


def test_the_provisioning_benchmark_writes_devices_per_second(tmp_path: "os.PathLike[str]") -> None:
    out, figures = run_bench("provisioning.py", str(tmp_path), "--count", "40")
    assert figures["devices"] == 40 and figures["batch_new"] == 40 and figures["devices_per_s"] > 0
    assert json.loads(out.strip().splitlines()[-1]) == figures
