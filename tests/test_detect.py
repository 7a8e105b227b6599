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
from agent.core.detectors import DETECTORS, SeriesScorer, ZScoreDetector
from agent.core.errors import ConfigError
from agent.sim.rng import XorShift32
from tests.benchmarks import run_bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _series(path: str, n: int = 1200, spike: int = 900) -> None:
    """Five-minute samples: a slow wave with noise, and one spike."""
    rng = XorShift32(n + spike)
    with open(path, "w") as f:
        f.write("timestamp,value\n")
        for i in range(n):
            minute = i * 5
            value = round(10 + math.sin(i / 20.0) + rng.gauss(0, 0.5) + (12 if i == spike else 0), 4)
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


def test_nab_benchmark_on_a_tiny_corpus(tmp_path: str) -> None:
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "data", "demo"))
    os.makedirs(os.path.join(root, "labels"))
    windows = {}
    for k, spike in ((1, 700), (2, 900)):
        name = "demo/series_%d.csv" % k
        _series(os.path.join(root, "data", name), n=1200, spike=spike)
        minute = spike * 5
        day, hh, mm = 1 + minute // 1440, minute // 60 % 24, minute % 60
        start = "2015-02-%02d %02d:%02d:00.000000" % (day, max(0, hh - 1), mm)
        end = "2015-02-%02d %02d:%02d:00.000000" % (day, min(23, hh + 1), mm)
        windows[name] = [[start, end]]
    with open(os.path.join(root, "labels", "combined_windows.json"), "w") as f:
        json.dump(windows, f)
    stdout, result = run_bench("nab.py", root, "--data", root)
    assert "(published)" in stdout and "Numenta HTM" in stdout
    assert set(result["scores"]) == {"standard", "reward_low_FP", "reward_low_FN"}
    # Both spikes are found at the start of their windows' second half: a high score.
    assert result["scores"]["standard"] > 80
    assert result["us_per_sample"] > 0 and result["state_bytes_per_channel"] > 0
    assert result["micropython"]["max_score_difference_vs_cpython"] < 1e-9
    assert set(result["files"]) == set(windows)


def test_zscore_refuses_an_unknown_setting_and_scores_as_before() -> None:
    with pytest.raises(ConfigError, match="unknown setting 'alpah' for detector zscore; known: alpha, scale"):
        SeriesScorer("zscore", {"alpah": 0.01})
    rng = XorShift32(5)
    values = [rng.gauss(0, 1) + (9 if i == 300 else 0) for i in range(400)]

    def scores(scorer: SeriesScorer) -> list:
        return [scorer(i * 1000, v) for i, v in enumerate(values)]

    plain = ZScoreDetector()
    by_hand = [plain.score(i * 1000, v) for i, v in enumerate(values)]
    assert scores(SeriesScorer("zscore")) == scores(SeriesScorer("zscore", {"alpha": 0.001, "scale": 4.0})) == by_hand
    assert scores(SeriesScorer("zscore", {"alpha": 0.05})) != by_hand
