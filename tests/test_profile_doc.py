"""docs/profile.md against the schema the validator uses: the file is what the generator makes of
the schema and agent/profile_reference.py, every field is documented, the examples pass their
validators, the walkthrough's profiles give the errors the page shows, and the profile's limits
hold at their bounds."""

import copy
import os
import re
import subprocess
import sys
from collections.abc import Callable

import pytest
import yaml

from agent import profile_reference as ref
from agent.core import limits
from agent.core import profile as core_profile
from agent.core.errors import ProfileError
from agent.core.schema import Num, OneOf
from agent.profile_loader import ProfileFileError, load_text
from tools import profile_doc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "profile.md")


def _doc() -> str:
    with open(DOC, encoding="utf-8") as f:
        return f.read()


def test_the_page_is_what_the_schema_and_the_reference_give() -> None:
    assert _doc() == profile_doc.document(), "docs/profile.md is stale: run python -m tools.profile_doc --write"
    assert profile_doc.main(["--check"]) == 0


def test_every_schema_field_has_an_entry_and_every_entry_a_field() -> None:
    assert profile_doc.coverage() == ([], [], [], [])
    paths = [f.path for f in profile_doc.fields()]
    assert len(paths) == len(set(paths)) >= 60
    # The rows the page shows are the schema's: each section's keys, in the validator's order.
    cat = dict(profile_doc.sections())["data_categories[]"]
    assert [f.path.rsplit(".", 1)[1] for f in cat] == list(core_profile._CATEGORY.required) + list(
        core_profile._CATEGORY.optional
    )


def test_a_field_added_to_the_schema_without_an_entry_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The intruder: a new optional field of data categories, as a schema change would add it."""
    optional = dict(core_profile._CATEGORY.optional, weight=(Num(0, 9, integer=True), 5))
    monkeypatch.setattr(core_profile._CATEGORY, "optional", optional)
    assert profile_doc.coverage()[0] == ["data_categories[].weight"]
    with pytest.raises(KeyError, match=r"fields without an entry \['data_categories\[\]\.weight'\]"):
        profile_doc.document()


def test_an_entry_without_a_field_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ref.FIELDS, "uplink.qos", {"doc": "gone", "example": 1})
    assert profile_doc.coverage()[1] == ["uplink.qos"]
    with pytest.raises(KeyError, match="entries without a field"):
        profile_doc.document()


def test_a_changed_range_or_default_makes_the_page_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    optional = dict(core_profile._CONSUMABLE.optional, lead_time_days=(Num(0, 90, "days"), 5))
    monkeypatch.setattr(core_profile._CONSUMABLE, "optional", optional)
    text = profile_doc.document()
    assert text != _doc()
    assert "| `lead_time_days` | number | `5` | 0 to 90 | days |" in text
    assert profile_doc.main(["--check"]) == 1


def test_every_example_passes_its_fields_validator() -> None:
    for f in profile_doc.fields():
        example = ref.FIELDS[f.path]["example"]
        check = f.check
        if isinstance(check, OneOf) and check.choices == (profile_doc.PHASE,):
            check = OneOf((example,))  # the profile's phases, whatever they are
        check(example, tuple(f.path.split(".")))  # ProfileError fails the test, naming the field


def test_an_example_the_validator_refuses_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ref.FIELDS, "uplink.port", {"doc": "The port.", "example": 70000})
    with pytest.raises(ProfileError, match="expected a whole number from 1 to 65535"):
        test_every_example_passes_its_fields_validator()


def test_a_unit_is_written_once() -> None:
    """A unit the validator names is not repeated (and so cannot contradict) in the reference."""
    for f in profile_doc.fields():
        if isinstance(f.check, Num) and f.check.unit:
            assert "unit" not in ref.FIELDS[f.path], f.path
    assert "| `sample_hz` | number | required | 0.01 to 100 | samples per second |" in _doc()


def _console_blocks(text: str) -> list:
    """(printed, exit code) of each `wichtel profile check` the page shows, in order."""
    blocks = re.findall(r"```console\n\$ wichtel profile check \S+\n(.*?)\n\$ echo \$\?\n(\d+)\n```", text, re.S)
    return [(printed, int(code)) for printed, code in blocks]


def test_each_walkthrough_step_gives_what_the_page_shows() -> None:
    shown = _console_blocks(_doc())
    assert len(shown) == len(ref.WALKTHROUGH) == 7
    for step, (printed, code) in zip(ref.WALKTHROUGH, shown, strict=True):
        assert profile_doc.check_output(ref.profile_at(step), ref.WALKTHROUGH_FILE) == (code, printed), step["title"]
    # Broken until the last step, each for the reason its text gives.
    assert [code for _, code in shown] == [2] * 6 + [0]
    wanted = ["the file is empty", "phases: got nothing", "channels[0].sample_rate: got 'sample_rate'",
              "data_categories: got nothing", "data_categories[1].fields[8]: got 'serial'",
              "consumables[0].dose_per_cycle: got nothing"]  # fmt: skip
    for (printed, _), words in zip(shown, wanted, strict=False):
        assert printed.startswith("wichtel: profile error in kettle.yaml") and words in printed, (printed, words)
    assert shown[-1][0] == "kettle.yaml: valid profile for Kesselwerk K 2 (1 channels, 3 data categories)"


def _final_profile_on_the_page() -> str:
    text = _doc()
    block = re.search(r"The whole profile, as it ends:\n\n```yaml\n(.*?)```\n", text, re.S)
    assert block is not None
    return block.group(1)


def test_the_walkthroughs_profile_validates_with_the_real_command(tmp_path: object) -> None:
    final = _final_profile_on_the_page()
    assert final == ref.profile_at(ref.WALKTHROUGH[-1])
    path = os.path.join(str(tmp_path), "kettle.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(final)
    run = subprocess.run([sys.executable, "-m", "agent", "profile", "check", path], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)  # fmt: skip
    assert run.returncode == 0 and "valid profile for Kesselwerk K 2" in run.stdout, run.stderr
    prof = load_text(final)
    assert prof["consumables"][0]["dose_per_cycle"] == 1.2 and prof["channels"][0]["sample_hz"] == 1


# -- the profile's limits, at their bounds (the ranges the page gives) ---------------------------
def _kettle() -> dict:
    doc = yaml.safe_load(ref.profile_at(ref.WALKTHROUGH[-1]))
    assert isinstance(doc, dict)
    return doc


def _phases(doc: dict, n: int) -> None:
    doc["phases"] = doc["phases"] + ["p" + str(i) for i in range(n - len(doc["phases"]))]


def _consumables(doc: dict, n: int) -> None:
    doc["consumables"] = [dict(doc["consumables"][0], id="f" + str(i)) for i in range(n)]


def _categories(doc: dict, n: int) -> None:
    extra = [dict(doc["data_categories"][2], id="c" + str(i)) for i in range(n - len(doc["data_categories"]))]
    doc["data_categories"] = doc["data_categories"] + extra


def _fields(doc: dict, n: int) -> None:
    doc["data_categories"][1]["fields"] = ["f" + str(i) for i in range(n)]
    doc["data_categories"][1]["round"] = {}


def _id_len(doc: dict, n: int) -> None:
    doc["channels"][0]["id"] = "c" * n


def _text_len(doc: dict, n: int) -> None:
    doc["appliance"]["maker"] = "K" * n


@pytest.mark.parametrize(
    ("grow", "bound", "where"),
    [
        (_phases, limits.MAX_PHASES, "phases"),
        (_consumables, limits.MAX_CONSUMABLES, "consumables"),
        (_categories, limits.MAX_CATEGORIES, "data_categories"),
        (_fields, limits.MAX_FIELDS_PER_CATEGORY, "data_categories[1].fields"),
        (_id_len, limits.MAX_ID_LEN, "channels[0].id"),
        (_text_len, limits.MAX_TEXT_LEN, "appliance.maker"),
    ],
    ids=["phases", "consumables", "categories", "fields", "id_length", "text_length"],
)
def test_a_profile_limit_holds_at_its_bound(grow: Callable[[dict, int], None], bound: int, where: str) -> None:
    at = _kettle()
    grow(at, bound)
    core_profile.validate(copy.deepcopy(at))
    over = _kettle()
    grow(over, bound + 1)
    with pytest.raises(ProfileError) as e:
        core_profile.validate(over)
    assert str(e.value).startswith(where + ": ") and str(bound) in str(e.value), str(e.value)


def test_the_walkthroughs_broken_steps_fail_as_files_too() -> None:
    """The same profiles through the YAML loader: the error names the file and a line."""
    for step in ref.WALKTHROUGH[1:-1]:
        with pytest.raises(ProfileFileError, match=r"^profile error in kettle\.yaml:\d+: "):
            load_text(ref.profile_at(step), "kettle.yaml")
