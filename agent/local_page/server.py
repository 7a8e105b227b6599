"""The local page's web adapter: microdot routes inside the agent's asyncio loop.

A thin layer: it asks access.py who may do what, views.py what to show, and changes the
running agent only through agent/device.py and the Agent's own methods. Binds only the
address it is given.
"""

import os
import time
from collections.abc import Callable, Coroutine
from typing import Any

from microdot import Microdot, Request, Response

from agent import device
from agent.core.consumables import RISKS, ReorderChoice
from agent.core.errors import ConfigError, StorageError
from agent.core.pipeline import Agent
from agent.device_data import DeviceData
from agent.local_page import access, texts, views

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

# microdot keeps its size limits on the Request class: this process serves one page only.
Request.max_content_length = access.MAX_BODY_BYTES
Request.max_body_length = access.MAX_BODY_BYTES


class RequestRefused(Exception):
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


class LocalPage:
    """The page for one running agent. `now` (monotonic seconds) and `wall` (seconds since
    1970) are passed in so tests can move time."""

    def __init__(self, agent: Agent, data: DeviceData | None, record: dict,
                 now: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.agent = agent
        self.data = data
        self.gate = access.Gatekeeper(record)
        self.now = now
        self.wall = wall
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
        form = req.form
        if form is None:
            raise RequestRefused(400, texts.TEXTS[self._lang(req)]["bad_form"] % "not a form")
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
                except RequestRefused as e:
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

        @app.errorhandler(RequestRefused)
        async def refused(req: Request, exc: Exception) -> Response:
            assert isinstance(exc, RequestRefused)
            return _html(views.error(self._view(req), exc.status, exc.message, req.g.session is not None), exc.status)

        @app.get("/static/page.css")
        async def css(req: Request) -> Response:
            with open(STATIC_CSS, "rb") as f:
                return Response(f.read(), 200, {"Content-Type": "text/css; charset=UTF-8"})

        @app.get("/lang/<lang>")
        async def lang(req: Request, lang: str) -> Response:
            if lang not in texts.LANGS:
                raise RequestRefused(404, texts.TEXTS[self._lang(req)]["not_found"])
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
            if not access.same_token(nonce, form.get("nonce")):
                return self._login_page(req, t["bad_token"], 403)
            client = str(req.client_addr[0]) if req.client_addr else "?"
            session, wait = self.gate.login(client, str(form.get("code") or ""), self.now())
            if session is None:
                message = t["wait"] % max(1, round(wait)) if wait > 0 else t["wrong_code"]
                return self._login_page(req, message, 429 if wait > 0 else 403)
            res = _redirect("/")
            _add_cookie(res, _cookie(SESSION_COOKIE, session.id, access.SESSION_MAX_S))
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
                raise RequestRefused(400, t["bad_form"] % "choice must be on or off")
            try:
                device.set_consent(self.agent, self.data, category, choice == "on", self.agent.clock.now_ms(),
                                   int(self.wall()))  # fmt: skip
            except ConfigError as e:
                raise RequestRefused(400, t["bad_form"] % e) from e
            except (OverflowError, StorageError) as e:
                raise RequestRefused(503, t["busy"] % e) from e
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
                raise RequestRefused(400, t["bad_form"] % "the confirmation box was not ticked")
            try:
                pending = device.erase(self.agent, self.data, self.agent.clock.now_ms())
            except OverflowError as e:
                raise RequestRefused(503, t["busy"] % e) from e
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
                raise RequestRefused(400, t["bad_form"] % e) from e
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
                raise RequestRefused(400, t["bad_form"] % e) from e
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
        nonce = access.Session(0).csrf  # a fresh random token
        res = _html(views.login(self._view(req), nonce, message), status)
        _add_cookie(res, _cookie(NONCE_COOKIE, nonce, access.SESSION_IDLE_S))
        return res

    async def start(self, host: str, port: int) -> None:
        """Listen on host:port only; OSError (address in use, no such interface) at once."""
        await self.app.start_server(host=host, port=port, start_serving=False)
        self._server = self.app.server  # an asyncio Server (the stubs do not say so)
        await self._server.start_serving()

    async def stop(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None:
            server.close()
            await server.wait_closed()
            del self._server
