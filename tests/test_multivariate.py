"""Several sensors together (agent/core/multivariate.py): limits that hold their false-alarm
rate, a broken correlation that no single feature shows, a reference that knows a fault
from the first cycle, explanations, the simulated washing machine, and MicroPython."""

import copy
import json
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.core import multivariate as mv
from agent.core.errors import ConfigError, InputError
from bench import multivariate as bench

P = 6
MEAN = [10.0, 20.0, 5.0, 8.0, 50.0, 3.0]
SD = [1.0, 2.0, 0.5, 0.8, 5.0, 0.3]
# Two hidden causes drive features 0-2 and 3-4; feature 5 is on its own. Loadings are
# in standard deviations; each feature's own noise makes its variance 1.
LOADINGS = [(0.95, 0.0), (0.9, 0.1), (0.85, -0.1), (0.0, 0.9), (0.1, 0.85), (0.0, 0.0)]


def _corr() -> list:
    """The model's correlations above the diagonal, row by row (the reference format)."""
    out = []
    for i in range(P):
        for j in range(i + 1, P):
            out.append(LOADINGS[i][0] * LOADINGS[j][0] + LOADINGS[i][1] * LOADINGS[j][1])
    return out


REFERENCE = {"mean": MEAN, "sd": SD, "corr": _corr()}


def _healthy(rng: random.Random, shift: dict | None = None) -> list:
    """One vector of the known model; shift: feature -> added standard deviations."""
    f = (rng.gauss(0, 1), rng.gauss(0, 1))
    out = []
    for i in range(P):
        a, b = LOADINGS[i]
        own = math.sqrt(max(0.0, 1.0 - a * a - b * b))
        z = a * f[0] + b * f[1] + own * rng.gauss(0, 1) + (shift or {}).get(i, 0.0)
        out.append(MEAN[i] + SD[i] * z)
    return out


def _over_rates(model: mv.PcaMonitor, rng: random.Random, n: int) -> tuple:
    t2 = q = 0
    for _ in range(n):
        verdict = model.judge(_healthy(rng))
        t2 += verdict.t2 > verdict.t2_limit
        q += verdict.q > verdict.q_limit
    return t2 / n, q / n


# -- (a) limits and a broken correlation ------------------------------------------------
def test_normal_cycles_stay_within_the_limits_at_the_declared_rate_with_the_true_model() -> None:
    # The reference is the true model, counted as many cycles: each statistic's limit should
    # be passed by alarm_rate / 2 of healthy cycles (0.5% here).
    model = mv.PcaMonitor(P, components=2, alarm_rate=0.01, confirm=1, reference=REFERENCE,
                          reference_cycles=5000, memory=5000, noise_floor=0.0)  # fmt: skip
    t2, q = _over_rates(model, random.Random(1), 4000)
    assert 0.002 <= t2 <= 0.01, t2
    assert 0.002 <= q <= 0.01, q


def test_a_model_learned_from_30_cycles_keeps_about_its_false_alarm_rate() -> None:
    """Learned online, judged cycles over a limit are about alarm_rate (1%) of the healthy
    ones, and ALARM (two in a row) far fewer."""
    rng = random.Random(2)
    over = alarms = judged = 0
    for _ in range(20):
        model = mv.PcaMonitor(P, alarm_rate=0.01, learn_cycles=30)
        for _ in range(30):
            assert model.judge(_healthy(rng)).status == mv.LEARNING
        for _ in range(200):
            verdict = model.judge(_healthy(rng))
            judged += 1
            over += verdict.status != mv.NORMAL
            alarms += verdict.status == mv.ALARM
    assert over / judged < 0.025, over / judged
    assert alarms / judged < 0.003, alarms / judged


def test_a_shift_that_breaks_the_correlation_is_caught_by_q_while_each_feature_looks_usual() -> None:
    # Features 0 and 1 move together (r = 0.86); here 0 is up and 1 down by 1.5 sd each:
    # each is well within its own range, and a per-feature detector sees nothing.
    model = mv.PcaMonitor(P, alarm_rate=0.01, reference=REFERENCE, reference_cycles=200)
    odd = list(MEAN)
    odd[0] += 1.5 * SD[0]
    odd[1] -= 1.5 * SD[1]
    verdict = model.judge(odd)
    assert max(abs(z) for z in model.z) < 2.0, list(model.z)
    assert verdict.q > verdict.q_limit, (verdict.q, verdict.q_limit)
    assert verdict.t2 < verdict.t2_limit, (verdict.t2, verdict.t2_limit)
    assert verdict.status == mv.SUSPICIOUS and not verdict.taught
    assert model.judge(odd).status == mv.ALARM
    # The same deviations in the usual direction (both up) are unremarkable.
    usual = list(MEAN)
    usual[0] += 1.5 * SD[0]
    usual[1] += 1.5 * SD[1]
    assert model.judge(usual).status == mv.NORMAL


# -- (b) with and without a reference ------------------------------------------------------
def test_a_fault_from_the_first_cycle_is_flagged_with_a_reference_and_learned_without() -> None:
    """The reference knows the healthy units; a unit without one can only learn itself, and
    a fault it has from its first cycle becomes its normal (docs: 'where it fails')."""
    rng = random.Random(3)
    faulty = [_healthy(rng, {2: 4.0, 4: 3.0}) for _ in range(60)]
    seeded = mv.PcaMonitor(P, reference=REFERENCE)
    statuses = [seeded.judge(v).status for v in faulty[:5]]
    assert statuses[0] == mv.SUSPICIOUS and statuses[1:] == [mv.ALARM] * 4
    assert seeded.taught == 0  # the fault did not teach it
    learner = mv.PcaMonitor(P, learn_cycles=30)
    statuses = [learner.judge(v).status for v in faulty]
    assert statuses[:30] == [mv.LEARNING] * 30
    assert statuses[30:].count(mv.NORMAL) >= 28


def test_the_units_own_cycles_gradually_outweigh_the_reference() -> None:
    # This unit runs 20% above the reference's mean on feature 5 (its own normal, within 2 sd
    # of the fleet): at first suspicious, after some normal cycles of its own it is normal.
    rng = random.Random(4)
    model = mv.PcaMonitor(P, reference=REFERENCE, reference_cycles=30, alarm_rate=0.01)
    assert model.n == 30 and model.fitted
    for _ in range(100):
        model.judge(_healthy(rng, {5: 1.0}))
    assert model.taught > 90
    assert abs(model.mean[5] - (MEAN[5] + SD[5])) < 0.3 * SD[5]


# -- (c) explanations ---------------------------------------------------------------------
def test_contributions_name_the_features_and_their_direction() -> None:
    model = mv.PcaMonitor(P, reference=REFERENCE)
    vec = list(MEAN)
    vec[3] += 5 * SD[3]  # 8 -> 12: +50%
    vec[5] -= 5 * SD[5]  # 3 -> 1.5: -50%
    assert model.judge(vec).status == mv.SUSPICIOUS
    top = model.explain(3)
    by_feature = {t[0]: t for t in top}
    # 3 went up, 5 down; 4, which moves with 3, stayed: it drove the verdict by not following.
    assert set(by_feature) == {3, 4, 5} and top[0][0] == 3
    assert [by_feature[i][2] for i in (3, 4, 5)] == [1, 0, -1]
    assert by_feature[3][3] == pytest.approx(50.0, abs=0.1) and by_feature[5][3] == pytest.approx(-50.0, abs=0.1)
    assert by_feature[4][3] == 0.0
    assert sum(t[1] for t in top) > 0.95
    assert sum(model.contrib) == pytest.approx(1.0, abs=1e-5)


def test_contributions_of_a_single_feature_that_moved() -> None:
    model = mv.PcaMonitor(P, reference=REFERENCE)
    vec = list(MEAN)
    vec[5] += 6 * SD[5]  # a feature of its own
    assert model.judge(vec).status == mv.SUSPICIOUS
    (index, share, direction, change), *_ = model.explain(1)
    assert (index, direction) == (5, 1) and share > 0.9 and change == pytest.approx(60.0, abs=0.1)


# -- (d) the simulated washing machine -------------------------------------------------------
@pytest.fixture(scope="module")
def washer_at_onset() -> bench.Run:
    """A simulated washing machine at 0.2 Hz, through the 34 cycles before a fault starts."""
    return bench.Run("washing_machine", 5, []).until(bench.LATE_ONSET)


def test_cycle_features_of_a_simulated_washing_machine(washer_at_onset: bench.Run) -> None:
    vectors = washer_at_onset.vectors
    names = [washer_at_onset.extractor.name(i) for i in range(8)]
    assert names[:2] == ["motor_current@drain mean", "duration@drain"]
    assert len(vectors) == bench.LATE_ONSET and all(v is not None for v in vectors)
    drain_current = [v[0] for v in vectors]
    drain_s = [v[1] for v in vectors]
    heat_peak = [v[2] for v in vectors]
    assert 0.43 < min(drain_current) and max(drain_current) < 0.47  # 0.45 A
    assert all(175 <= s <= 185 for s in drain_s)  # two drains of 90 s, read every 5 s
    assert all(39.0 <= t <= 41.5 for t in heat_peak)  # heated to 40 degC, read every 5 s
    assert all(v[7] == 0.0 for v in vectors)  # no flow while idle


@pytest.mark.parametrize("fault", ["pump_clog", "heater_fail"])
def test_the_model_flags_a_washer_fault_after_its_onset_and_not_before(washer_at_onset: bench.Run, fault: str) -> None:
    run = copy.deepcopy(washer_at_onset)
    run.sim.faults = [bench.fault(fault, bench.LATE_ONSET, 1.0)]
    run.until(bench.LATE_ONSET + 6)
    model = mv.PcaMonitor(8, learn_cycles=30)
    statuses = []
    for vec in run.vectors:
        statuses.append(model.judge(vec).status)
        if statuses[-1] == mv.ALARM:
            break
    first = statuses.index(mv.ALARM)
    assert mv.ALARM not in statuses[: bench.LATE_ONSET] and mv.SUSPICIOUS not in statuses[: bench.LATE_ONSET]
    assert bench.LATE_ONSET <= first <= bench.LATE_ONSET + 3, statuses[30:]
    names = {run.extractor.name(i[0]) for i in model.explain(2)}
    if fault == "pump_clog":
        assert names == {"motor_current@drain mean", "duration@drain"}
    else:
        assert names & {"heater_temp@heat peak", "duration@heat"}


def test_a_reference_from_other_units_flags_a_clogging_pump_from_install(washer_at_onset: bench.Run) -> None:
    others = bench.Run("washing_machine", 6, []).until(20).vectors
    reference = bench.reference_from(washer_at_onset.vectors[:20] + others)
    run = bench.Run("washing_machine", 7, [bench.fault("pump_clog", 0, 1.0)]).until(4)
    model = mv.PcaMonitor(8, reference=reference)
    assert [model.judge(v).status for v in run.vectors] == [mv.SUSPICIOUS, mv.ALARM, mv.ALARM, mv.ALARM]


def test_a_cycle_whose_feature_phase_did_not_run_is_skipped() -> None:
    features = mv.CycleFeatures([("duration", "drain"), ("mean", 0, "spin")], ["idle", "drain", "spin"], ["m"])
    assert features.sample(0, 0, 0.0, "idle") is None
    assert features.sample(0, 1000, 1.0, "drain") is None
    assert features.sample(0, 3000, 1.0, "drain") is None
    assert features.sample(0, 4000, 0.0, "idle") is None  # no spin: no vector
    assert (features.cycles, features.skipped) == (1, 1)
    for t, v, phase in ((5000, 1.0, "drain"), (7000, 3.0, "spin"), (8000, 5.0, "spin")):
        assert features.sample(0, t, v, phase) is None
    assert list(features.sample(0, 9000, 0.0, "idle")) == [2.0, 4.0]  # type: ignore[arg-type]


# -- (e) MicroPython -----------------------------------------------------------------------
_MP = """
import json
from agent.core import multivariate as mv
from agent.sim import appliances
case = json.loads(%r)
features = mv.CycleFeatures(case["specs"], case["phases"], case["channels"])
sim = appliances.make("washing_machine", 5, [], 2, 3)
vectors = []
t = 0
while features.cycles < 2:
    phase = sim.phase(t)
    for ci in range(len(case["channels"])):
        vec = features.sample(ci, t, sim.read(case["channels"][ci], t), phase)
        if vec is not None:
            vectors.append(list(vec))
    t += 60000 if phase == "idle" else 5000
out = {"vectors": vectors}
for name in ("learned", "reference"):
    model = mv.PcaMonitor(8, learn_cycles=30, reference=case["reference"] if name == "reference" else None)
    verdicts = []
    for vec in case["judge"]:
        v = model.judge(vec)
        verdicts.append([v.status, v.t2, v.q])
    out[name] = verdicts
print("@@MV@@" + json.dumps(out))
"""


@pytest.mark.micropython
def test_micropython_gives_the_same_features_and_verdicts(mp_runtime: object, washer_at_onset: bench.Run) -> None:
    from tests import micropython

    run = copy.deepcopy(washer_at_onset)
    run.sim.faults = [bench.fault("pump_clog", bench.LATE_ONSET, 1.0)]
    run.until(bench.LATE_ONSET + 4)
    vectors = [list(v) for v in run.vectors]
    reference = bench.reference_from(bench.Run("washing_machine", 6, []).until(20).vectors)
    kind = "washing_machine"
    case = {"specs": bench.specs_of(kind), "phases": bench.phases_of(kind),
            "channels": bench.FEATURES[kind]["channels"], "reference": reference, "judge": vectors}  # fmt: skip
    out = micropython.run(_MP % json.dumps(case), micropython.core_mounts(), heap=1024 * 1024)
    got = json.loads(out.split("@@MV@@", 1)[1])
    assert len(got["vectors"]) == 2
    for mine, theirs in zip(vectors[:2], got["vectors"], strict=True):
        assert theirs == pytest.approx(mine, rel=1e-5)
    for name in ("learned", "reference"):
        model = mv.PcaMonitor(8, learn_cycles=30, reference=reference if name == "reference" else None)
        want = [model.judge(v) for v in vectors]
        assert [g[0] for g in got[name]] == [w.status for w in want], name
        assert [g[1] for g in got[name]] == pytest.approx([w.t2 for w in want], rel=1e-4, abs=1e-6)
        assert [g[2] for g in got[name]] == pytest.approx([w.q for w in want], rel=1e-4, abs=1e-6)
        assert mv.ALARM in [w.status for w in want]


# -- (f) settings -----------------------------------------------------------------------
PHASES = ["idle", "fill", "drain"]
CHANNELS = ["motor_current", "inlet_flow"]


@pytest.mark.parametrize(
    ("specs", "named"),
    [
        ([("duration", "drain"), ("median", 0, "drain")], "'median'"),
        ([("duration", "drain"), ("mean", 2, "drain")], "channel index 2"),
        ([("duration", "drain"), ("mean", "motor_current", "drain")], "'motor_current'"),
        ([("duration", "drain"), ("peak", 0, "rinse")], "'rinse'"),
        ([("duration", "drain"), ("duration", 0, "drain")], "3 items"),
        ([("duration", "drain"), "drain"], "'drain'"),
        ([("duration", "drain")], "got 1 features"),
        ([("duration", "drain")] * 13, "got 13 features; expected 2 to 12"),
    ],
)
def test_a_bad_feature_spec_is_a_config_error_naming_it(specs: list, named: str) -> None:
    with pytest.raises(ConfigError) as e:
        mv.CycleFeatures(specs, PHASES, CHANNELS)
    assert named in str(e.value)


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"features": 13}, "features: got 13; expected 2 to 12"),
        ({"components": 6}, "components: got 6"),
        ({"alarm_rate": 0.5}, "alarm_rate: got 0.5"),
        ({"learn_cycles": 5}, "learn_cycles: got 5; expected 9 (features + 3)"),
        ({"memory": 10}, "memory: got 10"),
        ({"reference": {"mean": [1.0] * 6}}, "reference.sd: got None"),
        ({"reference": {"mean": [1.0] * 5, "sd": [1.0] * 6}}, "reference.mean: got [1.0, 1.0, 1.0, 1.0, 1.0]"),
        ({"reference": {"mean": [1.0] * 6, "sd": [1.0] * 5 + [-1.0]}}, "reference.sd[5]: got -1.0"),
        ({"reference": {"mean": [1.0] * 6, "sd": [1.0] * 6, "corr": [0.0] * 14 + [1.5]}}, "reference.corr[14]"),
        ({"reference": {"mean": [1.0] * 6, "sd": [1.0] * 6, "corr": [0.0] * 6}}, "expected a list of 15 numbers"),
        ({"reference": {"mean": [1.0] * 5 + [math.nan], "sd": [1.0] * 6}}, "reference.mean[5]: got nan"),
        ({"reference": {"mean": [1.0] * 6, "sd": [1.0] * 6, "cov": []}}, "unknown key 'cov'"),
    ],
)
def test_a_bad_model_setting_is_a_config_error_naming_it(settings: dict, named: str) -> None:
    args = {"features": 6}
    args.update(settings)
    with pytest.raises(ConfigError) as e:
        mv.PcaMonitor(**args)
    assert named in str(e.value)


def test_correlations_no_data_set_can_have_are_a_config_error() -> None:
    # 0 and 1 move together, 0 and 2 too, but 1 and 2 against each other.
    ref = {"mean": [1.0, 1.0, 1.0], "sd": [1.0, 1.0, 1.0], "corr": [0.9, 0.9, -0.9]}
    with pytest.raises(ConfigError) as e:
        mv.PcaMonitor(3, learn_cycles=6, reference=ref, reference_cycles=6)
    assert "reference.corr" in str(e.value) and "eigenvalue of -0.799" in str(e.value)


def test_a_vector_that_cannot_be_judged_is_an_input_error_and_changes_nothing() -> None:
    model = mv.PcaMonitor(P, reference=REFERENCE)
    bad_ones = (
        ([1.0] * 5, "5 values; expected 6"),
        (MEAN[:5] + [math.inf], "vector[5] is inf"),
        (MEAN[:5] + [math.nan], "vector[5] is nan"),
        (MEAN[:5] + [2e9], "vector[5] is 2000000000.0"),
    )
    for bad, named in bad_ones:
        with pytest.raises(InputError) as e:
            model.judge(bad)
        assert named in str(e.value)
    assert model.n == 30 and model.taught == 0


# -- the maths' parts --------------------------------------------------------------------
def test_the_quantile_approximations_are_close_to_tabled_values() -> None:
    z = mv._normal_quantile(0.005)
    assert z == pytest.approx(2.5758, abs=1e-3)
    assert mv.chi2_quantile(2, z) == pytest.approx(10.597, rel=0.01)
    assert mv.chi2_quantile(10, z) == pytest.approx(25.188, rel=0.01)
    assert mv.f_quantile(2, 30, z) == pytest.approx(6.35, rel=0.03)
    assert mv.f_quantile(5, 100, z) == pytest.approx(3.54, rel=0.03)


def test_jacobi_finds_the_eigenpairs_of_a_symmetric_matrix() -> None:
    from array import array

    p = 3
    a = array("f", [4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 1.0])
    orig = list(a)
    v = array("f", bytes(4 * p * p))
    assert mv.jacobi(a, v, p) <= 6
    for k in range(p):
        lam = a[k * p + k]
        for i in range(p):
            av = sum(orig[i * p + j] * v[j * p + k] for j in range(p))
            assert av == pytest.approx(lam * v[i * p + k], abs=1e-5)
    assert sum(a[k * p + k] for k in range(p)) == pytest.approx(8.0, abs=1e-5)


# -- property ---------------------------------------------------------------------------
_values = st.floats(min_value=-mv.FEATURE_LIMIT, max_value=mv.FEATURE_LIMIT, allow_nan=False)


@given(st.lists(st.lists(_values, min_size=4, max_size=4), min_size=8, max_size=30), st.booleans())
def test_any_finite_vectors_give_finite_non_negative_statistics(vectors: list, seeded: bool) -> None:
    reference = {"mean": [1.0, 2.0, 3.0, 4.0], "sd": [0.1, 0.2, 0.3, 0.4], "corr": [0.5] * 6} if seeded else None
    model = mv.PcaMonitor(4, learn_cycles=7, reference=reference, reference_cycles=7)
    for vec in vectors:
        verdict = model.judge(vec)
        for x in (verdict.t2, verdict.q, verdict.t2_limit, verdict.q_limit, verdict.severity):
            assert math.isfinite(x) and x >= 0.0, (x, vec)
        assert verdict.severity < 1.0
        if verdict.status != mv.LEARNING:
            assert all(math.isfinite(c) and c >= 0.0 for c in model.contrib)
