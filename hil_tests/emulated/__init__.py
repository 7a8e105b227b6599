"""Emulated `machine` classes and buses, for board code run on the MicroPython unix port or
CPython without a board; one module per device family."""
