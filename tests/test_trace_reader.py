"""The portable trace reader (agent/sim/trace.py): the values and phases the host's replay
(agent/replay.py) gives for the same file, on CPython and on the MicroPython unix port;
every malformed trace refused at the start, naming file and line; a row at its bound."""

import math
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core.errors import ConfigError
from agent.replay import Trace
from agent.sim.trace import MAX_LINE_BYTES, TraceReader
from hil_tests.scenarios import GOLDEN_TRACE
from tests import micropython_unix

CHANNELS = ("motor_current", "drum_vibration", "inlet_flow", "heater_temp", "detergent_level")


def _write(tmp_path: "os.PathLike[str]", text: str | bytes, name: str = "t.csv") -> str:
    path = os.path.join(tmp_path, name)
    with open(path, "wb") as f:
        f.write(text.encode() if isinstance(text, str) else text)
    return path


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _walk(path: str, times: list) -> list:
    reader = TraceReader(path)
    drivers = [reader.driver(c) for c in reader.columns]
    try:
        return [(reader.phase(t), [d.read(t) for d in drivers]) for t in times]
    finally:
        reader.close()


def _host_walk(path: str, times: list) -> list:
    from agent.replay import ReplayDriver

    cursor = Trace(path).cursor()
    drivers = [ReplayDriver(cursor, c) for c in cursor.trace.columns]
    return [(cursor.phase(t), [d.read(t) for d in drivers]) for t in times]


def test_the_golden_trace_reads_as_the_host_replay_reads_it() -> None:
    times = list(range(0, TraceReader(GOLDEN_TRACE).end_ms() + 5000, 1000))
    ours, host = _walk(GOLDEN_TRACE, times), _host_walk(GOLDEN_TRACE, times)
    assert len(ours) == len(host) > 8000
    for (p1, v1), (p2, v2) in zip(ours, host, strict=True):
        assert p1 == p2 and all(_same(a, b) for a, b in zip(v1, v2, strict=True))


rows = st.lists(
    st.tuples(
        st.integers(1, 5000),  # the step to the row's time
        st.sampled_from(["idle", "wash", "spin"]),
        st.lists(
            st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False).map(lambda x: round(x, 4))),
            min_size=2,
            max_size=2,
        ),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(rows, st.lists(st.integers(0, 200_000), max_size=40))
def test_any_trace_reads_as_the_host_replay_reads_it(tmp_path_factory: pytest.TempPathFactory, body: list,
                                                     asks: list) -> None:  # fmt: skip
    t = -1
    lines = ["t_ms,phase,a,b"]
    for step, phase, cells in body:
        t += step
        lines.append("%d,%s,%s" % (t, phase, ",".join("" if c is None else repr(c) for c in cells)))
    path = _write(tmp_path_factory.mktemp("trace"), "\n".join(lines) + "\n")
    times = sorted(asks)
    ours, host = _walk(path, times), _host_walk(path, times)
    for (p1, v1), (p2, v2) in zip(ours, host, strict=True):
        assert p1 == p2 and all(_same(a, b) for a, b in zip(v1, v2, strict=True))
    assert TraceReader(path).end_ms() == Trace(path).end_ms()


_MP_WALK = """
from agent.sim.trace import TraceReader
r = TraceReader(%r)
d = [r.driver(c) for c in r.columns]
for t in range(0, r.end_ms() + 5000, 60000):
    print(" ".join([r.phase(t)] + ["%%.6g" %% x.read(t) for x in d]))
"""


@pytest.mark.heavy
def test_the_golden_trace_reads_the_same_on_micropython() -> None:
    # A small heap: the reader holds one line of the trace at a time.
    got = micropython_unix.run(_MP_WALK % GOLDEN_TRACE, heap=64 * 1024).strip().splitlines()
    times = range(0, TraceReader(GOLDEN_TRACE).end_ms() + 5000, 60000)
    want = [" ".join([p] + ["%.6g" % x for x in v]) for p, v in _walk(GOLDEN_TRACE, list(times))]
    assert got == want


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("", 1, "expected the header"),
        ("time,phase,a\n0,idle,1\n", 1, "expected the header"),
        ("t_ms,phase\n0,idle\n", 1, "expected the header"),
        ("t_ms,phase,a\n", 2, "no rows"),
        ("t_ms,phase,a\n0,idle,1,2\n", 2, "expected 3 cells, got 4"),
        ("t_ms,phase,a\nx,idle,1\n", 2, "not a whole number"),
        ("t_ms,phase,a\n5,idle,1\n5,idle,2\n", 3, "not after the previous row's 5"),
        ("t_ms,phase,a\n5,idle,1\n4,idle,2\n", 3, "not after"),
        ("t_ms,phase,a\n0,idle,nan\n", 2, "not a finite number"),
        ("t_ms,phase,a\n0,idle,inf\n", 2, "not a finite number"),
        ("t_ms,phase,a\n0,idle,1e999\n", 2, "not a finite number"),
        ("t_ms,phase,a\n0,idle,12abc\n", 2, "not a finite number"),
        ("t_ms,phase,a\n0,boil,1\n", 2, "phase 'boil' is not one of the profile's phases"),
        (b"t_ms,phase,a\n0,idle,\xff\n", 2, "not UTF-8"),
        ("t_ms,phase,a\n0,idle," + "1" * MAX_LINE_BYTES + "\n", 2, "longer than %d bytes" % MAX_LINE_BYTES),
    ],
)
def test_a_malformed_trace_is_refused_at_the_start_naming_file_and_line(
    tmp_path: "os.PathLike[str]", text: str, line: int, words: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        TraceReader(path, ("idle", "wash"))
    assert str(e.value).startswith("%s:%d: " % (path, line)) and words in str(e.value), str(e.value)


def test_a_row_of_exactly_the_longest_line_is_read(tmp_path: "os.PathLike[str]") -> None:
    prefix = "0,idle,"
    value = "1." + "0" * (MAX_LINE_BYTES - len(prefix) - 3)  # with its newline, MAX_LINE_BYTES exactly
    path = _write(tmp_path, "t_ms,phase,a\n" + prefix + value + "\n")
    assert TraceReader(path).driver("a").read(0) == float(value)
    path = _write(tmp_path, "t_ms,phase,a\n" + prefix + value + "0\n", "over.csv")
    with pytest.raises(ConfigError, match="longer than"):
        TraceReader(path)


def test_a_missing_file_and_a_missing_column_are_named(tmp_path: "os.PathLike[str]") -> None:
    with pytest.raises(ConfigError, match="cannot read the trace"):
        TraceReader(os.path.join(tmp_path, "none.csv"))
    reader = TraceReader(_write(tmp_path, "t_ms,phase,a\n0,idle,1\n"))
    with pytest.raises(ConfigError, match="no column for channel 'b'"):
        reader.driver("b")


def test_before_the_first_row_there_is_no_reading(tmp_path: "os.PathLike[str]") -> None:
    reader = TraceReader(_write(tmp_path, "t_ms,phase,a\n100,wash,1\n200,spin,\n"))
    a = reader.driver("a")
    assert math.isnan(a.read(50)) and reader.phase(50) == ""
    assert a.read(150) == 1 and reader.phase(150) == "wash"
    assert a.read(250) == 1 and reader.phase(250) == "spin"  # an empty cell holds the last value
    assert reader.end_ms() == 201 and reader._next is None  # read to its end: the file is closed


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_read_or_refused_by_name(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = _write(tmp_path_factory.mktemp("trace"), b"t_ms,phase,a\n" + data)
    try:
        reader = TraceReader(path)
    except ConfigError as e:
        assert str(e).startswith(path + ":")
        return
    reader.driver("a").read(reader.end_ms())
    reader.close()
