"""Who may use the local page: setup-code login with a rate limit, sessions, form tokens.

No I/O and no clock of its own: every method takes the time in seconds, so the rules can
be checked on a host without waiting. The web adapter (server.py) only asks and obeys.
"""

import hmac
import secrets

from agent import setup_code

# Every bound of the page, in one place (each is tested at the bound: tests/test_local_page.py).
MAX_SESSIONS = 8  # signed-in browsers at once; a new login pushes out the least recently used
SESSION_IDLE_S = 15 * 60  # a session unused this long ends
SESSION_MAX_S = 8 * 3600  # and none lives longer than this
FREE_FAILURES = 5  # wrong codes in a row before the delay starts
FIRST_DELAY_S = 1.0  # then 1, 2, 4, ... seconds between attempts
MAX_DELAY_S = 120.0  # never longer: a neighbour typing nonsense locks the owner out 2 minutes at most
FORGET_FAILURES_S = 3600  # a client quiet this long starts again from zero
MAX_TRACKED_CLIENTS = 64  # clients remembered one by one; more share one throttle
MAX_BODY_BYTES = 4096  # a request body (all forms of the page are small)
TOKEN_BYTES = 32  # session ids and form tokens: 256 random bits

_SHARED = "*"  # the throttle for clients beyond MAX_TRACKED_CLIENTS


class LoginThrottle:
    """Counts wrong setup codes per client and says how long the next attempt must wait.

    The first FREE_FAILURES wrong codes cost nothing; each one after doubles the wait,
    up to MAX_DELAY_S. Memory is bounded: beyond MAX_TRACKED_CLIENTS clients, new ones
    share one entry, so cycling addresses never resets anyone's count.
    """

    def __init__(self) -> None:
        self._clients: dict = {}  # client -> [failures, not_before_s, last_failure_s]

    def _key(self, client: str, now: float) -> str:
        self._forget(now)
        if client in self._clients or len(self._clients) < MAX_TRACKED_CLIENTS - 1:
            return client
        return _SHARED

    def _forget(self, now: float) -> None:
        for client in [c for c, e in self._clients.items() if now - e[2] >= FORGET_FAILURES_S and now >= e[1]]:
            del self._clients[client]

    def wait_s(self, client: str, now: float) -> float:
        """Seconds until this client may try a code again (0: now)."""
        entry = self._clients.get(self._key(client, now))
        return max(0.0, entry[1] - now) if entry else 0.0

    def failed(self, client: str, now: float) -> float:
        """Note a wrong code; returns the wait before the next attempt."""
        key = self._key(client, now)
        entry = self._clients.setdefault(key, [0, 0.0, now])
        entry[0] += 1
        entry[2] = now
        over = entry[0] - FREE_FAILURES
        delay = 0.0 if over < 0 else min(MAX_DELAY_S, FIRST_DELAY_S * 2.0 ** min(over, 16))
        entry[1] = now + delay
        return delay

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)

    def __len__(self) -> int:
        return len(self._clients)


class Session:
    """One signed-in browser: its id (the cookie), its form token, a notice to show once."""

    __slots__ = ("created", "csrf", "id", "last_used", "notice")

    def __init__(self, now: float) -> None:
        self.notice = ""
        self.id = secrets.token_urlsafe(TOKEN_BYTES)
        self.csrf = secrets.token_urlsafe(TOKEN_BYTES)
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

    def close_all(self) -> None:
        self._sessions.clear()

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
    return isinstance(given, str) and bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


class Gatekeeper:
    """Login decisions: (ok, wait_s) for a typed code from a client at a time."""

    def __init__(self, record: dict) -> None:
        self.record = setup_code.check_record(record)
        self.throttle = LoginThrottle()
        self.sessions = SessionTable()

    def login(self, client: str, typed: str, now: float) -> tuple:
        """(session or None, seconds to wait). While a client must wait, its code is not
        even checked, so the wait cannot be raced."""
        wait = self.throttle.wait_s(client, now)
        if wait > 0:
            return None, wait
        if len(typed) > 64 or not setup_code.verify(typed, self.record):
            return None, self.throttle.failed(client, now)
        self.throttle.succeeded(client)
        return self.sessions.open(now), 0.0
