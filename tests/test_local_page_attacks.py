"""The local page under attack: the pure rules at every bound and under simulated hours of
hammering, request heads fuzzed, and the real server over real sockets (slow and idle
connections, floods, oversized heads, foreign Host names, forged nonces, the owner signing
in while others hammer)."""

import asyncio
import ipaddress
import os
import re
import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from microdot import Request
from microdot.microdot import AsyncBytesIO

from agent import device, profile_loader, setup_code
from agent.core.errors import ConfigError
from agent.local_page import access, intake, limits
from agent.local_page.server import LocalPage
from provisioning.local_broker import free_port

CODE = "K7M2P-9QXR4"
RECORD = setup_code.hash_code(CODE, iterations=setup_code.MIN_ITERATIONS)
FIRSTS = limits.WINDOW_CHECKS - limits.REPEAT_CHECKS  # first checks kept per window


# -- who is asking --------------------------------------------------------------------------
def test_one_key_per_address_whatever_its_spelling() -> None:
    assert access.client_key("::ffff:192.168.1.20") == "192.168.1.20" == access.client_key(" 192.168.1.20 ")
    full = "2001:db8:0:66:0:0:0:1"
    for spelling in ("2001:db8:0:66::1", "2001:DB8:0:66:0::1", "2001:0db8:0000:0066:0000:0000:0000:0001",
                     "2001:db8:0:66::1%eth0", "2001:db8:0:66::0.0.0.1"):  # fmt: skip
        assert access.client_key(spelling) == full, spelling
    assert access.client_group(full) == "2001:db8:0:66::/64"
    assert access.client_group("192.168.1.20") == "192.168.1.20"
    for odd in ("?", "", "1:2:3", "::1::2", "1:2:3:4:5:6:7:8:9", "fe80::12345", "::1.2.3.256"):
        assert access.client_key(odd) == odd.strip().lower()  # not an address: itself, never a crash


@given(st.ip_addresses())
def test_client_key_is_the_address_itself_for_every_address(address: object) -> None:
    key = access.client_key(str(address))
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        assert key == str(address.ipv4_mapped)
    else:
        assert ipaddress.ip_address(key) == address
        assert access.client_key(getattr(address, "exploded", str(address))) == key


# -- the ceiling for all addresses, at its bounds --------------------------------------------
def test_the_window_keeps_first_checks_for_new_addresses_at_its_bounds() -> None:
    throttle = access.LoginThrottle()
    t = 3 * limits.WINDOW_S + 1.0  # inside a window, 29 s before its end
    end = 4 * limits.WINDOW_S
    assert throttle.admit("10.0.0.1", t) == (0.0, False)  # its first check
    repeaters = ["10.0.1.%d" % i for i in range(limits.REPEAT_CHECKS)]
    for address in repeaters:
        assert throttle.admit(address, t) == (0.0, False)  # first
    for address in repeaters:
        assert throttle.admit(address, t) == (0.0, False)  # second: a repeat (REPEAT_CHECKS of them)
    assert throttle.admit("10.0.0.1", t) == (end - t, True)  # one repeat more: crowded, until the window ends
    # First checks go on to the total: WINDOW_CHECKS.
    used = 1 + 2 * len(repeaters)
    newcomers = ["10.0.2.%d" % i for i in range(limits.WINDOW_CHECKS - used)]
    for address in newcomers:
        assert throttle.admit(address, t) == (0.0, False)
    assert throttle.checks_in_window() == limits.WINDOW_CHECKS
    assert throttle.admit("10.0.3.1", t) == (end - t, True)  # a first check over the total waits too
    assert throttle.admit("10.0.3.1", end) == (0.0, False)  # the next window starts afresh
    assert throttle.checks_in_window() == 1


def test_one_ipv6_64_gets_at_most_its_share_of_first_checks() -> None:
    throttle = access.LoginThrottle()
    block = ["2001:db8:0:66::%x" % i for i in range(1, limits.GROUP_FIRSTS + limits.REPEAT_CHECKS + 2)]
    for address in block[: limits.GROUP_FIRSTS]:
        assert throttle.admit(address, 0.0) == (0.0, False)
    for address in block[limits.GROUP_FIRSTS : limits.GROUP_FIRSTS + limits.REPEAT_CHECKS]:
        assert throttle.admit(address, 0.0) == (0.0, False)  # counted as repeats of the /64
    assert throttle.admit(block[-1], 0.0)[1] is True  # the /64's share is gone
    assert throttle.admit("2001:db8:0:67::1", 0.0) == (0.0, False)  # the next /64 has its own
    assert throttle.admit("192.168.1.20", 0.0) == (0.0, False)


# -- simulated hours of hammering --------------------------------------------------------------
def _hammer(attack: list, owners: list, tries_per_step: int, hours: float = 1.0, step_s: float = 0.5,
            typo_first: bool = False) -> tuple:  # fmt: skip
    """An attacker tries `tries_per_step` codes every step, cycling through its addresses, always
    before the owner. Owners arrive one after another, each from an address never used before,
    and follow the page's "try again in" hint. Returns (owner delays in s, checks per window)."""
    gate = access.Gatekeeper(RECORD)
    throttle = gate.throttle
    arrivals = [47.0 + k * (hours * 3600 - 120) / len(owners) for k in range(len(owners))]
    checks: dict = {}
    delays = []
    waiting: list = []  # [address, arrived, next try, typo still to make]
    n = 0
    t = 0.0
    while t < hours * 3600:
        for _ in range(tries_per_step):
            address = attack[n % len(attack)]
            n += 1
            if throttle.admit(address, t)[0] == 0:
                checks[int(t // limits.WINDOW_S)] = checks.get(int(t // limits.WINDOW_S), 0) + 1
        while arrivals and arrivals[0] <= t:
            arrivals.pop(0)
            waiting.append([owners[len(owners) - len(arrivals) - 1], t, t, typo_first])
        for owner in list(waiting):
            if owner[2] > t:
                continue
            result = gate.login(owner[0], "AAAAA-AAAAA" if owner[3] else CODE, t)
            if result.session is None and result.wait_s == 0:  # the typo was checked: wrong
                owner[3] = False
                continue
            if result.session is not None:
                delays.append(t - owner[1])
                waiting.remove(owner)
            else:
                owner[2] = t + result.wait_s
        assert len(throttle) <= limits.MAX_TRACKED_CLIENTS
        assert throttle.checks_in_window() <= limits.WINDOW_CHECKS
        t += step_s
    assert not waiting, "owners still waiting at the end"
    return delays, checks


def test_an_hour_of_hammering_from_one_address_never_keeps_the_owner_out() -> None:
    owners = ["192.168.1.%d" % (100 + k) for k in range(20)] + ["2001:db8:0:1::%d" % (1000 + k) for k in range(20)]
    for attacker in ("192.168.1.66", "2001:db8:0:1::66"):  # in the owner's /24, in the owner's /64
        delays, checks = _hammer([attacker], owners, tries_per_step=20)
        assert len(delays) == len(owners) and max(delays) == 0.0  # checked at once, and signed in
        assert max(checks.values()) <= limits.WINDOW_CHECKS


def test_an_hour_of_hammering_from_10000_addresses_of_a_64_never_keeps_the_owner_out() -> None:
    attack = ["2001:db8:0:66:%x:%x::1" % (i // 100, i % 100) for i in range(10_000)]
    owners = ["192.168.1.%d" % (100 + k) for k in range(10)] + ["2001:db8:0:1::%d" % (1000 + k) for k in range(10)]
    delays, checks = _hammer(attack, owners, tries_per_step=40)
    assert len(delays) == len(owners) and max(delays) == 0.0
    # The attacker got its /64's share and the repeats, nothing more; guessing is bounded.
    assert max(checks.values()) == limits.GROUP_FIRSTS + limits.REPEAT_CHECKS
    assert sum(checks.values()) <= 3600 / limits.WINDOW_S * limits.WINDOW_CHECKS


def test_under_hammering_an_owner_who_mistyped_gets_the_next_check_within_a_window() -> None:
    attack = ["2001:db8:0:66:%x::1" % i for i in range(10_000)]
    owners = ["192.168.1.%d" % (100 + k) for k in range(8)]
    delays, _ = _hammer(attack, owners, tries_per_step=40, hours=0.5, typo_first=True)
    assert len(delays) == len(owners)
    assert max(delays) <= limits.WINDOW_S <= 60
    assert min(delays) > 0  # the repeats were used up by the attacker: the owner did wait


def test_the_owner_in_a_64_shared_with_fewer_attackers_than_its_share_gets_in_at_once() -> None:
    attack = ["2001:db8:0:1::%x" % (0x6600 + i) for i in range(limits.GROUP_FIRSTS - 1)]
    attack += ["10.9.%d.%d" % (i // 200, i % 200) for i in range(FIRSTS - limits.GROUP_FIRSTS)]
    owners = ["2001:db8:0:1::%d" % (1000 + k) for k in range(6)]  # more than a window apart
    delays, _ = _hammer(attack, owners, tries_per_step=300, hours=0.15)
    assert max(delays) == 0.0


def test_the_guarantee_holds_up_to_its_stated_number_of_addresses_and_no_further() -> None:
    """All first checks of a window taken at its start: with one address fewer than the first
    checks kept, the owner still gets one; with as many, it waits for the next window."""
    for attackers, owner_waits in ((FIRSTS - 1, False), (FIRSTS, True)):
        throttle = access.LoginThrottle()
        t = 10 * limits.WINDOW_S
        addresses = ["10.1.%d.%d" % (i // 200, i % 200) for i in range(attackers)]
        for _ in range(3):  # firsts, then repeats until they run out
            for address in addresses:
                throttle.admit(address, t)
        wait, crowded = throttle.admit("192.168.1.100", t)
        assert (wait > 0) == owner_waits and crowded == owner_waits
        if owner_waits:
            assert wait == limits.WINDOW_S  # the next window, at most
        assert throttle.checks_in_window() <= limits.WINDOW_CHECKS


# -- login nonces ---------------------------------------------------------------------------
def test_a_nonce_is_good_only_from_this_process_and_within_its_age() -> None:
    nonces = access.LoginNonces(b"k" * 32)
    nonce = nonces.issue(1000.0)
    assert nonces.valid(nonce, 1000.0) and nonces.valid(nonce, 1000.0 + limits.NONCE_MAX_AGE_S)
    assert not nonces.valid(nonce, 1000.0 + limits.NONCE_MAX_AGE_S + 1)  # too old
    assert not nonces.valid(nonce, 999.0)  # from the future
    assert not access.LoginNonces(b"o" * 32).valid(nonce, 1000.0)  # another device, or before a restart
    issued, rand, mac = nonce.split(".")
    forged = [
        "%d.%s.%s" % (int(issued) + 1, rand, mac),  # another time under the same MAC
        "%s.%s.%s" % (issued, rand[::-1], mac),
        "%s.%s.%s" % (issued, rand, "0" * len(mac)),
        "%s.%s.%s" % (issued, rand, mac[:-1]),
        "%s.%s" % (issued, mac),
        "", ".", "..", "x" * (limits.MAX_NONCE_LEN + 1), "%s.%s.%sé" % (issued, rand, mac),
        "\u0661\u0660\u0660\u0660.%s.%s" % (rand, mac),  # Arabic-Indic digits
    ]  # fmt: skip
    for bad in forged:
        assert not nonces.valid(bad, 1000.0), bad
    assert not nonces.valid(None, 1000.0) and not nonces.valid(12, 1000.0)
    assert len(nonce) <= limits.MAX_NONCE_LEN
    with pytest.raises(ConfigError):
        access.LoginNonces(b"short")


@given(st.text(max_size=200))
def test_no_made_up_nonce_is_accepted(text: str) -> None:
    assert not access.LoginNonces(b"k" * 32).valid(text, 1000.0)


# -- connections ------------------------------------------------------------------------------
def test_one_address_gets_its_share_of_connections_and_no_more() -> None:
    table = intake.ConnectionTable(limits.MAX_CONNECTIONS)
    for i in range(limits.MAX_CONNECTIONS_PER_SOURCE):
        assert table.open(("a", i), "10.0.0.66", 0.0) == (True, None)
    assert table.open(("a", 99), "10.0.0.66", 1.0) == (False, None)  # at the per-address bound
    assert table.from_source("10.0.0.66") == limits.MAX_CONNECTIONS_PER_SOURCE
    assert table.open("owner", "10.0.0.20", 2.0) == (True, None)  # room left for everyone else
    table.close(("a", 0))
    assert table.open(("a", 100), "10.0.0.66", 3.0) == (True, None)


def test_a_full_table_pushes_out_a_connection_still_waiting_for_its_request_never_one_being_answered() -> None:
    cap = 6
    table = intake.ConnectionTable(cap)
    for i in range(cap):  # a crowd of addresses, one idle connection each
        assert table.open(i, "10.0.1.%d" % i, float(i)) == (True, None)
    assert table.open("owner", "10.0.0.20", 10.0) == (True, 0)  # the oldest idle one makes room
    table.request_in("owner")
    for i in range(cap, cap + 3 * cap):  # the crowd keeps coming: it pushes out its own kind
        admitted, out = table.open(i, "10.0.1.%d" % i, 10.0 + i)
        assert admitted and out != "owner"
    assert len(table) == cap
    assert table.open("late", "10.0.0.21", 100.0)[0] is True
    # All being answered: nothing can be pushed out, the newcomer is turned away.
    full = intake.ConnectionTable(2)
    for i in range(2):
        full.open(i, "10.0.2.%d" % i, 0.0)
        full.request_in(i)
    assert full.open("x", "10.0.2.9", 1.0) == (False, None)
    # The address holding the most gives way first.
    table = intake.ConnectionTable(4)
    for i, address in enumerate(("10.0.3.1", "10.0.3.2", "10.0.3.2", "10.0.3.3")):
        table.open(i, address, float(i))
    assert table.open("new", "10.0.3.9", 9.0) == (True, 1)  # 10.0.3.2's oldest, though 10.0.3.1 is older
    assert len(table) == 4 and table.from_source("10.0.3.2") == 1


def test_the_connection_cap_leaves_the_agent_its_file_descriptors() -> None:
    assert intake.connection_cap(None) == limits.MAX_CONNECTIONS
    assert intake.connection_cap(20_000) == limits.MAX_CONNECTIONS
    assert intake.connection_cap(64) == 64 - limits.FD_RESERVE - 1
    at_bound = limits.FD_RESERVE + 1 + limits.MIN_CONNECTIONS
    assert intake.connection_cap(at_bound) == limits.MIN_CONNECTIONS
    with pytest.raises(ConfigError, match="ulimit"):
        intake.connection_cap(at_bound - 1)


# -- Host names -------------------------------------------------------------------------------
def test_the_page_answers_only_to_its_own_address_and_names() -> None:
    assert intake.allowed_hosts("192.168.1.20", 8080) == frozenset({"192.168.1.20:8080"})
    loop = intake.allowed_hosts("127.0.0.1", 8080, ("WM8-1A2B3C.local",))
    assert loop == frozenset({"127.0.0.1:8080", "localhost:8080", "[::1]:8080", "wm8-1a2b3c.local:8080"})
    assert intake.allowed_hosts("[fe80::1]", 80) == frozenset({"[fe80::1]:80", "[fe80::1]"})
    for wildcard in ("0.0.0.0", "::", "", "[::]"):
        with pytest.raises(ConfigError, match="one address"):
            intake.allowed_hosts(wildcard, 8080)
    longest = ("a" * 63 + ".") * 3 + "a" * 61
    assert len(longest) == limits.MAX_NAME_LEN and longest + ":8080" in intake.allowed_hosts(
        "10.0.0.1", 8080, (longest,)
    )
    for bad in ("evil.example:80", "-x.local", "a..b", "x" * 64 + ".local", "a b", "ü.local", longest + "a"):
        with pytest.raises(ConfigError, match="host name"):
            intake.allowed_hosts("192.168.1.20", 8080, (bad,))


# -- request heads at their bounds --------------------------------------------------------------
HOSTS = intake.allowed_hosts("127.0.0.1", 8080)


def _head(line: bytes = b"GET / HTTP/1.1", headers: tuple = (b"Host: 127.0.0.1:8080",)) -> bytes:
    return b"\r\n".join((line, *headers)) + b"\r\n\r\n"


def _status(data: bytes) -> int:
    try:
        intake.parse_head(data, HOSTS)
    except intake.HeadError as e:
        return e.status
    return 200


def test_request_heads_at_every_bound() -> None:
    pads = [b"X-Pad-%d: %s" % (i, b"p" * 200) for i in range(limits.MAX_HEADERS - 1)]
    many = _head(headers=(b"Host: 127.0.0.1:8080", *pads))
    assert _status(many) == 200 and _status(many[:-2] + b"X-One-More: 1\r\n\r\n") == 431
    grow = limits.MAX_HEAD_BYTES - len(many)
    assert _status(many[:-4] + b"p" * grow + b"\r\n\r\n") == 200
    assert _status(many[:-4] + b"p" * (grow + 1) + b"\r\n\r\n") == 431  # one byte over the whole head
    line = b"X-Long: " + b"l" * (limits.MAX_HEADER_LINE - 8)
    assert len(line) == limits.MAX_HEADER_LINE
    assert _status(_head(headers=(b"Host: 127.0.0.1:8080", line))) == 200
    assert _status(_head(headers=(b"Host: 127.0.0.1:8080", line + b"l"))) == 431
    target = b"/" + b"t" * (limits.MAX_REQUEST_LINE - len(b"GET / HTTP/1.1"))
    assert _status(_head(b"GET " + target + b" HTTP/1.1")) == 200
    assert _status(_head(b"GET " + target + b"t HTTP/1.1")) == 414
    host = b"Host: 127.0.0.1:8080"
    assert intake.parse_head(_head(headers=(host, b"Content-Length: %d" % limits.MAX_BODY_BYTES)), HOSTS)
    assert _status(_head(headers=(host, b"Content-Length: %d" % (limits.MAX_BODY_BYTES + 1)))) == 413
    refusals = {
        400: [_head(headers=()), _head(headers=(host, host)), _head(b"GET  / HTTP/1.1"), _head(b"GET /"),
              _head(headers=(host, b"Content-Length: 1", b"Content-Length: 1")),
              _head(headers=(host, b"Content-Length: -1")), _head(headers=(host, b"Content-Length: 1e3")),
              _head(headers=(host, b"Content-Length: \xc2\xb2")), _head(headers=(host, b" folded: x")),
              _head(headers=(host, b"Bad Name: x")), _head(headers=(host, b"no colon")),
              _head(headers=(host, b"X: a\x00b")), _head(headers=(host, b"X: \xff")),
              _head(b"GET /\xc3\xa4 HTTP/1.1"), _head(b"GET http://127.0.0.1:8080/ HTTP/1.1"),
              _head(b"G\xc3\x89T / HTTP/1.1"), b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"],
        421: [_head(headers=(b"Host: evil.example:8080",)), _head(headers=(b"Host: 127.0.0.1",)),
              _head(headers=(b"Host: 127.0.0.1:8081",)), _head(headers=(b"Host: 127.0.0.1:8080.evil.example",))],
        501: [_head(headers=(host, b"Transfer-Encoding: chunked"))],
        505: [_head(b"GET / HTTP/2.0"), _head(b"GET / HTTP/1.1x")],
    }  # fmt: skip
    for status, heads in refusals.items():
        for head in heads:
            assert _status(head) == status, head
    assert _status(_head(headers=(b"HOST: LOCALHOST:8080",))) == 200  # names are not case-sensitive


_TOKEN = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)
_VALUE = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters="\x7f"), max_size=60)


@st.composite
def _heads(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["GET", "POST", "HEAD", "PUT", "OPTIONS"]) | _TOKEN)
    target = draw(st.sampled_from(["/", "/login", "/privacy", "/lang/de?next=/data", "/data?x=%41"])
                  | st.text(alphabet="/abc?=&%+.-", max_size=40))  # fmt: skip
    headers = draw(st.lists(st.tuples(_TOKEN, _VALUE), max_size=40))
    host = draw(st.sampled_from(["127.0.0.1:8080", "localhost:8080", "evil.example", None]))
    if host is not None:
        headers.insert(draw(st.integers(0, len(headers))), ("Host", host))
    head = "%s %s HTTP/1.%d\r\n" % (method, target, draw(st.integers(0, 1)))
    head += "".join("%s: %s\r\n" % h for h in headers) + "\r\n"
    return head.encode()


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300) | _heads())
def test_a_head_the_intake_accepts_is_one_microdot_reads_the_same_way(data: bytes) -> None:
    try:
        head = intake.parse_head(data, HOSTS)
    except intake.HeadError as e:
        assert e.status in (400, 413, 414, 421, 431, 501, 505)
        return
    assert len(data) <= limits.MAX_HEAD_BYTES and len(head.headers) <= limits.MAX_HEADERS

    async def read() -> object:
        return await Request.create(None, AsyncBytesIO(data), None, ("127.0.0.9", 1))

    try:
        req = asyncio.run(read())
    except ValueError:  # a query string microdot cannot decode: the page answers 400 (LocalPage.answer)
        assert "?" in head.target
        return
    assert req.method == head.method and req.url == head.target and req.content_length == head.content_length
    last = {name.lower(): value for name, value in head.headers}  # microdot keeps the last of a repeated name
    for name, _ in head.headers:
        assert req.headers[name] == last[name.lower()].strip()
    assert req.headers["Host"].lower() in HOSTS


# -- the real server over real sockets --------------------------------------------------------
def _page(tmp: str, **kw: object) -> LocalPage:
    profile = profile_loader.load(profile_loader.example("washing_machine"))
    root = os.path.join(tmp, "device")
    os.makedirs(os.path.join(root, "identity"), exist_ok=True)
    setup_code.write_record(os.path.join(root, "identity"), RECORD)
    agent, data, _ = device.open_device(profile, root, "dev-1")
    lines: list = []
    kw.setdefault("report", lines.append)
    page = LocalPage(agent, data, setup_code.read_record(os.path.join(root, "identity")), **kw)  # type: ignore[arg-type]
    page.lines = lines  # type: ignore[attr-defined]
    return page


async def _ask(port: int, raw: bytes, source: str = "127.0.0.1", timeout: float = 10.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


def _code(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else 0


async def _sign_in(port: int, source: str, code: str = CODE, nonce: bytes | None = None) -> bytes:
    host = b"Host: 127.0.0.1:%d\r\n" % port
    if nonce is None:
        form = await _ask(port, b"GET /login HTTP/1.1\r\n" + host + b"\r\n", source)
        nonce = re.search(rb'name="nonce" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    body = b"nonce=" + nonce + b"&code=" + code.encode()
    return await _ask(port, b"POST /login HTTP/1.1\r\n" + host + b"Cookie: wichtel_login=" + nonce + b"\r\n"
                      b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n" % len(body)
                      + body, source)  # fmt: skip


async def _held(port: int, source: str, trickle: bytes, every_s: float) -> tuple:
    """(seconds until the page closed it, what it said) for a connection that starts a request
    and then sends `trickle` every `every_s`, never ending the head; with no trickle, nothing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    start = time.monotonic()
    heard = b""
    if trickle:
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port)
    while True:
        try:
            writer.write(trickle)
            await writer.drain()
            chunk = await asyncio.wait_for(reader.read(100), every_s)
        except TimeoutError:
            continue
        except ConnectionError:
            break
        if not chunk:
            break
        heard += chunk
    writer.close()
    return time.monotonic() - start, heard


def _serve(page: LocalPage, work: object) -> None:
    async def go() -> None:
        port = free_port()
        await page.start("127.0.0.1", port)
        try:
            await work(port)  # type: ignore[operator]
        finally:
            await page.stop()
            device.close_device(page.agent, page.data)

    asyncio.run(go())


def test_slow_and_idle_connections_are_closed_at_the_request_timeout_while_the_owner_is_served(
    tmp_path: "os.PathLike[str]",
) -> None:
    page = _page(str(tmp_path), request_timeout_s=1.0)

    async def work(port: int) -> None:
        slow = asyncio.ensure_future(_held(port, "127.0.3.1", b"X: 1\r\n", 0.2))
        quiet = asyncio.ensure_future(_held(port, "127.0.3.2", b"", 0.2))
        await asyncio.sleep(0.3)
        assert _code(await _sign_in(port, "127.0.0.20")) == 303  # meanwhile the owner signs in
        for took, heard in await asyncio.gather(slow, quiet):
            assert 0.9 <= took < 6.0 and heard == b""  # closed without a word
        assert page.stats["timed_out"] == 2
        assert len(page.connections) == 0

    _serve(page, work)


def test_a_flood_of_idle_connections_from_many_addresses_does_not_keep_the_owner_out(
    tmp_path: "os.PathLike[str]",
) -> None:
    page = _page(str(tmp_path))

    async def work(port: int) -> None:
        flood = []
        for i in range(4 * limits.MAX_CONNECTIONS):  # four times the cap, two per address
            try:
                flood.append(
                    await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.4.%d" % (i // 2 + 1), 0))
                )
            except OSError:
                pass
            assert len(page.connections) <= page.connections.cap
        for _ in range(100):  # the accept loop catches up with the backlog
            if len(page.connections) == page.connections.cap:
                break
            await asyncio.sleep(0.05)
        assert len(page.connections) == page.connections.cap
        for k in range(3):
            assert _code(await _sign_in(port, "127.0.0.%d" % (20 + k))) == 303
        assert page.stats["pushed_out"] >= 3 * limits.MAX_CONNECTIONS
        assert len(page.connections) <= page.connections.cap
        for _, writer in flood:
            writer.close()

    _serve(page, work)


def test_a_flood_from_one_address_is_held_to_its_share_and_turned_away_at_once(tmp_path: "os.PathLike[str]") -> None:
    page = _page(str(tmp_path))

    async def work(port: int) -> None:
        kept = []
        for _ in range(limits.MAX_CONNECTIONS_PER_SOURCE):
            kept.append(await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.5.1", 0)))
        await asyncio.sleep(0.1)
        turned_away = await _ask(port, b"", "127.0.5.1", timeout=2)  # no request needed to be told
        assert _code(turned_away) == 503 and b"busy" in turned_away
        head, body = turned_away.split(b"\r\n\r\n", 1)
        assert b"Content-Length: %d\r\n" % len(body) in head + b"\r\n"
        assert _code(await _sign_in(port, "127.0.0.20")) == 303
        assert page.connections.from_source("127.0.5.1") == limits.MAX_CONNECTIONS_PER_SOURCE
        # Turned-away connections are reported within the page's log rate, not one line each.
        for _ in range(100):
            assert _code(await _ask(port, b"", "127.0.5.1", timeout=2)) == 503
        assert len(page.lines) <= limits.LOG_BURST + 2  # type: ignore[attr-defined]
        assert page.log.suppressed_total >= 90
        for _, writer in kept:
            writer.close()

    _serve(page, work)


def test_oversized_heads_and_bodies_are_refused_over_a_socket(tmp_path: "os.PathLike[str]") -> None:
    page = _page(str(tmp_path))

    async def work(port: int) -> None:
        host = b"Host: 127.0.0.1:%d" % port
        exact = b"GET /login HTTP/1.1\r\n" + host + b"\r\n"
        while True:  # header lines of at most 3000 bytes, up to the bound
            room = limits.MAX_HEAD_BYTES - 2 - len(exact)  # for lines with their CRLF, before the blank line
            exact += b"X-Pad: " + b"p" * (min(room - 2, 3000) - 7) + b"\r\n"
            if room <= 3002:
                break
        exact += b"\r\n"
        assert len(exact) == limits.MAX_HEAD_BYTES, len(exact)
        assert _code(await _ask(port, exact)) == 200  # at the bound
        assert _code(await _ask(port, exact[:-4] + b"p\r\n\r\n")) == 431  # one byte more
        huge = b"GET /login HTTP/1.1\r\n" + host + b"\r\nX-Pad: " + b"p" * 100_000 + b"\r\n\r\n"
        assert _code(await _ask(port, huge)) == 431
        many = b"GET /login HTTP/1.1\r\n" + host + b"\r\n" + b"X-A: b\r\n" * limits.MAX_HEADERS + b"\r\n"
        assert _code(await _ask(port, many)) == 431
        assert (
            _code(await _ask(port, b"GET /" + b"a" * limits.MAX_REQUEST_LINE + b" HTTP/1.1\r\n" + host + b"\r\n\r\n"))
            == 414
        )
        reply = await _ask(port, b"POST /login HTTP/1.1\r\n" + host + b"\r\nContent-Length: 999999\r\n\r\n")
        assert _code(reply) == 413 and b"Content-Security-Policy" in reply
        assert _code(await _ask(port, b"GET /login?x=%zz HTTP/1.1\r\n" + host + b"\r\n\r\n")) == 400
        assert _code(await _ask(port, b"GET /login?x=%ff HTTP/1.1\r\n" + host + b"\r\n\r\n")) == 400
        assert page.stats["failed"] == 0 and not page.lines  # type: ignore[attr-defined]

    _serve(page, work)


def test_a_foreign_host_name_is_refused_before_any_work(tmp_path: "os.PathLike[str]") -> None:
    page = _page(str(tmp_path))

    async def work(port: int) -> None:
        form = await _ask(port, b"GET /login HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)
        nonce = re.search(rb'name="nonce" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
        body = b"nonce=" + nonce + b"&code=AAAAA-AAAAA"
        for host in (b"evil.example:%d" % port, b"127.0.0.1.nip.io:%d" % port, b"127.0.0.1"):
            reply = await _ask(port, b"POST /login HTTP/1.1\r\nHost: " + host + b"\r\nCookie: wichtel_login="
                               + nonce + b"\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                               b"Content-Length: %d\r\n\r\n" % len(body) + body)  # fmt: skip
            assert _code(reply) == 421 and b"Set-Cookie" not in reply and b"X-Frame-Options: DENY" in reply
        assert len(page.gate.throttle) == 0 and page.gate.throttle.checks_in_window() == 0  # no code checked
        assert _code(await _ask(port, b"GET /login HTTP/1.1\r\n\r\n")) == 400  # no Host at all
        for host in (b"localhost", b"LOCALHOST", b"127.0.0.1"):
            assert _code(await _ask(port, b"GET /login HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host, port))) == 200

    _serve(page, work)


def test_a_nonce_from_another_device_or_made_up_is_refused(tmp_path: "os.PathLike[str]") -> None:
    page = _page(str(tmp_path))
    other = access.LoginNonces(os.urandom(32))  # another appliance's page

    async def work(port: int) -> None:
        for nonce in (other.issue(time.monotonic()).encode(), b"1.2.3", b"x" * 43):
            reply = await _sign_in(port, "127.0.0.20", nonce=nonce)
            assert _code(reply) == 403 and b"outdated or did not come from this page" in reply
        assert len(page.gate.throttle) == 0  # refused before any code was checked
        assert _code(await _sign_in(port, "127.0.0.20")) == 303

    _serve(page, work)


def test_a_client_that_does_not_take_its_answer_is_cut_off_at_the_answer_timeout(tmp_path: "os.PathLike[str]") -> None:
    class BigAnswer(LocalPage):
        async def answer(self, data: bytes, peer: tuple) -> bytes:  # far more than the socket buffers hold
            return b"HTTP/1.0 200 OK\r\nContent-Length: 50000000\r\n\r\n" + b"x" * 50_000_000

    page = _page(str(tmp_path), answer_timeout_s=0.5)
    page.__class__ = BigAnswer

    async def work(port: int) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.bind(("127.0.0.21", 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        start = time.monotonic()
        sock.send(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)
        while page.stats["timed_out"] == 0:  # the client reads nothing
            assert time.monotonic() - start < 10
            await asyncio.sleep(0.05)
        assert time.monotonic() - start >= 0.5
        await asyncio.sleep(0.1)
        assert len(page.connections) == 0  # closed, its descriptor with it
        sock.close()
        assert "did not take its answer within" in page.lines[-1]  # type: ignore[attr-defined]

    _serve(page, work)


def test_an_exception_in_a_route_is_one_short_line_within_the_log_rate(tmp_path: "os.PathLike[str]") -> None:
    page = _page(str(tmp_path))

    @page.app.get("/boom")
    async def boom(req: object) -> None:
        raise RuntimeError("\nlocal page: a forged line\r\n" + "x" * 5000)

    async def work(port: int) -> None:
        for _ in range(50):
            reply = await _ask(port, b"GET /boom HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)
            assert _code(reply) in (303, 500)  # not signed in: the guard answers before the route
        session = page.gate.sessions.open(page.now())
        for _ in range(50):
            reply = await _ask(port, b"GET /boom HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nCookie: wichtel_session=%s\r\n\r\n"
                               % (port, session.id.encode()))  # fmt: skip
            assert _code(reply) == 500 and b"Traceback" not in reply
        lines = page.lines  # type: ignore[attr-defined]
        assert 1 <= len(lines) <= limits.LOG_BURST + 1
        assert all(len(line) <= limits.LOG_LINE_MAX and "\n" not in line and "\r" not in line for line in lines)
        assert lines[0].startswith("local page: RuntimeError at test_local_page_attacks.py:")

    _serve(page, work)


class _Exhausted:
    """The page's listening socket in a process out of descriptors: its first accepts fail
    with EMFILE, as accept(2) does then."""

    def __init__(self, sock: socket.socket, failures: int) -> None:
        self.sock = sock
        self.failures = failures

    def accept(self) -> tuple:
        import errno

        if self.failures:
            self.failures -= 1
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        return self.sock.accept()

    def __getattr__(self, name: str) -> object:
        return getattr(self.sock, name)


def test_out_of_descriptors_the_page_pauses_taking_connections_and_says_so_once_each_time(
    tmp_path: "os.PathLike[str]", monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.local_page import server

    real = server._listen
    monkeypatch.setattr(server, "_listen", lambda *a: _Exhausted(real(*a), 3))
    page = _page(str(tmp_path))

    async def go() -> None:
        port = free_port()
        start = time.monotonic()
        await page.start("127.0.0.1", port)
        try:
            assert _code(await _ask(port, b"GET /login HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)) == 200
            assert time.monotonic() - start >= 3 * limits.ACCEPT_RETRY_S
            lines = page.lines  # type: ignore[attr-defined]
            assert len(lines) == 3 and all("Too many open files" in line for line in lines)
        finally:
            await page.stop()
            device.close_device(page.agent, page.data)

    asyncio.run(go())


def test_stopping_the_page_while_connections_wait_leaves_no_error_in_the_loop(tmp_path: "os.PathLike[str]") -> None:
    # A cancelled loop.sock_accept whose connection was already waiting raised
    # InvalidStateError in the loop (the soak's log showed its traceback).
    page = _page(str(tmp_path))
    errors: list = []

    async def go() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))
        for _ in range(5):
            port = free_port()
            await page.start("127.0.0.1", port)
            await asyncio.sleep(0.05)  # the page waits for connections
            client = socket.create_connection(("127.0.0.1", port))
            # The loop's next round finds the connection waiting and runs this task first:
            # the stop comes while the page's wake-up for the connection is due.
            await asyncio.sleep(0)
            await page.stop()
            client.close()
        device.close_device(page.agent, page.data)

    asyncio.run(go())
    assert errors == []


class Clock:
    def __init__(self) -> None:
        self.t = 10 * limits.WINDOW_S + 1.0

    def __call__(self) -> float:
        return self.t


def test_the_owner_signs_in_through_the_server_while_others_hammer_the_login(tmp_path: "os.PathLike[str]") -> None:
    clock = Clock()  # one window throughout: the ceiling is not relieved by time passing
    page = _page(str(tmp_path), now=clock)

    async def work(port: int) -> None:
        form = await _ask(port, b"GET /login HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)
        nonce = re.search(rb'name="nonce" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]

        lanes = asyncio.Semaphore(16)  # below the connection cap: every request is read and answered

        async def attacker(source: str, tries: int) -> list:
            codes = []
            for _ in range(tries):
                async with lanes:
                    codes.append(_code(await _sign_in(port, source, "AAAAA-AAAAA", nonce)))
            return codes

        # One address hammering, and a hundred more; together more than the window allows.
        codes = await asyncio.gather(attacker("127.0.6.1", 40), *(attacker("127.0.7.%d" % i, 3) for i in range(100)))
        flat = [c for cs in codes for c in cs]
        assert flat.count(429) > 0 and set(flat) <= {403, 429}
        assert page.gate.throttle.checks_in_window() <= limits.WINDOW_CHECKS
        assert b"Many sign-in attempts" in await _sign_in(port, "127.0.7.1", "AAAAA-AAAAA", nonce)
        owner = await _sign_in(port, "127.0.0.20")
        assert _code(owner) == 303 and b"wichtel_session=" in owner

    _serve(page, work)


@pytest.fixture(scope="module")
def fuzzed_page(tmp_path_factory: pytest.TempPathFactory) -> object:
    page = _page(str(tmp_path_factory.mktemp("fuzz")))
    page.allowed_hosts = intake.allowed_hosts("127.0.0.1", 8080)
    yield page
    device.close_device(page.agent, page.data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=400) | _heads())
def test_any_bytes_on_a_connection_get_an_answer_or_a_close_and_nothing_else(fuzzed_page: LocalPage,
                                                                              data: bytes) -> None:  # fmt: skip
    page = fuzzed_page

    async def go() -> bytes:
        ours, theirs = socket.socketpair()
        task = page.take(ours, ("127.0.8.1", 1))
        assert task is not None
        theirs.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(theirs, data)
        theirs.shutdown(socket.SHUT_WR)
        await asyncio.wait_for(task, 10)
        reply = b""
        while True:
            chunk = await loop.sock_recv(theirs, 65536)
            if not chunk:
                break
            reply += chunk
        theirs.close()
        return reply

    reply = asyncio.run(go())
    assert reply == b"" or re.match(rb"HTTP/1\.0 (200|303|400|403|404|405|413|414|421|431|501|505) ", reply), reply[:80]
    assert page.stats["failed"] == 0 and len(page.connections) == 0
    assert not page.lines  # type: ignore[attr-defined]


# -- the whole agent under a flood, with a small file limit -------------------------------------
NOFILE = 64  # a small device's limit: the page's cap comes out at 64 - FD_RESERVE - 1
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The agent with a file limit set in its own process (no preexec_fn: the test runs threads).
_LIMITED = (
    "import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (%d, %d)); "
    "sys.argv = ['wichtel'] + sys.argv[1:]; runpy.run_module('agent', run_name='__main__')" % (NOFILE, NOFILE)
)


def _page_sockets(pid: int, port: int) -> int:
    """Descriptors of the process that are sockets on the page's port (listening or connected)."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        with open("/proc/%d/net/%s" % (pid, table)) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add("socket:[%s]" % fields[9])
    count = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            count += os.readlink("/proc/%d/fd/%s" % (pid, fd)) in inodes
        except OSError:
            pass  # closed meanwhile
    return count


def _http(port: int, raw: bytes, source: str, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0)) as s:
        s.sendall(raw)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
        return reply


def _owner_signs_in(port: int, source: str) -> int:
    host = b"Host: 127.0.0.1:%d\r\n" % port
    form = _http(port, b"GET /login HTTP/1.1\r\n" + host + b"\r\n", source)
    nonce = re.search(rb'name="nonce" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    body = b"nonce=" + nonce + b"&code=" + CODE.encode()
    reply = _http(port, b"POST /login HTTP/1.1\r\n" + host + b"Cookie: wichtel_login=" + nonce + b"\r\n"
                  b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n" % len(body)
                  + body, source)  # fmt: skip
    return _code(reply)


def test_a_flood_of_slow_and_idle_connections_stops_neither_the_uplink_nor_the_sampler_nor_the_owner(
    broker: object, tmp_path: "os.PathLike[str]"
) -> None:
    import subprocess
    import sys
    import threading

    from provisioning.local_broker import Service

    service = Service(broker)  # type: ignore[arg-type]
    crt, key = broker.certs["dev-1"]  # type: ignore[attr-defined]
    root = os.path.join(tmp_path, "device")
    os.makedirs(os.path.join(root, "identity"))
    setup_code.write_record(os.path.join(root, "identity"), RECORD)
    port = free_port()
    log_path = os.path.join(tmp_path, "agent.log")
    log = open(log_path, "w")  # the agent writes it until the end of the test
    cmd = [sys.executable, "-c", _LIMITED, "run", "--profile", profile_loader.example("washing_machine"),
           "--simulate", "--speed", "7200", "--hours", "2000", "--device-id", "dev-1", "--data-dir", root,
           "--page", "127.0.0.1:%d" % port, "--consent", "usage_statistics",
           "--broker", "localhost:%d" % broker.port, "--ca", broker.ca_path,  # type: ignore[attr-defined]
           "--cert", crt, "--key", key]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                form = _http(port, b"GET /login HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port, "127.0.0.1")
                if _code(form) == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, open(log_path).read()
            time.sleep(0.1)
        assert len(service.wait_for(1, timeout=30, topic_part="/usage_statistics")) >= 1  # the uplink works
        cap = intake.connection_cap(NOFILE)
        assert _page_sockets(proc.pid, port) == 1  # the listening socket

        # The flood: 300 clients from 100 addresses, half trickling a header a second, half idle,
        # each back half a second after the page closed it.
        closed_by_page: list = []

        async def client(i: int) -> None:
            source = "127.0.9.%d" % (i % 100 + 1)
            while not stop.is_set():
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
                except OSError:
                    await asyncio.sleep(0.5)
                    continue
                if i % 2:
                    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port)
                n = 0
                try:
                    while not stop.is_set():
                        if i % 2:
                            n += 1
                            writer.write(b"X-Slow-%d: 1\r\n" % n)
                            await writer.drain()
                        try:
                            if await asyncio.wait_for(reader.read(100), 1.0) == b"":
                                closed_by_page.append(i)
                                break
                        except TimeoutError:
                            continue
                except ConnectionError:
                    closed_by_page.append(i)
                writer.close()
                await asyncio.sleep(0.5)

        async def flood() -> None:
            await asyncio.gather(*(client(i) for i in range(300)))

        flooder = threading.Thread(target=lambda: asyncio.run(flood()))
        log_before = os.path.getsize(log_path)
        usage_before = len(service.received("/usage_statistics"))
        flood_start = time.monotonic()
        flooder.start()
        most_fds = 0
        owner_took = None
        # 9 s of flood: three usage windows at this speed; the owner signs in after 4 s.
        while time.monotonic() - flood_start < 9:
            most_fds = max(most_fds, _page_sockets(proc.pid, port))
            if owner_took is None and time.monotonic() - flood_start > 4:
                asked = time.monotonic()
                while _owner_signs_in(port, "127.0.0.250") != 303:  # a browser would retry too
                    assert time.monotonic() - asked < 60
                owner_took = time.monotonic() - asked
            time.sleep(0.2)
        flood_s = time.monotonic() - flood_start
        with open(log_path, encoding="utf-8") as f:
            f.seek(log_before)
            during = f.read()
        usage_during = len(service.received("/usage_statistics")) - usage_before
        stop.set()
        flooder.join(30)

        assert proc.poll() is None, during[-2000:]
        assert owner_took is not None and owner_took < 60
        assert usage_during >= 2, "the uplink stopped during the flood"
        assert during.count("[day ") >= 3, "the sampler stopped during the flood"
        assert len(closed_by_page) > 300  # the page did close them: pushed out or timed out
        assert cap < most_fds <= 1 + cap + 1  # listening, the table full, one being turned away
        assert "Too many open files" not in during and "Traceback" not in during
        page_lines = [line for line in during.splitlines() if line.startswith("local page:")]
        assert len(page_lines) <= limits.LOG_BURST + limits.LOG_PER_S * flood_s + 1
        assert all(len(line) <= limits.LOG_LINE_MAX + 60 for line in page_lines)  # + the held-back count
        assert len(during) < 20_000

        # After the flood: a slow client and an idle one are closed at the real request timeout.
        async def both() -> list:
            return list(await asyncio.gather(*(_held(port, "127.0.10.1", t, 0.5) for t in (b"X: 1\r\n", b""))))

        for took, heard in asyncio.run(both()):
            assert limits.REQUEST_TIMEOUT_S - 0.5 <= took < limits.REQUEST_TIMEOUT_S + 5 and heard == b""
        assert _owner_signs_in(port, "127.0.0.251") == 303
    finally:
        stop.set()
        service.close()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
    assert proc.returncode == 0, open(log_path).read()[-3000:]
