"""docs/security.md names the tests that prove its claims: each named test must exist."""

import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# `test_file.py::test_name`, or `test_file.py::test_prefix_…` for a family of tests.
REFERENCE = re.compile(r"`(test_[a-z0-9_]+\.py)::(test_[A-Za-z0-9_]+)(…)?`")
FILE_ONLY = re.compile(r"`(test_[a-z0-9_]+\.py)`")


def _tests_in(path: str) -> set:
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _check(doc: str) -> list:
    with open(os.path.join(ROOT, "docs", doc), encoding="utf-8") as f:
        text = f.read()
    missing = []
    for name in FILE_ONLY.findall(text):
        if not os.path.exists(os.path.join(ROOT, "tests", name)):
            missing.append(name)
    refs = REFERENCE.findall(text)
    for name, test, prefix in refs:
        path = os.path.join(ROOT, "tests", name)
        if not os.path.exists(path):
            missing.append(name)
            continue
        tests = _tests_in(path)
        if (prefix and not any(t.startswith(test) for t in tests)) or (not prefix and test not in tests):
            missing.append(name + "::" + test)
    assert len(refs) > 20, "too few test references found: the pattern no longer matches the page"
    return missing


def test_every_test_named_in_the_security_page_exists() -> None:
    assert _check("security.md") == []
