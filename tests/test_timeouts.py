"""The time limits of the runtimes tests start: a CPU budget a busy machine cannot use up,
and a wall-clock limit that grows with the load."""

import signal
import subprocess
import sys
import time

import pytest

from tests import timeouts


def test_a_child_that_runs_away_is_stopped_by_its_cpu_budget() -> None:
    t0 = time.monotonic()
    proc = timeouts.run([sys.executable, "-c", "while True: pass"], 1, capture_output=True)
    assert proc.returncode == -signal.SIGXCPU
    assert time.monotonic() - t0 < timeouts.wall_s(1)


def test_a_child_within_its_budget_runs_to_the_end_and_is_given_its_input() -> None:
    proc = timeouts.run(
        [sys.executable, "-c", "print(input()[::-1])"], 5, input="abc\n", capture_output=True, text=True
    )
    assert (proc.returncode, proc.stdout) == (0, "cba\n")


def test_a_child_that_waits_forever_meets_the_wall_clock_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timeouts, "WALL_PER_CPU", 0.5)
    t0 = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        timeouts.run([sys.executable, "-c", "import time; time.sleep(60)"], 1, capture_output=True)
    assert time.monotonic() - t0 < 30


def test_the_wall_clock_limit_grows_with_the_load_and_the_users_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timeouts.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(timeouts.os, "getloadavg", lambda: (1.0, 0.0, 0.0))
    idle = timeouts.wall_s(10)
    assert idle == 10 * timeouts.WALL_PER_CPU  # a load below one per core counts as idle
    monkeypatch.setattr(timeouts.os, "getloadavg", lambda: (8.0, 0.0, 0.0))
    assert timeouts.wall_s(10) == 4 * idle
    monkeypatch.setenv("WICHTEL_TIMEOUT_SCALE", "2.5")
    assert timeouts.wall_s(10) == 10 * idle


@pytest.mark.parametrize("raw", ["fast", "0", "-1", "nan"])
def test_a_scale_that_is_no_positive_number_is_refused_with_its_value(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("WICHTEL_TIMEOUT_SCALE", raw)
    with pytest.raises(ValueError, match="WICHTEL_TIMEOUT_SCALE"):
        timeouts.wall_s(1)


def test_the_tiers_name_only_test_files_that_exist() -> None:
    """HEAVY_FILES (left out of make check) and LONGEST_FIRST (started first) name real files:
    a renamed file would silently join the quick tier or the end of the run."""
    import os

    from tests import conftest

    here = set(os.listdir(os.path.dirname(os.path.abspath(__file__))))
    assert set(conftest.HEAVY_FILES) <= here, set(conftest.HEAVY_FILES) - here
    assert set(conftest.LONGEST_FIRST) <= here, set(conftest.LONGEST_FIRST) - here
    assert len(set(conftest.LONGEST_FIRST)) == len(conftest.LONGEST_FIRST)
