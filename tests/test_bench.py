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
