"""Shared fixtures: compiled example profiles and the MicroPython runtime."""

import os

import pytest

from agent import profile_loader
from tests import micropython

EXAMPLES = ("washing_machine", "coffee_machine", "dishwasher")


@pytest.fixture(scope="session")
def compiled_profiles(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A directory with the example profiles compiled to JSON, as devices get them."""
    out = tmp_path_factory.mktemp("profiles")
    for kind in EXAMPLES:
        prof = profile_loader.load(profile_loader.example(kind))
        (out / (kind + ".json")).write_bytes(profile_loader.compile_json(prof))
    return str(out)


@pytest.fixture(scope="session")
def mp_runtime() -> object:
    """The MicroPython runner; fails (does not skip) when the runtime is missing."""
    missing = micropython.available()
    if missing:
        pytest.fail("MicroPython runtime unavailable: " + missing)
    return micropython


@pytest.fixture
def broker(tmp_path: "os.PathLike[str]") -> object:
    """A real Mosquitto with TLS, client certificates and a per-device ACL."""
    import shutil

    from provisioning.local_broker import Broker

    if shutil.which("mosquitto") is None:
        pytest.fail("mosquitto is not installed: run `make test` (it installs the Debian package)")
    b = Broker(str(tmp_path))
    b.start()
    yield b
    b.stop()


@pytest.fixture
def write_file(tmp_path: "os.PathLike[str]") -> object:
    def write(name: str, text: str) -> str:
        path = os.path.join(tmp_path, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    return write


@pytest.fixture(scope="session")
def cpython_results(compiled_profiles: str) -> dict:
    """The portable cases' results on CPython (tests/portable), which every MicroPython
    runtime must give too (tests/test_portable.py, tests/test_portable_unix.py)."""
    import asyncio
    import json

    from tests.portable import cases, runner

    results = asyncio.run(runner.run_all(cases, compiled_profiles))
    # Through JSON, as the MicroPython results come: tuples become lists.
    return json.loads(json.dumps(results))  # type: ignore[no-any-return]
