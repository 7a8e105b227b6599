"""`wichtel detect` and the NAB benchmark on small inputs; properties of the detectors."""

import csv
import io
import itertools
import json
import math
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import detect
from agent.cli import main
from agent.core.detectors import DETECTORS, SeriesScorer, ZScoreDetector, time_of_day_slot
from agent.core.errors import ConfigError
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
        ("timestamp,value\n2015-01-01 00:00:00,inf\n", ":2: value 'inf' is not a finite number"),
        ("timestamp,value\n2015-01-01 00:00:00,nan\n", ": no values to score: all 1 rows have a missing value"),
        ("timestamp,value\n2015-01-01 00:00:00,1\n2015-02-30 00:00:00,1\n", ":3: timestamp '2015-02-30 00:00:00' is"),
        (
            "timestamp,value\n2015-01-01 00:00:00,1\n2015-01-01 00:05:00,12,5\n",
            ":3: expected 2 fields (timestamp,value); got 3",
        ),
        ("timestamp;value\n2015-01-01 00:00:00;12,5\n", ":2: value '12,5' is not a finite number (column 'value'"),
        ("stamp,value\n", ":1: expected the header timestamp,value (or name the columns"),
        ("timestamp,a,b\n2015-01-01 00:00:00,1,2\n", ":1: which column to score? The header 'timestamp,a,b' has no"),
        ("timestamp,value,value\n", ":1: the header 'timestamp,value,value' has the column 'value' twice"),
        ("", ":1: expected the header timestamp,value; the file is empty"),
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


# --- real files: columns, delimiters, times, missing values, order, thresholds, settings, pipes


def _write(tmp_path: str, content: str, name: str = "in.csv") -> str:
    path = os.path.join(str(tmp_path), name)
    with open(path, "w", newline="") as f:
        f.write(content)
    return path


def _scores(text: str, delimiter: str = ",") -> list:
    return list(csv.reader(io.StringIO(text), delimiter=delimiter))


@pytest.mark.parametrize(
    "text,ms",
    [
        ("2014-04-10 07:15:00", 1397114100000),
        ("2014-04-10T07:15:00", 1397114100000),
        ("2014-04-10t07:15", 1397114100000),
        ("2014-04-10 07:15:00.25", 1397114100250),
        ("2014-04-10 07:15:00,123999", 1397114100123),
        ("2014-04-10T07:15:00Z", 1397114100000),
        ("2014-04-10T09:15:00+02:00", 1397114100000),
        ("2014-04-10T02:15:00-0500", 1397114100000),
        ("2014-04-10 09:15:00 +02", 1397114100000),
        ("2014-04-10T09:15:00.5+02:00", 1397114100500),
        ("2014-04-10", 1397088000000),
        ("1397114100", 1397114100000),
        ("1397114100.123", 1397114100123),
        (" 1397114100.1 ", 1397114100100),
        ("-1.5", -1500),
    ],
)
def test_parse_time_reads_iso_8601_and_seconds(text: str, ms: int) -> None:
    assert detect.parse_time_ms(text) == ms


@pytest.mark.parametrize(
    "text",
    ["", "yesterday", "2014-02-30", "2014-04-10 25:00:00", "2014-04-10 07:15:60", "2014-04-10T07:15:00+24:00",
     "2014-04-10T07:15:00+02:60", "2014-04-10 7:15", "10.04.2014 07:15", "1e9", "nan", "99999999999999"],
)  # fmt: skip
def test_parse_time_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises((detect.CellError, ValueError)):
        detect.parse_time_ms(text)


_OFFSETS = st.integers(-14 * 60, 14 * 60)


@settings(max_examples=300, deadline=None)
@given(
    when=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    sep=st.sampled_from(["T", " ", "t"]),
    seconds=st.booleans(),
    digits=st.integers(0, 9),
    zone=st.sampled_from(["", "Z", "+HH:MM", "+HHMM", "+HH", " +HH:MM"]),
    offset_min=_OFFSETS,
)
def test_property_parse_time_agrees_with_datetime(
    when: datetime, sep: str, seconds: bool, digits: int, zone: str, offset_min: int
) -> None:
    """Any time written in one of the accepted ISO 8601 forms reads as its milliseconds
    since 1970 UTC, counted by datetime's own arithmetic (fractions cut, not rounded)."""
    if not seconds:
        when, digits = when.replace(second=0, microsecond=0), 0
    text = "%04d-%02d-%02d%s%02d:%02d" % (when.year, when.month, when.day, sep, when.hour, when.minute)
    if seconds:
        text += ":%02d" % when.second
    if digits:
        text += "." + ("%06d" % when.microsecond + "000")[:digits]
    if zone in ("", "Z"):
        offset_min = 0
    elif zone == "+HH":
        offset_min -= offset_min % 60 if offset_min >= 0 else -(-offset_min % 60)
    sign, hh, mm = "+" if offset_min >= 0 else "-", abs(offset_min) // 60, abs(offset_min) % 60
    text += zone.replace("+", sign).replace("HH", "%02d" % hh).replace("MM", "%02d" % mm)
    frac_ms = int(("%06d" % when.microsecond)[:digits][:3].ljust(3, "0")) if digits else 0
    expected = (when.replace(microsecond=0) - datetime(1970, 1, 1)) // timedelta(milliseconds=1) + frac_ms
    assert detect.parse_time_ms(text) == expected - offset_min * 60_000


@settings(max_examples=200, deadline=None)
@given(seconds=st.integers(-(10**11), 10**11), ms=st.integers(0, 999))
def test_property_seconds_since_1970_are_read_exactly(seconds: int, ms: int) -> None:
    text = "%d.%03d" % (seconds, ms) if seconds >= 0 else "-%d.%03d" % (-seconds, ms)
    assert detect.parse_time_ms(text) == (seconds * 1000 + ms if seconds >= 0 else seconds * 1000 - ms)


_MISSING_CELLS = ["", "NaN", "nan", "NA", "null", "-", "N/A", "None"]


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(1_300_000_000, 1_500_000_000),
            st.one_of(st.floats(-1e9, 1e9, allow_nan=False), st.sampled_from(_MISSING_CELLS)),
        ),
        min_size=1,
        max_size=60,
    ),
    delimiter=st.sampled_from([",", ";", "\t"]),
    layout=st.permutations(["timestamp", "value", "note"]),
    iso=st.booleans(),
)
def test_property_csv_reader_scores_every_value_in_file_order(
    rows: list, delimiter: str, layout: list, iso: bool
) -> None:
    """Whatever the column order and delimiter (sniffed), missing values and disorder: one
    output row per input row, an empty score exactly for a missing value, the scores
    those of the values in file order, and every backward step counted."""
    src = io.StringIO(newline="")
    w = csv.writer(src, delimiter=delimiter, lineterminator="\r\n")
    w.writerow(layout)
    texts = []
    for t, v in rows:
        when = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if iso else str(t)
        cell = repr(v) if isinstance(v, float) else v
        texts.append((when, cell))
        w.writerow([{"timestamp": when, "value": cell, "note": "a; b,\tc"}[c] for c in layout])
    src.seek(0)
    out, warnings = io.StringIO(), []
    options = detect.DetectOptions(threshold=0.5)
    scorer = SeriesScorer("wichtel")
    if all(isinstance(v, str) for _, v in rows):
        with pytest.raises(detect.DetectInputError, match="no values to score"):
            detect.score_csv(src, out, "f.csv", scorer, options, warnings.append)
        return
    totals = detect.score_csv(src, out, "f.csv", scorer, options, warnings.append)
    written = _scores(out.getvalue())
    assert written[0] == ["timestamp", "value", "anomaly_score"]
    assert [tuple(r[:2]) for r in written[1:]] == texts
    fresh = SeriesScorer("wichtel")
    expected = ["%.6f" % fresh(t * 1000, v) if isinstance(v, float) else "" for t, v in rows]
    assert [r[2] for r in written[1:]] == expected
    assert totals.scored == sum(isinstance(v, float) for _, v in rows)
    assert totals.missing == len(rows) - totals.scored
    backward = sum(b[0] < a[0] for a, b in itertools.pairwise(rows))
    assert totals.out_of_order == backward
    assert len(warnings) == min(backward, detect.MAX_ORDER_WARNINGS) + (backward > detect.MAX_ORDER_WARNINGS)


def test_columns_by_name_and_the_default_value_column(tmp_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    content = "when,power,unit,temp\n2015-01-01 00:00:00,1.5,W,20\n2015-01-01 00:05:00,2.5,W,21\n"
    src = _write(tmp_path, content)
    assert main(["detect", src, "--time-column", "when", "--column", "temp"]) == 0
    assert [r[1] for r in _scores(capsys.readouterr().out)] == ["value", "20", "21"]
    assert main(["detect", src, "--time-column", "when"]) == 2  # power and temp are numbers: which one?
    assert ":1: which column to score? The header 'when,power,unit,temp' has no column 'value' and 2 other" in (
        capsys.readouterr().err
    )
    assert main(["detect", src, "--time-column", "when", "--column", "watts"]) == 2
    assert "in.csv:1: no column 'watts' in the header 'when,power,unit,temp' (--column)" in capsys.readouterr().err
    # The only other column with a number in the first row; `value` wherever it stands.
    src = _write(tmp_path, "unit,timestamp,power\nW,1420070400,3\nW,1420070700,4\n", "one.csv")
    assert main(["detect", src]) == 0
    assert [r[1] for r in _scores(capsys.readouterr().out)] == ["value", "3", "4"]
    src = _write(tmp_path, "value,power,timestamp\n7,3,1420070400\n", "named.csv")
    assert main(["detect", src]) == 0
    assert _scores(capsys.readouterr().out)[1][:2] == ["1420070400", "7"]


@pytest.mark.parametrize(
    "given,delimiter", [(None, ";"), (None, "\t"), (None, ","), (";", ";"), ("tab", "\t"), ("\\t", "\t"), ("|", "|")]
)
def test_delimiters_given_or_sniffed(
    given: str | None, delimiter: str, tmp_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _write(tmp_path, f"timestamp{delimiter}value\n2015-01-01 00:00:00{delimiter}1.5\n")
    assert main(["detect", src] + (["--delimiter", given] if given else [])) == 0
    assert _scores(capsys.readouterr().out)[1][:2] == ["2015-01-01 00:00:00", "1.5"]  # always written with commas


def test_a_delimiter_of_more_than_one_character_is_a_usage_error(
    tmp_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _write(tmp_path, "timestamp,value\n1,1\n")
    assert main(["detect", src, "--delimiter", "::"]) == 2
    assert capsys.readouterr().err == "wichtel: --delimiter '::': expected one character (e.g. ';'), or tab\n"


def test_missing_values_are_written_with_an_empty_score_and_counted(
    tmp_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = ["timestamp,value"] + ["2015-01-01 00:%02d:00,%s" % (i, c) for i, c in enumerate(["1"] + _MISSING_CELLS)]
    src = _write(tmp_path, "\n".join(lines + ["", ",,", "2015-01-01 01:00:00,2"]) + "\n")
    assert main(["detect", src]) == 0
    out, err = capsys.readouterr()
    rows = _scores(out)[1:]
    assert [r[2] != "" for r in rows] == [True] + [False] * len(_MISSING_CELLS) + [True]  # blank lines: no rows
    assert err == "wichtel: %s: %d missing values left unscored\n" % (src, len(_MISSING_CELLS))
    out_path = os.path.join(str(tmp_path), "s.csv")
    assert main(["detect", src, "--output", out_path]) == 0
    assert capsys.readouterr().err == "%s: 2 rows scored with wichtel, 8 missing values left unscored\n" % out_path


def test_rows_out_of_order_are_warned_about_kept_and_scored_in_file_order(
    tmp_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    times = [1420070400 + 300 * i for i in range(40)]
    for k in range(0, 40, 5):  # eight pairs swapped: eight steps backwards
        times[k], times[k + 1] = times[k + 1], times[k]
    src = _write(tmp_path, "timestamp,value\n" + "".join("%d,%d\n" % (t, i % 7) for i, t in enumerate(times)))
    assert main(["detect", src]) == 0
    out, err = capsys.readouterr()
    scorer = SeriesScorer("wichtel")
    assert [r[2] for r in _scores(out)[1:]] == ["%.6f" % scorer(t * 1000, i % 7) for i, t in enumerate(times)]
    warned = err.splitlines()
    assert warned[0] == (
        "wichtel: warning: %s:3: timestamp %d is earlier than the row before (%d); kept, scored in file order"
        % (src, times[1], times[0])
    )
    assert len(warned) == detect.MAX_ORDER_WARNINGS + 1
    assert warned[-1] == "wichtel: warning: %s: %d more rows out of order" % (src, 8 - detect.MAX_ORDER_WARNINGS)


def test_stretch_finder_merges_rows_at_or_above_the_threshold() -> None:
    finder = detect.StretchFinder(0.5)
    for t, s in [("a", 0.1), ("b", 0.5), ("c", 0.9), ("d", 0.7), ("e", 0.49), ("f", 0.6), ("g", 0.2), ("h", 1.0)]:
        finder.add(t, s)
    got = [(s.first, s.last, s.rows, s.peak, s.peak_at) for s in finder.finish()]
    assert got == [("b", "d", 3, 0.9, "c"), ("f", "f", 1, 0.6, "f"), ("h", "h", 1, 1.0, "h")]
    assert finder.count == 3


def test_stretch_finder_keeps_the_highest_peaks_at_its_limit() -> None:
    finder = detect.StretchFinder(0.5)
    n = detect.MAX_STRETCHES_LISTED + 10
    for i in range(n):
        finder.add("t%d" % i, 0.5 + 0.4 * ((i * 37) % n) / n)  # peaks in a scrambled order
        finder.add("gap%d" % i, 0.0)
    kept = finder.finish()
    assert finder.count == n and len(kept) == detect.MAX_STRETCHES_LISTED
    peaks = sorted((0.5 + 0.4 * ((i * 37) % n) / n for i in range(n)), reverse=True)
    assert sorted((s.peak for s in kept), reverse=True) == peaks[: detect.MAX_STRETCHES_LISTED]
    assert [s.first for s in kept] == sorted((s.first for s in kept), key=lambda t: int(t[1:]))  # file order


def test_threshold_reports_stretches_on_stderr_beside_clean_csv(
    tmp_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = os.path.join(str(tmp_path), "in.csv")
    _series(src)
    assert main(["detect", src, "--threshold", "0.5", "--set", "alarm=3.0"]) == 0
    out, err = capsys.readouterr()
    rows = _scores(out)
    assert len(rows) == 1201 and all(len(r) == 3 for r in rows)  # nothing of the report in the scores
    high = [i for i, r in enumerate(rows[1:]) if float(r[2]) >= 0.5]
    assert 900 in high
    report = err.splitlines()
    assert report[0] == "%s: detector wichtel, settings alarm=3.0" % src
    assert report[1].startswith("stretches with anomaly_score >= 0.5: ")
    spike = rows[901]
    assert any(
        line.split()[:2] == spike[0].split() and "peak %s at %s" % (spike[2], spike[0]) in line for line in report
    )
    assert report[-1].startswith("rows scored 1200, missing values skipped 0, out of order 0; stretches ")


def test_threshold_with_output_reports_on_stdout(tmp_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tmp_path, "timestamp,value\n1,1\n2,\n3,5\n")
    out_path = os.path.join(str(tmp_path), "s.csv")
    assert main(["detect", src, "--output", out_path, "--threshold", "0", "--detector", "zscore"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out == (
        "%s: detector zscore, default settings\n"
        "stretches with anomaly_score >= 0.0: 1\n"
        "  1 .. 3      2 rows, peak 0.000000 at 1\n"
        "rows scored 2, missing values skipped 1, out of order 0; stretches 1\n" % src
    )


@pytest.mark.parametrize("threshold", ["1.5", "-0.1", "high", "nan"])
def test_a_threshold_outside_0_to_1_is_a_usage_error(
    threshold: str, tmp_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _write(tmp_path, "timestamp,value\n1,1\n")
    assert main(["detect", src, "--threshold", threshold]) == 2
    assert capsys.readouterr().err == (
        "wichtel: --threshold %r: expected a number from 0 to 1 (an anomaly_score)\n" % threshold
    )


def test_settings_change_the_scores(tmp_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    src = os.path.join(str(tmp_path), "in.csv")
    _series(src, n=400, spike=300)
    runs = {}
    for sets in ([], ["--set", "alarm=1.5"], ["--set", "alarm=1.5", "--set", "contexts=0"]):
        assert main(["detect", src] + sets) == 0
        runs[" ".join(sets)] = [r[2] for r in _scores(capsys.readouterr().out)[1:]]
    assert len(set(map(tuple, runs.values()))) == 3
    assert main(["detect", src, "--detector", "zscore", "--set", "alpha=0.05", "--set", "scale=2"]) == 0
    scorer = SeriesScorer("zscore", {"alpha": 0.05, "scale": 2})
    with open(src) as f:
        expected = ["%.6f" % scorer(detect.parse_time_ms(t), float(v)) for t, v in list(csv.reader(f))[1:]]
    assert [r[2] for r in _scores(capsys.readouterr().out)[1:]] == expected


@pytest.mark.parametrize(
    "sets,message",
    [
        (["alarm"], "--set 'alarm': expected NAME=NUMBER, e.g. --set alarm=3.0"),
        (["=3"], "--set '=3': expected NAME=NUMBER, e.g. --set alarm=3.0"),
        (["alarm=loud"], "--set alarm: expected a finite number, got 'loud'"),
        (["alarm=inf"], "--set alarm: expected a finite number, got 'inf'"),
        (["alarms=3"], "--set: unknown setting 'alarms' for detector wichtel"),
        (
            ["--detector", "zscore", "alarm=3"],
            "--set: unknown setting 'alarm' for detector zscore; known: alpha, scale",
        ),
    ],
)
def test_bad_settings_are_one_line_and_exit_2(
    sets: list, message: str, tmp_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _write(tmp_path, "timestamp,value\n1,1\n")
    out_path = os.path.join(str(tmp_path), "s.csv")
    args = sets[:2] if sets[0] == "--detector" else []
    assert main(["detect", src, "--output", out_path] + args + ["--set", sets[-1]]) == 2
    assert capsys.readouterr().err == "wichtel: %s\n" % message
    assert not os.path.exists(out_path)


def test_settings_the_detector_cannot_work_with_fail_cleanly(tmp_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tmp_path, "timestamp,value\n" + "".join("%d,%d\n" % (i, i % 3) for i in range(20)))
    out_path = os.path.join(str(tmp_path), "s.csv")
    assert main(["detect", src, "--detector", "zscore", "--set", "alpha=5", "--output", out_path]) == 2
    err = capsys.readouterr().err
    # the variance turns negative once it counts (after ten samples)
    assert (
        err == "wichtel: %s:12: detector zscore failed on value 1 (math domain error); are its --set values "
        "sensible?\n" % src
    )
    assert not os.path.exists(out_path)
    assert main(["detect", src, "--set", "contexts=2.5"]) == 2
    assert capsys.readouterr().err.startswith("wichtel: --set: detector wichtel cannot use these settings: ")


def test_a_spreadsheets_byte_order_mark_is_not_part_of_the_header(
    tmp_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = os.path.join(str(tmp_path), "bom.csv")
    with open(path, "w", encoding="utf-8-sig") as f:
        f.write("timestamp;value\n2015-01-01 00:00:00;1\n")
    assert main(["detect", path]) == 0
    assert len(_scores(capsys.readouterr().out)) == 2


def test_help_names_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["detect", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for option in ("--column", "--time-column", "--delimiter", "--threshold", "--set", "--output", "--detector"):
        assert option in text
    assert "ISO 8601" in text and "empty score" in text


def _big(tmp_path: str, rows: int = 40_000) -> str:
    """More than a pipe and Python's buffer hold: the writer meets the closed pipe."""
    return _write(
        tmp_path, "timestamp,value\n" + "".join("%d,%d\n" % (1420070400 + 60 * i, i % 11) for i in range(rows))
    )


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path: str) -> None:
    src = _big(tmp_path)
    detector = subprocess.Popen(
        [sys.executable, "-m", "agent", "detect", src, "--threshold", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert detector.stdout is not None and detector.stderr is not None
    head = subprocess.run(["head", "-3"], stdin=detector.stdout, capture_output=True, text=True, timeout=60)
    detector.stdout.close()  # only head holds the pipe's reading end
    err = detector.stderr.read().decode()
    detector.stderr.close()
    assert detector.wait(timeout=60) == detect.EXIT_BROKEN_PIPE
    assert err == "" and head.stdout.splitlines()[0] == "timestamp,value,anomaly_score"
    assert len(head.stdout.splitlines()) == 3


def test_a_shell_pipe_into_head_prints_no_broken_pipe(tmp_path: str) -> None:
    src = _big(tmp_path)
    shell = "set -o pipefail; %s -m agent detect %s | head -2" % (sys.executable, src)
    proc = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.stderr == ""
    assert proc.returncode == detect.EXIT_BROKEN_PIPE and len(proc.stdout.splitlines()) == 2


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
