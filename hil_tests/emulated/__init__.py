"""Emulated hardware for tests on CPython and on the MicroPython unix port: buses, pins
and converters that replay recorded traces, faults included."""
