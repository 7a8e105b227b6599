"""Wi-Fi onboarding for the end user: the board's own access point and a small page, in
English and German, where the user enters the home network's name and password, guarded by
the setup code on the device's label.

The access point is open; the page is what is guarded. The board cannot run WPA2 with the
label's code as passphrase: it stores only a salted hash of the code (agent/setup_code.py),
so that a dump of its flash does not give the code away, and a passphrase must be known in
full. docs/firmware.md, "Onboarding", weighs what that leaves open.

The page is served by the local page's board server (agent/local_page/board.py): its request
bounds, time limits, connection cap, and the login throttle, nonces and code check of
access.py; only the routes are this module's.
"""

from microdot import Request, Response

from agent.core.compat import const
from agent.local_page import access, limits, texts, views
from agent.local_page.board import BoardPage
from agent.local_page.routes import (  # the local page's own cookie rules (Path, HttpOnly, SameSite=Strict)
    LANG_COOKIE,
    NONCE_COOKIE,
    STATIC_CSS,
    RequestRefusedError,
    _add_cookie,
    _cookie,
)
from firmware.wifi_credentials import MAX_SSID_BYTES, PSK_HEX_LEN, CredentialsError, CredentialStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from network import WLAN

# -- limits ---------------------------------------------------------------------------------------
REBOOT_DELAY_MS = const(3_000)  # after the credentials are stored: the answer reaches the browser first
SSID_PREFIX = "Wichtel-"
SSID_SUFFIX_CHARS = const(6)  # hex digits of the device's MAC address after the prefix (the label shows them too)

TEXTS = {
    "en": {
        "title": "Connect to your Wi-Fi",
        "intro": "Enter the name and password of your home Wi-Fi network, and the setup code from the "
        "appliance's label. The appliance then restarts and joins your network.",
        "ssid": "Wi-Fi name",
        "password": "Wi-Fi password",
        "password_hint": "Leave empty for an open network.",
        "save": "Connect",
        "saved": "Saved. The appliance restarts now and joins %s. Connect this phone or computer back to "
        "your home network; the appliance's page is then at its address there.",
        "not_stored": "The appliance could not store the settings (%s). Please try again.",
    },
    "de": {
        "title": "Mit Ihrem WLAN verbinden",
        "intro": "Geben Sie den Namen und das Passwort Ihres WLANs zu Hause ein und den Einrichtungscode "
        "vom Typenschild des Geräts. Das Gerät startet dann neu und verbindet sich mit Ihrem Netz.",
        "ssid": "WLAN-Name",
        "password": "WLAN-Passwort",
        "password_hint": "Leer lassen bei einem offenen Netz.",
        "save": "Verbinden",
        "saved": "Gespeichert. Das Gerät startet jetzt neu und verbindet sich mit %s. Verbinden Sie dieses "
        "Telefon oder diesen Computer wieder mit Ihrem WLAN; die Seite des Geräts ist dann unter seiner "
        "Adresse dort erreichbar.",
        "not_stored": "Das Gerät konnte die Einstellungen nicht speichern (%s). Bitte versuchen Sie es noch einmal.",
    },
}


def access_point_name(mac: bytes) -> str:
    """The setup network's name: SSID_PREFIX and the last SSID_SUFFIX_CHARS hex digits of the MAC."""
    return SSID_PREFIX + "".join("%02X" % b for b in mac)[-SSID_SUFFIX_CHARS:]


def open_access_point(network: "Any") -> tuple:
    """The access point up, open, named after the device: (its name, its address)."""
    ap: WLAN = network.WLAN(network.AP_IF)
    ap.active(True)
    name = access_point_name(ap.config("mac"))
    ap.config(ssid=name, security=network.AUTH_OPEN)
    return name, str(ap.ifconfig()[0])


def close_access_point(network: "Any") -> None:
    ap: WLAN = network.WLAN(network.AP_IF)
    ap.active(False)


class OnboardingPage(BoardPage):
    """The setup page on the board's page server; `on_saved` is called once credentials are stored."""

    def __init__(self, record: dict, store: CredentialStore, report: "Callable[[str], None]",
                 on_saved: "Callable[[], None]", now: "Callable[[], float] | None" = None,
                 request_timeout_s: float = limits.REQUEST_TIMEOUT_S,
                 answer_timeout_s: float = limits.ANSWER_TIMEOUT_S) -> None:  # fmt: skip
        self.store = store
        self.on_saved = on_saved
        self.saved_ssid = ""
        # No agent runs while the board has no network: the page's only routes are set up by _routes below.
        super().__init__(None, record, report, now=now, request_timeout_s=request_timeout_s,  # type: ignore[arg-type]
                         answer_timeout_s=answer_timeout_s)  # fmt: skip

    def _html(self, req: Request | None, status: int = 200, message: str = "", ssid: str = "",
              done: str = "") -> Response:  # fmt: skip
        view = views.View(self._lang(req), path="/")
        frame = {"langs": [(lang, texts.TEXTS[lang]["lang_name"], lang == view.lang) for lang in texts.LANGS],
                 "nav": []}  # fmt: skip
        nonce = "" if done else self.gate.nonces.issue(self.now())
        # The template is among the local page's (templates/wifi_setup.html): compiled with them, by a
        # build ahead of time or when views is imported, and escaping every value it writes.
        body = views._TEMPLATES.render("wifi_setup", view=view, t=view.t, w=TEXTS[view.lang], frame=frame,
                                       nonce=nonce, message=message, ssid=ssid, done=done, max_ssid=MAX_SSID_BYTES,
                                       max_key=PSK_HEX_LEN)  # fmt: skip
        res = Response(body, status, {"Content-Type": "text/html; charset=UTF-8"})
        if nonce:
            _add_cookie(res, _cookie(NONCE_COOKIE, nonce, limits.NONCE_MAX_AGE_S))
        return res

    def _routes(self) -> None:
        app = self.app

        self._headers_and_errors()

        @app.get("/static/page.css")
        async def css(req: Request) -> Response:
            with open(STATIC_CSS, "rb") as f:
                return Response(f.read(), 200, {"Content-Type": "text/css; charset=UTF-8"})

        @app.get("/lang/<lang>")
        async def lang(req: Request, lang: str) -> Response:
            if lang not in texts.LANGS:
                return self._html(req, 404)
            res = Response("", 303, {"Location": "/"})
            _add_cookie(res, _cookie(LANG_COOKIE, lang, 365 * 86400))
            return res

        @app.get("/")
        async def form(req: Request) -> Response:
            return self._html(req, done=TEXTS[self._lang(req)]["saved"] % self.saved_ssid if self.saved_ssid else "")

        @app.post("/")
        async def submit(req: Request) -> Response:
            w, t = TEXTS[self._lang(req)], texts.TEXTS[self._lang(req)]
            if self.saved_ssid:  # stored already: the board is restarting
                return self._html(req, 409, done=w["saved"] % self.saved_ssid)
            try:
                fields = self._form(req)
            except RequestRefusedError as e:
                return self._html(req, e.status, e.message)
            ssid = str(fields.get("ssid") or "")[: 4 * MAX_SSID_BYTES]
            nonce = req.cookies.get(NONCE_COOKIE, "")
            # The form's nonce as in the cookie (this browser) and made by this process (this device).
            if not access.same_token(nonce, fields.get("nonce")) or not self.gate.nonces.valid(nonce, self.now()):
                return self._html(req, 403, t["bad_token"], ssid)
            client = str(req.client_addr[0]) if req.client_addr else "?"
            result = self.gate.admit(client, self.now())
            if result is None:
                ok = await self._check_code(str(fields.get("code") or "")[: limits.MAX_CODE_LEN + 1])
                result = self.gate.settle(client, ok, self.now())
            if result.session is None:
                if result.wait_s <= 0:
                    return self._html(req, 403, t["wrong_code"], ssid)
                wait = max(1, round(result.wait_s))
                res = self._html(req, 429, (t["crowded"] if result.crowded else t["wait"]) % wait, ssid)
                res.headers["Retry-After"] = str(wait)
                return res
            self.gate.sessions.close(result.session.id)  # the code was for this form only: no session stays
            try:
                self.store.save(fields.get("ssid") or "", fields.get("password") or "")
            except CredentialsError as e:
                return self._html(req, 400, str(e), ssid)
            except OSError as e:  # the flash refused the write
                self._report("onboarding: the credentials could not be stored (%s)" % e)
                return self._html(req, 500, w["not_stored"] % e, ssid)
            self.saved_ssid = ssid
            self._report("onboarding: credentials for %r stored; restarting" % ssid)
            self.on_saved()
            return self._html(req, done=w["saved"] % ssid)
