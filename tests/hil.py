"""The hardware-in-the-loop scenarios (hil_tests/) as pytest runs them: a target by name,
failing when a target that must run here cannot (sim, micropython) and skipping, with the
target's own message, when no board is attached (serial)."""

import os

import pytest

from hil_tests import targets

MUST_RUN = ("sim", "micropython")  # make test runs these; serial needs a board


def target(name: str) -> targets.Target:
    t = targets.target(name)
    missing = t.missing()
    if missing and name in MUST_RUN:
        pytest.fail("the %s target cannot run: %s" % (name, missing))
    if missing:
        pytest.skip("the %s target: %s" % (name, missing))
    return t


def work_dir(tmp_path: "os.PathLike[str]") -> str:
    path = os.path.join(tmp_path, "hil")
    os.makedirs(path)
    return path
