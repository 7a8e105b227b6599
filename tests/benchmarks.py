"""Running a benchmark from a test: its exit code, its printed table, its JSON figures."""

import json
import os
import sys

from tests import timeouts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_bench(script: str, tmp_dir: str, *args: str, cpu_s: float = 240) -> tuple:
    """(stdout, figures) of bench/<script> run with --json; fails the test on a non-zero exit.
    cpu_s: its CPU budget; the wall-clock limit follows (tests/timeouts.py)."""
    out = os.path.join(tmp_dir, script + ".json")
    proc = timeouts.run([sys.executable, os.path.join(ROOT, "bench", script), *args, "--json", out], cpu_s,
                        capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with open(out) as f:
        return proc.stdout, json.load(f)
