"""The portable cases on CPython, and the same cases on real MicroPython giving equal results:
on the WebAssembly port (behaviour; its heap grows) and on the unix port with a fixed heap
and .mpy modules (behaviour within a heap that runs out)."""

import asyncio
import json
import math

import pytest

from tests.portable import cases, runner

NAMES = runner.case_names(cases)
_MARK = "@@RESULTS@@"


def _close(a: object, b: object) -> bool:
    """Equal, with floats equal to 1e-9 relative (the runtimes' libm may differ by an ulp)."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-9)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return a == b


@pytest.fixture(scope="module")
def cpython_results(compiled_profiles: str) -> dict:
    results = asyncio.run(runner.run_all(cases, compiled_profiles))
    # Through JSON, as the MicroPython results come: tuples become lists.
    return json.loads(json.dumps(results))


@pytest.fixture(scope="module")
def micropython_results(mp_runtime: object, compiled_profiles: str) -> dict:
    code = (
        "import json\nfrom portable import cases, runner\n"
        "print(%r + json.dumps(await runner.run_all(cases, '/data')))\n" % _MARK
    )
    from tests import micropython

    out = micropython.run(
        code, micropython.core_mounts(**{"/lib/portable": "tests/portable", "/data": compiled_profiles})
    )
    return json.loads(out.split(_MARK, 1)[1])  # type: ignore[no-any-return]


# The unix port's heap for all the cases in one process: the cases hold their own data
# (thousands of scores, a stream of 30 packets) besides the agents they build; the agent's
# own bound is checked by tests/test_memory.py.
UNIX_HEAP = 1024 * 1024


@pytest.fixture(scope="module")
def unix_results(compiled_profiles: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from tests import micropython_unix
    from tools import build_mpy

    missing = micropython_unix.available()
    if missing:
        pytest.fail(missing)
    build = str(tmp_path_factory.mktemp("mpy"))
    build_mpy.build(build, build_mpy.BOARD_PACKAGES + build_mpy.TEST_PACKAGES)
    code = (
        "import asyncio, json\nfrom tests.portable import cases, runner\n"
        "print(%r + json.dumps(asyncio.run(runner.run_all(cases, %r))))\n" % (_MARK, compiled_profiles)
    )
    out = micropython_unix.run(code, heap=UNIX_HEAP, path=(build,), timeout=600)
    return json.loads(out.split(_MARK, 1)[1])  # type: ignore[no-any-return]


def test_cases_were_found() -> None:
    assert len(NAMES) >= 10


@pytest.mark.parametrize("name", NAMES)
def test_case_on_cpython(name: str, cpython_results: dict) -> None:
    result = cpython_results[name]
    assert "error" not in result, result["error"]


@pytest.mark.micropython
@pytest.mark.parametrize("name", NAMES)
def test_case_on_micropython_gives_the_same_result(name: str, cpython_results: dict, micropython_results: dict) -> None:
    mp = micropython_results[name]
    assert "error" not in mp, "on MicroPython: " + mp["error"]
    assert _close(mp["ok"], cpython_results[name]["ok"]), (mp["ok"], cpython_results[name]["ok"])


@pytest.mark.parametrize("name", NAMES)
def test_case_on_the_unix_port_with_a_fixed_heap_gives_the_same_result(
    name: str, cpython_results: dict, unix_results: dict
) -> None:
    mp = unix_results[name]
    assert "error" not in mp, "on the MicroPython unix port (heap %d): %s" % (UNIX_HEAP, mp["error"])
    assert _close(mp["ok"], cpython_results[name]["ok"]), (mp["ok"], cpython_results[name]["ok"])


def test_comparison_tolerates_only_ulps() -> None:
    assert _close({"a": [1.0, 2]}, {"a": [1.0 + 1e-15, 2]})
    assert not _close({"a": [1.0]}, {"a": [1.001]})
    assert not _close([1, 2], [1, 2, 3])
