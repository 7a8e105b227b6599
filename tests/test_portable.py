"""The portable cases on CPython, and the same cases on real MicroPython giving equal results:
on the WebAssembly port (behaviour; its heap grows) here, and on the unix port with a fixed
heap and .mpy modules in tests/test_portable_unix.py (a file of its own, so the two
interpreters run on different workers)."""

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


def test_comparison_tolerates_only_ulps() -> None:
    assert _close({"a": [1.0, 2]}, {"a": [1.0 + 1e-15, 2]})
    assert not _close({"a": [1.0]}, {"a": [1.001]})
    assert not _close([1, 2], [1, 2, 3])
