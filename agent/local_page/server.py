"""The local page's web adapter: a bounded socket server and microdot routes inside the
agent's asyncio loop.

A thin layer: it asks intake.py which connections to keep and which request heads to read,
access.py who may do what, views.py what to show, and changes the running agent only
through agent/device.py and the Agent's own methods. Binds only the address it is given.
"""

import asyncio
import errno
import os
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import microdot.microdot as microdot_module
from microdot import Microdot, Request, Response
from microdot.microdot import AsyncBytesIO

from agent import device
from agent.core.consumables import RISKS, ReorderChoice
from agent.core.errors import ConfigError, OutboxFullError, StorageError, WichtelError
from agent.core.pipeline import Agent
from agent.core.ratelimit import ThrottledReport
from agent.device_data import DeviceData
from agent.local_page import access, intake, limits, texts, views

STATIC_CSS = os.path.join(os.path.dirname(__file__), "static", "page.css")
SESSION_COOKIE = "wichtel_session"
NONCE_COOKIE = "wichtel_login"
LANG_COOKIE = "wichtel_lang"
# The page runs no script and is never framed; forms post to itself only.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_PUBLIC = ("/login", "/static/page.css")
# The answer to a connection over the cap: no page, no work.
_BUSY_TEXT = b"The appliance is busy; reload in a moment."
_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain; charset=UTF-8\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_BUSY_TEXT), _BUSY_TEXT)
)
# Out of descriptors or buffers: the accept loop waits instead of failing on every turn.
_ACCEPT_PAUSE_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)

# microdot keeps its size limits on the Request class: this process serves one page only.
# intake.parse_head has checked every request against the page's tighter bounds before.
Request.max_content_length = limits.MAX_BODY_BYTES
Request.max_body_length = limits.MAX_BODY_BYTES
Request.max_readline = limits.MAX_HEADER_LINE + 2


class RequestRefusedError(WichtelError):
    """A request the page will not carry out; status and message for the error page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _cookie(name: str, value: str, max_age: int) -> str:
    return "%s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Strict" % (name, value, max_age)


def _add_cookie(res: Response, cookie: str) -> None:
    if "Set-Cookie" in res.headers:  # a case-insensitive dict: no setdefault
        res.headers["Set-Cookie"].append(cookie)
    else:
        res.headers["Set-Cookie"] = [cookie]


def _html(body: str, status: int = 200) -> Response:
    return Response(body, status, {"Content-Type": "text/html; charset=UTF-8"})


def _redirect(path: str) -> Response:
    return Response("", 303, {"Location": path})


def _file_limit() -> int | None:
    """The soft limit of open files for this process, or None where it cannot be known."""
    try:
        import resource
    except ImportError:
        return None
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else int(soft)


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    """A non-blocking listening socket on exactly this address."""
    family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]  # fmt: skip
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class _Answer:
    """Where microdot writes an answer: memory, sent in one piece afterwards under a timeout."""

    def __init__(self, peer: tuple) -> None:
        self.parts: list = []
        self.peer = peer

    async def awrite(self, data: bytes) -> None:
        self.parts.append(data)

    async def aclose(self) -> None:
        return None

    def get_extra_info(self, name: str) -> object:
        return self.peer if name == "peername" else None

    def data(self) -> bytes:
        return b"".join(self.parts)


class LocalPage:
    """The page for one running agent. `now` (monotonic seconds) and `wall` (seconds since
    1970) are passed in so tests can move time."""

    def __init__(self, agent: Agent, data: DeviceData | None, record: dict,
                 now: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 report: Callable[[str], None] | None = None, request_timeout_s: float = limits.REQUEST_TIMEOUT_S,
                 answer_timeout_s: float = limits.ANSWER_TIMEOUT_S) -> None:  # fmt: skip
        self.agent = agent
        self.data = data
        self.gate = access.Gatekeeper(record)
        self.now = now
        self.wall = wall
        self.request_timeout_s = request_timeout_s
        self.answer_timeout_s = answer_timeout_s
        # Everything a client can make the page write goes through one rate limit.
        self.log = ThrottledReport(report or _stderr, limits.LOG_PER_S, limits.LOG_BURST)
        self.stats = {"served": 0, "refused": 0, "pushed_out": 0, "timed_out": 0, "bad_head": 0, "failed": 0}
        self.connections = intake.ConnectionTable(limits.MAX_CONNECTIONS)
        self.allowed_hosts: frozenset = frozenset()
        self._tasks: dict = {}  # connection id -> its task
        self._closing: set = set()  # tasks of pushed-out connections whose sockets are not closed yet
        self._next_id = 0
        self._sock: socket.socket | None = None
        self._accepting: asyncio.Future | None = None
        self._checker: ThreadPoolExecutor | None = None  # the slow setup-code hash, one at a time
        self._print_exception: object = None
        self.app = Microdot()
        self._routes()

    # -- request context -------------------------------------------------------------
    def _lang(self, req: Request | None) -> str:
        if req is None:
            return "en"
        return texts.pick(req.headers.get("Accept-Language", ""), req.cookies.get(LANG_COOKIE, ""))

    def _session(self, req: Request) -> access.Session | None:
        return self.gate.sessions.get(req.cookies.get(SESSION_COOKIE), self.now())

    def _view(self, req: Request, session: access.Session | None = None) -> views.View:
        notice = ""
        if session is not None:
            notice, session.notice = session.notice, ""
        return views.View(self._lang(req), session.csrf if session else "", req.path, notice)

    def _form(self, req: Request) -> dict:
        try:
            form = req.form
        except ValueError as e:  # a %-escape that is not hex, or not UTF-8
            raise RequestRefusedError(400, texts.TEXTS[self._lang(req)]["bad_form"] % "not URL-encoded") from e
        if form is None:
            raise RequestRefusedError(400, texts.TEXTS[self._lang(req)]["bad_form"] % "not a form")
        return {k: form.get(k) for k in form}

    def _changed(self) -> None:
        """Store what a change on the page did, as the agent stores it on closing."""
        device.close_device(self.agent, self.data)

    # -- routes ----------------------------------------------------------------------
    def _routes(self) -> None:
        app = self.app

        @app.before_request
        async def guard(req: Request) -> Response | None:
            req.g.session = None
            if req.path in _PUBLIC or req.path.startswith("/lang/"):
                return None
            session = self._session(req)
            if session is None:
                if req.method == "GET":
                    return _redirect("/login")
                return self._refuse(req, 403, "not_signed_in")
            if req.method == "POST":
                try:
                    given = self._form(req).get("csrf")
                except RequestRefusedError as e:
                    return _html(views.error(self._view(req), e.status, e.message, True), e.status)
                if not access.same_token(session.csrf, given):
                    return self._refuse(req, 403, "bad_token", session)
            req.g.session = session
            return None

        @app.after_request
        async def headers(req: Request, res: Response) -> Response:
            res.headers.update(SECURITY_HEADERS)
            return res

        @app.after_error_request
        async def error_headers(req: Request, res: Response) -> Response:
            res.headers.update(SECURITY_HEADERS)
            return res

        for status, key in ((400, "bad_form"), (404, "not_found"), (405, "not_allowed"), (413, "too_large"),
                            (500, "internal")):  # fmt: skip
            app.errorhandler(status)(self._error_handler(status, key))

        @app.errorhandler(RequestRefusedError)
        async def refused(req: Request, exc: Exception) -> Response:
            assert isinstance(exc, RequestRefusedError)
            return _html(views.error(self._view(req), exc.status, exc.message, req.g.session is not None), exc.status)

        @app.get("/static/page.css")
        async def css(req: Request) -> Response:
            with open(STATIC_CSS, "rb") as f:
                return Response(f.read(), 200, {"Content-Type": "text/css; charset=UTF-8"})

        @app.get("/lang/<lang>")
        async def lang(req: Request, lang: str) -> Response:
            if lang not in texts.LANGS:
                raise RequestRefusedError(404, texts.TEXTS[self._lang(req)]["not_found"])
            target = req.args.get("next", "/")
            if not target.startswith("/") or target.startswith("//") or "\\" in target:
                target = "/"  # only ever back into this page
            res = _redirect(target)
            _add_cookie(res, _cookie(LANG_COOKIE, lang, 365 * 86400))
            return res

        @app.get("/login")
        async def login_form(req: Request) -> Response:
            if self._session(req) is not None:
                return _redirect("/")
            return self._login_page(req, "")

        @app.post("/login")
        async def login(req: Request) -> Response:
            t = texts.TEXTS[self._lang(req)]
            form = self._form(req)
            nonce = req.cookies.get(NONCE_COOKIE, "")
            # The form's nonce as in the cookie (this browser) and made by this process (this device).
            if not access.same_token(nonce, form.get("nonce")) or not self.gate.nonces.valid(nonce, self.now()):
                return self._login_page(req, t["bad_token"], 403)
            client = str(req.client_addr[0]) if req.client_addr else "?"
            result = self.gate.admit(client, self.now())
            if result is None:
                ok = await self._check_code(str(form.get("code") or ""))
                result = self.gate.settle(client, ok, self.now())
            if result.session is None:
                wait = max(1, round(result.wait_s))
                if result.wait_s <= 0:
                    return self._login_page(req, t["wrong_code"], 403)
                res = self._login_page(req, (t["crowded"] if result.crowded else t["wait"]) % wait, 429)
                res.headers["Retry-After"] = str(wait)
                return res
            res = _redirect("/")
            _add_cookie(res, _cookie(SESSION_COOKIE, result.session.id, limits.SESSION_MAX_S))
            _add_cookie(res, _cookie(NONCE_COOKIE, "", 0))
            return res

        @app.post("/logout")
        async def logout(req: Request) -> Response:
            self.gate.sessions.close(req.g.session.id)
            res = self._login_page(req, texts.TEXTS[self._lang(req)]["signed_out"])
            _add_cookie(res, _cookie(SESSION_COOKIE, "", 0))
            return res

        @app.get("/")
        async def overview(req: Request) -> Response:
            return _html(views.overview(self.agent, self._view(req, req.g.session)))

        @app.get("/privacy")
        async def privacy(req: Request) -> Response:
            return _html(views.privacy(self.agent, self._view(req, req.g.session)))

        @app.post("/privacy/<category>")
        async def set_consent(req: Request, category: str) -> Response:
            t = texts.TEXTS[self._lang(req)]
            choice = self._form(req).get("choice")
            if choice not in ("on", "off"):
                raise RequestRefusedError(400, t["bad_form"] % "choice must be on or off")
            try:
                device.set_consent(self.agent, self.data, category, choice == "on", self.agent.clock.now_ms(),
                                   int(self.wall()))  # fmt: skip
            except ConfigError as e:
                raise RequestRefusedError(400, t["bad_form"] % e) from e
            except (OutboxFullError, StorageError) as e:
                raise RequestRefusedError(503, t["busy"] % e) from e
            title = next(c["title"][self._lang(req)] for c in self.agent.profile["data_categories"]
                         if c["id"] == category)  # fmt: skip
            req.g.session.notice = t["switched"] % (title, t["is_on"] if choice == "on" else t["is_off"])
            return _redirect("/privacy#cat-" + category)

        @app.get("/data")
        async def my_data(req: Request) -> Response:
            return _html(views.my_data(self.agent, self._view(req, req.g.session)))

        @app.get("/data/export.json")
        async def export(req: Request) -> Response:
            name = "wichtel-export-%s.json" % self.agent.gate.device_id
            return Response(device.export_text(self.agent).encode(), 200, {
                "Content-Type": "application/json; charset=UTF-8",
                "Content-Disposition": 'attachment; filename="%s"' % name,
            })  # fmt: skip

        @app.get("/data/erase")
        async def erase_form(req: Request) -> Response:
            return _html(views.erase_confirm(self._view(req, req.g.session)))

        @app.post("/data/erase")
        async def erase(req: Request) -> Response:
            t = texts.TEXTS[self._lang(req)]
            if self._form(req).get("confirm") != "yes":
                raise RequestRefusedError(400, t["bad_form"] % "the confirmation box was not ticked")
            try:
                pending = device.erase(self.agent, self.data, self.agent.clock.now_ms())
            except OutboxFullError as e:
                raise RequestRefusedError(503, t["busy"] % e) from e
            req.g.session.notice = t["erased"] % pending
            return _redirect("/data")

        @app.get("/consumables")
        async def consumables(req: Request) -> Response:
            return _html(views.consumables(self.agent, self._view(req, req.g.session)))

        @app.post("/consumables/<cid>")
        async def reorder_choice(req: Request, cid: str) -> Response:
            t = texts.TEXTS[self._lang(req)]
            form = self._form(req)
            lead_text = str(form.get("lead_time_days") or "").strip().replace(",", ".")
            try:
                lead = float(lead_text) if lead_text else None
                choice = ReorderChoice(str(form.get("mode") or ""), str(form.get("product") or "").strip(),
                                       str(form.get("retailer") or "").strip(), lead_time_days=lead)  # fmt: skip
                old = self.agent.consumable(cid).tracker.choice
                risk_text = str(form.get("risk") or "").strip()
                choice.risk = float(risk_text) if risk_text else old.risk
                if risk_text and choice.risk not in RISKS:
                    raise ValueError("when to remind must be one of the offered choices, got " + repr(risk_text))
                self.agent.set_reorder_choice(cid, choice)
            except (ValueError, ConfigError) as e:
                raise RequestRefusedError(400, t["bad_form"] % e) from e
            self._changed()
            req.g.session.notice = t["saved"]
            return _redirect("/consumables#c-" + cid)

        @app.post("/consumables/<cid>/refilled")
        async def refilled(req: Request, cid: str) -> Response:
            t = texts.TEXTS[self._lang(req)]
            try:
                name = self.agent.consumable(cid).tracker.name[self._lang(req)]
                self.agent.refilled(cid, self.agent.clock.now_ms())
            except (ValueError, ConfigError) as e:
                raise RequestRefusedError(400, t["bad_form"] % e) from e
            self._changed()
            req.g.session.notice = t["refill_done"] % name
            return _redirect("/consumables#c-" + cid)

        @app.get("/device")
        async def device_page(req: Request) -> Response:
            return _html(views.device(self.agent, self._view(req, req.g.session)))

    def _error_handler(self, status: int, key: str) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        async def handler(req: Request) -> Response:  # None when the request could not be parsed
            t = texts.TEXTS[self._lang(req)]
            message = t[key] % "malformed request" if "%s" in t[key] else t[key]
            view = views.View(self._lang(req))
            return _html(views.error(view, status, message), status)

        return handler

    def _refuse(self, req: Request, status: int, key: str, session: access.Session | None = None) -> Response:
        view = self._view(req, session)
        return _html(views.error(view, status, view.t[key], session is not None), status)

    def _login_page(self, req: Request, message: str, status: int = 200) -> Response:
        nonce = self.gate.nonces.issue(self.now())
        res = _html(views.login(self._view(req), nonce, message), status)
        _add_cookie(res, _cookie(NONCE_COOKIE, nonce, limits.NONCE_MAX_AGE_S))
        return res

    async def _check_code(self, typed: str) -> bool:
        """The salted hash in a worker thread (it releases the GIL): the loop, and with it the
        uplink and the sampler, goes on while it runs. One thread: checks queue, they never
        take more than one core."""
        if self._checker is None:
            self._checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wichtel-setup-code")
        return await asyncio.get_running_loop().run_in_executor(self._checker, self.gate.code_ok, typed)

    # -- the socket server -------------------------------------------------------------
    def _log_exception(self, exc: BaseException) -> None:
        """microdot's report of an exception in a route (it would print a traceback): one
        line with where it happened, within the page's log rate."""
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = "%s:%d" % (os.path.basename(tb.tb_frame.f_code.co_filename), tb.tb_lineno) if tb else "?"
        self._report("local page: %s at %s while answering: %s" % (type(exc).__name__, where, exc))

    def _report(self, text: str) -> None:
        """One line, bounded, within the rate: a client's words in it cannot start a line of their own."""
        self.log("".join(c if " " <= c != "\x7f" else "?" for c in text[: limits.LOG_LINE_MAX]))

    async def start(self, host: str, port: int, names: tuple = ()) -> None:
        """Listen on host:port only, answering to that address (and to the loopback names
        when it is one, and to the local names given); OSError (address in use, no such
        interface) or ConfigError (a wildcard address, too few files allowed) at once."""
        self.allowed_hosts = intake.allowed_hosts(host, port, names)
        self.connections = intake.ConnectionTable(intake.connection_cap(_file_limit()))
        self._sock = _listen(host, port, self.connections.cap)
        # microdot prints a traceback for every exception in a route; a client that can cause
        # one could fill the log. Its reports go through the page's rate limit instead.
        self._print_exception = getattr(microdot_module, "print_exception", None)
        setattr(microdot_module, "print_exception", self._log_exception)  # noqa: B010 -- not in the stubs
        self._accepting = asyncio.ensure_future(self._accept())

    async def stop(self) -> None:
        accepting, self._accepting = self._accepting, None
        if accepting is not None:
            accepting.cancel()
            await asyncio.gather(accepting, return_exceptions=True)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._checker is not None:
            self._checker.shutdown(wait=False)
            self._checker = None
        if self._print_exception is not None:
            setattr(microdot_module, "print_exception", self._print_exception)  # noqa: B010
            self._print_exception = None

    async def _accept(self) -> None:
        """Take connections one at a time, so no more descriptors are open than the table
        allows (plus the one being turned away). Accepted here, not by loop.sock_accept: a
        cancelled sock_accept whose connection was already waiting raises InvalidStateError
        in the loop and leaves that connection open (CPython 3.11); cancelled here, the
        loop only stops waiting, and a waiting connection stays in the backlog."""
        assert self._sock is not None
        sock = self._sock
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(sock.fileno(), readable.set)
        try:
            while True:
                try:
                    conn, peer = sock.accept()
                except (BlockingIOError, InterruptedError):
                    readable.clear()
                    await readable.wait()
                    continue
                except OSError as e:
                    self._report("local page: cannot take connections (%s); trying again in %.1f s"
                                 % (os.strerror(e.errno or 0), limits.ACCEPT_RETRY_S))  # fmt: skip
                    if e.errno in _ACCEPT_PAUSE_ERRNOS:
                        await asyncio.sleep(limits.ACCEPT_RETRY_S)
                    continue
                self.take(conn, peer)
                if self._closing:  # a descriptor is free only when the pushed-out connection has closed
                    await asyncio.wait(list(self._closing), timeout=1.0)
                # A flood of waiting connections must not keep the uplink and the sampler from their turns.
                await asyncio.sleep(0)
        finally:
            loop.remove_reader(sock.fileno())

    def take(self, conn: socket.socket, peer: tuple) -> asyncio.Future | None:
        """Admit one accepted connection and serve it in a task of its own (returned), or turn
        it away at once (None). The accept loop calls this; tests hand in socket pairs."""
        conn.setblocking(False)
        self._next_id += 1
        cid = self._next_id
        admitted, pushed_out = self.connections.open(cid, str(peer[0]), self.now())
        if pushed_out is not None:
            self.stats["pushed_out"] += 1
            victim = self._tasks[pushed_out]
            victim.cancel()  # still reading its request: no work is cut short
            self._closing.add(victim)
            victim.add_done_callback(self._closing.discard)
        if not admitted:
            self.stats["refused"] += 1
            try:
                conn.send(_BUSY)
            except OSError:
                pass  # it goes anyway
            conn.close()
            self._report("local page: a connection from %s turned away (%d open, at most %d, %d from one address)"
                         % (peer[0], len(self.connections), self.connections.cap,
                            limits.MAX_CONNECTIONS_PER_SOURCE))  # fmt: skip
            return None
        task = self._tasks[cid] = asyncio.ensure_future(self._serve(cid, conn, peer))
        task.add_done_callback(lambda _: self._closed(cid, conn))
        return task

    def _closed(self, cid: int, conn: socket.socket) -> None:
        """A connection's task has ended, however: even one pushed out before it ever ran
        leaves no descriptor and no entry behind."""
        conn.close()  # a no-op when its transport closed it
        self.connections.close(cid)
        self._tasks.pop(cid, None)

    async def _serve(self, cid: int, conn: socket.socket, peer: tuple) -> None:
        """One connection: its request within REQUEST_TIMEOUT_S, its answer within
        ANSWER_TIMEOUT_S, then closed (no keep-alive)."""
        writer = None
        try:
            reader, writer = await asyncio.open_connection(sock=conn, limit=limits.MAX_HEAD_BYTES)
            writer.transport.set_write_buffer_limits(0)  # drain() returns when the kernel has it all
            try:
                data = await asyncio.wait_for(self._read_request(reader), self.request_timeout_s)
            except TimeoutError:
                self.stats["timed_out"] += 1
                self._report("local page: a connection from %s closed: no complete request within %.0f s"
                             % (peer[0], self.request_timeout_s))  # fmt: skip
                return
            except intake.HeadError as e:
                self.stats["bad_head"] += 1
                out = await self._refusal(e, peer)
            else:
                self.connections.request_in(cid)
                out = await self.answer(data, peer)
            writer.write(out)
            await asyncio.wait_for(writer.drain(), self.answer_timeout_s)
            self.stats["served"] += 1
        except TimeoutError:
            self.stats["timed_out"] += 1
            self._report("local page: %s did not take its answer within %.0f s" % (peer[0], self.answer_timeout_s))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away
        except Exception as e:  # noqa: BLE001 -- one connection's fault must not end the page; it is reported
            self.stats["failed"] += 1
            self._log_exception(e)
        finally:  # the table entry goes in _closed, once the socket is closed
            if writer is not None:
                if writer.transport.get_write_buffer_size():
                    writer.transport.abort()  # a client not reading does not keep the descriptor
                else:
                    writer.close()
                try:  # the transport closes its socket a loop turn later; until then it counts
                    await asyncio.wait_for(writer.wait_closed(), 1.0)
                except (OSError, TimeoutError):
                    pass  # closed with an error, or not within a second: _closed closes it then

    async def _read_request(self, reader: asyncio.StreamReader) -> bytes:
        """Head and body of one request, within the page's bounds (HeadError otherwise)."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise intake.HeadError(431, "the request head is over %d bytes" % limits.MAX_HEAD_BYTES) from None
        parsed = intake.parse_head(head, self.allowed_hosts)
        return head + (await reader.readexactly(parsed.content_length) if parsed.content_length else b"")

    async def answer(self, data: bytes, peer: tuple) -> bytes:
        """The whole answer to one request that passed the intake checks."""
        sink = _Answer(peer)
        try:
            req = await Request.create(self.app, cast(Any, AsyncBytesIO(data)), cast(Any, sink), peer)
        except ValueError:  # a query string microdot cannot decode (%-escape not hex or not UTF-8)
            return await self._refusal(intake.HeadError(400, "the query is not URL-encoded"), peer)
        res = await self.app.dispatch_request(req)
        await res.write(cast(Any, sink))
        return sink.data()

    async def _refusal(self, error: intake.HeadError, peer: tuple) -> bytes:
        """The error page for a request the page did not read; nothing was done."""
        view = views.View(texts.pick(error.accept_language))
        if error.status == 421:
            message = view.t["wrong_host"]
        elif error.status in (413, 414, 431):
            message = view.t["too_large"]
        else:
            message = view.t["bad_form"] % error.reason
        res = _html(views.error(view, error.status, message), error.status)
        res.headers.update(SECURITY_HEADERS)
        sink = _Answer(peer)
        await res.write(cast(Any, sink))
        return sink.data()


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)
