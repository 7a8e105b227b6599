# Wichtel: `make demo` runs the demo, `make test` runs the whole suite (what CI runs),
# `make check` the quick tier (lint, types, the tests that take no runtime or broker for long).
# Each does its own set-up on a fresh Debian machine (Python 3.11, Node 20, root):
# a virtual environment in .venv/, the Python packages, missing apt packages, and the
# MicroPython WebAssembly runtime from npm.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
MP_STAMP := tools/mpwasm/node_modules/.installed
# Debian packages the suite needs (chromium: browser tests of the local page); installed only when missing.
APT_PACKAGES := mosquitto chromium

.PHONY: demo test check soak setup lint bench clean

# Four workers on two cores: most tests wait on sockets, brokers and timers, not on the CPU.
# The longest files first, in the order tests/conftest.py gives them (LONGEST_FIRST).
PYTEST_PARALLEL := -n 4 --dist loadfile --no-loadscope-reorder
# Python may keep the bytecode it compiled (in __pycache__/, ignored by git): each worker
# and each `python -m agent` a test starts would otherwise compile the modules anew.
unexport PYTHONDONTWRITEBYTECODE

demo: setup
	$(PY) -m agent demo --page 127.0.0.1:8080

test: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest $(PYTEST_PARALLEL)

check: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest $(PYTEST_PARALLEL) -m "not slow and not heavy"

# The long soaks (marked slow; `make test` runs their short versions).
soak: setup
	$(PY) -m pytest -m slow

setup: $(PY_STAMP) $(MP_STAMP)
	@./tools/ensure-apt.sh $(APT_PACKAGES)

$(PY_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(MP_STAMP): tools/mpwasm/package.json tools/mpwasm/package-lock.json
	npm ci --prefix tools/mpwasm --no-audit --no-fund --loglevel=error
	touch $@

bench: setup
	$(PY) bench/pipeline.py
	$(PY) bench/nab.py
	$(PY) bench/consumables.py
	$(PY) bench/minimization.py
	$(PY) bench/uplink.py
	$(PY) bench/provisioning.py
	$(PY) bench/page.py

clean:
	rm -rf $(VENV) tools/mpwasm/node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis
