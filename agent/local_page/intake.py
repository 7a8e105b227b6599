"""What the local page takes in before microdot sees a byte: which connections it keeps open,
and whether a request head is one it will read (size, line count, form, Host).

No I/O: the adapter (server.py) passes addresses, times and bytes and obeys the answers.
"""

from agent.core.errors import ConfigError, WichtelError
from agent.local_page.access import client_key
from agent.local_page.limits import (
    FD_RESERVE,
    MAX_BODY_BYTES,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_SOURCE,
    MAX_HEAD_BYTES,
    MAX_HEADER_LINE,
    MAX_HEADERS,
    MAX_NAME_LEN,
    MAX_REQUEST_LINE,
    MIN_CONNECTIONS,
)

# RFC 9110 token characters: header names and methods.
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_DIGITS = "0123456789"
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_WILDCARDS = ("", "0.0.0.0", "::", "*")
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
_MAX_METHOD = 16


class HeadError(WichtelError):
    """A request the page will not read: the HTTP status to answer, and why. The browser's
    Accept-Language, when it was read, so the answer can be in the user's language."""

    def __init__(self, status: int, reason: str, accept_language: str = "") -> None:
        super().__init__("HTTP %d: %s" % (status, reason))
        self.status = status
        self.reason = reason
        self.accept_language = accept_language


class RequestHead:
    """A request head within every bound, with one Host the page answers to."""

    __slots__ = ("accept_language", "content_length", "headers", "method", "target", "version")

    def __init__(self, method: str, target: str, version: str, headers: list, content_length: int,
                 accept_language: str) -> None:  # fmt: skip
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # [(name, value)] in the order sent
        self.content_length = content_length
        self.accept_language = accept_language


def _text(raw: bytes, what: str, ascii_only: bool) -> str:
    """A line as text: UTF-8 (ASCII in the request line), no control characters but tab."""
    try:
        text = raw.decode("ascii" if ascii_only else "utf-8")
    except UnicodeError:
        raise HeadError(400, "%s is not %s text" % (what, "ASCII" if ascii_only else "UTF-8")) from None
    for c in text:
        if (c < " " and c != "\t") or c == "\x7f" or (ascii_only and c == "\t"):
            raise HeadError(400, "%s holds the control character %r" % (what, c))
    return text


def parse_head(data: bytes, allowed_hosts: frozenset) -> RequestHead:
    """The head of one request (up to and including the blank line), checked against every
    bound and the Host names the page answers to; HeadError with the status otherwise."""
    if len(data) > MAX_HEAD_BYTES:
        raise HeadError(431, "the request head has %d bytes; at most %d are read" % (len(data), MAX_HEAD_BYTES))
    if not data.endswith(b"\r\n\r\n"):
        raise HeadError(400, "the request head does not end with an empty line")
    lines = data[:-4].split(b"\r\n")
    if len(lines[0]) > MAX_REQUEST_LINE:
        raise HeadError(414, "the request line has %d bytes; at most %d" % (len(lines[0]), MAX_REQUEST_LINE))
    if len(lines) - 1 > MAX_HEADERS:
        raise HeadError(431, "%d header lines; at most %d" % (len(lines) - 1, MAX_HEADERS))
    parts = _text(lines[0], "the request line", True).split(" ")
    if len(parts) != 3:
        raise HeadError(400, "the request line is not METHOD TARGET VERSION")
    method, target, version = parts
    if not 0 < len(method) <= _MAX_METHOD or any(c not in _TCHAR for c in method):
        raise HeadError(400, "the method is not a short token")
    if not target.startswith("/"):
        raise HeadError(400, "the target is not a path on this page")
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise HeadError(505, "only HTTP/1.0 and HTTP/1.1 are served")
    headers = []
    host = None
    length = None
    language = ""
    for i, raw in enumerate(lines[1:]):
        if len(raw) > MAX_HEADER_LINE:
            raise HeadError(431, "header line %d has %d bytes; at most %d" % (i + 1, len(raw), MAX_HEADER_LINE))
        name, colon, value = _text(raw, "header line %d" % (i + 1), False).partition(":")
        if not colon or not name or any(c not in _TCHAR for c in name):
            raise HeadError(400, "header line %d is not NAME: VALUE" % (i + 1))
        value = value.strip(" \t")
        key = name.lower()
        if key == "host":
            if host is not None:
                raise HeadError(400, "more than one Host header")
            host = value
        elif key == "content-length":
            if length is not None:
                raise HeadError(400, "more than one Content-Length header")
            if not 0 < len(value) <= 9 or any(c not in _DIGITS for c in value):
                raise HeadError(400, "Content-Length is not a number of bytes")
            length = int(value)
        elif key == "transfer-encoding":  # chunked bodies would bypass the body bound: not served
            raise HeadError(501, "Transfer-Encoding is not accepted; send Content-Length")
        elif key == "accept-language":
            language = value
        headers.append((name, value))
    if host is None:
        raise HeadError(400, "no Host header", language)
    if host.lower() not in allowed_hosts:
        raise HeadError(421, "this page is not served under the name %r" % host[:80], language)
    if length is not None and length > MAX_BODY_BYTES:
        raise HeadError(413, "a body of %d bytes; at most %d" % (length, MAX_BODY_BYTES), language)
    return RequestHead(method, target, version, headers, length or 0, language)


def _check_name(name: str) -> str:
    name = name.lower()
    labels = name.split(".")
    if not 0 < len(name) <= MAX_NAME_LEN or not all(
        0 < len(label) <= 63 and label[0] != "-" and label[-1] != "-" and all(c in _NAME_CHARS for c in label)
        for label in labels
    ):
        raise ConfigError("local page name %r: expected a host name such as wm8-1a2b3c.local" % name[:80])
    return name


def allowed_hosts(bind_host: str, port: int, names: tuple = ()) -> frozenset:
    """The Host values the page answers to: the address it is bound to, the loopback names
    when that is a loopback address, and the given local names; each with ":port" (and
    without when the port is 80). Anything else may be a DNS rebinding: refused."""
    host = bind_host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host in _WILDCARDS:
        raise ConfigError(
            "local page address %r: expected one address (e.g. the appliance's LAN address); "
            "the page never listens on all of them" % bind_host
        )
    plain = ["[%s]" % host if ":" in host else host]
    if host == "localhost" or host.startswith("127.") or host == "::1":
        plain += _LOOPBACK_NAMES
    plain += [_check_name(n) for n in names]
    out = {p + ":%d" % port for p in plain}
    if port == 80:  # browsers leave out the default port
        out |= set(plain)
    return frozenset(out)


def connection_cap(file_limit: int | None) -> int:
    """Connections the page may hold open when the process may open file_limit files (None:
    no limit known). The page leaves FD_RESERVE to the agent and needs one more for a moment
    while it closes a connection over the cap."""
    if file_limit is None or file_limit < 0:
        return MAX_CONNECTIONS
    cap = min(MAX_CONNECTIONS, file_limit - FD_RESERVE - 1)
    if cap < MIN_CONNECTIONS:
        raise ConfigError(
            "local page: the process may open %d files; the page needs %d for connections and leaves %d "
            "to the agent (raise the limit: ulimit -n)" % (file_limit, MIN_CONNECTIONS + 1, FD_RESERVE)
        )
    return cap


class ConnectionTable:
    """The page's open connections: at most `cap`, and MAX_CONNECTIONS_PER_SOURCE from one
    address. When full, a newcomer takes the place of a connection whose request is not in
    yet: from the address holding the most connections, the oldest. A browser's request is
    in within milliseconds of connecting, so a flood of idle connections pushes out its own
    kind, not the owner's."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._open: dict = {}  # connection -> [address, opened_s, reading]
        self._count: dict = {}  # address -> open connections

    def open(self, conn: object, address: str, now: float) -> tuple:
        """(admitted, connection to close now or None)."""
        source = client_key(address)
        mine = self._count.get(source, 0)
        if mine >= MAX_CONNECTIONS_PER_SOURCE:
            return False, None
        victim = None
        if len(self._open) >= self.cap:
            victim = self._victim()
            if victim is None or self._count[self._open[victim][0]] < mine:
                return False, None
            self.close(victim)
        self._open[conn] = [source, now, True]
        self._count[source] = self._count.get(source, 0) + 1
        return True, victim

    def _victim(self) -> object:
        best = None
        best_rank = (0, 0.0)
        for conn, (source, opened, reading) in self._open.items():
            rank = (self._count[source], -opened)
            if reading and (best is None or rank > best_rank):
                best, best_rank = conn, rank
        return best

    def request_in(self, conn: object) -> None:
        """The connection's request is complete: it is being answered, not pushed out."""
        entry = self._open.get(conn)
        if entry is not None:
            entry[2] = False

    def close(self, conn: object) -> None:
        entry = self._open.pop(conn, None)
        if entry is not None:
            left = self._count[entry[0]] - 1
            if left:
                self._count[entry[0]] = left
            else:
                del self._count[entry[0]]

    def from_source(self, address: str) -> int:
        return int(self._count.get(client_key(address), 0))

    def __len__(self) -> int:
        return len(self._open)
