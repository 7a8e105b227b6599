"""The local page without a browser: access rules at their bounds, and every route through
microdot's test client (a real request parser and dispatcher, no socket)."""

import asyncio
import json
import os
import re
from collections.abc import Iterator

import pytest
from microdot.test_client import TestClient

from agent import device, profile_loader, setup_code
from agent.core.outbox import CRITICAL
from agent.local_page import access, limits, texts
from agent.local_page.server import SECURITY_HEADERS, LocalPage

CODE = "K7M2P-9QXR4"


# -- access rules (no I/O, time passed in) --------------------------------------------
def test_wrong_codes_are_free_five_times_then_the_wait_doubles_up_to_its_bound() -> None:
    throttle = access.LoginThrottle()
    for _ in range(limits.FREE_FAILURES - 1):
        assert throttle.admit("10.0.0.1", 0.0) == (0.0, False)  # each check counts as wrong until it succeeds
    assert throttle.wait_s("10.0.0.1", 0.0) == 0.0
    t = 0.0
    waits = []
    for _ in range(12):
        assert throttle.admit("10.0.0.1", t) == (0.0, False)
        waits.append(throttle.wait_s("10.0.0.1", t))
        assert throttle.admit("10.0.0.1", t + waits[-1] / 2) == (waits[-1] / 2, False)  # not before the wait
        t += waits[-1]
    assert waits[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(waits) == limits.MAX_DELAY_S and waits[-1] == limits.MAX_DELAY_S
    assert throttle.wait_s("10.0.0.2", t) == 0.0  # another address is not held up
    throttle.succeeded("10.0.0.1")
    assert throttle.wait_s("10.0.0.1", t) == 0.0


def test_the_gatekeeper_does_not_even_check_a_code_while_the_client_must_wait() -> None:
    gate = access.Gatekeeper(setup_code.hash_code(CODE, iterations=setup_code.MIN_ITERATIONS))
    for _ in range(limits.FREE_FAILURES):
        assert gate.login("a", "WRONG-CODE2", 0.0).session is None
    result = gate.login("a", CODE, 0.5)  # the right code, but too soon
    assert result.session is None and result.wait_s == 0.5 and not result.crowded
    result = gate.login("a", CODE, 1.0)
    assert result.session is not None and result.wait_s == 0.0
    assert gate.throttle.wait_s("a", 1.0) == 0.0  # success forgets the failures
    assert gate.login("b", "K" * (limits.MAX_CODE_LEN + 1), 2.0).session is None  # too long: wrong, not hashed


def test_failed_attempt_memory_is_bounded_and_a_new_address_never_shares_a_throttle() -> None:
    throttle = access.LoginThrottle()
    for _ in range(limits.FREE_FAILURES):
        throttle.admit("192.168.1.66", 0.0)
    assert throttle.wait_s("192.168.1.66", 0.0) == limits.FIRST_DELAY_S
    others = ["10.0.%d.%d" % (i // 250, i % 250) for i in range(limits.MAX_TRACKED_CLIENTS)]
    for i, address in enumerate(others[:-1]):  # spread over windows: the ceiling is not the subject here
        assert throttle.admit(address, 1.0 + i * 0.2) == (0.0, False)
    t = 1.0 + len(others) * 0.2
    assert len(throttle) == limits.MAX_TRACKED_CLIENTS  # at the bound: everyone remembered
    assert throttle.wait_s("192.168.1.66", 0.5) > 0
    assert throttle.wait_s("192.168.1.99", t) == 0.0  # a never-seen address starts fresh
    assert throttle.admit(others[-1], t) == (0.0, False)  # one more: the address quiet longest is forgotten
    assert len(throttle) == limits.MAX_TRACKED_CLIENTS
    assert throttle.wait_s("192.168.1.66", 0.5) == 0.0
    # An address quiet for FORGET_FAILURES_S starts again from zero; one second less, it does not.
    for address in ("192.168.1.77", "192.168.1.78"):
        for _ in range(limits.FREE_FAILURES):
            throttle.admit(address, t)
        assert throttle.wait_s(address, t) == limits.FIRST_DELAY_S
    assert throttle.admit("192.168.1.77", t + limits.FORGET_FAILURES_S - 1) == (0.0, False)
    assert throttle.wait_s("192.168.1.77", t + limits.FORGET_FAILURES_S - 1) == 2 * limits.FIRST_DELAY_S
    assert throttle.admit("192.168.1.78", t + limits.FORGET_FAILURES_S) == (0.0, False)
    assert throttle.wait_s("192.168.1.78", t + limits.FORGET_FAILURES_S) == 0.0


def test_sessions_are_bounded_random_and_expire_idle_and_absolute() -> None:
    table = access.SessionTable()
    first = table.open(0.0)
    others = [table.open(float(i)) for i in range(1, limits.MAX_SESSIONS)]
    assert len(table) == limits.MAX_SESSIONS
    newest = table.open(100.0)  # one more: the least recently used goes
    assert len(table) == limits.MAX_SESSIONS and table.get(first.id, 100.0) is None
    assert table.get(newest.id, 100.0) is newest
    assert len({s.id for s in others} | {newest.id}) == limits.MAX_SESSIONS and len(newest.id) >= 40
    assert table.get(newest.id, 100.0 + limits.SESSION_IDLE_S - 1) is newest
    assert table.get(newest.id, 100.0 + 2 * limits.SESSION_IDLE_S) is None  # idle too long
    s = table.open(0.0)
    t = 0.0
    while t + limits.SESSION_IDLE_S / 2 < limits.SESSION_MAX_S:
        t += limits.SESSION_IDLE_S / 2
        assert table.get(s.id, t) is s  # kept alive by use ...
    assert table.get(s.id, limits.SESSION_MAX_S) is None  # ... but never past the absolute limit
    assert table.get(None, 0.0) is None and table.get("", 0.0) is None


def test_language_follows_the_browser_unless_the_user_switched() -> None:
    assert texts.pick("de-DE,de;q=0.9,en;q=0.8") == "de"
    assert texts.pick("fr-FR,en;q=0.5,de;q=0.4") == "en"
    assert texts.pick("en;q=0.2, de;q=0.7") == "de"
    assert texts.pick("fr, it") == "en" and texts.pick("") == "en"
    assert texts.pick("de", "en") == "en" and texts.pick("en", "xx") == "en"
    assert set(texts.TEXTS["en"]) == set(texts.TEXTS["de"])


# -- the routes ------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def open_page(tmp_path: "os.PathLike[str]", report: object = None) -> tuple:
    """(page, agent, clock, device root): a washer's device with its setup code, and its page."""
    profile = profile_loader.load(profile_loader.example("washing_machine"))
    root = os.path.join(tmp_path, "device")
    os.makedirs(os.path.join(root, "identity"))
    setup_code.write_record(os.path.join(root, "identity"),
                            setup_code.hash_code(CODE, iterations=setup_code.MIN_ITERATIONS))  # fmt: skip
    agent, data, _ = device.open_device(profile, root, "dev-1")
    clock = Clock()
    record = setup_code.read_record(os.path.join(root, "identity"))
    lp = LocalPage(agent, data, record, now=clock, wall=lambda: 1_700_000_000, report=report)  # type: ignore[arg-type]
    return lp, agent, clock, root


@pytest.fixture
def page(tmp_path: "os.PathLike[str]") -> Iterator[tuple]:
    opened = open_page(tmp_path)
    yield opened
    asyncio.run(opened[0].stop())  # its setup-code thread ends with it, as a served page's does
    device.close_device(opened[1], opened[0].data)  # the outbox's open segment too


def _form(**fields: str) -> tuple:
    from urllib.parse import urlencode

    return {"Content-Type": "application/x-www-form-urlencoded"}, urlencode(fields)


async def _login(client: TestClient, code: str = CODE) -> object:
    res = await client.get("/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', res.text).group(1)
    headers, body = _form(nonce=nonce, code=code)
    return await client.post("/login", headers=headers, body=body)


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def _assert_secure(res: object) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert res.headers[name] == value, name  # type: ignore[attr-defined]


def test_nothing_is_shown_before_login_and_the_login_sets_a_strict_cookie(page: tuple) -> None:
    lp, _agent, _, _ = page

    async def go() -> None:
        client = TestClient(lp.app)
        for path in ("/", "/privacy", "/data", "/data/export.json", "/consumables", "/device", "/data/erase"):
            res = await client.get(path)
            assert res.status_code == 303 and res.headers["Location"] == "/login", path
            _assert_secure(res)
        res = await client.get("/login")
        assert "WM 8 Eco" not in res.text and "dev-1" not in res.text
        _assert_secure(res)
        res = await _login(client)
        assert res.status_code == 303
        cookie = next(c for c in res.headers["Set-Cookie"] if c.startswith("wichtel_session="))
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=%d" % limits.SESSION_MAX_S in cookie
        res = await client.get("/")
        assert res.status_code == 200 and "WM 8 Eco" in res.text and "<script" not in res.text
        _assert_secure(res)

    asyncio.run(go())


def test_a_post_without_session_or_without_form_token_is_refused_and_changes_nothing(page: tuple) -> None:
    lp, agent, _, _ = page

    async def go() -> None:
        stranger = TestClient(lp.app)
        headers, body = _form(choice="on", csrf="guess")
        res = await stranger.post("/privacy/usage_statistics", headers=headers, body=body)
        assert res.status_code == 403 and "not signed in" in res.text
        client = TestClient(lp.app)
        await _login(client)
        headers, body = _form(choice="on")
        res = await client.post("/privacy/usage_statistics", headers=headers, body=body)
        assert res.status_code == 403 and "Nothing was changed" in res.text
        headers, body = _form(choice="on", csrf="x" * 43)
        res = await client.post("/privacy/usage_statistics", headers=headers, body=body)
        assert res.status_code == 403
        res = await client.post("/data/erase", headers=_form(confirm="yes")[0], body=_form(confirm="yes")[1])
        assert res.status_code == 403
        assert agent.consent.choices()["usage_statistics"] == "off" and agent.consent.history == []

    asyncio.run(go())


def test_a_full_outbox_gets_try_again_later_and_changes_nothing(page: tuple) -> None:
    lp, agent, _, root = page
    while agent.outbox.critical_room() > 0:  # receipts the broker has not taken yet
        agent.outbox.push("t", b"{}", "essential", CRITICAL)

    async def go() -> None:
        client = TestClient(lp.app)
        await _login(client)
        token = _csrf((await client.get("/privacy")).text)
        for path, fields in (("/privacy/usage_statistics", {"choice": "on"}), ("/data/erase", {"confirm": "yes"})):
            headers, body = _form(csrf=token, **fields)
            res = await client.post(path, headers=headers, body=body)
            assert res.status_code == 503 and "try again later" in res.text and "Nothing was changed" in res.text
        assert agent.consent.choices()["usage_statistics"] == "off" and agent.consent.history == []
        assert not os.path.exists(os.path.join(root, "consent.journal"))

    try:
        asyncio.run(go())
    finally:
        device.close_device(agent, lp.data)


def test_consent_consumables_refill_export_and_erase_through_the_page(page: tuple) -> None:
    lp, agent, _, root = page

    async def go() -> None:
        client = TestClient(lp.app)
        await _login(client)
        token = _csrf((await client.get("/privacy")).text)
        headers, body = _form(choice="on", csrf=token)
        res = await client.post("/privacy/usage_statistics", headers=headers, body=body)
        assert res.status_code == 303
        assert agent.consent.choices()["usage_statistics"] == "on"
        text = (await client.get("/privacy")).text
        assert "Usage statistics is now on." in text and "1970" not in text
        assert os.path.getsize(os.path.join(root, "consent.journal")) > 0  # stored, not only in memory
        # Bad input: a clear page, nothing changed.
        for path, fields in (("/privacy/usage_statistics", {"choice": "maybe"}), ("/privacy/nope", {"choice": "on"}),
                             ("/privacy/essential", {"choice": "off"}),
                             ("/consumables/detergent", {"mode": "buy-now"}),
                             ("/consumables/detergent", {"mode": "share", "lead_time_days": "99"}),
                             ("/consumables/detergent", {"mode": "share", "product": "x" * 81}),
                             ("/consumables/detergent", {"mode": "remind", "risk": "0.3"}),
                             ("/consumables/detergent", {"mode": "remind", "risk": "nan"}),
                             ("/consumables/nope", {"mode": "off"}), ("/data/erase", {})):  # fmt: skip
            headers, body = _form(csrf=token, **fields)
            res = await client.post(path, headers=headers, body=body)
            assert res.status_code == 400, path
            assert "Nothing was changed" in res.text
            _assert_secure(res)
        assert agent.consent.choices() == {"essential": "on", "maintenance": "off", "usage_statistics": "on",
                                           "consumables": "off"}  # fmt: skip
        assert agent.consumable("detergent").choice.mode == "remind"
        assert agent.consumable("detergent").choice.risk == 0.001  # early, by default
        headers, body = _form(csrf=token, mode="share", product="EcoWash", retailer="Corner shop", lead_time_days="5",
                              risk="0.02")  # fmt: skip
        assert (await client.post("/consumables/detergent", headers=headers, body=body)).status_code == 303
        choice = agent.consumable("detergent").choice
        assert (choice.mode, choice.product, choice.retailer, choice.lead_time_days, choice.risk) == (
            "share",
            "EcoWash",
            "Corner shop",
            5.0,
            0.02,
        )
        page = (await client.get("/consumables")).text
        assert 'value="EcoWash"' in page and 'name="risk" value="0.02" checked' in page
        agent.stock_of("detergent").tracker.level = 100.0
        headers, body = _form(csrf=token)
        assert (await client.post("/consumables/detergent/refilled", headers=headers, body=body)).status_code == 303
        assert agent.consumable("detergent").level == 1500.0
        res = await client.get("/data/export.json")
        assert res.headers["Content-Type"].startswith("application/json")
        assert "attachment" in res.headers["Content-Disposition"]
        assert json.loads(res.text) == json.loads(device.export_text(agent))
        assert json.loads(res.text)["format"] == "wichtel-export/1"
        assert 'type="checkbox"' in (await client.get("/data/erase")).text  # asks first
        headers, body = _form(csrf=token, confirm="yes")
        assert (await client.post("/data/erase", headers=headers, body=body)).status_code == 303
        assert agent.consent.history == [] and agent.consent.choices()["usage_statistics"] == "off"
        assert agent.consumable("detergent").choice.mode == "remind"
        assert not os.path.exists(os.path.join(root, "consent.journal"))
        assert os.path.exists(os.path.join(root, "identity", setup_code.FILE_NAME))  # the label still works
        assert "Erased. 3 erasure requests" in (await client.get("/data")).text

    asyncio.run(go())


def test_german_pages_and_the_switch(page: tuple) -> None:
    lp, _, _, _ = page

    async def go() -> None:
        client = TestClient(lp.app)
        res = await client.get("/login", headers={"Accept-Language": "de-DE,de;q=0.9"})
        assert 'lang="de"' in res.text and "Einrichtungscode" in res.text
        res = await client.get("/lang/en?next=/login")
        assert res.status_code == 303 and res.headers["Location"] == "/login"
        assert "Setup code" in (await client.get("/login", headers={"Accept-Language": "de"})).text
        res = await client.get("/lang/de?next=//evil.example/")
        assert res.headers["Location"] == "/"  # never off the page
        await _login(client)
        for path in ("/", "/privacy", "/data", "/consumables", "/device"):
            assert 'lang="de"' in (await client.get(path)).text

    asyncio.run(go())


def test_sessions_expire_and_logout_ends_them(page: tuple) -> None:
    lp, _, clock, _ = page

    async def go() -> None:
        client = TestClient(lp.app)
        await _login(client)
        assert (await client.get("/device")).status_code == 200
        clock.t += limits.SESSION_IDLE_S
        assert (await client.get("/device")).status_code == 303
        await _login(client)
        token = _csrf((await client.get("/device")).text)
        headers, body = _form(csrf=token)
        assert "signed out" in (await client.post("/logout", headers=headers, body=body)).text
        assert (await client.get("/device")).status_code == 303
        assert len(lp.gate.sessions) == 0

    asyncio.run(go())


def test_wrong_codes_are_rate_limited_on_the_page(page: tuple) -> None:
    lp, _, clock, _ = page

    async def go() -> None:
        client = TestClient(lp.app)
        for _ in range(limits.FREE_FAILURES - 1):
            res = await _login(client, "AAAAA-AAAAA")
            assert res.status_code == 403 and "not right" in res.text
        res = await _login(client, "AAAAA-AAAAA")  # the fifth: from now on a wait
        assert res.status_code == 429 and "try again in 1 s" in res.text
        res = await _login(client)  # the right code, too soon: not even checked
        assert res.status_code == 429
        clock.t += 1
        res = await _login(client, "AAAAA-AAAAA")
        assert res.status_code == 429 and "try again in 2 s" in res.text
        clock.t += 2
        assert (await _login(client)).status_code == 303

    asyncio.run(go())


def test_request_body_bound_and_bad_requests_over_a_real_socket(page: tuple) -> None:
    lp, agent, _, _ = page

    async def raw(port: int, request: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        await writer.drain()
        data = await reader.read()
        writer.close()
        return data

    async def go() -> None:
        from provisioning.local_broker import free_port

        port = free_port()
        await lp.start("127.0.0.1", port)
        try:
            for size, status in ((limits.MAX_BODY_BYTES, b"403"), (limits.MAX_BODY_BYTES + 1, b"413")):
                body = b"choice=on&pad=" + b"x" * (size - 14)
                assert len(body) == size
                head = (
                    b"POST /privacy/maintenance HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                    b"Content-Type: application/x-www-form-urlencoded" % port
                )
                reply = await raw(port, head + b"\r\nContent-Length: %d\r\n\r\n" % size + body)
                assert reply.split(b"\r\n", 1)[0].split()[1] == status, size
                assert b"Content-Security-Policy: default-src 'self'" in reply
            reply = await raw(port, b"NONSENSE\r\n\r\n")
            assert reply.split()[1] == b"400" and b"X-Frame-Options: DENY" in reply
            reply = await raw(port, b"GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)
            assert reply.split()[1] == b"404" and b"dev-1" not in reply and b"WM 8" not in reply
            reply = await raw(port, b"PUT /login HTTP/1.1\r\nHost: localhost:%d\r\n\r\n" % port)
            assert reply.split()[1] == b"405"
        finally:
            await lp.stop()
        assert agent.consent.history == []

    asyncio.run(go())


def _raise_leak_alert(agent: object) -> None:
    """The washer's inlet flow reads 0.5 l/min while idle, where healthy units read 0 (the
    profile's reference): an alert, judged into the agent's recent events."""
    flow = next(ch for ch in agent.channels if ch.id == "inlet_flow")  # type: ignore[attr-defined]
    for i in range(60):
        flow.process(i * 2000, 0.5, "idle", agent._emit)  # type: ignore[attr-defined]
    agent.judge_pending()  # type: ignore[attr-defined]


def test_an_open_alert_is_shown_once_and_marked_as_seen_on_the_page(page: tuple) -> None:
    lp, agent, _, _ = page
    _raise_leak_alert(agent)
    assert [aid for aid, _, _ in agent.snapshot().alerts] == [1]

    async def go() -> None:
        client = TestClient(lp.app)
        await _login(client)
        html = (await client.get("/")).text
        assert html.count('id="alert-') == 1 and "inlet valve may be leaking" in html
        assert 'action="/alerts/1/seen"' in html
        headers, body = _form(csrf=_csrf(html))
        res = await client.post("/alerts/1/seen", headers=headers, body=body)
        assert res.status_code == 303
        html = (await client.get("/")).text
        assert "Marked as seen" in html and "seen; no reminders" in html and 'action="/alerts/1/seen"' not in html
        agent.judge_pending()
        acks = [ev for ev in agent.local_events.items() if ev.fields.get("state") == "acknowledged"]
        assert [(ev.fields["alert"], ev.fields["by"], ev.channel) for ev in acks] == [(1, "user", "inlet_flow")]
        # Again, or an alert that is not open: nothing changes, and the page says so.
        for path in ("/alerts/1/seen", "/alerts/7/seen", "/alerts/x/seen"):
            res = await client.post(path, headers=headers, body=body)
            assert res.status_code == 303
            assert "Nothing to mark" in (await client.get("/")).text
        agent.judge_pending()
        assert len([ev for ev in agent.local_events.items() if ev.fields.get("state") == "acknowledged"]) == 1
        # Without the page's token: refused.
        headers, body = _form(csrf="forged")
        assert (await client.post("/alerts/1/seen", headers=headers, body=body)).status_code == 403

    asyncio.run(go())


def test_an_alert_that_grew_worse_shows_how_it_began_beside_how_it_is(page: tuple) -> None:
    lp, agent, _, _ = page
    _raise_leak_alert(agent)
    later = dict(next(ev for ev in agent.local_events.items() if ev.fields.get("state") == "raised").fields)
    later.update(state="worse", explanation_en="Water inlet flow while idle read 2 l/min; usual is about 0 l/min.")
    from agent.core.events import ANOMALY, Event

    agent.local_events.push(Event(ANOMALY, "", "inlet_flow", 10**7, "idle", later))

    async def go() -> None:
        client = TestClient(lp.app)
        await _login(client)
        html = (await client.get("/")).text
        assert "read 2 l/min" in html and "When first noticed: Water inlet flow during idle read 0.5" in html

    asyncio.run(go())


def test_the_reminder_settings_say_what_they_trade_with_the_measured_figures(
    page: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.local_page import reorder_figures

    lp, _, _, _ = page
    figures = {"detergent": {"0.001": (0.016, 13.8), "0.005": (0.0004, 9.5), "0.02": (0.0, 1.2)}}
    monkeypatch.setattr(reorder_figures, "FIGURES", figures)

    async def go() -> None:
        client = TestClient(lp.app)
        await _login(client)
        html = (await client.get("/consumables")).text
        assert "Reminding earlier keeps more at home" in html
        assert "about 14 days&#x27; supply left when the delivery came; ran out in 1.6% of the years" in html
        assert "ran out in &lt; 0.1% of the years" in html and "about a day&#x27;s supply" in html
        assert "never ran out" in html
        await client.get("/lang/de")
        html = (await client.get("/consumables")).text
        assert "noch etwa 14 Tage Vorrat, als die Lieferung kam; in 1,6 % der Jahre ausgegangen" in html
        assert "noch etwa einen Tag Vorrat" in html and "nie ausgegangen" in html

    asyncio.run(go())


def test_without_measured_figures_the_settings_are_said_in_words_only(page: tuple) -> None:
    from agent.local_page import reorder_figures

    lp, _, _, _ = page

    async def go() -> None:
        client = TestClient(lp.app)
        await _login(client)
        html = (await client.get("/consumables")).text
        assert "Reminding earlier keeps more at home" in html
        assert ("In our simulation" in html) == ("detergent" in reorder_figures.FIGURES)

    asyncio.run(go())


def test_sharing_with_its_category_off_is_warned_and_fixed_with_one_click(page: tuple) -> None:
    lp, agent, _, _ = page

    async def go() -> None:
        client = TestClient(lp.app)
        await _login(client)
        token = _csrf((await client.get("/consumables")).text)
        headers, body = _form(csrf=token, mode="share", product="EcoWash", retailer="Corner shop")
        await client.post("/consumables/detergent", headers=headers, body=body)
        html = (await client.get("/consumables")).text
        assert "Saved, but nothing can be shared yet" in html
        assert "Nothing is shared yet: “Reorder suggestions” is off." in html
        assert "Switch on “Reorder suggestions”" in html
        headers, body = _form(csrf=token, choice="on", then="consumables")
        res = await client.post("/privacy/consumables", headers=headers, body=body)
        assert res.status_code == 303 and res.headers["Location"] == "/consumables"
        assert agent.consent.allows("consumables")
        html = (await client.get("/consumables")).text
        assert "Reorder suggestions is now on." in html and "Nothing is shared yet" not in html
        await client.get("/lang/de")
        headers, body = _form(csrf=token, choice="off")
        await client.post("/privacy/consumables", headers=headers, body=body)
        html = (await client.get("/consumables")).text
        assert "Noch wird nichts geteilt: „Nachbestell-Vorschläge“ ist aus." in html
        assert "„Nachbestell-Vorschläge“ einschalten" in html

    asyncio.run(go())


def test_a_due_reminder_shows_on_the_overview_with_its_days_in_words(page: tuple) -> None:
    lp, agent, _, _ = page
    tracker = agent.stock_of("detergent").tracker
    tracker.reorder_sent = True  # the reorder moment came under "remind me here" (the default)

    async def go() -> None:
        client = TestClient(lp.app)
        await _login(client)
        html = (await client.get("/")).text
        assert "Reminders" in html and "Time to reorder Liquid detergent: a delivery takes 3 days." in html
        token = _csrf(html)
        headers, body = _form(csrf=token)
        await client.post("/consumables/detergent/refilled", headers=headers, body=body)
        assert "Time to reorder" not in (await client.get("/")).text  # refilled: the reminder is over
        tracker.reorder_sent = True
        tracker.choice.lead_time_days = 1
        await client.get("/lang/de")
        assert "Zeit, Flüssigwaschmittel nachzubestellen: Eine Lieferung dauert 1 Tag." in (await client.get("/")).text
        tracker.choice.mode = "off"
        assert "Zeit, Flüssigwaschmittel" not in (await client.get("/")).text  # no reminders wanted

    asyncio.run(go())


def test_times_are_in_the_users_zone_chosen_on_the_device_page(page: tuple) -> None:
    lp, agent, _, _ = page
    agent.rights.set_consent("maintenance", True, 0, 1_700_000_000)  # a choice at the wall clock's 14 Nov 2023

    async def go() -> None:
        client = TestClient(lp.app)
        await _login(client)
        html = (await client.get("/privacy")).text
        # The example's market is Germany: Central European Time, no "UTC", no time since start.
        assert "14 Nov 2023, 23:13" in html and "UTC" not in html.split("<table")[1] and "since start" not in html
        token = _csrf(html)
        headers, body = _form(csrf=token, zone="America/Los_Angeles")
        res = await client.post("/zone", headers=headers, body=body)
        assert res.status_code == 303 and "wichtel_zone=America/Los_Angeles" in str(res.headers["Set-Cookie"])
        assert "Times are now shown for US Pacific." in (await client.get("/device")).text
        assert "14 Nov 2023, 14:13" in (await client.get("/privacy")).text
        await client.get("/lang/de")
        assert "14. Nov. 2023, 14:13" in (await client.get("/privacy")).text
        headers, body = _form(csrf=token, zone="Mars/Olympus")
        res = await client.post("/zone", headers=headers, body=body)
        assert res.status_code == 400 and "Es wurde nichts geändert" in res.text

    asyncio.run(go())


def test_an_alert_says_what_to_do_from_the_profile_in_both_languages(page: tuple) -> None:
    lp, agent, _, _ = page
    _raise_leak_alert(agent)

    async def go() -> None:
        client = TestClient(lp.app)
        await _login(client)
        html = (await client.get("/")).text
        assert html.count('id="alert-1"') == 1  # one row for the episode
        assert "What you can do:</strong> Close the water tap when the machine is not in use" in html
        await client.get("/lang/de")
        html = (await client.get("/")).text
        assert "Was Sie tun können:</strong> Drehen Sie den Wasserhahn zu" in html

    asyncio.run(go())


def test_every_page_text_is_in_both_languages_and_written_for_each() -> None:
    """No text only in one language, none left in English on the German page (names and
    units aside), no "1 days" anywhere a count is written."""
    from agent.local_page import texts, views

    en, de = texts.TEXTS["en"], texts.TEXTS["de"]
    assert set(en) == set(de)
    same_on_purpose = {"lang_name", "bytes", "status", "update"}  # the same word in German
    assert [k for k in en if en[k] == de[k] and k not in same_on_purpose] == []
    for n in (0, 1, 2, 21):
        for lang, one, many in (("en", "1 day", "%d days"), ("de", "1 Tag", "%d Tage")):
            assert views.days_text(n, lang) == (one if n == 1 else many % n)
