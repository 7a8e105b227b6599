"""`wichtel firmware build` and `provision flash`: the image is what the entry points import,
compiled by the real mpy-cross, importable on the MicroPython unix port, reported to the
byte, the same bytes twice, in step with the freezing manifest; flashing refuses an image
without an entry point before anything is copied."""

import json
import math
import os
import shutil

import pytest

from agent.cli import main
from provisioning import firmware, firmware_build, flash
from provisioning.errors import FirmwareBuildError, FlashError
from tests import micropython_unix

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOOT = "import gc\ngc.collect()\n"
# A main.py as the board's would be: the runtime, the local page's board server, and a
# lazy import (inside a function) that only the import graph can find.
MAIN = (
    "from firmware import runtime\n"
    "from agent.local_page.board import BoardPage\n"
    "\n"
    "def start():\n"
    "    from agent.sim import appliances\n"
    "    return appliances\n"
)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def make_tree(path: str, main_py: str | None = MAIN, boot_py: str | None = BOOT) -> str:
    """A firmware/ directory: the repository's board modules and the entry points given."""
    os.makedirs(path)
    for name in sorted(os.listdir(os.path.join(ROOT, "firmware"))):
        if name.endswith(".py") and name not in firmware_build.ENTRY_POINTS and name != "manifest.py":
            shutil.copyfile(os.path.join(ROOT, "firmware", name), os.path.join(path, name))
    for name, text in (("main.py", main_py), ("boot.py", boot_py)):
        if text is not None:
            with open(os.path.join(path, name), "w", encoding="utf-8") as f:
                f.write(text)
    return path


def files_of(directory: str) -> dict[str, bytes]:
    out = {}
    for local, remote in firmware_build.image_files(directory):
        with open(local, "rb") as f:
            out[remote] = f.read()
    return out


SMALL_MAIN = "from agent.core.ring import RingBuffer\n"


@pytest.fixture
def small(tmp_path: "os.PathLike[str]", monkeypatch: pytest.MonkeyPatch) -> str:
    """A firmware tree whose main.py imports little (quick to build), made the default one."""
    tree = make_tree(os.path.join(tmp_path, "small"), main_py=SMALL_MAIN)
    monkeypatch.setattr(firmware_build, "FIRMWARE_DIR", tree)
    return tree


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, dict]:
    """(firmware tree, image directory, report) of one build, shared by the read-only tests."""
    base = str(tmp_path_factory.mktemp("fw"))
    tree = make_tree(os.path.join(base, "firmware"))
    out = os.path.join(base, "image")
    return tree, out, firmware_build.build(out=out, firmware_dir=tree)


# -- what is compiled, and where it goes ----------------------------------------------------------
def test_the_image_is_laid_out_as_the_board_holds_it(built: tuple[str, str, dict]) -> None:
    _, out, report = built
    files = files_of(out)
    # The entry points stay source, byte for byte, at the root; everything else is bytecode under lib/.
    assert files["main.py"] == MAIN.encode() and files["boot.py"] == BOOT.encode()
    rest = sorted(p for p in files if p not in ("main.py", "boot.py"))
    assert rest and all(p.startswith("lib/") and p.endswith(".mpy") for p in rest), rest
    assert all(files[p][:2] == b"M\x06" for p in rest)  # .mpy version 6: MicroPython 1.29's
    assert not os.path.exists(os.path.join(out, "lib", "agent", "core", "pipeline.py"))
    # Found from the imports: what main.py names, what those import, lazily too.
    for module in (
        "lib/firmware/runtime.mpy",  # named by main.py
        "lib/firmware/flash_store.mpy",  # imported by runtime
        "lib/agent/core/pipeline.mpy",
        "lib/agent/core/rights_seldom.mpy",  # imported only inside a function of rights.py
        "lib/agent/sim/appliances.mpy",  # imported only inside main.py's function
        "lib/microdot/microdot.mpy",  # the page's server library, as the board takes it
        "lib/agent/local_page/templates_compiled.mpy",  # the templates, compiled ahead of time
        "lib/agent/__init__.mpy",
        "lib/agent/core/__init__.mpy",  # packages' __init__ run before their modules
    ):
        assert module in files, module
    # Not imported by anything the board runs: not there.
    for module in (
        "lib/firmware/page_main.mpy",
        "lib/firmware/board_drivers.mpy",
        "lib/agent/local_page/server.mpy",
        "lib/agent/local_page/template_compiler.mpy",  # not needed once the templates are compiled
        "lib/agent/profile_loader.mpy",
        "lib/agent/files.mpy",  # a host adapter, imported lazily by setup_code's factory branch
    ):
        assert module not in files, module
    assert [(e["module"], e["by"]) for e in report["left_out"]] == [("agent.files", "agent/setup_code.py:126")]
    assert {"ssl", "asyncio", "json", "socket"} <= set(report["outside_image"])


def test_the_module_set_is_computed_from_imports_not_listed(tmp_path: "os.PathLike[str]") -> None:
    tree = make_tree(os.path.join(tmp_path, "fw"), main_py="from agent.core.ring import RingBuffer\n", boot_py=None)
    mods, found = firmware_build.modules(tree)
    assert [m.target for m in mods] == [
        "main.py",
        "lib/agent/__init__.mpy",
        "lib/agent/core/__init__.mpy",
        "lib/agent/core/errors.mpy",  # ring.py imports it
        "lib/agent/core/ring.mpy",
    ]
    assert found.left_out == []


def test_the_template_compiler_stays_when_a_board_module_imports_it(tmp_path: "os.PathLike[str]") -> None:
    # The compiled templates replace the compiler only where template.py's fallback is its one importer.
    tree = make_tree(os.path.join(tmp_path, "fw"), main_py=MAIN + "from agent.local_page import template_compiler\n")
    mods, _ = firmware_build.modules(tree)
    targets = [m.target for m in mods]
    assert "lib/agent/local_page/template_compiler.mpy" in targets
    assert "lib/agent/local_page/templates_compiled.mpy" in targets


def test_a_top_level_import_of_a_host_adapter_is_refused(tmp_path: "os.PathLike[str]") -> None:
    tree = make_tree(os.path.join(tmp_path, "fw"), main_py="import json\nfrom agent import files\n")
    with pytest.raises(FirmwareBuildError, match=r"main\.py:2 imports agent\.files, a host adapter"):
        firmware_build.modules(tree)
    # Reached through a board module as well.
    with open(os.path.join(tree, "main.py"), "w") as f:
        f.write("from firmware import extra\n")
    with open(os.path.join(tree, "extra.py"), "w") as f:
        f.write("from agent.profile_loader import load\n")
    with pytest.raises(FirmwareBuildError, match=r"firmware/extra\.py:1 imports agent\.profile_loader"):
        firmware_build.modules(tree)


@pytest.mark.parametrize(
    ("main_py", "named"),
    [
        ("from firmware import no_such_module\n", "main.py:1 imports firmware.no_such_module"),
        ("import agent.core.no_such_module\n", "main.py:1 imports agent.core.no_such_module"),
        ("def f():\n    import agent.nope\n", "main.py:2 imports agent.nope"),
    ],
)
def test_an_import_of_a_module_that_is_not_there_is_refused(
    tmp_path: "os.PathLike[str]", main_py: str, named: str
) -> None:
    tree = make_tree(os.path.join(tmp_path, "fw"), main_py=main_py)
    with pytest.raises(FirmwareBuildError, match=named.replace(".", r"\.") + ", which is no module of"):
        firmware_build.modules(tree)


def test_a_module_that_is_not_python_is_named(tmp_path: "os.PathLike[str]") -> None:
    tree = make_tree(os.path.join(tmp_path, "fw"), main_py="from firmware import broken\n")
    with open(os.path.join(tree, "broken.py"), "w") as f:
        f.write("def f(:\n")
    with pytest.raises(FirmwareBuildError, match=r"broken\.py:1: not Python the build can read"):
        firmware_build.modules(tree)


def test_a_firmware_without_main_py_is_not_built(
    tmp_path: "os.PathLike[str]", capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = make_tree(os.path.join(tmp_path, "fw"), main_py=None)
    monkeypatch.setattr(firmware_build, "FIRMWARE_DIR", tree)
    out = os.path.join(tmp_path, "image")
    code, stdout, err = cli(capsys, "firmware", "build", "--out", out)
    assert code == 2 and stdout == "", err
    assert err.startswith("wichtel: ") and "has no main.py" in err and "Entry points found: boot.py" in err, err
    assert not os.path.exists(out)


def test_a_module_mpy_cross_refuses_names_it_and_leaves_no_image(tmp_path: "os.PathLike[str]") -> None:
    tree = make_tree(os.path.join(tmp_path, "fw"), main_py="from firmware import bad\n")
    with open(os.path.join(tree, "bad.py"), "w") as f:
        f.write("def f():\n    nonlocal x\n")  # Python's parser takes it; the compiler does not
    out = os.path.join(tmp_path, "image")
    with pytest.raises(FirmwareBuildError, match=r"mpy-cross refused firmware/bad\.py"):
        firmware_build.build(out=out, firmware_dir=tree)
    assert not os.path.exists(out) and os.listdir(tmp_path) == ["fw"]  # no staging directory left


def test_an_out_directory_that_is_not_a_build_is_never_replaced(
    built: tuple[str, str, dict], tmp_path: "os.PathLike[str]"
) -> None:
    tree, _, _ = built
    out = os.path.join(tmp_path, "mine")
    os.makedirs(out)
    with open(os.path.join(out, "notes.txt"), "w") as f:
        f.write("keep")
    with pytest.raises(FirmwareBuildError, match="no earlier firmware build"):
        firmware_build.build(out=out, firmware_dir=tree)
    assert os.listdir(out) == ["notes.txt"]
    with pytest.raises(FirmwareBuildError, match="is a file, not a directory"):
        firmware_build.build(out=os.path.join(out, "notes.txt"), firmware_dir=tree)
    with open(os.path.join(out, "notes.txt")) as f:
        assert f.read() == "keep"


# -- on the MicroPython unix port ----------------------------------------------------------------
def test_the_image_imports_on_the_unix_port_from_its_bytecode(built: tuple[str, str, dict]) -> None:
    missing = micropython_unix.available()
    if missing:
        pytest.fail(missing)
    _, out, report = built
    names = [r["module"] for r in report["modules"] if r["path"].endswith(".mpy")]
    code = (
        "import sys\n"
        "names = %r\n"
        "for name in names:\n"
        "    __import__(name)\n"
        "    f = sys.modules[name].__file__\n"
        "    assert f.endswith('.mpy'), f\n"
        "from agent.core.ring import RingBuffer\n"
        "r = RingBuffer(2)\n"
        "r.push(1); r.push(2); r.push(3)\n"
        "print('OK', len(names), r.items())\n" % names
    )
    printed = micropython_unix.run(code, heap=2 * 1024 * 1024, path=(os.path.join(out, "lib"),))
    assert printed.strip() == "OK %d [2, 3]" % len(names), printed


def test_the_import_heap_is_measured_on_the_unix_port(built: tuple[str, str, dict]) -> None:
    if micropython_unix.available():
        pytest.fail(micropython_unix.available())
    _, out, report = built
    names = [r["module"] for r in report["modules"] if r["path"].endswith(".mpy")]
    heap = firmware_build.import_heap(out, names)
    assert sorted(heap["imported"]) == sorted(names) and heap["not_imported"] == []
    # More than the bytecode's strings and objects of a few modules, less than the probe's heap.
    assert 50_000 < heap["bytes"] < firmware_build.HEAP_PROBE_BYTES
    # A module that needs what only a board has is named, not counted as imported.
    with open(os.path.join(out, "lib", "needs_wlan.py"), "w") as f:
        f.write("import network\n")
    try:
        probe = firmware_build.import_heap(out, ["needs_wlan"])
    finally:
        os.remove(os.path.join(out, "lib", "needs_wlan.py"))
    assert probe["imported"] == [] and probe["not_imported"][0][0] == "needs_wlan"
    assert "ImportError" in probe["not_imported"][0][1]


# -- the size report ---------------------------------------------------------------------------------
def test_the_size_report_gives_the_files_sizes(built: tuple[str, str, dict]) -> None:
    tree, out, report = built
    files = files_of(out)
    assert sorted(r["path"] for r in report["modules"]) == sorted(files)
    for r in report["modules"]:
        assert r["bytes"] == len(files[r["path"]]), r
        if r["path"] in firmware_build.ENTRY_POINTS:
            assert r["source_bytes"] == os.path.getsize(os.path.join(tree, r["path"]))
        elif r["module"] != "agent.local_page.templates_compiled":
            source = os.path.join(ROOT, r["source"]) if r["source"].startswith("agent/") else None
            if source:
                assert r["source_bytes"] == os.path.getsize(source), r
    totals = report["totals"]
    assert totals["modules"] == len(files)
    assert totals["module_bytes"] == totals["image_bytes"] == sum(len(b) for b in files.values())
    assert totals["source_bytes"] == sum(r["source_bytes"] for r in report["modules"])
    # Flash: whole blocks per file, a metadata pair per directory (lib, lib/agent, ...).
    dirs = {os.path.dirname(p) for p in files if "/" in p}
    dirs |= {d.rsplit("/", i)[0] for d in dirs for i in range(d.count("/") + 1)}
    blocks = sum(max(1, math.ceil(len(b) / 4096)) for b in files.values()) + 2 * len(dirs)
    assert totals["flash_bytes"] == blocks * 4096
    budget = report["budget"]
    assert budget["filesystem_bytes"] == 0x200000 and "partitions-4MiB.csv" in budget["source"]
    assert budget["limit_bytes"] == 0x200000 - 2 * 4096 - firmware_build.DATA_RESERVE_BYTES
    assert report["over_budget"] is False and report["arch"] == "xtensawin"


def test_the_report_as_json_and_the_budget_at_its_bound(
    small: str, tmp_path: "os.PathLike[str]", capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(firmware_build, "MANIFEST", os.path.join(tmp_path, "manifest.py"))
    out = os.path.join(tmp_path, "image")
    code, stdout, err = cli(capsys, "firmware", "build", "--out", out, "--json")
    assert code == 0, err
    doc = json.loads(stdout)
    assert [r["path"] for r in doc["modules"]] == [
        "boot.py", "main.py", "lib/agent/__init__.mpy", "lib/agent/core/__init__.mpy", "lib/agent/core/errors.mpy",
        "lib/agent/core/ring.mpy",
    ]  # fmt: skip
    assert all(r["bytes"] == os.path.getsize(os.path.join(out, r["path"])) for r in doc["modules"])
    need = doc["totals"]["flash_bytes"]
    assert need == (6 + 2 * 3) * 4096  # six one-block files; lib, lib/agent, lib/agent/core
    code, stdout, err = cli(capsys, "firmware", "build", "--out", out, "--json", "--budget", str(need))
    assert code == 0 and json.loads(stdout)["over_budget"] is False, err
    # One byte less than the image needs: over budget, exit 1, the figures said; the image is still written.
    code, stdout, err = cli(capsys, "firmware", "build", "--out", out, "--budget", str(need - 1))
    assert code == firmware.EXIT_OVER_BUDGET == 1, err
    assert "OVER BUDGET: the image needs %d bytes of flash, 1 more than the %d allowed" % (need, need - 1) in stdout
    code, stdout, err = cli(capsys, "firmware", "build", "--out", out, "--budget", "0")
    assert code == 2 and "--budget 0: expected a number of bytes above 0" in err and stdout == ""
    code, stdout, _ = cli(capsys, "firmware", "build", "--out", out, "--board", "esp32c3")
    assert code == 0 and "lib/agent/core/ring.mpy" in stdout and "bytes to spare on esp32c3" in stdout
    assert "partitions-4MiB.csv" in stdout


def test_same_sources_give_the_same_bytes(
    built: tuple[str, str, dict], small: str, tmp_path: "os.PathLike[str]"
) -> None:
    tree, out, report = built
    # Another place for the firmware tree, another output: the same bytes.
    moved = os.path.join(tmp_path, "elsewhere", "firmware")
    shutil.copytree(tree, moved)
    again = os.path.join(tmp_path, "again")
    second = firmware_build.build(out=again, firmware_dir=moved, cache=False)  # mpy-cross itself, every module
    assert second["from_cache"] == 0
    assert files_of(again) == files_of(out)
    assert second["modules"] == report["modules"] and second["totals"] == report["totals"]
    # A rebuild into the same directory replaces it whole (a file that is gone stays gone).
    image = os.path.join(tmp_path, "small-image")
    first = firmware_build.build(out=image, firmware_dir=small)
    with open(os.path.join(image, "lib", "stale.mpy"), "wb") as f:
        f.write(b"old")
    rebuilt = firmware_build.build(out=image, firmware_dir=small)
    rebuilt.pop("from_cache"), first.pop("from_cache")
    assert rebuilt == first
    assert sorted(files_of(image)) == sorted(r["path"] for r in first["modules"])


def test_a_rebuild_compiles_only_what_changed_and_the_cache_keeps_its_bound(
    small: str, tmp_path: "os.PathLike[str]", monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = os.path.join(tmp_path, "cache")
    monkeypatch.setattr(firmware_build, "CACHE_DIR", cache)
    with open(os.path.join(small, "extra.py"), "w") as f:
        f.write("X = 1\n")
    with open(os.path.join(small, "main.py"), "a") as f:
        f.write("from firmware import extra\n")
    first = firmware_build.build(out=os.path.join(tmp_path, "a"))
    compiled = [r["path"] for r in first["modules"] if r["path"].endswith(".mpy")]
    assert first["from_cache"] == 0 and len(os.listdir(cache)) == len(compiled) >= 3
    second = firmware_build.build(out=os.path.join(tmp_path, "b"))
    assert second["from_cache"] == len(compiled)
    assert files_of(os.path.join(tmp_path, "b")) == files_of(os.path.join(tmp_path, "a"))
    # Another architecture is another compilation, not the cached one.
    other = firmware_build.build(out=os.path.join(tmp_path, "c"), board="esp32c3")
    assert other["from_cache"] == 0
    # One source changed: that module alone is compiled again, and its new bytes are in the image.
    with open(os.path.join(small, "extra.py"), "w") as f:
        f.write("X = 2\n")
    third = firmware_build.build(out=os.path.join(tmp_path, "d"))
    assert third["from_cache"] == len(compiled) - 1
    new, old = (files_of(os.path.join(tmp_path, d))["lib/firmware/extra.mpy"] for d in "db")
    assert new != old
    # At the bound, the least recently used files go.
    monkeypatch.setattr(firmware_build, "CACHE_MAX_FILES", 2)
    firmware_build.build(out=os.path.join(tmp_path, "e"), board="esp32s3", arch="x64")
    assert len(os.listdir(cache)) == 2


def test_the_architecture_goes_to_mpy_cross(small: str, tmp_path: "os.PathLike[str]") -> None:
    with open(os.path.join(small, "native.py"), "w") as f:
        f.write("import micropython\n\n@micropython.native\ndef f(x):\n    return x + 1\n")
    with open(os.path.join(small, "main.py"), "w") as f:
        f.write("from firmware import native\n")
    xtensa = firmware_build.build(out=os.path.join(tmp_path, "x"), board="esp32")
    riscv = firmware_build.build(out=os.path.join(tmp_path, "r"), board="esp32c3")
    host = firmware_build.build(out=os.path.join(tmp_path, "h"), board="esp32", arch="x64")
    assert (xtensa["arch"], riscv["arch"], host["arch"]) == ("xtensawin", "rv32imc", "x64")
    x, r, h = (files_of(os.path.join(tmp_path, d))["lib/firmware/native.mpy"] for d in "xrh")
    # The .mpy header's third byte holds the native code's architecture (MPY_FEATURE_ENCODE_ARCH).
    assert (x[2] >> 2, r[2] >> 2, h[2] >> 2) == (10, 11, 2), (x[:4], r[:4], h[:4])  # XTENSAWIN, RV32IMC, X64
    # Flashing checks it: an ESP32's image on a C3 is refused, naming the module; bytecode alone goes anywhere.
    xsteps = firmware_build.image_files(os.path.join(tmp_path, "x"))
    assert flash.check_board(xsteps, "esp32") > 0 and flash.check_board(xsteps, "esp32s3") > 0
    with pytest.raises(FlashError, match=r"another architecture than esp32c3's \(rv32imc\).*lib/firmware/native\.mpy"):
        flash.check_board(xsteps, "esp32c3")
    assert firmware_build.foreign_code([s for s in xsteps if "native" not in s[1]], "rv32imc") == []


# -- the freezing manifest -------------------------------------------------------------------------
def test_the_manifest_names_the_modules_the_build_compiles(
    built: tuple[str, str, dict], small: str, tmp_path: "os.PathLike[str]", capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    _, _, report = built
    lib = sorted(r["path"][4:] for r in report["modules"] if r["path"].startswith("lib/"))
    text = firmware_build.manifest_text([r["path"] for r in report["modules"]])
    assert firmware_build.manifest_modules(text) == lib
    assert 'include("$(PORT_DIR)/boards/manifest.py")' in text and '"../build/firmware/lib"' in text
    # Written by the build, and reported stale when it no longer names what is built.
    manifest = os.path.join(tmp_path, "manifest.py")
    monkeypatch.setattr(firmware_build, "MANIFEST", manifest)
    monkeypatch.setattr(firmware_build, "DEFAULT_OUT", os.path.join(tmp_path, "build", "firmware"))
    code, stdout, err = cli(capsys, "firmware", "build", "--write-manifest", "--json")
    assert code == 0 and json.loads(stdout)["manifest_in_step"] is True, err
    with open(manifest, encoding="utf-8") as f:
        written = f.read()
    assert firmware_build.manifest_modules(written) == [
        "agent/__init__.mpy", "agent/core/__init__.mpy", "agent/core/errors.mpy", "agent/core/ring.mpy",
    ]  # fmt: skip
    with open(os.path.join(small, "main.py"), "a") as f:
        f.write("from firmware import board_drivers\n")
    code, stdout, _ = cli(capsys, "firmware", "build")
    assert code == 0 and "manifest.py does not name these modules: rewrite it with --write-manifest" in stdout
    code, _, err = cli(capsys, "firmware", "build", "--write-manifest", "--out", os.path.join(tmp_path, "o"))
    assert code == 2 and "the manifest freezes the image in" in err
    with open(manifest, encoding="utf-8") as f:
        assert f.read() == written  # the refused run wrote nothing


def test_the_repository_manifest_is_in_step_with_the_firmware() -> None:
    if not os.path.exists(os.path.join(firmware_build.FIRMWARE_DIR, firmware_build.REQUIRED_ENTRY)):
        pytest.skip("firmware/main.py is not in this tree yet: nothing to freeze, so nothing to compare")
    mods, _ = firmware_build.modules()
    with open(firmware_build.MANIFEST, encoding="utf-8") as f:
        named = firmware_build.manifest_modules(f.read())
    assert named == sorted(m.target[4:] for m in mods if m.target.startswith("lib/")), (
        "firmware/manifest.py is stale: run `wichtel firmware build --write-manifest`"
    )


# -- flashing ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def device_bundle(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A provisioned device's directory (devices/<id>), made by `provision batch`."""
    from agent import profile_loader
    from provisioning import authority, batch, bundle

    base = str(tmp_path_factory.mktemp("dev"))
    authority.init(os.path.join(base, "pki"), "Brunnhilde", None)
    auth = authority.open_authority(os.path.join(base, "pki"), None)
    profile = profile_loader.compile_json(profile_loader.load(profile_loader.example("washing_machine")))
    batch.run(auth, profile, ["W000001"], os.path.join(base, "out"), "mqtt.example.net", 8883, jobs=1)
    devices = os.path.join(base, "out", batch.DEVICES)
    (device,) = os.listdir(devices)
    assert os.path.exists(os.path.join(devices, device, bundle.MPY, bundle.BUNDLE_FILE))
    return os.path.join(devices, device)


def test_the_flash_plan_is_image_then_bundle_then_entry_points(
    built: tuple[str, str, dict], device_bundle: str
) -> None:
    _, out, _ = built
    steps = flash.plan(device_bundle, out)
    remotes = [r for _, r in steps]
    assert remotes[-2:] == ["boot.py", "main.py"]  # last: a copy cut short starts nothing half-written
    lib = [r for r in remotes if r.startswith("lib/")]
    assert remotes[: len(lib)] == lib == sorted(lib)
    for name in ("bundle.json", "bundle.sig", "device.key", "device.crt", "ca.pem", "profile.json"):
        assert name in remotes[len(lib) : -2], name
    assert firmware_build.MARKER not in remotes
    assert flash.check_board(steps, "esp32") > 0


def test_flash_refuses_an_image_without_an_entry_point_and_copies_nothing(
    built: tuple[str, str, dict],
    device_bundle: str,
    tmp_path: "os.PathLike[str]",
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, out, _ = built
    calls, port = fake_board(tmp_path, monkeypatch)
    for drop in (("main.py",), ("main.py", "boot.py")):
        image = os.path.join(tmp_path, "no-entry-" + str(len(drop)))
        shutil.copytree(out, image)
        for name in drop:
            os.remove(os.path.join(image, name))
        with pytest.raises(FlashError, match=r"has no entry point: no main\.py"):
            flash.plan(device_bundle, image)
        for extra in ((), ("--dry-run",)):
            code, stdout, err = cli(
                capsys, "provision", "flash", "--port", port, "--image", image, device_bundle, *extra
            )
            assert code == 2 and stdout == "", err
            assert "has no entry point" in err and "nothing was copied" in err and err.count("\n") == 1, err
    assert not os.path.exists(calls)
    # A firmware tree without main.py, built on the fly: refused as well, nothing copied.
    monkeypatch.setattr(firmware_build, "FIRMWARE_DIR", make_tree(os.path.join(tmp_path, "fw"), main_py=None))
    code, _, err = cli(capsys, "provision", "flash", "--port", port, device_bundle)
    assert code == 2 and "has no main.py" in err and not os.path.exists(calls), err


def test_flash_refuses_an_image_holding_a_bundle_and_one_over_budget(
    built: tuple[str, str, dict],
    small: str,
    device_bundle: str,
    tmp_path: "os.PathLike[str]",
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with_bundle = os.path.join(tmp_path, "with-bundle")
    report = firmware_build.build(out=with_bundle, bundle_dir=device_bundle)
    assert {b["path"] for b in report["bundle"]} >= {"bundle.json", "device.key"}
    assert all(os.path.getsize(os.path.join(with_bundle, b["path"])) == b["bytes"] for b in report["bundle"])
    assert report["totals"]["image_bytes"] == report["totals"]["module_bytes"] + report["totals"]["bundle_bytes"]
    with pytest.raises(FlashError, match="holds a device's bundle already"):
        flash.plan(device_bundle, with_bundle)
    _, out, _ = built
    steps = flash.plan(device_bundle, out)
    monkeypatch.setattr(firmware_build, "DATA_RESERVE_BYTES", 0x200000 - 2 * 4096 - flash.check_board(steps, "esp32"))
    assert flash.check_board(steps, "esp32") > 0  # at the bound: allowed
    monkeypatch.setattr(firmware_build, "DATA_RESERVE_BYTES", firmware_build.DATA_RESERVE_BYTES + 1)
    with pytest.raises(FlashError, match="1 more than the"):
        flash.check_board(steps, "esp32")
    code, _, err = cli(capsys, "provision", "flash", "--port", "/dev/ttyUSB-none", "--image", out, device_bundle)
    assert code == 2 and "nothing was copied" in err


def fake_board(tmp_path: "os.PathLike[str]", monkeypatch: pytest.MonkeyPatch) -> tuple:
    """An mpremote on PATH that records its arguments, one call a line, and a serial port
    for it: (the file of calls, the port's path)."""
    fake = os.path.join(tmp_path, "bin")
    os.makedirs(fake)
    calls = os.path.join(fake, "calls")
    with open(os.path.join(fake, "mpremote"), "w") as f:
        f.write("#!/bin/sh\necho \"$*\" | tr '\\n' '~' >> %s\necho >> %s\n" % (calls, calls))
    os.chmod(os.path.join(fake, "mpremote"), 0o755)
    monkeypatch.setenv("PATH", fake + os.pathsep + os.environ["PATH"])
    port = os.path.join(tmp_path, "ttyFAKE")
    open(port, "w").close()
    return calls, port


def test_flash_copies_the_plan_in_order_through_mpremote(
    built: tuple[str, str, dict],
    small: str,
    device_bundle: str,
    tmp_path: "os.PathLike[str]",
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, out, _ = built
    calls, port = fake_board(tmp_path, monkeypatch)
    code, stdout, err = cli(capsys, "provision", "flash", "--port", port, "--image", out, device_bundle)
    assert code == 0, err
    with open(calls) as f:
        lines = [c.rstrip("~") for c in f.read().splitlines()]
    steps = flash.plan(device_bundle, out)
    assert lines[0].startswith("connect %s exec" % port) and "lib/agent/core" in lines[0]
    assert lines[1:] == ["connect %s fs cp %s :%s" % (port, local, remote) for local, remote in steps]
    assert "[%d/%d] 100%%" % (len(steps), len(steps)) in err and "%d files written" % len(steps) in stdout
    # Without --image the firmware (here: the small tree) is built for the copy.
    code, stdout, err = cli(capsys, "provision", "flash", "--port", port, device_bundle, "--dry-run")
    assert code == 0, err
    listed = [line.split()[0] for line in stdout.splitlines()[:-1]]
    image = os.path.join(tmp_path, "small-image")
    firmware_build.build(out=image)
    assert listed == [":" + remote for _, remote in flash.plan(device_bundle, image)]
    assert listed[0] == ":lib/agent/__init__.mpy" and listed[-1] == ":main.py"
    assert "dry run: nothing was written" in stdout
