"""Profiles: the examples are valid, and every kind of mistake gets one clear paragraph and exit 2."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import profile_loader
from agent.cli import main
from agent.core import limits
from tests.conftest import EXAMPLES

WASHER = profile_loader.example("washing_machine")


def _text() -> str:
    with open(WASHER, encoding="utf-8") as f:
        return f.read()


def _check(path: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["profile", "check", path])
    captured = capsys.readouterr()
    return code, captured.err.strip()


@pytest.mark.parametrize("kind", EXAMPLES)
def test_examples_check_and_compile_round_trip(kind: str, tmp_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = profile_loader.example(kind)
    assert main(["profile", "check", path]) == 0
    assert "valid profile" in capsys.readouterr().out
    out = os.path.join(str(tmp_path), kind + ".json")
    assert main(["profile", "compile", path, "-o", out]) == 0
    with open(out, "rb") as f:
        data = f.read()
    assert len(data) <= limits.PROFILE_JSON_MAX_BYTES
    # The compiled form is itself a valid profile, equal to the source.
    assert profile_loader.load(out) == profile_loader.load(path)
    assert json.loads(data)["appliance"]["kind"] == kind


# (description, change to the YAML text, line expected in the message, words expected)
MISTAKES = [
    ("wrong type", ("port: 8883", "port: eighty"), 'uplink.port', "whole number"),
    ("unknown key", ("    sample_hz: 1\n    range: [0, 16]", "    sample_hz: 1\n    smaple_hz: 2\n    range: [0, 16]"),
     "channels[0].smaple_hz", "known keys"),
    ("missing field", ("  model: WM 8 Eco\n", ""), "appliance.model", "required"),
    ("out-of-range rate", ("    sample_hz: 0.5\n", "    sample_hz: 500\n"), "channels[2].sample_hz", "0.01 to 100"),
    ("bad id", ("  - id: drum_vibration", "  - id: Drum Vibration"), "channels[1].id", "identifier"),
    ("dangling category", ("        category: usage_statistics\n        settings: {window_s: 21600}\n  - id: drum",
                           "        category: marketing\n        settings: {window_s: 21600}\n  - id: drum"),
     "channels[0].processors[2].category", "data_categories"),
    ("bad setting", ("settings: {phase: drain, feature: duration}", "settings: {phase: drain, feature: colour}"),
     "channels[0].processors[0].settings.feature", "one of duration, mean, peak"),
    ("unknown phase", ("settings: {phase: drain, feature: duration}", "settings: {phase: rinse, feature: duration}"),
     "channels[0].processors[0].settings.phase", "one of drain, fill, heat, idle, spin, wash"),
    ("duplicate key", ("  port: 8883\n", "  port: 8883\n  port: 1883\n"), "uplink.port", "given twice"),
    ("identifying field", ("fields: [channel, min, mean, max, time]", "fields: [channel, min, mean, max, serial]"),
     "data_categories[2].fields[4]", "does not identify a device, network or person"),
    ("two essentials", ("  - id: maintenance\n", "  - id: maintenance\n    essential: true\n"),
     "data_categories[1].essential", "exactly one essential category"),
]  # fmt: skip


@pytest.mark.parametrize("name,change,field,words", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_mistake_gives_exit_2_and_one_paragraph_naming_file_line_field(
    name: str, change: tuple, field: str, words: str, write_file: object, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = change
    text = _text()
    assert old in text, "test setup: the example changed"
    broken = text.replace(old, new, 1)
    path = write_file("broken.yaml", broken)  # type: ignore[operator]
    code, err = _check(path, capsys)
    assert code == 2
    assert "\n" not in err and "Traceback" not in err
    assert path in err and field in err and words in err
    line = int(err.split(path + ":", 1)[1].split(":", 1)[0])
    # The line named is where the field is in the broken file.
    assert field.split(".")[-1].split("[")[0] in broken.splitlines()[line - 1] or name == "missing field"


def test_yaml_syntax_error_names_the_line(write_file: object, capsys: pytest.CaptureFixture[str]) -> None:
    text = _text()
    line = text[: text.index("  port: 8883\n")].count("\n") + 1
    path = write_file("syntax.yaml", text.replace("  port: 8883\n", "  port: [8883\n"))  # type: ignore[operator]
    code, err = _check(path, capsys)
    assert code == 2 and "not valid YAML" in err and "\n" not in err
    # The unclosed bracket's line, then where the parser gave up (the next line).
    assert err.startswith("wichtel: profile error in %s:%d: not valid YAML: in the list [" % (path, line))
    assert err.endswith("(the parser gave up on line %d)" % (line + 1))


@pytest.mark.parametrize(
    "content,words",
    [("", "empty"), ("- just\n- a list\n", "mapping"), ("wichtel_profile: 2\n", "profile format version")],
)
def test_not_a_profile(content: str, words: str, write_file: object, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _check(write_file("p.yaml", content), capsys)  # type: ignore[operator]
    assert code == 2 and words in err


def test_missing_and_binary_files(tmp_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _check(os.path.join(str(tmp_path), "nope.yaml"), capsys)
    assert code == 2 and "cannot read" in err
    path = os.path.join(str(tmp_path), "bin.yaml")
    with open(path, "wb") as f:
        f.write(b"\xff\xfe\x00garbage")
    code, err = _check(path, capsys)
    assert code == 2 and "UTF-8" in err


def test_console_script_exit_code_without_traceback(write_file: object) -> None:
    path = write_file("bad.yaml", "wichtel_profile: [\n")  # type: ignore[operator]
    proc = subprocess.run([sys.executable, "-m", "agent", "profile", "check", path], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and path in proc.stderr


def test_limit_channels_at_the_bound() -> None:
    doc = yaml.safe_load(_text())
    template = doc["channels"][0]
    doc["channels"] = [dict(template, id="c%d" % i) for i in range(limits.MAX_CHANNELS)]
    doc["consumables"] = []
    doc.pop("cycle_model")  # its features name the channels replaced here
    assert len(profile_loader.core_profile.validate(doc)["channels"]) == limits.MAX_CHANNELS
    doc["channels"].append(dict(template, id="one_too_many"))
    with pytest.raises(profile_loader.ProfileError, match="a list of 1 to 16 items"):
        profile_loader.core_profile.validate(doc)


def test_limit_sample_rate_at_the_bounds() -> None:
    doc = yaml.safe_load(_text())
    for ok in (limits.MIN_SAMPLE_MHZ / 1000, limits.MAX_SAMPLE_MHZ / 1000):
        doc["channels"][0]["sample_hz"] = ok
        profile_loader.core_profile.validate(doc)
    for bad in (limits.MIN_SAMPLE_MHZ / 1000 / 2, limits.MAX_SAMPLE_MHZ / 1000 + 0.001, float("nan"), True):
        doc["channels"][0]["sample_hz"] = bad
        with pytest.raises(profile_loader.ProfileError, match="sample_hz"):
            profile_loader.core_profile.validate(doc)


def test_limit_compiled_profile_size(monkeypatch: pytest.MonkeyPatch) -> None:
    prof = profile_loader.load(WASHER)
    size = len(profile_loader.compile_json(prof))
    monkeypatch.setattr(limits, "PROFILE_JSON_MAX_BYTES", size)
    assert len(profile_loader.compile_json(prof)) == size
    monkeypatch.setattr(limits, "PROFILE_JSON_MAX_BYTES", size - 1)
    with pytest.raises(profile_loader.ProfileFileError, match="fit on a device"):
        profile_loader.compile_json(prof)


# Any YAML document, however odd, gives a valid profile or a ProfileFileError: never another exception.
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12))
_docs = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(doc=_docs)
def test_property_any_document_is_valid_or_a_clear_error(doc: object) -> None:
    text = yaml.safe_dump(doc)
    try:
        profile_loader.load_text(text, "fuzz.yaml")
    except profile_loader.ProfileFileError as e:
        assert str(e).startswith("profile error in fuzz.yaml") and "\n" not in str(e)


@settings(max_examples=200, deadline=None)
@given(
    path=st.lists(
        st.sampled_from(["channels", 0, 1, "uplink", "port", "processors", "settings", "range", "id"]),
        min_size=1,
        max_size=4,
    ),
    value=_scalars,
)
def test_property_mutated_example_is_valid_or_a_clear_error(path: list, value: object) -> None:
    doc = yaml.safe_load(_text())
    node = doc
    for part in path[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return
    try:
        node[path[-1]] = value
    except (IndexError, TypeError):
        return
    try:
        profile_loader.load_text(yaml.safe_dump(doc, allow_unicode=True), "m.yaml")
    except profile_loader.ProfileFileError as e:
        assert "\n" not in str(e) and str(e).startswith("profile error in m.yaml")
