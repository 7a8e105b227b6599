"""The hardware-in-the-loop scenarios (hil_tests/scenarios.py) on the micropython target: the
MicroPython unix port with a fixed heap, real sockets and TLS; and the accelerated soak in
that heap (a day by default, a week under the slow marker)."""

import os

import pytest

from hil_tests import scenarios
from tests import hil

# Starts killed at random points: the 20 here, where a start costs least (the
# interpreter starts in milliseconds; 20 took 8 to 15 s), 10 on the sim target.
POWER_CUTS = 20
# What the live heap (sampled twice a second, after a collection) may grow in the soak above
# where it stood when the agent was built (code, profile, models: 274 KB), with the agent's
# memory sized for an ESP32: the link's TLS buffers and the bounded rings filling. Measured
# on an idle machine +28 to +31 KB over a day and +39 KB over a week (peak 314 KB in the
# 512 KB heap); a day on a loaded CI machine peaked at 318 KB (about +44 KB: more messages in
# flight at a sample). A leak of 300 bytes a message (107 in the week) fails the week.
SOAK_GROWTH_BYTES = 64 * 1024


@pytest.mark.parametrize("name", sorted(scenarios.SCENARIOS))
def test_scenario(name: str, request: pytest.FixtureRequest, tmp_path: "os.PathLike[str]") -> None:
    hil.run("micropython", name, request, tmp_path, POWER_CUTS)


def _soak(days: float, broker: object, tmp_path: str) -> None:
    target = hil.target("micropython")
    report = scenarios.soak(target, broker, str(tmp_path), days=days)  # type: ignore[arg-type]
    print(report)
    assert report["heap_total_bytes"] <= target.heap  # type: ignore[attr-defined]
    assert 0 < report["heap_start_bytes"] <= report["heap_peak_bytes"], report
    assert report["heap_peak_bytes"] - report["heap_start_bytes"] <= SOAK_GROWTH_BYTES, report


def test_soak_one_day_in_a_fixed_heap(broker: object, tmp_path: str) -> None:
    _soak(1, broker, tmp_path)


@pytest.mark.slow
def test_soak_one_week_in_a_fixed_heap(broker: object, tmp_path: str) -> None:
    _soak(7, broker, tmp_path)
