"""Emulated hardware for the tests: buses, lines and sensors replaying recorded traces.

Each module says which hardware it stands in for and on which runtimes it runs.
"""
