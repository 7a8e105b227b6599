"""What each page of the local page shows: the running agent's state gathered for the
page's template (templates/*.html), which writes it as HTML.

Reads the agent, changes nothing and does no I/O besides reading the templates once at
import. Each function gathers plain values (text, numbers, lists of them) and hands them
to its template; the template escapes every value it writes (template.py), so nothing is
escaped here. No inline script or style: the page's only style sheet is static/page.css,
so the CSP can be `default-src 'self'`.
"""

import json

from agent.core import VERSION
from agent.core.compat import IS_MICROPYTHON
from agent.core.consumables import CHOICES, RISKS, SHARE
from agent.core.events import ANOMALY, SENSOR_FAULT
from agent.core.pipeline import CONFIRMED, Agent
from agent.core.snapshot import Snapshot
from agent.local_page import claims, localtime, reorder_figures
from agent.local_page.template import Templates, page_templates
from agent.local_page.texts import LANGS, TEXTS

PAGES = ("overview", "privacy", "data", "consumables", "device")
_PATHS = {"overview": "/", "privacy": "/privacy", "data": "/data", "consumables": "/consumables", "device": "/device"}
MAX_ALERTS_SHOWN = 5
_ALERT_KINDS = (ANOMALY, SENSOR_FAULT)
_TEMPLATES = Templates(page_templates())  # compiled once, before the first page


class View:
    """What a page needs to know about the request: language, form token, current path, and
    for times: the user's zone, the wall clock and the agent's clock at this moment."""

    def __init__(self, lang: str, csrf: str = "", path: str = "/", notice: str = "", zone: str = "UTC",
                 wall_s: int = 0, now_ms: int = 0) -> None:  # fmt: skip
        self.lang = lang
        self.t = TEXTS[lang]
        self.csrf = csrf
        self.path = path
        self.notice = notice
        self.zone = zone
        self.wall_s = wall_s
        self.now_ms = now_ms


def json_text(value: object) -> str:
    """value as JSON for people to read: indented, keys sorted, non-ASCII kept. MicroPython's
    json has none of these options: there the text is compact, in the dicts' order."""
    if IS_MICROPYTHON:
        return json.dumps(value)
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False)


def device_time(t_ms: int, view: View) -> str:
    """Time since the appliance started, for an appliance whose wall clock was never set."""
    s = t_ms // 1000
    return view.t["device_clock"] % (s // 86400, s // 3600 % 24, s // 60 % 60)


def when(view: View, t_ms: int = 0, wall_s: int = 0) -> str:
    """A moment in the user's zone and words: from its wall time, else from the agent's clock
    (so many ms before now); time since start only when the wall clock was never set."""
    if not wall_s and view.wall_s:
        wall_s = view.wall_s - (view.now_ms - t_ms) // 1000
    return localtime.local_text(wall_s, view.zone, view.lang) or device_time(t_ms, view)


def _render(name: str, view: View, **args: object) -> str:
    """The page `name` (templates/NAME.html) with the view and its texts; every value escaped there."""
    return _TEMPLATES.render(name, view=view, t=view.t, **args)


def _frame(view: View, signed_in: bool, current: str = "") -> dict:
    """What the top of every page (templates/head.html) shows: the languages, and the sections once signed in."""
    langs = [(lang, TEXTS[lang]["lang_name"], lang == view.lang) for lang in LANGS]
    nav = [(_PATHS[page], view.t[page], page == current) for page in PAGES] if signed_in else []
    return {"langs": langs, "nav": nav}


def login(view: View, nonce: str, message: str = "") -> str:
    return _render("login", view, frame=_frame(view, False), nonce=nonce, message=message)


def error(view: View, status: int, message: str, signed_in: bool = False) -> str:
    title = "%s (%d)" % (view.t["error"], status)
    return _render("error", view, frame=_frame(view, signed_in), title=title, message=message)


def _uplink_text(snap: Snapshot, view: View) -> str:
    uplink = snap.uplink
    if uplink is None:
        return view.t["no_uplink"]
    connected = getattr(uplink, "connected", None)
    if connected is not None and connected.is_set():
        return view.t["connected"]
    return view.t["not_connected"]


def _consumable_lines(snap: Snapshot, view: View) -> list:
    """(consumable view, line) for every consumable; a line as templates/consumable_line.html shows it."""
    t = view.t
    lines = []
    for tr in snap.consumables:
        percent = tr.level / tr.capacity * 100
        head = t["level"] % (tr.name[view.lang], percent)
        f = tr.forecast
        if f is None:  # the tracker is faulty
            tail = t["faulty"]
        else:
            lo, hi = ("%.0f" % f.early, "%.0f" % f.late)
            if f.days_left < 0:
                tail = t["learning"]
            elif lo == hi:  # "between 2 and 2 days" says nothing
                tail = t["runs_out_sure"] % days_text(f.days_left, view.lang)
            else:
                tail = t["runs_out"] % (days_text(f.days_left, view.lang), lo, hi)
        lines.append((tr, {"head": head, "percent": "%.0f" % percent, "tail": tail}))
    return lines


def days_text(n: float, lang: str) -> str:
    """'1 day', '5 days', '1 Tag', '5 Tage': whole days, the plural right."""
    whole = int(n + 0.5)
    return claims.plural(whole, *(("1 day", "%d days") if lang == "en" else ("1 Tag", "%d Tage")))


def _reminders(snap: Snapshot, view: View) -> list:
    """(consumable id, text) for every consumable whose reorder moment has come, in words."""
    t = view.t
    out = []
    for tr in snap.consumables:
        if not tr.reorder_due:
            continue
        lead = tr.choice.lead_time_days if tr.choice.lead_time_days is not None else tr.lead_days
        f = tr.forecast
        left = days_text(f.days_left, view.lang) if f is not None and f.days_left >= 0 else ""
        text = t["reorder_due"] % (tr.name[view.lang], days_text(lead, view.lang))
        if left:
            text += " " + t["reorder_left"] % left
        out.append((tr.id, text))
    return out


def overview(agent: Agent, view: View) -> str:
    t = view.t
    snap = agent.snapshot()
    prof = snap.profile
    names = prof["phase_names"]
    phase = snap.phase
    phase_text = names[phase][view.lang] if phase in names else (phase or t["phase_none"])
    # One row per open alert, newest first: its latest explanation (a worse finding, one that
    # joined it) among the recent events, and whether the user has seen it.
    # The first explanation beside the latest, when they differ, is the trend the user reads
    # ("30% longer" when raised, "60% longer" now).
    alert_rows = []
    key = "explanation_" + view.lang
    advice = _advice(prof, view)
    for aid, seen, raised_ms in reversed(snap.alerts[-MAX_ALERTS_SHOWN:]):
        first = text = ""
        what = advice.get("")
        for ev in snap.events:
            if ev.kind in _ALERT_KINDS and ev.fields.get("alert") == aid and key in ev.fields:
                first = first or ev.fields[key]
                text = ev.fields[key]
                if ev.kind == SENSOR_FAULT:
                    what = t["advice_sensor"]
                else:
                    what = advice.get((ev.channel, ev.fields.get("detector")), what)
        earlier = t["alert_first"] % first if first and first != text else ""
        alert_rows.append((str(aid), when(view, raised_ms), text or t["alert_no_text"], earlier, seen, what))
    stock = [line for _, line in _consumable_lines(snap, view)]
    title = "%s %s" % (prof["appliance"]["maker"], prof["appliance"]["model"])
    return _render("overview", view, frame=_frame(view, True, "overview"), title=title, phase=phase_text,
                   uplink=_uplink_text(snap, view), alerts=alert_rows, stock=stock,
                   reminders=_reminders(snap, view))  # fmt: skip


def _advice(profile: dict, view: View) -> dict:
    """(channel, detector kind) -> what the user can do, from the profile's advice; "" -> the
    advice for anything without its own (call customer service, with its contact)."""
    lang = view.lang
    out: dict = {}
    for ch in profile["channels"]:
        for proc in ch["processors"]:
            if proc.get("advice"):
                out[(ch["id"], proc["kind"])] = proc["advice"][lang]
    model = profile.get("cycle_model")
    if model and model.get("advice"):
        out[("cycle_model", "cycle_model")] = model["advice"][lang]
    support = (profile.get("privacy_notice") or {}).get("support")
    out[""] = view.t["advice_default"] % ((" (%s)" % support) if support else "")
    return out


def privacy(agent: Agent, view: View) -> str:
    t = view.t
    lang = view.lang
    snap = agent.snapshot()
    choices = snap.choices
    categories = []
    every = claims.facts(snap.profile)  # in the profile's order of categories
    for i, cat in enumerate(snap.profile["data_categories"]):
        facts = every[i]
        on = choices.get(cat["id"]) == "on"
        said = claims.words(facts, lang)
        categories.append({
            "id": cat["id"], "title": cat["title"][lang], "essential": cat["essential"], "on": on,
            "switch": t["switch_off" if on else "switch_on"], "purpose": cat["purpose"][lang], "facts": facts,
            "what": said["what"], "when": said["when"], "identity": said["identity"],
            "coarse": said["coarse"], "to": said["to"],
            "kept": said["kept"],
        })  # fmt: skip
    titles = {c["id"]: c["title"][lang] for c in snap.profile["data_categories"]}
    history = [
        (when(view, r.get("t_ms", 0), r.get("time", 0)), titles.get(r["category"], r["category"]),
         t["is_on"] if r["choice"] == "on" else t["is_off"])
        for r in reversed(snap.receipts)
    ]  # fmt: skip
    return _render("privacy", view, frame=_frame(view, True, "privacy"), categories=categories, history=history)


def notice(agent: Agent, view: View) -> str:
    """The privacy notice (GDPR Art. 13), a page of its own linked from the privacy page."""
    return _render("notice", view, frame=_frame(view, True, "privacy"), notice=notice_rows(agent.profile, view))


def legal_basis(cat: dict) -> str:
    """The category's legal basis: as the profile says, else consent for an optional
    category and legitimate interest for the essential one."""
    return cat["legal_basis"] or ("legitimate_interest" if cat["essential"] else "consent")


def notice_rows(profile: dict, view: View) -> list | None:
    """The privacy notice as (label, text or list of texts) rows, from the profile's
    privacy_notice with every category's purpose, legal basis, recipients and retention as
    the privacy page says them (claims.py); None when the profile gives no notice. The page
    and docs/privacy.md (tools/privacy_doc.py) both show these rows."""
    notice = profile.get("privacy_notice")
    if not notice:
        return None
    t = view.t
    lang = view.lang
    rows = [(t["controller"], notice["controller"]), (t["privacy_contact"], notice["contact"])]
    if notice["dpo"]:
        rows.append((t["dpo"], notice["dpo"]))
    every = claims.facts(profile)
    purposes, to_whom, kept = [], [], []
    for i, cat in enumerate(profile["data_categories"]):
        title = cat["title"][lang]
        said = claims.words(every[i], lang)
        purposes.append("%s: %s %s %s." % (title, cat["purpose"][lang], t["basis"], t["basis_" + legal_basis(cat)]))
        to_whom.append("%s: %s" % (title, said["to"]))
        kept.append("%s: %s" % (title, said["kept"]))
    rows.append((t["purposes"], purposes))
    rows.append((t["to_whom"], to_whom))
    rows.append((t["stored_where"], notice["storage"][lang]))
    rows.append((t["kept"], kept))
    rows.append((t["rights"], t["rights_v"] % notice["contact"]))
    rows.append((t["complain"], t["complain_v"] % notice["authority"][lang]))
    return rows


def my_data(agent: Agent, view: View, show_all: bool = True) -> str:
    """show_all: everything the device holds, as JSON on the page too (besides the download).
    A board leaves it out: the text and its escaped copies are the largest strings it would
    build (docs/local-page.md, "The page on MicroPython")."""
    t = view.t
    lang = view.lang
    snap = agent.snapshot()
    titles = {c["id"]: c["title"][lang] for c in snap.profile["data_categories"]}
    counts = (
        (t["n_receipts"], len(snap.receipts)),
        (t["n_events"], len(snap.events)),
        (t["n_waiting"], snap.waiting),
        (t["n_awaiting"], snap.awaiting),
        (t["n_sent"], len(snap.sent)),
    )
    everything = json_text(agent.rights.export()) if show_all else None
    sent = [
        {"when": when(view, m["t_ms"]), "category": titles.get(m["category"], m["category"]),
         "status_class": "confirmed" if m.get("status") == CONFIRMED else "broker", "status": _sent_status(m, t),
         "size": "%d" % m["size"], "content": m["content"]}
        for m in reversed(snap.sent)
    ]  # fmt: skip
    return _render("my_data", view, frame=_frame(view, True, "data"), counts=counts, everything=everything, sent=sent)


def _sent_status(entry: dict, t: dict) -> str:
    """A sent-log entry's status in words: "confirmed" only when the backend confirmed it;
    anything else (an entry stored before statuses were kept) claims no more than the broker."""
    return str(t["status_confirmed"] if entry.get("status") == CONFIRMED else t["status_broker"])


def erase_confirm(view: View) -> str:
    return _render("erase_confirm", view, frame=_frame(view, True, "data"))


def consumables(agent: Agent, view: View) -> str:
    t = view.t
    lang = view.lang
    snap = agent.snapshot()
    titles = {c["id"]: c["title"][lang] for c in snap.profile["data_categories"]}
    purposes = {c["id"]: c["purpose"][lang] for c in snap.profile["data_categories"]}
    cards = []
    for tr, line in _consumable_lines(snap, view):
        ch = tr.choice
        category = tr.category
        blocked = ch.mode == SHARE and snap.choices.get(category) != "on"
        cards.append({
            "share_off": t["share_off"] % (titles.get(category, category), purposes.get(category, ""))
            if blocked else "",
            "category": category, "switch_cat": t["switch_cat"] % titles.get(category, category),
            "id": tr.id, "name": tr.name[lang], "line": line,
            "modes": [(mode, t["mode_" + mode], ch.mode == mode) for mode in CHOICES],
            "share_note": t["share_needs"] % titles.get(category, category),
            "risks": [("%g" % r, _risk_label(view, tr.id, r), abs(ch.risk - r) < 1e-9) for r in RISKS],
            "product": ch.product, "retailer": ch.retailer,
            "lead": "" if ch.lead_time_days is None else "%g" % ch.lead_time_days,
            "lead_hint": t["lead_hint"] % days_text(tr.lead_days, lang),
        })  # fmt: skip
    return _render("consumables", view, frame=_frame(view, True, "consumables"), cards=cards)


def _risk_label(view: View, consumable: str, risk: float) -> str:
    """A reminder setting in words, and what it traded in the benchmark's households for this
    consumable (reorder_figures.py), where it was measured."""
    t = view.t
    label = t["risk_%g" % risk]
    measured = reorder_figures.FIGURES.get(consumable, {}).get("%g" % risk)
    if measured is None:
        return label
    share, days = measured
    ran_out = t["risk_never"] if share == 0 else t["risk_ran_out"] % _percent(share, view.lang)
    supply = t["risk_supply_one"] if round(days) <= 1 else t["risk_supply_n"] % ("%.0f" % days)
    return label + t["risk_measured"] % (supply, ran_out)


def _percent(share: float, lang: str) -> str:
    """A share as people read it: 1.6% (1,6 % in German), under 0.1%."""
    if share < 0.001:
        text = "0.1"
        prefix = "< " if lang == "en" else "unter "
    else:
        text = ("%.1f" % (100 * share)).rstrip("0").rstrip(".")
        prefix = ""
    if lang == "de":
        return prefix + text.replace(".", ",") + " %"
    return prefix + text + "%"


def device(agent: Agent, view: View) -> str:
    t = view.t
    snap = agent.snapshot()
    app = snap.profile["appliance"]
    uplink = snap.uplink
    cfg = getattr(uplink, "cfg", None)
    tls = t["tls_v"] % ("%s:%s" % (cfg.host, cfg.port)) if cfg is not None else t["no_uplink"]
    facts = (
        (t["maker"], app["maker"]),
        (t["support"], (snap.profile.get("privacy_notice") or {}).get("support") or t["not_declared"]),
        (t["model"], app["model"]),
        (t["hw"], app["hardware_revision"]),
        (t["device_id"], snap.device_id),
        (t["firmware"], VERSION),
        (t["update"], t["update_none"]),
        (t["last_check"], t["never"]),
        (t["supported"], t["not_declared"]),
        (t["tls"], tls),
        (t["uplink"], _uplink_text(snap, view)),
        (t["code_store"], t["code_store_v"]),
    )
    zones = [(z, localtime.ZONE_NAMES[z][0 if view.lang == "en" else 1], z == view.zone) for z in localtime.ORDER]
    return _render("device", view, frame=_frame(view, True, "device"), facts=facts, zones=zones)
