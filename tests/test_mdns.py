"""The page's name on the home network: the name, the answers to mDNS questions (a property
test throws arbitrary packets at the parser), the same answers on MicroPython, the host's
responder over a real UDP socket with its bound, and the board setting its hostname."""

import asyncio
import json
import socket
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.local_page import mdns, mdns_host
from tests import micropython_unix

NAME = "wm-8-eco-k3x7"
ADDR = bytes((192, 168, 1, 20))


def _query(name: str, qtype: int = 1, qid: int = 0, unicast_bit: bool = False) -> bytes:
    head = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0)
    labels = b"".join(bytes((len(p),)) + p.encode() for p in name.split(".")) + b"\x00"
    return head + labels + struct.pack(">HH", qtype, 0x8001 if unicast_bit else 1)


def _parse_answer(reply: bytes) -> tuple:
    """(id, flags, questions, answers, the first answer's name, type, class, ttl, address)."""
    qid, flags, qd, an = struct.unpack(">HHHH", reply[:8])
    at = 12
    for _ in range(qd):  # skip the echoed question
        while reply[at]:
            at += 1 + reply[at]
        at += 5
    labels = []
    while reply[at]:
        labels.append(reply[at + 1 : at + 1 + reply[at]].decode())
        at += 1 + reply[at]
    rtype, rclass, ttl, length = struct.unpack(">HHIH", reply[at + 1 : at + 11])
    return qid, flags, qd, an, ".".join(labels), rtype, rclass, ttl, reply[at + 11 : at + 11 + length]


def test_the_name_is_the_model_and_the_short_id() -> None:
    assert mdns.local_name("WM 8 Eco", "k3x7abcdefghijklmnop") == NAME
    assert mdns.local_name("Kaffeeglück 3", "ABCD1234") == "kaffeegl-ck-3-abcd"
    assert mdns.local_name("  ***  ", "q2w3") == "wichtel-q2w3"
    assert mdns.local_name("WM 8 Eco", "dev-1") == "wm-8-eco-dev1" and mdns.local_name("K", "--") == "k"
    long = mdns.local_name("x" * 100, "abcd")
    assert len(long) == 45 and long.endswith("-abcd")  # a DNS label holds 63


def test_a_question_for_our_name_gets_our_address_and_others_get_nothing() -> None:
    reply = mdns.answer(_query(NAME + ".local"), NAME, ADDR)
    qid, flags, qd, an, name, rtype, rclass, ttl, addr = _parse_answer(reply)
    assert (qid, flags, qd, an) == (0, 0x8400, 0, 1) and name == NAME + ".local"
    assert (rtype, rclass, ttl, addr) == (1, 0x8001, mdns.TTL_S, ADDR)
    assert mdns.answer(_query(NAME.upper() + ".LOCAL"), NAME, ADDR)  # names are not case-sensitive
    assert mdns.answer(_query(NAME + ".local", qtype=255), NAME, ADDR)  # ANY
    for other in (_query("printer.local"), _query(NAME + ".local", qtype=28), _query(NAME + ".example")):
        assert mdns.answer(other, NAME, ADDR) == b""
    response = bytearray(_query(NAME + ".local"))
    response[2] = 0x84  # a response, not a question: never answered (no loops between responders)
    assert mdns.answer(bytes(response), NAME, ADDR) == b""


def test_a_one_shot_resolver_gets_its_id_and_question_back_with_a_short_ttl() -> None:
    reply = mdns.answer(_query(NAME + ".local", qid=0x1234, unicast_bit=True), NAME, ADDR, unicast=True)
    qid, flags, qd, an, name, _, _, ttl, addr = _parse_answer(reply)
    assert (qid, flags, qd, an, name, ttl, addr) == (0x1234, 0x8400, 1, 1, NAME + ".local", 10, ADDR)


def test_a_compressed_name_is_read_and_a_pointer_loop_is_refused() -> None:
    head = struct.pack(">HHHHHH", 0, 0, 2, 0, 0, 0)
    first = b"\x05other\x05local\x00" + struct.pack(">HH", 1, 1)
    second = bytes((len(NAME),)) + NAME.encode() + b"\xc0\x12" + struct.pack(">HH", 1, 1)  # ".local" by pointer
    assert mdns.answer(head + first + second, NAME, ADDR)
    loop = struct.pack(">HHHHHH", 0, 0, 1, 0, 0, 0) + b"\xc0\x0c" + struct.pack(">HH", 1, 1)
    assert mdns.answer(loop, NAME, ADDR) == b""


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=200))
def test_no_packet_makes_the_parser_raise(packet: bytes) -> None:
    out = mdns.answer(packet, NAME, ADDR)
    assert out == b"" or _parse_answer(out)[4] == NAME + ".local"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.integers(min_value=12, max_value=60))
def test_a_real_query_with_garbage_after_or_cut_short_never_raises(tail: bytes, cut: int) -> None:
    q = _query(NAME + ".local")
    for packet in (q + tail, q[:cut]):
        mdns.answer(packet, NAME, ADDR)


def test_the_same_answers_on_micropython() -> None:
    packets = [
        _query(NAME + ".local"),
        _query(NAME + ".local", qid=7, unicast_bit=True),
        _query("x.local"),
        b"\x00" * 5,
    ]
    code = (
        "import json\nfrom agent.local_page import mdns\n"
        "print(json.dumps([[mdns.answer(p, %r, %r, u).hex() for u in (False, True)] for p in %r]))\n"
        "print(mdns.local_name('WM 8 Eco', 'k3x7abcd'))\n" % (NAME, ADDR, packets)
    )
    out = micropython_unix.run(code, heap=128 * 1024).splitlines()
    assert json.loads(out[0]) == [[mdns.answer(p, NAME, ADDR, u).hex() for u in (False, True)] for p in packets]
    assert out[1] == NAME


def test_the_host_responder_answers_over_udp_within_its_bound() -> None:
    async def go() -> None:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1] + 1 if probe.getsockname()[1] < 65000 else 40000
        transport, responder = await mdns_host.start(NAME, "127.0.0.1", print, port=port, group=False)
        probe.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            for i in range(mdns_host.MAX_ANSWERS_PER_S + 5):
                probe.sendto(_query(NAME + ".local", qid=i), ("127.0.0.1", port))
            probe.sendto(_query("someone-else.local", qid=99), ("127.0.0.1", port))
            got = []
            deadline = loop.time() + 5
            while loop.time() < deadline and len(got) < mdns_host.MAX_ANSWERS_PER_S:
                try:
                    got.append(probe.recv(1500))
                except BlockingIOError:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            with_more = True
            try:
                probe.recv(1500)
            except BlockingIOError:
                with_more = False
            assert len(got) == mdns_host.MAX_ANSWERS_PER_S and not with_more  # the bound: no flood out
            assert responder.ignored == 5 and responder.answered == mdns_host.MAX_ANSWERS_PER_S
            assert all(_parse_answer(r)[8] == bytes((127, 0, 0, 1)) for r in got)
        finally:
            transport.close()
            probe.close()

    asyncio.run(go())


def test_the_board_sets_its_hostname_before_it_joins() -> None:
    from firmware.wifi import WifiLink
    from hil_tests.emulated import network

    link = WifiLink(network, "home", "secret", print, hostname=NAME)
    assert network.hostname() == NAME and link.ssid == "home"


def _lan_address() -> str:
    """This machine's IPv4 address on its network (not loopback)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: the route picks the interface
        return str(probe.getsockname()[0])
    finally:
        probe.close()


def test_run_with_the_page_on_the_network_answers_its_name_by_multicast(tmp_path: object) -> None:
    """`wichtel run --page <address>:0` end to end: the name is printed, a multicast question
    on the network is answered with the page's address, and the page answers to the name."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    from agent import profile_loader, setup_code
    from tests.test_local_page_browser import CODE

    ip = _lan_address()
    assert not ip.startswith("127."), ip
    data = os.path.join(str(tmp_path), "device")
    os.makedirs(os.path.join(data, "identity"))
    setup_code.write_record(
        os.path.join(data, "identity"), setup_code.hash_code(CODE, iterations=setup_code.MIN_ITERATIONS)
    )
    cmd = [sys.executable, "-m", "agent", "run", "--profile", profile_loader.example("washing_machine"), "--simulate",
           "--speed", "60", "--hours", "2", "--device-id", "k3x7", "--data-dir", data, "--page", ip + ":0"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ask = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        line = ""
        deadline = time.monotonic() + 30
        while "(mDNS)" not in line:
            assert time.monotonic() < deadline and proc.poll() is None, line
            line = proc.stdout.readline()  # type: ignore[union-attr]
        url = line.split("also as ")[1].split()[0]
        assert url.startswith("http://wm-8-eco-k3x7.local:"), line
        port = int(url.rsplit(":", 1)[1].strip("/"))
        ask.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ask.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        ask.bind(("", mdns.MDNS_PORT))
        ask.setsockopt(
            socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(mdns.MDNS_GROUP) + socket.inet_aton(ip)
        )
        ask.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ip))
        ask.settimeout(0.5)
        answers = []
        for _ in range(20):  # multicast is best effort: ask again until answered
            ask.sendto(_query("wm-8-eco-k3x7.local"), (mdns.MDNS_GROUP, mdns.MDNS_PORT))
            try:
                while not answers:
                    packet = ask.recv(1500)
                    if packet[2] & 0x80:
                        answers.append(packet)
            except TimeoutError:
                continue
            break
        assert answers and _parse_answer(answers[0])[8] == socket.inet_aton(ip)
        req = urllib.request.Request(
            "http://%s:%d/login" % (ip, port), headers={"Host": "wm-8-eco-k3x7.local:%d" % port}
        )
        with urllib.request.urlopen(req, timeout=10) as res:
            assert res.status == 200  # the page answers to its name
    finally:
        ask.close()
        proc.terminate()
        proc.wait(30)
        proc.stdout.close()  # type: ignore[union-attr]
