"""The benchmark runs and reports its figures (short run; the figures are not judged here)."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_pipeline_benchmark_prints_json_figures() -> None:
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "pipeline.py"), "--hours", "0.05"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["pipeline_only"]["cpython"]["samples"] == figures["pipeline_only"]["micropython_wasm"]["samples"]
    assert figures["pipeline_only"]["micropython_wasm"]["heap_agent_bytes"] > 0
    assert figures["core_mpy_bytes"] > 0


def test_micropython_benchmark_prints_the_memory_and_uplink_keys() -> None:
    # A short run (half an hour): the keys and their kinds, not the figures.
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "micropython.py"), "--json", "--days", "0.02"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    for key in ("imports_bytes", "built_bytes", "peak_bytes_week", "min_heap_bytes_week"):
        assert isinstance(figures[key], int) and figures[key] > 0, key
    for key in ("uplink_msgs_per_s", "cpython_uplink_msgs_per_s"):  # the same script, broker and run
        assert isinstance(figures[key], float) and figures[key] > 0, key
    assert figures["modules"] == "mpy" and figures["samples"] > 0
    # The smallest heap that completes the run holds at least what was live at its peak,
    # and is at least what bisection alone found (the steps above it must complete too).
    assert figures["min_heap_bytes_week"] >= figures["peak_bytes_week"]
    assert figures["min_heap_bytes_week"] >= figures["min_heap_settled_from"] > 0
    assert any(line.strip().startswith("smallest heap that runs it") for line in lines)


def test_page_benchmark_writes_the_render_times_and_the_heap(tmp_path: "os.PathLike[str]") -> None:
    out = os.path.join(str(tmp_path), "page.json")
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "page.py"), "--rounds", "4", "--json", out],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with open(out, encoding="utf-8") as f:
        figures = json.load(f)
    assert set(figures) == {"cpython", "micropython", "micropython_mpy"}
    for runtime, values in figures.items():
        for page in ("login", "overview", "privacy", "data", "consumables", "device", "erase", "error"):
            assert values[page + "_ms"] > 0, (runtime, page)
    # The same overview on every runtime; the views' heap only where it is measured.
    assert len({values["overview_bytes"] for values in figures.values()}) == 1
    for runtime in ("micropython", "micropython_mpy"):
        assert figures[runtime]["views_import_bytes"] > 0 and figures[runtime]["overview_alloc_bytes"] > 0
