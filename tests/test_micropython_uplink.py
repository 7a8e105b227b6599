"""The board runtime (firmware/runtime.py) on the real MicroPython unix port with a fixed heap:
mutual TLS from the bundle's files to the test Mosquitto, broker restarts, nothing lost, and
brokers it cannot verify refused."""

import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.core.errors import ConfigError
from bench.micropython_uplink import write_bundle
from firmware import board_config, runtime
from provisioning import pki
from provisioning.local_broker import Service
from tests import micropython_unix, timeouts

ROOT = micropython_unix.ROOT
# The device's heap: fixed, as on a board (the run's peak is in its result and the report).
HEAP = 1024 * 1024
RUN_CPU_S = 120  # a device run's CPU budget; its wall-clock limit follows (tests/timeouts.py)


def start_device(bundle: str, out_path: str, *args: str, heap: int = HEAP) -> subprocess.Popen:
    """The runtime on the unix port, as a process of its own (stdout to out_path)."""
    missing = micropython_unix.available()
    if missing:
        pytest.fail(missing)
    env = dict(os.environ, MICROPYPATH=os.pathsep.join((".frozen", ROOT)))
    cmd = [micropython_unix.interpreter(), "-X", "heapsize=%d" % heap, os.path.join(ROOT, "firmware", "runtime.py"),
           "--bundle", bundle, *args]  # fmt: skip
    with open(out_path, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    timeouts.limit_cpu(proc.pid, RUN_CPU_S)  # gone already: result_of reads why
    return proc


def result_of(proc: subprocess.Popen, out_path: str) -> dict:
    try:
        proc.wait(timeouts.wall_s(RUN_CPU_S))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    with open(out_path) as f:
        text = f.read()
    assert proc.returncode == 0, text[-4000:]
    lines = [line for line in text.splitlines() if line.startswith(runtime.RESULT_MARK)]
    assert lines, text[-4000:]
    result: dict = json.loads(lines[-1][len(runtime.RESULT_MARK) :])
    result["output"] = text
    return result


def _device_messages(service: Service, device: str) -> list:
    """(topic, body) of what the device sent, but its availability (not an agent message)."""
    return [(m[0], json.loads(m[1])) for m in service.received("/%s/" % device) if "/status/" not in m[0]]


def _wait_for_more(service: Service, device: str, count: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = len(_device_messages(service, device))
        if n >= count:
            return n
        time.sleep(0.05)
    raise AssertionError("the service has %d messages of %s, waited for %d" % (n, device, count))


def test_micropython_device_waits_for_the_broker_survives_restarts_and_loses_nothing(
    broker: object, tmp_path: str
) -> None:
    service = Service(broker)  # type: ignore[arg-type]
    try:
        bundle = write_bundle(str(tmp_path / "bundle"), broker, broker.port)  # type: ignore[operator,attr-defined]
        out = str(tmp_path / "device.out")  # type: ignore[operator]
        # The broker is down when the device starts: the connect path fails (refused) and
        # the uplink must go on trying, with growing waits.
        broker.stop()  # type: ignore[attr-defined]
        # Keepalive 5 s: the pings (after 2.5 s of quiet) and their answers run on MicroPython too.
        proc = start_device(bundle, out, "--seconds", "12", "--speed", "20000", "--receipts-every-ms", "250",
                            "--drain-s", "90", "--keepalive", "5",
                            "--data-dir", str(tmp_path / "data"))  # type: ignore[operator]  # fmt: skip
        try:
            time.sleep(2.5)
            broker.start()  # type: ignore[attr-defined]
            seen = _wait_for_more(service, "dev-1", 3)
            broker.restart()  # type: ignore[attr-defined]  # mid-stream
            seen = _wait_for_more(service, "dev-1", seen + 1)  # the link is back
            broker.stop()  # type: ignore[attr-defined]
            time.sleep(1.5)  # the device goes on making messages meanwhile
            broker.start()  # type: ignore[attr-defined]
            result = result_of(proc, out)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        print({k: v for k, v in result.items() if k != "output"})
        assert result["runtime"] == "micropython"
        # Before the broker came it failed and waited (backoff); it came back after the restart
        # (messages arrived after it); the outage may fall within a backoff wait.
        assert result["failures"] >= 3 and len(result["waits_ms"]) >= 3, result
        assert result["connects"] >= 2, result
        # Everything it made left and was acknowledged; receipts were confirmed by the service.
        assert result["left"] == 0 and result["dropped"] == 0, result["output"][-3000:]
        assert result["receipts"] >= 10 and service.confirms
        made = result["made"]
        got = _device_messages(service, "dev-1")
        for _ in range(100):  # the service itself may still be reconnecting after the last restart
            if {body["id"] for _, body in got} >= set(range(1, made + 1)):
                break
            time.sleep(0.1)
            got = _device_messages(service, "dev-1")
        ids = sorted({body["id"] for _, body in got})
        # Every message the device made arrived (duplicates are the receiver's to drop), none else.
        assert ids == list(range(1, made + 1)), (made, ids[:5], len(ids))
        # Order per category: the first arrival of each message comes in id order.
        firsts: dict = {}
        for topic, body in got:
            seq = firsts.setdefault(topic, [])
            if body["id"] not in seq:
                seq.append(body["id"])
        assert len(firsts) >= 2
        for topic, seq in firsts.items():
            assert seq == sorted(seq), topic
        # The heap was fixed: its use is the interpreter's own count, within it.
        assert 0 < result["heap_peak_bytes"] <= result["heap_total_bytes"] <= HEAP
    finally:
        service.close()


def test_micropython_device_sends_a_thousand_messages_through_a_restart_and_loses_none(
    broker: object, tmp_path: str
) -> None:
    service = Service(broker)  # type: ignore[arg-type]
    try:
        bundle = write_bundle(str(tmp_path / "bundle"), broker, broker.port)  # type: ignore[operator,attr-defined]
        out = str(tmp_path / "device.out")  # type: ignore[operator]
        # A thousand maintenance messages wait in the outbox (in the heap: a bigger one).
        proc = start_device(bundle, out, "--seconds", "0", "--burst", "1000", "--drain-s", "120",
                            "--data-dir", str(tmp_path / "data"), heap=2 * HEAP)  # type: ignore[operator]  # fmt: skip
        try:
            _wait_for_more(service, "dev-1", 200)
            broker.restart()  # type: ignore[attr-defined]  # mid-stream
            result = result_of(proc, out)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        print({k: v for k, v in result.items() if k != "output"})
        assert result["made"] == 1000 and result["left"] == 0 and result["connects"] >= 2, result
        ids: list = []
        for _ in range(200):  # the service itself may still be reconnecting after the restart
            got = _device_messages(service, "dev-1")
            ids = sorted({body["id"] for _, body in got})
            if ids == list(range(1, 1001)):
                break
            time.sleep(0.1)
        assert ids == list(range(1, 1001)), (len(ids), ids[:3])
        firsts: list = []
        for _, body in got:
            if body["id"] not in firsts:
                firsts.append(body["id"])
        assert firsts == sorted(firsts)
    finally:
        service.close()


class _TlsPeer:
    """A hostile broker: TLS with the certificate it was given, taking any client (or none),
    answering a CONNECT with CONNACK so that a device that let it through would go on. It
    records every byte of application data a device sent it."""

    def __init__(self, cert: str, key: str) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.verify_mode = ssl.CERT_NONE  # an attacker takes whoever comes
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.handshakes = 0  # connections that got through TCP
        self.data = b""
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.handshakes += 1
            conn.settimeout(5)
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    self._talk(tls)
            except (OSError, ssl.SSLError):
                pass  # the device broke off the handshake: what a careful device does
            finally:
                conn.close()

    def _talk(self, tls: ssl.SSLSocket) -> None:
        """Enough MQTT to make a device believe it is connected: CONNACK, SUBACK, PUBACK."""
        buf = b""
        while True:
            chunk = tls.recv(4096)
            if not chunk:
                return
            self.data += chunk
            buf += chunk
            while len(buf) >= 2 and len(buf) >= 2 + buf[1] and buf[1] < 0x80:
                first, body, buf = buf[0], buf[2 : 2 + buf[1]], buf[2 + buf[1] :]
                if first == 0x10:
                    tls.sendall(b"\x20\x02\x00\x00")
                elif first == 0x82:
                    tls.sendall(b"\x90\x03" + body[:2] + b"\x01")
                elif first & 0xF6 == 0x32:  # PUBLISH with QoS 1
                    n = int.from_bytes(body[:2], "big")
                    tls.sendall(b"\x40\x02" + body[2 + n : 4 + n])

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        self.sock.close()


@pytest.mark.parametrize("peer", ["wrong-ca", "wrong-host", "right-ca-and-host"])
def test_micropython_device_refuses_a_broker_it_cannot_verify(peer: str, broker: object, tmp_path: str) -> None:
    d = str(tmp_path)
    if peer == "wrong-ca":  # a certificate for the right name from someone else's CA
        cert, key = pki.issue(pki.make_ca("Someone else's CA"), "localhost", server_names=["localhost"]).write(d, "p")
    elif peer == "wrong-host":  # a certificate of the fleet's own CA, for another host
        wrong = broker.wrong_host_dir  # type: ignore[attr-defined]
        cert, key = os.path.join(wrong, "server.crt"), os.path.join(wrong, "server.key")
    else:  # the control: this peer would get the device's messages if it could be verified
        cert, key = pki.issue(broker.ca, "localhost", server_names=["localhost"]).write(d, "p")  # type: ignore[attr-defined]
    hostile = _TlsPeer(cert, key)
    try:
        bundle = write_bundle(os.path.join(d, "bundle"), broker, hostile.port)
        out = os.path.join(d, "device.out")
        proc = start_device(bundle, out, "--seconds", "4", "--speed", "2000", "--drain-s", "2")
        result = result_of(proc, out)
    finally:
        hostile.close()
    print({k: v for k, v in result.items() if k != "output"})
    if peer == "right-ca-and-host":
        assert result["connects"] >= 1 and hostile.data[:1] == b"\x10"
        return
    assert hostile.handshakes >= 2  # it tried, and tried again
    assert hostile.data == b"", hostile.data[:40]  # not a byte of MQTT: no client id, no message
    assert result["connects"] == 0 and result["failures"] >= 2 and result["waits_ms"], result
    assert "certificate" in result["last_error"].lower() or "cn" in result["last_error"].lower(), result


# -- the bundle's PEM files as the runtime reads them (on CPython; the same code runs on the board) --


def _pem(der: bytes, label: bytes = b"CERTIFICATE") -> bytes:
    import base64

    body = base64.encodebytes(der)
    return b"-----BEGIN " + label + b"-----\n" + body + b"-----END " + label + b"-----\n"


def _der(n: int) -> bytes:
    if n < 0x80:
        return b"\x30" + bytes([n]) + b"\x01" * n
    width = (n.bit_length() + 7) // 8
    return b"\x30" + bytes([0x80 | width]) + n.to_bytes(width, "big") + b"\x02" * n


@given(st.lists(st.integers(0, 3000), min_size=1, max_size=4))
def test_pem_blocks_give_back_each_der_structure(sizes: list) -> None:
    ders = [_der(n) for n in sizes]
    text = b"junk before\n" + b"".join(_pem(d) for d in ders) + b"after"
    assert board_config.pem_blocks(text, (b"CERTIFICATE",), "ca.pem", 4) == ders


_PEM_PARTS = [b"-----BEGIN ", b"-----END ", b"CERTIFICATE", b"PRIVATE KEY", b"-----", b"\n", b"MAo=", b"MAMBAQE=",
              b"AAAA", b"=", b"\x00", b"\xff"]  # fmt: skip


@given(st.one_of(st.binary(max_size=600), st.lists(st.sampled_from(_PEM_PARTS), max_size=40).map(b"".join)))
def test_pem_blocks_refuse_anything_else_by_name(data: bytes) -> None:
    try:
        board_config.pem_blocks(data, (b"CERTIFICATE",), "ca.pem", 4)
    except ConfigError as e:
        assert str(e).startswith("ca.pem: ")


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "no PEM block"),
        (_pem(_der(10), b"PRIVATE KEY"), "expected b'CERTIFICATE'"),
        (_pem(_der(10))[:-20], "has no"),
        (_pem(_der(10))[:-4] + b"X-----\n", "has no"),
        (_pem(_der(10)).replace(b"MAo", b"M!o"), "base64"),
        (_pem(_der(10) + b"\x00"), "not one whole DER"),
        (_pem(b"\x31\x00"), "not one whole DER"),
        (_pem(_der(1)) * 5, "more than 4"),
    ],
)
def test_pem_blocks_refuse_damaged_files_naming_the_fault(data: bytes, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        board_config.pem_blocks(data, (b"CERTIFICATE",), "ca.pem", 4)


def test_bundle_files_over_their_limit_are_refused(tmp_path: str) -> None:
    path = str(tmp_path / "ca.pem")  # type: ignore[operator]
    with open(path, "wb") as f:
        f.write(b"x" * board_config.MAX_PEM_BYTES)
    assert board_config.read_file(path, board_config.MAX_PEM_BYTES) == b"x" * board_config.MAX_PEM_BYTES  # at the bound
    with open(path, "ab") as f:
        f.write(b"x")
    with pytest.raises(ConfigError, match="more than 8192 bytes"):
        board_config.read_file(path, board_config.MAX_PEM_BYTES)


def test_on_micropython_a_fault_in_the_connect_path_ends_in_a_retry_with_backoff() -> None:
    # The fault the unix port first showed (KeyError from the stream's extra info) and
    # its kin: whatever the connect path raises, the connection task lives on and waits.
    out = micropython_unix.run(
        "import asyncio, json\n"
        "from agent.core.uplink import PortableUplink\n"
        "faults = [KeyError('socket'), AttributeError('setsockopt'), TypeError('x'), OSError(111)]\n"
        "def context():\n"
        "    raise faults[min(len(faults) - 1, up.failures)]\n"
        "up = PortableUplink('localhost', 1, 'dev-1', context, rand=lambda: 0.5)\n"
        "async def main():\n"
        "    up.start()\n"
        "    await asyncio.sleep(2.5)\n"
        "    alive = not up._task.done()\n"
        "    await up.stop()\n"
        "    print(json.dumps([alive, up.failures, up.waits_ms, up.last_error]))\n"
        "asyncio.run(main())\n",
        heap=192 * 1024,
    )
    alive, failures, waits, last = json.loads(out.strip().splitlines()[-1])
    assert alive and failures >= 3, out
    # Full jitter at 0.5: half of 500, 1000, 2000 ms: the waits double.
    assert waits[:3] == [250, 500, 1000], waits
    assert last.startswith("OSError") or last.startswith("TypeError"), last


def test_the_uplink_rate_benchmark_runs_the_same_script_on_both_runtimes() -> None:
    proc = timeouts.run([sys.executable, os.path.join(ROOT, "bench", "micropython_uplink.py"), "--messages", "60",
                         "--json"], RUN_CPU_S, capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["uplink_messages"] == 60
    assert result["uplink_msgs_per_s"] > 0 and result["cpython_uplink_msgs_per_s"] > 0
    assert 0 < result["uplink_heap_peak_bytes"] <= result["uplink_heap_bytes"] <= HEAP


# -- the runtime's outbox on flash (firmware/flash_store.py) --------------------------------

_FLASH_CASE = """
from agent.core.outbox import Outbox
from firmware.flash_store import FlashStore
d = %r
box = Outbox(8, FlashStore(d))
for i in range(5):
    box.push("wichtel/v1/dev-1/maintenance", b'{"i":%%d}' %% i, "maintenance")
box.ack()
box.sync()
again = Outbox(8, FlashStore(d))  # a restart: what was pending comes back from the files
print([e[0] for e in again.pending], again.next_id, again.damaged)
seg = FlashStore(d).segments()[-1]
whole = len(FlashStore(d).read(seg))
with open(d + "/outbox-%%06d.log" %% seg, "ab") as f:
    f.write(b"\\x00\\x00\\x01")  # a record cut off by a power cut
torn = Outbox(8, FlashStore(d))
print([e[0] for e in torn.pending], torn.damaged, len(FlashStore(d).read(seg)) == whole)
print(FlashStore(d + "/none").read(1), FlashStore(d).segments() == [seg])
"""


def test_the_flash_outbox_comes_back_after_a_restart_on_both_runtimes(tmp_path: str) -> None:
    outs = []
    for kind in ("cpython", "micropython"):
        d = str(tmp_path / kind)  # type: ignore[operator]
        os.makedirs(d)
        code = _FLASH_CASE % d
        if kind == "micropython":
            outs.append(micropython_unix.run(code, heap=192 * 1024))
        else:
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                                  env=dict(os.environ, PYTHONPATH=ROOT))  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            outs.append(proc.stdout)
    assert outs[0] == outs[1], outs
    lines = outs[0].splitlines()
    assert lines[0] == "[2, 3, 4, 5] 6 False"
    assert lines[1] == "[2, 3, 4, 5] False True"  # a torn last record is cut away (truncate), not damage
    assert lines[2] == "b'' True"
