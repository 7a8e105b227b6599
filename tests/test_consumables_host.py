"""Consumables on the host: state on flash (restart, corruption), the user's reorder choice,
profile checks, the demo's reorder suggestion and the benchmark's output."""

import functools
import json
import math
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import profile_loader
from agent.cli import main
from agent.core import consumables, usage
from agent.core.errors import StateError
from agent.device_data import DeviceData
from tests.benchmarks import run_bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WASHER = profile_loader.example("washing_machine")
DETERGENT = next(c for c in profile_loader.load(WASHER)["consumables"] if c["id"] == "detergent")


def _learned_tracker() -> consumables.ConsumableTracker:
    tr = consumables.ConsumableTracker(DETERGENT)
    level = 1500.0
    for day in range(40):
        for use in range(1 + day % 3):
            level = max(0.0, level - 60.0)
            tr.reading(day * consumables.DAY_MS + (8 + 4 * use) * 3_600_000, level)
        if level < 300:
            level = 1500.0
    return tr


@functools.cache
def _learned_state_json() -> str:
    """The learned tracker's saved state, as JSON: made once, a fresh copy per example."""
    return json.dumps(_learned_tracker().to_state())


_SCALAR = (
    st.sampled_from([-1, -1e-9, 0, 1e9, float("nan"), float("inf"), -float("inf"), 367.0])
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=True)
    | st.none()
    | st.booleans()
    | st.text(max_size=8)
)
_JSON = st.one_of(
    _SCALAR,
    _SCALAR,
    _SCALAR,
    st.recursive(
        _SCALAR,
        lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=6),
        max_leaves=20,
    ),
)


@settings(max_examples=1000, deadline=None)
@given(data=st.data(), value=_JSON)
def test_a_damaged_tracker_state_is_refused_whole_or_taken_sound(data: st.DataObject, value: object) -> None:
    """Any one part of a saved tracker state (a key, an item of the usage model, one bin of
    the long memory, ...) replaced by any JSON value: the restore either refuses it with a
    StateError and leaves the tracker as it was, or takes a state the tracker can work
    with (a level within capacity, forecasts and readings go on)."""
    state = json.loads(_learned_state_json())
    node: object = state
    while True:  # walk down the real structure, stopping at some depth
        keys = sorted(node) if isinstance(node, dict) else list(range(len(node)))  # type: ignore[arg-type]
        key = data.draw(st.sampled_from(keys))
        child = node[key]  # type: ignore[index]
        if not isinstance(child, (dict, list)) or not child or data.draw(st.booleans()):
            node[key] = value  # type: ignore[index]
            break
        node = child
    tr = consumables.ConsumableTracker(DETERGENT)
    before = json.dumps(tr.to_state(), sort_keys=True)
    try:
        tr.restore(state)
    except StateError as e:
        assert "not valid" in str(e)
        assert json.dumps(tr.to_state(), sort_keys=True) == before  # nothing taken over
        return
    assert 0 <= tr.level <= tr.capacity and tr.reorder_age >= 0 and 0 <= tr.used_today
    assert 0 <= tr.usage.seen <= 366 and all(x >= 0 for x in tr.usage.tail)
    assert all(x >= 0 or x == -1.0 for x in tr.usage.hist) and 0 <= tr.choice.risk <= 0.5
    tr.forecast()
    tr.reading(10 * consumables.DAY_MS, tr.level)
    tr.tick(12 * consumables.DAY_MS)


def _load_state(path: str) -> tuple:
    """The state file at path as the device reads it: (data, problem)."""
    return DeviceData(os.path.dirname(path)).load_state()


def _save_state(path: str, data: dict) -> None:
    assert DeviceData(os.path.dirname(path)).save_state(data) is None


def test_state_round_trip_and_atomic_replace(tmp_path: str) -> None:
    path = os.path.join(str(tmp_path), "state.json")
    assert _load_state(path) == (None, None)
    _save_state(path, {"consumables": {"detergent": {"level": 12.5}}})
    assert _load_state(path) == ({"consumables": {"detergent": {"level": 12.5}}}, None)
    assert os.listdir(str(tmp_path)) == ["state.json"]  # no temporary file left behind


@pytest.mark.parametrize(
    "damage,words",
    [
        (lambda t: t[: len(t) // 2], "corrupted"),
        (lambda t: t.replace("12.5", "99.5"), "checksum mismatch"),
        (lambda t: t.replace('"format": 1', '"format": 7'), "unknown format"),
        (lambda t: "\x00\x01garbage", "corrupted"),
    ],
)
def test_corrupted_state_is_reported_not_trusted(damage: object, words: str, tmp_path: str) -> None:
    path = os.path.join(str(tmp_path), "state.json")
    _save_state(path, {"consumables": {"detergent": {"level": 12.5}}})
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(damage(text))  # type: ignore[operator]
    data, problem = _load_state(path)
    assert data is None and words in problem


def test_learned_state_survives_a_restart_and_corruption(tmp_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    state = os.path.join(str(tmp_path), "state.json")
    args = ["run", "--profile", WASHER, "--simulate", "--data-dir", str(tmp_path), "--seed", "3"]
    # A day and a bit: the first day's use is learned.
    assert main([*args, "--hours", "26", "--reorder-choice", "detergent=share:EcoWash@Corner shop"]) == 0
    saved, problem = _load_state(state)
    assert problem is None
    learned = saved["consumables"]["detergent"]
    assert learned["usage"][0] > 0 and learned["choice"]["mode"] == "share"
    capsys.readouterr()
    # The next run starts from what was learned (no "fresh" message) and keeps the choice.
    assert main([*args, "--hours", "1"]) == 0
    assert "State:" not in capsys.readouterr().out
    assert _load_state(state)[0]["consumables"]["detergent"]["choice"]["product"] == "EcoWash"
    with open(state, "w") as f:
        f.write('{"format": 1, "sha256": "00", "data": "{}"}')
    assert main([*args, "--hours", "1"]) == 0
    assert "State: " + state + " is corrupted (checksum mismatch); the device starts with fresh models." in (
        capsys.readouterr().out
    )


def test_a_reorder_choice_for_an_unknown_consumable_or_mode(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["run", "--profile", WASHER, "--simulate", "--hours", "1"]
    assert main([*base, "--reorder-choice", "milk=share"]) == 2
    assert "has no consumable 'milk'" in capsys.readouterr().err
    assert main([*base, "--reorder-choice", "detergent=always"]) == 2
    assert "is not one of off, remind, share" in capsys.readouterr().err


def test_profile_rejects_a_dose_larger_than_capacity(write_file: object, capsys: pytest.CaptureFixture[str]) -> None:
    with open(profile_loader.example("coffee_machine"), encoding="utf-8") as f:
        text = f.read().replace("dose_per_cycle: 0.4", "dose_per_cycle: 900")
    path = write_file("coffee.yaml", text)  # type: ignore[operator]
    assert main(["profile", "check", path]) == 2
    err = capsys.readouterr().err
    assert "consumables[1].dose_per_cycle: got 900 (int); expected at most the capacity 500" in err


def test_consumables_benchmark_writes_the_interface(tmp_path: str) -> None:
    stdout, result = run_bench("consumables.py", str(tmp_path), "--households", "12", "--plot",
                               os.path.join(str(tmp_path), "frontier.svg"))  # fmt: skip
    assert "stock-out years" in stdout
    assert set(result) == {"detergent", "coffee_beans", "descaler", "salt", "rinse_aid", "run"}
    del result["run"]
    for name, r in result.items():
        for key in ("stockout_share", "stock_left_days", "floor_stockout_share", "dominated_settings",
                    "empty_date_error_days_median", "sensed", "meets_rule_target", "meets_reference_target",
                    "meets_reference_goal", "meets_dominance_target", "meets_empty_date_target"):  # fmt: skip
            assert key in r, (name, key)
        assert 0 <= r["stockout_share"] <= 1
        assert set(r["settings"]) == {"early", "balanced", "late"}
        assert r["settings"]["early"]["stock_left_days"] == r["stock_left_days"]  # the default
        assert sorted(float(k) for k in r["rules"]) == [round(0.05 * i, 2) for i in range(1, 13)]
        # Bisection found the fixed rule that leaves what Wichtel leaves.
        rule = r["rule_equal_stock"]
        assert 0 < rule["threshold"] < 1
        assert abs(rule["stock_left_days"] - r["stock_left_days"]) <= 0.05 + 0.01 * r["stock_left_days"], rule
        # The reference at equal stock lies between its two neighbours in k.
        ref = r["reference_equal_stock"]
        if ref is not None:
            lo, hi = (r["reference"]["%g" % k] for k in ref["between_k"])
            assert min(lo["stockout_share"], hi["stockout_share"]) <= ref["stockout_share"]
            assert ref["stockout_share"] <= max(lo["stockout_share"], hi["stockout_share"])
        # More stock kept at ordering leaves more stock at delivery; nothing runs out less than the floor.
        left = [r["reference"][k]["stock_left_days"] for k in ("1", "1.5", "2", "3", "4")]
        assert left == sorted(left), left
        assert all(r["floor_stockout_share"] <= c["stockout_share"] for c in r["reference"].values())
        assert r["dominated_settings"] == [
            s for s, f in r["settings"].items()
            if any(g["stockout_share"] < f["stockout_share"] and g["stock_left_days"] < f["stock_left_days"]
                   for g in r["rules"].values())
        ]  # fmt: skip
        assert r["sensed"] == (name != "descaler")
        assert (r["meets_empty_date_target"] is None) == (not r["sensed"])
        dates, moments = r["empty_date_error_days_median"], r["empty_moment_error_days_median"]
        assert (dates is None) == (moments is None)
        assert dates is None or float(dates).is_integer() or float(2 * dates).is_integer()
    with open(os.path.join(str(tmp_path), "frontier.svg"), encoding="utf-8") as f:
        svg = f.read()
    assert svg.startswith("<svg") and svg.count("<polyline") == 10


def test_the_page_figures_are_written_from_the_benchmark_s_settings(tmp_path: str) -> None:
    """tools/reorder_figures.py turns the benchmark's per-setting figures into the module the
    consumables page reads; a run without them is refused in words."""
    import importlib.util
    import json

    from tools import reorder_figures

    bench = {"run": {"households": 7}, "salt": {"settings": {
        "early": {"risk": 0.001, "stockout_share": 0.00049, "stock_left_days": 21.66},
        "late": {"risk": 0.02, "stockout_share": 0.0531, "stock_left_days": 7.49}}}}  # fmt: skip
    src = os.path.join(tmp_path, "bench.json")
    out = os.path.join(tmp_path, "figures.py")
    with open(src, "w") as fh:
        json.dump(bench, fh)
    assert reorder_figures.main([src, "--out", out, "--date", "today"]) == 0
    spec = importlib.util.spec_from_file_location("figures", out)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    assert module.HOUSEHOLDS == 7
    assert module.FIGURES == {"salt": {"0.001": (0.0005, 21.7), "0.02": (0.0531, 7.5)}}
    del bench["salt"]["settings"]
    with open(src, "w") as fh:
        json.dump(bench, fh)
    with pytest.raises(SystemExit, match="salt: no per-setting figures"):
        reorder_figures.main([src, "--out", out])


def _model_from(days: list) -> "usage.UsageModel":
    m = usage.UsageModel(3)
    for d, used in enumerate(days):
        m.add_day(d, used)
    return m


_DAYS = st.lists(
    st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=500.0, allow_nan=False, width=32)),
    min_size=3,
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(_DAYS, st.integers(min_value=1, max_value=30))
def test_ratio_bound_is_never_below_the_largest_window(days: list, span: int) -> None:
    """p_run_out skips the windows when this bound says none can matter: it must hold for
    every history, vacations and long quiet runs included."""
    m = _model_from(days)
    if m.mean <= 0:
        return
    ratios = m.window_ratios(span)
    if len(ratios):
        assert m.ratio_bound(span) >= ratios[-1]


@settings(max_examples=300, deadline=None)
@given(_DAYS, st.floats(min_value=0.0, max_value=3000.0), st.floats(min_value=0.0, max_value=10.0),
       st.floats(min_value=0.0, max_value=300.0))  # fmt: skip
def test_p_run_out_is_the_same_with_or_without_the_shortcut(days: list, level: float, lead: float, used: float) -> None:
    """The bound only saves work: forced off (an infinite bound), every chance is equal."""
    m = _model_from(days)
    fast = usage.p_run_out(level, m, lead, len(days), used)
    m._bound, m._bound_len = math.inf, max(1, math.ceil(lead))
    assert usage.p_run_out(level, m, lead, len(days), used) == fast


def _surge_share_every_bin(m: "usage.UsageModel", x: float) -> float:
    """surge_share as first written: every bin visited, in order."""
    if x <= 1.0:
        return 1.0
    own = 0.0
    bins = len(m.tail)
    for b in range(bins):
        lo = 1.0 + 0.25 * b
        hi = lo + 0.25 if b < bins - 1 else lo + 1.0
        if x <= lo:
            own += m.tail[b]
        elif x < hi:
            own += m.tail[b] * (hi - x) / (hi - lo)
    prior = usage._PRIOR_SHARE * math.exp(-(x - 1.0) / usage._PRIOR_SCALE)
    return max(prior, (own + usage._PRIOR_WINDOWS * prior) / (m.seen + usage._PRIOR_WINDOWS))


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.floats(min_value=0.0, max_value=50.0, width=32), min_size=16, max_size=16),
    st.one_of(st.floats(min_value=0.0, max_value=8.0), st.sampled_from([1.0 + 0.25 * b for b in range(25)]),
              st.just(math.inf)),
)  # fmt: skip
def test_surge_share_skips_only_bins_that_add_nothing(tail: list, x: float) -> None:
    m = usage.UsageModel(3)
    for b, v in enumerate(tail):
        m.tail[b] = v
    m.seen = sum(tail) + 1.0
    assert m.surge_share(x) == _surge_share_every_bin(m, x)
