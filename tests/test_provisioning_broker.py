"""Acceptance: a provisioned device connects to Mosquitto with nothing but its bundle; a
device of another manufacturer PKI, or a revoked one, does not."""

import asyncio
import gc
import os
import shutil

import pytest
from cryptography.hazmat.primitives import serialization

from agent import local_broker, profile_loader
from agent.cli import main
from agent.uplink_paho import PahoUplink, UplinkConfig
from provisioning import authority, batch, bundle, keys, pki

PROFILE = profile_loader.example("washing_machine")
# paho leaves the socket of a refused TLS handshake to the garbage collector (tests/test_uplink.py).
PAHO_SOCKET_LEAK = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


class Fleet:
    """Two manufacturer PKIs, a batch of each, and a Mosquitto set up with the broker files
    of the first."""

    def __init__(self, tmp: str) -> None:
        if shutil.which("mosquitto") is None:
            pytest.fail("mosquitto is not installed: run `make test`")
        self.tmp = tmp
        self.pki = os.path.join(tmp, "pki")
        self.other_pki = os.path.join(tmp, "other-pki")
        for path, org in ((self.pki, "Brunnhilde"), (self.other_pki, "Someone Else")):
            assert main(["provision", "init", "--pki", path, "--org", org]) == 0
        self.files = os.path.join(tmp, "broker-files")
        self.refresh_broker_files()
        os.makedirs(os.path.join(tmp, "mosquitto"))
        self.broker = local_broker.Broker(os.path.join(tmp, "mosquitto"), fleet_dir=self.files)
        endpoint = "localhost:%d" % self.broker.port
        for path, out, prefix in ((self.pki, "batch", "WM"), (self.other_pki, "other-batch", "WM")):
            argv = ["provision", "batch", "--pki", path, "--profile", PROFILE, "--count", "2"]
            argv += ["--serial-prefix", prefix, "--out", os.path.join(tmp, out), "--broker", endpoint, "--jobs", "1"]
            assert main(argv) == 0
        # The operator's service: a client certificate from the same issuing CA, user "service".
        auth = authority.open_authority(self.pki, None)
        key = pki.new_key()
        cert = pki.device_certificate(auth.issuing, key.public_key(), "service", "SERVICE", auth.org)
        keys.write_key(os.path.join(tmp, "service.key"), key)
        keys.write_atomic(os.path.join(tmp, "service.crt"), cert.public_bytes(serialization.Encoding.PEM))
        self.broker.certs["service"] = (os.path.join(tmp, "service.crt"), os.path.join(tmp, "service.key"))

    def refresh_broker_files(self) -> None:
        argv = ["provision", "broker", "--pki", self.pki, "--out", self.files, "--host", "localhost"]
        assert main(argv + ["--install-dir", self.files]) == 0

    def bundle(self, which: str, device_id: str) -> str:
        return os.path.join(self.tmp, which, batch.DEVICES, device_id, bundle.PI)


@pytest.fixture
def fleet(tmp_path: "os.PathLike[str]") -> object:
    f = Fleet(str(tmp_path))
    f.broker.start()
    yield f
    f.broker.stop()


def _uplink(path: str) -> PahoUplink:
    s = bundle.for_run(path)
    host, _, port = s["broker"].rpartition(":")
    return PahoUplink(UplinkConfig(host, int(port), s["device_id"], s["ca"], s["cert"], s["key"], keepalive=5))


async def _connects(path: str, timeout: float = 5) -> tuple[bool, PahoUplink]:
    uplink = _uplink(path)
    uplink.start()
    try:
        await asyncio.wait_for(uplink.connected.wait(), timeout)
        return True, uplink
    except TimeoutError:
        return False, uplink


@pytest.mark.asyncio
@PAHO_SOCKET_LEAK
async def test_provisioned_devices_connect_others_and_revoked_ones_do_not(fleet: Fleet) -> None:
    ok, dev1 = await _connects(fleet.bundle("batch", "wm000001"))
    try:
        assert ok, dev1.last_error
        assert await dev1.publish("wichtel/v1/wm000001/maintenance", b'{"v":1}')
        assert not await dev1.publish("wichtel/v1/wm000002/maintenance", b"forged")  # the ACL, from broker_rules
    finally:
        await dev1.stop()
    ok, stranger = await _connects(fleet.bundle("other-batch", "wm000001"), 3)
    await stranger.stop()
    assert not ok  # same device id, but its certificate is from another manufacturer's CA
    # Revoke wm000002: with the new CRL the broker refuses it; wm000001 still gets in.
    ok, dev2 = await _connects(fleet.bundle("batch", "wm000002"))
    await dev2.stop()
    assert ok, dev2.last_error
    assert main(["provision", "revoke", "--pki", fleet.pki, "wm000002"]) == 0
    fleet.refresh_broker_files()
    fleet.broker.restart()
    ok, dev2 = await _connects(fleet.bundle("batch", "wm000002"), 3)
    await dev2.stop()
    assert not ok
    ok, dev1 = await _connects(fleet.bundle("batch", "wm000001"))
    await dev1.stop()
    assert ok, dev1.last_error
    gc.collect()


def test_wichtel_run_with_a_bundle_sends_to_the_fleet_broker(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    service = local_broker.Service(fleet.broker)
    try:
        path = fleet.bundle("batch", "wm000001")
        code = main(["run", "--bundle", path, "--simulate", "--hours", "1", "--consent", "maintenance"])
        assert code == 0, capsys.readouterr().err
        got = service.wait_for(1, 10, "wm000001/status/availability")
        assert got and got[0][0] == "wichtel/v1/wm000001/status/availability"
        # The bundle is the device's data directory: the consent journal and state live beside it.
        assert os.path.exists(os.path.join(path, "consent.journal")) and os.path.exists(
            os.path.join(path, "state.json")
        )
    finally:
        service.close()


def test_run_with_a_damaged_bundle_is_refused(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    path = fleet.bundle("batch", "wm000002")
    os.remove(os.path.join(path, "identity", "device.crt"))
    code = main(["run", "--bundle", path, "--simulate", "--hours", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "device.crt" in err and "cannot read" in err
