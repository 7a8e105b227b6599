"""Properties of the privacy gate and the message encoding, over generated events."""

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from agent import profile_loader
from agent.core.encoding import encode
from agent.core.errors import EncodingError
from agent.core.events import KINDS, Event
from agent.core.gate import SENT, TIME_GRAIN_MS, ConsentView, PrivacyGate

PROFILE = profile_loader.load(profile_loader.example("washing_machine"))
CATEGORIES = {c["id"]: c for c in PROFILE["data_categories"]}
DECLARED = sorted({f for c in CATEGORIES.values() for f in c["fields"]})

_values = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False, max_value=1e299, min_value=-1e299), st.text(max_size=20),
)  # fmt: skip
_events = st.builds(
    Event,
    st.sampled_from(KINDS),
    st.one_of(st.sampled_from(sorted(CATEGORIES)), st.text(min_size=1, max_size=12)),
    st.sampled_from([c["id"] for c in PROFILE["channels"]]),
    st.integers(0, 10**12),
    st.sampled_from(PROFILE["phases"]),
    st.dictionaries(st.sampled_from(DECLARED), _values, max_size=8),
)


@settings(max_examples=500, deadline=None)
@given(event=_events, consented=st.sets(st.sampled_from(sorted(CATEGORIES))))
def test_only_consented_categories_leave_and_only_their_declared_fields(event: Event, consented: set) -> None:
    for name in ("serial", "wifi_ssid", "owner"):
        event.fields[name] = "LEAK-" + name
    consent = ConsentView(PROFILE["data_categories"])
    for cat in consented:
        consent.set(cat, True)
    decision = PrivacyGate(PROFILE, "dev", consent).judge(event)
    if decision.reason != SENT:
        assert decision.payload == b"" and decision.topic == ""
        return
    assert event.category in consented
    assert decision.topic == "wichtel/dev/" + event.category
    assert len(decision.payload) <= PROFILE["uplink"]["max_payload"]
    message = json.loads(decision.payload)
    assert set(message) == {"v", "seq", "kind", "data"}
    declared = set(CATEGORIES[event.category]["fields"])
    assert set(message["data"]) <= declared
    if "time_min" in message["data"]:
        assert message["data"]["time_min"] == event.t_ms // TIME_GRAIN_MS
    # Nothing undeclared leaks, in any field.
    assert "LEAK" not in decision.payload.decode("ascii")


@settings(max_examples=300, deadline=None)
@given(consented=st.sets(st.sampled_from(sorted(CATEGORIES))), events=st.lists(_events, max_size=20))
def test_sequence_numbers_count_only_messages_that_leave(consented: set, events: list) -> None:
    consent = ConsentView(PROFILE["data_categories"])
    for cat in consented:
        consent.set(cat, True)
    gate = PrivacyGate(PROFILE, "dev", consent)
    seqs = [json.loads(d.payload)["seq"] for d in (gate.judge(e) for e in events) if d.reason == SENT]
    assert seqs == list(range(1, len(seqs) + 1))


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
