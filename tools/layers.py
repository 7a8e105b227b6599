"""Checks the layer rules of docs/layers.md: who may import whom among agent/core, agent/,
firmware/, provisioning/ and hil_tests/.

Used by tests/test_layers.py and by hand: `python tools/layers.py [ROOT]`. Every import
counts: at the top of a module, inside a function (a lazy import), and by string through
importlib.import_module or __import__; an import by a string the checker cannot read is
itself refused in the layers it guards. Imports under `if TYPE_CHECKING:` are never run.
"""

import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tools.portability import ALLOWED as CORE_ALLOWED  # noqa: E402 - the portable subset, kept in one place
from tools.portability import TYPE_ONLY  # noqa: E402

# What no module under agent/ may import: the factory's tooling and the hardware tests.
NOT_FROM_AGENT = ("provisioning", "hil_tests")
# The standard modules MicroPython 1.29 has (docs.micropython.org, "Python standard
# libraries and micro-libraries") plus its own: what device code may use. A module of
# agent/ that imports anything else, or such a module, is a host adapter.
MICROPYTHON_MODULES = {
    "array", "asyncio", "binascii", "builtins", "cmath", "collections", "errno", "gc", "hashlib", "heapq", "io",
    "json", "math", "os", "platform", "random", "re", "select", "socket", "ssl", "struct", "sys", "time", "zlib",
    "micropython", "machine", "network", "bluetooth", "deflate", "framebuf", "uctypes", "esp", "esp32", "neopixel",
    "vfs", "cryptolib", "__future__",
    "onewire", "ds18x20",  # frozen into the ESP32 firmware (the board's DS18B20 driver, firmware/board_wire.py)
    "microdot",  # pure Python, runs on MicroPython as it is: the board serves the local page with it
    "ntptime",  # micropython-lib, frozen into the ESP32 firmware: the board's NTP query (firmware/timesync.py)
}  # fmt: skip
_DYNAMIC = {"import_module", "__import__"}


class Import:
    """One import found in a module: the module named, where, and how (for the report)."""

    __slots__ = ("how", "line", "name", "path")

    def __init__(self, path: str, line: int, name: str, how: str) -> None:
        self.path = path
        self.line = line
        self.name = name  # absolute dotted name; "" for a dynamic import whose name cannot be read
        self.how = how  # "import", "lazy import" (inside a function) or "import by string"


def module_name(root: str, path: str) -> str:
    rel = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def _guarded(tree: ast.AST) -> set:
    out: set = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            out.update(id(inner) for inner in ast.walk(node))
    return out


def _in_functions(tree: ast.AST) -> set:
    out: set = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            out.update(id(inner) for inner in ast.walk(node))
    return out


def imports(root: str, path: str) -> list:
    """Every import in one module (see the module docstring), names made absolute."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    me = module_name(root, path)
    package = me if path.endswith("__init__.py") else me.rpartition(".")[0]
    guarded, lazy = _guarded(tree), _in_functions(tree)
    out = []
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        how = "lazy import" if id(node) in lazy else "import"
        if isinstance(node, ast.Import):
            out += [Import(path, node.lineno, a.name, how) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            # `from a import b` imports the module a.b when there is one, else a name of a.
            for alias in node.names:
                sub = os.path.join(root, *(base + "." + alias.name).split("."))
                is_module = os.path.exists(sub + ".py") or os.path.isdir(sub)
                out.append(Import(path, node.lineno, base + "." + alias.name if is_module else base, how))
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if called in _DYNAMIC:
                arg = node.args[0] if node.args else None
                name = arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else ""
                out.append(Import(path, node.lineno, name, "import by string"))
    return out


def _modules(directory: str) -> list:
    out = []
    for dirpath, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", "node_modules"))
        out += [os.path.join(dirpath, f) for f in sorted(files) if f.endswith(".py")]
    return out


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def host_adapters(root: str, found: dict | None = None) -> dict:
    """{module: why} for every module of agent/ that cannot be imported on MicroPython: it
    imports, when it is imported, a module MicroPython lacks, or a host adapter. A lazy
    import inside a function does not count here (agent/setup_code.py imports `secrets`
    only in the function that makes new codes, which the factory's host calls)."""
    if found is None:
        found = {p: imports(root, p) for p in _modules(os.path.join(root, "agent"))}
    found = {module_name(root, p): its for p, its in found.items()}
    why: dict = {}
    changed = True
    while changed:
        changed = False
        for module, its in found.items():
            if module in why:
                continue
            for imp in its:
                top = imp.name.split(".")[0]
                if imp.how == "lazy import":
                    continue
                if top in ("agent", "firmware"):
                    reason = "imports %s (a host adapter)" % imp.name if imp.name in why else ""
                elif top not in MICROPYTHON_MODULES:
                    reason = "imports %s (not on MicroPython)" % (imp.name or "a module named at run time")
                else:
                    reason = ""
                if reason:
                    why[module] = reason
                    changed = True
                    break
    return why


def problems(root: str = ROOT) -> list:
    """Every import that breaks a layer rule, as 'path:line: what' lines."""
    out = []
    agent = {p: imports(root, p) for p in _modules(os.path.join(root, "agent"))}
    adapters = host_adapters(root, agent)

    def say(imp: Import, rule: str) -> None:
        name = imp.name or "a module named at run time"
        line = "%s:%d: %s of %s: %s" % (os.path.relpath(imp.path, root), imp.line, imp.how, name, rule)
        if line not in out:  # `from a import b, c` names a twice
            out.append(line)

    core = os.path.join(root, "agent", "core")
    for path, its in agent.items():
        in_core = path.startswith(core + os.sep)
        for imp in its:
            top = imp.name.split(".")[0]
            if not imp.name:
                say(imp, "agent/ imports only modules it names (the rules cannot follow a name made at run time)")
            elif top in NOT_FROM_AGENT:
                say(imp, "agent/ never imports %s/" % top)
            elif in_core and not (_within(imp.name, "agent.core") or top in CORE_ALLOWED or top in TYPE_ONLY):
                say(imp, "the core imports only itself and the portable subset (tools/portability.py)")
    for path in _modules(os.path.join(root, "firmware")):
        for imp in imports(root, path):
            top = imp.name.split(".")[0]
            if not imp.name:
                say(imp, "firmware/ imports only modules it names")
            elif top in NOT_FROM_AGENT:
                say(imp, "firmware/ never imports %s/" % top)
            elif imp.name in adapters:
                say(imp, "firmware/ never imports host adapters (%s %s)" % (imp.name, adapters[imp.name]))
            elif top not in ("agent", "firmware") and top not in MICROPYTHON_MODULES:
                say(imp, "firmware/ runs on MicroPython, which has no %s" % top)
    return out


def main() -> int:
    found = problems(sys.argv[1] if len(sys.argv) > 1 else ROOT)
    for line in found:
        print(line)
    print("layers: %d problem%s" % (len(found), "" if len(found) == 1 else "s"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
