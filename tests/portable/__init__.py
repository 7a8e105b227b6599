"""Portable test cases: the same functions run on CPython and on real MicroPython."""
