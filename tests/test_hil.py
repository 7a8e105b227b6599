"""The hardware-in-the-loop scenarios (hil_tests/scenarios.py) on the sim target (CPython)
and the serial target (a board through mpremote: skipped when none is attached). The
micropython target runs them in tests/test_hil_micropython.py (a file of its own, so that
the two run side by side)."""

import os

import pytest

from hil_tests import scenarios
from tests import hil

POWER_CUTS = 10  # starts killed at random points (20 on the micropython target, where a start costs less)


@pytest.mark.parametrize("name", sorted(scenarios.SCENARIOS))
@pytest.mark.parametrize("target_name", ["sim", "serial"])
def test_scenario(target_name: str, name: str, request: pytest.FixtureRequest, tmp_path: "os.PathLike[str]") -> None:
    hil.run(target_name, name, request, tmp_path, POWER_CUTS)
