"""The hardware-in-the-loop scenarios (hil_tests/scenarios.py) on the sim target (CPython)
and the serial target (a board through mpremote: skipped when none is attached). The
micropython target runs them in tests/test_hil_micropython.py (a file of its own, so that
the two run side by side)."""

import pytest

from hil_tests import scenarios
from tests import hil

POWER_CUTS = 10  # starts killed at random points (20 on the micropython target, where a start costs less)


@pytest.mark.parametrize("name", sorted(scenarios.SCENARIOS))
@pytest.mark.parametrize("target_name", ["sim", "serial"])
def test_scenario(target_name: str, name: str, broker: object, tmp_path: str) -> None:
    target = hil.target(target_name)
    if name in ("power_cut", "corrupt_files") and not target.host_files:
        pytest.skip(
            "%s: the %s target keeps its data on the board's flash, out of this host's reach" % (name, target_name)
        )
    work = hil.work_dir(tmp_path)  # type: ignore[arg-type]
    if name == "power_cut":
        print(scenarios.power_cut(target, broker, work, runs=POWER_CUTS))  # type: ignore[arg-type]
    else:
        print(scenarios.SCENARIOS[name](target, broker, work))  # type: ignore[operator]
