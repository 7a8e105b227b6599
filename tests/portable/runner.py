"""Runs the portable cases and collects their results as plain JSON data.

Used by pytest on CPython and by tools/mpwasm/run.mjs on MicroPython; the two result
sets must be equal (tests/test_portable.py). Cases may be coroutines: the WebAssembly
port has no asyncio.run, so the runner itself is awaited.
"""

import gc


def case_names(module: object) -> list:
    return sorted(name for name in dir(module) if name.startswith("case_"))


async def run_one(module: object, name: str, data_dir: str) -> dict:
    try:
        result = getattr(module, name)(data_dir)
        if hasattr(result, "send"):  # a coroutine (a generator on MicroPython)
            result = await result
        return {"ok": result}
    except Exception as e:  # noqa: BLE001 - a failing case is reported, not raised, so every case runs
        return {"error": type(e).__name__ + ": " + str(e)}


async def run_all(module: object, data_dir: str) -> dict:
    results = {}
    for name in case_names(module):
        gc.collect()  # each case from a collected heap, as if it ran alone
        results[name] = await run_one(module, name, data_dir)
    return results
