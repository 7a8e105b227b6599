"""Packaging as users expect it: one version (agent/core/__init__.py), shown by `wichtel
--version` and reported in the device's status; LICENSE, CHANGELOG and py.typed shipped."""

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib

from agent.cli import main
from agent.core import VERSION
from agent.profile_loader import example
from provisioning.local_broker import Service

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pyproject() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def test_the_version_is_written_in_one_place() -> None:
    """pyproject reads it from the core, which the board has too (it has no package metadata)."""
    project = _pyproject()
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "agent.core.VERSION"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", VERSION)
    # No second copy of it in the code or the build files.
    copies = []
    for top in ("agent", "provisioning", "firmware", "tools"):
        for dirpath, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = [d for d in dirs if d not in ("__pycache__", "node_modules")]
            for name in files:
                if name.endswith((".py", ".toml", ".cfg")):
                    with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                        if '"%s"' % VERSION in f.read():
                            copies.append(os.path.relpath(os.path.join(dirpath, name), ROOT))
    assert copies == [os.path.join("agent", "core", "__init__.py")]


def test_wichtel_version_prints_the_installed_version() -> None:
    wichtel = os.path.join(os.path.dirname(sys.executable), "wichtel")
    for cmd in ([wichtel], [sys.executable, "-m", "agent"]):
        proc = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and proc.stdout == "wichtel %s\n" % VERSION, proc
    assert importlib.metadata.version("wichtel") == VERSION  # the metadata pip installed, from the same place


def test_the_device_status_reports_the_version(broker: object, tmp_path: "os.PathLike[str]") -> None:
    service = Service(broker)  # type: ignore[arg-type]
    crt, key = broker.certs["dev-1"]  # type: ignore[attr-defined]
    try:
        assert main(["run", "--profile", example("washing_machine"), "--simulate", "--hours", "1",
                     "--data-dir", str(tmp_path), "--device-id", "dev-1", "--broker", "localhost:%d" % broker.port,  # type: ignore[attr-defined]
                     "--ca", broker.ca_path, "--cert", crt, "--key", key]) == 0  # type: ignore[attr-defined]  # fmt: skip
        status: list = []
        deadline = time.monotonic() + 20
        while not status and time.monotonic() < deadline:
            status = [json.loads(m[1]) for m in service.received("dev-1/essential") if b'"kind":"status"' in m[1]]
            time.sleep(0.05)
    finally:
        service.close()
    assert status, "no status arrived"
    body = status[0]
    assert body["kind"] == "status" and body["data"]["firmware"] == VERSION, body


def test_license_and_changelog() -> None:
    with open(os.path.join(ROOT, "LICENSE"), encoding="utf-8") as f:
        text = f.read()
    assert text.startswith("MIT License") and "Copyright (c) 2026 The Wichtel authors" in text
    assert _pyproject()["project"]["license"] == {"text": "MIT"}
    with open(os.path.join(ROOT, "CHANGELOG.md"), encoding="utf-8") as f:
        changelog = f.read()
    assert "Keep a Changelog" in changelog and "## [Unreleased]" in changelog
    assert "## [%s] - " % VERSION in changelog  # the version the code carries has its entry


def test_py_typed_is_package_data() -> None:
    assert os.path.isfile(os.path.join(ROOT, "agent", "py.typed"))
    assert "py.typed" in _pyproject()["tool"]["setuptools"]["package-data"]["agent"]


def test_the_build_carries_py_typed_the_version_and_the_commands(tmp_path: "os.PathLike[str]") -> None:
    """What a wheel is made of (build_py's files, egg_info's metadata), built from a copy so
    the tree gets no build/ or egg-info of its own."""
    src = os.path.join(tmp_path, "src")
    os.makedirs(src)
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), src)
    shutil.copy(os.path.join(ROOT, "README.md"), src)
    for package in ("agent", "provisioning"):
        shutil.copytree(os.path.join(ROOT, package), os.path.join(src, package),
                        ignore=shutil.ignore_patterns("__pycache__", "*.mpy"))  # fmt: skip
    out = os.path.join(tmp_path, "out")
    proc = subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py",
                           "--build-lib", out, "egg_info", "--egg-base", tmp_path],
                          capture_output=True, text=True, timeout=300, cwd=src)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert os.path.isfile(os.path.join(out, "agent", "py.typed"))
    assert os.path.isfile(os.path.join(out, "agent", "profiles", "washing_machine.yaml"))
    info = os.path.join(tmp_path, "wichtel.egg-info")
    with open(os.path.join(info, "PKG-INFO"), encoding="utf-8") as f:
        assert "\nVersion: %s\n" % VERSION in f.read()
    with open(os.path.join(info, "entry_points.txt"), encoding="utf-8") as f:
        entry_points = f.read()
    assert "provision = provisioning.cli" in entry_points and "wichtel = agent.cli:main" in entry_points
