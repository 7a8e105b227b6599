"""What each page of the local page shows: HTML built from the running agent's state.

Reads the agent, changes nothing and does no I/O. Every value from outside (profile
texts, names the user typed, message contents) is escaped. No inline script or style:
the page's only style sheet is static/page.css, so the CSP can be `default-src 'self'`.
"""

import json
import time

from agent.core import VERSION
from agent.core.compat import IS_MICROPYTHON
from agent.core.consumables import CHOICES, RISKS
from agent.core.events import ANOMALY
from agent.core.pipeline import CONFIRMED, Agent
from agent.local_page.texts import LANGS, TEXTS, grain_text

PAGES = ("overview", "privacy", "data", "consumables", "device")
_PATHS = {"overview": "/", "privacy": "/privacy", "data": "/data", "consumables": "/consumables", "device": "/device"}
MAX_ALERTS_SHOWN = 5


class View:
    """What a page needs to know about the request: language, form token, current path."""

    def __init__(self, lang: str, csrf: str = "", path: str = "/", notice: str = "") -> None:
        self.lang = lang
        self.t = TEXTS[lang]
        self.csrf = csrf
        self.path = path
        self.notice = notice


_ENTITIES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&#x27;"))


def escape(text: str) -> str:
    """text for HTML, in element content and quoted attributes alike: html.escape(text,
    quote=True), which MicroPython does not have. "&" first, so nothing is escaped twice."""
    for plain, entity in _ENTITIES:
        if plain in text:  # a copy of the text only where there is something to replace
            text = text.replace(plain, entity)
    return text


def e(value: object) -> str:
    return escape(str(value))


def json_text(value: object) -> str:
    """value as JSON for people to read: indented, keys sorted, non-ASCII kept. MicroPython's
    json has none of these options: there the text is compact, in the dicts' order."""
    if IS_MICROPYTHON:
        return json.dumps(value)
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False)


def device_time(t_ms: int, view: View) -> str:
    s = t_ms // 1000
    return view.t["device_clock"] % (s // 86400, s // 3600 % 24, s // 60 % 60)


def wall_time(seconds: int) -> str:
    if not seconds:
        return ""
    return "%04d-%02d-%02d %02d:%02d UTC" % tuple(time.gmtime(seconds)[:5])  # no strftime on MicroPython


def _token(view: View) -> str:
    return '<input type="hidden" name="csrf" value="%s">' % e(view.csrf)


def _lang_switch(view: View) -> str:
    links = []
    for lang in LANGS:
        name = TEXTS[lang]["lang_name"]
        if lang == view.lang:
            links.append('<span aria-current="true" lang="%s">%s</span>' % (lang, e(name)))
        else:
            links.append('<a href="/lang/%s?next=%s" lang="%s" hreflang="%s">%s</a>' % (lang, e(view.path), lang,
                                                                                          lang, e(name)))  # fmt: skip
    return '<p class="langs">%s</p>' % " · ".join(links)


def layout(view: View, title: str, body: str, signed_in: bool = True, current: str = "") -> str:
    t = view.t
    nav = ""
    if signed_in:
        items = []
        for page in PAGES:
            here = ' aria-current="page"' if page == current else ""
            items.append('<li><a href="%s"%s>%s</a></li>' % (_PATHS[page], here, e(t[page])))
        nav = (
            '<div class="navrow"><nav aria-label="%s"><ul>%s</ul></nav>'
            '<form method="post" action="/logout" class="signout">%s<button type="submit">%s</button></form></div>'
            % (e(t["nav"]), "".join(items), _token(view), e(t["sign_out"]))
        )
    notice = '<p class="notice" role="status">%s</p>' % e(view.notice) if view.notice else ""
    return (
        '<!DOCTYPE html>\n<html lang="%s"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>%s · Wichtel</title><link rel="stylesheet" href="/static/page.css"></head>'
        '<body><a class="skip" href="#main">%s</a><header><div class="bar"><p class="brand">Wichtel</p>%s</div>%s'
        '</header><main id="main" tabindex="-1"><h1>%s</h1>%s%s</main></body></html>'
        % (view.lang, e(title), e(t["skip"]), _lang_switch(view), nav, e(title), notice, body)
    )


def login(view: View, nonce: str, message: str = "") -> str:
    t = view.t
    alert = '<p class="error" role="alert">%s</p>' % e(message) if message else ""
    body = (
        '<p>%s</p>%s<form method="post" action="/login" class="card">'
        '<input type="hidden" name="nonce" value="%s">'
        '<label for="code">%s</label><p class="hint" id="code-hint">%s</p>'
        '<input id="code" name="code" type="text" autocomplete="one-time-password" autocapitalize="characters" '
        'spellcheck="false" maxlength="20" required aria-describedby="code-hint" autofocus>'
        '<button type="submit">%s</button></form>'
        % (e(t["login_intro"]), alert, e(nonce), e(t["code"]), e(t["code_hint"]), e(t["sign_in"]))
    )
    return layout(view, t["login_title"], body, signed_in=False)


def error(view: View, status: int, message: str, signed_in: bool = False) -> str:
    body = '<p class="error" role="alert">%s</p><p><a href="/">%s</a></p>' % (e(message), e(view.t["back"]))
    return layout(view, "%s (%d)" % (view.t["error"], status), body, signed_in=signed_in)


def _uplink_text(agent: Agent, view: View) -> str:
    uplink = agent.uplink
    if uplink is None:
        return view.t["no_uplink"]
    connected = getattr(uplink, "connected", None)
    if connected is not None and connected.is_set():
        return view.t["connected"]
    return view.t["not_connected"]


def _consumable_lines(agent: Agent, view: View) -> list:
    t = view.t
    lines = []
    for stock in agent.stock:
        tr = stock.tracker
        head = t["level"] % (tr.name[view.lang], tr.level / tr.capacity * 100)
        if tr.faulty:
            tail = t["faulty"]
        else:
            f = tr.forecast()
            days = tuple("%.0f" % d for d in (f.days_left, f.early, f.late))
            tail = t["learning"] if f.days_left < 0 else t["runs_out"] % days
        meter = '<meter min="0" max="100" value="%.0f" aria-hidden="true"></meter>' % (tr.level / tr.capacity * 100)
        lines.append((tr, "<strong>%s</strong> %s <span>%s</span>" % (e(head), meter, e(tail))))
    return lines


def overview(agent: Agent, view: View) -> str:
    t = view.t
    prof = agent.profile
    names = prof["phase_names"]
    phase = agent.last_phase
    phase_text = names[phase][view.lang] if phase in names else (phase or t["phase_none"])
    alerts = [ev for ev in agent.local_events.items() if ev.kind == ANOMALY][-MAX_ALERTS_SHOWN:]
    alert_html = "".join(
        '<li><span class="when">%s</span> %s</li>' % (e(device_time(ev.t_ms, view)), e(ev.fields.get(
            "explanation_" + view.lang, "")))
        for ev in reversed(alerts)
    ) or None  # fmt: skip
    stock = "".join("<li>%s</li>" % line for _, line in _consumable_lines(agent, view))
    body = '<section class="card"><h2>%s</h2><dl><dt>%s</dt><dd>%s</dd><dt>%s</dt><dd>%s</dd></dl></section>' % (
        e(t["state"]),
        e(t["phase"]),
        e(phase_text),
        e(t["uplink"]),
        e(_uplink_text(agent, view)),
    )
    body += '<section class="card"><h2>%s</h2>%s</section>' % (
        e(t["alerts"]),
        '<ul class="alerts">%s</ul>' % alert_html if alert_html else "<p>%s</p>" % e(t["no_alerts"]),
    )
    body += '<section class="card"><h2>%s</h2>%s</section>' % (
        e(t["consumables"]),
        '<ul class="plain">%s</ul>' % stock if stock else "<p>%s</p>" % e(t["no_consumables"]),
    )
    title = "%s %s" % (prof["appliance"]["maker"], prof["appliance"]["model"])
    return layout(view, title, body, current="overview")


def privacy(agent: Agent, view: View) -> str:
    t = view.t
    lang = view.lang
    choices = agent.consent.choices()
    cards = []
    for cat in agent.profile["data_categories"]:
        cid = cat["id"]
        on = choices.get(cid) == "on"
        if cat["essential"]:
            state = '<p class="state on">%s</p>' % e(t["always_on"])
        else:
            state = (
                '<form method="post" action="/privacy/%s" class="switch">%s'
                '<input type="hidden" name="choice" value="%s">'
                '<p class="state %s">%s</p><button type="submit" aria-label="%s: %s">%s</button></form>'
                % (e(cid), _token(view), "off" if on else "on", "on" if on else "off",
                   e(t["is_on"] if on else t["is_off"]), e(cat["title"][lang]),
                   e(t["switch_off" if on else "switch_on"]), e(t["switch_off" if on else "switch_on"]))
            )  # fmt: skip
        fields = ", ".join("<code>%s</code>" % e(f) for f in cat["fields"])
        cards.append(
            '<section class="card category" id="cat-%s"><div class="cat-head"><h2>%s</h2>%s</div><p>%s</p><dl>'
            "<dt>%s</dt><dd>%s</dd><dt>%s</dt><dd>%s</dd><dt>%s</dt><dd>%s</dd><dt>%s</dt><dd>%s</dd></dl></section>"
            % (e(cid), e(cat["title"][lang]), state, e(cat["purpose"][lang]),
               e(t["what_sent"]), fields,
               e(t["how_often"]), e(t["how_often_v"] % (cat["daily_budget_bytes"],
                                                        grain_text(cat["time_grain_s"], lang))),
               e(t["to_whom"]), e(", ".join(cat["recipients"]) or t["nobody"]),
               e(t["kept"]), e(t["kept_v"] % (cat["retention_days"], cat["upstream_retention_days"])))
        )  # fmt: skip
    titles = {c["id"]: c["title"][lang] for c in agent.profile["data_categories"]}
    rows = "".join(
        "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>"
        % (e(wall_time(r.get("time", 0)) or device_time(r.get("t_ms", 0), view)),
           e(titles.get(r["category"], r["category"])), e(t["is_on"] if r["choice"] == "on" else t["is_off"]),
           e(r.get("text_version", "")))
        for r in reversed(agent.consent.history)
    )  # fmt: skip
    history = (
        '<div class="scroll"><table><caption>%s</caption><thead><tr><th scope="col">%s</th><th scope="col">%s</th>'
        '<th scope="col">%s</th><th scope="col">%s</th></tr></thead><tbody>%s</tbody></table></div>'
        % (e(t["history"]), e(t["when"]), e(t["category"]), e(t["choice"]), e(t["text_version"]), rows)
        if rows
        else "<h2>%s</h2><p>%s</p>" % (e(t["history"]), e(t["no_history"]))
    )
    body = '<p class="intro">%s</p>%s<section class="card">%s</section>' % (
        e(t["privacy_intro"]), "".join(cards), history)  # fmt: skip
    return layout(view, t["privacy"], body, current="privacy")


def my_data(agent: Agent, view: View, show_all: bool = True) -> str:
    """show_all: everything the device holds, as JSON on the page too (besides the download).
    A board leaves it out: the text and its escaped copies are the largest strings it would
    build (docs/local-page.md, "The page on MicroPython")."""
    t = view.t
    lang = view.lang
    titles = {c["id"]: c["title"][lang] for c in agent.profile["data_categories"]}
    counts = (
        (t["n_receipts"], len(agent.consent.history)),
        (t["n_events"], len(agent.local_events)),
        (t["n_waiting"], len(agent.outbox) - len(agent.outbox.awaiting)),
        (t["n_awaiting"], len(agent.outbox.awaiting)),
        (t["n_sent"], len(agent.sent_log)),
    )
    holds = "".join("<li><strong>%d</strong> %s</li>" % (n, e(label)) for label, n in counts)
    inline = (
        "<details><summary>%s</summary><pre>%s</pre></details>" % (e(t["show_all"]), e(json_text(agent.export())))
        if show_all
        else ""
    )
    body = (
        '<p class="intro">%s</p><section class="card"><h2>%s</h2><ul class="plain">%s</ul>'
        '<p><a class="button" href="/data/export.json" download>%s</a></p>%s</section>'
        % (e(t["data_intro"]), e(t["holds"]), holds, e(t["download"]), inline)
    )
    sent = list(agent.sent_log.items())
    rows = "".join(
        '<tr><td data-label="%s">%s</td><td data-label="%s">%s</td><td data-label="%s" class="status-%s">%s</td>'
        '<td class="num" data-label="%s">%d</td><td data-label="%s"><code class="msg">%s</code></td></tr>'
        % (e(t["when_device"]), e(device_time(m["t_ms"], view)), e(t["category"]),
           e(titles.get(m["category"], m["category"])), e(t["status"]),
           "confirmed" if m.get("status") == CONFIRMED else "broker", e(_sent_status(m, t)),
           e(t["bytes"]), m["size"], e(t["content"]), e(m["content"]))
        for m in reversed(sent)
    )  # fmt: skip
    if rows:
        body += (
            '<section class="card"><h2>%s</h2><p class="hint">%s</p><div class="scroll"><table class="sent"><thead><tr>'
            '<th scope="col">%s</th><th scope="col">%s</th><th scope="col">%s</th><th scope="col" class="num">%s</th>'
            '<th scope="col">%s</th></tr></thead>'
            "<tbody>%s</tbody></table></div></section>"
            % (e(t["sent_log"]), e(t["sent_status_intro"]), e(t["when_device"]), e(t["category"]), e(t["status"]),
               e(t["bytes"]), e(t["content"]), rows)
        )  # fmt: skip
    else:
        body += '<section class="card"><h2>%s</h2><p>%s</p></section>' % (e(t["sent_log"]), e(t["no_sent"]))
    body += (
        '<section class="card danger"><h2>%s</h2><p>%s</p><p><a class="button danger" href="/data/erase">%s</a></p>'
        "</section>" % (e(t["erase"]), e(t["erase_intro"]), e(t["erase"]))
    )
    return layout(view, t["data"], body, current="data")


def _sent_status(entry: dict, t: dict) -> str:
    """A sent-log entry's status in words: "confirmed" only when the backend confirmed it;
    anything else (an entry stored before statuses were kept) claims no more than the broker."""
    return str(t["status_confirmed"] if entry.get("status") == CONFIRMED else t["status_broker"])


def erase_confirm(view: View) -> str:
    t = view.t
    body = (
        '<section class="card danger"><p>%s</p><form method="post" action="/data/erase">%s'
        '<p class="check"><input type="checkbox" id="confirm" name="confirm" value="yes" required>'
        '<label for="confirm">%s</label></p>'
        '<p class="actions"><button type="submit" class="danger">%s</button> <a href="/data">%s</a></p>'
        "</form></section>"
        % (e(t["erase_intro"]), _token(view), e(t["erase_confirm"]), e(t["erase_really"]), e(t["cancel"]))
    )
    return layout(view, t["erase"], body, current="data")


def consumables(agent: Agent, view: View) -> str:
    t = view.t
    lang = view.lang
    lines = _consumable_lines(agent, view)
    if not lines:
        return layout(view, t["consumables"], "<p>%s</p>" % e(t["no_consumables"]), current="consumables")
    titles = {c["id"]: c["title"][lang] for c in agent.profile["data_categories"]}
    cards = []
    for tr, line in lines:
        cid = e(tr.id)
        ch = tr.choice
        radios = "".join(
            '<p class="radio"><input type="radio" id="%s-%s" name="mode" value="%s"%s>'
            '<label for="%s-%s">%s</label></p>'
            % (cid, mode, mode, " checked" if ch.mode == mode else "", cid, mode, e(t["mode_" + mode]))
            for mode in CHOICES
        )
        risks = "".join(
            '<p class="radio"><input type="radio" id="%s-r%d" name="risk" value="%g"%s>'
            '<label for="%s-r%d">%s</label></p>'
            % (cid, i, r, " checked" if abs(ch.risk - r) < 1e-9 else "", cid, i, e(t["risk_%g" % r]))
            for i, r in enumerate(RISKS)
        )
        stock = agent.consumable(tr.id)
        share_note = '<p class="hint">%s</p>' % e(t["share_needs"] % titles.get(stock.category, stock.category))
        lead = "" if ch.lead_time_days is None else "%g" % ch.lead_time_days
        cards.append(
            '<section class="card" id="c-%s"><h2>%s</h2><p>%s</p>'
            '<form method="post" action="/consumables/%s">%s<fieldset><legend>%s</legend>%s%s</fieldset>'
            '<fieldset><legend>%s</legend>%s</fieldset>'
            '<p><label for="%s-product">%s</label><input id="%s-product" name="product" maxlength="80" value="%s">'
            '</p><p><label for="%s-retailer">%s</label><input id="%s-retailer" name="retailer" maxlength="80" '
            'value="%s"></p><p><label for="%s-lead">%s</label><input id="%s-lead" name="lead_time_days" '
            'inputmode="decimal" type="number" min="0" max="60" step="0.5" value="%s" aria-describedby="%s-lead-hint">'
            '<span class="hint" id="%s-lead-hint">%s</span></p><button type="submit">%s</button></form>'
            '<form method="post" action="/consumables/%s/refilled" class="inline">%s<button type="submit" '
            'class="secondary">%s</button></form></section>'
            % (cid, e(tr.name[lang]), line, cid, _token(view), e(t["mode"]), radios, share_note, e(t["risk"]), risks,
               cid, e(t["product"]), cid, e(ch.product), cid, e(t["retailer"]), cid, e(ch.retailer),
               cid, e(t["lead"]), cid, e(lead), cid, cid, e(t["lead_hint"] % tr.lead_days), e(t["save"]),
               cid, _token(view), e(t["refilled"]))
        )  # fmt: skip
    body = '<p class="intro">%s</p>%s' % (e(t["cons_intro"]), "".join(cards))
    return layout(view, t["consumables"], body, current="consumables")


def device(agent: Agent, view: View) -> str:
    t = view.t
    app = agent.profile["appliance"]
    uplink = agent.uplink
    cfg = getattr(uplink, "cfg", None)
    tls = t["tls_v"] % ("%s:%s" % (cfg.host, cfg.port)) if cfg is not None else t["no_uplink"]
    rows = (
        (t["maker"], app["maker"]),
        (t["model"], app["model"]),
        (t["hw"], app["hardware_revision"]),
        (t["device_id"], agent.gate.device_id),
        (t["firmware"], VERSION),
        (t["update"], t["update_none"]),
        (t["last_check"], t["never"]),
        (t["supported"], t["not_declared"]),
        (t["tls"], tls),
        (t["uplink"], _uplink_text(agent, view)),
        (t["code_store"], t["code_store_v"]),
    )
    dl = "".join("<dt>%s</dt><dd>%s</dd>" % (e(k), e(v)) for k, v in rows)
    return layout(view, t["device"], '<section class="card"><dl class="facts">%s</dl></section>' % dl,
                  current="device")  # fmt: skip
