"""The hardware-in-the-loop scenarios (hil_tests/) as pytest runs them: a target by name,
failing when a target that must run here cannot (sim, micropython) and skipping, with the
target's own message, when no board is attached (serial); the scenario's broker is started
only for a target that runs."""

import os

import pytest

from hil_tests import scenarios, targets

MUST_RUN = ("sim", "micropython")  # make test runs these; serial needs a board
_MISSING: dict = {}  # target name -> what is missing (looked for once per test process)


def target(name: str) -> targets.Target:
    t = targets.target(name)
    if name not in _MISSING:
        _MISSING[name] = t.missing()
    elif not _MISSING[name]:
        t.missing()  # the target sets itself up (the serial port) on each look
    missing = _MISSING[name]
    if missing and name in MUST_RUN:
        pytest.fail("the %s target cannot run: %s" % (name, missing))
    if missing:
        pytest.skip("the %s target: %s" % (name, missing))
    return t


def run(target_name: str, name: str, request: pytest.FixtureRequest, tmp_path: "os.PathLike[str]",
        power_cuts: int) -> None:  # fmt: skip
    """Scenario `name` on the target: skipped before anything starts when the target cannot run."""
    t = target(target_name)
    if name in ("power_cut", "corrupt_files") and not t.host_files:
        pytest.skip("%s: the %s target keeps its data on the board's flash, out of this host's reach"
                    % (name, target_name))  # fmt: skip
    broker = request.getfixturevalue("broker")
    work = os.path.join(tmp_path, "hil")
    os.makedirs(work)
    if name == "power_cut":
        print(scenarios.power_cut(t, broker, work, runs=power_cuts))
    else:
        print(scenarios.SCENARIOS[name](t, broker, work))  # type: ignore[operator]
