"""The layer rules of docs/layers.md, checked on the tree and shown to catch intruders,
and what `wichtel run` loads (neither provisioning nor cryptography)."""

import importlib.metadata
import os
import shutil
import subprocess
import sys

import pytest

from tools import layers

ROOT = layers.ROOT
WASHER = os.path.join(ROOT, "agent", "profiles", "washing_machine.yaml")


def test_the_tree_keeps_the_layer_rules() -> None:
    assert layers.problems(ROOT) == []


def test_the_host_adapters_are_the_modules_that_need_cpython() -> None:
    """The list firmware/ is held to: each module named with why; the portable ones are not in it."""
    adapters = layers.host_adapters(ROOT)
    for module in ("agent.uplink_paho", "agent.files", "agent.profile_loader", "agent.bundle", "agent.cli",
                   "agent.local_page.server", "agent.device_data", "agent.device"):  # fmt: skip
        assert module in adapters, module
    for module in ("agent.setup_code", "agent.local_page.board", "agent.sim.engine", "agent.core.pipeline"):
        assert module not in adapters, (module, adapters.get(module))
    assert "paho" in adapters["agent.uplink_paho"] and "agent.files" in adapters["agent.device_data"]


@pytest.fixture(scope="module")
def clean_tree(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A copy of agent/ and firmware/, checked once to pass the rules."""
    root = str(tmp_path_factory.mktemp("clean"))
    for part in ("agent", "firmware"):
        shutil.copytree(os.path.join(ROOT, part), os.path.join(root, part),
                        ignore=shutil.ignore_patterns("__pycache__", "*.mpy", "*.yaml", "*.css"))  # fmt: skip
    assert layers.problems(root) == []
    return root


@pytest.fixture
def tree(clean_tree: str, tmp_path: "os.PathLike[str]") -> str:
    """A copy of the clean tree, for an intruder to be put into."""
    root = os.path.join(str(tmp_path), "tree")
    shutil.copytree(clean_tree, root)
    return root


# (module, code appended to it, what the report must say)
INTRUDERS = [
    ("agent/cli.py", "import provisioning.pki\n", "import of provisioning.pki: agent/ never imports provisioning/"),
    ("agent/device.py", "def f():\n    from provisioning.bundle import for_run\n",
     "lazy import of provisioning.bundle: agent/ never imports provisioning/"),
    ("agent/host.py", "import importlib\nimportlib.import_module('provisioning.cli')\n",
     "import by string of provisioning.cli: agent/ never imports provisioning/"),
    ("agent/replay.py", "def f():\n    return __import__('hil_tests.board')\n",
     "import by string of hil_tests.board: agent/ never imports hil_tests/"),
    ("agent/files.py", "import importlib\n\ndef f(name):\n    return importlib.import_module(name)\n",
     "import by string of a module named at run time: agent/ imports only modules it names"),
    ("agent/core/gate.py", "import yaml\n", "import of yaml: the core imports only itself"),
    ("agent/core/ring.py", "def f():\n    from agent import files\n", "lazy import of agent.files: the core imports"),
    ("agent/core/clock.py", "from .. import cli\n", "import of agent.cli: the core imports only itself"),
    ("agent/core/outbox.py", "import provisioning\n", "agent/ never imports provisioning/"),
    ("firmware/runtime.py", "from agent.uplink_paho import PahoUplink\n",
     "import of agent.uplink_paho: firmware/ never imports host adapters (agent.uplink_paho imports paho"),
    ("firmware/page_main.py", "def f():\n    import agent.profile_loader\n",
     "lazy import of agent.profile_loader: firmware/ never imports host adapters"),
    ("firmware/flash_store.py", "import threading\n", "firmware/ runs on MicroPython, which has no threading"),
    # One step removed: a module firmware/ imports becomes a host adapter.
    ("agent/sim/engine.py", "import threading\n",
     "import of agent.sim.engine: firmware/ never imports host adapters (agent.sim.engine imports threading"),
]  # fmt: skip


@pytest.mark.parametrize(("module", "code", "said"), INTRUDERS, ids=[i[0] + ":" + i[2][:30] for i in INTRUDERS])
def test_an_intruding_import_is_reported(tree: str, module: str, code: str, said: str) -> None:
    with open(os.path.join(tree, module), "a", encoding="utf-8") as f:
        f.write("\n" + code)
    found = layers.problems(tree)
    # Also reported: what follows from it (a core module that became a host adapter is one
    # firmware/ imports).
    assert [line for line in found if said in line], found


def test_the_command_line_tool_fails_on_an_intruder(tree: str) -> None:
    with open(os.path.join(tree, "agent", "cli.py"), "a", encoding="utf-8") as f:
        f.write("\nfrom provisioning import cli as provision_cli\n")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "layers.py"), tree],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 1 and "agent/cli.py:" in proc.stdout and "never imports provisioning/" in proc.stdout


def _imported(args: list) -> set:
    """Top-level packages a `python -m agent ...` process imported (python -X importtime)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "agent", *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)  # fmt: skip
    names = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert "agent" in names, proc.stderr[-2000:]
    return names


def test_wichtel_run_loads_neither_provisioning_nor_cryptography() -> None:
    names = _imported(["run", "--profile", WASHER, "--simulate", "--hours", "1"])
    assert "yaml" in names  # the check sees what the run loaded
    assert "provisioning" not in names and "cryptography" not in names


def test_wichtel_run_with_a_bundle_loads_no_provisioning() -> None:
    """The bundle's check is the device's own (agent/bundle.py); it needs cryptography for the
    signature, not the factory's tooling."""
    names = _imported(["run", "--bundle", os.path.join(ROOT, "no-such-bundle"), "--simulate", "--hours", "1"])
    assert "cryptography" in names and "provisioning" not in names


def test_an_agent_command_in_process_loads_no_provisioning() -> None:
    code = ("import sys, agent.cli\n"
            "rc = agent.cli.main(['run', '--profile', %r, '--simulate', '--hours', '1'])\n"
            "print(rc, sorted({m.split('.')[0] for m in sys.modules} & {'provisioning', 'cryptography', 'paho'}))\n"
            % WASHER)  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.stdout.splitlines()[-1] == "0 []", proc.stdout + proc.stderr


def test_provision_and_demo_are_commands_of_wichtel_that_provisioning_adds() -> None:
    """One `wichtel` for the user; the agent names neither module, the package metadata does."""
    added = {e.name: e.value for e in importlib.metadata.entry_points(group="wichtel.commands")}
    assert added == {"provision": "provisioning.cli", "demo": "provisioning.demo", "firmware": "provisioning.firmware"}
    wichtel = os.path.join(os.path.dirname(sys.executable), "wichtel")
    for cmd in ([wichtel], [sys.executable, "-m", "agent"]):
        proc = subprocess.run([*cmd, "provision", "verify", "--help"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and "usage: wichtel provision verify" in proc.stdout, proc.stderr
        proc = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and "provision" in proc.stdout and "demo" in proc.stdout
    proc = subprocess.run([wichtel, "provison"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "invalid choice: 'provison'" in proc.stderr and "'provision'" in proc.stderr


def test_the_agent_own_commands_load_no_added_command() -> None:
    from agent import cli

    assert cli.added_commands(["run", "--profile", "x"]) == {}
    assert cli.added_commands(["--version"]) == {}
    assert set(cli.added_commands(["provision", "init"])) == {"provision"}
    assert set(cli.added_commands(["--help"])) == {"provision", "demo", "firmware"}
