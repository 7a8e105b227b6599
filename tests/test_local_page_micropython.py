"""The local page served by a real MicroPython process (the unix port, fixed heap): Chromium
signs in, switches a category and exports; and the board server's bounds over real sockets.

The process is firmware/page_main.py: the Agent on simulated sensors with the page of
agent/local_page/board.py, started as a board would run it (MICROPYPATH ".frozen", the
repository, microdot's source).
"""

import json
import os
import socket
import subprocess
import sysconfig
import time
import urllib.request

import pytest

from agent import profile_loader, setup_code
from agent.local_page import limits
from provisioning.local_broker import free_port
from tests import micropython_unix
from tests.test_local_page_browser import CHROMIUM, CHROMIUM_ARGS, CODE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAP = 1024 * 1024  # the unix port is 64-bit: an upper bound for a 32-bit board (768 KB: docs/local-page.md)
REQUEST_TIMEOUT_S = 2.0  # shorter than the board's 10 s, so the slow client is cut off soon
SPEED = 60  # a simulated minute a second: the agent works while the page serves (a board runs at 1)


class BoardProcess:
    """firmware/page_main.py on the MicroPython unix port, with a fixed heap."""

    def __init__(self, tmp: str, iterations: int = setup_code.DEFAULT_ITERATIONS, path: tuple = ()) -> None:
        """path: module directories before the repository and microdot's source (.mpy files)."""
        missing = micropython_unix.available()
        if missing:
            pytest.fail(missing)
        profile = os.path.join(tmp, "washing_machine.json")
        with open(profile, "wb") as f:
            f.write(profile_loader.compile_json(profile_loader.load(profile_loader.example("washing_machine"))))
        setup_code.write_record(tmp, setup_code.hash_code(CODE, iterations))
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        config = os.path.join(tmp, "config.json")
        with open(config, "w") as f:
            json.dump({"profile": profile, "setup_code_dir": tmp, "host": "127.0.0.1", "port": self.port,
                       "device_id": "dev-1", "speed": SPEED, "seed": 1, "request_timeout_s": REQUEST_TIMEOUT_S,
                       "heap_report_s": 1.0}, f)  # fmt: skip
        site = sysconfig.get_paths()["purelib"]  # microdot's source: pure Python, it runs as it is
        env = dict(os.environ, MICROPYPATH=os.pathsep.join((".frozen", *path, ROOT, site)))
        self.log_path = os.path.join(tmp, "board.log")
        self.log = open(self.log_path, "w+")
        self.proc = subprocess.Popen([micropython_unix.interpreter(), "-X", "heapsize=%d" % HEAP,
                                      os.path.join(ROOT, "firmware", "page_main.py"), config],
                                     cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.url + "/login", timeout=2) as res:
                    assert res.status == 200
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the MicroPython page did not serve:\n" + self.output()) from None
                time.sleep(0.1)

    def output(self) -> str:
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def heap_in_use(self) -> list:
        return [int(line.split()[3]) for line in self.output().splitlines() if line.startswith("heap: in use")]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> object:
    proc = BoardProcess(str(tmp_path_factory.mktemp("board")))
    yield proc
    alive = proc.proc.poll() is None
    out = proc.output()
    proc.stop()
    assert alive, "the MicroPython page process ended:\n" + out
    assert "Traceback" not in out and "MemoryError" not in out, out


@pytest.fixture(scope="module")
def browser() -> object:
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed: run `make test` (it installs the Debian package)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _login(page: object, url: str, code: str) -> None:
    page.goto(url + "/login")  # type: ignore[attr-defined]
    page.get_by_label("Setup code").fill(code)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]


@pytest.mark.browser
def test_chromium_signs_in_switches_a_category_and_exports_on_micropython(board: BoardProcess, browser: object) -> None:
    context = browser.new_context(locale="en-GB", accept_downloads=True)  # type: ignore[attr-defined]
    try:
        page = context.new_page()
        page.goto(board.url + "/privacy")
        assert page.url.endswith("/login") and "WM 8 Eco" not in page.content()
        # A wrong code is refused (the throttle that follows: test_wrong_codes_make_…_wait_on_micropython).
        _login(page, board.url, "AAAAA-BBBBB")
        assert "That code is not right" in page.get_by_role("alert").inner_text()
        started = time.monotonic()
        _login(page, board.url, CODE)
        page.get_by_role("heading", name="Brunnhilde Hausgeräte WM 8 Eco").wait_for()
        print("sign-in on the MicroPython page (PBKDF2 %d rounds): %.2f s"
              % (setup_code.DEFAULT_ITERATIONS, time.monotonic() - started))  # fmt: skip
        cookies = {c["name"]: c for c in context.cookies()}
        session = cookies["wichtel_session"]
        assert session["httpOnly"] and session["sameSite"] == "Strict" and len(session["value"]) >= 43

        # A category on, through its switch and the session's form token.
        page.get_by_role("link", name="Privacy").click()
        page.get_by_role("button", name="Usage statistics: Switch on").click()
        assert "Usage statistics is now on." in page.get_by_role("status").inner_text()
        assert page.get_by_role("button", name="Usage statistics: Switch off").count() == 1

        # The export: downloaded as a file, holding the choice just made.
        page.get_by_role("link", name="My data").click()
        with page.expect_download() as dl:
            page.get_by_role("link", name="Download everything (JSON)").click()
        assert dl.value.suggested_filename == "wichtel-export-dev-1.json"
        with open(dl.value.path(), encoding="utf-8") as f:
            exported = json.load(f)
        assert exported["format"] == "wichtel-export/1" and exported["device"] == "dev-1"
        assert [(h["category"], h["choice"]) for h in exported["consent"]["history"]] == [("usage_statistics", "on")]
        assert exported["consent"]["current"]["usage_statistics"] == "on"
        assert any("consent_receipt" in m["payload"] for m in exported["outbox"])  # no uplink: it waits

        # A change without the form token, or without a session, is refused and changes nothing.
        res = context.request.post(board.url + "/privacy/usage_statistics", form={"choice": "off"}, max_redirects=0)
        assert res.status == 403
        stranger = browser.new_context()  # type: ignore[attr-defined]
        res = stranger.request.post(board.url + "/privacy/usage_statistics", form={"choice": "off"}, max_redirects=0)
        assert res.status == 403
        stranger.close()
        export = json.loads(context.request.get(board.url + "/data/export.json").text())
        assert export["consent"]["current"]["usage_statistics"] == "on"
    finally:
        context.close()


def _exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send data on a fresh connection and read until the page closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        out = b""
        while True:
            piece = sock.recv(65536)
            if not piece:
                return out
            out += piece


def _status(answer: bytes) -> int:
    """The status code, or 0 when the page closed without an answer."""
    return int(answer.split(b" ", 2)[1]) if answer else 0


def _get(port: int, host: str, extra: bytes = b"") -> bytes:
    return b"GET /login HTTP/1.1\r\nHost: " + host.encode() + b"\r\n" + extra + b"\r\n"


def test_the_micropython_page_answers_only_to_its_own_host(board: BoardProcess) -> None:
    own = "127.0.0.1:%d" % board.port
    assert _status(_exchange(board.port, _get(board.port, own))) == 200
    assert _status(_exchange(board.port, _get(board.port, "localhost:%d" % board.port))) == 200
    for host in ("evil.example", "evil.example:%d" % board.port, "127.0.0.1", "192.168.1.20:%d" % board.port):
        answer = _exchange(board.port, _get(board.port, host))
        assert _status(answer) == 421 and b"wichtel_login" not in answer, host  # nothing issued, nothing done
    assert _status(_exchange(board.port, b"GET /login HTTP/1.1\r\n\r\n")) == 400  # no Host


def test_the_micropython_page_bounds_the_request_head_and_body_at_their_limits(board: BoardProcess) -> None:
    own = "127.0.0.1:%d" % board.port
    base = _get(board.port, own)
    # A head of exactly MAX_HEAD_BYTES is read; one byte more is refused before it is parsed.
    pad = limits.MAX_HEAD_BYTES - len(base) - 3 * len(b"X-Pad: \r\n")
    lines = [pad // 3 + (1 if i < pad % 3 else 0) for i in range(3)]
    extra = b"".join(b"X-Pad: " + b"a" * n + b"\r\n" for n in lines)
    at = _get(board.port, own, extra)
    assert len(at) == limits.MAX_HEAD_BYTES
    assert _status(_exchange(board.port, at)) == 200, board.output()[-3000:]
    over = _get(board.port, own, extra + b"Y: \r\n")
    assert _status(_exchange(board.port, over)) == 431
    # A head without its empty line: refused once it is over the bound.
    start = b"GET /login HTTP/1.1\r\nHost: " + own.encode() + b"\r\nX: "
    assert _status(_exchange(board.port, start + b"a" * (limits.MAX_HEAD_BYTES + 1 - len(start)))) == 431
    # An endless one is cut off there too, never held whole (what it sent beyond is not read:
    # the close may reach the client as a reset), and the page goes on.
    try:
        answer = _exchange(board.port, start + b"a" * 2_000_000)
    except (ConnectionResetError, BrokenPipeError):
        answer = b"HTTP/1.0 431 reset"
    assert _status(answer) == 431
    assert _status(_exchange(board.port, base)) == 200
    # A body over MAX_BODY_BYTES is refused on its Content-Length, before it is read.
    post = b"POST /login HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n" % own.encode()
    answer = _exchange(board.port, post + b"Content-Length: %d\r\n\r\n" % (limits.MAX_BODY_BYTES + 1))
    assert _status(answer) == 413
    # At the bound the body is read (and the form refused: no nonce from this page).
    body = b"code=" + b"A" * (limits.MAX_BODY_BYTES - 5)
    answer = _exchange(board.port, post + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert _status(answer) == 403 and b"outdated" in answer
    assert _status(_exchange(board.port, b"GET /login HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
                             % own.encode())) == 501  # fmt: skip


def test_the_micropython_page_closes_slow_clients_and_caps_its_connections(board: BoardProcess) -> None:
    own = "127.0.0.1:%d" % board.port
    # A client that never finishes its request is closed at the request timeout.
    with socket.create_connection(("127.0.0.1", board.port), timeout=REQUEST_TIMEOUT_S + 10) as slow:
        slow.sendall(b"GET /login HTTP/1.1\r\n")
        started = time.monotonic()
        assert slow.recv(1024) == b""
        waited = time.monotonic() - started
    assert REQUEST_TIMEOUT_S - 0.5 <= waited <= REQUEST_TIMEOUT_S + 5, waited
    # Idle connections beyond the cap push out the oldest idle ones: never more than the cap
    # wait at once, and a real request still gets its answer.
    idle = [socket.create_connection(("127.0.0.1", board.port), timeout=5) for _ in range(limits.BOARD_MAX_CONNECTIONS)]
    time.sleep(0.3)
    newer = [
        socket.create_connection(("127.0.0.1", board.port), timeout=5) for _ in range(limits.BOARD_MAX_CONNECTIONS)
    ]
    time.sleep(0.3)
    try:
        for sock in idle:  # all pushed out, well before their request timeout: closed without an answer
            sock.settimeout(REQUEST_TIMEOUT_S / 2)
            assert sock.recv(1024) == b""
        for sock in newer:  # still open, waiting for their requests
            sock.settimeout(0.1)
            with pytest.raises(TimeoutError):
                sock.recv(1024)
        assert _status(_exchange(board.port, _get(board.port, own))) == 200
    finally:
        for sock in idle + newer:
            sock.close()


def test_the_micropython_page_fits_its_heap(board: BoardProcess) -> None:
    time.sleep(1.5)  # one more heap report after the requests above
    heap = board.heap_in_use()
    out = board.output()
    # The heap is fixed: running out would have been a MemoryError, and the process gone.
    assert board.proc.poll() is None and "MemoryError" not in out and heap, out
    print("heap in use on the MicroPython page process: at most %d of %d bytes" % (max(heap), HEAP))


# What the page's board modules may import at their top level: MicroPython's own modules,
# microdot, and the portable parts of the agent. (The factory-only functions of
# agent/setup_code.py import secrets and agent.files where they are called.)
PORTABLE_PAGE = ["agent/setup_code.py", "firmware/page_main.py"] + [
    "agent/local_page/%s.py" % m
    for m in (
        "access",
        "board",
        "crypto",
        "intake",
        "limits",
        "routes",
        "template",
        "template_compiler",
        "texts",
        "views",
    )
]
_PORTABLE_AGENT = ("agent.core", "agent.local_page", "agent.sim", "agent.setup_code")


def _top_level_imports(path: str) -> list:
    import ast

    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    names = []
    for node in tree.body:  # the module's own statements; under `if TYPE_CHECKING:` nothing runs
        if isinstance(node, ast.Import):
            names += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            names += [(base + "." + a.name if base == "agent" else base, node.lineno) for a in node.names]
    return names


@pytest.mark.parametrize("path", PORTABLE_PAGE)
def test_the_page_modules_for_a_board_import_only_what_micropython_has(path: str) -> None:
    from tools.portability import ALLOWED

    allowed = ALLOWED | {"microdot", "socket", "binascii"}
    bad = [(name, line) for name, line in _top_level_imports(path)
           if not (name.split(".")[0] in allowed or name.startswith(_PORTABLE_AGENT))]  # fmt: skip
    assert bad == [], "%s imports what a board does not have: %s" % (path, bad)


def test_the_import_check_catches_a_host_only_module(tmp_path: "os.PathLike[str]") -> None:
    intruder = os.path.join(str(tmp_path), "views.py")
    with open(os.path.join(ROOT, "agent", "local_page", "views.py"), encoding="utf-8") as f:
        text = f.read()
    with open(intruder, "w", encoding="utf-8") as f:
        f.write(text.replace("import json\n", "import json\nfrom html import escape\nfrom agent import device\n", 1))
    names = [n for n, _ in _top_level_imports(intruder)]
    assert "html" in names and "agent.device" in names


def _nonce(port: int) -> tuple:
    """(nonce, its cookie) from a fresh login form of the page."""
    answer = _exchange(port, _get(port, "127.0.0.1:%d" % port))
    cookie = answer.split(b"Set-Cookie: wichtel_login=", 1)[1].split(b";", 1)[0]
    return cookie, b"wichtel_login=" + cookie


def _login_request(port: int, source: str, code: bytes) -> socket.socket:
    """A sign-in with a fresh nonce from `source`, sent; the socket, to read the answer from."""
    nonce, cookie = _nonce(port)
    body = b"nonce=" + nonce + b"&code=" + code
    sock = socket.create_connection(("127.0.0.1", port), timeout=60, source_address=(source, 0))
    sock.sendall(b"POST /login HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nCookie: %s\r\n"
                 b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s"
                 % (port, cookie, len(body), body))  # fmt: skip
    return sock


def _answer(sock: socket.socket) -> bytes:
    with sock:
        out = b""
        while True:
            piece = sock.recv(65536)
            if not piece:
                return out
            out += piece


def test_wrong_codes_make_the_next_check_wait_on_micropython(board: BoardProcess) -> None:
    """Four wrong codes cost nothing; the fifth starts the wait, counted from when its check
    began: the right code sent while the fifth is still being hashed is not even checked."""
    source = "127.0.2.1"
    for _ in range(limits.FREE_FAILURES - 1):
        assert b"That code is not right" in _answer(_login_request(board.port, source, b"AAAAA-BBBBB"))
    fifth = _login_request(board.port, source, b"AAAAA-BBBBB")
    time.sleep(0.05)  # the fifth is in and hashing (0.1 s and more here)
    right = _answer(_login_request(board.port, source, CODE.encode()))
    assert _status(right) == 429 and b"Retry-After: " in right and b"wichtel_session=" not in right
    assert _status(_answer(fifth)) in (403, 429)  # refused; "try again" if its wait is not over yet
    time.sleep(limits.FIRST_DELAY_S + 0.1)
    signed_in = _answer(_login_request(board.port, source, CODE.encode()))
    assert _status(signed_in) == 303 and b"wichtel_session=" in signed_in


# Slow enough that none of the checks below ends before the extra connection arrives.
SLOW_ITERATIONS = 160_000  # about 0.8 s a check here: the six take about 5 s (the test needs more than 2)


@pytest.fixture(scope="module")
def slow_board(tmp_path_factory: pytest.TempPathFactory) -> object:
    proc = BoardProcess(str(tmp_path_factory.mktemp("slow-board")), SLOW_ITERATIONS)
    yield proc
    out = proc.output()
    proc.stop()
    assert "Traceback" not in out and "MemoryError" not in out, out


def test_code_checks_queue_and_a_connection_over_the_cap_is_turned_away(slow_board: BoardProcess) -> None:
    """As many sign-ins as the board holds connections, from as many addresses, each hashing
    a wrong code in turn: while they are answered, one more connection gets 503 at once and
    nothing else; afterwards every one of them had its code checked and refused."""
    port = slow_board.port
    socks = [_login_request(port, "127.0.1.%d" % (k + 1), b"AAAAA-BBBBB") for k in range(limits.BOARD_MAX_CONNECTIONS)]
    time.sleep(0.3)  # all read: each is being answered (hashing, or waiting for the one hash at a time)
    started = time.monotonic()
    busy = _exchange(port, b"")  # turned away before its request is read (sent, it might meet a reset)
    assert _status(busy) == 503 and b"busy" in busy, busy[:200]
    # At once: not after the queue, nor after the check now running (its pieces leave the loop free).
    assert time.monotonic() - started < 0.5
    before = len(slow_board.heap_in_use())
    for sock in socks:
        answer = _answer(sock)
        assert _status(answer) == 403 and b"That code is not right" in answer, answer[:300]
    hashing_s = time.monotonic() - started
    # The hashes ran in pieces: the process's other tasks (its heap report, once a second) went on.
    time.sleep(0.2)
    assert hashing_s > 2 and len(slow_board.heap_in_use()) - before >= int(hashing_s) - 1, (hashing_s, before)
