"""Acceptance against a real Mosquitto set up with the files of `wichtel provision broker`:
a provisioned device connects with nothing but its bundle; a device of another
manufacturer PKI, or a revoked one, does not. And the two namespaces: no device
certificate (the serial SERVICE's, a CSR-signed one, one with a service's name made with
the issuing key) gets any service right, and a service certificate cannot act as a device."""

import asyncio
import csv
import datetime
import gc
import os
import shutil
import ssl
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent import profile_loader
from agent.cli import main
from agent.uplink_paho import PahoUplink, UplinkConfig
from provisioning import authority, batch, bundle, keys, local_broker, pki

PROFILE = profile_loader.example("washing_machine")
# paho leaves the socket of a refused TLS handshake to the garbage collector (tests/test_uplink.py).
PAHO_SOCKET_LEAK = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
QUIET_S = 1.0  # how long "nothing arrives" is watched for, after a positive control has arrived


class Fleet:
    """Two manufacturer PKIs, a batch of each (the first with the serial SERVICE), a device
    signed from a CSR, the backend's service certificate, and a Mosquitto set up with the
    broker files of the first PKI."""

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
        serials = os.path.join(tmp, "serials.txt")
        with open(serials, "w") as f:
            f.write("WM000001\nWM000002\nSERVICE\n")  # a serial is any label text: SERVICE is one
        for path, out in ((self.pki, "batch"), (self.other_pki, "other-batch")):
            argv = ["provision", "batch", "--pki", path, "--profile", PROFILE, "--serials", serials]
            argv += ["--out", os.path.join(tmp, out), "--broker", endpoint, "--jobs", "1"]
            assert main(argv) == 0
        # A Pi that made its own key, its request naming the serial SERVICE-2.
        self.csr_device = os.path.join(tmp, "pi-data")
        assert main(["provision", "csr", "--serial", "SERVICE-2", "--data-dir", self.csr_device]) == 0
        signed = os.path.join(tmp, "signed")
        csr = os.path.join(self.csr_device, "identity", "device.csr")
        argv = ["provision", "sign", "--pki", self.pki, "--profile", PROFILE, "--broker", endpoint]
        assert main([*argv, "--csr", csr, "--out", signed]) == 0
        assert main(["provision", "install", signed, "--data-dir", self.csr_device]) == 0
        # The operator's backends: `wichtel provision service backend` (and a second one, console).
        for name in ("backend", "console"):
            service_dir = os.path.join(tmp, name)
            assert main(["provision", "service", name, "--pki", self.pki, "--out", service_dir]) == 0
            self.broker.service_certs[name] = (
                os.path.join(service_dir, "service.crt"),
                os.path.join(service_dir, "service.key"),
            )

    def refresh_broker_files(self) -> None:
        argv = ["provision", "broker", "--pki", self.pki, "--out", self.files, "--host", "localhost"]
        assert main(argv + ["--install-dir", self.files]) == 0

    def device_id(self, which: str, serial: str) -> str:
        with open(os.path.join(self.tmp, which, batch.MANIFEST), newline="") as f:
            return next(r["device_id"] for r in csv.DictReader(f) if r["serial"] == serial)

    def bundle(self, which: str, serial: str) -> str:
        return os.path.join(self.tmp, which, batch.DEVICES, self.device_id(which, serial), bundle.PI)

    def identity(self, which: str, serial: str) -> tuple[str, str, str]:
        """(device id, certificate file, key file) of a batch's device."""
        ident = os.path.join(self.bundle(which, serial), "identity")
        return self.device_id(which, serial), os.path.join(ident, "device.crt"), os.path.join(ident, "device.key")


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
    first, second = fleet.device_id("batch", "WM000001"), fleet.device_id("batch", "WM000002")
    ok, dev1 = await _connects(fleet.bundle("batch", "WM000001"))
    try:
        assert ok, dev1.last_error
        assert await dev1.publish("wichtel/v1/%s/maintenance" % first, b'{"v":1}')
        assert not await dev1.publish("wichtel/v1/%s/maintenance" % second, b"forged")  # the ACL, from broker_rules
    finally:
        await dev1.stop()
    ok, stranger = await _connects(fleet.bundle("other-batch", "WM000001"), 3)
    await stranger.stop()
    assert not ok  # same serial, but its certificate is from another manufacturer's CA
    # Revoke WM000002 by its device id: with the new CRL the broker refuses it; WM000001 still gets in.
    ok, dev2 = await _connects(fleet.bundle("batch", "WM000002"))
    await dev2.stop()
    assert ok, dev2.last_error
    assert main(["provision", "revoke", "--pki", fleet.pki, second]) == 0
    fleet.refresh_broker_files()
    fleet.broker.restart()
    ok, dev2 = await _connects(fleet.bundle("batch", "WM000002"), 3)
    await dev2.stop()
    assert not ok
    ok, dev1 = await _connects(fleet.bundle("batch", "WM000001"))
    await dev1.stop()
    assert ok, dev1.last_error
    gc.collect()


def test_wichtel_run_with_a_bundle_sends_to_the_fleet_broker(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    service = local_broker.Service(fleet.broker)
    try:
        path = fleet.bundle("batch", "WM000001")
        device = fleet.device_id("batch", "WM000001")
        code = main(["run", "--bundle", path, "--simulate", "--hours", "1", "--consent", "maintenance"])
        assert code == 0, capsys.readouterr().err
        got = service.wait_for(1, 10, device + "/status/availability")
        assert got and got[0][0] == "wichtel/v1/%s/status/availability" % device
        # The topic carries the random device id, never the serial.
        assert all("WM000001" not in topic.upper() for topic, *_ in service.received())
        # The bundle is the device's data directory: the consent journal and state live beside it.
        assert os.path.exists(os.path.join(path, "consent.journal")) and os.path.exists(
            os.path.join(path, "state.json")
        )
    finally:
        service.close()


def test_run_with_a_damaged_bundle_is_refused(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    path = fleet.bundle("batch", "WM000002")
    os.remove(os.path.join(path, "identity", "device.crt"))
    code = main(["run", "--bundle", path, "--simulate", "--hours", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "removed file identity/device.crt" in err


# -- the two namespaces on the real broker ----------------------------------------------------
class Peer:
    """A bare MQTT 5 client over mutual TLS, to do what a hostile device or service would."""

    def __init__(
        self, port: int, trust: str, cert: str, key: str, client_id: str, subscribe: tuple = (), resume: bool = False
    ) -> None:
        """resume: ask for the session the client id had (clean start false, kept an hour)."""
        self.messages: list[tuple[str, bytes]] = []
        self.session_present: bool | None = None
        self.acks: dict[int, int] = {}  # message id -> PUBACK reason code
        self.connected = threading.Event()
        self.closed = threading.Event()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(trust)
        ctx.load_cert_chain(cert, key)
        self.client.tls_set_context(ctx)
        self.topics = subscribe

        def on_connect(client: mqtt.Client, userdata: object, flags: object, rc: object, props: object) -> None:
            self.session_present = bool(getattr(flags, "session_present", False))
            if not getattr(rc, "is_failure", True):
                if self.topics:
                    client.subscribe([(t, 1) for t in self.topics])
                else:
                    self.subscribed.set()
                self.connected.set()

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_disconnect = lambda *a: self.closed.set()
        self.client.on_connect_fail = lambda *a: self.closed.set()
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.client.on_publish = lambda c, u, mid, rc, p: self.acks.__setitem__(mid, rc.value)
        connect_props = Properties(PacketTypes.CONNECT)
        connect_props.SessionExpiryInterval = 3600 if resume else 0
        try:
            self.client.connect("localhost", port, clean_start=not resume, properties=connect_props)
        except (OSError, ssl.SSLError):
            self.closed.set()
            return
        self.client.loop_start()

    def wait_connected(self, timeout: float = 5) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.closed.is_set():
            if self.connected.wait(0.05):
                return self.subscribed.wait(timeout)
        return False

    def publish(self, topic: str, payload: bytes) -> int:
        """The broker's PUBACK reason code (0 accepted, 135 not authorized)."""
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(5)
        deadline = time.monotonic() + 5
        while info.mid not in self.acks and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.acks.get(info.mid, -1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _refused(port: int, trust: str, cert: str, key: str, client_id: str) -> bool:
    peer = Peer(port, trust, cert, key, client_id)
    try:
        return not peer.wait_connected(3)
    finally:
        peer.close()


def _forged_device_cert(fleet: Fleet, common_name: str) -> tuple[str, str]:
    """A certificate from the devices' issuing CA with any common name, made with the issuing
    key directly (as a stolen key, or a future path that forgot the grammar, would)."""
    auth = authority.open_authority(fleet.pki, None)
    key = pki.new_key()
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(auth.issuing.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(auth.issuing.key, hashes.SHA256())
    )
    stem = os.path.join(fleet.tmp, "forged-" + common_name.replace(":", "_"))
    keys.write_key(stem + ".key", key)
    keys.write_atomic(stem + ".crt", cert.public_bytes(serialization.Encoding.PEM))
    return stem + ".crt", stem + ".key"


def _attackers(fleet: Fleet) -> list[tuple[str, str, str]]:
    """(label, certificate, key) of every device certificate that could try for service rights."""
    _, crt, key = fleet.identity("batch", "SERVICE")
    ident = os.path.join(fleet.csr_device, "identity")
    out = [("serial SERVICE", crt, key), ("CSR serial SERVICE-2", ident + "/device.crt", ident + "/device.key")]
    for name in ("service", "service:console"):  # the old service user; a service not connected now
        out.append(("issuing-CA certificate named %s" % name, *_forged_device_cert(fleet, name)))
    return out


@PAHO_SOCKET_LEAK
def test_no_device_certificate_gets_a_service_right_on_the_real_broker(fleet: Fleet) -> None:
    b = fleet.broker
    victim, victim_crt, victim_key = fleet.identity("batch", "WM000001")
    backend = local_broker.Service(b)
    kicked: list = []
    backend.client.on_disconnect = lambda *a: kicked.append(a)
    victim_peer = Peer(b.port, b.ca_path, victim_crt, victim_key, victim, ("wichtel/v1/%s/cmd/#" % victim,))
    assert victim_peer.wait_connected()
    try:
        for label, crt, key in _attackers(fleet):
            # 1. The service listener trusts the service CA only: the TLS handshake fails.
            for trust in (b.service_ca_path, b.ca_path):
                assert _refused(b.service_port, trust, crt, key, "service:backend"), label
            # 2. On the device listener: subscribe to everything, naming the backend's client id.
            spy = Peer(b.port, b.ca_path, crt, key, "service:backend", ("#", "wichtel/v1/#", "$SYS/#", "+/+/+/cmd/#"))
            assert spy.wait_connected(), label
            try:
                # The victim reports, the backend commands it: both arrive where they belong ...
                status = b"victim status while " + label.encode()
                assert victim_peer.publish("wichtel/v1/%s/status/x" % victim, status) == 0
                deadline = time.monotonic() + 5
                while status not in [m[1] for m in backend.received(victim + "/status/x")]:
                    assert time.monotonic() < deadline, label
                    time.sleep(0.02)
                backend.send("wichtel/v1/%s/cmd/ping" % victim, b"from backend " + label.encode())
                deadline = time.monotonic() + 5
                while not any(p.startswith(b"from backend " + label.encode()) for _, p in victim_peer.messages):
                    assert time.monotonic() < deadline, label
                    time.sleep(0.02)
                # ... the attacker's forged command and writes into another tree are refused ...
                assert spy.publish("wichtel/v1/%s/cmd/ping" % victim, b"forged " + label.encode()) == 135
                assert spy.publish("wichtel/v1/%s/status/x" % victim, b"forged status") == 135
                time.sleep(QUIET_S)
                # ... it heard nothing (not even its own refused writes), and the victim got no forgery.
                assert spy.messages == [], (label, spy.messages)
                assert not any(p.startswith(b"forged") for _, p in victim_peer.messages), label
                # Its client id was replaced by its own name: the backend's session was not taken.
                assert kicked == [] and backend.client.is_connected(), label
            finally:
                spy.close()
    finally:
        victim_peer.close()
        backend.close()
    gc.collect()


@PAHO_SOCKET_LEAK
def test_a_service_certificate_cannot_act_as_a_device(fleet: Fleet) -> None:
    b = fleet.broker
    crt, key = b.service_certs["backend"]
    device, _, _ = fleet.identity("batch", "WM000002")
    # The device listener trusts the device chain only.
    assert _refused(b.port, b.ca_path, crt, key, device)
    watcher = local_broker.Service(b)  # the service's own view of the devices' trees
    _, dev_crt, dev_key = fleet.identity("batch", "WM000002")
    dev = Peer(b.port, b.ca_path, dev_crt, dev_key, device, ("wichtel/v1/%s/cmd/#" % device,))
    console_crt, console_key = b.service_certs["console"]
    sender = Peer(b.service_port, b.service_ca_path, console_crt, console_key, "anything")
    try:
        assert dev.wait_connected() and sender.wait_connected()
        # A service sends commands (the positive control) ...
        assert sender.publish("wichtel/v1/%s/cmd/ping" % device, b"command") == 0
        # ... but cannot speak for a device: nothing into a device's own topics.
        assert sender.publish("wichtel/v1/%s/status/availability" % device, b"forged offline") == 135
        assert sender.publish("wichtel/v1/%s/maintenance" % device, b"forged alert") == 135
        deadline = time.monotonic() + 5
        while (b"command" not in [p for _, p in dev.messages]) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [p for _, p in dev.messages] == [b"command"]
        time.sleep(QUIET_S)
        assert not any(p.startswith(b"forged") for _, p, *_ in watcher.received())
    finally:
        sender.close()
        dev.close()
        watcher.close()
    gc.collect()


@PAHO_SOCKET_LEAK
def test_a_device_certificate_with_a_services_name_inherits_no_right_with_its_session(fleet: Fleet) -> None:
    """Only the issuing key can make a device certificate named after a service (the grammar
    check refuses it everywhere else). Such a certificate takes the service's client id on
    the device listener, and with it the service's stored session and subscription; the
    device listener's ACL still lets nothing through to it."""
    b = fleet.broker
    victim, victim_crt, victim_key = fleet.identity("batch", "WM000001")
    backend = local_broker.Service(b)  # subscribes to wichtel/v1/# in a session kept an hour
    backend.close()
    crt, key = _forged_device_cert(fleet, "service:backend")
    thief = Peer(b.port, b.ca_path, crt, key, "whatever", resume=True)
    victim_peer = Peer(b.port, b.ca_path, victim_crt, victim_key, victim)
    try:
        assert thief.wait_connected() and victim_peer.wait_connected()
        assert thief.session_present  # the backend's session, subscription included
        assert victim_peer.publish("wichtel/v1/%s/status/x" % victim, b"for the backend only") == 0
        time.sleep(QUIET_S)
        assert thief.messages == []
    finally:
        thief.close()
        victim_peer.close()
    # The backend, back on its own listener, still gets what devices send.
    backend = local_broker.Service(b)
    again = Peer(b.port, b.ca_path, victim_crt, victim_key, victim)
    try:
        assert again.wait_connected()
        assert again.publish("wichtel/v1/%s/status/x" % victim, b"after") == 0
        deadline = time.monotonic() + 5
        while b"after" not in [m[1] for m in backend.received(victim + "/status/x")]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        again.close()
        backend.close()
    gc.collect()
