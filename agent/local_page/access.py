"""Who may use the local page: setup-code login under a ceiling that keeps room for the owner,
login nonces bound to this process, sessions, form tokens.

No I/O and no clock of its own: every method takes the time in seconds, so the rules can
be checked on a host without waiting. The web adapter (server.py) only asks and obeys.
docs/local-page.md argues why the owner always gets an attempt; the bounds are in limits.py.
"""

import binascii

from agent import setup_code
from agent.core.errors import ConfigError
from agent.local_page import crypto
from agent.local_page.limits import (
    FIRST_DELAY_S,
    FORGET_FAILURES_S,
    FREE_FAILURES,
    GROUP_FIRSTS,
    MAX_CODE_LEN,
    MAX_DELAY_S,
    MAX_NONCE_LEN,
    MAX_SESSIONS,
    MAX_TRACKED_CLIENTS,
    NONCE_MAX_AGE_S,
    REPEAT_CHECKS,
    SESSION_IDLE_S,
    SESSION_MAX_S,
    TOKEN_BYTES,
    WINDOW_CHECKS,
    WINDOW_S,
)

_DIGITS = "0123456789"
_HEX = "0123456789abcdef"


# -- who is asking ------------------------------------------------------------------------
def client_key(address: str) -> str:
    """One spelling per address: IPv4 dotted (IPv4-mapped IPv6 too), IPv6 as eight lower-case
    hex words without zone. Anything else is returned as given, in lower case."""
    text = address.strip().lower()
    if ":" not in text:
        return text
    words = _ipv6_words(text.partition("%")[0])
    if words is None:
        return text
    if words[:6] == [0, 0, 0, 0, 0, 0xFFFF]:  # IPv4-mapped: the IPv4 address it is
        return "%d.%d.%d.%d" % (words[6] >> 8, words[6] & 255, words[7] >> 8, words[7] & 255)
    return ":".join("%x" % w for w in words)


def client_group(key: str) -> str:
    """The block one holder of an address can use freely: an IPv6 /64 (SLAAC gives a host
    all of it), or the IPv4 address itself."""
    if ":" not in key:
        return key
    return ":".join(key.split(":")[:4]) + "::/64"


def _ipv6_words(text: str) -> list | None:
    head, sep, tail = text.partition("::")
    left = _words(head)
    right = _words(tail) if sep else []
    if left is None or right is None:
        return None
    if not sep:
        return left if len(left) == 8 else None
    missing = 8 - len(left) - len(right)
    return left + [0] * missing + right if missing >= 1 else None


def _words(part: str) -> list | None:
    if not part:
        return []
    out = []
    for word in part.split(":"):
        if "." in word:  # a dotted IPv4 tail: two words
            octets = word.split(".")
            if len(octets) != 4 or not all(o and len(o) <= 3 and all(c in _DIGITS for c in o) for o in octets):
                return None
            values = [int(o) for o in octets]
            if max(values) > 255:
                return None
            out += [values[0] << 8 | values[1], values[2] << 8 | values[3]]
        elif 1 <= len(word) <= 4 and all(c in _HEX for c in word):
            out.append(int(word, 16))
        else:
            return None
    return out


# -- the login throttle -------------------------------------------------------------------
class LoginThrottle:
    """Decides whether a typed setup code may be checked now, and if not, how long to wait.

    Two rules, both must allow a check:
    - Per address: the first FREE_FAILURES - 1 wrong codes cost nothing; from then on each one
      doubles the wait, up to MAX_DELAY_S. At most MAX_TRACKED_CLIENTS addresses are
      remembered; when full, the one quiet longest is forgotten (never shared: a crowd of
      addresses cannot lock out one it has not used).
    - All addresses together: at most WINDOW_CHECKS checks in each window of WINDOW_S, and of
      those at most REPEAT_CHECKS second-or-later checks of an address in that window. The
      rest is kept for first checks, one per address and GROUP_FIRSTS per IPv6 /64, so an
      address not yet heard from in the window gets its check unless WINDOW_CHECKS -
      REPEAT_CHECKS others got theirs first in the same window.

    Every admitted check counts as a wrong code until succeeded() says otherwise, so checks
    that run at the same time cannot race past the wait.
    """

    def __init__(self) -> None:
        self._clients: dict = {}  # address -> [failures, not_before_s, last_failure_s]
        self._window = -1  # index of the current window: int(now // WINDOW_S)
        self._checks = 0
        self._repeats = 0
        self._firsts: dict = {}  # addresses with their first check in this window (at most WINDOW_CHECKS)
        self._group_firsts: dict = {}  # IPv6 /64 -> first checks in this window

    def _entry(self, key: str, now: float) -> list | None:
        entry = self._clients.get(key)
        if entry is not None and now - entry[2] >= FORGET_FAILURES_S and now >= entry[1]:
            del self._clients[key]
            return None
        return entry

    def wait_s(self, client: str, now: float) -> float:
        """Seconds until this address may try again by its own record (0: now)."""
        entry = self._entry(client_key(client), now)
        return max(0.0, entry[1] - now) if entry else 0.0

    def admit(self, client: str, now: float) -> tuple:
        """(0.0, False): check the code now. (wait_s, crowded): not now; crowded is True when
        the ceiling for all addresses, not this address's own record, is the reason."""
        key = client_key(client)
        entry = self._entry(key, now)
        if entry is not None and entry[1] > now:
            return entry[1] - now, False
        window = int(now // WINDOW_S)
        if window != self._window:
            self._window = window
            self._checks = self._repeats = 0
            self._firsts = {}
            self._group_firsts = {}
        group = client_group(key)
        first = key not in self._firsts and self._group_firsts.get(group, 0) < GROUP_FIRSTS
        if self._checks >= WINDOW_CHECKS or (not first and self._repeats >= REPEAT_CHECKS):
            return (window + 1) * WINDOW_S - now, True
        self._checks += 1
        if first:
            self._firsts[key] = True
            self._group_firsts[group] = self._group_firsts.get(group, 0) + 1
        else:
            self._repeats += 1
        self._failed(key, entry, now)
        return 0.0, False

    def _failed(self, key: str, entry: list | None, now: float) -> None:
        if entry is None:
            if len(self._clients) >= MAX_TRACKED_CLIENTS:
                quiet = min(self._clients, key=lambda k: self._clients[k][2])
                del self._clients[quiet]
            entry = self._clients[key] = [0, 0.0, now]
        entry[0] += 1
        entry[2] = now
        over = entry[0] - FREE_FAILURES
        entry[1] = now + (0.0 if over < 0 else min(MAX_DELAY_S, FIRST_DELAY_S * 2.0 ** min(over, 16)))

    def succeeded(self, client: str) -> None:
        self._clients.pop(client_key(client), None)

    def checks_in_window(self) -> int:
        return self._checks

    def __len__(self) -> int:
        return len(self._clients)


# -- login nonces -------------------------------------------------------------------------
class LoginNonces:
    """Login-form nonces bound to this process: "issued.random.mac", the MAC an HMAC-SHA256
    under a secret made when the page starts. A nonce from another device, from before a
    restart, older than NONCE_MAX_AGE_S, or made up, is refused."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ConfigError("login nonce secret: got %d bytes; expected at least 16" % len(secret))
        self._secret = secret

    def _mac(self, body: str) -> str:
        return binascii.hexlify(crypto.hmac_sha256(self._secret, body.encode())[:16]).decode()

    def issue(self, now: float) -> str:
        body = "%d.%s" % (int(now), crypto.token_urlsafe(TOKEN_BYTES // 2))
        return body + "." + self._mac(body)

    def valid(self, nonce: object, now: float) -> bool:
        if not isinstance(nonce, str) or len(nonce) > MAX_NONCE_LEN:
            return False
        body, _, mac = nonce.rpartition(".")
        issued = body.partition(".")[0]
        if not issued or len(issued) > 15 or any(c not in _DIGITS for c in issued):
            return False
        if not crypto.same_bytes(self._mac(body).encode(), mac.encode()):
            return False
        return int(issued) <= now and now - int(issued) <= NONCE_MAX_AGE_S


# -- sessions -----------------------------------------------------------------------------
class Session:
    """One signed-in browser: its id (the cookie), its form token, a notice to show once."""

    __slots__ = ("created", "csrf", "id", "last_used", "notice")

    def __init__(self, now: float) -> None:
        self.notice = ""
        self.id = crypto.token_urlsafe(TOKEN_BYTES)
        self.csrf = crypto.token_urlsafe(TOKEN_BYTES)
        self.created = now
        self.last_used = now


class SessionTable:
    """Signed-in browsers: random ids, an idle and an absolute expiry, at most MAX_SESSIONS."""

    def __init__(self) -> None:
        self._sessions: dict = {}

    def open(self, now: float) -> Session:
        self._expire(now)
        while len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions.values(), key=lambda s: s.last_used)
            del self._sessions[oldest.id]
        session = Session(now)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None, now: float) -> Session | None:
        """The live session with this id (and its use noted), or None."""
        self._expire(now)
        session = self._sessions.get(session_id or "")
        if session is not None:
            session.last_used = now
        return session

    def close(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def _expire(self, now: float) -> None:
        dead = [
            s.id
            for s in self._sessions.values()
            if now - s.last_used >= SESSION_IDLE_S or now - s.created >= SESSION_MAX_S
        ]
        for sid in dead:
            del self._sessions[sid]

    def __len__(self) -> int:
        return len(self._sessions)


def same_token(expected: str, given: object) -> bool:
    """A form token as expected, compared in constant time; False for anything missing."""
    return isinstance(given, str) and bool(expected) and crypto.same_bytes(expected.encode(), given.encode())


# -- the gatekeeper -----------------------------------------------------------------------
class LoginResult:
    """What a login attempt came to: a session, or the seconds to wait (crowded: because of
    the ceiling for all addresses, not this address's own wrong codes)."""

    __slots__ = ("crowded", "session", "wait_s")

    def __init__(self, session: Session | None, wait_s: float = 0.0, crowded: bool = False) -> None:
        self.session = session
        self.wait_s = wait_s
        self.crowded = crowded


class Gatekeeper:
    """Login decisions in two steps, so the slow hash can run where the adapter wants it:
    admit() before checking a typed code, settle() with the result."""

    def __init__(self, record: dict, secret: bytes | None = None) -> None:
        self.record = setup_code.check_record(record)
        self.throttle = LoginThrottle()
        self.sessions = SessionTable()
        self.nonces = LoginNonces(secret if secret is not None else crypto.token_bytes(TOKEN_BYTES))

    def admit(self, client: str, now: float) -> LoginResult | None:
        """None: check the code now. Otherwise the refusal: while an address must wait, its
        code is not even checked, so the wait cannot be raced."""
        wait, crowded = self.throttle.admit(client, now)
        return LoginResult(None, wait, crowded) if wait > 0 else None

    def code_ok(self, typed: str) -> bool:
        """The slow part: the salted hash of the typed code against the record."""
        return len(typed) <= MAX_CODE_LEN and setup_code.verify(typed, self.record)

    def settle(self, client: str, ok: bool, now: float) -> LoginResult:
        if not ok:
            return LoginResult(None, self.throttle.wait_s(client, now))
        self.throttle.succeeded(client)
        return LoginResult(self.sessions.open(now))

    def login(self, client: str, typed: str, now: float) -> LoginResult:
        """Both steps at once, the hash inline."""
        refused = self.admit(client, now)
        if refused is not None:
            return refused
        return self.settle(client, self.code_ok(typed), now)
