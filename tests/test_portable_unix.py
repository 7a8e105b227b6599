"""The portable cases on the MicroPython unix port with a fixed heap and .mpy modules
(behaviour within a heap that runs out), giving the same results as on CPython."""

import json

import pytest

from tests.test_portable import _MARK, NAMES, _close

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
    out = micropython_unix.run(code, heap=UNIX_HEAP, path=(build,), cpu_s=300)
    return json.loads(out.split(_MARK, 1)[1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", NAMES)
def test_case_on_the_unix_port_with_a_fixed_heap_gives_the_same_result(
    name: str, cpython_results: dict, unix_results: dict
) -> None:
    mp = unix_results[name]
    assert "error" not in mp, "on the MicroPython unix port (heap %d): %s" % (UNIX_HEAP, mp["error"])
    assert _close(mp["ok"], cpython_results[name]["ok"]), (mp["ok"], cpython_results[name]["ok"])
