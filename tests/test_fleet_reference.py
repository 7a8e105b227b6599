"""The fleet's reference from healthy units' summaries (fleet/reference.py), and the fault
benchmark that judges the detectors with it (bench/faults.py, a short run)."""

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet import reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_summary_is_the_median_and_the_scaled_mad() -> None:
    assert reference.summary([1.0, 2.0, 3.0, 4.0, 100.0]) == [3.0, pytest.approx(1.4826), 5]


def test_combine_holds_both_the_spread_within_units_and_between_them() -> None:
    units = [{"m/0/drain": [180.0 + d, 3.0, 40]} for d in (-4, -2, 0, 2, 4)]
    ref = reference.combine(units)
    centre, spread = ref["m/0/drain"]
    assert centre == 180.0
    between = 1.4826 * 2.0  # MAD of the medians -4..4 is 2
    assert spread == pytest.approx((3.0**2 + between**2) ** 0.5)


def test_a_feature_too_few_units_report_is_left_out_and_none_at_all_is_an_error() -> None:
    units = [{"a/0/x": [1.0, 0.1, 9], "b/1/y": [2.0, 0.1, 9]} for _ in range(5)]
    units[0] = {"a/0/x": [1.0, 0.1, 9]}
    assert set(reference.combine(units)) == {"a/0/x"}  # b/1/y: four units only
    with pytest.raises(reference.ReferenceError, match="at least 5 units"):
        reference.combine(units[:4])


@pytest.mark.parametrize("bad", [[1.0, -0.1, 3], [1.0, 0.1, 0], [float("nan"), 0.1, 3], [1.0, 0.1], "x"])
def test_a_malformed_summary_is_refused_naming_the_unit_and_key(bad: object) -> None:
    with pytest.raises(reference.ReferenceError, match=r"unit 2, k"):
        reference.combine([{"k": [1.0, 0.1, 3]}] * 2 + [{"k": bad}] + [{"k": [1.0, 0.1, 3]}] * 3)


@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(0, 1e6), st.integers(1, 10**6)), min_size=5, max_size=30))
def test_property_the_reference_lies_within_the_units_and_its_spread_covers_theirs(units: list) -> None:
    ref = reference.combine([{"k": list(u)} for u in units])["k"]
    medians = [u[0] for u in units]
    assert min(medians) <= ref[0] <= max(medians)
    assert ref[1] >= reference.median([u[1] for u in units]) - 1e-9


def test_apply_sets_each_processors_reference_by_channel_and_index() -> None:
    doc = {"channels": [{"id": "m", "processors": [{"kind": "cycle_feature"}, {"kind": "anomaly"}]}]}
    out = reference.apply(doc, {"m/1/drain": [0.44951, 0.039871], "m/1/spin": [3.6, 0.3]})
    assert "reference" not in out["channels"][0]["processors"][0]
    assert out["channels"][0]["processors"][1]["reference"] == {"drain": [0.4495, 0.03987], "spin": [3.6, 0.3]}


@pytest.mark.heavy  # about a minute of simulation on one core
def test_the_fault_benchmark_writes_its_keys_for_a_short_run(tmp_path: "os.PathLike[str]") -> None:
    out = os.path.join(str(tmp_path), "faults.json")
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "faults.py"), "--appliances", "coffee_machine",
         "--faults", "scale_buildup,stuck", "--seeds", "2", "--healthy-seeds", "1", "--healthy-hours", "12",
         "--observe-h", "6", "--workers", "1", "--json", out],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with open(out) as fh:
        figures = json.load(fh)
    for key in ("detected_share", "detected_share_from_install", "median_hours_to_detect", "false_alerts_per_1000h",
                "alerts_per_episode"):  # fmt: skip
        assert isinstance(figures[key], (int, float)), key
    assert figures["fault_runs"] == 4 and set(figures["by_fault"]) == {"coffee_machine:scale_buildup",
                                                                      "coffee_machine:stuck"}  # fmt: skip
    assert 0 <= figures["detected_share_from_install"] <= 1 and figures["healthy_hours"] > 12
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == figures
