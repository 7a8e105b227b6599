"""The local page's routes on both runtimes: microdot's app, the access rules applied to each
request, and the answer to one complete request as bytes.

No sockets: a server (server.py on the host, board.py on MicroPython) reads a request within
the page's bounds, hands the bytes to PageApp.answer and sends what comes back. The page
changes the agent only through its DeviceActions (StoredActions: agent/core/device.py).
"""

import io
import json

import microdot.microdot as microdot_module
from microdot import Microdot, Request, Response
from microdot.microdot import AsyncBytesIO

from agent.core import device
from agent.core.consumables import RISKS, SHARE, ReorderChoice
from agent.core.errors import ConfigError, OutboxFullError, StorageError, WichtelError
from agent.core.pipeline import Agent
from agent.core.ratelimit import ThrottledReport
from agent.local_page import access, intake, limits, localtime, texts, views

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from typing import Any

    from agent.core.stored_data import StoredData

# No os.path on MicroPython: the style sheet beside this module, by string.
STATIC_CSS = __file__.rpartition("/")[0] + "/static/page.css"
SESSION_COOKIE = "wichtel_session"
NONCE_COOKIE = "wichtel_login"
LANG_COOKIE = "wichtel_lang"
ZONE_COOKIE = "wichtel_zone"  # the user's time zone for the page's times: a display preference
# The page runs no script and is never framed; forms post to itself only.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_PUBLIC = ("/login", "/static/page.css")

# microdot keeps its size limits on the Request class: this process serves one page only.
# intake.parse_head has checked every request against the page's tighter bounds before.
Request.max_content_length = limits.MAX_BODY_BYTES
Request.max_body_length = limits.MAX_BODY_BYTES
Request.max_readline = limits.MAX_HEADER_LINE + 2


def _number(text: str, what: str) -> float:
    """A number typed into a form; ConfigError naming the field and the text otherwise."""
    try:
        return float(text)
    except ValueError as e:  # float() of text that is no number: the only ValueError caught here
        raise ConfigError("%s must be a number, got %r" % (what, text)) from e


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


class DeviceActions:
    """What the page may do to the device beyond reading the agent. This one keeps everything
    in the agent's memory (a page without stored data: firmware/page_main.py, the page's
    tests); StoredActions below stores each change, on a board and on the host."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def set_consent(self, category: str, allowed: bool, t_ms: int, wall_s: int) -> dict:
        receipt = self.agent.rights.consent_receipt(category, allowed, t_ms, wall_s)
        self.agent.rights.apply_consent(receipt)
        return receipt

    def erase(self, t_ms: int) -> int:
        """Returns how many erasure requests wait to go."""
        self.agent.rights.erase(t_ms)
        return self.agent.rights.erasures_waiting()

    def export_pieces(self) -> list:
        """The export file (docs/export.md) as pieces of bytes, none much larger than EXPORT_PIECE_BYTES: a
        board's heap may have room for them, not for the whole text in one block."""
        pieces = _Pieces()
        json.dump(self.agent.rights.export(), pieces)  # MicroPython's json writes token by token
        pieces.write("\n")
        return pieces.done()

    def changed(self) -> None:
        """After a change on the page: nothing more to store in memory."""


class StoredActions(DeviceActions):
    """The page's changes stored with the device's data (a StoredData of the runtime, or None
    for none) through agent/core/device.py: the same on a board (firmware/main.py) as on
    the host (server.py)."""

    def __init__(self, agent: Agent, data: "StoredData | None") -> None:
        super().__init__(agent)
        self.data = data

    def set_consent(self, category: str, allowed: bool, t_ms: int, wall_s: int) -> dict:
        return device.set_consent(self.agent, self.data, category, allowed, t_ms, wall_s)

    def erase(self, t_ms: int) -> int:
        return device.erase(self.agent, self.data, t_ms)

    def changed(self) -> None:
        """Store what a change on the page did, as the agent stores it on closing (a failure
        is in data.problems, and the next store tries again)."""
        device.close(self.agent, self.data)


class _Pieces(io.IOBase):
    """A stream for json.dump that keeps what it is given as pieces of about EXPORT_PIECE_BYTES.
    (MicroPython's json.dump writes only to a stream object, token by token.)"""

    def __init__(self) -> None:
        self.pieces: list = []
        self._open = bytearray()

    def write(self, data: "str | bytes") -> int:
        # CPython's json writes text; MicroPython's a buffer that it reuses: copied here at once.
        self._open.extend(data.encode() if isinstance(data, str) else data)
        if len(self._open) >= limits.EXPORT_PIECE_BYTES:
            self.pieces.append(bytes(self._open))
            self._open = bytearray()
        return len(data)

    def done(self) -> list:
        if self._open:
            self.pieces.append(bytes(self._open))
            self._open = bytearray()
        return self.pieces


class PageApp:
    """The page for one running agent, without a server. `now` (monotonic seconds) and `wall`
    (seconds since 1970) are passed in so tests can move time and a board can use its own."""

    def __init__(self, agent: Agent, actions: DeviceActions, record: dict, now: "Callable[[], float]",
                 wall: "Callable[[], float]", report: "Callable[[str], None]") -> None:  # fmt: skip
        self.agent = agent
        self.actions = actions
        self.gate = access.Gatekeeper(record)
        self.now = now
        self.wall = wall
        # Everything a client can make the page write goes through one rate limit.
        self.log = ThrottledReport(report, limits.LOG_PER_S, limits.LOG_BURST)
        self._print_exception: object = None
        self.show_all = True  # My data shows the export inline too (views.my_data)
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
        market = (self.agent.profile.get("privacy_notice") or {}).get("market", "")
        zone = localtime.zone_for(req.cookies.get(ZONE_COOKIE, ""), market)
        return views.View(self._lang(req), session.csrf if session else "", req.path, notice, zone,
                          int(self.wall()), self.agent.clock.now_ms())  # fmt: skip

    def _form(self, req: Request) -> dict:
        try:
            form = req.form
        except ValueError as e:  # a %-escape that is not hex, or not UTF-8
            raise RequestRefusedError(400, texts.TEXTS[self._lang(req)]["bad_form"] % "not URL-encoded") from e
        if form is None:
            raise RequestRefusedError(400, texts.TEXTS[self._lang(req)]["bad_form"] % "not a form")
        return {k: form.get(k) for k in form}

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

        self._headers_and_errors()

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

        @app.post("/zone")
        async def set_zone(req: Request) -> Response:
            t = texts.TEXTS[self._lang(req)]
            zone = str(self._form(req).get("zone") or "")
            if zone not in localtime.ZONES:
                raise RequestRefusedError(400, t["bad_form"] % ("unknown time zone " + repr(zone[:40])))
            req.g.session.notice = t["zone_saved"] % localtime.ZONE_NAMES[zone][0 if self._lang(req) == "en" else 1]
            res = _redirect("/device")
            _add_cookie(res, _cookie(ZONE_COOKIE, zone, 365 * 86400))
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

        @app.get("/notice")
        async def notice(req: Request) -> Response:
            return _html(views.notice(self.agent, self._view(req, req.g.session)))

        @app.post("/privacy/<category>")
        async def set_consent(req: Request, category: str) -> Response:
            t = texts.TEXTS[self._lang(req)]
            choice = self._form(req).get("choice")
            if choice not in ("on", "off"):
                raise RequestRefusedError(400, t["bad_form"] % "choice must be on or off")
            try:
                self.actions.set_consent(category, choice == "on", self.agent.clock.now_ms(), int(self.wall()))
            except ConfigError as e:
                raise RequestRefusedError(400, t["bad_form"] % e) from e
            except (OutboxFullError, StorageError) as e:
                raise RequestRefusedError(503, t["busy"] % e) from e
            title = next(c["title"][self._lang(req)] for c in self.agent.profile["data_categories"]
                         if c["id"] == category)  # fmt: skip
            req.g.session.notice = t["switched_on" if choice == "on" else "switched_off"] % title
            if self._form(req).get("then") == "consumables":  # the one-click fix on a consumable's card
                return _redirect("/consumables")
            return _redirect("/privacy#cat-" + category)

        @app.get("/data")
        async def my_data(req: Request) -> Response:
            return _html(views.my_data(self.agent, self._view(req, req.g.session), self.show_all))

        @app.get("/data/export.json")
        async def export(req: Request) -> Response:
            name = "wichtel-export-%s.json" % self.agent.device_id
            # An iterator of pieces: microdot sends them one by one.
            return Response(iter(self.actions.export_pieces()), 200, {  # type: ignore[arg-type]
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
                pending = self.actions.erase(self.agent.clock.now_ms())
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
                lead = _number(lead_text, "the lead time in days") if lead_text else None
                choice = ReorderChoice(str(form.get("mode") or ""), str(form.get("product") or "").strip(),
                                       str(form.get("retailer") or "").strip(), lead_time_days=lead)  # fmt: skip
                old = self.agent.consumable(cid).choice
                risk_text = str(form.get("risk") or "").strip()
                choice.risk = _number(risk_text, "when to remind") if risk_text else old.risk
                if risk_text and choice.risk not in RISKS:
                    raise ConfigError("when to remind must be one of the offered choices, got " + repr(risk_text))
                self.agent.set_reorder_choice(cid, choice)
            except ConfigError as e:
                raise RequestRefusedError(400, t["bad_form"] % e) from e
            self.actions.changed()
            blocked = choice.mode == SHARE and not self.agent.rights.allows(self.agent.consumable(cid).category)
            req.g.session.notice = t["saved_not_shared"] if blocked else t["saved"]
            return _redirect("/consumables#c-" + cid)

        @app.post("/consumables/<cid>/refilled")
        async def refilled(req: Request, cid: str) -> Response:
            t = texts.TEXTS[self._lang(req)]
            try:
                name = self.agent.consumable(cid).name[self._lang(req)]
                self.agent.refilled(cid, self.agent.clock.now_ms())
            except ConfigError as e:  # no such consumable
                raise RequestRefusedError(400, t["bad_form"] % e) from e
            self.actions.changed()
            req.g.session.notice = t["refill_done"] % name
            return _redirect("/consumables#c-" + cid)

        @app.post("/alerts/<aid>/seen")
        async def alert_seen(req: Request, aid: str) -> Response:
            t = texts.TEXTS[self._lang(req)]
            number = int(aid) if aid.isdigit() and len(aid) <= 9 else 0
            if self.agent.acknowledge_alert(number, self.agent.clock.now_ms(), "user"):
                self.actions.changed()
                req.g.session.notice = t["alert_marked"]
            else:
                req.g.session.notice = t["alert_gone"]
            return _redirect("/")

        @app.get("/device")
        async def device_page(req: Request) -> Response:
            return _html(views.device(self.agent, self._view(req, req.g.session)))

    def _headers_and_errors(self) -> None:
        """What every page app of the device sets up alike (the onboarding page too): the
        security headers on every answer, errors included, and the page's own error pages."""
        app = self.app

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

    def _error_handler(self, status: int, key: str) -> "Callable[[Request], Coroutine[Any, Any, Response]]":
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
        """The salted hash of a typed code; a server overrides this to keep its loop going."""
        return self.gate.code_ok(typed)

    def _log_exception(self, exc: BaseException) -> None:
        """microdot's report of an exception in a route (it would print a traceback): one
        line, within the page's log rate. The host's server adds where it happened."""
        self._report("local page: %s while answering: %s" % (type(exc).__name__, exc))

    def _report(self, text: str) -> None:
        """One line, bounded, within the rate: a client's words in it cannot start a line of their own."""
        self.log("".join(c if " " <= c != "\x7f" else "?" for c in text[: limits.LOG_LINE_MAX]))

    def hook_log(self) -> None:
        """microdot prints a traceback for every exception in a route; a client that can cause
        one could fill the log. While the page serves, its reports go through the page's rate
        limit instead."""
        self._print_exception = getattr(microdot_module, "print_exception", None)
        setattr(microdot_module, "print_exception", self._log_exception)  # noqa: B010 -- not in the stubs

    def unhook_log(self) -> None:
        if self._print_exception is not None:
            setattr(microdot_module, "print_exception", self._print_exception)  # noqa: B010
            self._print_exception = None

    async def answer(self, data: bytes, peer: tuple) -> bytes:
        """The whole answer to one request that passed the intake checks."""
        return b"".join(await self.answer_pieces(data, peer))

    async def answer_pieces(self, data: bytes, peer: tuple) -> list:
        """The answer as microdot wrote it: a piece per write, for a server that sends them
        one after the other instead of joining them into one block."""
        sink = _Answer(peer)
        try:
            req = await Request.create(self.app, AsyncBytesIO(data), sink, peer)  # type: ignore[arg-type]
        except ValueError:  # a query string microdot cannot decode (%-escape not hex or not UTF-8)
            return [await self._refusal(intake.HeadError(400, "the query is not URL-encoded"), peer)]
        res = await self.app.dispatch_request(req)
        await res.write(sink)
        return sink.parts

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
        await res.write(sink)  # type: ignore[arg-type]  # microdot only awaits awrite/aclose
        return sink.data()
