"""Plain-language explanations of maintenance events, in English and German.

Built only when an event fires (rare), from numbers and the profile's labels and hints.
"""


def _pct(x: float) -> str:
    return str(int(abs(x) + 0.5))


def capitalized(text: str) -> str:
    """text with its first letter upper case and the rest lower case: str.capitalize, which
    MicroPython's str lacks."""
    return text[:1].upper() + text[1:].lower()


def _hint(text: str, hint: dict | None, lang: str) -> str:
    if hint:
        return text + " — " + str(hint[lang])
    return text + "."


def cycle_change(feature: str, phase: dict, channel: dict, change_pct: float, cycles: int, hint: dict | None) -> dict:
    """Why a per-cycle feature stands out, e.g. 'Drain took 38% longer than usual over
    the last 3 cycles — the drain pump or filter may be clogging.'

    phase, channel: {"en": ..., "de": ...} names. Returns {"en": ..., "de": ...}.
    """
    up = change_pct > 0
    pct = _pct(change_pct)
    n = str(cycles)
    if feature == "duration":
        en = phase["en"] + " took " + pct + "% " + ("longer" if up else "shorter") + " than usual"
        de = phase["de"] + " dauerte " + pct + " % " + ("länger" if up else "kürzer") + " als üblich"
    else:
        what_en = "peak " if feature == "peak" else ""
        what_de = "Spitzenwert von " if feature == "peak" else ""
        en = capitalized(what_en + channel["en"]) + " during " + phase["en"].lower() + " was " + pct + "% "
        en += ("higher" if up else "lower") + " than usual"
        de = what_de + channel["de"] + " war während " + phase["de"] + " " + pct + " % "
        de += ("höher" if up else "niedriger") + " als üblich"
        de = de[0].upper() + de[1:]
    en += " over the last " + n + (" cycle" if cycles == 1 else " cycles")
    de += " (in den letzten " + n + (" Zyklus)" if cycles == 1 else " Zyklen)")
    return {"en": _hint(en, hint, "en"), "de": _hint(de, hint, "de")}


def unusual_reading(
    channel: dict, phase: dict | None, value: float, baseline: float, unit: str, hint: dict | None
) -> dict:
    """Why one reading stands out, e.g. 'Water inlet flow while idle read 0.52 l/min;
    usual is about 0 l/min — the inlet valve may be leaking.'"""
    v = "%.3g" % value
    b = "%.3g" % baseline
    en = channel["en"]
    de = channel["de"]
    if phase is not None:
        en += " during " + phase["en"].lower()
        de += " während " + phase["de"]
    en += " read " + v + " " + unit + "; usual is about " + b + " " + unit
    de += ": " + v.replace(".", ",") + " " + unit + " gemessen, üblich sind etwa " + b.replace(".", ",") + " " + unit
    return {"en": _hint(en, hint, "en"), "de": _hint(de, hint, "de")}


def back_to_normal(channel: dict, phase: dict | None) -> dict:
    """The end of an alert, e.g. 'Drain pump current during draining is back to normal.'"""
    en = channel["en"]
    de = channel["de"]
    if phase is not None:
        en += " during " + phase["en"].lower()
        de += " während " + phase["de"]
    return {"en": en + " is back to normal.", "de": de + " ist wieder normal."}


def several_changes(parts: list, hint: dict | None) -> dict:
    """Why a cycle stands out in several measurements together, e.g. 'The last cycles differ
    from usual in several measurements together: Motor current during draining 38% higher,
    Draining 20% longer — the drain pump may be clogging.'

    parts: (feature, phase names, channel label or None for a duration, change in percent,
    direction: +1 up, -1 down, 0 usual on its own but not with the others)."""
    en = []
    de = []
    for feature, phase, channel, pct, direction in parts:
        p = _pct(pct)
        if feature == "duration":
            head_en, head_de = phase["en"], phase["de"]
            up_en, down_en, up_de, down_de = "longer", "shorter", "länger", "kürzer"
        else:
            peak = feature == "peak"
            head_en = ("Peak " + channel["en"].lower() if peak else channel["en"]) + " during " + phase["en"].lower()
            head_de = ("Spitzenwert von " if peak else "") + channel["de"] + " während " + phase["de"]
            up_en, down_en, up_de, down_de = "higher", "lower", "höher", "niedriger"
        if direction == 0:
            en.append(head_en + " unchanged on its own, but not as usual with the others")
            de.append(head_de + " für sich unverändert, aber nicht wie sonst mit den anderen")
        else:
            up = direction > 0
            en.append(head_en + " " + p + "% " + (up_en if up else down_en))
            de.append(head_de + " " + p + " % " + (up_de if up else down_de))
    head_en = "The last cycles differ from usual in several measurements together: "
    head_de = "Die letzten Programmabläufe weichen in mehreren Messungen zugleich vom Üblichen ab: "
    return {"en": _hint(head_en + "; ".join(en), hint, "en"), "de": _hint(head_de + "; ".join(de), hint, "de")}
