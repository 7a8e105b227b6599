"""`wichtel detect` and the NAB benchmark on small inputs; properties of the detectors."""

import csv
import json
import math
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.cli import main
from agent.core.detectors import DETECTORS, SeriesScorer, time_of_day_slot
from agent.sim.rng import XorShift32
from tests.benchmarks import run_bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _series(path: str, n: int = 1200, spike: int = 900, early: float = 0.0) -> None:
    """Five-minute samples: a slow wave with noise, and one spike; `early`: a bump 60
    samples before it, whose hold-off hides the spike from a detector that alarms on it."""
    rng = XorShift32(n + spike)
    with open(path, "w") as f:
        f.write("timestamp,value\n")
        for i in range(n):
            minute = i * 5
            bump = 12 if i == spike else early if i == spike - 60 else 0
            value = round(10 + math.sin(i / 20.0) + rng.gauss(0, 0.5) + bump, 4)
            f.write("2015-02-%02d %02d:%02d:00,%s\n" % (1 + minute // 1440, minute // 60 % 24, minute % 60, value))


def test_list_names_every_detector(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", "--list"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == sorted(DETECTORS)


@pytest.mark.parametrize("detector", sorted(DETECTORS))
def test_detect_writes_one_scored_row_per_input_row(detector: str, tmp_path: str) -> None:
    src = os.path.join(str(tmp_path), "in.csv")
    out = os.path.join(str(tmp_path), "scores.csv")
    _series(src)
    assert main(["detect", src, "--detector", detector, "--output", out]) == 0
    with open(out) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["timestamp", "value", "anomaly_score"]
    assert len(rows) == 1201
    scores = [float(r[2]) for r in rows[1:]]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert max(range(1200), key=lambda i: scores[i]) == 900
    with open(src) as f:
        assert [r[:2] for r in rows[1:]] == [r for r in list(csv.reader(f))[1:]]


def test_detect_to_stdout_via_the_console_script(tmp_path: str) -> None:
    src = os.path.join(str(tmp_path), "in.csv")
    _series(src, n=50)
    proc = subprocess.run([sys.executable, "-m", "agent", "detect", src], capture_output=True, text=True)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 51


@pytest.mark.parametrize(
    "content,words",
    [
        ("time,val\n", ":1: expected the header timestamp,value"),
        ("timestamp,value\n2015-01-01 00:00:00,1\n2015-01-01 00:05:00\n", ":3: expected timestamp,value"),
        ("timestamp,value\n2015-01-01 00:00:00,1\nyesterday,2\n", ":3: timestamp 'yesterday' is neither"),
        ("timestamp,value\n2015-01-01 00:00:00,1\n2015-01-01 00:05:00,lots\n", ":3: value 'lots' is not a finite"),
        ("timestamp,value\n2015-01-01 00:00:00,nan\n", ":2: value 'nan' is not a finite number"),
        ("timestamp,value\n2015-01-01 00:05:00,1\n2015-01-01 00:00:00,1\n", ":3: timestamp 2015-01-01 00:00:00 is ea"),
        ("timestamp,value\n", ": no data rows"),
    ],
)
def test_bad_csv_names_the_line_and_writes_nothing(
    content: str, words: str, tmp_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = os.path.join(str(tmp_path), "bad.csv")
    out = os.path.join(str(tmp_path), "scores.csv")
    with open(src, "w") as f:
        f.write(content)
    assert main(["detect", src, "--output", out]) == 2
    err = capsys.readouterr().err
    assert src + words in err and "Traceback" not in err
    assert os.listdir(str(tmp_path)) == ["bad.csv"]  # no partial output, no temp file


def test_unknown_detector_and_missing_file(tmp_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    src = os.path.join(str(tmp_path), "in.csv")
    _series(src, n=10)
    assert main(["detect", src, "--detector", "magic"]) == 2
    assert "unknown detector 'magic'; known: wichtel, zscore" in capsys.readouterr().err
    assert main(["detect", os.path.join(str(tmp_path), "nope.csv")]) == 2
    assert "No such file" in capsys.readouterr().err


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(sorted(DETECTORS)),
    values=st.lists(st.floats(min_value=-1e12, max_value=1e12, allow_nan=False), min_size=1, max_size=300),
    step=st.integers(1, 86_400_000),
)
def test_property_scores_stay_in_unit_interval(name: str, values: list, step: int) -> None:
    scorer = SeriesScorer(name)
    for i, v in enumerate(values):
        s = scorer(1_400_000_000_000 + i * step, v)
        assert 0.0 <= s <= 1.0 and not math.isnan(s)


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet="0123456789-:., \nabtimesvlu", max_size=300))
def test_property_any_csv_text_scores_or_fails_cleanly(text: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    d = tmp_path_factory.mktemp("fuzz")
    src = os.path.join(str(d), "f.csv")
    with open(src, "w") as f:
        f.write("timestamp,value\n" + text)
    out = os.path.join(str(d), "o.csv")
    code = main(["detect", src, "--output", out])
    assert code in (0, 2)
    assert os.path.exists(out) == (code == 0)
    assert not os.path.exists(out + ".tmp")


def _tiny_nab(root: str) -> dict:
    """Two categories of two five-minute series, one spike and one window around it each,
    and a bump before it on which some of LOCO's candidate settings alarm."""
    os.makedirs(os.path.join(root, "labels"))
    windows = {}
    for k, spike in enumerate((700, 900, 800, 1000)):
        name = "%s/series_%d.csv" % ("demo" if k < 2 else "other", k)
        os.makedirs(os.path.dirname(os.path.join(root, "data", name)), exist_ok=True)
        _series(os.path.join(root, "data", name), n=1200, spike=spike, early=2.5)
        minute = spike * 5
        day, hh, mm = 1 + minute // 1440, minute // 60 % 24, minute % 60
        start = "2015-02-%02d %02d:%02d:00.000000" % (day, max(0, hh - 1), mm)
        end = "2015-02-%02d %02d:%02d:00.000000" % (day, min(23, hh + 1), mm)
        windows[name] = [[start, end]]
    with open(os.path.join(root, "labels", "combined_windows.json"), "w") as f:
        json.dump(windows, f)
    return windows


def test_nab_benchmark_on_a_tiny_corpus(tmp_path: str) -> None:
    root = str(tmp_path)
    windows = _tiny_nab(root)
    stdout, result = run_bench("nab.py", root, "--data", root)
    assert "(published)" in stdout and "Numenta HTM" in stdout
    assert set(result["scores"]) == {"standard", "reward_low_FP", "reward_low_FN"}
    # The spikes are found at the start of their windows' second half: a high score.
    assert result["scores"]["standard"] > 80
    assert result["us_per_sample"] > 0 and result["state_bytes_per_channel"] > 0
    assert result["micropython"]["max_score_difference_vs_cpython"] < 1e-9
    assert set(result["files"]) == set(windows)
    # Every setting, at the value the scorer gives it (alarm bands on for a series).
    assert result["settings"]["hold_trigger"] == 0.8 and result["settings"]["alarm_bands"] == 1
    assert result["settings"]["contexts"] == 40 and "settings: alarm=3.5 alarm_bands=1" in stdout


def _nab_scores(root: str, settings: dict) -> tuple:
    """The corpus' layouts, categories and the wichtel detector's scores, computed here."""
    from bench import nabdata, nabscore

    files = nabdata.load(root)
    layouts = [nabscore.layout(f.name, len(f.values), f.windows) for f in files]
    scores = []
    for f in files:
        scorer = SeriesScorer("wichtel", settings)
        scores.append([scorer(t, v) for t, v in zip(f.t_ms, f.values, strict=True)])
    return layouts, [f.name.split("/")[0] for f in files], scores


def test_nab_benchmark_set_loco_and_threshold_steps(tmp_path: str) -> None:
    # Checked against the scorer run here: the ±5% scores, the LOCO threshold-only score
    # (the set settings, the threshold chosen on the other category), and the full LOCO's
    # choice, which is the best of the grid on the training category.
    from bench import nab, nabscore

    root = str(tmp_path)
    _tiny_nab(root)
    stdout, result = run_bench("nab.py", root, "--data", root, "--no-micropython",
                               "--set", "hold_trigger=0.75", "--set", "warmup=50")  # fmt: skip
    assert result["settings"]["hold_trigger"] == 0.75 and result["settings"]["warmup"] == 50
    assert result["settings"]["level_weight"] == 0.4  # a default, listed too
    assert "hold_trigger=0.75" in stdout.split("settings:")[1].splitlines()[0]
    layouts, groups, scores = _nab_scores(root, {"hold_trigger": 0.75, "warmup": 50})
    for pname, prof in nabscore.PROFILES.items():
        threshold, raw = nabscore.optimise_threshold(layouts, scores, prof)
        null, perfect = nabscore.null_and_perfect(layouts, prof)
        assert result["scores"][pname] == pytest.approx(nabscore.normalised(raw, null, perfect))
        for label, factor in (("-5%", 0.95), ("+5%", 1.05)):
            moved = sum(
                nabscore.file_score(lay, s, threshold * factor, prof)["score"]
                for lay, s in zip(layouts, scores, strict=True)
            )
            assert result["threshold_sensitivity"][pname][label] == pytest.approx(
                nabscore.normalised(moved, null, perfect)
            )
    loco = result["loco"]
    candidates = nab.grid_candidates("wichtel", result["settings"])
    assert loco["candidates"] == len(candidates) == 3 * 3 * 3 * 3 + 3 * 3 * 3  # hold_trigger 0.75 joins 0.7/0.8/0.9
    cache: dict = {}

    def optimum(point: dict, train: list, prof: dict) -> tuple:
        key = tuple(sorted(point.items()))
        if key not in cache:
            cache[key] = _nab_scores(root, {"hold_trigger": 0.75, "warmup": 50, **point})[2]
        c_scores = cache[key]
        return nabscore.optimise_threshold([layouts[i] for i in train], [c_scores[i] for i in train], prof)

    assert set(result["loco_scores"]) == set(nabscore.PROFILES)
    assert "tuned on the whole corpus" in loco["note"] and "tuned on the whole corpus" in stdout
    for pname, prof in nabscore.PROFILES.items():
        per_fold = []
        for held in ("demo", "other"):
            train = [i for i, g in enumerate(groups) if g != held]
            test = [i for i, g in enumerate(groups) if g == held]
            threshold, _ = nabscore.optimise_threshold([layouts[i] for i in train], [scores[i] for i in train], prof)
            raw = sum(nabscore.file_score(layouts[i], scores[i], threshold, prof)["score"] for i in test)
            null, perfect = nabscore.null_and_perfect([layouts[i] for i in test], prof)
            per_fold.append(nabscore.normalised(raw, null, perfect))
        assert loco["threshold_only"][pname]["score"] == pytest.approx(sum(per_fold) / 2)
        folds = loco["grid"][pname]["folds"]
        assert [f["held_out"] for f in folds] == ["demo", "other"]
        assert result["loco_scores"][pname] == pytest.approx(sum(f["score"] for f in folds) / 2)
        for fold in folds:
            assert set(fold["settings"]) == set(nab.GRIDS["wichtel"])
            # The chosen candidate has the best total on the training category, at this threshold.
            train = [i for i, g in enumerate(groups) if g != fold["held_out"]]
            chosen = optimum(fold["settings"], train, prof)
            assert chosen[0] == fold["threshold"]
            assert chosen[1] == pytest.approx(max(optimum(point, train, prof)[1] for point in candidates))
    for variant in ("without_default_point", "off_default_values"):
        for fold in loco[variant]["standard"]["folds"]:
            assert fold["settings"] != {
                "hold_fraction": 0.03,
                "hold_trigger": 0.75,
                "level_weight": 0.4,
                "quantile": 0.0007,
            }
    for fold in loco["off_default_values"]["standard"]["folds"]:
        assert fold["settings"]["hold_trigger"] != 0.75 and fold["settings"]["level_weight"] != 0.4
    assert "leave one category out" in stdout


def test_nab_benchmark_skips_loco_and_names_a_bad_setting(tmp_path: str) -> None:
    root = str(tmp_path)
    _tiny_nab(root)
    stdout, result = run_bench("nab.py", root, "--data", root, "--no-micropython", "--no-loco")
    assert "loco_scores" not in result and "leave one category out" not in stdout
    bench = os.path.join(ROOT, "bench", "nab.py")
    for item, words in (
        ("holdtrigger=0.9", "unknown setting 'holdtrigger' for detector wichtel; known: alarm, alarm_bands"),
        ("hold_min=ten", "--set 'hold_min=ten': expected an integer, got 'ten'"),
        ("alarm", "--set 'alarm': expected NAME=VALUE"),
        ("alarm=nan", "--set 'alarm=nan': expected a finite number, got 'nan'"),
    ):
        proc = subprocess.run([sys.executable, bench, "--data", root, "--no-micropython", "--set", item],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert proc.returncode == 2 and words in proc.stderr, proc.stderr
    zscore = [sys.executable, bench, "--detector", "zscore", "--data", root, "--no-micropython", "--set", "hold_min=5"]
    proc = subprocess.run(zscore, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "known: alpha, scale" in proc.stderr, proc.stderr


def test_alarm_bands_separate_the_detectors_own_alarms() -> None:
    # On a series: every sample that starts a hold-off scores at least 0.5, every other one
    # 0 (or, with a low band, half its smooth score). The bands change the score only: the
    # same detector without them (as the appliances build it) has the same deviations and
    # hold-offs and the smooth score.
    rng = XorShift32(5)
    banded = SeriesScorer("wichtel")
    low = SeriesScorer("wichtel", {"low_band": 0.5})
    smooth = DETECTORS["wichtel"]()
    starts = 0
    for i in range(6000):
        t = 1_400_000_000_000 + i * 300_000
        value = 10 + math.sin(i / 30.0) + rng.gauss(0, 0.3) + (8 if i % 997 == 500 else 0)
        quiet = banded.detector.quiet
        s, s_low = banded(t, value), low(t, value)
        r = smooth.score(t, value, time_of_day_slot(t, 40))
        started = quiet == 0 and banded.detector.quiet > 0
        starts += started
        assert (s >= 0.5) == started and (started or s == 0.0), (i, s)
        assert (smooth.deviation, smooth.quiet) == (banded.detector.deviation, banded.detector.quiet)
        assert s_low == (s if started else r / 2) and (started or s_low < 0.25)
        if r:
            assert r == smooth.deviation / (smooth.deviation + smooth.alarm)
    assert starts >= 5
