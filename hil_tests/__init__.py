"""The hardware-in-the-loop suite: scenarios, emulated hardware and recorded traces.

emulated/ holds the stand-ins of hardware the tests drive; traces/ their recordings.
"""
