"""What the page (and docs/privacy.md) says about each data category, made from the
profile and the privacy gate's own rules, so no sentence can promise more than is done.

facts() reads the profile: which fields leave, how the device is identified, how coarse
the times are, what makes a message and the most a day can hold, who receives it and
for how long. words() turns the facts into plain English or German. tests/test_claims.py
compares both with the messages the gate really sends, on every example profile.
"""

from agent.core.encoding import encode

# Every field an example profile lets out, in words a person reads (the gate's names
# stay in the export). A profile's own field without words here is shown by its name,
# and the claims test fails on the example profiles.
FIELD_WORDS = {
    "status": ("whether the device works", "ob das Gerät funktioniert"),
    "firmware": ("its software version", "seine Softwareversion"),
    "update": ("whether an update is waiting", "ob ein Update wartet"),
    "category": ("which kind of data a choice is about", "um welche Art von Daten es bei einer Entscheidung geht"),
    "choice": ("your choice (on or off)", "Ihre Entscheidung (an oder aus)"),
    "text_hash": ("a fingerprint of the text you saw", "ein Fingerabdruck des Textes, den Sie gesehen haben"),
    "text_version": ("the version of that text", "die Fassung dieses Textes"),
    "scope": ("what an erasure request covers", "worauf sich ein Löschauftrag bezieht"),
    "channel": ("which sensor", "welcher Sensor"),
    "phase": ("the programme step", "der Programmschritt"),
    "detector": ("which check noticed it", "welche Prüfung es bemerkt hat"),
    "feature": (
        "what was measured (for example how long a step took)",
        "was gemessen wurde (zum Beispiel wie lange ein Schritt dauerte)",
    ),
    "state": ("whether the alert is new, worse or over", "ob der Hinweis neu, schlimmer oder erledigt ist"),
    "alert": ("the alert's number", "die Nummer des Hinweises"),
    "value": ("the unusual value", "der ungewöhnliche Wert"),
    "baseline": ("the usual value", "der übliche Wert"),
    "change_pct": ("how far it moved from usual, in percent", "wie weit er vom Üblichen abweicht, in Prozent"),
    "score": ("how sure the device is", "wie sicher sich das Gerät ist"),
    "time": ("when", "wann"),
    "min": ("the lowest value", "der niedrigste Wert"),
    "mean": ("the average", "der Durchschnitt"),
    "max": ("the highest value", "der höchste Wert"),
    "consumable": ("which item (for example detergent)", "welches Verbrauchsmittel (zum Beispiel Waschmittel)"),
    "event": ("what happened (runs low, refilled, reorder)", "was geschah (wird knapp, nachgefüllt, nachbestellen)"),
    "level_pct": ("how full it is, in percent", "wie voll es ist, in Prozent"),
    "days_left": ("how many days it will last", "wie viele Tage es noch reicht"),
    "product": ("the product you named", "das Produkt, das Sie genannt haben"),
    "retailer": ("the shop you named", "den Händler, den Sie genannt haben"),
}

# What makes a category's messages, by the profile part that feeds it.
CHOICES = "choices"  # the essential category: your choices and erasure requests, and the device's status
ALERTS = "alerts"  # detectors, the cycle model, sensor faults
SUMMARIES = "summaries"  # aggregates over a window
STOCK = "stock"  # consumables: low, refilled, and a reorder suggestion when you share it

_DAY_S = 86400


def _smallest_message(cat: dict, max_payload: int) -> int:
    """Bytes of the smallest message the gate can make for this category (privacy gate's
    envelope, gate.py _message): no data, one-digit numbers, the shortest kind. The most a
    day can hold is the budget over this, so the number told is never too low."""
    msg = {"v": 1, "id": 1, "seq": 1, "cat": cat["id"], "kind": "status", "data": {}}
    if cat["pseudonymous"]:
        msg["pid"] = "0" * 16
    return len(encode(msg, max_payload))


def facts(profile: dict) -> list:
    """Per data category, in the profile's order: the facts the page and the docs tell."""
    sources: dict = {}
    for ch in profile["channels"]:
        for proc in ch["processors"]:
            tag = SUMMARIES if proc["kind"] == "aggregate" else ALERTS
            entry = sources.setdefault(proc["category"], {})
            if tag == SUMMARIES:
                entry[SUMMARIES] = entry.get(SUMMARIES, []) + [proc["settings"]["window_s"]]
            else:
                entry[ALERTS] = True
    model = profile.get("cycle_model")
    if model:
        sources.setdefault(model["category"], {})[ALERTS] = True
    for c in profile["consumables"]:
        sources.setdefault(c["category"], {})[STOCK] = True
    out = []
    for cat in profile["data_categories"]:
        src = sources.get(cat["id"], {})
        triggers = [CHOICES] if cat["essential"] else [t for t in (ALERTS, SUMMARIES, STOCK) if t in src]
        most = cat["daily_budget_bytes"] // _smallest_message(cat, profile["uplink"]["max_payload"])
        if SUMMARIES in src and len(triggers) == 1:  # only summaries: their count is known
            most = min(most, sum(-(-_DAY_S // w) for w in src[SUMMARIES]))
        out.append({
            "id": cat["id"], "fields": list(cat["fields"]), "pseudonymous": cat["pseudonymous"],
            "grain_s": cat["time_grain_s"] if "time" in cat["fields"] else 0, "round": dict(cat["round"]),
            "triggers": triggers, "windows_s": sorted(set(src.get(SUMMARIES, []))), "per_day": most,
            "unlimited_choices": bool(cat["essential"]), "recipients": list(cat["recipients"]),
            "server": profile["uplink"]["host"], "kept_days": cat["retention_days"],
            "kept_upstream_days": cat["upstream_retention_days"],
        })  # fmt: skip
    return out


def plural(n: int, one: str, many: str) -> str:
    """'1 day', '3 days' (many holds %d)."""
    return one if n == 1 else many % n


_WORDS: dict = {
    "en": {
        "day": ("a day", "%d days"),
        "hour": ("an hour", "%d hours"),
        "minute": ("a minute", "%d minutes"),
        "message": ("1 message", "%d messages"),
        "grain": "Times are rounded down to %s.",
        "grain_whole": "the hour",
        "grain_day": "the day",
        "per": "whole periods of %s",
        "choices": "each time you change a choice or ask for erasure (these always go); besides, the device's "
        "status: never more than %s a day",
        "alerts": "when the appliance notices something unusual",
        "summaries": "a summary per sensor every %s",
        "stock": "when an item runs low or is refilled, and a reorder suggestion if you chose to share it",
        "most": "never more than %s a day",
        "device": "Linked to your appliance: every message carries its device id.",
        "pseudonym": "Pseudonymous, not anonymous: each message carries a code name made only for this kind of "
        "data, but the manufacturer's server still sees your appliance's device id with it, so the "
        "manufacturer can link it to your appliance.",
        "to": "To the manufacturer's message server (%s). Used there by: %s.",
        "to_nobody": "To the manufacturer's message server (%s); nobody else is named.",
        "kept": "On the appliance: %s. At the manufacturer: %s.",
        "kept_none": "not kept",
        "rounded": "Values are rounded: %s.",
        "rounded_to": "%s to steps of %s",
        "and": " and ",
    },
    "de": {
        "day": ("ein Tag", "%d Tage"),
        "hour": ("eine Stunde", "%d Stunden"),
        "minute": ("eine Minute", "%d Minuten"),
        "message": ("1 Nachricht", "%d Nachrichten"),
        "grain": "Zeiten werden auf %s abgerundet.",
        "grain_whole": "die volle Stunde",
        "grain_day": "den Tag",
        "per": "volle Abschnitte von %s",
        "choices": "jedes Mal, wenn Sie eine Entscheidung ändern oder eine Löschung verlangen (diese Nachrichten "
        "gehen immer); daneben der Zustand des Geräts: nie mehr als %s am Tag",
        "alerts": "wenn das Gerät etwas Ungewöhnliches bemerkt",
        "summaries": "eine Zusammenfassung je Sensor alle %s",
        "stock": "wenn etwas knapp wird oder nachgefüllt wurde, und ein Nachbestell-Vorschlag, wenn Sie das "
        "Teilen gewählt haben",
        "most": "nie mehr als %s am Tag",
        "device": "Mit Ihrem Gerät verknüpft: Jede Nachricht trägt seine Gerätekennung.",
        "pseudonym": "Pseudonym, nicht anonym: Jede Nachricht trägt einen Decknamen nur für diese Art von Daten, "
        "doch der Server des Herstellers sieht dabei die Gerätekennung Ihres Geräts; der Hersteller kann "
        "sie also Ihrem Gerät zuordnen.",
        "to": "An den Nachrichtenserver des Herstellers (%s). Empfänger dort: %s.",
        "to_nobody": "An den Nachrichtenserver des Herstellers (%s); sonst niemand.",
        "kept": "Auf dem Gerät: %s. Beim Hersteller: %s.",
        "kept_none": "nicht gespeichert",
        "rounded": "Werte werden gerundet: %s.",
        "rounded_to": "%s auf Schritte von %s",
        "and": " und ",
    },
}


def span(seconds: int, lang: str) -> str:
    """A span in words: 'an hour', '6 hours', '3 days' ('eine Stunde', '6 Stunden')."""
    w = _WORDS[lang]
    for size, key in ((_DAY_S, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size and seconds % size == 0:
            return plural(seconds // size, *w[key])
    return "%d s" % seconds


def number(x: float, lang: str) -> str:
    """0.5 in English, 0,5 in German."""
    text = "%g" % x
    return text.replace(".", ",") if lang == "de" else text


def days(n: int, lang: str) -> str:
    """How long something is kept, in days ('not kept' for none)."""
    w = _WORDS[lang]
    return w["kept_none"] if n == 0 else plural(n, *w["day"])


def words(f: dict, lang: str) -> dict:
    """The facts of one category in plain words: what (list of field words), when, identity,
    grain, rounding, both together (coarse), to whom, kept."""
    w = _WORDS[lang]
    i = 0 if lang == "en" else 1
    what = [FIELD_WORDS[name][i] if name in FIELD_WORDS else name for name in f["fields"]]
    most = plural(f["per_day"], *w["message"])
    if f["unlimited_choices"]:
        when = w[CHOICES] % most
    else:
        parts = [w[t] % w["and"].join(span(s, lang) for s in f["windows_s"]) if t == SUMMARIES else w[t]
                 for t in f["triggers"]]  # fmt: skip
        when = "; ".join(parts + [w["most"] % most])
    when = when[0].upper() + when[1:] + "."
    grain = ""
    if f["grain_s"]:
        g = f["grain_s"]
        unit = w["grain_whole"] if g == 3600 else w["grain_day"] if g == _DAY_S else w["per"] % span(g, lang)
        grain = w["grain"] % unit
    rounded = ""
    if f["round"]:
        steps = [w["rounded_to"] % (FIELD_WORDS[k][i] if k in FIELD_WORDS else k, number(v, lang))
                 for k, v in sorted(f["round"].items())]  # fmt: skip
        rounded = w["rounded"] % "; ".join(steps)
    names = ", ".join(r[lang] for r in f["recipients"])
    to = w["to"] % (f["server"], names) if names else w["to_nobody"] % f["server"]
    kept = w["kept"] % (days(f["kept_days"], lang), days(f["kept_upstream_days"], lang))
    coarse = (grain + " " + rounded) if grain and rounded else (grain or rounded)
    return {"what": what, "when": when, "identity": w["pseudonym" if f["pseudonymous"] else "device"],
            "grain": grain, "rounded": rounded, "coarse": coarse, "to": to, "kept": kept}  # fmt: skip
