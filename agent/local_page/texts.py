"""The local page's words in English and German, and the choice of language.

The texts about data categories and consumables come from the profile; these are the
page's own labels and sentences.
"""

LANGS = ("en", "de")

TEXTS = {
    "en": {
        "lang_name": "English",
        "skip": "Skip to content",
        "nav": "Sections",
        "overview": "Overview",
        "privacy": "Privacy",
        "data": "My data",
        "consumables": "Consumables",
        "device": "Device",
        "sign_out": "Sign out",
        "login_title": "Sign in to your appliance",
        "login_intro": "Type the setup code printed on the label of your appliance. "
        "Nothing about the appliance is shown before you sign in.",
        "code": "Setup code",
        "code_hint": "10 letters and digits, for example K7M2P-9QXR4",
        "sign_in": "Sign in",
        "wrong_code": "That code is not right. Please check the label.",
        "wait": "Too many wrong codes. Please try again in %d s.",
        "signed_out": "You are signed out.",
        "state": "State",
        "phase": "Programme phase",
        "phase_none": "not reported",
        "uplink": "Connection to the manufacturer",
        "connected": "connected (TLS)",
        "not_connected": "not connected; everything here works without it",
        "no_uplink": "none configured; everything stays on the device",
        "alerts": "Maintenance alerts",
        "no_alerts": "No maintenance alerts. Everything looks normal.",
        "level": "%s: %.0f%% left",
        "runs_out": "runs out in about %s days (between %s and %s days)",
        "learning": "still learning how much you use",
        "faulty": "the level sensor reads implausibly; the level is not trusted",
        "privacy_intro": "You decide what leaves your appliance. Everything optional is off until you "
        "switch it on, and you can switch it off again at any time: waiting messages are "
        "then deleted and the recipient is asked to erase what it has.",
        "is_on": "On",
        "is_off": "Off",
        "always_on": "Always on",
        "switch_on": "Switch on",
        "switch_off": "Switch off",
        "what_sent": "What is sent",
        "how_often": "How often",
        "how_often_v": "at most %d bytes a day; times rounded to %s",
        "to_whom": "To whom",
        "nobody": "nobody",
        "kept": "Kept how long",
        "kept_v": "%d days on the appliance, %d days by the recipient",
        "history": "Your choices so far",
        "no_history": "No choices recorded yet.",
        "when": "When",
        "category": "Category",
        "choice": "Choice",
        "text_version": "Text version",
        "data_intro": "Everything your appliance holds about its use.",
        "holds": "What the appliance holds",
        "n_receipts": "consent choices",
        "n_events": "recent events",
        "n_waiting": "messages waiting to be sent",
        "n_sent": "messages sent (logged)",
        "download": "Download everything (JSON)",
        "show_all": "Show everything the appliance holds",
        "sent_log": "What left your home",
        "no_sent": "Nothing has left your home yet.",
        "bytes": "Bytes",
        "content": "Content",
        "erase": "Erase my data",
        "erase_intro": "Deletes your choices, what the appliance learned, its events and its log, "
        "switches everything optional off and asks every recipient to erase what it holds.",
        "erase_confirm": "Yes, erase everything the appliance holds about its use",
        "erase_really": "Erase now",
        "cancel": "Cancel",
        "erased": "Erased. %d erasure requests will tell the recipients to delete what they hold.",
        "cons_intro": "What should happen when something runs low? The appliance never buys anything itself.",
        "mode": "When it runs low",
        "mode_off": "Off: no reminder",
        "mode_remind": "Remind me here",
        "mode_share": "Share a reorder suggestion with my shop",
        "product": "Brand or product (your choice)",
        "retailer": "Shop (your choice)",
        "lead": "Delivery takes (days)",
        "lead_hint": "empty: %g days",
        "save": "Save",
        "refilled": "I refilled it",
        "saved": "Saved.",
        "refill_done": "Noted: %s is full again.",
        "no_consumables": "This appliance tracks no consumables.",
        "share_needs": "Sharing also needs the category “%s” switched on (Privacy).",
        "maker": "Maker",
        "model": "Model",
        "hw": "Hardware revision",
        "device_id": "Device id",
        "firmware": "Firmware version",
        "update": "Updates",
        "update_none": "no update service yet",
        "last_check": "Last update check",
        "never": "never",
        "supported": "Supported until",
        "not_declared": "not declared by the manufacturer",
        "tls": "Security",
        "tls_v": "mutual TLS to %s",
        "code_store": "Setup code",
        "code_store_v": "stored on the appliance only as a salted hash",
        "error": "Something was not right",
        "back": "Back to the overview",
        "not_signed_in": "You are not signed in. Nothing was changed.",
        "bad_token": "This form is outdated or did not come from this page. Nothing was changed; please try again.",
        "bad_form": "The form could not be read (%s). Nothing was changed.",
        "busy": "Not now: %s. Nothing was changed.",
        "not_found": "There is no such page.",
        "too_large": "The request is too large. Nothing was changed.",
        "not_allowed": "That kind of request is not accepted here. Nothing was changed.",
        "internal": "The appliance could not do that. Nothing was changed.",
        "switched": "%s is now %s.",
        "device_clock": "day %d, %02d:%02d",
        "when_device": "When (appliance clock)",
    },
    "de": {
        "lang_name": "Deutsch",
        "skip": "Zum Inhalt springen",
        "nav": "Bereiche",
        "overview": "Übersicht",
        "privacy": "Datenschutz",
        "data": "Meine Daten",
        "consumables": "Verbrauchsmittel",
        "device": "Gerät",
        "sign_out": "Abmelden",
        "login_title": "Bei Ihrem Gerät anmelden",
        "login_intro": "Geben Sie den Einrichtungscode vom Typenschild Ihres Geräts ein. "
        "Vor der Anmeldung wird nichts über das Gerät angezeigt.",
        "code": "Einrichtungscode",
        "code_hint": "10 Buchstaben und Ziffern, zum Beispiel K7M2P-9QXR4",
        "sign_in": "Anmelden",
        "wrong_code": "Dieser Code stimmt nicht. Bitte prüfen Sie das Typenschild.",
        "wait": "Zu viele falsche Codes. Bitte versuchen Sie es in %d s erneut.",
        "signed_out": "Sie sind abgemeldet.",
        "state": "Zustand",
        "phase": "Programmschritt",
        "phase_none": "nicht gemeldet",
        "uplink": "Verbindung zum Hersteller",
        "connected": "verbunden (TLS)",
        "not_connected": "nicht verbunden; alles hier funktioniert auch ohne",
        "no_uplink": "keine eingerichtet; alles bleibt auf dem Gerät",
        "alerts": "Wartungshinweise",
        "no_alerts": "Keine Wartungshinweise. Alles sieht normal aus.",
        "level": "%s: noch %.0f %%",
        "runs_out": "reicht noch etwa %s Tage (zwischen %s und %s Tagen)",
        "learning": "lernt noch, wie viel Sie verbrauchen",
        "faulty": "der Füllstandssensor misst unplausibel; der Füllstand gilt als unsicher",
        "privacy_intro": "Sie entscheiden, was Ihr Gerät verlässt. Alles Optionale ist aus, bis Sie es "
        "einschalten, und Sie können es jederzeit wieder ausschalten: Wartende Nachrichten werden "
        "dann gelöscht und der Empfänger wird gebeten, zu löschen, was er hat.",
        "is_on": "An",
        "is_off": "Aus",
        "always_on": "Immer an",
        "switch_on": "Einschalten",
        "switch_off": "Ausschalten",
        "what_sent": "Was gesendet wird",
        "how_often": "Wie oft",
        "how_often_v": "höchstens %d Bytes am Tag; Zeiten gerundet auf %s",
        "to_whom": "An wen",
        "nobody": "niemanden",
        "kept": "Wie lange gespeichert",
        "kept_v": "%d Tage auf dem Gerät, %d Tage beim Empfänger",
        "history": "Ihre bisherigen Entscheidungen",
        "no_history": "Noch keine Entscheidungen gespeichert.",
        "when": "Wann",
        "category": "Kategorie",
        "choice": "Entscheidung",
        "text_version": "Textversion",
        "data_intro": "Alles, was Ihr Gerät über seine Nutzung gespeichert hat.",
        "holds": "Was das Gerät gespeichert hat",
        "n_receipts": "Datenschutz-Entscheidungen",
        "n_events": "letzte Ereignisse",
        "n_waiting": "Nachrichten, die auf das Senden warten",
        "n_sent": "gesendete Nachrichten (protokolliert)",
        "download": "Alles herunterladen (JSON)",
        "show_all": "Alles anzeigen, was das Gerät gespeichert hat",
        "sent_log": "Was Ihr Zuhause verlassen hat",
        "no_sent": "Bisher hat nichts Ihr Zuhause verlassen.",
        "bytes": "Bytes",
        "content": "Inhalt",
        "erase": "Meine Daten löschen",
        "erase_intro": "Löscht Ihre Entscheidungen, was das Gerät gelernt hat, seine Ereignisse und sein "
        "Protokoll, schaltet alles Optionale aus und bittet jeden Empfänger, seine Daten zu löschen.",
        "erase_confirm": "Ja, alles löschen, was das Gerät über seine Nutzung gespeichert hat",
        "erase_really": "Jetzt löschen",
        "cancel": "Abbrechen",
        "erased": "Gelöscht. %d Löschaufträge bitten die Empfänger, ihre Daten zu löschen.",
        "cons_intro": "Was soll passieren, wenn etwas knapp wird? Das Gerät kauft nie selbst etwas.",
        "mode": "Wenn es knapp wird",
        "mode_off": "Aus: keine Erinnerung",
        "mode_remind": "Hier erinnern",
        "mode_share": "Nachbestell-Vorschlag an meinen Händler senden",
        "product": "Marke oder Produkt (Ihre Wahl)",
        "retailer": "Händler (Ihre Wahl)",
        "lead": "Lieferzeit (Tage)",
        "lead_hint": "leer: %g Tage",
        "save": "Speichern",
        "refilled": "Ich habe nachgefüllt",
        "saved": "Gespeichert.",
        "refill_done": "Notiert: %s ist wieder voll.",
        "no_consumables": "Dieses Gerät verfolgt keine Verbrauchsmittel.",
        "share_needs": "Zum Senden muss auch die Kategorie „%s“ eingeschaltet sein (Datenschutz).",
        "maker": "Hersteller",
        "model": "Modell",
        "hw": "Hardware-Revision",
        "device_id": "Gerätekennung",
        "firmware": "Firmware-Version",
        "update": "Updates",
        "update_none": "noch kein Update-Dienst",
        "last_check": "Letzte Update-Prüfung",
        "never": "nie",
        "supported": "Unterstützt bis",
        "not_declared": "vom Hersteller nicht angegeben",
        "tls": "Sicherheit",
        "tls_v": "gegenseitiges TLS zu %s",
        "code_store": "Einrichtungscode",
        "code_store_v": "auf dem Gerät nur als gesalzener Hash gespeichert",
        "error": "Etwas hat nicht gestimmt",
        "back": "Zurück zur Übersicht",
        "not_signed_in": "Sie sind nicht angemeldet. Es wurde nichts geändert.",
        "bad_token": "Dieses Formular ist veraltet oder kam nicht von dieser Seite. Es wurde nichts "
        "geändert; bitte versuchen Sie es erneut.",
        "bad_form": "Das Formular war nicht lesbar (%s). Es wurde nichts geändert.",
        "busy": "Jetzt nicht: %s. Es wurde nichts geändert.",
        "not_found": "Diese Seite gibt es nicht.",
        "too_large": "Die Anfrage ist zu groß. Es wurde nichts geändert.",
        "not_allowed": "Diese Art Anfrage wird hier nicht angenommen. Es wurde nichts geändert.",
        "internal": "Das Gerät konnte das nicht ausführen. Es wurde nichts geändert.",
        "switched": "%s ist jetzt %s.",
        "device_clock": "Tag %d, %02d:%02d",
        "when_device": "Wann (Geräteuhr)",
    },
}


def pick(accept_language: str, chosen: str = "") -> str:
    """The page's language: the user's switch if set, else the first of en/de the
    browser prefers (Accept-Language with q-values), else English."""
    if chosen in LANGS:
        return chosen
    best, best_q = "en", -1.0
    for i, part in enumerate(accept_language.split(",")[:16]):
        tag, _, params = part.strip().partition(";")
        lang = tag.strip().lower()[:2]
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        q -= i * 1e-6  # equal weights: the earlier one wins
        if lang in LANGS and q > best_q and q > 0:
            best, best_q = lang, q
    return best


def grain_text(seconds: int, lang: str) -> str:
    """How coarse times are, in words: 'the hour', '6 hours', 'the day'."""
    units = (
        (86400, "the day", "den Tag", "%d days", "%d Tage"),
        (3600, "the hour", "die Stunde", "%d hours", "%d Stunden"),
        (60, "the minute", "die Minute", "%d minutes", "%d Minuten"),
        (1, "the second", "die Sekunde", "%d seconds", "%d Sekunden"),
    )
    for size, one_en, one_de, many_en, many_de in units:
        if seconds % size == 0:
            n = seconds // size
            if n == 1:
                return one_en if lang == "en" else one_de
            return (many_en if lang == "en" else many_de) % n
    return str(seconds)
