"""Running a benchmark from a test: its exit code, its printed table, its JSON figures."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_bench(script: str, tmp_dir: str, *args: str, timeout: float = 600) -> tuple:
    """(stdout, figures) of bench/<script> run with --json; fails the test on a non-zero exit."""
    out = os.path.join(tmp_dir, script + ".json")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", script), *args, "--json", out],
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with open(out) as f:
        return proc.stdout, json.load(f)
