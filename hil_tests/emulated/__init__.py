"""Emulated board modules (machine, network, ntptime parts) for the MicroPython unix port and CPython."""
