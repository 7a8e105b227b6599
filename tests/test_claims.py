"""The privacy page's claims against the messages the privacy gate really makes, on every
example profile: the fields each category lets out, how coarse its times are, whether it
carries a pseudonym, and the most messages a day. The claims are read from the rendered
page; the messages from the gate, on a simulated appliance with every category on and
every consumable shared. A profile that changes what is sent while the page keeps its text
is caught (the last tests do exactly that)."""

import asyncio
import copy
import html
import json
import re

import pytest

from agent import profile_loader
from agent.core import gate as gate_module
from agent.core.clock import ManualClock
from agent.core.consent import ConsentLedger
from agent.core.consumables import SHARE, ReorderChoice
from agent.core.pipeline import Agent
from agent.local_page import claims, views
from agent.sim import profile_model
from agent.sim.engine import SimDriver

KINDS = ("washing_machine", "coffee_machine", "dishwasher")
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
FAULTS = {"washing_machine": ["pump_clog"], "coffee_machine": ["scale_buildup"], "dishwasher": ["heater_fail"]}


def _agent(profile: dict, sent: list, faults: list) -> Agent:
    sim = profile_model.build(profile, 3, faults, 1, 1)
    drivers = {ch["id"]: SimDriver(sim, ch["id"]) for ch in profile["channels"]}
    choices = {c["id"]: ReorderChoice(SHARE, "A brand", "A shop") for c in profile["consumables"]}
    agent = Agent(profile, "dev-1", drivers, ManualClock(), sim, None, ConsentLedger(profile["data_categories"]),
                  choices=choices)  # fmt: skip
    real = agent.gate._message

    def recorded(*args: object, **kw: object) -> gate_module.Decision:
        decision = real(*args, **kw)  # type: ignore[arg-type]
        if decision.reason == gate_module.SENT:
            sent.append((decision.topic, json.loads(decision.payload)))
        return decision

    agent.gate._message = recorded  # type: ignore[method-assign]
    return agent


def sent_messages(profile: dict, faults: list, days: float = 3.0) -> list:
    """(topic, message) of everything the gate let out while the simulated appliance ran
    `days` with every optional category on and every consumable shared."""
    sent: list = []
    agent = _agent(profile, sent, faults)
    for cat in profile["data_categories"]:
        if not cat["essential"]:
            agent.rights.set_consent(cat["id"], True, 0)
    asyncio.run(agent.run(int(days * DAY_MS)))
    for c in profile["consumables"]:  # "I refilled it": the consumables category speaks too
        agent.refilled(c["id"], int(days * DAY_MS))
    agent.judge_pending()
    return sent


def page_claims(profile: dict, lang: str = "en") -> dict:
    """category id -> the claims its section on the rendered privacy page makes."""
    still = {ch["id"]: type("Still", (), {"read": lambda self, t: 0.0})() for ch in profile["channels"]}
    agent = Agent(profile, "dev-1", still, ManualClock(), None, None, ConsentLedger(profile["data_categories"]))
    page = views.privacy(agent, views.View(lang))
    out = {}
    for cid, body in re.findall(r'<section class="card category" id="cat-([a-z0-9_]+)">(.*?)</section>', page, re.S):
        m = re.search(r'data-fields="([^"]*)" data-grain-s="(\d+)" data-per-day="(\d+)" data-pseudonymous="(yes|no)"',
                      body)  # fmt: skip
        assert m, cid
        words = re.sub(r"<[^>]+>", " ", body)
        out[cid] = {"fields": set(m.group(1).split()), "grain_s": int(m.group(2)), "per_day": int(m.group(3)),
                    "pseudonymous": m.group(4) == "yes", "text": words}  # fmt: skip
    return out


def disagreements(claimed: dict, sent: list, device_id: str = "dev-1") -> list:
    """What the messages show that the page does not say (empty: the page is true)."""
    problems = []
    per_day: dict = {}
    for topic, msg in sent:
        cat = msg["cat"]
        c = claimed.get(cat)
        if c is None:
            problems.append("category %s sends but the page does not show it" % cat)
            continue
        extra = set(msg["data"]) - c["fields"]
        if extra:
            problems.append("%s sends %s, which the page does not list" % (cat, sorted(extra)))
        if "time" in msg["data"] and (not c["grain_s"] or msg["data"]["time"] % c["grain_s"]):
            problems.append("%s sends time %s, finer than the page's %d s" % (cat, msg["data"]["time"], c["grain_s"]))
        if ("pid" in msg) != c["pseudonymous"]:
            problems.append("%s: pseudonym %s but the page says %s" % (cat, "pid" in msg, c["pseudonymous"]))
        if device_id not in topic.split("/"):
            problems.append("%s: the topic %s lacks the device id the page says the server sees" % (cat, topic))
        if msg["kind"] not in ("consent_receipt", "erasure_request"):
            day = msg["data"].get("time", 0) // 86400 if "time" in msg["data"] else None
            key = (cat, day)
            per_day[key] = per_day.get(key, 0) + 1
    for (cat, _), n in per_day.items():
        if n > claimed[cat]["per_day"]:
            problems.append("%s: %d messages in a day, the page says at most %d" % (cat, n, claimed[cat]["per_day"]))
    for cat, c in claimed.items():
        for m in re.finditer(r"\w*anonym\w*", c["text"], re.I):
            if not re.search(r"\b(not|nicht)\s+$", c["text"][: m.start()], re.I):
                problems.append("%s: the page calls it %r, but every message is linked to the device"
                                % (cat, m.group()))  # fmt: skip
    return problems


@pytest.fixture(scope="module", params=KINDS)
def example(request: pytest.FixtureRequest) -> tuple:
    profile = profile_loader.load(profile_loader.example(request.param))
    return request.param, profile, sent_messages(profile, FAULTS[request.param])


def test_the_page_claims_what_the_gate_sends_and_no_more(example: tuple) -> None:
    kind, profile, sent = example
    cats = {msg["cat"] for _, msg in sent}
    # The run exercised every category, so each claim was compared with real messages.
    assert cats == {c["id"] for c in profile["data_categories"]}, (kind, cats)
    for lang in ("en", "de"):
        assert disagreements(page_claims(profile, lang), sent) == [], (kind, lang)


def test_every_field_is_said_in_words_in_both_languages(example: tuple) -> None:
    kind, profile, _ = example
    for lang in ("en", "de"):
        claimed = page_claims(profile, lang)
        for cat in profile["data_categories"]:
            text = claimed[cat["id"]]["text"]
            for field in cat["fields"]:
                assert field in claims.FIELD_WORDS, (kind, field)
                word = claims.FIELD_WORDS[field][0 if lang == "en" else 1]
                assert word in text.replace("&#x27;", "'"), (kind, lang, field)
                assert ">%s<" % field not in text  # no internal name shown as such


def test_a_profile_that_sends_more_than_the_page_says_is_caught() -> None:
    profile = profile_loader.load(profile_loader.example("washing_machine"))
    claimed = page_claims(profile)
    changed = copy.deepcopy(profile)
    maint = next(c for c in changed["data_categories"] if c["id"] == "maintenance")
    maint["fields"] = maint["fields"] + ["explanation_en"]
    problems = disagreements(claimed, sent_messages(changed, ["pump_clog"], 2.0))
    assert any("explanation_en" in p and "does not list" in p for p in problems), problems


def test_a_profile_that_drops_the_pseudonym_or_sends_finer_times_is_caught() -> None:
    profile = profile_loader.load(profile_loader.example("washing_machine"))
    claimed = page_claims(profile)
    changed = copy.deepcopy(profile)
    stats = next(c for c in changed["data_categories"] if c["id"] == "usage_statistics")
    stats["pseudonymous"] = False
    maint = next(c for c in changed["data_categories"] if c["id"] == "maintenance")
    maint["time_grain_s"] = 60
    problems = disagreements(claimed, sent_messages(changed, ["pump_clog"], 2.0))
    assert any("pseudonym False but the page says True" in p for p in problems), problems
    assert any("maintenance sends time" in p and "finer than the page's 3600 s" in p for p in problems), problems


def test_a_page_that_says_anonymous_is_caught() -> None:
    profile = profile_loader.load(profile_loader.example("dishwasher"))
    changed = copy.deepcopy(profile)
    stats = next(c for c in changed["data_categories"] if c["id"] == "usage_statistics")
    stats["purpose"] = {"en": "It is anonymous.", "de": "Sie ist anonym."}
    for lang in ("en", "de"):
        assert any("anonym" in p for p in disagreements(page_claims(changed, lang), [])), lang


def test_the_most_a_day_is_never_below_what_a_day_can_hold() -> None:
    """The number the page says comes from the smallest message the gate can make: a day's
    budget cannot hold more than that many."""
    profile = profile_loader.load(profile_loader.example("washing_machine"))
    for f, cat in zip(claims.facts(profile), profile["data_categories"], strict=True):
        smallest = claims._smallest_message(cat, profile["uplink"]["max_payload"])
        assert f["per_day"] <= cat["daily_budget_bytes"] // smallest
        assert f["per_day"] >= 1


def test_docs_privacy_says_what_the_page_says() -> None:
    """docs/privacy.md's kinds of data are the page's claims for the example washer, in both
    languages (python -m tools.privacy_doc --write makes them)."""
    from tools import privacy_doc

    with open(privacy_doc.OUT, encoding="utf-8") as f:
        text = f.read()
    assert privacy_doc.render(text) == text
    assert "anonymous id" not in text and "random id, not your device" not in text


def _privacy_html(profile: dict, lang: str) -> str:
    """The privacy notice page, unescaped."""
    still = {ch["id"]: type("Still", (), {"read": lambda self, t: 0.0})() for ch in profile["channels"]}
    agent = Agent(profile, "dev-1", still, ManualClock(), None, None, ConsentLedger(profile["data_categories"]))
    return html.unescape(views.notice(agent, views.View(lang)))


@pytest.mark.parametrize("kind", KINDS)
def test_the_privacy_notice_has_what_article_13_asks_in_both_languages(kind: str) -> None:
    profile = profile_loader.load(profile_loader.example(kind))
    notice = profile["privacy_notice"]
    for lang in ("en", "de"):
        html = _privacy_html(profile, lang)
        part = html[html.index('id="notice"') :]
        t = views.TEXTS[lang]
        for label in ("controller", "privacy_contact", "dpo", "purposes", "to_whom", "stored_where", "kept", "rights",
                      "complain"):  # fmt: skip
            assert t[label] in part, (kind, lang, label)
        assert notice["controller"] in part and notice["contact"] in part and notice["authority"][lang] in part
        assert notice["storage"][lang] in part
        for cat, facts in zip(profile["data_categories"], claims.facts(profile), strict=True):
            basis = t["basis_" + views.legal_basis(cat)]
            said = "%s: %s %s %s." % (cat["title"][lang], cat["purpose"][lang], t["basis"], basis)
            assert said in part, (kind, lang, cat["id"])
            assert "%s: %s" % (cat["title"][lang], claims.words(facts, lang)["kept"]) in part
        # The essential category rests on the manufacturer's interest, the optional ones on consent.
        assert t["basis_legitimate_interest"] in part and t["basis_consent"] in part


def test_without_a_notice_in_the_profile_the_page_says_so() -> None:
    profile = copy.deepcopy(profile_loader.load(profile_loader.example("washing_machine")))
    profile["privacy_notice"] = None
    for lang in ("en", "de"):
        assert views.TEXTS[lang]["notice_missing"] in _privacy_html(profile, lang)


def test_a_receipt_names_the_claims_the_user_saw() -> None:
    """The consent receipt's text hash covers what the claims are made of: a profile that
    lets one more field out (or drops the pseudonym) without touching its texts gets a
    different hash, so a receipt never vouches for a text the user did not see."""
    from agent.core.consent import CLAIMED, text_hash

    cat = next(c for c in profile_loader.load(profile_loader.example("washing_machine"))["data_categories"]
               if c["id"] == "usage_statistics")  # fmt: skip
    before = text_hash(cat)
    assert text_hash(copy.deepcopy(cat)) == before
    changes = {"fields": cat["fields"] + ["count"], "pseudonymous": False, "time_grain_s": 3600,
               "recipients": [], "upstream_retention_days": 3650, "legal_basis": "contract"}  # fmt: skip
    assert set(changes) <= set(CLAIMED)
    for key, value in changes.items():
        changed = dict(cat, **{key: value})
        assert text_hash(changed) != before, key
