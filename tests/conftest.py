"""Shared fixtures: compiled example profiles and the MicroPython runtime."""

import os

import pytest
from hypothesis import settings

from agent import profile_loader
from tests import micropython

EXAMPLES = ("washing_machine", "coffee_machine", "dishwasher")

# No per-example deadline for property tests: on a shared 2-core machine running four
# workers an example can take longer than hypothesis's 200 ms default without anything
# being wrong (a test that measures speed belongs in bench/). Tests that set their own
# settings keep them; every other setting stays hypothesis's default.
settings.register_profile("wichtel", deadline=None)
settings.load_profile("wichtel")


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


# Test files left out of `make check` (the quick tier a developer runs in about a minute):
# each starts a runtime, a browser, real brokers for many seconds, or a benchmark. `make test`
# runs them all.
HEAVY_FILES = {
    "test_portable.py": "every portable case on the MicroPython WebAssembly port",
    "test_portable_unix.py": "every portable case on the MicroPython unix port",
    "test_memory.py": "simulated days in a fixed MicroPython heap",
    "test_micropython_uplink.py": "the board runtime on the unix port against Mosquitto",
    "test_firmware_main.py": "the board's main.py on the unix port: onboarding, Wi-Fi, watchdog, Mosquitto",
    "test_local_page_micropython.py": "the page on the unix port, with Chromium",
    "test_local_page_browser.py": "Chromium against the page and Mosquitto",
    "test_local_page_board.py": "the board's page server on the unix port",
    "test_local_page_attacks.py": "floods of connections against the page",
    "test_soak_hostile.py": "a simulated day with hostile neighbours",
    "test_hostile_peer.py": "hostile brokers, with the real reconnect waits",
    "test_uplink_agent.py": "broker restarts during streams, killed agents",
    "test_uplink_network.py": "a black hole and packet loss between device and broker",
    "test_uplink.py": "the uplinks against a restarting Mosquitto",
    "test_delivery_truth.py": "refusals retried after their real waits",
    "test_provisioning_broker.py": "provisioned devices against Mosquitto",
    "test_provisioning_scale.py": "a batch of 1000 devices",
    "test_provisioning_identities.py": "property tests that issue certificates",
    "test_cli.py": "the demo and a replayed simulation through the CLI",
    "test_consumables_host.py": "the consumables benchmark",
    "test_privacy_host.py": "the minimization benchmark and the CLI",
    "test_profile_hostile.py": "hostile profiles through the CLI in bounded memory",
    "test_bench.py": "the benchmarks",
    "test_asyncapi.py": "real messages through Mosquitto against the contract",
    "test_layers.py": "fresh interpreters that import the agent",
    "test_local_page_templates.py": "every page on the unix port, and property tests over every page",
    "test_firmware_build.py": "firmware images compiled with mpy-cross, imported on the unix port",
    # The hardware-in-the-loop scenarios (hil_tests/): device processes against Mosquitto.
    "test_hil.py": "the hardware-in-the-loop scenarios on the sim target",
    "test_hil_micropython.py": "the hardware-in-the-loop scenarios and the soak on the unix port",
}


# The files that take longest (wall clock on an idle machine, most of it waiting on brokers,
# backoffs and runtimes), longest first. They run first, each file on one worker, so that no
# long file is left running alone at the end while the other workers idle. The Makefile's
# --no-loadscope-reorder keeps this order (pytest-xdist would otherwise start the files with
# the most tests first).
LONGEST_FIRST = [
    "test_hostile_peer.py",
    "test_firmware_main.py",
    "test_uplink_agent.py",
    "test_micropython_uplink.py",
    "test_hil_micropython.py",
    "test_local_page_browser.py",
    "test_hil.py",
    "test_provisioning_broker.py",
    "test_local_page_attacks.py",
    "test_cli.py",
    "test_portable.py",
    "test_delivery_truth.py",
    "test_uplink_network.py",
    "test_uplink.py",
    "test_soak_hostile.py",
    "test_memory.py",
    "test_layers.py",
    "test_profile_hostile.py",
    "test_local_page_micropython.py",
    "test_sim_profile.py",
    "test_consumables_host.py",
    "test_bench.py",
    "test_local_page_templates.py",
    "test_asyncapi.py",
    "test_portable_unix.py",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    for item in items:
        if item.path.name in HEAVY_FILES:
            item.add_marker(pytest.mark.heavy)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest as collected
