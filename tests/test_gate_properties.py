"""Properties of the privacy gate and the message encoding, over generated events."""

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from agent import profile_loader
from agent.core.consent import ConsentLedger
from agent.core.encoding import encode
from agent.core.errors import EncodingError
from agent.core.events import KINDS, Event
from agent.core.gate import SENT, PrivacyGate

PROFILE = profile_loader.load(profile_loader.example("washing_machine"))
CATEGORIES = {c["id"]: c for c in PROFILE["data_categories"]}
OPTIONAL = sorted(c for c in CATEGORIES if not CATEGORIES[c]["essential"])
DECLARED = sorted({f for c in CATEGORIES.values() for f in c["fields"]})

_values = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False, max_value=1e299, min_value=-1e299), st.text(max_size=20),
)  # fmt: skip
_events = st.builds(
    Event,
    st.sampled_from(KINDS),
    st.one_of(st.sampled_from(sorted(CATEGORIES)), st.text(max_size=12)),
    st.sampled_from([c["id"] for c in PROFILE["channels"]]),
    st.integers(0, 10**10),
    st.sampled_from(PROFILE["phases"]),
    st.dictionaries(st.sampled_from(DECLARED), _values, max_size=8),
)
# A history: consent switches and events, in time order (times are made increasing).
_steps = st.lists(
    st.one_of(
        st.tuples(st.just("consent"), st.sampled_from(OPTIONAL), st.booleans(), st.integers(0, 10**7)),
        st.tuples(st.just("event"), _events, st.integers(0, 10**7)),
    ),
    max_size=40,
)


@settings(max_examples=400, deadline=None)
@given(steps=_steps)
def test_no_message_ever_leaves_that_the_consent_state_did_not_allow(steps: list) -> None:
    ledger = ConsentLedger(PROFILE["data_categories"], "dev")
    gate = PrivacyGate(PROFILE, "dev", ledger, b"key")
    now = 0
    on_since: dict = {}  # category -> when it was last switched on (absent: off)
    sent_ids: list = []
    for step in steps:
        now += step[-1]
        if step[0] == "consent":
            _, cat, allowed, _ = step
            ledger.set(cat, allowed, now)
            if allowed and cat not in on_since:
                on_since[cat] = now
            elif not allowed:
                on_since.pop(cat, None)
            continue
        event = step[1]
        event.t_ms = now - (event.t_ms % (now + 1))  # sometimes from before a consent
        for name in ("serial", "wifi_ssid", "owner"):
            event.fields[name] = "LEAK-" + name
        decision = gate.judge(event, len(sent_ids) + 1)
        if decision.reason != SENT:
            assert decision.payload == b"" and decision.topic == ""
            continue
        cat = event.category
        assert cat in on_since or CATEGORIES[cat]["essential"], "left without consent"
        assert CATEGORIES[cat]["essential"] or event.t_ms >= on_since[cat], "data from before the consent left"
        assert decision.category == cat and decision.topic.endswith("/" + cat)
        assert len(decision.payload) <= PROFILE["uplink"]["max_payload"]
        message = json.loads(decision.payload)
        expected_keys = {"v", "id", "seq", "cat", "kind", "data"} | (
            {"pid"} if CATEGORIES[cat]["pseudonymous"] else set()
        )
        assert message["cat"] == cat and set(message) == expected_keys
        assert message["id"] == decision.msg_id == len(sent_ids) + 1
        sent_ids.append(message["id"])
        assert set(message["data"]) <= set(CATEGORIES[cat]["fields"])
        assert "LEAK" not in decision.payload.decode("ascii")
        if "time" in message["data"]:
            grain = CATEGORIES[cat]["time_grain_s"]
            assert message["data"]["time"] % grain == 0 and message["data"]["time"] <= event.t_ms // 1000
        if CATEGORIES[cat]["pseudonymous"]:
            assert message["pid"] != "dev" and len(message["pid"]) == 16


@settings(max_examples=200, deadline=None)
@given(events=st.lists(_events, max_size=30))
def test_sequence_numbers_count_only_messages_that_leave(events: list) -> None:
    ledger = ConsentLedger(PROFILE["data_categories"], "dev")
    for cat in OPTIONAL:
        ledger.set(cat, True, 0)
    gate = PrivacyGate(PROFILE, "dev", ledger)
    bodies = [json.loads(d.payload) for d in (gate.judge(e, 7 + i) for i, e in enumerate(events)) if d.reason == SENT]
    seqs = [b["seq"] for b in bodies]
    assert seqs == list(range(1, len(seqs) + 1))
    # Each body carries the id it was made for (the outbox keeps it under that id).
    assert all(b["id"] >= 7 for b in bodies) and len({b["id"] for b in bodies}) == len(bodies)


_json = st.recursive(
    _values,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=15,
)


def _close(a: object, b: object) -> bool:
    if isinstance(a, float):
        return isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-300)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_close, a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return a == b


@settings(max_examples=500, deadline=None)
@given(value=_json)
def test_encoding_is_ascii_json_equal_to_its_input(value: object) -> None:
    try:
        data = encode(value, 4096)
    except EncodingError:
        assert len(json.dumps(value)) > 1000  # only a size limit may refuse valid data
        return
    data.decode("ascii")
    assert _close(value, json.loads(data))


def test_encoding_refuses_what_is_not_json() -> None:
    for bad in (float("nan"), float("inf"), 1e300, -2e300, {1: "int key"}, {"s": {1, 2}}, b"bytes"):
        try:
            encode(bad, 100)
        except EncodingError as e:
            assert "expected" in str(e)
        else:
            raise AssertionError("encoded %r" % (bad,))


def _string_by_characters(text: str) -> str:
    """The encoder's string as first written, character by character (what JSON asks)."""
    escapes = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    out = ['"']
    for ch in text:
        code = ord(ch)
        if 0x20 <= code < 0x7F and ch not in '"\\':
            out.append(ch)
        elif ch in escapes:
            out.append(escapes[ch])
        elif code > 0xFFFF:
            code -= 0x10000
            out.append("\\u%04x\\u%04x" % (0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)))
        else:
            out.append("\\u%04x" % code)
    return "".join(out) + '"'


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=600))
def test_strings_encode_by_bytes_as_they_did_by_characters(text: str) -> None:
    """_string walks UTF-8 bytes (no interned characters on MicroPython); what it writes is
    what the character walk wrote, for every text, surrogates and astral characters too."""
    from agent.core import encoding

    out: list = []
    encoding._string(text, out)
    assert "".join(out) == _string_by_characters(text)
    assert json.loads("".join(out)) == text or any(0xD800 <= ord(c) <= 0xDFFF for c in text)
