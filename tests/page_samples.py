"""A washer agent whose every text the page shows is one the test chose, and every page of
the local page rendered for it; portable, so the unix port renders the same agent.

hostile_agent puts a text (with a mark per field, so each can be found) into the device
id, the appliance's names, a phase, the consumables' names and choices, the categories'
titles, purposes, fields and recipients, alerts and the sent log.
"""

from agent.core import profile as core_profile
from agent.core.alerts import AlertEpisode
from agent.core.clock import ManualClock
from agent.core.consent import ConsentLedger
from agent.core.events import ANOMALY, Event
from agent.core.pipeline import Agent
from agent.local_page import views

# Which page shows which field (the notice, message, token and path are the view's).
SHOWN = {
    "maker": ("overview", "device"),
    "model": ("overview", "device"),
    "device_id": ("device",),
    "phase": ("overview",),
    "consumable": ("overview", "consumables"),
    "title": ("privacy", "data", "consumables"),
    "purpose": ("privacy",),
    "recipient": ("privacy",),
    "field": ("privacy",),
    "explanation": ("overview",),
    "content": ("data",),
    "product": ("consumables",),
    "retailer": ("consumables",),
    "notice": ("overview", "privacy", "data", "consumables", "device", "erase"),
    "message": ("login", "error"),
    "csrf": ("overview", "privacy", "data", "consumables", "device", "erase"),
    "path": ("login", "error", "overview", "privacy", "data", "consumables", "device", "erase"),
}


class _Still:
    def read(self, t_ms: int) -> float:
        return 0.0


DAY_MS = 86_400_000


def values(text: str) -> dict:
    """field -> the text with the field's mark, so each field can be told apart on the page."""
    out = {}
    for i, field in enumerate(sorted(SHOWN)):
        out[field] = "%s#%d" % (text, i)
    return out


def hostile_agent(profile_json: bytes, text: str) -> tuple:
    """(agent, values): the washer with `text` in every field the page shows (values())."""
    v = values(text)
    prof = core_profile.from_json(profile_json)
    # The pages show nothing of the cycle model; left out, a pi-sized agent's pages fit the
    # unix port's 768 KB heap as they did (its code and refits are measured in bench/micropython.py).
    prof["cycle_model"] = None
    # After validation, as if the profile's author had written them: the page must not trust them.
    prof["appliance"]["maker"] = v["maker"]
    prof["appliance"]["model"] = v["model"]
    for cons in prof["consumables"]:
        cons["name"] = {"en": v["consumable"], "de": v["consumable"]}
    for cat in prof["data_categories"]:
        cat["title"] = {"en": v["title"], "de": v["title"]}
        cat["purpose"] = {"en": v["purpose"], "de": v["purpose"]}
        cat["recipients"] = [{"en": v["recipient"], "de": v["recipient"]}]
        cat["fields"] = [v["field"]]
    drivers = {}
    for ch in prof["channels"]:
        drivers[ch["id"]] = _Still()
    agent = Agent(prof, v["device_id"], drivers, ManualClock(), None, None,
                  ConsentLedger(prof["data_categories"], v["device_id"]))  # fmt: skip
    agent.last_phase = v["phase"]
    for cat in prof["data_categories"]:
        if not cat["essential"]:
            agent.rights.apply_consent(agent.rights.consent_receipt(cat["id"], True, 1000, 1700000000))
    # Three open alerts (the device's alert book), each with its event.
    for i in range(3):
        episode = AlertEpisode()
        aid, state, _ = agent.alerts.route(episode, episode.abnormal(60000 * i, 1.0), 60000 * i + 3 * DAY_MS * i,
                                        "maintenance", "drain_pump", "drain")  # fmt: skip
        fields = {"explanation_en": v["explanation"], "explanation_de": v["explanation"], "alert": aid, "state": state}
        agent.local_events.push(Event(ANOMALY, "maintenance", "drain_pump", 60000 * i, "drain", fields))
    category = prof["data_categories"][0]["id"]
    for i in range(3):
        agent.sent_log.push({"t_ms": 1000 * i, "id": i, "category": category, "topic": "t/%d" % i,
                             "size": len(v["content"]), "content": v["content"], "status": "confirmed"})  # fmt: skip
    for stock in agent.stock:
        choice = stock.tracker.choice
        choice.product = v["product"]
        choice.retailer = v["retailer"]
    return agent, v


def render_all(agent: Agent, lang: str, v: dict, show_all: bool = True) -> dict:
    """page -> its HTML, for every page of the local page, in `lang`."""
    signed_in = views.View(lang, v["csrf"], v["path"], v["notice"])
    signed_out = views.View(lang, "", v["path"])
    return {
        "login": views.login(signed_out, v["csrf"], v["message"]),
        "error": views.error(signed_out, 400, v["message"]),
        "overview": views.overview(agent, signed_in),
        "privacy": views.privacy(agent, signed_in),
        "data": views.my_data(agent, signed_in, show_all),
        "consumables": views.consumables(agent, signed_in),
        "device": views.device(agent, signed_in),
        "erase": views.erase_confirm(signed_in),
    }
