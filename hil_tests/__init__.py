"""The hardware-in-the-loop suite and the emulated hardware it and the unit tests use.

Anything may be imported here (docs/layers.md); nothing outside tests imports it.
"""
