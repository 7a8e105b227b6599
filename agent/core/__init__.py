"""Wichtel's portable core: the logic that runs unchanged on CPython and MicroPython.

It does no I/O: it takes numbers, bytes and times and returns decisions, or raises.
"""

VERSION = "0.1.0"
