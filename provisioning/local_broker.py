"""A local Mosquitto for tests and the demo, set up as the fleet's broker is: a device
listener and a service listener on free loopback ports, each trusting its own CA, with
the ACLs of provisioning/broker_rules.py and a small PKI of its own; and the operator's
service, a backend that subscribes to the devices' trees on the service listener and
confirms the consent receipts and erasure requests it received.
"""

import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time

import paho.mqtt.client as mqtt

from agent.core import limits
from provisioning import broker_rules, pki

DEVICES = ("dev-1", "dev-2")
SERVICE = "backend"  # the test backend's name; its certificate says service:backend
DEVICE_ACL = broker_rules.device_acl()
SERVICE_ACL = broker_rules.service_acl()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def available() -> bool:
    return shutil.which("mosquitto") is not None


class Broker:
    """A Mosquitto on two loopback ports: port for devices, service_port for services. With
    fleet_dir (the output of `wichtel provision broker`) it uses the manufacturer's files:
    CA files, server certificates, CRLs and ACLs (service_certs is then the caller's to
    fill); otherwise a small PKI of its own with two devices, the backend service and
    some bad certificates. certs holds device certificates, service_certs services'."""

    def __init__(self, directory: str, fleet_dir: str | None = None) -> None:
        self.dir = directory
        self.port = free_port()
        self.service_port = free_port()
        while self.service_port == self.port:
            self.service_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = os.path.join(directory, "mosquitto.log")
        self.certs: dict = {}
        self.service_certs: dict = {}
        if fleet_dir is not None:
            self.ca_path = os.path.join(fleet_dir, "ca-chain.pem")
            self.service_ca_path = os.path.join(fleet_dir, "service-ca.pem")
            self.crl_path = os.path.join(fleet_dir, "crl.pem")
            self.service_crl_path = os.path.join(fleet_dir, "service-crl.pem")
            self.acl_path = os.path.join(fleet_dir, "device.acl")
            self.service_acl_path = os.path.join(fleet_dir, "service.acl")
            self.service_server = (
                os.path.join(fleet_dir, "service-server.crt"),
                os.path.join(fleet_dir, "service-server.key"),
            )
            self.conf = self._config(fleet_dir)
            return
        self.crl_path = self.service_crl_path = ""
        self.acl_path = os.path.join(directory, "device.acl")
        self.service_acl_path = os.path.join(directory, "service.acl")
        self.ca = pki.make_ca()
        self.ca_path, _ = self.ca.write(directory, "ca")
        # The services' CA: a root of its own, the only one the service listener trusts.
        self.service_ca = pki.make_ca("Wichtel Test Service CA")
        self.service_ca_path, _ = self.service_ca.write(directory, "service-ca")
        pki.issue(self.ca, "localhost", server_names=["localhost", "127.0.0.1"]).write(directory, "server")
        self.service_server = pki.issue(self.service_ca, "localhost", server_names=["localhost", "127.0.0.1"]).write(
            directory, "service-server"
        )
        self.service_certs[SERVICE] = pki.issue(self.service_ca, "service:" + SERVICE, client=True).write(
            directory, "service-" + SERVICE
        )
        for name in DEVICES:
            self.certs[name] = pki.issue(self.ca, name, client=True).write(directory, name)
        self.certs["expired"] = pki.issue(self.ca, "dev-1", client=True, days=1, not_before_days=-30).write(
            directory, "expired"
        )
        other = pki.make_ca("Someone else's CA")
        self.other_ca_path, _ = other.write(directory, "other-ca")
        self.certs["wrong-ca"] = pki.issue(other, "dev-1", client=True).write(directory, "wrong-ca")
        # A broker certificate for another host: a client must refuse it.
        self.wrong_host_dir = os.path.join(directory, "wrong-host")
        os.makedirs(self.wrong_host_dir)
        pki.issue(self.ca, "elsewhere.example", server_names=["elsewhere.example"]).write(self.wrong_host_dir, "server")
        with open(self.acl_path, "w") as f:
            f.write(DEVICE_ACL)
        with open(self.service_acl_path, "w") as f:
            f.write(SERVICE_ACL)
        self.conf = self._config(directory)

    def _config(self, cert_dir: str) -> str:
        path = os.path.join(self.dir, "mosquitto-%s.conf" % os.path.basename(cert_dir))
        with open(path, "w") as f:
            if os.geteuid() == 0:
                # Run as root, mosquitto would switch to its own user, who cannot read the test's files.
                f.write("user root\n")
            f.write(
                "persistence true\npersistence_location %s/\nautosave_interval 1\nset_tcp_nodelay true\n"
                "log_dest file %s\nlog_type error\nlog_type warning\nlog_type notice\n" % (self.dir, self.log)
            )
            cert, key = os.path.join(cert_dir, "server.crt"), os.path.join(cert_dir, "server.key")
            devices = broker_rules.listener(
                self.port, self.ca_path, cert, key, self.acl_path, bind="127.0.0.1", crlfile=self.crl_path
            )
            services = broker_rules.listener(
                self.service_port,
                self.service_ca_path,
                *self.service_server,
                self.service_acl_path,
                bind="127.0.0.1",
                crlfile=self.service_crl_path,
            )
            f.write(broker_rules.config(devices, services))
        return path

    def start(self, wrong_host: bool = False) -> None:
        conf = self._config(self.wrong_host_dir) if wrong_host else self.conf
        self.proc = subprocess.Popen([shutil.which("mosquitto") or "mosquitto", "-c", conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 10
        waiting = [self.port, self.service_port]  # Mosquitto opens its listeners one after the other
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mosquitto exited with %s; see %s" % (self.proc.returncode, self.log))
            try:
                with socket.create_connection(("127.0.0.1", waiting[0]), timeout=0.2):
                    waiting.pop(0)
                if not waiting:
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not listen on port %d" % waiting[0])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


# What the backend owes a device an end-to-end confirmation of (docs/asyncapi.yaml, confirm).
CONFIRMED_KINDS = ("consent_receipt", "erasure_request")
_CONFIRM_BATCH_S = 0.25  # ids arriving within this are confirmed in one command


class Service:
    """The operator's backend, connected as a real one is: on the service listener, with a
    certificate of the service CA, verifying the broker with the service CA; its identity
    (service:NAME) is its user name and client id. Subscribes to the devices' trees.

    As the manufacturer's backend does, it confirms the consent receipts and erasure
    requests it received: a `confirm` command naming their ids (the body's "id") on the
    device's command topic, the ids of a short while in one command (at most
    MAX_CONFIRM_IDS), with its own sequence numbers per device. A refusal reply whose
    last_seq shows its counter was behind moves it on and confirms those ids again.
    confirming=False (also later, as an attribute) makes it a backend that never
    confirms; what it receives meanwhile stays unconfirmed."""

    def __init__(self, broker: Broker, topic: str = "wichtel/v1/#", name: str = SERVICE,
                 confirming: bool = True) -> None:  # fmt: skip
        crt, key = broker.service_certs[name]
        self.messages: list = []
        self.times: list = []  # when each message arrived (perf_counter)
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.confirming = confirming
        self.confirms: list = []  # (topic, seq, ids) of each confirm command sent
        self._seq: dict = {}  # device topic tree -> the last sequence number this service used
        self._owed: dict = {}  # device topic tree -> ids to confirm
        self._recent: dict = {}  # device topic tree -> ids of its last round of confirms (again after a seq refusal)
        self._wake = threading.Event()
        self._closing = False
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="service:" + name, protocol=mqtt.MQTTv5)
        # A persistent session: what arrives while the service is away waits for it.
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        connect_props = Properties(PacketTypes.CONNECT)
        connect_props.SessionExpiryInterval = 3600
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(broker.service_ca_path)
        ctx.load_cert_chain(crt, key)
        self.client.tls_set_context(ctx)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.topic = topic
        self.client.on_connect = lambda c, *a: c.subscribe(self.topic, qos=1)
        self.client.connect("localhost", broker.service_port, clean_start=False, properties=connect_props)
        self.client.loop_start()
        self._confirmer = threading.Thread(target=self._confirm_loop, name="service-confirm", daemon=True)
        self._confirmer.start()
        if not self.ready.wait(10):
            raise RuntimeError("the service did not subscribe")

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if "/cmd/" in msg.topic:
            return  # commands (its own among them), not what devices send
        props = getattr(msg, "properties", None)
        user = dict(getattr(props, "UserProperty", []) or []) if props is not None else {}
        with self.lock:
            self.messages.append((msg.topic, msg.payload, msg.retain, user.get("id")))
            self.times.append(time.perf_counter())
        self._note(msg.topic, bytes(msg.payload))

    def _note(self, topic: str, payload: bytes) -> None:
        """Take note of what needs confirming, or of a confirm the device refused."""
        parts = topic.split("/")
        if len(parts) != 4 or parts[3] == "status" or not payload.startswith(b"{"):
            return
        try:
            body = json.loads(payload)
        except ValueError:
            return
        tree = "/".join(parts[:3])
        data = body.get("data") if isinstance(body, dict) else None
        with self.lock:
            if body.get("kind") in CONFIRMED_KINDS and isinstance(body.get("id"), int) and self.confirming:
                self._owed.setdefault(tree, []).append(body["id"])
                self._wake.set()
            elif body.get("kind") == "command_reply" and isinstance(data, dict) and data.get("command") == "confirm":
                last = data.get("last_seq")
                if data.get("ok") is False and isinstance(last, int) and last >= self._seq.get(tree, 0):
                    # Our counter was behind the device's (it kept its own across our restarts).
                    self._seq[tree] = last
                    self._owed.setdefault(tree, []).extend(self._recent.get(tree, []))
                    self._wake.set()

    def _confirm_loop(self) -> None:
        while not self._closing:
            if not self._wake.wait(0.5):
                continue
            time.sleep(_CONFIRM_BATCH_S)  # what arrives together is confirmed together
            self._wake.clear()
            with self.lock:
                owed, self._owed = self._owed, {}
            for tree, ids in owed.items():
                unique = sorted(set(ids))
                with self.lock:
                    self._recent[tree] = unique
                for i in range(0, len(unique), limits.MAX_CONFIRM_IDS):
                    self._send_confirm(tree, unique[i : i + limits.MAX_CONFIRM_IDS])

    def _send_confirm(self, tree: str, ids: list) -> None:
        with self.lock:
            seq = self._seq.get(tree, 0) + 1
            self._seq[tree] = seq
            self.confirms.append((tree + "/cmd/confirm", seq, ids))
        body = {"device": tree.rsplit("/", 1)[1], "seq": seq, "args": {"ids": ids}}
        self.client.publish(tree + "/cmd/confirm", json.dumps(body).encode(), qos=1)

    def wait_for(self, count: int, timeout: float = 20.0, topic_part: str = "") -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received(topic_part)
            if len(got) >= count:
                return got
            time.sleep(0.02)
        return self.received(topic_part)

    def received(self, topic_part: str = "") -> list:
        with self.lock:
            return [m for m in self.messages if topic_part in m[0]]

    def send(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        self._confirmer.join(5)
        self.client.loop_stop()
        self.client.disconnect()
