"""Where the phase comes from on a real appliance: the profile's phase_source checked, rules
with hysteresis and debounce, GPIO code tables, UART lines (garbage, overlong, split, a
silent controller) through a real pty, and the phase through the Agent into cycle features."""

import asyncio
import copy
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import host, phase_io
from agent.core import limits, phases, profile
from agent.core.clock import ManualClock
from agent.core.errors import ProfileError, format_path
from agent.core.pipeline import Agent
from tests import phase_samples as ps


def _source(**changes: object) -> dict:
    src = copy.deepcopy(ps.BASE["phase_source"])
    src.update(changes)
    return src


def _with_source(src: dict) -> dict:
    return ps.validated(phase_source=src)


# -- the profile section --------------------------------------------------------------------------
_CODES = ["idle", "fill", "heating", "spin"]
GPIO = {"lines": [5, 6], "codes": [{"code": i, "phase": p} for i, p in enumerate(_CODES)]}
UART = {"baud": 9600, "prefix": "PH=", "codes": [{"code": str(i), "phase": p} for i, p in enumerate(_CODES)]}


def _rule(**cond: object) -> list:
    return [{"phase": "heating", "when": [dict({"channel": "heater_current"}, **cond)]}]


@pytest.mark.parametrize(
    ("src", "path", "words"),
    [
        ({}, "phase_source", "exactly one of rules, gpio, uart"),
        ({"gpio": GPIO, "uart": UART}, "phase_source", "exactly one of rules, gpio, uart"),
        (
            {"rules": [{"phase": "boil", "when": [{"channel": "heater_current", "above": 8}]}]},
            "phase_source.rules[0].phase",
            "one of phases",
        ),
        ({"rules": _rule(above=8), "fallback": "off"}, "phase_source.fallback", "one of phases"),
        (
            {"rules": [{"phase": "heating", "when": [{"channel": "heater", "above": 8}]}]},
            "phase_source.rules[0].when[0].channel",
            "one of channels",
        ),
        ({"rules": _rule(above=8, leave_below=9)}, "phase_source.rules[0].when[0].leave_below", "at most above 8"),
        ({"rules": _rule(below=8, leave_above=7)}, "phase_source.rules[0].when[0].leave_above", "at least below 8"),
        ({"rules": _rule(above=8, below=3)}, "phase_source.rules[0].when[0]", "exactly one of above, below"),
        ({"rules": _rule()}, "phase_source.rules[0].when[0]", "exactly one of above, below"),
        ({"rules": _rule(above=8, leave_above=9)}, "phase_source.rules[0].when[0].leave_above", "no leave_above"),
        (
            {"rules": [{"phase": "heating", "when": [{"channel": "heater_current", "above": 1}] * 5}]},
            "phase_source.rules[0].when",
            "a list of 1 to 4 items",
        ),
        (
            {"gpio": dict(GPIO, codes=[{"code": 1, "phase": "fill"}, {"code": 1, "phase": "spin"}])},
            "phase_source.gpio.codes[1].code",
            "a code not already in the table",
        ),
        (
            {"gpio": dict(GPIO, codes=[{"code": 4, "phase": "fill"}])},
            "phase_source.gpio.codes[0].code",
            "a code the 2 lines can show",
        ),
        ({"gpio": dict(GPIO, lines=[1, 2, 3, 4])}, "phase_source.gpio.lines", "a list of 1 to 3 items"),
        (
            {"uart": dict(UART, codes=[{"code": "a b", "phase": "fill"}])},
            "phase_source.uart.codes[0].code",
            "printable ASCII",
        ),
        ({"uart": dict(UART, prefix="PH\n")}, "phase_source.uart.prefix", "printable ASCII"),
        (
            {"uart": dict(UART, codes=[{"code": "X" * 16, "phase": "fill"}], max_line=16)},
            "phase_source.uart.max_line",
            "at least the longest line, 19",
        ),
        ({"uart": dict(UART, max_line=7)}, "phase_source.uart.max_line", "from 8 to 128"),
        ({"uart": dict(UART, tx=17)}, "phase_source.uart.rx", "both tx and rx"),
        ({"rules": _rule(above=8), "silence_s": 0}, "phase_source.silence_s", "from 1 to 86400"),
    ],
)
def test_a_wrong_phase_source_is_refused_naming_the_field(src: dict, path: str, words: str) -> None:
    with pytest.raises(ProfileError) as e:
        _with_source(src)
    assert format_path(e.value.path) == path, e.value
    assert words in str(e.value)


def test_the_silence_bound_holds_two_sample_periods_of_every_rule_channel() -> None:
    doc = ps.doc()
    doc["channels"][0]["sample_hz"] = 0.2  # the heater current every 5 s
    doc["phase_source"]["silence_s"] = 10
    assert profile.validate(copy.deepcopy(doc))
    doc["phase_source"]["silence_s"] = 9.9
    with pytest.raises(ProfileError, match="at least two sample periods of heater_current"):
        profile.validate(doc)


_VALUES = st.one_of(st.none(), st.integers(-3, 300), st.floats(allow_nan=True), st.text(max_size=20),
                    st.sampled_from(["idle", "fill", "heater_current", "PH=", "3"]), st.booleans())  # fmt: skip
_COND = st.dictionaries(st.sampled_from(["channel", "above", "leave_below", "below", "leave_above", "x"]), _VALUES)
_CODE = st.dictionaries(st.sampled_from(["code", "phase"]), _VALUES)
_SOURCE = st.dictionaries(
    st.sampled_from(["rules", "gpio", "uart", "fallback", "debounce_s", "silence_s"]),
    st.one_of(
        _VALUES,
        st.lists(st.fixed_dictionaries({"phase": _VALUES, "when": st.lists(_COND, max_size=5)}), max_size=3),
        st.fixed_dictionaries({"lines": st.lists(_VALUES, max_size=4), "codes": st.lists(_CODE, max_size=4)}),
        st.fixed_dictionaries(
            {
                "baud": _VALUES,
                "codes": st.lists(_CODE, max_size=4),
                "prefix": _VALUES,
                "max_line": _VALUES,
                "tx": _VALUES,
            }
        ),
    ),
)


@settings(max_examples=300, deadline=None)
@given(_SOURCE)
def test_property_any_phase_source_is_valid_or_a_clear_error(src: dict) -> None:
    try:
        prof = _with_source(src)
    except ProfileError as e:
        assert "expected" in str(e)
        return
    assert phases.kind_of(prof["phase_source"]) in ("rules", "gpio", "uart")


def test_the_line_bounds_are_taken_at_their_ends() -> None:
    longest = {"code": "X" * limits.MAX_PHASE_CODE_LEN, "phase": "fill"}
    ok = _with_source({"uart": dict(UART, prefix="P" * 16, codes=[longest], max_line=32)})
    assert ok["phase_source"]["uart"]["max_line"] == 32
    with pytest.raises(ProfileError):
        _with_source({"uart": dict(UART, codes=[{"code": "X" * 17, "phase": "fill"}])})
    assert _with_source({"uart": dict(UART, max_line=limits.MAX_PHASE_LINE)})
    with pytest.raises(ProfileError):
        _with_source({"uart": dict(UART, max_line=limits.MAX_PHASE_LINE + 1)})


def test_a_band_left_out_leaves_where_it_enters() -> None:
    src = _with_source({"rules": _rule(above=8)})["phase_source"]
    assert src["rules"][0]["when"][0]["leave_below"] == 8


# -- debounce ----------------------------------------------------------------------------------------
def test_a_glitch_shorter_than_the_debounce_never_shows_and_a_phase_lasts_at_least_it() -> None:
    d = phases.Debounce("idle", 2000)
    assert [d.offer(t, p) for t, p in [(0, "idle"), (1000, "fill"), (2000, "idle"), (3000, "fill")]] == ["idle"] * 4
    assert d.offer(4000, "fill") == "idle"  # held 1 s of 2
    assert d.offer(5000, "fill") == "fill"  # held 2 s: taken
    assert d.offer(6000, "spin") == "fill"
    assert d.offer(8000, "spin") == "spin"
    assert d.changes == 2
    assert phases.Debounce("idle", 0).offer(0, "spin") == "spin"


# -- rules -----------------------------------------------------------------------------------------
def _rules(**changes: object) -> phases.RulePhases:
    prof = _with_source(_source(**changes))
    return phases.RulePhases(prof["phase_source"], prof["phases"])


def _feed(src: phases.RulePhases, t_ms: int, **values: float) -> str:
    for ch, v in values.items():
        src.on_sample(ch, t_ms, v)
    return src.phase(t_ms)


def test_rules_give_the_first_phase_whose_conditions_hold_with_hysteresis() -> None:
    src = _rules(debounce_s=0)
    quiet = {"heater_current": 0.0, "motor_current": 0.0, "drum_vibration": 0.0, "water_flow": 0.0}
    assert _feed(src, 0, **quiet) == "idle"
    assert _feed(src, 1000, water_flow=1.5) == "fill"
    assert _feed(src, 2000, water_flow=0.7) == "fill"  # in the band: still filling
    assert _feed(src, 3000, water_flow=0.4) == "idle"
    assert _feed(src, 4000, heater_current=8.5, water_flow=5) == "heating"  # the first rule wins over fill
    assert _feed(src, 5000, heater_current=7.0, water_flow=0) == "heating"  # band 6..8
    assert _feed(src, 6000, heater_current=5.9) == "idle"
    assert _feed(src, 7000, motor_current=2.5) == "idle"  # spin needs both conditions
    assert _feed(src, 8000, drum_vibration=0.31) == "spin"
    assert _feed(src, 9000, drum_vibration=0.25, motor_current=1.6) == "spin"
    assert _feed(src, 10000, drum_vibration=0.1) == "idle"


def test_below_conditions_mirror_above() -> None:
    src = _rules(debounce_s=0, rules=[{"phase": "fill", "when": [{"channel": "water_flow", "below": 2,
                                                                  "leave_above": 4}]}])  # fmt: skip
    assert [_feed(src, t * 1000, water_flow=v) for t, v in enumerate([5, 3, 1.9, 3, 3.9, 4.1, 3])] == [
        "idle", "idle", "fill", "fill", "fill", "idle", "idle"]  # fmt: skip


def test_rules_debounce_the_phase() -> None:
    src = _rules(debounce_s=2)
    out = [_feed(src, t * 1000, heater_current=v) for t, v in enumerate([0, 9, 0, 9, 9, 9, 9])]
    assert out == ["idle", "idle", "idle", "idle", "idle", "heating", "heating"]


_BAND = st.floats(min_value=6.0, max_value=8.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(start=st.sampled_from([0.0, 12.0]), wiggle=st.lists(_BAND, min_size=1, max_size=60),
       debounce=st.sampled_from([0, 1, 3]))  # fmt: skip
def test_property_a_signal_wiggling_within_the_band_never_flips_the_phase(start: float, wiggle: list,
                                                                           debounce: int) -> None:  # fmt: skip
    src = _rules(debounce_s=debounce)
    t = 0
    for _ in range(5):  # settle at the start level, past the debounce
        phase = _feed(src, t, heater_current=start)
        t += 1000
    assert phase == ("heating" if start > 8 else "idle")
    for v in wiggle:
        assert _feed(src, t, heater_current=v) == phase
        t += 1000


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["heater_current", "motor_current", "drum_vibration", "water_flow"]),
                          st.floats(min_value=0, max_value=16, allow_nan=False)), max_size=80))  # fmt: skip
def test_property_rules_are_deterministic(readings: list) -> None:
    runs = []
    for _ in range(2):
        src = _rules()
        runs.append([_feed(src, i * 500, **{ch: v}) for i, (ch, v) in enumerate(readings)])
    assert runs[0] == runs[1]


def test_a_faulty_rule_channel_holds_the_phase_then_falls_back_once_and_says_so() -> None:
    said: list = []
    prof = _with_source(_source(debounce_s=0, silence_s=10))
    src = phases.RulePhases(prof["phase_source"], prof["phases"], said.append)
    others = {"motor_current": 0.5, "drum_vibration": 0.0, "water_flow": 0.0}
    for t in range(0, 5):
        assert _feed(src, t * 1000, heater_current=9.0, **others) == "heating"
    # The heater's sensor fails: the pipeline tells the rules nothing of it from t = 5 s.
    seen = [_feed(src, t * 1000, **others) for t in range(5, 40)]
    assert seen[:10] == ["heating"] * 10  # its last reading stands for silence_s
    assert set(seen[11:]) == {"idle"} and src.debounce.changes == 2  # one change to the fallback, not back
    assert len(said) == 1 and "heater_current" in said[0] and "'idle'" in said[0]
    assert _feed(src, 40_000, heater_current=9.0) == "heating"
    assert len(said) == 2 and "recovered" in said[1]


# -- GPIO --------------------------------------------------------------------------------------------
class FakeLines:
    """Emulated GPIO lines for the Pi adapter: levels set by the test; fail raises OSError."""

    def __init__(self) -> None:
        self.values = [0, 0]
        self.fail = False
        self.opened = 0

    def open(self, chip: str, offsets: list, pull: str) -> "FakeLines":
        assert (chip, offsets, pull) == ("gpiochip0", [5, 6], "none")
        self.opened += 1
        if self.fail:
            raise OSError(16, "busy")
        return self

    def levels(self) -> list:
        if self.fail:
            raise OSError(5, "I/O error")
        return list(self.values)


def _gpio(lines: FakeLines, said: list, **changes: object) -> object:
    prof = _with_source({"gpio": dict(GPIO, **changes), "debounce_s": 1, "silence_s": 5})
    return host.phase_source(prof, {"open_gpio_lines": lines.open, "report": said.append})


def test_gpio_codes_become_phases_through_the_table_with_debounce() -> None:
    lines = FakeLines()
    src = _gpio(lines, [])
    seq = [[0, 0], [1, 0], [1, 0], [0, 1], [1, 1], [1, 1], [1, 1]]
    out = []
    for t, levels in enumerate(seq):
        lines.values = levels
        out.append(src.phase(t * 1000))  # type: ignore[attr-defined]
    # bit 0 is the first line: [1, 0] is 1 (fill); [0, 1] is 2 (heating), shown for one look only.
    assert out == ["idle", "idle", "fill", "fill", "fill", "spin", "spin"]
    assert lines.opened == 1


def test_gpio_active_low_and_unknown_codes() -> None:
    lines = FakeLines()
    src = _gpio(lines, [], active_low=True, codes=[{"code": 0, "phase": "idle"}, {"code": 1, "phase": "fill"}])
    lines.values = [0, 1]  # active low: the first line is a 1, the second a 0
    assert [src.phase(t) for t in (0, 1000)] == ["idle", "fill"]  # type: ignore[attr-defined]
    lines.values = [0, 0]  # code 3: not in the table
    assert [src.phase(t) for t in (2000, 3000)] == ["fill", "idle"]  # type: ignore[attr-defined]
    assert src.core.unknown_codes == 2  # type: ignore[attr-defined]


def test_gpio_lines_that_fail_hold_the_code_until_the_silence_bound_and_are_opened_again() -> None:
    lines = FakeLines()
    said: list = []
    src = _gpio(lines, said)
    lines.values = [1, 1]
    assert [src.phase(t) for t in (0, 1000)] == ["idle", "spin"]  # type: ignore[attr-defined]
    lines.fail = True
    held = [src.phase(t * 1000) for t in range(2, 14)]  # type: ignore[attr-defined]
    assert held[:5] == ["spin"] * 5 and held[-1] == "idle"
    assert src.core.read_faults == 12 and len(said) == 1 and "could not be read" in said[0]  # type: ignore[attr-defined]
    lines.fail = False
    assert [src.phase(t) for t in (14_000, 15_000)] == ["idle", "spin"]  # type: ignore[attr-defined]
    assert "recovered" in said[-1] and lines.opened > 2


def test_without_gpiod_the_default_opener_says_what_to_install() -> None:
    try:
        import gpiod  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        with pytest.raises(Exception, match="pip install gpiod"):
            phase_io.open_gpiod_lines("gpiochip0", [5], "none")
    else:
        pytest.skip("gpiod is installed here; the message is for hosts without it")


# -- UART lines --------------------------------------------------------------------------------------
def _lines(said: list | None = None, **changes: object) -> phases.LinePhases:
    prof = _with_source({"uart": dict(UART, **changes), "silence_s": 5})
    return phases.LinePhases(prof["phase_source"], prof["phases"], (said if said is not None else []).append)


def test_uart_lines_garbage_overlong_and_split() -> None:
    src = _lines(max_line=8)
    src.feed(0, b"PH=1\r\n")
    assert src.phase(0) == "fill"
    src.feed(100, b"PH")  # a line in pieces
    assert src.phase(100) == "fill"
    src.feed(200, b"=2\r")
    src.feed(300, b"\nPH=9\nXX=3\nPH=\xff3\n\n\r\n  PH=3  \n")  # unknown code, foreign prefix, a byte not ASCII
    assert (src.lines, src.garbage, src.overlong) == (3, 3, 0)
    assert src.phase(300) == "spin"
    src.feed(400, b"PH=1" + b"1" * 100 + b"\nPH=1\n")  # overlong: skipped to its end, the next one taken
    assert (src.lines, src.garbage, src.overlong, src.phase(400)) == (4, 3, 1, "fill")
    src.feed(500, b"PH=0....\nPH=0.....\n")  # 8 bytes is the bound: taken (as garbage); 9 is overlong
    assert (src.garbage, src.overlong) == (4, 2)


def test_uart_without_prefix_reads_whole_lines() -> None:
    src = _lines(prefix=None, codes=[{"code": "STATE:DRAIN", "phase": "drain"}])
    src.feed(0, b"STATE:DRAIN\r\n")
    assert src.phase(0) == "drain"


def test_a_silent_controller_means_the_fallback_and_one_line_said() -> None:
    said: list = []
    src = _lines(said)
    assert src.phase(0) == "idle"
    src.feed(1000, b"PH=2\n")
    assert [src.phase(t) for t in (1000, 6000, 6001, 9000)] == ["heating", "heating", "idle", "idle"]
    assert len(said) == 1 and "no valid line" in said[0]
    src.feed(9500, b"garbage\n" * 20)  # garbage is not hearing from the controller
    assert src.phase(9500) == "idle" and len(said) == 1
    src.feed(10_000, b"PH=3\n")
    assert src.phase(10_000) == "spin" and "recovered" in said[-1]


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(0, 400), max_size=12))
def test_property_any_bytes_in_any_pieces_parse_as_when_whole(data: bytes, cuts: list) -> None:
    whole = _lines(max_line=16)
    whole.feed(0, data)
    pieces = _lines(max_line=16)
    at = 0
    for cut in sorted(cuts) + [len(data)]:
        pieces.feed(0, data[at:cut])
        at = max(at, cut)
    keys = ("lines", "garbage", "overlong", "last")
    assert [getattr(whole, k) for k in keys] == [getattr(pieces, k) for k in keys]
    assert whole.lines + whole.garbage + whole.overlong <= data.count(b"\n") + data.count(b"\r") + 1
    assert whole.phase(0) in ps.PHASES


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([b"PH=0", b"PH=1", b"PH=2", b"PH=3"]), min_size=1, max_size=20),
       st.lists(st.binary(max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b), max_size=5))  # fmt: skip
def test_property_the_last_valid_line_sets_the_phase_whatever_garbage_comes_between(good: list, junk: list) -> None:
    src = _lines()
    stream = b""
    for i, line in enumerate(good):
        stream += line + b"\r\n" + (junk[i % len(junk)] + b"\n" if junk else b"")
    src.feed(0, stream)
    assert src.phase(0) == ["idle", "fill", "heating", "spin"][int(good[-1][-1:])]


# -- UART through a real pty (the Pi adapter) ----------------------------------------------------
@pytest.fixture
def serial_line() -> object:
    """A pty pair: the test writes the controller's bytes to the master; the adapter opens
    the slave's path as the Pi would open /dev/ttyUSB0."""
    master, slave = os.openpty()
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


def test_uart_through_a_pty_garbage_split_lines_bounds_and_silence(serial_line: tuple) -> None:
    master, path = serial_line
    said: list = []
    prof = _with_source({"uart": dict(UART, device=path, baud=115200), "silence_s": 5})
    src = host.phase_source(prof, {"report": said.append})
    assert isinstance(src, phase_io.TtyPhaseSource)
    try:
        assert src.phase(0) == "idle"
        os.write(master, b"PH=2\r\nnoise\xfe\xff\r\nPH")
        assert src.phase(1000) == "heating"
        os.write(master, b"=3\r\n")
        assert src.phase(2000) == "spin"
        os.write(master, b"PH=" + b"1" * 200 + b"\r\n")
        assert src.phase(3000) == "spin" and (src.core.garbage, src.core.overlong) == (1, 1)
        # One look takes at most PHASE_UART_READ_MAX bytes; the rest waits for the next.
        burst = b"PH=0\r\n" * 300  # 1800 bytes
        os.write(master, burst)
        src.take(4000)
        assert src.core.lines == 2 + limits.PHASE_UART_READ_MAX // 6
        src.take(4000)
        assert src.core.lines == 2 + 300 and src.phase(4000) == "idle"
        assert src.phase(9001) == "idle" and said and "no valid line" in said[-1]
        os.write(master, b"PH=1\n")
        assert src.phase(9500) == "fill" and "recovered" in said[-1]
    finally:
        src.close()


def test_uart_device_that_cannot_be_opened_counts_as_silence() -> None:
    said: list = []
    prof = _with_source({"uart": dict(UART, device="/dev/wichtel-test-no-such-tty"), "silence_s": 2})
    src = host.phase_source(prof, {"report": said.append})
    assert [src.phase(t) for t in (0, 1000, 2500)] == ["idle"] * 3  # type: ignore[attr-defined]
    assert src.read_faults == 3 and "no valid line" in said[0]  # type: ignore[attr-defined]


def test_host_gives_no_phase_source_for_a_profile_without_one() -> None:
    assert host.phase_source(ps.validated(phase_source=None)) is None


# -- through the Agent --------------------------------------------------------------------------------
def _run_agent(washer: ps.Washer, hours: float, broken: tuple = ()) -> tuple:
    prof = ps.validated()
    drivers = washer.drivers(prof)
    if broken:
        drivers[broken[0]].broken = broken[1:]
    source = host.phase_source(prof, {"report": lambda text: None})
    seen: list = []

    def observe(stage: str, a: object, b: object) -> None:
        if stage == "tick":
            seen.append((a, b))

    agent = Agent(prof, "d", drivers, ManualClock(), source, observer=observe)  # type: ignore[arg-type]
    asyncio.run(agent.run(int(hours * 3_600_000)))
    return agent, seen


def test_a_rules_phase_source_gives_the_agent_the_phases_and_cycle_features_measure_them() -> None:
    heat = [300, 300, 300, 300, 300, 300, 600]  # the last cycle's heating takes twice as long
    washer = ps.Washer(heat)
    agent, seen = _run_agent(washer, 7 * 1200 / 3600 + 0.1)
    # The phase follows the truth one tick (the lag) plus the debounce (2 s) late, every time.
    late = [t for t, phase in seen if phase != washer.state(t - 3000)]
    assert late == [], late[:5]
    procs = {ch.id: ch.procs[0][0] for ch in agent.channels if ch.procs}
    assert procs["heater_current"].cycles == 7
    ref = sorted(procs["heater_current"].reference[: procs["heater_current"].ref_len])
    assert ref == [300.0] * 5  # the heating phase measured exactly
    assert list(procs["water_flow"].reference[:5]) == [60.0] * 5
    # The processor ends a cycle at its first resting sample, before adding that sample's
    # interval: the cycle's last phase measures one sample period short, as with any source.
    assert list(procs["motor_current"].reference[:5]) == [119.0] * 5
    events = [e for e in agent.local_events.items() if e.fields.get("detector") == "cycle_feature"]
    assert [(e.channel, e.phase) for e in events] == [("heater_current", "heating")]
    assert events[0].fields["value"] == 600.0


def test_a_sensor_fault_on_a_rule_channel_is_reported_and_the_phase_falls_back_once() -> None:
    washer = ps.Washer([300])
    # The heater's sensor is out from 200 s to 260 s into the first heating phase (160 s .. 460 s).
    agent, seen = _run_agent(washer, 0.2, broken=("heater_current", 200_000, 260_000))
    during = [phase for t, phase in seen if 200_000 <= t < 262_000]
    changes = [i for i in range(1, len(during)) if during[i] != during[i - 1]]
    assert during[0] == "heating" and len(changes) <= 2  # held, then the fallback once, then back
    assert "idle" in during
    faults = [e for e in agent.local_events.items() if e.kind == "sensor_fault"]
    assert faults and faults[0].fields["reason"] == "absent"


def test_a_real_run_on_a_pi_takes_the_profiles_phase_source_or_else_the_first_phase(tmp_path: str) -> None:
    prof = ps.validated()
    for ch in prof["channels"]:
        ch["driver"], ch["driver_options"] = "linux_iio", {"device": 0, "input": 0}
    drivers, source = host.real(prof, {"sysfs": str(tmp_path)})
    assert isinstance(source, phases.RulePhases) and set(drivers) == {c["id"] for c in prof["channels"]}
    prof["phase_source"] = None
    _, source = host.real(prof, {"sysfs": str(tmp_path)})
    assert isinstance(source, host.FixedPhase) and source.phase(0) == prof["phases"][0]
