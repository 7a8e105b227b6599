"""Plain-language explanations of maintenance events, in English and German.

Built only when an event fires (rare), from numbers and the profile's labels and hints.
"""


def percent(x: float) -> str:
    return str(int(abs(x) + 0.5))


def phase_name(names: dict, phase: str) -> dict:
    """A phase's names for people ({"en", "de"}) from the profile's phase_names, or its id
    capitalised, underscores as spaces, when the profile names it not."""
    found = names.get(phase)
    if found is None:
        text = capitalized(phase.replace("_", " "))
        return {"en": text, "de": text}
    return found  # type: ignore[no-any-return]


def capitalized(text: str) -> str:
    """text with its first letter upper case and the rest lower case: str.capitalize, which
    MicroPython's str lacks."""
    return text[:1].upper() + text[1:].lower()


def hint_added(text: str, hint: dict | None, lang: str) -> str:
    if hint:
        return text + " — " + str(hint[lang])
    return text + "."


def cycle_change(feature: str, phase: dict, channel: dict, change_pct: float, cycles: int, hint: dict | None) -> dict:
    """Why a per-cycle feature stands out, e.g. 'Drain took 38% longer than usual over
    the last 3 cycles — the drain pump or filter may be clogging.'

    phase, channel: {"en": ..., "de": ...} names. Returns {"en": ..., "de": ...}.
    """
    up = change_pct > 0
    pct = percent(change_pct)
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
    return {"en": hint_added(en, hint, "en"), "de": hint_added(de, hint, "de")}


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
    return {"en": hint_added(en, hint, "en"), "de": hint_added(de, hint, "de")}


def back_to_normal(channel: dict, phase: dict | None) -> dict:
    """The end of an alert, e.g. 'Drain pump current during draining is back to normal.'"""
    en = channel["en"]
    de = channel["de"]
    if phase is not None:
        en += " during " + phase["en"].lower()
        de += " während " + phase["de"]
    return {"en": en + " is back to normal.", "de": de + " ist wieder normal."}
