"""The board runtime's hooks for the hardware-in-the-loop suite (firmware/runtime.py): clock
jumps, the consent a start gives, and a bad start said in one line with exit 2."""

import asyncio

import pytest

from agent.core.clock import ManualClock
from agent.core.errors import ConfigError
from firmware import runtime

CATEGORIES = [{"id": "essential", "essential": True}, {"id": "maintenance"}, {"id": "usage_statistics"}]


def test_clock_jumps_are_read_in_time_order_up_to_their_bound() -> None:
    assert runtime.clock_jumps("") == []
    assert runtime.clock_jumps("500:-100,100:3600000") == [(100, 3600000), (500, -100)]
    at_bound = ",".join("%d:1" % i for i in range(runtime.MAX_CLOCK_JUMPS))
    assert len(runtime.clock_jumps(at_bound)) == runtime.MAX_CLOCK_JUMPS
    with pytest.raises(ConfigError, match="expected at most 8"):
        runtime.clock_jumps(at_bound + ",99:1")


@pytest.mark.parametrize("spec", ["1", "a:1", "1:b", "1:2:3", ",", "-5:1", "1.5:2"])
def test_a_clock_jump_that_is_not_one_is_refused_by_name(spec: str) -> None:
    with pytest.raises(ConfigError, match="--clock-jumps"):
        runtime.clock_jumps(spec)


def test_the_jumping_clock_reads_later_and_earlier_and_waits_across_its_jumps() -> None:
    inner = ManualClock()
    clock = runtime.JumpingClock(inner, [(100, 1000), (200, -1050)])
    assert clock.now_ms() == 0
    inner.t_ms = 99
    assert clock.now_ms() == 99
    inner.t_ms = 100
    assert clock.now_ms() == 1100  # forward
    asyncio.run(clock.sleep_until(1150))
    assert inner.t_ms == 150 and clock.now_ms() == 1150
    # A wait that spans the jump back: it stops at the jump, then waits the rest anew.
    asyncio.run(clock.sleep_until(1250))
    assert clock.now_ms() == 1250 and inner.t_ms == 1300  # at raw 200 the clock read 150: 1100 more
    asyncio.run(clock.sleep_until(0))  # a time passed: no wait, no negative one
    assert inner.t_ms == 1300


def test_the_consent_a_start_gives() -> None:
    assert runtime.consent_choices("all", CATEGORIES) == ["maintenance", "usage_statistics"]
    assert runtime.consent_choices("none", CATEGORIES) == []
    assert runtime.consent_choices("maintenance", CATEGORIES) == ["maintenance"]
    for spec in ("essential", "maintenance+sales", "", "ALL"):
        with pytest.raises(ConfigError, match="not an optional category"):
            runtime.consent_choices(spec, CATEGORIES)


def test_a_bad_start_is_one_line_and_exit_2(capsys: pytest.CaptureFixture, tmp_path: str) -> None:
    assert runtime.main(["--bundle", str(tmp_path), "--consent"]) == 2
    assert capsys.readouterr().out == "wichtel: arguments ['--bundle', '%s', '--consent']: expected --name value " \
                                      "pairs\n" % tmp_path  # fmt: skip
    assert runtime.main(["--bundle", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert out.startswith("wichtel: %s/bundle.json: cannot be read" % tmp_path) and out.count("\n") == 1
