"""Simulated appliances: deterministic, seedable traces with program phases and faults.

Written in the portable subset, so the same simulator drives CPython and MicroPython.
"""
