"""One error vocabulary: every exception Wichtel defines is a WichtelError, our own code
raises no built-in exception as a signal, and a fault that is not ours to name (a maths
overflow, say) reaches the user as a fault, never as "outbox full, try again later"."""

import ast
import asyncio
import builtins
import importlib
import os
import pkgutil
from collections.abc import Iterator

import pytest

import agent
import provisioning
from agent import cli, device, profile_loader
from agent.core import consumables
from agent.core import device as core_device
from agent.core.errors import OutboxFullError, WichtelError
from agent.local_page.server import LocalPage
from tests.test_local_page import _csrf, _form, _login, open_page

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILTIN_ERRORS = {n for n, obj in vars(builtins).items() if isinstance(obj, type) and issubclass(obj, BaseException)}

# Built-in exceptions agent/ still raises, each for a reason that is not a domain signal.
ALLOWED_RAISES = {
    # pop/peek of an empty ring, as list.pop and deque.popleft do: a caller's bug, caught nowhere.
    ("agent/core/ring.py", "IndexError"),
    # Something that is not an Event handed to the privacy gate: a programming error, caught nowhere.
    ("agent/core/pipeline.py", "TypeError"),
    # A short write and a torn record that cannot be cut off are I/O failures like the OS's
    # own; the callers turn every OSError into StorageError in one place.
    ("agent/files.py", "OSError"),
    # paho drops a link only on an OSError from its socket read; the reason is kept in
    # `refusal` and reported by the uplink.
    ("agent/uplink_paho.py", "OSError"),
    # The client closed mid-request: what the stream's own end of data is (asyncio's
    # IncompleteReadError is an EOFError), handled with it.
    ("agent/local_page/board.py", "EOFError"),
    # The method a processor must define, as abc's abstract methods do (no abc on MicroPython).
    ("agent/core/processors.py", "NotImplementedError"),
    # The file operations each runtime's storage must define (DeviceData on the host,
    # BoardData on a board), as abc's abstract methods do.
    ("agent/core/stored_data.py", "NotImplementedError"),
}
# The layers that answer the user: a built-in exception is caught there only around the one
# statement that raises it (float() of a form field, microdot's decoding, a bind), never
# around a block that calls into the agent, whose faults must not be mistaken for input.
USER_FACING = (
    "agent/cli.py",
    "agent/local_page/routes.py",
    "provisioning/cli.py",
    "provisioning/demo.py",
    "provisioning/firmware.py",
)
NOT_NARROW = {"ValueError", "OverflowError", "ArithmeticError", "ZeroDivisionError", "FloatingPointError",
              "KeyError", "IndexError", "LookupError", "TypeError", "RuntimeError", "Exception"}  # fmt: skip


def _python_files(top: str) -> list:
    out = []
    for dirpath, dirs, files in os.walk(os.path.join(ROOT, top)):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        out += [os.path.join(dirpath, f) for f in files if f.endswith(".py")]
    return sorted(out)


def _raised(node: ast.Raise) -> str:
    exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
    return exc.id if isinstance(exc, ast.Name) else ""


def builtin_raises(paths: list) -> list:
    """(path, line, name) of every `raise X(...)` / `raise X` of a built-in exception."""
    out = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and _raised(node) in BUILTIN_ERRORS:
                out.append((os.path.relpath(path, ROOT), node.lineno, _raised(node)))
    return out


def broad_builtin_catches(paths: list) -> list:
    """(path, line, name) of an except clause catching a built-in exception around more than one statement."""
    out = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Try) or len(node.body) == 1:
                continue
            for handler in node.handlers:
                caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
                for exc in caught:
                    if isinstance(exc, ast.Name) and exc.id in NOT_NARROW:
                        out.append((os.path.relpath(path, ROOT), handler.lineno, exc.id))
    return out


def test_agent_raises_no_builtin_exception_as_a_signal() -> None:
    found = builtin_raises(_python_files("agent"))
    assert [f for f in found if (f[0], f[2]) not in ALLOWED_RAISES] == []
    # Each allowance is still needed (a stale one would hide a new raise of the same kind).
    assert {(f[0], f[2]) for f in found} == ALLOWED_RAISES


def test_the_raise_scan_finds_an_intruder(tmp_path: "os.PathLike[str]") -> None:
    path = os.path.join(tmp_path, "m.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write("def f(x):\n    if x:\n        raise OverflowError('full')\n    raise KeyError\n")
    assert sorted((line, name) for _, line, name in builtin_raises([path])) == [(3, "OverflowError"), (4, "KeyError")]


def test_the_user_facing_layers_catch_builtin_exceptions_only_around_one_statement() -> None:
    assert broad_builtin_catches([os.path.join(ROOT, p) for p in USER_FACING]) == []


def test_the_catch_scan_finds_a_broad_catch(tmp_path: "os.PathLike[str]") -> None:
    path = os.path.join(tmp_path, "m.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write("try:\n    a = float(x)\n    agent.refilled(a)\nexcept (ValueError, OverflowError):\n    pass\n"
                "try:\n    a = float(x)\nexcept ValueError:\n    pass\n")  # fmt: skip
    found = [(line, name) for _, line, name in broad_builtin_catches([path])]
    assert found == [(4, "ValueError"), (4, "OverflowError")]


def _modules(package: object) -> list:
    names = [package.__name__]  # type: ignore[attr-defined]
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):  # type: ignore[attr-defined]
        if not info.name.endswith("__main__"):
            names.append(info.name)
    return names


def test_every_exception_wichtel_defines_is_a_wichtel_error() -> None:
    seen = []
    for name in _modules(agent) + _modules(provisioning):
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == name:
                seen.append(obj.__name__)
                assert issubclass(obj, WichtelError), "%s.%s" % (name, obj.__name__)
                assert obj.__name__.endswith("Error"), "%s.%s" % (name, obj.__name__)
    for expected in ("UsageError", "TraceError", "DetectInputError", "SetupCodeError", "BundleError",
                     "ProvisioningError", "OutboxFullError", "CommandError", "MqttError", "InputError"):  # fmt: skip
        assert expected in seen


# -- a fault is not "outbox full" -------------------------------------------------------
@pytest.fixture
def page(tmp_path: "os.PathLike[str]") -> Iterator[tuple]:
    said: list = []
    lp, agent_, _, _ = open_page(tmp_path, report=said.append)
    yield lp, agent_, said
    asyncio.run(lp.stop())  # its setup-code thread ends with it, as a served page's does


MATHS_FAULTS = [OverflowError("math range error"), ZeroDivisionError("float division by zero"),
                ValueError("math domain error"), ArithmeticError("overflow"), KeyError("level")]  # fmt: skip


def _post(lp: LocalPage, path: str, **fields: str) -> object:
    import asyncio

    from microdot.test_client import TestClient

    async def go() -> object:
        client = TestClient(lp.app)
        await _login(client)
        token = _csrf((await client.get("/consumables")).text)
        headers, body = _form(csrf=token, **fields)
        return await client.post(path, headers=headers, body=body)

    lp.hook_log()
    try:
        return asyncio.run(go())
    finally:
        lp.unhook_log()


@pytest.mark.parametrize("fault", MATHS_FAULTS, ids=[type(f).__name__ for f in MATHS_FAULTS])
def test_a_maths_fault_in_a_refill_is_a_fault_on_the_page_not_busy_nor_bad_input(
    page: tuple, monkeypatch: pytest.MonkeyPatch, fault: Exception
) -> None:
    lp, _, said = page

    def broken(self: object, t_ms: int, level: object = None) -> list:
        raise fault

    monkeypatch.setattr(consumables.ConsumableTracker, "refill", broken)
    res = _post(lp, "/consumables/detergent/refilled")
    assert res.status_code == 500, res.status_code  # type: ignore[attr-defined]
    assert "Not now" not in res.text and "could not be read" not in res.text  # type: ignore[attr-defined]
    assert any(type(fault).__name__ in line for line in said), said


@pytest.mark.parametrize("fault", [*MATHS_FAULTS, OutboxFullError("the outbox is full")],
                         ids=[*[type(f).__name__ for f in MATHS_FAULTS], "OutboxFullError"])  # fmt: skip
@pytest.mark.parametrize(("path", "fields", "action"), [("/privacy/maintenance", {"choice": "on"}, "set_consent"),
                                                        ("/data/erase", {"confirm": "yes"}, "erase")])  # fmt: skip
def test_only_a_full_outbox_makes_a_consent_change_or_an_erasure_wait(
    page: tuple, monkeypatch: pytest.MonkeyPatch, fault: Exception, path: str, fields: dict, action: str
) -> None:
    lp, _, said = page

    def broken(*args: object) -> object:
        raise fault

    monkeypatch.setattr(core_device, action, broken)  # what the page's actions call (routes.StoredActions)
    res = _post(lp, path, **fields)
    if isinstance(fault, OutboxFullError):
        assert res.status_code == 503 and "Not now: the outbox is full" in res.text  # type: ignore[attr-defined]
    else:
        assert res.status_code == 500 and "Not now" not in res.text  # type: ignore[attr-defined]
        assert any(type(fault).__name__ in line for line in said), said


@pytest.mark.parametrize("fault", MATHS_FAULTS, ids=[type(f).__name__ for f in MATHS_FAULTS])
def test_a_maths_fault_in_the_command_line_is_not_told_as_try_again_later(
    tmp_path: "os.PathLike[str]",
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fault: Exception,
) -> None:
    """`wichtel consent set` and `data erase`: a fault propagates (a traceback, exit 1), it is
    not turned into the "nothing changed, try later" of a full outbox (exit 2)."""

    def broken(*args: object) -> object:
        raise fault

    washer = profile_loader.example("washing_machine")
    monkeypatch.setattr(device, "set_consent", broken)
    monkeypatch.setattr(device, "erase", broken)
    for argv in (["consent", "set", "maintenance", "on"], ["data", "erase"]):
        with pytest.raises(type(fault)):
            cli.main([*argv, "--profile", washer, "--data-dir", str(tmp_path)])
    assert "try" not in capsys.readouterr().err


def test_a_full_outbox_is_told_on_the_command_line(
    tmp_path: "os.PathLike[str]", monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def full(*args: object) -> object:
        raise OutboxFullError("the outbox is full; try again later")

    monkeypatch.setattr(device, "erase", full)
    code = cli.main(["data", "erase", "--profile", profile_loader.example("washing_machine"), "--data-dir",
                     str(tmp_path)])  # fmt: skip
    assert code == cli.EXIT_BAD_INPUT and "nothing was erased: the outbox is full" in capsys.readouterr().err
